//! The function's configuration: environment variables, read once at init and validated into
//! [`FunctionConfig`]. A bad value fails init with a [`ConfigError`] naming the variable; nothing
//! is checked per message.
//!
//! The resources (`ALERTS_TABLE_NAME`, `STATE_TABLE_NAME`, `ALERTS_TOPIC_ARN`,
//! `DEAD_LETTER_QUEUE_URL`) and the rules (`HIGH_THRESHOLD`, `LOW_THRESHOLD`, `ALERT_MODE`,
//! `HYSTERESIS`, `RULES`, and the rules table: `RULES_TABLE`, `RULES_REFRESH_SECONDS`) are read
//! by [`tickwatch_aws::deploy`], the one reader `tickwatch
//! sqs-worker` uses too, so the worker and the function given the same environment evaluate the
//! same way; its documentation has the table of those variables. Only the function reads:
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `LOG_LEVEL` | `trace`, `debug`, `info`, `warn`, `error` or `off` | `info` |
//! | `AWS_LAMBDA_FUNCTION_NAME` | set by Lambda: the metrics `Service` dimension | `tickwatch` |
//!
//! An optional variable set to the empty string counts as unset (deployment tools often write
//! empty values rather than leaving a variable out).

use tickwatch_aws::deploy::{Resources, RuleSettings, optional};
use tracing::level_filters::LevelFilter;

/// A variable that cannot be used (the shared [`tickwatch_aws::SettingError`]).
pub use tickwatch_aws::SettingError as ConfigError;

/// The metrics `Service` dimension when `AWS_LAMBDA_FUNCTION_NAME` is not set.
pub const SERVICE_NAME_DEFAULT: &str = "tickwatch";

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    /// The tables, the topic and the dead-letter queue.
    pub resources: Resources,
    /// The rules: thresholds, mode and hysteresis as the default band, `RULES` as per-symbol
    /// bands (together the base rules), and the rules table, if any.
    pub rules: RuleSettings,
    /// `LOG_LEVEL`.
    pub log_level: LevelFilter,
    /// The metrics `Service` dimension (`AWS_LAMBDA_FUNCTION_NAME`).
    pub service: String,
}

impl FunctionConfig {
    /// Reads the configuration through `lookup` (the process environment in `bootstrap`, a map in
    /// tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<FunctionConfig, ConfigError> {
        let resources = Resources::from_variables(&lookup)?;
        let rules = RuleSettings::from_variables(&lookup)?;
        let log_level = match optional(&lookup, "LOG_LEVEL") {
            None => LevelFilter::INFO,
            Some(text) => text
                .trim()
                .to_ascii_lowercase()
                .parse::<LevelFilter>()
                .map_err(|_| {
                    ConfigError::new(
                        "LOG_LEVEL",
                        format!(
                            "must be one of trace, debug, info, warn, error, off; got {text:?}"
                        ),
                    )
                })?,
        };
        let service = optional(&lookup, "AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or_else(|| SERVICE_NAME_DEFAULT.to_owned());

        Ok(FunctionConfig {
            resources,
            rules,
            log_level,
            service,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwatch_core::{Mode, Symbol};

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
        assert_eq!(config.resources.alerts_table(), "alerts-dev");
        assert_eq!(config.resources.state_table(), "state-dev");
        assert_eq!(config.resources.topic_arn(), TOPIC);
        assert_eq!(config.resources.dead_letter_queue_url(), DLQ);
        let band = config.rules.bands().default_band();
        assert_eq!(
            (band.high(), band.low(), band.hysteresis()),
            (150.0, 50.0, 0.0)
        );
        assert_eq!(band.mode(), Mode::Cross);
        assert!(config.rules.bands().overrides().is_empty());
        assert_eq!(
            config.rules.table(),
            None,
            "no rules table unless one is named"
        );
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
            ("RULES_TABLE", Some("tickwatch-rules-prod")),
            ("RULES_REFRESH_SECONDS", Some("30")),
            ("LOG_LEVEL", Some("Debug")),
            ("AWS_LAMBDA_FUNCTION_NAME", Some("tickwatch-prod")),
        ])
        .expect("valid");
        let band = config.rules.bands().default_band();
        assert_eq!(
            (band.high(), band.low(), band.hysteresis()),
            (200.5, 20.0, 1.5)
        );
        assert_eq!(band.mode(), Mode::Level);
        let aapl = config
            .rules
            .bands()
            .band_for(&Symbol::parse("AAPL").expect("valid"));
        assert_eq!(
            (aapl.high(), aapl.low(), aapl.mode()),
            (300.0, 20.0, Mode::Cross)
        );
        let table = config.rules.table().expect("a rules table");
        assert_eq!(
            (table.name(), table.refresh_seconds()),
            ("tickwatch-rules-prod", 30)
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
            ("RULES_TABLE", Some("")),
            ("LOG_LEVEL", Some("")),
        ])
        .expect("valid");
        assert_eq!(config.rules.bands().default_band().high(), 150.0);
        assert_eq!(config.rules.table(), None);
        assert_eq!(config.log_level, LevelFilter::INFO);
    }

    /// Every variable's own rules are tested where they are read ([`tickwatch_aws::deploy`]);
    /// here, that an error of each kind reaches init naming its variable.
    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, Option<&str>)], &str, &str)] = &[
            (
                &[("ALERTS_TABLE_NAME", None)],
                "ALERTS_TABLE_NAME",
                "required",
            ),
            (
                &[("DEAD_LETTER_QUEUE_URL", Some("dlq"))],
                "DEAD_LETTER_QUEUE_URL",
                "queue URL",
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
            (
                &[("RULES", Some(r#"{"AAPL": {"high": 10}}"#))],
                "RULES",
                "AAPL",
            ),
            (
                &[("LOG_LEVEL", Some("verbose"))],
                "LOG_LEVEL",
                "one of trace",
            ),
            (&[("RULES_TABLE", Some("x"))], "RULES_TABLE", "table name"),
            (
                &[
                    ("RULES_TABLE", Some("rules-dev")),
                    ("RULES_REFRESH_SECONDS", Some("0")),
                ],
                "RULES_REFRESH_SECONDS",
                "1 to 3600",
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
