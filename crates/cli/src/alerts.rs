//! `tickwatch alerts`: what is stored, as a table for people or JSON lines for programs.

use std::io::{self, Write};

use anyhow::Context as _;
use tickwatch_core::{AlertKind, Symbol};
use tickwatch_local::{AlertQuery, SqliteStore};

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
    };
    let store = SqliteStore::open(&args.db)
        .with_context(|| format!("opening database {}", args.db.display()))?;
    let found = store.query(&query)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        OutputFormat::Json => {
            for stored in &found {
                let mut value = serde_json::to_value(stored.alert)?;
                value["notified"] = stored.notified.into();
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out)?;
            }
        }
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<24}  {:<12}  {:<4}  {:>12}  {:>10}  {:<5}  {:<8}  ALERT_ID",
                "TIMESTAMP", "SYMBOL", "KIND", "PRICE", "THRESHOLD", "MODE", "NOTIFIED"
            )?;
            for stored in &found {
                let a = stored.alert;
                writeln!(
                    out,
                    "{:<24}  {:<12}  {:<4}  {:>12}  {:>10}  {:<5}  {:<8}  {}",
                    a.timestamp.to_string(),
                    a.symbol.as_str(),
                    a.kind.as_str(),
                    a.price.to_string(),
                    a.threshold,
                    a.mode.as_str(),
                    if stored.notified { "yes" } else { "no" },
                    a.alert_id
                )?;
            }
        }
    }
    out.flush()?;
    Ok(Completion::Clean)
}
