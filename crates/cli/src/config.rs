//! What several subcommands share: the rules in force (the local mode's, and the worker's from
//! the function's variables) and the local retry policy.

use std::path::Path;

use anyhow::Context as _;
use tickwatch_aws::RuleSettings;
use tickwatch_aws::deploy::{optional, variables};
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

/// The spec's thresholds in `mode`, overlaid with the rules file if one is given (the local mode).
pub(crate) fn rules(path: Option<&Path>, mode: ModeArg) -> anyhow::Result<RuleSet> {
    let base = Rule::new(
        HIGH_THRESHOLD_DEFAULT,
        LOW_THRESHOLD_DEFAULT,
        0.0,
        mode_of(mode),
    )?;
    let Some(path) = path else {
        return Ok(RuleSet::uniform(base));
    };
    let text = read_rules_file(path)?;
    RuleSet::from_toml(base, &text).with_context(|| format!("rules file {}", path.display()))
}

/// The worker's rules: the Lambda function's rule variables (`HIGH_THRESHOLD`, `LOW_THRESHOLD`,
/// `ALERT_MODE`, `HYSTERESIS`, `RULES`) read through `lookup` by the function's own reader, so
/// the same environment gives the same rules. Flags override the environment: `mode` takes the
/// place of `ALERT_MODE`, and a rules file (TOML, read over the variables' default rule) the place
/// of `RULES`.
pub(crate) fn worker_rules(
    path: Option<&Path>,
    mode: Option<ModeArg>,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<RuleSet> {
    let ignored_rules = path.is_some() && optional(&lookup, variables::RULES).is_some();
    let variable = |name: &str| match name {
        variables::ALERT_MODE if mode.is_some() => mode.map(|m| mode_of(m).as_str().to_owned()),
        variables::RULES if path.is_some() => None,
        _ => lookup(name),
    };
    let settings = RuleSettings::from_variables(variable)?;
    let Some(path) = path else {
        return Ok(settings.into_rules());
    };
    if ignored_rules {
        tracing::warn!(
            rules_file = %path.display(),
            "RULES is set but --rules takes its place; RULES is ignored."
        );
    }
    let text = read_rules_file(path)?;
    Ok(settings
        .with_rules_file(&text)
        .with_context(|| format!("rules file {}", path.display()))?
        .into_rules())
}

fn mode_of(mode: ModeArg) -> Mode {
    match mode {
        ModeArg::Cross => Mode::Cross,
        ModeArg::Level => Mode::Level,
    }
}

fn read_rules_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading rules file {}", path.display()))
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
