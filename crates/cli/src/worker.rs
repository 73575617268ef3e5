//! `tickwatch sqs-worker`: the Lambda function's pipeline, fed by long-polling an SQS queue, for
//! containers and VMs (and for driving a deployment on an emulator, where no function runs).
//!
//! It reads the function's variables and builds its deployment through the function's own path
//! ([`tickwatch_aws::deploy`]), so the two evaluate the same way given the same environment. What
//! is the worker's own: a flag takes the place of its variable (`--alerts-table` of
//! `ALERTS_TABLE_NAME`, `--mode` of `ALERT_MODE`, `--rules FILE` of `RULES`, ...), and a resource
//! check that fails at start-up stops it even when the failure is transient, because someone (or
//! a supervisor) is watching the start and can try again.
//!
//! Exit codes: 0 when every message received was deleted (done, or rejected and dead-lettered);
//! 4 when some were left for redelivery before their ticks were stored (a failed `advance_state`,
//! `insert_alert` or `fetch_alert`, or a refused dead-letter send); 3 when the ones left are all
//! stored and only their announcing, marking or deleting remains (redelivery completes it). The
//! summary on stderr counts the messages left by the step that failed.

use anyhow::Context as _;
use tickwatch_aws::RuleSettings;
use tickwatch_aws::config::{load_sdk_config, pipeline_retry_policy};
use tickwatch_aws::deploy::{self, variables};
use tickwatch_aws::worker::{
    self, MESSAGES_PER_RECEIVE_MAX, RunUntil, WorkerOptions, WorkerReport,
};
use tickwatch_aws::{
    AwsClients, ConnectError, Deployment, Resources, SettingError, StartupPolicy,
    TransientCheckFailure,
};
use tickwatch_clock::SystemClock;

use crate::Completion;
use crate::args::{AwsResources, WorkerArgs};
use crate::config;
use crate::interrupt::Interrupt;

pub(crate) fn sqs_worker(args: WorkerArgs) -> anyhow::Result<Completion> {
    let rules = config::worker_rules(args.rules.as_deref(), args.mode, |name| {
        std::env::var(name).ok()
    })?;
    let queue_url =
        deploy::queue_url(variables::TICKS_QUEUE_URL, &args.queue_url).map_err(setting_error)?;
    let options = WorkerOptions {
        queue_url,
        wait_time_s: args.wait_seconds,
        messages_per_receive: MESSAGES_PER_RECEIVE_MAX,
        visibility_timeout_s: args.visibility_timeout_seconds,
        run_until: if args.drain {
            RunUntil::QueueEmpty
        } else {
            RunUntil::Shutdown
        },
        metrics_service: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut interrupt = Interrupt::watch(&runtime)?;
    let report = runtime.block_on(async {
        let clients = AwsClients::new(&load_sdk_config().await);
        let shutdown = async move { interrupt.come().await };
        consume(&clients, &args.resources, rules, &options, shutdown).await
    })?;
    eprintln!("{}", summary(&report));
    Ok(completion(&report))
}

/// The worker's start-up policy: any failed resource check stops it; the function's retry policy.
fn startup_policy() -> StartupPolicy {
    StartupPolicy {
        transient_check_failure: TransientCheckFailure::Stop,
        retry: pipeline_retry_policy(),
        jitter_seed: config::jitter_seed(),
    }
}

/// Validates the resources, builds the deployment over them (checking every resource), and runs
/// the worker until `options.run_until` or `shutdown`.
pub(crate) async fn consume(
    clients: &AwsClients,
    resources: &AwsResources,
    rules: RuleSettings,
    options: &WorkerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<WorkerReport> {
    let resources = Resources::new(
        &resources.alerts_table,
        &resources.state_table,
        &resources.topic_arn,
        &resources.dead_letter_queue_url,
    )
    .map_err(setting_error)?;
    let Deployment {
        pipeline,
        dead_letters,
        rules,
    } = Deployment::connect(clients, &resources, &rules, &startup_policy(), SystemClock)
        .await
        .map_err(connect_error)?;
    worker::run(
        &clients.sqs,
        options,
        &pipeline,
        &dead_letters,
        &rules,
        shutdown,
    )
    .await
    .context("the SQS worker stopped")
}

/// The exit code of `report` (see the module documentation).
fn completion(report: &WorkerReport) -> Completion {
    if report.left_for_redelivery == 0 {
        Completion::Clean
    } else if report.left_unstored() > 0 {
        Completion::Unstored
    } else {
        Completion::Unannounced
    }
}

/// The summary line on stderr, with the steps that left messages for redelivery.
fn summary(report: &WorkerReport) -> String {
    let mut line = format!(
        "tickwatch sqs-worker: {} batches, {} messages received, {} deleted ({} dead-lettered), {} left for redelivery; {} alerts raised, {} announced",
        report.batches,
        report.received,
        report.deleted,
        report.dead_lettered,
        report.left_for_redelivery,
        report.stats.alerts,
        report.stats.published
    );
    let steps = report.left_by_step();
    if !steps.is_empty() {
        let steps: Vec<String> = steps
            .iter()
            .map(|(step, count)| format!("{step} {count}"))
            .collect();
        line.push_str(&format!(
            "\nleft for redelivery by failed step: {}",
            steps.join(", ")
        ));
        line.push_str(if report.left_unstored() > 0 {
            "\nsome ticks are not stored yet; they stay on the queue for redelivery"
        } else {
            "\nevery tick is stored; redelivery completes the announcing"
        });
    }
    line
}

/// The flag that takes the place of `variable`, if there is one.
fn flag_of(variable: &str) -> Option<&'static str> {
    match variable {
        variables::ALERTS_TABLE_NAME => Some("--alerts-table"),
        variables::STATE_TABLE_NAME => Some("--state-table"),
        variables::ALERTS_TOPIC_ARN => Some("--topic-arn"),
        variables::DEAD_LETTER_QUEUE_URL => Some("--dead-letter-queue-url"),
        variables::TICKS_QUEUE_URL => Some("--queue-url"),
        _ => None,
    }
}

/// `--flag (VARIABLE)`, or the variable alone.
fn named(variable: &'static str) -> String {
    match flag_of(variable) {
        Some(flag) => format!("{flag} ({variable})"),
        None => variable.to_owned(),
    }
}

/// A setting error in the words of the command line (`--flag (VARIABLE): reason`).
pub(crate) fn setting_error(error: SettingError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", named(error.variable), error.reason)
}

fn connect_error(error: ConnectError) -> anyhow::Error {
    match error {
        ConnectError::Resource {
            variable,
            resource,
            error,
        } => anyhow::anyhow!("{}: {resource} cannot be used: {error}", named(variable)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser as _;
    use tickwatch_core::BatchStats;
    use tickwatch_core::pipeline::Step;
    use tickwatch_core::{BandSet, Mode, Symbol};

    use super::*;
    use crate::args::{Cli, Command};

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/ticks";
    const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";

    /// `tickwatch sqs-worker` with every resource given as a flag, then `extra`.
    fn parse(extra: &[&str]) -> Result<WorkerArgs, clap::Error> {
        let mut argv = vec![
            "tickwatch",
            "sqs-worker",
            "--queue-url",
            QUEUE,
            "--alerts-table",
            "alerts-dev",
            "--state-table",
            "state-dev",
            "--topic-arn",
            TOPIC,
            "--dead-letter-queue-url",
            DLQ,
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::SqsWorker(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn worker_args(extra: &[&str]) -> WorkerArgs {
        parse(extra).expect("valid arguments")
    }

    fn rules_of(args: &WorkerArgs, vars: &[(&str, &str)]) -> anyhow::Result<BandSet> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config::worker_rules(args.rules.as_deref(), args.mode, |name| {
            vars.get(name).cloned()
        })
        .map(|settings| settings.bands().clone())
    }

    const FUNCTION_VARIABLES: [(&str, &str); 5] = [
        ("ALERT_MODE", "level"),
        ("HIGH_THRESHOLD", "120"),
        ("LOW_THRESHOLD", "80"),
        ("HYSTERESIS", "5"),
        ("RULES", r#"{"MSFT": {"mode": "cross"}}"#),
    ];

    /// Regression: the worker ignored the rule variables and ran the default rules.
    #[test]
    fn without_flags_the_worker_reads_the_functions_rule_variables() {
        let rules = rules_of(&worker_args(&[]), &FUNCTION_VARIABLES).expect("valid");
        let function = RuleSettings::from_variables(|name| {
            FUNCTION_VARIABLES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("valid")
        .bands()
        .clone();
        assert_eq!(
            rules, function,
            "the function's reader, the function's rules"
        );
        let base = rules.default_band();
        assert_eq!(
            (base.high(), base.low(), base.hysteresis(), base.mode()),
            (120.0, 80.0, 5.0, Mode::Level)
        );
        let msft = rules.band_for(&Symbol::parse("MSFT").expect("valid"));
        assert_eq!(msft.mode(), Mode::Cross);
        // And a bad variable stops the worker, naming it, as it stops the function.
        let error = rules_of(
            &worker_args(&[]),
            &[
                ("HYSTERESIS", "50"),
                ("HIGH_THRESHOLD", "120"),
                ("LOW_THRESHOLD", "80"),
            ],
        )
        .expect_err("hysteresis too large");
        assert!(
            error
                .to_string()
                .starts_with("HYSTERESIS: (50) must be smaller than high - low (40)"),
            "{error}"
        );
        // Unset, the specification's defaults.
        let defaults = rules_of(&worker_args(&[]), &[]).expect("valid");
        let base = defaults.default_band();
        assert_eq!(
            (base.high(), base.low(), base.mode()),
            (150.0, 50.0, Mode::Cross)
        );
    }

    #[test]
    fn flags_take_the_place_of_their_variables() {
        let rules =
            rules_of(&worker_args(&["--mode", "cross"]), &FUNCTION_VARIABLES).expect("valid");
        let base = rules.default_band();
        assert_eq!(
            (base.high(), base.low(), base.hysteresis(), base.mode()),
            (120.0, 80.0, 5.0, Mode::Cross),
            "--mode replaces ALERT_MODE only"
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, "[symbols.AAPL]\nhigh = 300\n").expect("write");
        let path = path.to_str().expect("UTF-8 path");
        let with_bad_rules = [
            ("RULES", "{"),
            ("ALERT_MODE", "level"),
            ("LOW_THRESHOLD", "80"),
        ];
        let rules =
            rules_of(&worker_args(&["--rules", path]), &with_bad_rules).expect("RULES is not read");
        let aapl = rules.band_for(&Symbol::parse("AAPL").expect("valid"));
        assert_eq!(
            (aapl.high(), aapl.low(), aapl.mode()),
            (300.0, 80.0, Mode::Level)
        );
        let msft = rules.band_for(&Symbol::parse("MSFT").expect("valid"));
        assert_eq!(msft.high(), 150.0, "no RULES override survives the file");
    }

    #[test]
    fn the_worker_limits_are_the_named_constants() {
        let args = worker_args(&[]);
        assert_eq!(args.wait_seconds, tickwatch_aws::worker::WAIT_TIME_S_MAX);
        assert_eq!(
            args.visibility_timeout_seconds,
            tickwatch_aws::worker::VISIBILITY_TIMEOUT_S_DEFAULT
        );
        assert_eq!(args.mode, None, "no flag, ALERT_MODE decides");
        for bad in [
            ["--wait-seconds", "21"],
            ["--visibility-timeout-seconds", "4"],
            ["--visibility-timeout-seconds", "43201"],
        ] {
            let error = parse(&bad).expect_err("out of range");
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{error}"
            );
        }
        for good in [
            ["--wait-seconds", "0"],
            ["--visibility-timeout-seconds", "5"],
            ["--visibility-timeout-seconds", "43200"],
        ] {
            assert!(parse(&good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn bad_resource_names_name_the_flag_and_the_variable() {
        let error =
            setting_error(Resources::new("a b", "state-dev", TOPIC, DLQ).expect_err("bad table"));
        assert!(
            error
                .to_string()
                .starts_with("--alerts-table (ALERTS_TABLE_NAME): must be a DynamoDB table name"),
            "{error}"
        );
        let error =
            setting_error(deploy::queue_url(variables::TICKS_QUEUE_URL, "ticks").expect_err("bad"));
        assert!(
            error
                .to_string()
                .starts_with("--queue-url (TICKS_QUEUE_URL): must be an SQS queue URL"),
            "{error}"
        );
    }

    fn report(steps: &[Step], dead_letter_failures: u64, delete_failures: u64) -> WorkerReport {
        let mut stats = BatchStats::default();
        for step in steps {
            stats.failed_steps.count(*step);
        }
        WorkerReport {
            received: 10,
            left_for_redelivery: steps.len() as u64 + dead_letter_failures + delete_failures,
            dead_letter_failures,
            delete_failures,
            stats,
            ..WorkerReport::default()
        }
    }

    #[test]
    fn the_exit_code_says_what_redelivery_still_has_to_do() {
        use Step::*;
        let cases: &[(&[Step], u64, u64, u8, &str)] = &[
            (&[], 0, 0, 0, ""),
            (
                &[Publish, Publish, MarkNotified],
                0,
                0,
                3,
                "publish 2, mark_notified 1",
            ),
            (&[], 0, 1, 3, "delete 1"),
            (
                &[Advance, Advance, Advance, Publish, Publish],
                0,
                0,
                4,
                "advance_state 3, publish 2",
            ),
            (&[Insert], 0, 0, 4, "insert_alert 1"),
            (&[Fetch], 0, 0, 4, "fetch_alert 1"),
            (&[], 1, 0, 4, "dead_letter 1"),
        ];
        for (steps, dead_letter_failures, delete_failures, expected, named) in cases {
            let report = report(steps, *dead_letter_failures, *delete_failures);
            let code = match completion(&report) {
                Completion::Clean => 0,
                Completion::Unannounced => 3,
                Completion::Unstored => 4,
            };
            assert_eq!(code, *expected, "{steps:?}");
            let summary = summary(&report);
            if named.is_empty() {
                assert!(!summary.contains("by failed step"), "{summary}");
            } else {
                assert!(
                    summary.contains(&format!("left for redelivery by failed step: {named}\n")),
                    "{summary}"
                );
            }
        }
    }
}
