//! The function and the SQS worker, given the same environment, raise the same alerts.
//!
//! Two stacks on moto get the same rule variables: the real `bootstrap` (under the Runtime API
//! emulator) consumes one; the SQS worker, built from the variable map through the path
//! `tickwatch sqs-worker` takes (`tickwatch_aws::deploy`: resources and rules from the variables,
//! `Deployment::connect` with the worker's start-up policy, `worker::run`), consumes the other.
//! Both are fed the same ticks in the same rounds; their stored alerts and announcements must be
//! the same, and exactly the ones those variables call for. The variables differ from every
//! default (thresholds 120/80 instead of 150/50, level mode, a hysteresis, a per-symbol override
//! to cross mode), so a consumer that ignored any of them would store different alerts.

// The end-to-end harness of `tests/e2e` is shared, not copied; this binary uses part of it.
#[allow(dead_code)]
#[path = "e2e/runtime_api.rs"]
mod runtime_api;
#[allow(dead_code)]
#[path = "e2e/stack.rs"]
mod stack;

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use runtime_api::RuntimeApi;
use serde_json::Value;
use stack::{ANSWER_WAIT, FUNCTION_TIMEOUT, Function, Stack, failed_ids};
use tickwatch_aws::config::pipeline_retry_policy;
use tickwatch_aws::worker::{self, RunUntil, WorkerOptions};
use tickwatch_aws::{Deployment, Resources, RuleSettings, StartupPolicy, TransientCheckFailure};
use tickwatch_clock::SystemClock;

const T0_MS: i64 = 1_795_703_400_000; // 2026-11-26T14:30:00Z

/// The rule variables both consumers get. MSFT is switched to cross mode by `RULES` and keeps the
/// other settings, so `HYSTERESIS` decides whether its second visit to the high zone alerts.
const RULE_VARIABLES: [(&str, &str); 5] = [
    ("ALERT_MODE", "level"),
    ("HIGH_THRESHOLD", "120"),
    ("LOW_THRESHOLD", "80"),
    ("HYSTERESIS", "5"),
    ("RULES", r#"{"MSFT": {"mode": "cross"}}"#),
];

/// Prices per round, one tick per symbol per round (so no batch holds two ticks of a symbol, and
/// the order SQS delivers a round in cannot matter).
const ROUNDS: [[(&str, f64); 3]; 4] = [
    [("AAPL", 125.0), ("MSFT", 125.0), ("GOOGL", 100.0)],
    [("AAPL", 117.0), ("MSFT", 117.0), ("GOOGL", 155.0)],
    [("AAPL", 125.0), ("MSFT", 125.0), ("GOOGL", 45.0)],
    [("AAPL", 79.0), ("MSFT", 79.0), ("GOOGL", 100.0)],
];

/// What those variables call for: `(symbol, tick time, kind, threshold, fire, rule id)`.
///
/// AAPL and GOOGL (level, so the default band's rules `high` and `low` fire on `every` tick):
/// every tick beyond 120 or 80. MSFT (cross, so its own band's rules `high.MSFT` and `low.MSFT`
/// fire on `enter`): 125 enters the high zone; 117 is back inside the band but by less than the
/// hysteresis, so the rule is not re-armed and the next 125 raises nothing (with no hysteresis it
/// would); 79 enters the low zone. With the default variables (150/50, cross) only GOOGL's 155
/// and 45 would alert.
const EXPECTED: [(&str, &str, &str, &str, &str, &str); 7] = [
    (
        "AAPL",
        "2026-11-26T14:30:00.000Z",
        "HIGH",
        "120",
        "every",
        "high",
    ),
    (
        "AAPL",
        "2026-11-26T14:30:02.000Z",
        "HIGH",
        "120",
        "every",
        "high",
    ),
    (
        "AAPL",
        "2026-11-26T14:30:03.000Z",
        "LOW",
        "80",
        "every",
        "low",
    ),
    (
        "GOOGL",
        "2026-11-26T14:30:01.000Z",
        "HIGH",
        "120",
        "every",
        "high",
    ),
    (
        "GOOGL",
        "2026-11-26T14:30:02.000Z",
        "LOW",
        "80",
        "every",
        "low",
    ),
    (
        "MSFT",
        "2026-11-26T14:30:00.000Z",
        "HIGH",
        "120",
        "enter",
        "high.MSFT",
    ),
    (
        "MSFT",
        "2026-11-26T14:30:03.000Z",
        "LOW",
        "80",
        "enter",
        "low.MSFT",
    ),
];

/// An alert as stored, without what differs between runs (`processed_at`): the fields of
/// [`EXPECTED`], the alert id and whether it is marked notified.
type StoredAlert = (
    (String, String, String, String, String, String),
    String,
    bool,
);

fn bodies(round: usize) -> Vec<String> {
    ROUNDS[round]
        .iter()
        .map(|(symbol, price)| {
            format!(
                r#"{{"symbol":"{symbol}","price":{price},"timestamp":{}}}"#,
                T0_MS + round as i64 * 1_000
            )
        })
        .collect()
}

/// `stack`'s environment with the rule variables.
fn environment(stack: &Stack) -> HashMap<&'static str, String> {
    let mut env = stack.env();
    env.extend(RULE_VARIABLES.map(|(name, value)| (name, value.to_owned())));
    env
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(text)) | Some(AttributeValue::N(text)) => text.clone(),
        other => panic!("attribute {name}: {other:?}"),
    }
}

async fn stored_alerts(stack: &Stack) -> BTreeSet<StoredAlert> {
    stack
        .alert_items()
        .await
        .iter()
        .map(|item| {
            (
                (
                    text(item, "symbol"),
                    text(item, "tick_time"),
                    text(item, "kind"),
                    text(item, "threshold"),
                    text(item, "fire"),
                    text(item, "rule_id"),
                ),
                text(item, "alert_id"),
                item.get("notified") == Some(&AttributeValue::Bool(true)),
            )
        })
        .collect()
}

/// `(symbol, tick time, rule id)` of every announcement on `stack`'s subscribed queue.
async fn announcements(stack: &Stack, expected: usize) -> BTreeSet<(String, String, String)> {
    stack
        .notifications(expected)
        .await
        .iter()
        .map(|message| {
            let alert: Value =
                serde_json::from_str(message.body().expect("body")).expect("alert JSON");
            let field = |name: &str| alert[name].as_str().expect(name).to_owned();
            (field("symbol"), field("timestamp"), field("rule_id"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_the_function_raise_the_same_alerts_from_the_same_environment() {
    // The function: the real bootstrap, fed one SQS event per round.
    let function_stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, &environment(&function_stack));

    // The worker: everything from its own copy of the same variables, as `tickwatch sqs-worker`
    // builds it.
    let worker_stack = Stack::create().await;
    let worker_env = environment(&worker_stack);
    let variable = |name: &str| worker_env.get(name).cloned();
    let resources = Resources::from_variables(variable).expect("valid resources");
    let rules = RuleSettings::from_variables(variable).expect("valid rules");
    let policy = StartupPolicy {
        transient_check_failure: TransientCheckFailure::Stop,
        retry: pipeline_retry_policy(),
        jitter_seed: 7,
    };
    let deployment = Deployment::connect(
        &worker_stack.clients,
        &resources,
        &rules,
        &policy,
        SystemClock,
    )
    .await
    .expect("every resource exists");
    let options = WorkerOptions {
        queue_url: worker_stack.ticks_url.clone(),
        wait_time_s: 1,
        messages_per_receive: worker::MESSAGES_PER_RECEIVE_MAX,
        visibility_timeout_s: 30,
        run_until: RunUntil::QueueEmpty,
        metrics_service: None,
    };

    for round in 0..ROUNDS.len() {
        let bodies = bodies(round);

        function_stack.send(&bodies).await;
        let messages = function_stack.receive(bodies.len()).await;
        let answer = api
            .invoke(
                function_stack.event(&messages),
                FUNCTION_TIMEOUT,
                ANSWER_WAIT,
            )
            .await;
        let failed = failed_ids(&answer);
        assert!(
            failed.is_empty(),
            "round {round}: the function failed {failed:?}"
        );
        function_stack.settle(&messages, &failed).await;

        worker_stack.send(&bodies).await;
        let report = worker::run(
            &worker_stack.clients.sqs,
            &options,
            &deployment.pipeline,
            &deployment.dead_letters,
            &deployment.rules,
            std::future::pending(),
        )
        .await
        .expect("the worker runs");
        assert_eq!(
            (report.received, report.deleted, report.left_for_redelivery),
            (bodies.len() as u64, bodies.len() as u64, 0),
            "round {round}: {report:?}"
        );
    }

    let by_function = stored_alerts(&function_stack).await;
    let by_worker = stored_alerts(&worker_stack).await;
    assert_eq!(
        by_worker, by_function,
        "the same variables, the same alerts"
    );
    let expected: BTreeSet<(String, String, String, String, String, String)> = EXPECTED
        .iter()
        .map(|(symbol, at, kind, threshold, fire, rule)| {
            (
                symbol.to_string(),
                at.to_string(),
                kind.to_string(),
                threshold.to_string(),
                fire.to_string(),
                rule.to_string(),
            )
        })
        .collect();
    let stored: BTreeSet<(String, String, String, String, String, String)> = by_function
        .iter()
        .map(|(fields, _, notified)| {
            assert!(notified, "{fields:?} is announced and marked");
            fields.clone()
        })
        .collect();
    assert_eq!(stored, expected, "the alerts those variables call for");

    let announced_by_function = announcements(&function_stack, EXPECTED.len()).await;
    let announced_by_worker = announcements(&worker_stack, EXPECTED.len()).await;
    assert_eq!(announced_by_function.len(), EXPECTED.len());
    assert_eq!(announced_by_worker, announced_by_function);
}
