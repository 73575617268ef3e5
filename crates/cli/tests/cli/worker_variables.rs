//! `tickwatch sqs-worker`, the real binary, reads the Lambda function's variables and checks what
//! it is given the way the function does, before it touches AWS. (That the worker and the function
//! then raise the same alerts from the same variables is `crates/lambda/tests/worker_parity.rs`,
//! against the emulator.)
//!
//! Nothing here needs AWS or an emulator: every run either stops on a setting, or stops at its
//! start-up checks against an endpoint where nothing listens.

use std::process::{Command, Stdio};

const QUEUE: &str = "http://127.0.0.1:1/123456789012/ticks";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
const DLQ: &str = "http://127.0.0.1:1/123456789012/dlq";

/// Runs `tickwatch sqs-worker --drain` with only `env` (and dummy AWS settings pointing at a
/// closed port); returns the exit code and stderr.
fn sqs_worker(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .arg("sqs-worker")
        .arg("--drain")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("tickwatch runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The resources as the function's variables.
const RESOURCES: [(&str, &str); 5] = [
    ("TICKS_QUEUE_URL", QUEUE),
    ("ALERTS_TABLE_NAME", "alerts-dev"),
    ("STATE_TABLE_NAME", "state-dev"),
    ("ALERTS_TOPIC_ARN", TOPIC),
    ("DEAD_LETTER_QUEUE_URL", DLQ),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    RESOURCES.iter().chain(extra).copied().collect()
}

/// Regression: the worker ignored HIGH_THRESHOLD, LOW_THRESHOLD, ALERT_MODE, HYSTERESIS and RULES.
/// Each is read, and a value the function would refuse stops the worker too, naming it.
#[test]
fn the_worker_reads_every_rule_variable_of_the_function() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("HIGH_THRESHOLD", "120"),
                ("LOW_THRESHOLD", "80"),
                ("HYSTERESIS", "50"),
            ],
            "HYSTERESIS: (50) must be smaller than high - low (40)",
        ),
        (
            &[("HIGH_THRESHOLD", "abc")],
            "HIGH_THRESHOLD: must be a finite number",
        ),
        (
            &[("LOW_THRESHOLD", "200")],
            "LOW_THRESHOLD: (200) must be below high (150)",
        ),
        (
            &[("ALERT_MODE", "edge")],
            "ALERT_MODE: must be \"cross\" or \"level\"",
        ),
        (
            &[("RULES", r#"{"AAPL": {"high": 10}}"#)],
            "RULES: RULES.AAPL",
        ),
    ];
    for (variables, expected) in cases {
        let (code, stderr) = sqs_worker(&[], &with(variables));
        assert_eq!(code, 1, "{variables:?}: {stderr}");
        assert!(stderr.contains(expected), "{variables:?}: {stderr}");
    }
}

#[test]
fn resource_names_are_validated_before_any_call() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "ALERTS_TABLE_NAME",
            "a b",
            "--alerts-table (ALERTS_TABLE_NAME): must be a DynamoDB table name",
        ),
        (
            "ALERTS_TOPIC_ARN",
            "alerts",
            "--topic-arn (ALERTS_TOPIC_ARN): must be an SNS topic ARN",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "dlq",
            "--dead-letter-queue-url (DEAD_LETTER_QUEUE_URL): must be an SQS queue URL",
        ),
        (
            "TICKS_QUEUE_URL",
            "ticks",
            "--queue-url (TICKS_QUEUE_URL): must be an SQS queue URL",
        ),
    ];
    for (variable, value, expected) in cases {
        let env: Vec<(&str, &str)> = with(&[])
            .into_iter()
            .map(|(name, v)| (name, if name == *variable { *value } else { v }))
            .collect();
        let (code, stderr) = sqs_worker(&[], &env);
        assert_eq!(code, 1, "{variable}={value}: {stderr}");
        assert!(stderr.contains(expected), "{variable}={value}: {stderr}");
    }
}

/// Flags take the place of their variables: `--mode` of ALERT_MODE, `--rules` of RULES (which is
/// then not even read), `--alerts-table` of ALERTS_TABLE_NAME. Past the settings, the worker stops
/// at its first resource check: nothing answers there, and unlike the function it does not start
/// on a transient failure.
#[test]
fn flags_override_the_variables_and_a_failed_check_stops_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[symbols.AAPL]\nhigh = 300\n").expect("write");
    let (code, stderr) = sqs_worker(
        &[
            "--mode",
            "level",
            "--rules",
            rules.to_str().expect("UTF-8 path"),
            "--alerts-table",
            "alerts-flag",
        ],
        &with(&[
            ("ALERT_MODE", "edge"),
            ("RULES", "{"),
            ("ALERTS_TABLE_NAME", "a b"),
        ]),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--alerts-table (ALERTS_TABLE_NAME): table alerts-flag cannot be used"),
        "the settings pass and the first resource check stops the worker: {stderr}"
    );
}
