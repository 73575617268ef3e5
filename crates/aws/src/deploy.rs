//! The deployment wiring the Lambda function and the SQS worker share: which AWS resources to use
//! ([`Resources`]), which alert rules apply ([`RuleSettings`]), and [`Deployment::connect`], which
//! builds the adapters and the pipeline over them and checks every resource before the first
//! message.
//!
//! Both binaries go through this one path, so the same settings give the same answers whichever
//! of them consumes the queue. Their real differences are parameters ([`StartupPolicy`]): whether
//! a resource check that failed transiently stops the start, and the pipeline's retry policy and
//! jitter seed. Deadlines are per batch and belong to the callers (the invocation deadline for the
//! function, the visibility timeout for the worker).
//!
//! Settings are read from *variables*, through a lookup the binary hands in (the process
//! environment; a map in tests). This module never reads the environment itself.
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `ALERTS_TABLE_NAME` | DynamoDB alerts table | required |
//! | `STATE_TABLE_NAME` | DynamoDB state table (cross mode) | required |
//! | `ALERTS_TOPIC_ARN` | SNS topic for alerts | required |
//! | `DEAD_LETTER_QUEUE_URL` | SQS queue for rejected ticks | required |
//! | `HIGH_THRESHOLD` | prices above it alert `HIGH` | 150 |
//! | `LOW_THRESHOLD` | prices below it alert `LOW` | 50 |
//! | `ALERT_MODE` | `cross` (alert on entering a zone) or `level` (every tick beyond) | `cross` |
//! | `HYSTERESIS` | cross mode: how far back inside the band re-arms | 0 |
//! | `RULES` | JSON per-symbol overrides, `{"AAPL": {"high": 200}}` | none |
//! | `RULES_TABLE` | DynamoDB rules table ([`crate::dynamo::rules`]) | none |
//! | `RULES_REFRESH_SECONDS` | with `RULES_TABLE`: seconds between two checks of the table, 1 to 3600 | 10 |
//!
//! The threshold variables are the legacy configuration, one band per symbol; they are translated
//! into rules (`high`, `low`, `high.SYMBOL`, `low.SYMBOL`: see `tickwatch_core::rules::BandSet`)
//! and are the *base* rules. Without `RULES_TABLE` the base rules are the rules, exactly as
//! before rules tables existed. With it, the table's rules are in force once the table has been
//! written (`tickwatch rules ... --table NAME` seeds it with the base rules on its first change),
//! the base rules until then; a running pipeline picks up changes through
//! [`crate::refresh::RulesRefresher`].
//!
//! An optional variable set to the empty string (or blanks) counts as unset: deployment tools
//! often write empty values rather than leaving a variable out. Every error names its variable.

use std::sync::Arc;

use tickwatch_core::ports::{Classify, Clock, ErrorClass};
use tickwatch_core::retry::{RetryPolicy, Rng};
use tickwatch_core::rules::{
    Band, BandSet, HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT, RuleBook, RulesError,
};
use tickwatch_core::{Mode, Pipeline, PipelineConfig};

use crate::config::AwsClients;
use crate::dead_letter::SqsDeadLetterQueue;
use crate::dynamo::{DynamoRuleStore, DynamoStore};
use crate::error::AwsError;
use crate::refresh::{
    LoadError, REFRESH_SECONDS_DEFAULT, REFRESH_SECONDS_MAX, REFRESH_SECONDS_MIN, RulesRefresher,
};
use crate::sns::SnsNotifier;

/// The names of the variables read here.
pub mod variables {
    /// The DynamoDB alerts table.
    pub const ALERTS_TABLE_NAME: &str = "ALERTS_TABLE_NAME";
    /// The DynamoDB state table.
    pub const STATE_TABLE_NAME: &str = "STATE_TABLE_NAME";
    /// The SNS topic of alerts.
    pub const ALERTS_TOPIC_ARN: &str = "ALERTS_TOPIC_ARN";
    /// The dead-letter queue of rejected ticks.
    pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
    /// The default high threshold.
    pub const HIGH_THRESHOLD: &str = "HIGH_THRESHOLD";
    /// The default low threshold.
    pub const LOW_THRESHOLD: &str = "LOW_THRESHOLD";
    /// The default mode, `cross` or `level`.
    pub const ALERT_MODE: &str = "ALERT_MODE";
    /// The default hysteresis (cross mode).
    pub const HYSTERESIS: &str = "HYSTERESIS";
    /// JSON per-symbol overrides.
    pub const RULES: &str = "RULES";
    /// The DynamoDB rules table (optional).
    pub const RULES_TABLE: &str = "RULES_TABLE";
    /// Seconds between two checks of the rules table.
    pub const RULES_REFRESH_SECONDS: &str = "RULES_REFRESH_SECONDS";
    /// The tick queue (the worker's and the operator tools'; the function is fed by its event
    /// source mapping and never names it).
    pub const TICKS_QUEUE_URL: &str = "TICKS_QUEUE_URL";
}

use variables::*;

/// Shortest DynamoDB table name.
pub const TABLE_NAME_LEN_MIN: usize = 3;
/// Longest DynamoDB table name.
pub const TABLE_NAME_LEN_MAX: usize = 255;
/// The hysteresis when `HYSTERESIS` is unset: re-arm as soon as the price is back in the band.
pub const HYSTERESIS_DEFAULT: f64 = 0.0;

/// A variable that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct SettingError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong, and what is expected.
    pub reason: String,
}

impl SettingError {
    /// An error about `variable`.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> SettingError {
        SettingError {
            variable,
            reason: reason.into(),
        }
    }
}

/// The value of an optional variable: `None` when unset, empty or blank.
pub fn optional(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

fn required(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, SettingError> {
    optional(lookup, name).ok_or_else(|| SettingError::new(name, "is required but not set"))
}

/// The AWS resources a deployment's pipeline uses, validated: table names DynamoDB accepts, an SNS
/// topic ARN, an SQS queue URL. The tick queue is not among them: the function is fed by its event
/// source mapping and never names it; the worker checks its own with [`queue_url`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    alerts_table: String,
    state_table: String,
    topic_arn: String,
    dead_letter_queue_url: String,
}

impl Resources {
    /// Validates explicit names (surrounding blanks are trimmed). Errors name the variable each
    /// value stands for.
    pub fn new(
        alerts_table: &str,
        state_table: &str,
        topic_arn: &str,
        dead_letter_queue_url: &str,
    ) -> Result<Resources, SettingError> {
        Ok(Resources {
            alerts_table: table_name(ALERTS_TABLE_NAME, alerts_table)?,
            state_table: table_name(STATE_TABLE_NAME, state_table)?,
            topic_arn: topic_arn_of(ALERTS_TOPIC_ARN, topic_arn)?,
            dead_letter_queue_url: queue_url(DEAD_LETTER_QUEUE_URL, dead_letter_queue_url)?,
        })
    }

    /// Reads `ALERTS_TABLE_NAME`, `STATE_TABLE_NAME`, `ALERTS_TOPIC_ARN` and
    /// `DEAD_LETTER_QUEUE_URL` through `lookup`; all are required.
    pub fn from_variables(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Resources, SettingError> {
        Resources::new(
            &required(&lookup, ALERTS_TABLE_NAME)?,
            &required(&lookup, STATE_TABLE_NAME)?,
            &required(&lookup, ALERTS_TOPIC_ARN)?,
            &required(&lookup, DEAD_LETTER_QUEUE_URL)?,
        )
    }

    /// The alerts table.
    pub fn alerts_table(&self) -> &str {
        &self.alerts_table
    }

    /// The state table.
    pub fn state_table(&self) -> &str {
        &self.state_table
    }

    /// The alerts topic.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// The dead-letter queue.
    pub fn dead_letter_queue_url(&self) -> &str {
        &self.dead_letter_queue_url
    }
}

fn table_name(variable: &'static str, name: &str) -> Result<String, SettingError> {
    let name = non_empty(variable, name)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !(TABLE_NAME_LEN_MIN..=TABLE_NAME_LEN_MAX).contains(&name.len())
        || !name.chars().all(allowed)
    {
        return Err(SettingError::new(
            variable,
            format!(
                "must be a DynamoDB table name ({TABLE_NAME_LEN_MIN}-{TABLE_NAME_LEN_MAX} characters of A-Z a-z 0-9 _ - .), got {name:?}"
            ),
        ));
    }
    Ok(name)
}

fn topic_arn_of(variable: &'static str, arn: &str) -> Result<String, SettingError> {
    let arn = non_empty(variable, arn)?;
    if !(arn.starts_with("arn:") && arn.contains(":sns:")) {
        return Err(SettingError::new(
            variable,
            format!("must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got {arn:?}"),
        ));
    }
    Ok(arn)
}

/// Validates an SQS queue URL (`https://...`, or `http://...` for emulators) standing for
/// `variable`; returns it trimmed.
pub fn queue_url(variable: &'static str, url: &str) -> Result<String, SettingError> {
    let url = non_empty(variable, url)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if !rest.is_some_and(|rest| rest.contains('/')) {
        return Err(SettingError::new(
            variable,
            format!("must be an SQS queue URL (https://HOST/ACCOUNT/NAME), got {url:?}"),
        ));
    }
    Ok(url)
}

fn non_empty(variable: &'static str, value: &str) -> Result<String, SettingError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SettingError::new(variable, "must not be empty"));
    }
    Ok(value.to_owned())
}

/// The rules table a deployment reads, and how often, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesTable {
    name: String,
    refresh_seconds: u32,
}

impl RulesTable {
    /// Validates a table name and a refresh interval (surrounding blanks are trimmed). Errors
    /// name the variable each value stands for.
    pub fn new(name: &str, refresh_seconds: u32) -> Result<RulesTable, SettingError> {
        if !(REFRESH_SECONDS_MIN..=REFRESH_SECONDS_MAX).contains(&refresh_seconds) {
            return Err(SettingError::new(
                RULES_REFRESH_SECONDS,
                format!(
                    "must be {REFRESH_SECONDS_MIN} to {REFRESH_SECONDS_MAX} seconds, got {refresh_seconds}"
                ),
            ));
        }
        Ok(RulesTable {
            name: table_name(RULES_TABLE, name)?,
            refresh_seconds,
        })
    }

    /// Reads `RULES_TABLE` and `RULES_REFRESH_SECONDS` through `lookup`: `None` without a table
    /// (then `RULES_REFRESH_SECONDS` is not read).
    pub fn from_variables(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RulesTable>, SettingError> {
        let Some(name) = optional(&lookup, RULES_TABLE) else {
            return Ok(None);
        };
        let refresh_seconds = match optional(&lookup, RULES_REFRESH_SECONDS) {
            None => REFRESH_SECONDS_DEFAULT,
            Some(text) => text.trim().parse::<u32>().map_err(|_| {
                SettingError::new(
                    RULES_REFRESH_SECONDS,
                    format!(
                        "must be a whole number of seconds, {REFRESH_SECONDS_MIN} to {REFRESH_SECONDS_MAX}, got {text:?}"
                    ),
                )
            })?,
        };
        RulesTable::new(&name, refresh_seconds).map(Some)
    }

    /// The table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds between two checks of the table.
    pub fn refresh_seconds(&self) -> u32 {
        self.refresh_seconds
    }
}

/// Where a deployment's rules come from, validated: the legacy band variables
/// (`HIGH_THRESHOLD`, `LOW_THRESHOLD`, `HYSTERESIS`, `ALERT_MODE` for the default band, `RULES`
/// for per-symbol bands), which make the base rules, and optionally a rules table
/// (`RULES_TABLE`, `RULES_REFRESH_SECONDS`).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSettings {
    base: Band,
    bands: BandSet,
    table: Option<RulesTable>,
}

impl RuleSettings {
    /// Reads the rule variables through `lookup`. Unset ones take the specification's defaults:
    /// 150, 50, hysteresis 0, cross, no overrides, no rules table.
    pub fn from_variables(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RuleSettings, SettingError> {
        let number = |name: &'static str, default: f64| -> Result<f64, SettingError> {
            match optional(&lookup, name) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        SettingError::new(name, format!("must be a finite number, got {text:?}"))
                    }),
            }
        };
        let high = number(HIGH_THRESHOLD, HIGH_THRESHOLD_DEFAULT)?;
        let low = number(LOW_THRESHOLD, LOW_THRESHOLD_DEFAULT)?;
        let hysteresis = number(HYSTERESIS, HYSTERESIS_DEFAULT)?;
        let mode = match optional(&lookup, ALERT_MODE).map(|m| m.trim().to_ascii_lowercase()) {
            None => Mode::Cross,
            Some(text) => text.parse::<Mode>().map_err(|_| {
                SettingError::new(
                    ALERT_MODE,
                    format!("must be \"cross\" or \"level\", got {text:?}"),
                )
            })?,
        };
        let base = Band::new(high, low, hysteresis, mode).map_err(band_error)?;
        let bands = match optional(&lookup, RULES) {
            None => BandSet::uniform(base),
            Some(text) => BandSet::from_json_overrides(base, RULES, &text)
                .map_err(|e| SettingError::new(RULES, e.to_string()))?,
        };
        // The bands must translate into a rule book (two symbols may not make the same rule id).
        RuleBook::try_from(&bands).map_err(|e| SettingError::new(RULES, e.to_string()))?;
        Ok(RuleSettings {
            base,
            bands,
            table: RulesTable::from_variables(&lookup)?,
        })
    }

    /// The default band (thresholds, hysteresis and mode), before per-symbol overrides.
    pub fn base(&self) -> &Band {
        &self.base
    }

    /// The bands: the default one and the per-symbol overrides.
    pub fn bands(&self) -> &BandSet {
        &self.bands
    }

    /// The base rules: the bands translated into rules.
    pub fn base_rules(&self) -> Arc<RuleBook> {
        Arc::new(
            RuleBook::try_from(&self.bands)
                .expect("the bands were checked to make a rule book when they were read"),
        )
    }

    /// The rules table, if the deployment has one.
    pub fn table(&self) -> Option<&RulesTable> {
        self.table.as_ref()
    }

    /// Replaces the `RULES` overrides by a TOML rules file (the worker's `--rules`), read over the
    /// same default band: its `[default]` table overlays the variables' thresholds and mode.
    pub fn with_rules_file(self, text: &str) -> Result<RuleSettings, RulesError> {
        let bands = BandSet::from_toml(self.base, text)?;
        RuleBook::try_from(&bands)?;
        Ok(RuleSettings { bands, ..self })
    }

    /// Replaces the rules table (a flag in place of `RULES_TABLE`; `None`: no table).
    pub fn with_table(self, table: Option<RulesTable>) -> RuleSettings {
        RuleSettings { table, ..self }
    }
}

/// Names the variable behind a band field (`Band::new` names `high`, `low` or `hysteresis`).
fn band_error(e: RulesError) -> SettingError {
    const VARIABLES: [(&str, &str); 2] = [("low", LOW_THRESHOLD), ("hysteresis", HYSTERESIS)];
    let variable = VARIABLES
        .iter()
        .find(|(field, _)| *field == e.location)
        .map_or(HIGH_THRESHOLD, |(_, variable)| variable);
    SettingError::new(variable, e.reason)
}

/// What a resource check that failed *transiently* (a timeout, throttling) does at start-up. A
/// permanent failure (no such resource, access denied) always stops the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientCheckFailure {
    /// Stop with the error: someone is watching the start and can try again.
    Stop,
    /// Log a warning and start anyway: each message's own retries and SQS redelivery cover it.
    Warn,
}

/// How one binary starts: what differs between the function and the worker. No `Default`: say
/// what you want.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartupPolicy {
    /// What a resource check that failed transiently does.
    pub transient_check_failure: TransientCheckFailure,
    /// How the pipeline retries port calls that failed transiently.
    pub retry: RetryPolicy,
    /// Seed of the retry jitter; a different one per process spreads concurrent retries.
    pub jitter_seed: u64,
}

/// Why a deployment cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A configured resource cannot be used.
    #[error("{variable}: {resource} cannot be used: {error}")]
    Resource {
        /// The variable that names it.
        variable: &'static str,
        /// The resource (`table alerts-dev`, ...).
        resource: String,
        /// What AWS said.
        error: Box<AwsError>,
    },
}

/// The adapters over a deployment's resources, and the pipeline over them.
pub struct Deployment<C> {
    /// The pipeline: the DynamoDB store, the SNS notifier, `C` as its clock.
    pub pipeline: Pipeline<DynamoStore, SnsNotifier, C>,
    /// The dead-letter queue of rejected ticks.
    pub dead_letters: SqsDeadLetterQueue,
    /// Keeps the pipeline's rules current with the rules table: call it before every batch
    /// ([`crate::refresh::RulesSource::before_batch`]). `None` without a rules table (the rules
    /// given at start stay; `None` is a [`crate::refresh::RulesSource`] that does nothing).
    pub rules: Option<RulesRefresher<DynamoRuleStore>>,
}

impl<C: Clock> Deployment<C> {
    /// Builds the adapters over `clients` (built once per process) and `resources`, checks every
    /// resource side by side (which also opens the connections, so the first message does not pay
    /// for the first handshakes), loads the rules in force (`rules`' base rules, or its rules
    /// table's), and builds the pipeline with them.
    ///
    /// The first load of a rules table must succeed whatever `policy` says about transient
    /// failures: without it the rules in force are unknown, and evaluating ticks under others
    /// would raise alerts nobody asked for (or miss ones they did). It is retried with
    /// `policy.retry`, then the start fails naming `RULES_TABLE`. Later refreshes never stop the
    /// pipeline. The table is only read (`GetItem`, `Scan`): the first read is its check.
    pub async fn connect(
        clients: &AwsClients,
        resources: &Resources,
        rules: &RuleSettings,
        policy: &StartupPolicy,
        clock: C,
    ) -> Result<Deployment<C>, ConnectError> {
        let store = DynamoStore::new(
            clients.dynamodb.clone(),
            resources.alerts_table(),
            resources.state_table(),
        );
        let notifier = SnsNotifier::new(clients.sns.clone(), resources.topic_arn());
        let dead_letters =
            SqsDeadLetterQueue::new(clients.sqs.clone(), resources.dead_letter_queue_url());
        let base = rules.base_rules();
        let refresher = rules.table().map(|table| {
            RulesRefresher::new(
                DynamoRuleStore::new(clients.dynamodb.clone(), table.name()),
                base.clone(),
                table.refresh_seconds(),
            )
        });
        let checks = check_resources(resources, policy, &store, &notifier, &dead_letters);
        let first_load = async {
            match &refresher {
                Some(refresher) => load_rules(refresher, policy, &clock).await.map(Some),
                None => Ok(None),
            }
        };
        let (checked, loaded) = futures_util::join!(checks, first_load);
        checked?;
        let in_force = loaded?.unwrap_or(base);
        let pipeline = Pipeline::new(
            PipelineConfig {
                rules: in_force,
                retry: policy.retry,
                jitter_seed: policy.jitter_seed,
            },
            store,
            notifier,
            clock,
        );
        Ok(Deployment {
            pipeline,
            dead_letters,
            rules: refresher,
        })
    }
}

/// The first load of the rules table, retried with `policy.retry` while it fails transiently.
async fn load_rules<C: Clock>(
    refresher: &RulesRefresher<DynamoRuleStore>,
    policy: &StartupPolicy,
    clock: &C,
) -> Result<Arc<RuleBook>, ConnectError> {
    let table = refresher.store().table();
    let resource = || format!("table {table}");
    let mut rng = Rng::seeded(policy.jitter_seed);
    let mut attempts_done = 0;
    loop {
        attempts_done += 1;
        let error = match refresher.load(clock.now()).await {
            Ok(book) => {
                tracing::info!(table, rules = book.rules().len(), "Rules loaded.");
                return Ok(book);
            }
            Err(LoadError::Store(error)) => error,
            // Too many rules: a limit, as permanent as a missing table.
            Err(LoadError::Rules(error)) => AwsError::Limit {
                operation: "Scan",
                reason: error.to_string(),
            },
        };
        let delay = (error.class() == ErrorClass::Transient)
            .then(|| {
                policy
                    .retry
                    .next_delay(attempts_done, clock.now(), None, &mut rng)
            })
            .flatten();
        match delay {
            Some(delay) => {
                tracing::warn!(table, %error, attempt = attempts_done, "Loading the rules failed; trying again.");
                clock.sleep(delay).await;
            }
            None => {
                return Err(ConnectError::Resource {
                    variable: RULES_TABLE,
                    resource: resource(),
                    error: Box::new(error),
                });
            }
        }
    }
}

/// Checks the tables, the topic and the dead-letter queue, side by side.
async fn check_resources(
    resources: &Resources,
    policy: &StartupPolicy,
    store: &DynamoStore,
    notifier: &SnsNotifier,
    dead_letters: &SqsDeadLetterQueue,
) -> Result<(), ConnectError> {
    let (alerts, state, topic, queue) = futures_util::join!(
        store.check_alerts_table(),
        store.check_state_table(),
        notifier.check_topic(),
        dead_letters.check_queue()
    );
    let checks = [
        (
            ALERTS_TABLE_NAME,
            format!("table {}", resources.alerts_table()),
            alerts,
        ),
        (
            STATE_TABLE_NAME,
            format!("table {}", resources.state_table()),
            state,
        ),
        (
            ALERTS_TOPIC_ARN,
            format!("topic {}", resources.topic_arn()),
            topic,
        ),
        (
            DEAD_LETTER_QUEUE_URL,
            format!("queue {}", resources.dead_letter_queue_url()),
            queue,
        ),
    ];
    for (variable, resource, result) in checks {
        match result {
            Ok(()) => tracing::debug!(variable, %resource, "Resource checked."),
            Err(error)
                if error.class() == ErrorClass::Transient
                    && policy.transient_check_failure == TransientCheckFailure::Warn =>
            {
                tracing::warn!(variable, %resource, %error, "Resource check failed transiently; starting anyway.");
            }
            Err(error) => {
                return Err(ConnectError::Resource {
                    variable,
                    resource,
                    error: Box::new(error),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwatch_core::Symbol;

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
    const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";

    fn lookup<'a>(
        vars: &'a HashMap<&'static str, &'static str>,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        |name| vars.get(name).map(|v| (*v).to_owned())
    }

    fn resources(
        changes: &[(&'static str, Option<&'static str>)],
    ) -> Result<Resources, SettingError> {
        let mut vars = HashMap::from([
            (ALERTS_TABLE_NAME, "alerts-dev"),
            (STATE_TABLE_NAME, "state-dev"),
            (ALERTS_TOPIC_ARN, TOPIC),
            (DEAD_LETTER_QUEUE_URL, DLQ),
        ]);
        for (name, value) in changes {
            match value {
                Some(value) => vars.insert(name, value),
                None => vars.remove(name),
            };
        }
        Resources::from_variables(lookup(&vars))
    }

    fn rules(vars: &[(&'static str, &'static str)]) -> Result<RuleSettings, SettingError> {
        let vars: HashMap<_, _> = vars.iter().copied().collect();
        RuleSettings::from_variables(lookup(&vars))
    }

    #[test]
    fn resources_from_variables_and_from_names_agree() {
        let read = resources(&[(ALERTS_TABLE_NAME, Some(" alerts-dev "))]).expect("valid");
        assert_eq!(read.alerts_table(), "alerts-dev");
        assert_eq!(read.state_table(), "state-dev");
        assert_eq!(read.topic_arn(), TOPIC);
        assert_eq!(read.dead_letter_queue_url(), DLQ);
        let named = Resources::new("alerts-dev", "state-dev", TOPIC, DLQ).expect("valid");
        assert_eq!(read, named);
    }

    #[test]
    fn bad_resources_name_their_variable() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (ALERTS_TABLE_NAME, None, "required"),
            (STATE_TABLE_NAME, Some("  "), "required"),
            (ALERTS_TOPIC_ARN, None, "required"),
            (DEAD_LETTER_QUEUE_URL, None, "required"),
            (ALERTS_TABLE_NAME, Some("a b"), "table name"),
            (STATE_TABLE_NAME, Some("ab"), "table name"),
            (ALERTS_TOPIC_ARN, Some("alerts"), "topic ARN"),
            (
                ALERTS_TOPIC_ARN,
                Some("arn:aws:sqs:us-east-1:1:q"),
                "topic ARN",
            ),
            (DEAD_LETTER_QUEUE_URL, Some("dlq"), "queue URL"),
            (DEAD_LETTER_QUEUE_URL, Some("https://"), "queue URL"),
        ];
        for (variable, value, fragment) in cases {
            let variable = *variable;
            let error = resources(&[(variable, *value)]).expect_err(variable);
            assert_eq!(error.variable, variable, "{error}");
            assert!(error.to_string().contains(fragment), "{error}");
        }
        // Explicit names are held to the same rules, and an empty one is refused.
        let error = Resources::new("", "state-dev", TOPIC, DLQ).expect_err("empty");
        assert_eq!(error.to_string(), "ALERTS_TABLE_NAME: must not be empty");
        let error = Resources::new("alerts-dev", "state-dev", TOPIC, "/q").expect_err("path");
        assert_eq!(error.variable, DEAD_LETTER_QUEUE_URL);
        assert!(queue_url("TICKS_QUEUE_URL", "http://localhost:5000/123/ticks").is_ok());
        assert!(queue_url("TICKS_QUEUE_URL", "ticks").is_err());
    }

    #[test]
    fn unset_rule_variables_give_the_specification() {
        let settings = rules(&[
            (HIGH_THRESHOLD, ""),
            (ALERT_MODE, " "),
            (RULES, ""),
            (RULES_TABLE, " "),
        ])
        .expect("ok");
        let band = settings.base();
        assert_eq!(
            (band.high(), band.low(), band.hysteresis(), band.mode()),
            (150.0, 50.0, 0.0, Mode::Cross)
        );
        assert!(settings.bands().overrides().is_empty());
        assert_eq!(settings.table(), None, "no rules table unless one is named");
        let ids: Vec<String> = settings
            .base_rules()
            .rules()
            .iter()
            .map(|rule| rule.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "high: * above 150, fire enter",
                "low: * below 50, fire enter"
            ]
        );
    }

    #[test]
    fn every_rule_variable_is_read() {
        let settings = rules(&[
            (HIGH_THRESHOLD, "200.5"),
            (LOW_THRESHOLD, " 20 "),
            (ALERT_MODE, "LEVEL"),
            (HYSTERESIS, "1.5"),
            (RULES, r#"{"AAPL": {"high": 300, "mode": "cross"}}"#),
            (RULES_TABLE, " rules-dev "),
            (RULES_REFRESH_SECONDS, " 30 "),
        ])
        .expect("valid");
        let band = settings.bands().default_band();
        assert_eq!(
            (band.high(), band.low(), band.hysteresis(), band.mode()),
            (200.5, 20.0, 1.5, Mode::Level)
        );
        let aapl = settings
            .bands()
            .band_for(&Symbol::parse("AAPL").expect("valid"));
        assert_eq!(
            (aapl.high(), aapl.low(), aapl.mode()),
            (300.0, 20.0, Mode::Cross)
        );
        let ids: Vec<String> = settings
            .base_rules()
            .rules()
            .iter()
            .map(|rule| rule.id().to_string())
            .collect();
        assert_eq!(ids, ["high", "low", "high.AAPL", "low.AAPL"]);
        assert_eq!(
            settings.table(),
            Some(&RulesTable::new("rules-dev", 30).expect("valid"))
        );
    }

    #[test]
    fn the_refresh_interval_defaults_and_is_bounded() {
        let table = |refresh: Option<&'static str>| {
            let mut vars = vec![(RULES_TABLE, "rules-dev")];
            vars.extend(refresh.map(|r| (RULES_REFRESH_SECONDS, r)));
            rules(&vars).map(|s| s.table().map(RulesTable::refresh_seconds))
        };
        assert_eq!(table(None), Ok(Some(REFRESH_SECONDS_DEFAULT)));
        assert_eq!(table(Some("")), Ok(Some(10)));
        assert_eq!(table(Some("1")), Ok(Some(1)));
        assert_eq!(table(Some("3600")), Ok(Some(3600)));
        // Without a table the interval is not read, so a bad one does not matter.
        assert_eq!(
            rules(&[(RULES_REFRESH_SECONDS, "soon")]).map(|s| s.table().cloned()),
            Ok(None)
        );
    }

    #[test]
    fn bad_rule_variables_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str, &str)] = &[
            (&[(HIGH_THRESHOLD, "abc")], HIGH_THRESHOLD, "finite number"),
            (&[(HIGH_THRESHOLD, "inf")], HIGH_THRESHOLD, "finite number"),
            (&[(HIGH_THRESHOLD, "-5")], HIGH_THRESHOLD, "negative"),
            (&[(HIGH_THRESHOLD, "1e13")], HIGH_THRESHOLD, "below 1e12"),
            (&[(LOW_THRESHOLD, "NaN")], LOW_THRESHOLD, "finite number"),
            (
                &[(LOW_THRESHOLD, "150")],
                LOW_THRESHOLD,
                "must be below high",
            ),
            (
                &[(HYSTERESIS, "100")],
                HYSTERESIS,
                "smaller than high - low",
            ),
            (&[(HYSTERESIS, "-1")], HYSTERESIS, "negative"),
            (
                &[(ALERT_MODE, "edge")],
                ALERT_MODE,
                "\"cross\" or \"level\"",
            ),
            (&[(RULES, "{")], RULES, "EOF"),
            (&[(RULES, r#"{"AAPL": {"high": 10}}"#)], RULES, "RULES.AAPL"),
            (&[(RULES, r#"{"BAD SYMBOL": {}}"#)], RULES, "BAD SYMBOL"),
            // Two symbols whose bands would make the same rule ids.
            (
                &[(RULES, r#"{"A:B": {"high": 200}, "A/B": {"high": 210}}"#)],
                RULES,
                "high.A_B",
            ),
            (&[(RULES_TABLE, "a b")], RULES_TABLE, "table name"),
            (
                &[(RULES_TABLE, "rules-dev"), (RULES_REFRESH_SECONDS, "0")],
                RULES_REFRESH_SECONDS,
                "1 to 3600 seconds, got 0",
            ),
            (
                &[(RULES_TABLE, "rules-dev"), (RULES_REFRESH_SECONDS, "3601")],
                RULES_REFRESH_SECONDS,
                "1 to 3600",
            ),
            (
                &[(RULES_TABLE, "rules-dev"), (RULES_REFRESH_SECONDS, "1.5")],
                RULES_REFRESH_SECONDS,
                "whole number of seconds",
            ),
            (
                &[(RULES_TABLE, "rules-dev"), (RULES_REFRESH_SECONDS, "-1")],
                RULES_REFRESH_SECONDS,
                "whole number of seconds",
            ),
        ];
        for (vars, variable, fragment) in cases {
            let error = rules(vars).expect_err(variable);
            assert_eq!(error.variable, *variable, "{error}");
            let text = error.to_string();
            assert!(text.starts_with(variable), "{text}");
            assert!(text.contains(fragment), "{text} should mention {fragment}");
        }
    }

    #[test]
    fn a_rules_file_replaces_the_overrides_over_the_same_base() {
        let settings = rules(&[
            (HIGH_THRESHOLD, "120"),
            (ALERT_MODE, "level"),
            (RULES, r#"{"AAPL": {"high": 300}}"#),
            (RULES_TABLE, "rules-dev"),
        ])
        .expect("valid")
        .with_rules_file("[symbols.MSFT]\nlow = 90\n")
        .expect("valid file");
        let aapl = Symbol::parse("AAPL").expect("valid");
        let msft = Symbol::parse("MSFT").expect("valid");
        assert_eq!(settings.bands().band_for(&aapl).high(), 120.0);
        let msft = settings.bands().band_for(&msft);
        assert_eq!(
            (msft.high(), msft.low(), msft.mode()),
            (120.0, 90.0, Mode::Level)
        );
        assert!(settings.table().is_some(), "the table stays");
        assert_eq!(settings.with_table(None).table(), None);
    }
}
