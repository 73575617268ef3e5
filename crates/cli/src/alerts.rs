//! `tickwatch alerts`: what is stored, as a table for people or JSON lines for programs.
//!
//! Newest first (by tick time, then alert id), so `--limit N` shows the N most recent alerts.
//! Rows are written as the database hands them over, never collected: listing a million alerts
//! takes no more memory than listing ten. Output cut short by its reader (`| head`) ends the
//! listing quietly.

use std::io::{self, Write};

use anyhow::Context as _;
use tickwatch_core::ports::StoredAlert;
use tickwatch_core::{AlertKind, Symbol};
use tickwatch_local::sqlite::SqliteError;
use tickwatch_local::{AlertQuery, Order, SqliteStore};

use crate::Completion;
use crate::args::{AlertsArgs, KindArg, OutputFormat};
use crate::config::parse_time;

pub(crate) fn alerts(args: AlertsArgs) -> anyhow::Result<Completion> {
    if !args.db.exists() {
        anyhow::bail!(
            "no database at {} (run `tickwatch run` first, or pass --db)",
            args.db.display()
        );
    }
    let query = AlertQuery {
        symbol: args
            .symbol
            .as_deref()
            .map(Symbol::parse)
            .transpose()
            .context("--symbol")?,
        rule: args
            .rule
            .as_deref()
            .map(tickwatch_core::RuleId::parse)
            .transpose()
            .context("--rule")?,
        kind: args.kind.map(|kind| match kind {
            KindArg::High => AlertKind::High,
            KindArg::Low => AlertKind::Low,
        }),
        since: args
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time("--until", t))
            .transpose()?,
        pending_only: args.pending,
        limit: args.limit,
        order: Order::NewestFirst,
    };
    let store = SqliteStore::open_for_listing(&args.db)
        .with_context(|| format!("opening database {}", args.db.display()))?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let listed = list(&store, &query, args.format, &mut out).and_then(|()| {
        out.flush()?;
        Ok(())
    });
    match listed {
        Err(ListError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(ListError::Output(e)) => return Err(e).context("writing alerts"),
        Err(ListError::Store(e)) => return Err(e).context("reading alerts"),
        Ok(()) => {}
    }
    Ok(Completion::Clean)
}

/// Why listing stopped early.
#[derive(Debug)]
enum ListError {
    Store(SqliteError),
    Output(io::Error),
}

impl From<SqliteError> for ListError {
    fn from(error: SqliteError) -> ListError {
        ListError::Store(error)
    }
}

impl From<io::Error> for ListError {
    fn from(error: io::Error) -> ListError {
        ListError::Output(error)
    }
}

fn list(
    store: &SqliteStore,
    query: &AlertQuery,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), ListError> {
    match format {
        OutputFormat::Json => store.query_each(query, |stored: StoredAlert| {
            let mut value = serde_json::to_value(stored.alert).map_err(io::Error::from)?;
            value["notified"] = stored.notified.into();
            serde_json::to_writer(&mut *out, &value).map_err(io::Error::from)?;
            writeln!(out)?;
            Ok(())
        }),
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<24}  {:<12}  {:<16}  {:<22}  {:<4}  {:>12}  {:>10}  {:<8}  ALERT_ID",
                "TIMESTAMP",
                "SYMBOL",
                "RULE",
                "CONDITION",
                "KIND",
                "PRICE",
                "THRESHOLD",
                "NOTIFIED"
            )?;
            store.query_each(query, |stored: StoredAlert| {
                let a = stored.alert;
                writeln!(
                    out,
                    "{:<24}  {:<12}  {:<16}  {:<22}  {:<4}  {:>12}  {:>10}  {:<8}  {}",
                    a.timestamp.to_string(),
                    a.symbol.as_str(),
                    a.rule_id.as_str(),
                    a.condition.to_string(),
                    a.kind.as_str(),
                    a.price.to_string(),
                    a.threshold,
                    if stored.notified { "yes" } else { "no" },
                    a.alert_id
                )?;
                Ok(())
            })
        }
    }
}
