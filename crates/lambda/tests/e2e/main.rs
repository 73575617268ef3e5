//! End-to-end tests of the real `bootstrap` binary: started as Lambda starts it, under a Runtime
//! API emulator, against moto, with SQS events built from messages sent to and received from the
//! emulator's queue. Results are read back from DynamoDB, from a queue subscribed to the topic
//! and from the dead-letter queue.

mod runtime_api;
mod stack;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::Message;
use runtime_api::{Answer, RuntimeApi};
use serde_json::Value;
use stack::{ANSWER_WAIT, FUNCTION_TIMEOUT, Function, Stack, failed_ids};
use tickwatch_aws::testing::{LatencyProxy, Moto, ProxyMode, message_attribute};

const T0_MS: i64 = 1_795_703_400_000; // 2026-11-26T14:30:00Z

fn tick(symbol: &str, price: f64, at_s: i64) -> String {
    format!(
        r#"{{"symbol":"{symbol}","price":{price},"timestamp":{},"volume":100,"exchange":"XNAS"}}"#,
        T0_MS + at_s * 1000
    )
}

/// Sends `bodies`, receives them, invokes the function with them, settles them; returns the
/// messages and the failed ids.
async fn deliver(
    stack: &Stack,
    api: &RuntimeApi,
    bodies: &[String],
) -> (Vec<Message>, Vec<String>) {
    stack.send(bodies).await;
    redeliver(stack, api, bodies.len()).await
}

/// Receives `count` messages already on the tick queue, invokes, settles.
async fn redeliver(stack: &Stack, api: &RuntimeApi, count: usize) -> (Vec<Message>, Vec<String>) {
    let messages = stack.receive(count).await;
    let answer = api
        .invoke(stack.event(&messages), FUNCTION_TIMEOUT, ANSWER_WAIT)
        .await;
    let failed = failed_ids(&answer);
    stack.settle(&messages, &failed).await;
    (messages, failed)
}

fn string(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(text)) | Some(AttributeValue::N(text)) => text.clone(),
        other => panic!("attribute {name}: {other:?}"),
    }
}

fn notified(item: &std::collections::HashMap<String, AttributeValue>) -> bool {
    item.get("notified") == Some(&AttributeValue::Bool(true))
}

/// Adds the rule `json` to a rules table never written before, as `tickwatch rules add --table`
/// does: planned over the base rules (which the first change seeds) and committed.
async fn add_first_rule(table: &tickwatch_aws::DynamoRuleStore, json: &str) {
    use tickwatch_core::ports::RuleStore;
    use tickwatch_core::rules::{Rule, RuleBook, RuleEdit, plan_edit};

    let added = tickwatch_core::testing::rule(json);
    let base: Vec<Rule> = RuleBook::defaults()
        .rules()
        .iter()
        .map(|rule| (**rule).clone())
        .collect();
    let plan = plan_edit(None, &base, RuleEdit::Add(added), 1).expect("a valid change");
    assert!(
        table
            .commit_rules(None, &plan.put, &plan.remove)
            .await
            .expect("commits")
    );
}

fn bodies_of(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_str(m.body().expect("body")).expect("JSON body"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_low_and_normal_ticks_each_do_what_the_spec_says() {
    let stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let function = Function::start(&api, &stack.env());

    // High: stored, announced with its attributes.
    let (messages, failed) = deliver(&stack, &api, &[tick("AAPL", 151.25, 0)]).await;
    assert!(failed.is_empty());
    let items = stack.alert_items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(string(&items[0], "kind"), "HIGH");
    assert_eq!(string(&items[0], "price"), "151.25");
    assert_eq!(string(&items[0], "threshold"), "150");
    assert_eq!(
        string(&items[0], "timestamp"),
        "2026-11-26T14:30:00.000Z#high",
        "the sort key: tick time, then the rule"
    );
    assert_eq!(string(&items[0], "tick_time"), "2026-11-26T14:30:00.000Z");
    assert_eq!(string(&items[0], "rule_id"), "high");
    assert_eq!(string(&items[0], "fire"), "enter");
    assert!(notified(&items[0]));
    let notifications = stack.notifications(1).await;
    assert_eq!(notifications.len(), 1);
    let alert = &bodies_of(&notifications)[0];
    assert_eq!(alert["symbol"], "AAPL");
    assert_eq!(alert["kind"], "HIGH");
    assert_eq!(
        message_attribute(&notifications[0], "kind").as_deref(),
        Some("HIGH")
    );
    assert_eq!(
        message_attribute(&notifications[0], "rule_id").as_deref(),
        Some("high")
    );
    assert_eq!(alert["rule_id"], "high");
    assert_eq!(
        message_attribute(&notifications[0], "alert_id"),
        Some(string(&items[0], "alert_id"))
    );

    // Low.
    let (_, failed) = deliver(&stack, &api, &[tick("MSFT", 42.0, 1)]).await;
    assert!(failed.is_empty());
    let notifications = stack.notifications(1).await;
    assert_eq!(bodies_of(&notifications)[0]["kind"], "LOW");
    assert_eq!(stack.alert_items().await.len(), 2);

    // Normal: no alert, nothing announced; the symbol's state remembers the tick (and, every
    // rule being armed, no rule state).
    let (_, failed) = deliver(&stack, &api, &[tick("GOOGL", 100.0, 2)]).await;
    assert!(failed.is_empty());
    assert_eq!(stack.alert_items().await.len(), 2);
    assert!(stack.notifications(0).await.is_empty());
    let state = stack.state_item("GOOGL").await.expect("state stored");
    assert_eq!(string(&state, "last_seen"), (T0_MS + 2_000).to_string());
    let rules = match state.get("rules") {
        Some(AttributeValue::B(bytes)) => {
            tickwatch_core::rules::decode_rule_states(bytes.as_ref()).expect("rule states")
        }
        other => panic!("attribute rules: {other:?}"),
    };
    assert!(rules.is_empty(), "{rules:?}");
    let aapl = stack.state_item("AAPL").await.expect("state stored");
    let Some(AttributeValue::B(bytes)) = aapl.get("rules") else {
        panic!("attribute rules: {aapl:?}");
    };
    let fired: Vec<String> = tickwatch_core::rules::decode_rule_states(bytes.as_ref())
        .expect("rule states")
        .iter()
        .map(|s| s.rule.to_string())
        .collect();
    assert_eq!(fired, ["high"], "AAPL's high rule stands fired");

    // The logs are JSON, carry the request id and the message id, and the metrics line is EMF.
    let lines = function.lines();
    let message_id = messages[0].message_id().expect("id");
    let alert_line = lines
        .iter()
        .find(|l| l.contains("Alert raised.") && l.contains(message_id))
        .unwrap_or_else(|| panic!("no alert log line for {message_id} in {lines:#?}"));
    let log: Value = serde_json::from_str(alert_line).expect("JSON log line");
    assert_eq!(log["symbol"], "AAPL");
    assert_eq!(log["spans"][0]["request_id"], "e2e-request-0000");
    assert_eq!(log["spans"][1]["message_id"], message_id);
    let emf: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("CloudWatchMetrics"))
        .map(|l| serde_json::from_str(l).expect("EMF JSON"))
        .collect();
    assert_eq!(emf.len(), 3, "one metrics line per batch");
    assert_eq!(emf[0]["AlertsRaised"], 1);
    assert_eq!(emf[0]["Service"], "tickwatch-e2e");
    assert_eq!(emf[2]["AlertsRaised"], 0);
    assert!(
        !lines.iter().any(|l| l.contains("XNAS")),
        "valid bodies are never logged"
    );
}

fn mixed_batch() -> Vec<String> {
    vec![
        tick("AAPL", 151.25, 0),
        tick("MSFT", 42.0, 0),
        tick("GOOGL", 100.0, 0),
        tick("NVDA", 180.0, 1),
        tick("AAPL", 155.0, 2), // still high: no second alert in cross mode
        "price=151.25;symbol=AAPL".to_owned(),
        r#"{"symbol":"TSLA","price":-3,"timestamp":1}"#.to_owned(),
        r#"{"symbol":"TSLA","timestamp":1}"#.to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_dead_letters_the_malformed_and_redelivery_changes_nothing() {
    let stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, &stack.env());
    let bodies = mixed_batch();
    stack.send(&bodies).await;
    let messages = stack.receive(bodies.len()).await;
    let event = stack.event(&messages);

    let answer = api
        .invoke(event.clone(), FUNCTION_TIMEOUT, ANSWER_WAIT)
        .await;
    assert!(
        failed_ids(&answer).is_empty(),
        "rejects are done once dead-lettered: {answer:?}"
    );
    let items = stack.alert_items().await;
    let kinds: HashSet<(String, String)> = items
        .iter()
        .map(|i| (string(i, "symbol"), string(i, "kind")))
        .collect();
    assert_eq!(
        kinds,
        HashSet::from([
            ("AAPL".into(), "HIGH".into()),
            ("MSFT".into(), "LOW".into()),
            ("NVDA".into(), "HIGH".into())
        ])
    );
    assert!(items.iter().all(notified));
    assert_eq!(stack.notifications(3).await.len(), 3);

    let letters = stack.dead_letters(3).await;
    assert_eq!(letters.len(), 3);
    let by_source: std::collections::HashMap<String, &Message> = letters
        .iter()
        .map(|m| {
            (
                message_attribute(m, "source_message_id").expect("source id"),
                m,
            )
        })
        .collect();
    for (message, expected_code) in
        messages[5..]
            .iter()
            .zip(["body.malformed", "price.invalid", "price.missing"])
    {
        let letter = by_source[message.message_id().expect("id")];
        assert_eq!(letter.body(), message.body(), "the original body");
        assert_eq!(
            message_attribute(letter, "error_code").as_deref(),
            Some(expected_code)
        );
        assert!(message_attribute(letter, "reason").is_some_and(|r| !r.is_empty()));
    }

    // The same batch again (at-least-once delivery): one item and one notification per alert.
    let answer = api.invoke(event, FUNCTION_TIMEOUT, ANSWER_WAIT).await;
    assert!(failed_ids(&answer).is_empty());
    assert_eq!(stack.alert_items().await.len(), 3);
    assert!(
        stack.notifications(0).await.is_empty(),
        "nothing announced twice"
    );
    stack.settle(&messages, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_fails_every_valid_message_and_loses_nothing() {
    let stack = Stack::create().await;
    let moto = std::net::SocketAddr::from(([127, 0, 0, 1], Moto::shared().port()));
    let proxy = LatencyProxy::start(moto, 0).await;
    let mut env = stack.env();
    env.insert("AWS_ENDPOINT_URL_DYNAMODB", proxy.endpoint());
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, &env);

    // Prove the function is up (its init checks went through the proxy), then cut DynamoDB off.
    let (_, failed) = deliver(&stack, &api, &[tick("WARM", 100.0, 0)]).await;
    assert!(failed.is_empty());
    assert!(proxy.requests() > 0, "DynamoDB calls go through the proxy");
    proxy.set_mode(ProxyMode::Refuse);

    let bodies = mixed_batch();
    let (messages, failed) = deliver(&stack, &api, &bodies).await;
    let valid: Vec<String> = messages[..5]
        .iter()
        .map(|m| m.message_id().expect("id").to_owned())
        .collect();
    assert_eq!(
        failed, valid,
        "every valid message reported failed, no reject"
    );
    assert!(stack.notifications(0).await.is_empty(), "nothing published");
    assert_eq!(
        stack.dead_letters(3).await.len(),
        3,
        "rejects still dead-lettered"
    );

    // DynamoDB is back: the redelivery completes everything.
    proxy.set_mode(ProxyMode::Forward);
    let (_, failed) = redeliver(&stack, &api, 5).await;
    assert!(failed.is_empty());
    assert_eq!(stack.alert_items().await.len(), 3);
    assert_eq!(stack.notifications(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_failing_after_the_write_publishes_exactly_once_on_redelivery() {
    let stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, &stack.env());
    let (_, failed) = deliver(&stack, &api, &[tick("WARM", 100.0, 0)]).await;
    assert!(failed.is_empty());

    // The topic goes away after init: the alerts are written, the announcement fails.
    stack
        .clients
        .sns
        .delete_topic()
        .topic_arn(&stack.topic_arn)
        .send()
        .await
        .expect("DeleteTopic");
    let bodies = [
        tick("AAPL", 160.0, 1),
        tick("MSFT", 10.0, 1),
        tick("GOOGL", 90.0, 1),
    ];
    let (messages, failed) = deliver(&stack, &api, &bodies).await;
    let alerting: Vec<String> = messages[..2]
        .iter()
        .map(|m| m.message_id().expect("id").to_owned())
        .collect();
    assert_eq!(failed, alerting);
    let items = stack.alert_items().await;
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|i| !notified(i)),
        "stored, not yet announced"
    );

    // The topic is back (same name, same ARN): the redelivered ticks are stale for the state, but
    // their stored alerts are found and announced, once.
    let arn = tickwatch_aws::testing::create_topic(&stack.clients.sns, &stack.topic_name).await;
    assert_eq!(arn, stack.topic_arn);
    tickwatch_aws::testing::subscribe_queue(&stack.clients, &arn, &stack.subscriber_url, true)
        .await;
    let (_, failed) = redeliver(&stack, &api, 2).await;
    assert!(failed.is_empty());
    let notifications = stack.notifications(2).await;
    assert_eq!(notifications.len(), 2);
    let kinds: HashSet<String> = bodies_of(&notifications)
        .iter()
        .map(|b| b["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert_eq!(kinds, HashSet::from(["HIGH".into(), "LOW".into()]));
    assert!(stack.alert_items().await.iter().all(notified));

    // A third delivery announces nothing more.
    stack.send(&bodies[..1]).await;
    let (_, failed) = redeliver(&stack, &api, 1).await;
    assert!(failed.is_empty());
    assert!(stack.notifications(0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_variable_is_reported_as_an_init_error_naming_it() {
    let stack = Stack::create().await;
    let cases = [
        (
            "HIGH_THRESHOLD",
            "lots",
            "HIGH_THRESHOLD: must be a finite number",
        ),
        ("ALERT_MODE", "edge", "ALERT_MODE"),
        (
            "ALERTS_TABLE_NAME",
            "no-such-table",
            "ALERTS_TABLE_NAME: table no-such-table cannot be used",
        ),
        (
            "RULES_TABLE",
            "no-such-rules",
            "RULES_TABLE: table no-such-rules cannot be used",
        ),
    ];
    for (variable, value, expected) in cases {
        let api = RuntimeApi::start().await;
        let mut env = stack.env();
        env.insert(variable, value.to_owned());
        let mut function = Function::start(&api, &env);
        let report = api
            .init_error(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no init error for {variable}"));
        let report: Value = serde_json::from_str(&report).expect("diagnostic JSON");
        let message = report["errorMessage"].as_str().expect("errorMessage");
        assert!(message.contains(expected), "{message}");
        assert!(
            report["errorType"]
                .as_str()
                .is_some_and(|t| t.starts_with("Runtime."))
        );
        let status = tokio::time::timeout(Duration::from_secs(30), function.child.wait())
            .await
            .expect("exits after reporting")
            .expect("exit status");
        assert!(!status.success(), "{variable}: init failure exits non-zero");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_message_ids_fails_the_invocation() {
    let stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, &stack.env());
    let event = r#"{"Records":[{"body":"{}","eventSource":"aws:sqs"}]}"#.to_owned();
    let answer = api.invoke(event, FUNCTION_TIMEOUT, ANSWER_WAIT).await;
    let Answer::Error(body) = answer else {
        panic!("expected an invocation error, got {answer:?}");
    };
    assert!(body.contains("no messageId"), "{body}");
}

/// Start-up in process (the same code `bootstrap` runs at init): resource checks and their errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_checks_every_resource_and_tolerates_only_transient_failures() {
    use tickwatch_lambda::FunctionConfig;
    use tickwatch_lambda::startup::{StartupError, build, init_logging};

    init_logging(tracing::level_filters::LevelFilter::OFF);
    let stack = Stack::create().await;
    let config_with = |variable: &'static str, value: Option<&str>| {
        let mut env = stack.env();
        if let Some(value) = value {
            env.insert(variable, value.to_owned());
        }
        FunctionConfig::from_lookup(|name| env.get(name).cloned()).expect("valid config")
    };
    let moto = Moto::shared().sdk_config().await;

    let handler = build(&config_with("LOG_LEVEL", None), &moto, 7)
        .await
        .expect("every resource exists");
    let ids: Vec<String> = handler
        .pipeline()
        .rules()
        .rules()
        .iter()
        .map(|rule| rule.id().to_string())
        .collect();
    assert_eq!(ids, ["high", "low"], "the specification's rules");
    assert!(
        handler.rules().is_none(),
        "no rules table, nothing to refresh"
    );

    let missing = [
        ("ALERTS_TABLE_NAME", "missing-alerts"),
        ("STATE_TABLE_NAME", "missing-state"),
        (
            "ALERTS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:missing-topic",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "http://127.0.0.1:1/123456789012/unused",
        ),
    ];
    for (variable, value) in &missing[..3] {
        let Err(error) = build(&config_with(variable, Some(value)), &moto, 7).await else {
            panic!("{variable}={value} must fail init");
        };
        assert!(
            matches!(error, StartupError::Resource { variable: v, .. } if v == *variable),
            "{error}"
        );
        assert!(error.to_string().starts_with(variable), "{error}");
        assert_eq!(error.error_type(), "Runtime.ResourceUnavailable");
    }
    let missing_queue = format!("{}/123456789012/missing-dlq", Moto::shared().endpoint());
    let error = build(
        &config_with("DEAD_LETTER_QUEUE_URL", Some(&missing_queue)),
        &moto,
        7,
    )
    .await
    .err()
    .expect("a missing queue fails init");
    assert!(
        error.to_string().starts_with("DEAD_LETTER_QUEUE_URL"),
        "{error}"
    );

    // Nothing answers at all: transient, so the function starts and lets each message retry.
    let unreachable =
        tickwatch_aws::testing::emulator_sdk_config("http://127.0.0.1:1", "us-east-1").await;
    assert!(
        build(
            &config_with(missing[3].0, Some(missing[3].1)),
            &unreachable,
            7
        )
        .await
        .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_reach_the_runtime_api() {
    use tickwatch_lambda::startup::report_init_error;

    let api = RuntimeApi::start().await;
    report_init_error(
        api.address(),
        "Runtime.Test",
        "LOW_THRESHOLD: must be a finite number",
    )
    .await
    .expect("reported");
    let report = api
        .init_error(Duration::from_secs(5))
        .await
        .expect("received");
    let report: Value = serde_json::from_str(&report).expect("diagnostic JSON");
    assert_eq!(report["errorType"], "Runtime.Test");
    assert_eq!(
        report["errorMessage"],
        "LOW_THRESHOLD: must be a finite number"
    );

    let error = report_init_error("not a host:port", "Runtime.Test", "x")
        .await
        .expect_err("bad address");
    assert!(error.contains("AWS_LAMBDA_RUNTIME_API"), "{error}");
    let nobody = format!("127.0.0.1:{}", tickwatch_aws::testing::free_port());
    assert!(
        report_init_error(&nobody, "Runtime.Test", "x")
            .await
            .is_err()
    );
}

/// SQS hands the same message to two invocations at once now and then. Two real `bootstrap`
/// processes get the same event at the same moment, batch after batch; what fails is redelivered
/// to one of them, as SQS would. Every alert the ticks call for is stored once, marked and
/// announced, exactly as one function alone would store them. (Issue 9.6 saw an alert lost this
/// way in 1 trial of 3: the emulator's DynamoDB transactions were not isolated; see
/// ARCHITECTURE.md, "The emulator the tests trust".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_functions_given_the_same_event_at_once_store_each_alert_once() {
    const ROUNDS: i64 = 4;
    let stack = Stack::create().await;
    let (api_a, api_b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let _a = Function::start(&api_a, &stack.env());
    let _b = Function::start(&api_b, &stack.env());

    let mut all_bodies = Vec::new();
    for round in 0..ROUNDS {
        // Four symbols, each crossing high then low within the batch.
        let bodies: Vec<String> = (0..4)
            .flat_map(|s| {
                let symbol = format!("T{s}");
                let base = round * 10;
                [
                    tick(&symbol, 100.0, base + 1),
                    tick(&symbol, 160.0, base + 2),
                    tick(&symbol, 40.0, base + 3),
                ]
            })
            .collect();
        all_bodies.extend(bodies.clone());
        stack.send(&bodies).await;
        let messages = stack.receive(bodies.len()).await;
        let event = stack.event(&messages);
        let (a, b) = tokio::join!(
            api_a.invoke(event.clone(), FUNCTION_TIMEOUT, ANSWER_WAIT),
            api_b.invoke(event, FUNCTION_TIMEOUT, ANSWER_WAIT),
        );
        let mut failed: Vec<String> = failed_ids(&a);
        failed.extend(failed_ids(&b));
        failed.sort();
        failed.dedup();
        stack.settle(&messages, &failed).await;
        for _ in 0..3 {
            if failed.is_empty() {
                break;
            }
            let (_, again) = redeliver(&stack, &api_a, failed.len()).await;
            failed = again;
        }
        assert!(
            failed.is_empty(),
            "round {round}: redelivery completes: {failed:?}"
        );
    }

    // The reference: the same batches through one in-memory pipeline.
    let rig = tickwatch_core::testing::MemoryRig::new(
        tickwatch_core::testing::spec_config(
            tickwatch_core::Mode::Cross,
            tickwatch_core::retry::RetryPolicy::no_retry(),
            1,
        ),
        tickwatch_core::Timestamp::from_epoch_ms(T0_MS).expect("valid"),
    );
    for batch in all_bodies.chunks(12) {
        let batch: Vec<(usize, &str)> = batch.iter().map(String::as_str).enumerate().collect();
        tickwatch_core::testing::block_on_ready(rig.pipeline.process(batch, None));
    }
    let expected: HashSet<String> = rig
        .store
        .alerts()
        .iter()
        .map(|s| s.alert.alert_id.to_string())
        .collect();
    assert_eq!(expected.len(), (ROUNDS * 4 * 2) as usize);

    let items = stack.alert_items().await;
    let stored: Vec<String> = items.iter().map(|i| string(i, "alert_id")).collect();
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "no alert stored twice");
    assert_eq!(stored_set, expected, "exactly the reference's alerts");
    assert!(items.iter().all(notified), "all marked announced");
    // Both functions may announce an alert (the at-least-once window): drain them all.
    let announced: HashSet<String> = stack
        .notifications(2 * expected.len() + 1)
        .await
        .iter()
        .filter_map(|m| message_attribute(m, "alert_id"))
        .collect();
    assert_eq!(announced, expected, "every alert announced at least once");
}

/// A desk adds a rule while the function runs: put into the rules table (as `tickwatch rules add
/// --table` does it: planned over the base rules, which the first change seeds, and committed),
/// it applies to a tick processed once the refresh interval has passed, and the stored alert and
/// the announcement carry its rule id and label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_put_in_the_rules_table_applies_after_the_refresh_interval() {
    let stack = Stack::create().await;
    let table = tickwatch_aws::testing::fresh_rule_store(&stack.clients.dynamodb).await;
    let mut env = stack.env();
    env.insert("RULES_TABLE", table.table().to_owned());
    env.insert("RULES_REFRESH_SECONDS", "1".to_owned());
    let api = RuntimeApi::start().await;
    let function = Function::start(&api, &env);

    // The table was never written: the base rules (the specification's) are in force.
    let (_, failed) = deliver(&stack, &api, &[tick("AAPL", 210.0, 0)]).await;
    assert!(failed.is_empty());
    let rule_ids = |messages: &[Message]| -> Vec<Option<String>> {
        messages
            .iter()
            .map(|m| message_attribute(m, "rule_id"))
            .collect()
    };
    assert_eq!(
        rule_ids(&stack.notifications(1).await),
        [Some("high".into())]
    );

    add_first_rule(
        &table,
        r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"every","label":"AAPL over 200"}"#,
    )
    .await;
    // The function checks the table at most once a second. Waiting out that second is the
    // behaviour under test (how long a warm instance may run on the old rules), not a wait for
    // something to finish.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let (_, failed) = deliver(&stack, &api, &[tick("AAPL", 211.0, 1)]).await;
    assert!(failed.is_empty());
    // `high` fired at 210 and stays fired (seeding kept its version, so its state); the new rule
    // fires on every tick above 200.
    let items: Vec<_> = stack
        .alert_items()
        .await
        .into_iter()
        .filter(|item| string(item, "tick_time") == "2026-11-26T14:30:01.000Z")
        .collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(string(&items[0], "rule_id"), "aapl-200");
    assert_eq!(
        string(&items[0], "timestamp"),
        "2026-11-26T14:30:01.000Z#aapl-200"
    );
    assert_eq!(string(&items[0], "label"), "AAPL over 200");
    assert_eq!(string(&items[0], "fire"), "every");
    assert_eq!(string(&items[0], "threshold"), "200");
    assert!(notified(&items[0]));
    let notifications = stack.notifications(1).await;
    assert_eq!(rule_ids(&notifications), [Some("aapl-200".into())]);
    let alert = &bodies_of(&notifications)[0];
    assert_eq!(alert["rule_id"], "aapl-200");
    assert_eq!(alert["label"], "AAPL over 200");
    assert_eq!(
        message_attribute(&notifications[0], "alert_id"),
        Some(string(&items[0], "alert_id"))
    );
    assert!(
        function
            .lines()
            .iter()
            .any(|line| line.contains("Rules changed")),
        "the reload is logged"
    );
}

/// The alert items raised by rule `rule`.
async fn alert_items_of(
    stack: &Stack,
    rule: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    stack
        .alert_items()
        .await
        .into_iter()
        .filter(|item| string(item, "rule_id") == rule)
        .collect()
}

/// A window rule in the rules table when the function starts (so init loads it), fed batch after
/// batch by two instances in turn over 40 minutes of tick time. Its window lives in the symbol's
/// state item, so each instance judges a tick against the lows the other one recorded: the rise
/// from the window's low fires once, holding fires nothing more, and neither a redelivered batch
/// nor a late tick (both stale) changes the window. A late tick's lower price never becomes the
/// low: the re-armed rule stays quiet on a price that is 10 % above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_rule_fires_once_across_batches_and_instances_and_stale_ticks_feed_nothing() {
    use tickwatch_core::rules::{Phase, decode_rule_states};

    let stack = Stack::create().await;
    let table = tickwatch_aws::testing::fresh_rule_store(&stack.clients.dynamodb).await;
    add_first_rule(
        &table,
        r#"{"id":"aapl-rise","symbols":"AAPL","condition":"rise 10% within 1h","fire":"enter","label":"AAPL up 10% in an hour"}"#,
    )
    .await;
    // Committed before the functions start: both load it at init, there is no refresh to await.
    // The prices stay within 50 ..= 150, so the base rules `high` and `low` never fire.
    let mut env = stack.env();
    env.insert("RULES_TABLE", table.table().to_owned());
    let (api_a, api_b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let a = Function::start(&api_a, &env);
    let b = Function::start(&api_b, &env);
    let deliver_ok = |api, bodies: Vec<String>| {
        let stack = &stack;
        async move {
            let (messages, failed) = deliver(stack, api, &bodies).await;
            assert!(failed.is_empty(), "{bodies:?}: {failed:?}");
            messages
        }
    };

    // Batch 1 (A): the window's first tick, its low.
    deliver_ok(&api_a, vec![tick("AAPL", 100.0, 0)]).await;
    // Batch 2 (B): up 5 %, not 10.
    deliver_ok(
        &api_b,
        vec![tick("AAPL", 104.0, 300), tick("AAPL", 105.0, 600)],
    )
    .await;
    assert!(alert_items_of(&stack, "aapl-rise").await.is_empty());
    // Batch 3 (A): 110.5 is 10.5 % above the low of 100: it fires.
    let risen = deliver_ok(&api_a, vec![tick("AAPL", 110.5, 900)]).await;
    let items = alert_items_of(&stack, "aapl-rise").await;
    assert_eq!(items.len(), 1, "{items:?}");
    let notifications = stack.notifications(1).await;
    assert_eq!(notifications.len(), 1, "announced once");
    // Batch 4 (B): still 10 % above the low; `enter` fired already, so nothing new.
    deliver_ok(
        &api_b,
        vec![tick("AAPL", 112.0, 1_200), tick("AAPL", 115.0, 1_500)],
    )
    .await;
    // Batch 3 redelivered (A), the same messages: stale for the state; the alert they raised is
    // found, already announced.
    let answer = api_a
        .invoke(stack.event(&risen), FUNCTION_TIMEOUT, ANSWER_WAIT)
        .await;
    assert!(failed_ids(&answer).is_empty(), "{answer:?}");
    // Batch 5 (B): 104 is less than 10 % above the low: the rule re-arms.
    deliver_ok(&api_b, vec![tick("AAPL", 104.0, 1_800)]).await;
    // Batch 6 (A): a late tick, older than batch 2 and far below the low: stale.
    deliver_ok(&api_a, vec![tick("AAPL", 90.0, 200)]).await;
    // Batch 7 (B): 99.5 is at least 10 % above 90 (99) but is itself the window's low now. Had
    // the late tick reached the window, the re-armed rule would fire here.
    deliver_ok(&api_b, vec![tick("AAPL", 99.5, 2_400)]).await;

    // One alert in all, the rise's, stored with what the rule said and announced once.
    let items = stack.alert_items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(string(item, "rule_id"), "aapl-rise");
    assert_eq!(string(item, "condition"), "rise 10% within 1h");
    assert_eq!(string(item, "kind"), "HIGH");
    assert_eq!(
        string(item, "threshold"),
        "110",
        "the low of 100, plus 10 %"
    );
    assert_eq!(string(item, "price"), "110.5");
    assert_eq!(string(item, "label"), "AAPL up 10% in an hour");
    assert_eq!(string(item, "fire"), "enter");
    assert_eq!(string(item, "tick_time"), "2026-11-26T14:45:00.000Z");
    assert_eq!(
        string(item, "timestamp"),
        "2026-11-26T14:45:00.000Z#aapl-rise"
    );
    assert!(notified(item));
    assert_eq!(
        message_attribute(&notifications[0], "rule_id").as_deref(),
        Some("aapl-rise")
    );
    assert_eq!(
        message_attribute(&notifications[0], "alert_id"),
        Some(string(item, "alert_id"))
    );
    let alert = &bodies_of(&notifications)[0];
    assert_eq!(alert["condition"], "rise 10% within 1h");
    assert_eq!(alert["label"], "AAPL up 10% in an hour");
    assert_eq!(alert["threshold"].as_f64(), Some(110.0));
    assert!(
        stack.notifications(0).await.is_empty(),
        "nothing announced after batch 3"
    );
    assert!(stack.dead_letters(0).await.is_empty(), "nothing rejected");

    // The window is in AAPL's state item: the rule re-armed, its hour holds the ticks of 8
    // one-minute intervals (minutes 0, 5, 10, 15, 20, 25, 30 and 40), not the late tick's 3.
    let state = stack.state_item("AAPL").await.expect("state stored");
    assert_eq!(string(&state, "last_seen"), (T0_MS + 2_400_000).to_string());
    let Some(AttributeValue::B(bytes)) = state.get("rules") else {
        panic!("attribute rules is not binary: {state:?}");
    };
    let rules = decode_rule_states(bytes.as_ref()).expect("rule states");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].rule.as_str(), "aapl-rise");
    assert_eq!(rules[0].phase, Phase::Armed);
    let window = rules[0].window.as_ref().expect("a window");
    assert_eq!(window.intervals_with_ticks(), 8, "{window:?}");

    // Each instance loaded the three rules at init.
    for (name, function) in [("A", &a), ("B", &b)] {
        let loaded: Vec<Value> = function
            .lines()
            .iter()
            .filter(|line| line.contains("Rules loaded."))
            .map(|line| serde_json::from_str(line).expect("JSON log line"))
            .collect();
        assert_eq!(loaded.len(), 1, "instance {name}: {loaded:?}");
        assert_eq!(loaded[0]["rules"], 3, "instance {name}");
    }
}
