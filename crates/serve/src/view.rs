//! The JSON the page reads: the shapes of the API's answers and events.

use serde::Serialize;
use tickwatch_core::RuleBook;
use tickwatch_core::board::{LastAlert, Level, SymbolView, Zone, levels, zone};
use tickwatch_core::ports::StoredRules;
use tickwatch_core::rules::{RuleDoc, RuleId};
use tickwatch_core::{Symbol, Timestamp};
use tickwatch_local::board::WriterRow;

/// A line of the board: what the run saw of the symbol, and where it stands against the rules
/// in force now.
#[derive(Debug, Serialize)]
pub(crate) struct BoardSymbol {
    symbol: Symbol,
    price: f64,
    timestamp: Timestamp,
    ticks: u64,
    points: Vec<(i64, f64)>,
    last_alert: Option<LastAlert>,
    zone: Zone,
    zone_rules: Vec<RuleId>,
    thresholds: Vec<Level>,
}

impl BoardSymbol {
    pub(crate) fn new(view: SymbolView, book: &RuleBook) -> BoardSymbol {
        let thresholds = levels(book, &view.symbol);
        let (zone, zone_rules) = zone(&thresholds, view.price);
        BoardSymbol {
            symbol: view.symbol,
            price: view.price,
            timestamp: view.timestamp,
            ticks: view.ticks,
            points: view.points,
            last_alert: view.last_alert,
            zone,
            zone_rules,
            thresholds,
        }
    }
}

/// `GET /api/board` and the `board` event.
#[derive(Debug, Serialize)]
pub(crate) struct BoardView {
    pub(crate) symbols: Vec<BoardSymbol>,
    /// Symbols the run saw but could not follow (the board's cap).
    pub(crate) untracked: u64,
    /// Whether `points` are only the new ones (events), not all of them (`GET /api/board`).
    pub(crate) append: bool,
}

/// The rules in force, as `GET /api/rules` and the `rules` event give them.
#[derive(Debug, Serialize)]
pub(crate) struct RulesView {
    /// The store's change counter; `null` while it holds no rules (the base rules are in force).
    version: Option<u64>,
    rules: Vec<RuleDoc>,
    invalid: Vec<InvalidView>,
}

#[derive(Debug, Serialize)]
struct InvalidView {
    id: String,
    error: String,
}

impl RulesView {
    pub(crate) fn new(stored: Option<&StoredRules>, base: &RuleBook) -> RulesView {
        match stored {
            None => RulesView {
                version: None,
                rules: base.rules().iter().map(|rule| rule.doc().clone()).collect(),
                invalid: Vec::new(),
            },
            Some(stored) => RulesView {
                version: Some(stored.version),
                rules: stored.rules.iter().map(|rule| rule.doc().clone()).collect(),
                invalid: stored
                    .invalid
                    .iter()
                    .map(|invalid| InvalidView {
                        id: invalid.id.clone(),
                        error: invalid.error.to_string(),
                    })
                    .collect(),
            },
        }
    }
}

/// The run that writes the database, as the page shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct WriterView {
    /// `running`, `stopped`, or `none` when no run has written this database's board.
    state: &'static str,
    pid: Option<u32>,
    started_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

/// `GET /api/health` and the `health` event.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Health {
    writer: WriterView,
    ticks: u64,
    alerts: u64,
    stale: u64,
    failed: u64,
    rejected: std::collections::BTreeMap<String, u64>,
    untracked: u64,
    ticks_per_s: f64,
    alerts_per_s: f64,
    /// Alerts stored but not announced yet.
    pending: u64,
    /// Pages connected to the event stream.
    pub(crate) clients: usize,
    /// Alerts left off the board's live list because they came too fast.
    alerts_skipped: u64,
}

impl Health {
    pub(crate) fn new(
        row: Option<&WriterRow>,
        rates: (f64, f64),
        pending: u64,
        clients: usize,
    ) -> Health {
        let totals = row.map(|row| row.totals.clone()).unwrap_or_default();
        Health {
            writer: match row {
                None => WriterView {
                    state: "none",
                    ..WriterView::default()
                },
                Some(row) => WriterView {
                    state: row.writer.state.as_str(),
                    pid: Some(row.writer.pid),
                    started_at: Some(row.writer.started),
                    updated_at: Some(row.writer.updated),
                },
            },
            ticks: totals.ticks,
            alerts: totals.alerts,
            stale: totals.stale,
            failed: totals.failed,
            rejected: totals.rejected,
            untracked: totals.untracked,
            ticks_per_s: rates.0,
            alerts_per_s: rates.1,
            pending,
            clients,
            alerts_skipped: row.map_or(0, |row| row.alerts_skipped),
        }
    }
}
