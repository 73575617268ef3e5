//! What several subcommands share: the rules in force (the local mode's, and the worker's from
//! the function's variables) and the local retry policy.

use std::path::Path;

use anyhow::Context as _;
use std::sync::Arc;
use tickwatch_aws::RuleSettings;
use tickwatch_aws::deploy::{optional, variables};
use tickwatch_clock::SystemClock;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT};

use tickwatch_core::{Band, BandSet, Mode, RuleBook, Timestamp};
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

/// The rules `run` is told to use instead of the database's: the spec's thresholds in `mode`,
/// overlaid with the rules file if one is given, translated into rules. `None` when neither is
/// given: then the database's rules are in force (the defaults until some are written).
pub(crate) fn static_rules(
    path: Option<&Path>,
    mode: Option<ModeArg>,
) -> anyhow::Result<Option<Arc<RuleBook>>> {
    if path.is_none() && mode.is_none() {
        return Ok(None);
    }
    let base = Band::new(
        HIGH_THRESHOLD_DEFAULT,
        LOW_THRESHOLD_DEFAULT,
        0.0,
        mode_of(mode.unwrap_or(ModeArg::Cross)),
    )?;
    let bands = match path {
        None => BandSet::uniform(base),
        Some(path) => {
            let text = read_rules_file(path)?;
            BandSet::from_toml(base, &text)
                .with_context(|| format!("rules file {}", path.display()))?
        }
    };
    Ok(Some(Arc::new(RuleBook::try_from(&bands)?)))
}

/// The worker's rules: the Lambda function's rule variables (`HIGH_THRESHOLD`, `LOW_THRESHOLD`,
/// `ALERT_MODE`, `HYSTERESIS`, `RULES`, `RULES_TABLE`, `RULES_REFRESH_SECONDS`) read through
/// `lookup` by the function's own reader, so the same environment gives the same rules. Flags
/// override the environment: `mode` takes the place of `ALERT_MODE`, and a rules file (TOML, read
/// over the variables' default band) the place of `RULES`.
pub(crate) fn worker_rules(
    path: Option<&Path>,
    mode: Option<ModeArg>,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<RuleSettings> {
    let ignored_rules = path.is_some() && optional(&lookup, variables::RULES).is_some();
    let variable = |name: &str| match name {
        variables::ALERT_MODE if mode.is_some() => mode.map(|m| mode_of(m).as_str().to_owned()),
        variables::RULES if path.is_some() => None,
        _ => lookup(name),
    };
    let settings = RuleSettings::from_variables(variable)?;
    let Some(path) = path else {
        return Ok(settings);
    };
    if ignored_rules {
        tracing::warn!(
            rules_file = %path.display(),
            "RULES is set but --rules takes its place; RULES is ignored."
        );
    }
    let text = read_rules_file(path)?;
    settings
        .with_rules_file(&text)
        .with_context(|| format!("rules file {}", path.display()))
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
    rules: Arc<RuleBook>,
) -> anyhow::Result<LocalPipeline> {
    // The storing thread never stops to copy the WAL back, and the close finds little left.
    let store = SqliteStore::open(db)
        .and_then(SqliteStore::checkpoint_in_background)
        .with_context(|| format!("opening database {}", db.display()))?;
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
    )
    // The store holds every symbol's state in memory: a read ahead is a lookup.
    .with_state_cache(0))
}

/// The flat outputs keys `rules --outputs` reads.
#[derive(serde::Deserialize)]
struct RulesOutputs {
    rules_table_name: String,
    aws_region: Option<String>,
}

/// A deployment's rules table (`--table NAME`, or the `rules_table_name` and `aws_region` of a
/// flat outputs file) and its base rules: what the function's rule variables say, read from this
/// process's environment as the function reads them (the defaults when none is set).
pub(crate) async fn aws_rule_store(
    table: Option<&str>,
    outputs: Option<&Path>,
) -> anyhow::Result<(tickwatch_aws::DynamoRuleStore, Vec<tickwatch_core::Rule>)> {
    let (table, region) = match (table, outputs) {
        (Some(table), _) => (table.to_owned(), None),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading outputs {}", path.display()))?;
            let outputs: RulesOutputs = serde_json::from_str(&text)
                .with_context(|| format!("outputs {}: rules_table_name", path.display()))?;
            (outputs.rules_table_name, outputs.aws_region)
        }
        (None, None) => anyhow::bail!("--table NAME or --outputs FILE names the rules table"),
    };
    let settings = RuleSettings::from_variables(|name| std::env::var(name).ok())?;
    let base = settings
        .base_rules()
        .rules()
        .iter()
        .map(|rule| (**rule).clone())
        .collect();
    let sdk = tickwatch_aws::config::load_sdk_config_in(region.as_deref()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    Ok((tickwatch_aws::DynamoRuleStore::new(client, table), base))
}
