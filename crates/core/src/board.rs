//! The board: what a person watching the local mode sees, kept as the ticks go by.
//!
//! [`Board`] follows the ticks and outcomes of a run: each symbol's last price and recent prices,
//! its last alert, the newest alerts and the run's counts. It is bounded whatever the input: at
//! most [`BOARD_SYMBOLS_MAX`] symbols, [`BOARD_POINTS_MAX`] prices each and
//! [`BOARD_ALERTS_MAX`] alerts between two flushes. [`Board::take_flush`] hands over what changed
//! since the last flush, for a store to keep where a board server reads it.
//!
//! [`levels`] and [`zone`] say where a price stands against a symbol's level rules; the server
//! computes them from the rules in force when it answers, so they follow rule changes at once.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashSet};

use crate::alert::{Alert, AlertKind};
use crate::pipeline::{Accepted, AlertOutcome, Outcome};
use crate::rules::{Condition, RuleBook, RuleId};
use crate::tick::{Symbol, Tick, Timestamp};

/// Most symbols a board follows; ticks of further symbols are counted, not followed.
pub const BOARD_SYMBOLS_MAX: usize = 1_000;

/// Recent prices kept per symbol (the in-order ticks, newest last).
pub const BOARD_POINTS_MAX: usize = 60;

/// Most new alerts handed over by one flush: the newest ones. When alerts come faster, the
/// older ones of a flush are counted in [`BoardFlush::alerts_skipped`] (they are all in the
/// alert store; the board shows the latest).
pub const BOARD_ALERTS_MAX: usize = 200;

/// How long board changes may wait to be handed over while the input keeps batches full (a file
/// read at full speed): the board's cost stays a few writes a second.
pub const BOARD_FLUSH_INTERVAL_MS: u64 = 250;

/// The least time between two hand-overs on a live feed (the last batch took all there was): a
/// tick shows on the board within this, plus the server's poll.
pub const BOARD_FLUSH_LIVE_MS: u64 = 50;

/// Distinct symbols beyond [`BOARD_SYMBOLS_MAX`] counted exactly; past this the count stops.
pub const UNTRACKED_COUNTED_MAX: usize = 10_000;

/// A symbol's last alert, as the board shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastAlert {
    /// The tick time of the alert.
    pub timestamp: Timestamp,
    /// When it was raised.
    pub processed_at: Timestamp,
    /// High or low.
    pub kind: AlertKind,
    /// The rule that raised it.
    pub rule_id: RuleId,
}

/// One symbol on the board.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolView {
    /// The symbol.
    pub symbol: Symbol,
    /// The price of its newest tick.
    pub price: f64,
    /// The time of its newest tick.
    pub timestamp: Timestamp,
    /// Ticks seen (stale ones included).
    pub ticks: u64,
    /// Recent in-order ticks as (epoch ms, price), oldest first, at most [`BOARD_POINTS_MAX`].
    pub points: Vec<(i64, f64)>,
    /// Its newest alert, if it has one.
    pub last_alert: Option<LastAlert>,
}

/// A new alert on the board.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BoardAlert {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// Whether it has been announced.
    pub announced: bool,
}

/// Counts over a whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Ticks read (valid or not).
    pub ticks: u64,
    /// New alerts raised and stored.
    pub alerts: u64,
    /// Stale ticks.
    pub stale: u64,
    /// Ticks whose processing failed.
    pub failed: u64,
    /// Rejected ticks by reason code (`price.invalid`, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Distinct symbols not followed because the board is full (exact up to
    /// [`UNTRACKED_COUNTED_MAX`]).
    pub untracked: u64,
}

/// What changed since the last flush.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoardFlush {
    /// The symbols that had ticks or alerts, as they stand now.
    pub symbols: Vec<SymbolView>,
    /// New alerts, oldest first (the newest [`BOARD_ALERTS_MAX`]).
    pub alerts: Vec<BoardAlert>,
    /// New alerts left out because more than [`BOARD_ALERTS_MAX`] came.
    pub alerts_skipped: u64,
    /// The run's counts so far.
    pub totals: Totals,
}

impl BoardFlush {
    /// Whether there is nothing new to hand over.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty() && self.alerts.is_empty() && self.alerts_skipped == 0
    }
}

#[derive(Debug)]
struct Followed {
    price: f64,
    timestamp: Timestamp,
    ticks: u64,
    points: VecDeque<(i64, f64)>,
    last_alert: Option<LastAlert>,
    dirty: bool,
}

/// A run's board; see the module documentation.
#[derive(Debug, Default)]
pub struct Board {
    symbols: HashMap<Symbol, Followed>,
    untracked: HashSet<Symbol>,
    dirty: Vec<Symbol>,
    alerts: VecDeque<BoardAlert>,
    alerts_skipped: u64,
    totals: Totals,
    changed: bool,
}

impl Board {
    /// An empty board.
    pub fn new() -> Board {
        Board::default()
    }

    /// Follows a batch's valid ticks, in arrival order.
    pub fn observe<'a>(&mut self, ticks: impl IntoIterator<Item = &'a Tick>) {
        for tick in ticks {
            self.changed = true;
            self.observe_tick(tick);
        }
    }

    fn observe_tick(&mut self, tick: &Tick) {
        let len = self.symbols.len();
        let followed = match self.symbols.entry(tick.symbol) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                if len >= BOARD_SYMBOLS_MAX {
                    if self.untracked.len() < UNTRACKED_COUNTED_MAX
                        && self.untracked.insert(tick.symbol)
                    {
                        self.totals.untracked += 1;
                        self.changed = true;
                    }
                    return;
                }
                entry.insert(Followed {
                    price: tick.price.get(),
                    timestamp: tick.at,
                    ticks: 0,
                    points: VecDeque::with_capacity(BOARD_POINTS_MAX),
                    last_alert: None,
                    dirty: false,
                })
            }
        };
        followed.ticks += 1;
        // Only in-order ticks move the price: a late tick is history, not the market now.
        if tick.at > followed.timestamp || followed.points.is_empty() {
            followed.price = tick.price.get();
            followed.timestamp = tick.at;
            if followed.points.len() == BOARD_POINTS_MAX {
                followed.points.pop_front();
            }
            followed
                .points
                .push_back((tick.at.epoch_ms(), tick.price.get()));
        }
        if !followed.dirty {
            followed.dirty = true;
            self.dirty.push(tick.symbol);
        }
    }

    /// Counts a batch's outcomes (one per message, rejected ones included) and takes its new
    /// alerts.
    pub fn record<Id>(&mut self, outcomes: &[(Id, Outcome)]) {
        self.changed |= !outcomes.is_empty();
        for (_, outcome) in outcomes {
            self.totals.ticks += 1;
            match outcome {
                Outcome::Accepted(Accepted::Stale) => self.totals.stale += 1,
                Outcome::Accepted(Accepted::Alerts(alerts)) => {
                    for alert in alerts {
                        if let AlertOutcome::New(alert) = alert {
                            self.add_alert(alert);
                        }
                    }
                }
                Outcome::Accepted(Accepted::Quiet | Accepted::Rearmed) => {}
                Outcome::Rejected(error) => {
                    *self
                        .totals
                        .rejected
                        .entry(error.code().to_owned())
                        .or_default() += 1;
                }
                Outcome::Failed(_) => self.totals.failed += 1,
            }
        }
    }

    fn add_alert(&mut self, alert: &Alert) {
        self.totals.alerts += 1;
        if let Some(followed) = self.symbols.get_mut(&alert.symbol) {
            let newer = followed
                .last_alert
                .as_ref()
                .is_none_or(|last| alert.timestamp >= last.timestamp);
            if newer {
                followed.last_alert = Some(LastAlert {
                    timestamp: alert.timestamp,
                    processed_at: alert.processed_at,
                    kind: alert.kind,
                    rule_id: alert.rule_id,
                });
                if !followed.dirty {
                    followed.dirty = true;
                    self.dirty.push(alert.symbol);
                }
            }
        }
        if self.alerts.len() == BOARD_ALERTS_MAX {
            self.alerts.pop_front();
            self.alerts_skipped += 1;
        }
        self.alerts.push_back(BoardAlert {
            alert: *alert,
            announced: true,
        });
    }

    /// Whether anything happened since the last flush.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// How many milliseconds until the changes are due to be handed over, `since_ms` after the
    /// last flush (0: now); `None` when nothing changed. `live`: the last batch ended with what had
    /// arrived (a live feed), so changes go sooner.
    pub fn flush_due_in_ms(&self, since_ms: u64, live: bool) -> Option<u64> {
        let interval_ms = if live {
            BOARD_FLUSH_LIVE_MS
        } else {
            BOARD_FLUSH_INTERVAL_MS
        };
        self.changed.then(|| interval_ms.saturating_sub(since_ms))
    }

    /// What changed since the last flush; the board then starts a new one.
    pub fn take_flush(&mut self) -> BoardFlush {
        let symbols = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|symbol| {
                let followed = self.symbols.get_mut(&symbol)?;
                followed.dirty = false;
                Some(SymbolView {
                    symbol,
                    price: followed.price,
                    timestamp: followed.timestamp,
                    ticks: followed.ticks,
                    points: followed.points.iter().copied().collect(),
                    last_alert: followed.last_alert.clone(),
                })
            })
            .collect();
        self.changed = false;
        BoardFlush {
            symbols,
            alerts: std::mem::take(&mut self.alerts).into(),
            alerts_skipped: std::mem::take(&mut self.alerts_skipped),
            totals: self.totals.clone(),
        }
    }
}

/// A level rule's threshold, as a chart draws it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Level {
    /// The rule.
    pub rule_id: RuleId,
    /// Its condition (`above 150`).
    #[serde(with = "crate::rules::as_text")]
    pub condition: Condition,
    /// The threshold.
    pub level: f64,
    /// High for `above`, low for `below`.
    pub kind: AlertKind,
    /// Whether the rule is paused.
    pub paused: bool,
}

/// The level rules (`above X`, `below X`) of `book` that apply to `symbol`, in book order.
/// Window conditions have no fixed level and are left out.
pub fn levels(book: &RuleBook, symbol: &Symbol) -> Vec<Level> {
    book.rules()
        .iter()
        .filter(|rule| rule.applies_to(symbol))
        .filter_map(|rule| {
            let condition = rule.condition();
            Some(Level {
                rule_id: rule.id(),
                level: condition.threshold()?,
                kind: condition.kind(),
                condition,
                paused: rule.paused(),
            })
        })
        .collect()
}

/// Where a price stands against a symbol's level rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// It satisfies an `above` rule (and no `below` rule).
    Above,
    /// It satisfies a `below` rule (and no `above` rule).
    Below,
    /// It satisfies none, or rules of both kinds.
    Inside,
}

/// The zone of `price` against `levels` (paused rules included: pausing silences a rule, it does
/// not move the market), and the rules it satisfies.
pub fn zone(levels: &[Level], price: f64) -> (Zone, Vec<RuleId>) {
    let satisfied: Vec<&Level> = levels
        .iter()
        .filter(|level| match level.condition {
            Condition::Above(x) => price > x,
            Condition::Below(x) => price < x,
            Condition::Window(_) => false,
        })
        .collect();
    let high = satisfied.iter().any(|l| l.kind == AlertKind::High);
    let low = satisfied.iter().any(|l| l.kind == AlertKind::Low);
    let zone = match (high, low) {
        (true, false) => Zone::Above,
        (false, true) => Zone::Below,
        _ => Zone::Inside,
    };
    (zone, satisfied.iter().map(|l| l.rule_id).collect())
}

#[cfg(test)]
mod tests;
