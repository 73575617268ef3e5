//! `tickwatch notify`: announces stored alerts that no run managed to announce (a webhook that
//! was down, say), oldest first, then marks them.
//!
//! It holds the database's [`AnnounceLock`] throughout, as `tickwatch run` does: a notify started
//! while another process announces from the same database fails at once rather than announcing
//! the same pending alerts a second time.

use anyhow::Context as _;
use tickwatch_core::Alert;
use tickwatch_local::sqlite::QUERY_LIMIT_MAX;
use tickwatch_local::{AlertQuery, AnnounceLock};

use crate::Completion;
use crate::args::NotifyArgs;
use crate::config;

/// Alerts announced per round (one store query and one publish call each).
const NOTIFY_BATCH_MAX: u32 = 1_000;

pub(crate) fn notify(args: NotifyArgs) -> anyhow::Result<Completion> {
    if !args.db.exists() {
        anyhow::bail!("no database at {} (pass --db)", args.db.display());
    }
    // Held until the function returns, after the last announcement and the notifier's flush.
    let _announcing = AnnounceLock::acquire(&args.db)?;
    // The rules play no part in announcing what is already stored.
    let pipeline = config::local_pipeline(
        &args.db,
        &args.notify,
        std::sync::Arc::new(tickwatch_core::RuleBook::defaults()),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut announced, mut failed) = (0u64, 0u64);
    let mut skip = std::collections::HashSet::new();
    loop {
        let pending = pipeline.store().query(&AlertQuery {
            pending_only: true,
            limit: (NOTIFY_BATCH_MAX + skip.len() as u32).min(QUERY_LIMIT_MAX),
            ..AlertQuery::default()
        })?;
        // Alerts that failed in this invocation are not retried again by it.
        let round: Vec<Alert> = pending
            .iter()
            .map(|s| s.alert)
            .filter(|a| !skip.contains(&a.alert_id))
            .take(NOTIFY_BATCH_MAX as usize)
            .collect();
        if round.is_empty() {
            break;
        }
        for (alert, result) in round
            .iter()
            .zip(runtime.block_on(pipeline.announce_stored(&round, None)))
        {
            match result {
                Ok(()) => announced += 1,
                Err(failure) => {
                    failed += 1;
                    skip.insert(alert.alert_id);
                    eprintln!(
                        "alert {} ({} {} at {}): {failure}",
                        alert.alert_id, alert.symbol, alert.kind, alert.timestamp
                    );
                }
            }
        }
    }
    pipeline
        .notifier()
        .close()
        .context("flushing announced alerts")?;
    eprintln!("tickwatch notify: {announced} announced, {failed} still pending");
    Ok(if failed > 0 {
        Completion::Unannounced
    } else {
        Completion::Clean
    })
}
