//! The function's configuration: environment variables, read once at init and validated into
//! [`FunctionConfig`]. A bad value fails init with a [`ConfigError`] naming the variable; nothing
//! is checked per message.
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
//! | `LOG_LEVEL` | `trace`, `debug`, `info`, `warn`, `error` or `off` | `info` |
//!
//! An optional variable set to the empty string counts as unset (deployment tools often write
//! empty values rather than leaving a variable out). The function name for metrics comes from
//! Lambda's own `AWS_LAMBDA_FUNCTION_NAME`.

use tickwatch_core::rules::{HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT, RulesError};
use tickwatch_core::{Mode, Rule, RuleSet};
use tracing::level_filters::LevelFilter;

/// Shortest DynamoDB table name.
const TABLE_NAME_LEN_MIN: usize = 3;
/// Longest DynamoDB table name.
const TABLE_NAME_LEN_MAX: usize = 255;

/// The metrics `Service` dimension when `AWS_LAMBDA_FUNCTION_NAME` is not set.
pub const SERVICE_NAME_DEFAULT: &str = "tickwatch";

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    /// `ALERTS_TABLE_NAME`.
    pub alerts_table: String,
    /// `STATE_TABLE_NAME`.
    pub state_table: String,
    /// `ALERTS_TOPIC_ARN`.
    pub topic_arn: String,
    /// `DEAD_LETTER_QUEUE_URL`.
    pub dead_letter_queue_url: String,
    /// The rules: thresholds, mode and hysteresis as the default, `RULES` as overrides.
    pub rules: RuleSet,
    /// `LOG_LEVEL`.
    pub log_level: LevelFilter,
    /// The metrics `Service` dimension (`AWS_LAMBDA_FUNCTION_NAME`).
    pub service: String,
}

/// A variable that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong, and what is expected.
    pub reason: String,
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

impl FunctionConfig {
    /// Reads the configuration through `lookup` (the process environment in `bootstrap`, a map in
    /// tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<FunctionConfig, ConfigError> {
        // Unset and empty are the same for optional variables.
        let optional = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| {
            optional(name)
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| error(name, "is required but not set"))
        };
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            match optional(name) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| error(name, format!("must be a finite number, got {text:?}"))),
            }
        };

        let alerts_table = table_name("ALERTS_TABLE_NAME", required("ALERTS_TABLE_NAME")?)?;
        let state_table = table_name("STATE_TABLE_NAME", required("STATE_TABLE_NAME")?)?;
        let topic_arn = required("ALERTS_TOPIC_ARN")?;
        if !(topic_arn.starts_with("arn:") && topic_arn.contains(":sns:")) {
            return Err(error(
                "ALERTS_TOPIC_ARN",
                format!(
                    "must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got {topic_arn:?}"
                ),
            ));
        }
        let dead_letter_queue_url = required("DEAD_LETTER_QUEUE_URL")?;
        if !(dead_letter_queue_url.starts_with("https://")
            || dead_letter_queue_url.starts_with("http://"))
        {
            return Err(error(
                "DEAD_LETTER_QUEUE_URL",
                format!("must be an SQS queue URL (https://...), got {dead_letter_queue_url:?}"),
            ));
        }

        let high = number("HIGH_THRESHOLD", HIGH_THRESHOLD_DEFAULT)?;
        let low = number("LOW_THRESHOLD", LOW_THRESHOLD_DEFAULT)?;
        let hysteresis = number("HYSTERESIS", 0.0)?;
        let mode = match optional("ALERT_MODE").map(|m| m.trim().to_ascii_lowercase()) {
            None => Mode::Cross,
            Some(text) => text.parse::<Mode>().map_err(|_| {
                error(
                    "ALERT_MODE",
                    format!("must be \"cross\" or \"level\", got {text:?}"),
                )
            })?,
        };
        let base = Rule::new(high, low, hysteresis, mode).map_err(rule_error)?;
        let rules = match optional("RULES") {
            None => RuleSet::uniform(base),
            Some(text) => RuleSet::from_json_overrides(base, "RULES", &text)
                .map_err(|e| error("RULES", e.to_string()))?,
        };

        let log_level = match optional("LOG_LEVEL") {
            None => LevelFilter::INFO,
            Some(text) => text
                .trim()
                .to_ascii_lowercase()
                .parse::<LevelFilter>()
                .map_err(|_| {
                    error(
                        "LOG_LEVEL",
                        format!(
                            "must be one of trace, debug, info, warn, error, off; got {text:?}"
                        ),
                    )
                })?,
        };
        let service =
            optional("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| SERVICE_NAME_DEFAULT.to_owned());

        Ok(FunctionConfig {
            alerts_table,
            state_table,
            topic_arn,
            dead_letter_queue_url,
            rules,
            log_level,
            service,
        })
    }
}

/// Names the variable behind a rule field (`Rule::new` names `high`, `low` or `hysteresis`).
fn rule_error(e: RulesError) -> ConfigError {
    const VARIABLES: [(&str, &str); 2] = [("low", "LOW_THRESHOLD"), ("hysteresis", "HYSTERESIS")];
    let variable = VARIABLES
        .iter()
        .find(|(field, _)| *field == e.location)
        .map_or("HIGH_THRESHOLD", |(_, variable)| variable);
    error(variable, e.reason)
}

fn table_name(variable: &'static str, name: String) -> Result<String, ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !(TABLE_NAME_LEN_MIN..=TABLE_NAME_LEN_MAX).contains(&name.len())
        || !name.chars().all(allowed)
    {
        return Err(error(
            variable,
            format!(
                "must be a DynamoDB table name ({TABLE_NAME_LEN_MIN}-{TABLE_NAME_LEN_MAX} characters of A-Z a-z 0-9 _ - .), got {name:?}"
            ),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwatch_core::Symbol;

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
    const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("ALERTS_TABLE_NAME", "alerts-dev"),
            ("STATE_TABLE_NAME", "state-dev"),
            ("ALERTS_TOPIC_ARN", TOPIC),
            ("DEAD_LETTER_QUEUE_URL", DLQ),
        ])
    }

    fn parse(
        changes: &[(&'static str, Option<&'static str>)],
    ) -> Result<FunctionConfig, ConfigError> {
        let mut vars = base();
        for (name, value) in changes {
            match value {
                Some(value) => vars.insert(name, value),
                None => vars.remove(name),
            };
        }
        FunctionConfig::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = parse(&[]).expect("valid");
        assert_eq!(config.alerts_table, "alerts-dev");
        assert_eq!(config.state_table, "state-dev");
        assert_eq!(config.topic_arn, TOPIC);
        assert_eq!(config.dead_letter_queue_url, DLQ);
        let rule = config.rules.default_rule();
        assert_eq!(
            (rule.high(), rule.low(), rule.hysteresis()),
            (150.0, 50.0, 0.0)
        );
        assert_eq!(rule.mode(), Mode::Cross);
        assert!(config.rules.overrides().is_empty());
        assert_eq!(config.log_level, LevelFilter::INFO);
        assert_eq!(config.service, SERVICE_NAME_DEFAULT);
    }

    #[test]
    fn every_setting_is_read() {
        let config = parse(&[
            ("HIGH_THRESHOLD", Some("200.5")),
            ("LOW_THRESHOLD", Some(" 20 ")),
            ("ALERT_MODE", Some("LEVEL")),
            ("HYSTERESIS", Some("1.5")),
            ("RULES", Some(r#"{"AAPL": {"high": 300, "mode": "cross"}}"#)),
            ("LOG_LEVEL", Some("Debug")),
            ("AWS_LAMBDA_FUNCTION_NAME", Some("tickwatch-prod")),
        ])
        .expect("valid");
        let rule = config.rules.default_rule();
        assert_eq!(
            (rule.high(), rule.low(), rule.hysteresis()),
            (200.5, 20.0, 1.5)
        );
        assert_eq!(rule.mode(), Mode::Level);
        let aapl = config
            .rules
            .rule_for(&Symbol::parse("AAPL").expect("valid"));
        assert_eq!(
            (aapl.high(), aapl.low(), aapl.mode()),
            (300.0, 20.0, Mode::Cross)
        );
        assert_eq!(config.log_level, LevelFilter::DEBUG);
        assert_eq!(config.service, "tickwatch-prod");
    }

    #[test]
    fn empty_optional_variables_count_as_unset() {
        let config = parse(&[
            ("HIGH_THRESHOLD", Some("")),
            ("ALERT_MODE", Some(" ")),
            ("RULES", Some("")),
            ("LOG_LEVEL", Some("")),
        ])
        .expect("valid");
        assert_eq!(config.rules.default_rule().high(), 150.0);
        assert_eq!(config.log_level, LevelFilter::INFO);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, Option<&str>)], &str, &str)] = &[
            (
                &[("ALERTS_TABLE_NAME", None)],
                "ALERTS_TABLE_NAME",
                "required",
            ),
            (
                &[("STATE_TABLE_NAME", Some("  "))],
                "STATE_TABLE_NAME",
                "required",
            ),
            (
                &[("ALERTS_TOPIC_ARN", None)],
                "ALERTS_TOPIC_ARN",
                "required",
            ),
            (
                &[("DEAD_LETTER_QUEUE_URL", None)],
                "DEAD_LETTER_QUEUE_URL",
                "required",
            ),
            (
                &[("ALERTS_TABLE_NAME", Some("a b"))],
                "ALERTS_TABLE_NAME",
                "table name",
            ),
            (
                &[("STATE_TABLE_NAME", Some("ab"))],
                "STATE_TABLE_NAME",
                "table name",
            ),
            (
                &[("ALERTS_TOPIC_ARN", Some("alerts"))],
                "ALERTS_TOPIC_ARN",
                "topic ARN",
            ),
            (
                &[("DEAD_LETTER_QUEUE_URL", Some("dlq"))],
                "DEAD_LETTER_QUEUE_URL",
                "queue URL",
            ),
            (
                &[("HIGH_THRESHOLD", Some("abc"))],
                "HIGH_THRESHOLD",
                "finite number",
            ),
            (
                &[("HIGH_THRESHOLD", Some("inf"))],
                "HIGH_THRESHOLD",
                "finite number",
            ),
            (
                &[("HIGH_THRESHOLD", Some("-5"))],
                "HIGH_THRESHOLD",
                "negative",
            ),
            (
                &[("HIGH_THRESHOLD", Some("1e13"))],
                "HIGH_THRESHOLD",
                "below 1e12",
            ),
            (
                &[("LOW_THRESHOLD", Some("NaN"))],
                "LOW_THRESHOLD",
                "finite number",
            ),
            (
                &[("LOW_THRESHOLD", Some("150"))],
                "LOW_THRESHOLD",
                "must be below high",
            ),
            (
                &[("HYSTERESIS", Some("100"))],
                "HYSTERESIS",
                "smaller than high - low",
            ),
            (
                &[("ALERT_MODE", Some("edge"))],
                "ALERT_MODE",
                "\"cross\" or \"level\"",
            ),
            (&[("RULES", Some("{"))], "RULES", "EOF"),
            (
                &[("RULES", Some(r#"{"AAPL": {"high": 10}}"#))],
                "RULES",
                "RULES.AAPL",
            ),
            (
                &[("RULES", Some(r#"{"BAD SYMBOL": {}}"#))],
                "RULES",
                "RULES.BAD SYMBOL",
            ),
            (
                &[("LOG_LEVEL", Some("verbose"))],
                "LOG_LEVEL",
                "one of trace",
            ),
        ];
        for (changes, variable, fragment) in cases {
            let error = parse(changes).expect_err(variable);
            assert_eq!(error.variable, *variable, "{error}");
            let text = error.to_string();
            assert!(text.starts_with(variable), "{text}");
            assert!(text.contains(fragment), "{text} should mention {fragment}");
        }
    }
}
