//! What several subcommands share: the rules in force and the local retry policy.

use std::path::Path;

use anyhow::Context as _;
use tickwatch_clock::SystemClock;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT};
use tickwatch_core::{Mode, Rule, RuleSet, Timestamp};
use tickwatch_core::{Pipeline, PipelineConfig};
use tickwatch_local::{Destination, LocalNotifier, SqliteStore};

/// The local mode's pipeline: the SQLite store, a local notifier, the system clock.
pub(crate) type LocalPipeline = Pipeline<SqliteStore, LocalNotifier, SystemClock>;

use crate::args::ModeArg;

/// Attempts per port call in the local mode (the first included).
const RETRY_ATTEMPTS_MAX: u32 = 4;
/// First backoff ceiling.
const RETRY_BACKOFF_MS_BASE: u64 = 100;
/// Largest backoff ceiling.
const RETRY_BACKOFF_MS_MAX: u64 = 2_000;

/// The spec's thresholds in `mode`, overlaid with the rules file if one is given.
pub(crate) fn rules(path: Option<&Path>, mode: ModeArg) -> anyhow::Result<RuleSet> {
    let mode = match mode {
        ModeArg::Cross => Mode::Cross,
        ModeArg::Level => Mode::Level,
    };
    let base = Rule::new(HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT, 0.0, mode)?;
    let Some(path) = path else {
        return Ok(RuleSet::uniform(base));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading rules file {}", path.display()))?;
    RuleSet::from_toml(base, &text).with_context(|| format!("rules file {}", path.display()))
}

/// How the local mode retries a port call that failed transiently.
pub(crate) fn retry_policy() -> RetryPolicy {
    RetryPolicy::new(
        RETRY_ATTEMPTS_MAX,
        RETRY_BACKOFF_MS_BASE,
        RETRY_BACKOFF_MS_MAX,
    )
    .expect("the local retry constants form a valid policy")
}

/// A seed for backoff jitter; any value works, a varying one spreads processes apart.
pub(crate) fn jitter_seed() -> u64 {
    u64::from(std::process::id())
}

/// Parses a time argument: RFC 3339 or epoch milliseconds.
pub(crate) fn parse_time(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    let parsed = match text.parse::<i64>() {
        Ok(ms) => Timestamp::from_epoch_ms(ms),
        Err(_) => Timestamp::parse_rfc3339(text),
    };
    parsed.with_context(|| format!("{flag} {text:?}"))
}

/// Opens the database and the notifier and builds the local pipeline over them.
pub(crate) fn local_pipeline(
    db: &Path,
    notify: &Destination,
    rules: RuleSet,
) -> anyhow::Result<LocalPipeline> {
    let store =
        SqliteStore::open(db).with_context(|| format!("opening database {}", db.display()))?;
    let notifier = LocalNotifier::open(notify).with_context(|| format!("opening {notify}"))?;
    Ok(Pipeline::new(
        PipelineConfig {
            rules,
            retry: retry_policy(),
            jitter_seed: jitter_seed(),
        },
        store,
        notifier,
        SystemClock,
    ))
}
