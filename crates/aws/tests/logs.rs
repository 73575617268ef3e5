//! What the SQS worker path writes to the logs: at `info` (the Lambda function's default; the
//! `tickwatch` command logs only warnings by default, less than this) no message body and no
//! credential appears, for any crate, the SDK's included. At `debug` a bounded excerpt of a
//! rejected body does appear, by design (`BODY_LOG_CHARS_MAX`), which also shows the capture
//! below would catch a body.
//!
//! One test in its own binary: the log subscriber is per thread, and the worker runs on a
//! current-thread runtime, so every event of the run (SDK tasks included) reaches it.

use aws_config::{BehaviorVersion, Region};
use tickwatch_aws::testing::{
    LogSink, Moto, REGION, create_queue, create_topic, fresh_store, send_bodies, unique_name,
};
use tickwatch_aws::{
    AwsClients, FixedRules, RunUntil, SnsNotifier, SqsDeadLetterQueue, WorkerOptions,
};
use tickwatch_clock::SystemClock;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::testing::spec_rules;
use tickwatch_core::{Mode, Pipeline, PipelineConfig};
use tracing::Level;

/// A value no log line contains by chance.
fn marker(what: &str) -> String {
    format!("tickwatch-{what}-{}", std::process::id())
}

/// Bodies carrying `tag` in an ignored field: valid ones (one alerting) and rejected ones.
fn bodies(tag: &str) -> Vec<String> {
    let note = marker(&format!("body-{tag}"));
    vec![
        format!(r#"{{"symbol":"LOGA","price":151,"timestamp":1795703400000,"note":"{note}-1"}}"#),
        format!(r#"{{"symbol":"LOGB","price":100,"timestamp":1795703400000,"note":"{note}-2"}}"#),
        format!(r#"{{"symbol":"LOGC","price":-1,"timestamp":1795703400000,"note":"{note}-3"}}"#),
        format!(r#"{{"symbol":"LOGD","timestamp":1795703400000,"note":"{note}-4"}}"#),
        format!("not json {note}-5"),
    ]
}

/// Sends `bodies`, runs the worker until the queue is empty with logs at `level`, returns them.
fn run_logged(level: Level, credentials: &[String; 3], bodies: &[String]) -> String {
    let captured = LogSink::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_span_list(true)
        .with_writer(move || sink.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let moto = Moto::shared();
            let config = aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(moto.endpoint())
                .region(Region::new(REGION))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    &credentials[0],
                    &credentials[1],
                    Some(credentials[2].clone()),
                    None,
                    "log-test",
                ))
                .retry_config(tickwatch_aws::config::retry_config())
                .timeout_config(tickwatch_aws::config::timeout_config())
                .load()
                .await;
            let clients = AwsClients::new(&config);
            let store = fresh_store(&clients.dynamodb).await;
            let topic = create_topic(&clients.sns, &unique_name("alerts")).await;
            let queue = create_queue(&clients.sqs, &unique_name("ticks"), &[]).await;
            let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
            send_bodies(&clients.sqs, &queue, bodies).await;
            let pipeline = Pipeline::new(
                PipelineConfig {
                    rules: spec_rules(Mode::Cross),
                    retry: RetryPolicy::new(4, 50, 1_000).expect("valid"),
                    jitter_seed: 1,
                },
                store,
                SnsNotifier::new(clients.sns.clone(), &topic),
                SystemClock,
            );
            let options = WorkerOptions {
                queue_url: queue,
                wait_time_s: 1,
                messages_per_receive: 10,
                visibility_timeout_s: 30,
                run_until: RunUntil::QueueEmpty,
                metrics_service: None,
            };
            let report = tickwatch_aws::worker::run(
                &clients.sqs,
                &options,
                &pipeline,
                &SqsDeadLetterQueue::new(clients.sqs.clone(), dlq),
                &FixedRules,
                std::future::pending(),
            )
            .await
            .expect("worker runs");
            assert_eq!(
                (report.received, report.dead_lettered, report.stats.alerts),
                (bodies.len() as u64, 3, 1),
                "{report:?}"
            );
        });
    });
    captured.text()
}

#[test]
fn no_body_and_no_credential_reaches_the_logs_at_info() {
    let credentials = [
        marker("access-key-id"),
        marker("secret-access-key"),
        marker("session-token"),
    ];

    let info_bodies = bodies("info");
    let info = run_logged(Level::INFO, &credentials, &info_bodies);
    assert!(
        info.contains("Alert raised.") && info.contains("Tick rejected"),
        "the capture works: {info}"
    );
    let mut leaks: Vec<String> = Vec::new();
    for secret in &credentials {
        if info.contains(secret.as_str()) {
            leaks.push(format!("credential {secret}"));
        }
    }
    let body_marker = marker("body-info");
    if info.contains(&body_marker) {
        leaks.push("a body (or a part of one)".into());
    }
    assert!(leaks.is_empty(), "at info the logs hold {leaks:?}:\n{info}");

    // At debug the excerpt of a rejected body is logged on purpose: the check above has teeth.
    let debug_bodies = bodies("debug");
    let debug = run_logged(Level::DEBUG, &credentials, &debug_bodies);
    assert!(
        debug.contains(&marker("body-debug")),
        "at debug a rejected body's excerpt is logged"
    );
    // Valid bodies are never logged, at any level.
    for valid in &debug_bodies[..2] {
        let escaped = serde_json::to_string(valid).expect("string");
        assert!(
            !debug.contains(&escaped[1..escaped.len() - 1]),
            "a valid body in the debug log: {valid}"
        );
    }
    let secret_at_debug: Vec<&String> = credentials
        .iter()
        .filter(|s| debug.contains(s.as_str()))
        .collect();
    println!(
        "debug level: {} bytes of logs; credentials seen: {secret_at_debug:?}",
        debug.len()
    );
}
