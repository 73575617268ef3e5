//! Benchmarks of the Lambda function (issue 3, "Speed"):
//!
//! * `latency`: wall time of one batch of 25 alert-raising messages through the real handler and
//!   adapters, against a stub AWS endpoint (below) that answers every DynamoDB and SNS call after
//!   N ms, N = 0, 20, 50. Target: at most 4x N. For reference, the same batch against moto behind
//!   a proxy adding the same N.
//! * `cold`: process start of the real `bootstrap` to its first batch response under the Runtime
//!   API emulator (init included: configuration, clients, resource checks), against the stub.
//! * `memory`: peak resident memory (VmHWM) of `bootstrap` over 1,000 batches of 25 messages (a
//!   random walk over 200 symbols), against the stub. Target: under 30 MB.
//! * `cost`: dollars per million ticks (issue 13, part 3). For three markets (quiet: 50 symbols, 1 %
//!   of ticks alert; busy: 50 symbols, 25 %; 10,000 symbols, 1 %), full batches of generated
//!   ticks go through the real `bootstrap` under the Runtime API emulator against the stub
//!   (N = 0). The bench counts what AWS would bill: calls by API, DynamoDB write and read units
//!   from the items in the request bodies (DynamoDB's documented size rule, per started KB, twice
//!   in a transaction), SNS requests per 64 KB, the bytes the function logs (its stdout, at the
//!   default level `info`), and the function's CPU time per batch; then it prices them at
//!   us-east-1 list prices, with stated per-call latencies on AWS for the billed duration, beside
//!   the specification's design (one `PutItem` and one `Publish` per alert, in Python).
//!
//! The stub answers DynamoDB, SNS and SQS calls with minimal successful responses (no state: every
//! symbol looks new, so every tick beyond a threshold raises an alert), keeping connections alive
//! as AWS does. It isolates our own cost plus the injected latency from moto's, which is slow and
//! grows with the data it holds (its transactions copy every table).
//!
//! Run: `cargo bench -p tickwatch-lambda --bench batch [-- latency|cold|memory|cost]`.

#[path = "../tests/e2e/runtime_api.rs"]
#[allow(dead_code, unreachable_pub)]
mod runtime_api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use runtime_api::{Answer, RuntimeApi};
use tickwatch_aws::AwsClients;
use tickwatch_aws::testing::{
    LatencyProxy, Moto, create_queue, create_topic, fresh_store, unique_name,
};
use tickwatch_core::Timestamp;
use tickwatch_core::generate::RandomWalk;
use tickwatch_lambda::FunctionConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Messages per batch (the deployed event source mapping's batch size).
const BATCH_MESSAGES: usize = 25;
/// How much to measure: the full run (`cargo bench`), or a smoke run that only proves the
/// benchmarks work (`cargo test --all-targets` runs bench targets without `--bench`).
#[derive(Clone, Copy)]
struct Settings {
    /// Batches timed per latency setting.
    latency_rounds: usize,
    /// Batches timed per setting against moto (0: skip moto).
    moto_rounds: usize,
    /// Per-call latencies measured, in milliseconds.
    latencies_ms: &'static [u64],
    /// Cold starts measured.
    cold_starts: usize,
    /// Batches in the memory run.
    memory_batches: usize,
    /// Batches whose CPU time is measured (at N = 0).
    cpu_batches: usize,
    /// Batches fed to the function per cost scenario.
    cost_batches: usize,
}

const FULL: Settings = Settings {
    latency_rounds: 20,
    moto_rounds: 5,
    latencies_ms: &[0, 20, 50],
    cold_starts: 10,
    memory_batches: 1_000,
    cpu_batches: 500,
    cost_batches: 10_000,
};

const SMOKE: Settings = Settings {
    latency_rounds: 1,
    moto_rounds: 0,
    latencies_ms: &[0, 5],
    cold_starts: 1,
    memory_batches: 10,
    cpu_batches: 2,
    cost_batches: 20,
};
/// Longest wait for any one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// A stub of the DynamoDB, SNS and SQS endpoints: every call succeeds after `delay_ms`.
struct StubAws {
    endpoint: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Requests by API operation (`TransactWriteItems`, `PublishBatch`, ...).
    by_operation: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    /// TCP connections accepted. Clients keep connections alive, so this is how many they opened.
    connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Every request answered, in order, when recording ([`StubAws::recording`]).
    calls: Option<std::sync::Arc<std::sync::Mutex<Vec<StubCall>>>>,
}

/// One request the stub answered.
struct StubCall {
    /// The API operation (`PutItem`, `PublishBatch`, ...).
    operation: String,
    /// The request body: JSON (DynamoDB, SQS) or a form-encoded query (SNS).
    body: String,
}

impl StubAws {
    async fn start(delay_ms: u64) -> StubAws {
        StubAws::launch(delay_ms, false).await
    }

    /// A stub answering at once that also keeps every request for [`StubAws::take_calls`].
    async fn recording() -> StubAws {
        StubAws::launch(0, true).await
    }

    async fn launch(delay_ms: u64, record: bool) -> StubAws {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let by_operation: std::sync::Arc<
            std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
        > = std::sync::Arc::default();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let calls = record.then(std::sync::Arc::default);
        let counter = requests.clone();
        let operations = std::sync::Arc::clone(&by_operation);
        let (accepted, recorded) = (connections.clone(), calls.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let counter = counter.clone();
                let operations = std::sync::Arc::clone(&operations);
                let recorded: Option<std::sync::Arc<std::sync::Mutex<Vec<StubCall>>>> =
                    recorded.clone();
                tokio::spawn(async move {
                    let (reader, mut writer) = stream.into_split();
                    let mut reader = BufReader::new(reader);
                    while let Some((target, body)) = stub_request(&mut reader).await {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let operation = match target.rsplit('.').next() {
                            Some(op) if !op.is_empty() => op.to_owned(),
                            _ => body
                                .split('&')
                                .find_map(|pair| pair.strip_prefix("Action="))
                                .unwrap_or("?")
                                .to_owned(),
                        };
                        *operations
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .entry(operation.clone())
                            .or_insert(0) += 1;
                        // Recorded before the answer, so a batch's calls are all in when the
                        // function's response arrives.
                        if let Some(recorded) = &recorded {
                            recorded
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(StubCall {
                                    operation,
                                    body: body.clone(),
                                });
                        }
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let (content_type, answer) = stub_answer(&target, &body);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: stub\r\n\r\n{answer}",
                            answer.len()
                        );
                        if writer.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StubAws {
            endpoint,
            requests,
            by_operation,
            connections,
            calls,
        }
    }

    /// The requests answered since the last call (none unless recording).
    fn take_calls(&self) -> Vec<StubCall> {
        self.calls.as_ref().map_or_else(Vec::new, |calls| {
            std::mem::take(
                &mut *calls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        })
    }

    fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn by_operation(&self) -> std::collections::BTreeMap<String, u64> {
        self.by_operation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// CPU time this process has used (user + system, every thread), in ms, from `/proc/self/stat`
/// (clock ticks of 10 ms: measure many batches).
fn process_cpu_ms() -> f64 {
    stat_cpu_ms("/proc/self/stat")
}

/// CPU time (user + system, every thread, exited ones included) in the `stat` file at `path`, in
/// ms (clock ticks of 10 ms).
fn stat_cpu_ms(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) * 10.0
}

/// Reads one request: its `X-Amz-Target` (JSON protocols) and body.
async fn stub_request<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<(String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let (mut target, mut length) = (String::new(), 0usize);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await.ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "x-amz-target" => target = value.trim().to_owned(),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((target, String::from_utf8_lossy(&body).into_owned()))
}

/// A successful answer to a call.
fn stub_answer(target: &str, body: &str) -> (&'static str, String) {
    const JSON: &str = "application/x-amz-json-1.0";
    const XML: &str = "text/xml";
    match target.split('.').next_back().unwrap_or("") {
        "DescribeTable" => (JSON, r#"{"Table":{"TableName":"stub","TableStatus":"ACTIVE"}}"#.into()),
        "BatchGetItem" => (JSON, r#"{"Responses":{},"UnprocessedKeys":{}}"#.into()),
        // The rules table of the `cold` variant with RULES_TABLE: version 2, the two default
        // rules stored (what a deployment whose rules were changed once holds).
        "GetItem" if body.contains(RULES_TABLE_BENCH) => (
            JSON,
            r##"{"Item":{"rule_id":{"S":"#version"},"version":{"N":"2"}}}"##.into(),
        ),
        "Scan" => (
            JSON,
            r##"{"Count":3,"ScannedCount":3,"Items":[
                {"rule_id":{"S":"#version"},"version":{"N":"2"}},
                {"rule_id":{"S":"high"},"version":{"N":"1"},"definition":{"S":"{\"id\":\"high\",\"symbols\":\"*\",\"condition\":\"above 150\"}"}},
                {"rule_id":{"S":"low"},"version":{"N":"1"},"definition":{"S":"{\"id\":\"low\",\"symbols\":\"*\",\"condition\":\"below 50\"}"}}
            ]}"##
                .into(),
        ),
        "GetQueueAttributes" => (JSON, r#"{"Attributes":{}}"#.into()),
        "" if body.contains("Action=PublishBatch") => {
            // Query protocol: echo every entry id as successful.
            let members: String = body
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .filter(|(key, _)| key.starts_with("PublishBatchRequestEntries.member.") && key.ends_with(".Id"))
                .map(|(_, id)| format!("<member><Id>{id}</Id><MessageId>stub-{id}</MessageId></member>"))
                .collect();
            (XML, format!(
                r#"<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>{members}</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></PublishBatchResponse>"#
            ))
        }
        "" if body.contains("Action=GetTopicAttributes") => (XML, r#"<GetTopicAttributesResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><GetTopicAttributesResult><Attributes/></GetTopicAttributesResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></GetTopicAttributesResponse>"#.into()),
        // PutItem, UpdateItem, TransactWriteItems: an empty object is a full success.
        _ => (JSON, "{}".into()),
    }
}

/// The rules table the stub answers for.
const RULES_TABLE_BENCH: &str = "rules-bench";

/// The stub's function environment.
fn stub_env() -> HashMap<&'static str, String> {
    HashMap::from([
        ("ALERTS_TABLE_NAME", "alerts-bench".to_owned()),
        ("STATE_TABLE_NAME", "state-bench".to_owned()),
        (
            "ALERTS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:alerts-bench".to_owned(),
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/dlq-bench".to_owned(),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME", "tickwatch-bench".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ])
}

struct Resources {
    clients: AwsClients,
    env: HashMap<&'static str, String>,
}

async fn resources(moto: &Moto) -> Resources {
    let clients = moto.clients().await;
    let store = fresh_store(&clients.dynamodb).await;
    let topic = create_topic(&clients.sns, &unique_name("alerts")).await;
    let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
    let env = HashMap::from([
        ("ALERTS_TABLE_NAME", store.alerts_table().to_owned()),
        ("STATE_TABLE_NAME", store.state_table().to_owned()),
        ("ALERTS_TOPIC_ARN", topic),
        ("DEAD_LETTER_QUEUE_URL", dlq),
        ("AWS_LAMBDA_FUNCTION_NAME", "tickwatch-bench".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ]);
    Resources { clients, env }
}

/// An SQS event of `bodies`.
fn event(bodies: &[String], batch: usize) -> String {
    let ids: Vec<String> = (0..bodies.len())
        .map(|i| format!("bench-{batch}-{i}"))
        .collect();
    event_with_ids(bodies, &ids)
}

/// An SQS event of `bodies` with the message ids `ids`.
fn event_with_ids(bodies: &[String], ids: &[String]) -> String {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .zip(ids)
        .map(|(body, id)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": "handle",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ticks",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// 25 ticks that each raise an alert: fresh symbols, prices above the high threshold.
fn alerting_bodies(round: usize) -> Vec<String> {
    (0..BATCH_MESSAGES)
        .map(|i| {
            format!(
                r#"{{"symbol":"B{round}X{i}","price":{},"timestamp":{}}}"#,
                151 + i,
                1_795_703_400_000 + i as i64
            )
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "min {:.1}  median {:.1}  p90 {:.1}  max {:.1}",
        samples[0],
        percentile(samples, 0.5),
        percentile(samples, 0.9),
        samples[samples.len() - 1]
    )
}

/// Times `rounds` batches of 25 alert-raising messages (after one untimed batch that opens the
/// connections); returns the wall times in ms and the median number of HTTP calls per batch.
async fn time_batches(
    handler: &tickwatch_lambda::startup::LambdaHandler,
    rounds: usize,
    requests: &dyn Fn() -> u64,
) -> (Vec<f64>, u64) {
    let mut samples = Vec::new();
    let mut calls = Vec::new();
    for round in 0..rounds + 1 {
        let payload: SqsEvent =
            serde_json::from_str(&event(&alerting_bodies(round), round)).expect("event");
        let requests_before = requests();
        let started = Instant::now();
        let response = handler
            .handle(LambdaEvent::new(payload, Context::default()))
            .await
            .expect("handled");
        let elapsed = started.elapsed().as_secs_f64() * 1_000.0;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        if round > 0 {
            samples.push(elapsed);
            calls.push(requests() - requests_before);
        }
    }
    calls.sort_unstable();
    (samples, calls[calls.len() / 2])
}

fn report(label: &str, delay_ms: u64, samples: &mut [f64], calls: u64) {
    let line = summary(samples);
    let ratio = if delay_ms > 0 {
        format!(
            "  -> median = {:.2}x N",
            percentile(samples, 0.5) / delay_ms as f64
        )
    } else {
        String::new()
    };
    println!(
        "{label} N = {delay_ms:>2} ms: batch ms {line} ({} batches, {calls} HTTP calls per batch){ratio}",
        samples.len()
    );
}

async fn latency(settings: Settings) {
    println!("== latency: one batch of {BATCH_MESSAGES} alert-raising messages, cross mode");
    for &delay_ms in settings.latencies_ms {
        let stub = StubAws::start(delay_ms).await;
        let env = stub_env();
        let config = FunctionConfig::from_lookup(|name| env.get(name).cloned()).expect("config");
        let sdk = tickwatch_aws::testing::emulator_sdk_config(&stub.endpoint, "us-east-1").await;
        let handler = tickwatch_lambda::startup::build(&config, &sdk, 1)
            .await
            .expect("handler");
        let before = stub.by_operation();
        let (mut samples, calls) =
            time_batches(&handler, settings.latency_rounds, &|| stub.requests()).await;
        report("stub", delay_ms, &mut samples, calls);
        // Every batch of the run (the untimed first one too) is the same: calls per batch by API.
        let batches = (settings.latency_rounds + 1) as f64;
        let by_api: Vec<String> = stub
            .by_operation()
            .into_iter()
            .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .map(|(op, n)| format!("{op} {:.1}", n as f64 / batches))
            .collect();
        println!("  calls per batch by API: {}", by_api.join(", "));
        if delay_ms == 0 && settings.cpu_batches > 0 {
            // CPU per batch over many batches (the clock ticks are 10 ms).
            let cpu_before = process_cpu_ms();
            time_batches(&handler, settings.cpu_batches, &|| stub.requests()).await;
            let cpu_ms = process_cpu_ms() - cpu_before;
            println!(
                "  process CPU per batch: {:.2} ms over {} batches (the stub's own included)",
                cpu_ms / (settings.cpu_batches + 1) as f64,
                settings.cpu_batches + 1
            );
        }
    }
    // moto as the endpoint (slower, and slower as it fills up): fewer rounds, for reference.
    if settings.moto_rounds == 0 {
        return;
    }
    let moto = Moto::shared();
    let upstream = SocketAddr::from(([127, 0, 0, 1], moto.port()));
    for delay_ms in [0, 50] {
        let proxy = LatencyProxy::start(upstream, delay_ms).await;
        let resources = resources(moto).await;
        let config =
            FunctionConfig::from_lookup(|name| resources.env.get(name).cloned()).expect("config");
        let sdk = tickwatch_aws::testing::emulator_sdk_config(&proxy.endpoint(), "us-east-1").await;
        let handler = tickwatch_lambda::startup::build(&config, &sdk, 1)
            .await
            .expect("handler");
        let (mut samples, calls) =
            time_batches(&handler, settings.moto_rounds, &|| proxy.requests()).await;
        report("moto", delay_ms, &mut samples, calls);
        let _ = &resources.clients;
    }
}

fn bootstrap_command(
    api: &RuntimeApi,
    env: &HashMap<&'static str, String>,
    endpoint: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3072")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // Under `cargo llvm-cov`, keep the coverage profile where the tool collects it.
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        command.env("LLVM_PROFILE_FILE", profile);
    }
    command
}

async fn cold(settings: Settings) {
    let base = stub_env();
    let mut with_table = stub_env();
    with_table.insert("RULES_TABLE", RULES_TABLE_BENCH.to_owned());
    for (env, what) in [
        (base, "the rules of the variables"),
        (
            with_table,
            "RULES_TABLE: its version read, then its rules scanned",
        ),
    ] {
        cold_starts(&settings, &env, what).await;
    }
}

async fn cold_starts(settings: &Settings, env: &HashMap<&'static str, String>, what: &str) {
    println!(
        "== cold start: process start to first batch response ({BATCH_MESSAGES} alert-raising messages, stub endpoint, N = 0; {what})"
    );
    let stub = StubAws::start(0).await;
    let mut samples = Vec::new();
    for round in 0..settings.cold_starts {
        let api = RuntimeApi::start().await;
        let payload = event(&alerting_bodies(round), round);
        let started = Instant::now();
        let child = bootstrap_command(&api, env, &stub.endpoint)
            .spawn()
            .expect("bootstrap");
        let answer = api
            .invoke(payload, Duration::from_secs(60), ANSWER_WAIT)
            .await;
        samples.push(started.elapsed().as_secs_f64() * 1_000.0);
        assert!(matches!(answer, Answer::Response(_)), "{answer:?}");
        drop(child);
    }
    println!(
        "start to first response ms: {} ({} starts)",
        summary(&mut samples),
        settings.cold_starts
    );
}

async fn memory(settings: Settings) {
    println!(
        "== memory: VmHWM of bootstrap over {} batches of {BATCH_MESSAGES} messages (stub endpoint, N = 0)",
        settings.memory_batches
    );
    let stub = StubAws::start(0).await;
    let env = stub_env();
    let api = RuntimeApi::start().await;
    let child = bootstrap_command(&api, &env, &stub.endpoint)
        .spawn()
        .expect("bootstrap");
    let pid = child.id().expect("pid");
    let start = Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid");
    let mut walk = RandomWalk::new(200, 42, start);
    let started = Instant::now();
    let mut after_first_kib = 0;
    for batch in 0..settings.memory_batches {
        let bodies: Vec<String> = walk
            .by_ref()
            .take(BATCH_MESSAGES)
            .map(|t| {
                let mut line = Vec::new();
                t.write_ndjson(&mut line);
                String::from_utf8_lossy(&line).trim_end().to_owned()
            })
            .collect();
        let answer = api
            .invoke(event(&bodies, batch), Duration::from_secs(60), ANSWER_WAIT)
            .await;
        assert!(matches!(answer, Answer::Response(_)), "{answer:?}");
        if batch == 0 {
            after_first_kib = status_kib(pid, "VmHWM:");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let hwm_kib = status_kib(pid, "VmHWM:");
    let rss_kib = status_kib(pid, "VmRSS:");
    println!(
        "VmHWM after batch 1: {:.1} MB; after {} batches: VmHWM {:.1} MB, VmRSS {:.1} MB ({elapsed:.1} s, {:.1} batches/s)",
        after_first_kib as f64 / 1024.0,
        settings.memory_batches,
        hwm_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
        settings.memory_batches as f64 / elapsed
    );
    drop(child);
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

fn main() {
    let settings = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        println!("(smoke run: `cargo bench` measures for real)");
        SMOKE
    };
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if wanted("latency") {
            latency(settings).await;
        }
        if wanted("cold") {
            cold(settings).await;
        }
        if wanted("memory") {
            memory(settings).await;
        }
        if wanted("cost") {
            cost::run(settings).await;
        }
    });
}

/// The `cost` variant: dollars per million ticks (issue 13, part 3). BENCHMARKS.md, section 7,
/// quotes its output and says where each price and assumption comes from.
///
/// What is counted, per scenario, from `bootstrap` running full batches against the recording
/// stub: every call by API; DynamoDB write units from the items in the request bodies (sized by
/// the rule in `tickwatch_aws::testing::item_size_bytes`, per started KB, on the larger of the old
/// and new item, twice inside `TransactWriteItems`; a mark-notified update on the alert item it
/// updates); read units per key read; SNS requests per 64 KB of each `PublishBatch`; the bytes of
/// every line the function writes to stdout (what Lambda sends to CloudWatch Logs); the function's
/// CPU time per batch (`/proc/PID/task/*/schedstat`). What is modelled, with the constants below:
/// the event source mapping's SQS calls and the producer's, Lambda's own log events, round trips
/// on AWS, CPU at a given memory size, and the specification's Python design.
///
/// The stub keeps no state but accepts every conditional write, so the state the function caches
/// after each write is the truth, as for a single instance on AWS: rules fire on enter and re-arm
/// as they would there (the achieved alert share, printed, checks it).
mod cost {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::Value;
    use tickwatch_aws::testing::{item_size_bytes, write_units};
    use tickwatch_core::retry::Rng;
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::runtime_api::{Answer, RuntimeApi};
    use super::{
        ANSWER_WAIT, BATCH_MESSAGES, RULES_TABLE_BENCH, Settings, StubAws, StubCall,
        bootstrap_command, event_with_ids, status_kib, stub_env,
    };

    /// us-east-1 list prices in dollars per unit, as published when looked up on 2026-11-30
    /// (BENCHMARKS.md, section 7, names the page of each). Free tiers are left out: they are per
    /// account and month, not per tick.
    mod price {
        /// Lambda duration on arm64, first tier (the first 7.5 billion GB-seconds a month).
        pub(super) const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
        /// Lambda requests (one per invocation).
        pub(super) const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
        /// SQS standard queue requests (each 64 KB chunk of a payload is one request).
        pub(super) const SQS_REQUEST: f64 = 0.40 / 1e6;
        /// DynamoDB on-demand write request unit (Standard table class).
        pub(super) const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
        /// DynamoDB on-demand read request unit (Standard table class).
        pub(super) const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
        /// SNS standard topic requests (each 64 KB chunk of published data is one request).
        pub(super) const SNS_REQUEST: f64 = 0.50 / 1e6;
        /// KMS requests (symmetric keys).
        pub(super) const KMS_REQUEST: f64 = 0.03 / 1e4;
        /// CloudWatch Logs ingestion, Standard class (Lambda logs: first 10 TB a month), per GB.
        pub(super) const LOGS_INGESTED_GB: f64 = 0.50;
    }

    /// The function's memory in the module (`lambda_memory_mb`, the specification's 3 GB).
    const MEMORY_DEFAULT_MB: f64 = 3_072.0;
    /// The memory size it is compared with.
    const MEMORY_SMALL_MB: f64 = 1_024.0;
    /// Lambda gives one vCPU at 1,769 MB and CPU in proportion to memory below that. The function
    /// runs on one thread, so CPU beyond one vCPU does not make it faster.
    const ONE_VCPU_MB: f64 = 1_769.0;

    /// Round trips assumed on AWS (same region, warm connections), per sequential round of calls.
    /// The calls of one round go out side by side, so a round takes about as long as its slowest.
    const PUT_ROUND_MS: f64 = 6.0;
    /// A round with a `TransactWriteItems` (state puts with alert inserts, or the marks).
    const TRANSACT_ROUND_MS: f64 = 12.0;
    /// A round of reads (`BatchGetItem`, the rules table's version item).
    const READ_ROUND_MS: f64 = 6.0;
    /// A round of `PublishBatch` calls (a KMS-encrypted topic).
    const PUBLISH_ROUND_MS: f64 = 15.0;
    /// A round of `SendMessageBatch` to the dead-letter queue.
    const SEND_ROUND_MS: f64 = 8.0;

    /// Lambda's own log events per invocation, at the module's `system_log_level` INFO in the
    /// JSON format: `platform.start` and `platform.report`, sized by these examples.
    const PLATFORM_EVENTS: [&str; 2] = [
        r#"{"time":"2026-11-30T12:00:00.000Z","type":"platform.start","record":{"requestId":"8f5c1a6e-2b3d-4e5f-9a0b-1c2d3e4f5a6b","version":"$LATEST"}}"#,
        r#"{"time":"2026-11-30T12:00:00.012Z","type":"platform.report","record":{"requestId":"8f5c1a6e-2b3d-4e5f-9a0b-1c2d3e4f5a6b","metrics":{"durationMs":11.718,"billedDurationMs":12,"memorySizeMB":3072,"maxMemoryUsedMB":17},"status":"success"}}"#,
    ];
    /// Bytes CloudWatch Logs adds to each event when sizing it (the `PutLogEvents` rule). Counted
    /// as ingested: if ingestion is billed on the message alone, this overstates the logs a little.
    const LOG_EVENT_OVERHEAD_BYTES: f64 = 26.0;
    /// Characters of a Lambda request id (a UUID). The emulator's ids are shorter; every log line
    /// is counted as if it carried a real one.
    const REQUEST_ID_CHARS: usize = 36;
    /// Log lines written once per execution environment, at start-up: not per tick.
    const INIT_MESSAGES: [&str; 2] = ["Function initialised.", "Rules loaded."];

    /// Most messages one SQS `ReceiveMessage` returns, and most entries in one
    /// `DeleteMessageBatch`: the event source mapping makes at least this many calls per batch.
    const SQS_BATCH_ENTRIES_MAX: usize = 10;
    /// Bytes of one billed chunk of an SQS or SNS request.
    const CHUNK_BYTES: usize = 64 * 1_024;
    /// Bytes in a billed GB.
    const GB_BYTES: f64 = 1_073_741_824.0;

    /// The specification's design in Python at the same memory, per batch: handler overhead
    /// (parsing 25 records, checking two thresholds, a log line), in milliseconds.
    const PY_BATCH_MS: f64 = 2.0;
    /// Client-side CPU of one boto3 call (building, signing, parsing), in milliseconds. Each alert
    /// makes two, one after the other (`PutItem`, then `Publish`), each followed by its round trip.
    const PY_CALL_CPU_MS: f64 = 1.5;
    /// Bytes of the log line it writes per alert.
    const PY_ALERT_LOG_BYTES: f64 = 200.0;

    /// KMS: SQS calls KMS `B / D * (2P + C)` times per queue and billing period, SNS `B / D * 2P`
    /// per topic (their developer guides: D the data key reuse period, P producers, C consumers).
    /// The module leaves the queue at the default reuse period; SNS's is fixed at 5 minutes.
    const DATA_KEY_REUSE_SECONDS: f64 = 300.0;
    /// The longest reuse period SQS allows (`kms_data_key_reuse_period_seconds`).
    const DATA_KEY_REUSE_SECONDS_MAX: f64 = 86_400.0;
    /// Principals using the key: one producer sends the ticks; the function's role receives them
    /// (and is the one publisher to the topic).
    const PRODUCERS: f64 = 1.0;
    const CONSUMERS: f64 = 1.0;
    /// DynamoDB with a customer managed key caches the table key per connection for about five
    /// minutes (see BENCHMARKS.md): at most one `Decrypt` per table, connection and 5 minutes.
    const TABLE_KEY_CACHE_SECONDS: f64 = 300.0;
    /// Tables the function uses (alerts, state, rules).
    const TABLES: f64 = 3.0;
    /// A 30-day month.
    const MONTH_SECONDS: f64 = 30.0 * 86_400.0;
    /// The module's reserved concurrency: most instances of the function at once.
    const INSTANCES_MAX: f64 = 5.0;
    /// The module's `rules_refresh_seconds`: a warm instance reads the rules version this often.
    const RULES_REFRESH_SECONDS: f64 = 10.0;

    /// A market to price.
    struct Scenario {
        name: &'static str,
        symbols: usize,
        /// Share of ticks that raise an alert.
        alert_share: f64,
    }

    const SCENARIOS: [Scenario; 3] = [
        Scenario {
            name: "quiet market",
            symbols: 50,
            alert_share: 0.01,
        },
        Scenario {
            name: "busy market",
            symbols: 50,
            alert_share: 0.25,
        },
        // The quiet market's alert share, so the difference is the spread over symbols alone.
        Scenario {
            name: "10,000 symbols",
            symbols: 10_000,
            alert_share: 0.01,
        },
    ];

    /// Ticks whose share of alerts under the default rules (high 150, low 50, fire on enter) is
    /// the scenario's. A tick goes beyond a threshold (either side, at random) with chance `q`
    /// unless its symbol's previous tick did; the tick after a beyond one is back inside the band,
    /// which re-arms the rule. So every beyond tick enters a zone and alerts, and beyond ticks
    /// settle at `q / (1 + q)` of all: `q = share / (1 - share)`. Symbols are drawn uniformly;
    /// time moves 1-3 ms per tick, so each symbol's ticks arrive in order.
    struct Ticks {
        rng: Rng,
        symbols: Vec<String>,
        beyond: Vec<bool>,
        beyond_chance: f64,
        now_ms: i64,
    }

    impl Ticks {
        fn new(scenario: &Scenario, seed: u64) -> Ticks {
            Ticks {
                rng: Rng::seeded(seed),
                symbols: (0..scenario.symbols).map(|i| format!("T{i:04}")).collect(),
                beyond: vec![false; scenario.symbols],
                beyond_chance: scenario.alert_share / (1.0 - scenario.alert_share),
                now_ms: 1_795_703_400_000,
            }
        }

        /// The next tick: its symbol's index and its body.
        fn next_tick(&mut self) -> (usize, String) {
            let s = self.rng.below(self.symbols.len() as u64) as usize;
            self.now_ms += 1 + self.rng.below(3) as i64;
            let beyond = !self.beyond[s] && self.rng.unit() < self.beyond_chance;
            self.beyond[s] = beyond;
            let side = self.rng.below(2);
            let price = match (beyond, side) {
                (false, _) => 60.0 + 80.0 * self.rng.unit(),
                (true, 0) => 150.5 + 40.0 * self.rng.unit(),
                (true, _) => 10.0 + 39.5 * self.rng.unit(),
            };
            let volume = 100 + self.rng.below(5_000);
            let body = format!(
                r#"{{"symbol":"{}","price":{price:.2},"timestamp":{},"volume":{volume}}}"#,
                self.symbols[s], self.now_ms
            );
            (s, body)
        }

        /// A message id as SQS makes them (a UUID), so log lines have their real length.
        fn message_id(&mut self) -> String {
            let mut hex = |digits: u32| {
                let value = self.rng.next_u64() & ((1u64 << (4 * digits)) - 1);
                format!("{value:0width$x}", width = digits as usize)
            };
            format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
        }
    }

    /// The sequential rounds of calls one batch made.
    #[derive(Clone, Copy, Debug, Default)]
    struct Rounds {
        /// Plain `PutItem`s (state changes without alerts, or alert inserts).
        put: bool,
        /// A `TransactWriteItems` of state puts and alert inserts (same round as the puts).
        transact: bool,
        /// `BatchGetItem` of alerts that late or redelivered ticks may have raised.
        read: bool,
        /// `PublishBatch`.
        publish: bool,
        /// Marking alerts notified (a transaction, or `UpdateItem`s for old items).
        mark: bool,
        /// `SendMessageBatch` to the dead-letter queue.
        send: bool,
        /// The rules table's version item (at most once per refresh interval).
        rules: bool,
    }

    impl Rounds {
        /// The round trips this batch waits for on AWS, in milliseconds.
        fn latency_ms(&self) -> f64 {
            let store = if self.transact {
                TRANSACT_ROUND_MS
            } else if self.put {
                PUT_ROUND_MS
            } else {
                0.0
            };
            let flag = |on: bool, ms: f64| if on { ms } else { 0.0 };
            store
                + flag(self.read, READ_ROUND_MS)
                + flag(self.publish, PUBLISH_ROUND_MS)
                + flag(self.mark, TRANSACT_ROUND_MS)
                + flag(self.send, SEND_ROUND_MS)
                + flag(self.rules, READ_ROUND_MS)
        }

        fn count(&self) -> u32 {
            u32::from(self.put || self.transact)
                + [self.read, self.publish, self.mark, self.send, self.rules]
                    .iter()
                    .map(|&on| u32::from(on))
                    .sum::<u32>()
        }
    }

    /// The function's tables, as the stub environment names them.
    struct Tables {
        alerts: String,
        state: String,
        rules: String,
    }

    impl Tables {
        fn of(env: &HashMap<&'static str, String>) -> Tables {
            Tables {
                alerts: env["ALERTS_TABLE_NAME"].clone(),
                state: env["STATE_TABLE_NAME"].clone(),
                rules: env["RULES_TABLE"].clone(),
            }
        }
    }

    /// What SNS bills for the `PublishBatch` calls seen.
    #[derive(Debug, Default)]
    struct Published {
        calls: u64,
        messages: u64,
        /// Message bodies, subjects and attributes (names, types, values).
        payload_bytes: u64,
        /// One request per 64 KB of each call's payload: batching's saving as the SNS guide
        /// describes it ("reduce costs ... by a factor of up to 10").
        billed_per_call: u64,
        /// One request per 64 KB of each message: as if a batch saved nothing.
        billed_per_message: u64,
    }

    /// What DynamoDB, SNS and SQS bill for the calls seen, added up over the batches.
    #[derive(Default)]
    struct Ledger {
        /// Calls per API operation, per tick's worth of work.
        calls: BTreeMap<String, u64>,
        /// Start-up checks and reads of the rules table: per execution environment or per
        /// refresh interval, not per tick.
        overhead_calls: BTreeMap<String, u64>,
        /// Write units by what was written.
        write_units: BTreeMap<&'static str, u64>,
        /// Items written, by what was written.
        writes: BTreeMap<&'static str, u64>,
        read_units: u64,
        /// The size of the item last written under each key: a put that replaces an item is
        /// billed on the larger of the two, an update on the item it updates.
        sizes: HashMap<(String, String), usize>,
        /// The `rules` attribute last written per symbol.
        rules_written: HashMap<String, String>,
        /// Plain state puts whose `rules` attribute did not change (only `last_seen` moved).
        state_unchanged_puts: u64,
        state_unchanged_units: u64,
        state_items: u64,
        state_bytes: u64,
        alert_items: u64,
        alert_bytes: u64,
        /// The alerts' write units as plain puts (what the specification's design pays).
        alert_units_plain: u64,
        /// Updates of items this run did not see written (sized as 1 KB).
        unsized_updates: u64,
        published: Published,
        /// SQS requests of the dead-letter sends (per 64 KB).
        dead_letter_requests: u64,
        /// Operations this ledger does not know, and transaction items neither put nor update.
        unknown: BTreeMap<String, u64>,
    }

    /// What one batch's calls did.
    #[derive(Clone, Copy, Debug, Default)]
    struct Seen {
        rounds: Rounds,
        alerts: u64,
    }

    impl Ledger {
        /// Adds one batch's calls.
        fn batch(&mut self, calls: &[StubCall], tables: &Tables) -> Seen {
            let mut seen = Seen::default();
            for call in calls {
                let operation = call.operation.as_str();
                let rules_read = operation == "GetItem" && call.body.contains(&tables.rules);
                if rules_read
                    || matches!(
                        operation,
                        "DescribeTable" | "GetTopicAttributes" | "GetQueueAttributes" | "Scan"
                    )
                {
                    seen.rounds.rules |= rules_read;
                    bump(&mut self.overhead_calls, operation);
                    continue;
                }
                match operation {
                    "PublishBatch" => {
                        bump(&mut self.calls, operation);
                        seen.rounds.publish = true;
                        self.publish(&call.body);
                        continue;
                    }
                    "SendMessageBatch" | "SendMessage" => {
                        bump(&mut self.calls, operation);
                        seen.rounds.send = true;
                        self.dead_letters(&call.body);
                        continue;
                    }
                    _ => {}
                }
                let body: Value = serde_json::from_str(&call.body).unwrap_or(Value::Null);
                match operation {
                    "PutItem" => {
                        bump(&mut self.calls, operation);
                        seen.rounds.put = true;
                        self.put(&body, false, tables, &mut seen);
                    }
                    "UpdateItem" => {
                        bump(&mut self.calls, operation);
                        seen.rounds.mark = true;
                        self.update(&body, false);
                    }
                    "TransactWriteItems" => {
                        let items = body["TransactItems"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let marks = items.iter().any(|item| item.get("Update").is_some());
                        bump(
                            &mut self.calls,
                            if marks {
                                "TransactWriteItems (marks)"
                            } else {
                                "TransactWriteItems (states, alerts)"
                            },
                        );
                        for item in &items {
                            if let Some(put) = item.get("Put") {
                                seen.rounds.transact = true;
                                self.put(put, true, tables, &mut seen);
                            } else if let Some(update) = item.get("Update") {
                                seen.rounds.mark = true;
                                self.update(update, true);
                            } else {
                                *self.unknown.entry("transaction item".into()).or_default() += 1;
                            }
                        }
                    }
                    "BatchGetItem" | "GetItem" => {
                        bump(&mut self.calls, operation);
                        seen.rounds.read = true;
                        // One unit per key: a consistent read of an item under 4 KB (the stub
                        // finds none; DynamoDB charges at least that much per key).
                        self.read_units += match body.get("RequestItems").and_then(Value::as_object)
                        {
                            Some(requests) => requests
                                .values()
                                .map(|r| r["Keys"].as_array().map_or(0, Vec::len) as u64)
                                .sum(),
                            None => 1,
                        };
                    }
                    other => *self.unknown.entry(other.to_owned()).or_default() += 1,
                }
            }
            seen
        }

        /// A put (plain or in a transaction) of `request["Item"]` into `request["TableName"]`.
        fn put(&mut self, request: &Value, transactional: bool, tables: &Tables, seen: &mut Seen) {
            let table = request["TableName"].as_str().unwrap_or_default();
            let item = &request["Item"];
            let size = item_size_bytes(&item_of(item));
            let previous = self
                .sizes
                .insert((table.to_owned(), key_of(item)), size)
                .unwrap_or(0);
            let units = write_units(size.max(previous)) * if transactional { 2 } else { 1 };
            let what = if table == tables.state {
                self.state_items += 1;
                self.state_bytes += size as u64;
                let rules = item["rules"]["B"].as_str().unwrap_or_default().to_owned();
                let unchanged = self
                    .rules_written
                    .insert(key_of(item), rules.clone())
                    .is_some_and(|old| old == rules);
                if unchanged && !transactional {
                    self.state_unchanged_puts += 1;
                    self.state_unchanged_units += units;
                }
                if transactional {
                    "state put in a transaction"
                } else {
                    "state put"
                }
            } else if table == tables.alerts {
                self.alert_items += 1;
                self.alert_bytes += size as u64;
                self.alert_units_plain += write_units(size);
                seen.alerts += 1;
                if transactional {
                    "alert insert in a transaction"
                } else {
                    "alert insert"
                }
            } else {
                "other put"
            };
            *self.write_units.entry(what).or_default() += units;
            *self.writes.entry(what).or_default() += 1;
        }

        /// An update of `request["Key"]` in `request["TableName"]`: the marks, `SET notified =
        /// true`, which leaves the item's size as it was (a boolean is 1 byte either way).
        fn update(&mut self, request: &Value, transactional: bool) {
            let table = request["TableName"].as_str().unwrap_or_default();
            // Each alert is marked once: its size is not needed after.
            let size = self
                .sizes
                .remove(&(table.to_owned(), key_of(&request["Key"])))
                .unwrap_or_else(|| {
                    self.unsized_updates += 1;
                    1_024
                });
            let units = write_units(size) * if transactional { 2 } else { 1 };
            let what = if transactional {
                "mark notified in a transaction"
            } else {
                "mark notified (UpdateItem)"
            };
            *self.write_units.entry(what).or_default() += units;
            *self.writes.entry(what).or_default() += 1;
        }

        /// A `PublishBatch` (the query protocol: form-encoded entries).
        fn publish(&mut self, body: &str) {
            let mut entries: BTreeMap<String, u64> = BTreeMap::new();
            for pair in body.split('&') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let key = form_decode(key);
                let Some(rest) = key.strip_prefix("PublishBatchRequestEntries.member.") else {
                    continue;
                };
                let Some((entry, field)) = rest.split_once('.') else {
                    continue;
                };
                let attribute = field.starts_with("MessageAttributes.entry.")
                    && [".Name", ".DataType", ".StringValue"]
                        .iter()
                        .any(|end| field.ends_with(end));
                if field == "Message" || field == "Subject" || attribute {
                    *entries.entry(entry.to_owned()).or_default() +=
                        form_decode(value).len() as u64;
                }
            }
            let payload: u64 = entries.values().sum();
            let published = &mut self.published;
            published.calls += 1;
            published.messages += entries.len() as u64;
            published.payload_bytes += payload;
            published.billed_per_call += chunks(payload);
            published.billed_per_message += entries.values().map(|&b| chunks(b)).sum::<u64>();
        }

        /// A send to the dead-letter queue (JSON protocol): one request per 64 KB.
        fn dead_letters(&mut self, body: &str) {
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let bytes: u64 = match body["Entries"].as_array() {
                Some(entries) => entries
                    .iter()
                    .map(|e| e["MessageBody"].as_str().map_or(0, str::len) as u64)
                    .sum(),
                None => body["MessageBody"].as_str().map_or(0, str::len) as u64,
            };
            self.dead_letter_requests += chunks(bytes);
        }

        fn write_units_total(&self) -> u64 {
            self.write_units.values().sum()
        }
    }

    fn bump(counts: &mut BTreeMap<String, u64>, name: &str) {
        *counts.entry(name.to_owned()).or_default() += 1;
    }

    /// Requests billed for `bytes` of payload: one per started 64 KB, at least one.
    fn chunks(bytes: u64) -> u64 {
        bytes.div_ceil(CHUNK_BYTES as u64).max(1)
    }

    /// An item's key: its symbol, and the alerts table's sort key when it has one.
    fn key_of(item: &Value) -> String {
        let symbol = item["symbol"]["S"].as_str().unwrap_or_default();
        match item["timestamp"]["S"].as_str() {
            Some(sort) => format!("{symbol}|{sort}"),
            None => symbol.to_owned(),
        }
    }

    /// An item in DynamoDB's JSON wire format, as the SDK's attribute values (for sizing).
    fn item_of(json: &Value) -> HashMap<String, AttributeValue> {
        json.as_object()
            .map(|attributes| {
                attributes
                    .iter()
                    .map(|(name, value)| (name.clone(), attribute(value)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn attribute(json: &Value) -> AttributeValue {
        let Some((kind, value)) = json.as_object().and_then(|o| o.iter().next()) else {
            panic!("not a typed attribute value: {json}");
        };
        let text = || value.as_str().unwrap_or_default().to_owned();
        let list = || value.as_array().map(Vec::as_slice).unwrap_or_default();
        let texts = || {
            list()
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        // Only a binary's size counts: a blob of its decoded length stands in for it.
        let blob = |b64: &Value| Blob::new(vec![0; base64_len(b64.as_str().unwrap_or_default())]);
        match kind.as_str() {
            "S" => AttributeValue::S(text()),
            "N" => AttributeValue::N(text()),
            "B" => AttributeValue::B(blob(value)),
            "BOOL" => AttributeValue::Bool(value.as_bool().unwrap_or_default()),
            "NULL" => AttributeValue::Null(true),
            "L" => AttributeValue::L(list().iter().map(attribute).collect()),
            "M" => AttributeValue::M(item_of(value)),
            "SS" => AttributeValue::Ss(texts()),
            "NS" => AttributeValue::Ns(texts()),
            "BS" => AttributeValue::Bs(list().iter().map(blob).collect()),
            other => panic!("unknown attribute type {other}"),
        }
    }

    /// The decoded length of standard base64 `text`.
    fn base64_len(text: &str) -> usize {
        let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
        (text.len() / 4 * 3).saturating_sub(padding)
    }

    /// `application/x-www-form-urlencoded` text, decoded.
    fn form_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 2;
                }
                (byte, _) => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Lines the function wrote to stdout, by kind: `EMF metrics`, or a log line's message.
    #[derive(Debug, Default)]
    struct LogTally {
        /// Lines and bytes (without the newline; a request id counted at its length on AWS).
        kinds: BTreeMap<String, (u64, u64)>,
    }

    impl LogTally {
        /// Lines and bytes of the per-batch kinds (start-up lines apart).
        fn per_run(&self) -> (u64, u64) {
            self.kinds
                .iter()
                .filter(|(kind, _)| !INIT_MESSAGES.contains(&kind.as_str()))
                .fold((0, 0), |(l, b), (_, (lines, bytes))| (l + lines, b + bytes))
        }

        fn of(&self, kind: &str) -> (u64, u64) {
            self.kinds.get(kind).copied().unwrap_or_default()
        }
    }

    async fn read_logs(stdout: tokio::process::ChildStdout) -> LogTally {
        let mut lines = BufReader::new(stdout).lines();
        let mut tally = LogTally::default();
        while let Ok(Some(line)) = lines.next_line().await {
            let (kind, bytes) = classify(&line);
            let entry = tally.kinds.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += bytes as u64;
        }
        tally
    }

    fn classify(line: &str) -> (String, usize) {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return ("(not JSON)".into(), line.len());
        };
        if value.get("_aws").is_some() {
            return ("EMF metrics".into(), line.len());
        }
        let message = value["message"].as_str().unwrap_or("?").to_owned();
        let id = value["spans"][0]["request_id"]
            .as_str()
            .map_or(REQUEST_ID_CHARS, str::len);
        (message, (line.len() + REQUEST_ID_CHARS).saturating_sub(id))
    }

    /// CPU time of every live thread of `pid`, in nanoseconds (`/proc/PID/task/*/schedstat`).
    fn threads_cpu_ns(pid: u32) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// CPU time of `pid` (user + system, exited threads included), in ms, from `/proc/PID/stat`.
    fn process_cpu_ms(pid: u32) -> f64 {
        super::stat_cpu_ms(&format!("/proc/{pid}/stat"))
    }

    /// One batch as measured.
    struct Row {
        /// The function's CPU time for it (`None` for the first, which includes start-up).
        cpu_ms: Option<f64>,
        seen: Seen,
    }

    /// What one scenario measured.
    struct Measured {
        name: &'static str,
        symbols: usize,
        ticks: u64,
        rows: Vec<Row>,
        ledger: Ledger,
        logs: LogTally,
        /// Wall time per batch from invoke to response (emulator and stub included), after the first.
        wall_ms: Vec<f64>,
        /// Distinct symbols per batch, summed.
        distinct_symbols: u64,
        /// Bytes of tick bodies, summed, and the most in one `ReceiveMessage` of 10.
        body_bytes: u64,
        receive_bytes_max: u64,
        connections: u64,
        hwm_mb: f64,
        /// `/proc/PID/stat` CPU over the run, start-up included (a check on the per-batch sum).
        stat_cpu_ms: f64,
    }

    impl Measured {
        fn batches(&self) -> u64 {
            self.rows.len() as u64
        }

        /// Per million ticks, for a count over the run.
        fn per_million(&self, count: f64) -> f64 {
            count * 1e6 / self.ticks as f64
        }

        fn cpu_mean_ms(&self, filter: impl Fn(&Row) -> bool) -> f64 {
            let cpu: Vec<f64> = self
                .rows
                .iter()
                .filter(|r| filter(r))
                .filter_map(|r| r.cpu_ms)
                .collect();
            if cpu.is_empty() {
                0.0
            } else {
                cpu.iter().sum::<f64>() / cpu.len() as f64
            }
        }

        /// Mean and billed (whole ms, per invocation) duration per batch at `memory_mb`: CPU time
        /// slowed by the CPU share below one vCPU, plus the round trips on AWS.
        fn duration_ms(&self, memory_mb: f64) -> (f64, f64) {
            let slowdown = (ONE_VCPU_MB / memory_mb).max(1.0);
            let cpu_mean = self.cpu_mean_ms(|_| true);
            let (mut sum, mut billed) = (0.0, 0.0);
            for row in &self.rows {
                let duration =
                    row.cpu_ms.unwrap_or(cpu_mean) * slowdown + row.seen.rounds.latency_ms();
                sum += duration;
                billed += duration.ceil();
            }
            let n = self.rows.len() as f64;
            (sum / n, billed / n)
        }

        /// Requests SQS bills per batch: the event source mapping's receives and deletes (at
        /// most 10 messages each), each receive one request per 64 KB of its messages.
        fn sqs_poller_requests_per_batch(&self) -> f64 {
            let calls = BATCH_MESSAGES.div_ceil(SQS_BATCH_ENTRIES_MAX) as f64;
            calls * chunks(self.receive_bytes_max) as f64 + calls
        }

        /// Log bytes per batch as CloudWatch ingests them: the function's lines, Lambda's two
        /// platform events, and the per-event overhead.
        fn log_bytes_per_batch(&self) -> f64 {
            let (lines, bytes) = self.logs.per_run();
            let platform: usize = PLATFORM_EVENTS.iter().map(|e| e.len()).sum();
            let n = self.batches() as f64;
            (bytes as f64 + LOG_EVENT_OVERHEAD_BYTES * lines as f64) / n
                + platform as f64
                + LOG_EVENT_OVERHEAD_BYTES * PLATFORM_EVENTS.len() as f64
        }

        /// Ours, per million ticks, with the function at `memory_mb`.
        fn bill(&self, memory_mb: f64) -> Bill {
            let batches = self.per_million(self.batches() as f64);
            let (_, billed_ms) = self.duration_ms(memory_mb);
            Bill {
                lambda_requests: batches * price::LAMBDA_REQUEST,
                lambda_duration: batches * billed_ms / 1_000.0 * memory_mb / 1_024.0
                    * price::LAMBDA_ARM_GB_SECOND,
                sqs: self.sqs_requests() * price::SQS_REQUEST,
                dynamodb: self.per_million(self.ledger.write_units_total() as f64)
                    * price::DYNAMODB_WRITE_UNIT
                    + self.per_million(self.ledger.read_units as f64) * price::DYNAMODB_READ_UNIT,
                sns: self.per_million(self.ledger.published.billed_per_call as f64)
                    * price::SNS_REQUEST,
                logs: batches * self.log_bytes_per_batch() / GB_BYTES * price::LOGS_INGESTED_GB,
            }
        }

        /// SQS requests per million ticks: the producer (one `SendMessage` per tick, one chunk
        /// each), the event source mapping, and dead-letter sends.
        fn sqs_requests(&self) -> f64 {
            let producer = self.per_million(self.ticks as f64);
            producer
                + self.per_million(self.batches() as f64) * self.sqs_poller_requests_per_batch()
                + self.per_million(self.ledger.dead_letter_requests as f64)
        }

        /// The specification's design on the same ticks and alerts, per million ticks: a Python
        /// function at the same memory making one `PutItem` and one `Publish` per alert.
        fn spec_bill(&self) -> Bill {
            let batches = self.per_million(self.batches() as f64);
            let per_alert_ms = 2.0 * PY_CALL_CPU_MS + PUT_ROUND_MS + PUBLISH_ROUND_MS;
            let billed_ms = self
                .rows
                .iter()
                .map(|r| (PY_BATCH_MS + r.seen.alerts as f64 * per_alert_ms).ceil())
                .sum::<f64>()
                / self.batches() as f64;
            let alerts = self.per_million(self.ledger.alert_items as f64);
            let platform: usize = PLATFORM_EVENTS.iter().map(|e| e.len()).sum();
            let log_bytes = batches
                * (platform as f64 + LOG_EVENT_OVERHEAD_BYTES * PLATFORM_EVENTS.len() as f64)
                + alerts * (PY_ALERT_LOG_BYTES + LOG_EVENT_OVERHEAD_BYTES);
            Bill {
                lambda_requests: batches * price::LAMBDA_REQUEST,
                lambda_duration: batches * billed_ms / 1_000.0 * MEMORY_DEFAULT_MB / 1_024.0
                    * price::LAMBDA_ARM_GB_SECOND,
                sqs: self.sqs_requests() * price::SQS_REQUEST,
                dynamodb: self.per_million(self.ledger.alert_units_plain as f64)
                    * price::DYNAMODB_WRITE_UNIT,
                sns: alerts * price::SNS_REQUEST,
                logs: log_bytes / GB_BYTES * price::LOGS_INGESTED_GB,
            }
        }
    }

    /// Dollars per million ticks, by service.
    #[derive(Clone, Copy, Debug, Default)]
    struct Bill {
        lambda_requests: f64,
        lambda_duration: f64,
        sqs: f64,
        dynamodb: f64,
        sns: f64,
        logs: f64,
    }

    impl Bill {
        fn total(&self) -> f64 {
            self.lambda_requests
                + self.lambda_duration
                + self.sqs
                + self.dynamodb
                + self.sns
                + self.logs
        }

        fn lines(&self) -> [(&'static str, f64); 7] {
            [
                ("Lambda requests", self.lambda_requests),
                ("Lambda duration", self.lambda_duration),
                ("SQS", self.sqs),
                ("DynamoDB", self.dynamodb),
                ("SNS", self.sns),
                ("CloudWatch Logs", self.logs),
                ("total", self.total()),
            ]
        }
    }

    /// The function's environment: the stub's, with the rules table the module always sets and
    /// a deployed function's name (the metrics' `Service` dimension, so EMF lines have their
    /// real length).
    fn function_env() -> HashMap<&'static str, String> {
        let mut env = stub_env();
        env.insert("RULES_TABLE", RULES_TABLE_BENCH.to_owned());
        env.insert(
            "AWS_LAMBDA_FUNCTION_NAME",
            "tickwatch-processor-prod".to_owned(),
        );
        env
    }

    async fn measure(settings: &Settings, scenario: &'static Scenario, seed: u64) -> Measured {
        let stub = StubAws::recording().await;
        let env = function_env();
        let tables = Tables::of(&env);
        let api = RuntimeApi::start().await;
        let mut command = bootstrap_command(&api, &env, &stub.endpoint);
        command.stdout(Stdio::piped());
        let mut child = command.spawn().expect("bootstrap");
        let pid = child.id().expect("pid");
        let logs = tokio::spawn(read_logs(child.stdout.take().expect("piped stdout")));
        let mut ticks = Ticks::new(scenario, seed);
        let mut ledger = Ledger::default();
        let (mut rows, mut wall_ms) = (Vec::new(), Vec::new());
        let (mut distinct_symbols, mut body_bytes, mut receive_bytes_max) = (0, 0, 0);
        for batch in 0..settings.cost_batches {
            let mut symbols = HashSet::new();
            let bodies: Vec<String> = (0..BATCH_MESSAGES)
                .map(|_| {
                    let (symbol, body) = ticks.next_tick();
                    symbols.insert(symbol);
                    body
                })
                .collect();
            distinct_symbols += symbols.len() as u64;
            body_bytes += bodies.iter().map(|b| b.len() as u64).sum::<u64>();
            for receive in bodies.chunks(SQS_BATCH_ENTRIES_MAX) {
                receive_bytes_max =
                    receive_bytes_max.max(receive.iter().map(|b| b.len() as u64).sum::<u64>());
            }
            let ids: Vec<String> = bodies.iter().map(|_| ticks.message_id()).collect();
            let payload = event_with_ids(&bodies, &ids);
            let cpu_before = threads_cpu_ns(pid);
            let started = Instant::now();
            let answer = api
                .invoke(payload, Duration::from_secs(60), ANSWER_WAIT)
                .await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
            let cpu_ms = (threads_cpu_ns(pid).saturating_sub(cpu_before)) as f64 / 1e6;
            match &answer {
                Answer::Response(body) if body.contains(r#""batchItemFailures":[]"#) => {}
                other => panic!("batch {batch} did not succeed: {other:?}"),
            }
            let seen = ledger.batch(&stub.take_calls(), &tables);
            rows.push(Row {
                cpu_ms: (batch > 0).then_some(cpu_ms),
                seen,
            });
            if batch > 0 {
                wall_ms.push(elapsed_ms);
            }
        }
        let hwm_mb = status_kib(pid, "VmHWM:") as f64 / 1_024.0;
        let stat_cpu_ms = process_cpu_ms(pid);
        child.start_kill().expect("stop bootstrap");
        child.wait().await.expect("bootstrap ended");
        let logs = logs.await.expect("log reader");
        Measured {
            name: scenario.name,
            symbols: scenario.symbols,
            ticks: (settings.cost_batches * BATCH_MESSAGES) as u64,
            rows,
            ledger,
            logs,
            wall_ms,
            distinct_symbols,
            body_bytes,
            receive_bytes_max,
            connections: stub.connections(),
            hwm_mb,
            stat_cpu_ms,
        }
    }

    /// `1234567.8` as `1,234,568`.
    fn thousands(value: f64) -> String {
        let digits = format!("{:.0}", value.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if value < 0.0 { format!("-{out}") } else { out }
    }

    fn report(m: &Measured) {
        let l = &m.ledger;
        let per_m = |count: u64| thousands(m.per_million(count as f64));
        let batches = m.batches() as f64;
        let alert_batches = m.rows.iter().filter(|r| r.seen.alerts > 0).count();
        println!(
            "== cost: {} ({} symbols), {} batches of {BATCH_MESSAGES} ({} ticks)",
            m.name,
            thousands(m.symbols as f64),
            thousands(batches),
            thousands(m.ticks as f64)
        );
        println!(
            "achieved: {:.2} % of ticks raised an alert ({} alerts); {:.1} distinct symbols per batch; {:.1} % of batches raised alerts; tick body {:.0} B mean",
            100.0 * l.alert_items as f64 / m.ticks as f64,
            thousands(l.alert_items as f64),
            m.distinct_symbols as f64 / batches,
            100.0 * alert_batches as f64 / batches,
            m.body_bytes as f64 / m.ticks as f64,
        );
        let sum_cpu: f64 = m.rows.iter().filter_map(|r| r.cpu_ms).sum();
        let mut wall = m.wall_ms.clone();
        wall.sort_by(f64::total_cmp);
        println!(
            "function CPU per batch: mean {:.3} ms (batches with alerts {:.3} ms, without {:.3} ms); {:.0} ms in all by schedstat, {:.0} ms by /proc/PID/stat (start-up included); wall per batch median {:.2} ms (emulator and stub included); VmHWM {:.1} MB; {} connections opened to the endpoint",
            m.cpu_mean_ms(|_| true),
            m.cpu_mean_ms(|r| r.seen.alerts > 0),
            m.cpu_mean_ms(|r| r.seen.alerts == 0),
            sum_cpu,
            m.stat_cpu_ms,
            wall.get(wall.len() / 2).copied().unwrap_or(0.0),
            m.hwm_mb,
            m.connections,
        );
        let calls: Vec<String> = l
            .calls
            .iter()
            .map(|(op, &n)| format!("{op} {}", per_m(n)))
            .collect();
        println!("calls per million ticks (counted): {}", calls.join("; "));
        let overhead: Vec<String> = l
            .overhead_calls
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!(
            "  not per tick (start-up checks, rules-table reads) over the run: {}",
            overhead.join("; ")
        );
        let units: Vec<String> = l
            .write_units
            .iter()
            .map(|(what, &n)| format!("{what} {} ({} items)", per_m(n), per_m(l.writes[what])))
            .collect();
        println!(
            "DynamoDB write units per million ticks: {}; total {}",
            units.join("; "),
            per_m(l.write_units_total())
        );
        println!(
            "  of the plain state puts, {} per million ticks ({} units) changed only last_seen; read units {}; items: state {:.0} B mean, alert {:.0} B mean; updates of unseen items: {}",
            per_m(l.state_unchanged_puts),
            per_m(l.state_unchanged_units),
            per_m(l.read_units),
            l.state_bytes as f64 / l.state_items.max(1) as f64,
            l.alert_bytes as f64 / l.alert_items.max(1) as f64,
            l.unsized_updates,
        );
        let p = &l.published;
        println!(
            "SNS: {} PublishBatch calls and {} messages per million ticks, {:.0} B per message; billed requests per million ticks: {} (per 64 KB of each call) or {} (per message)",
            per_m(p.calls),
            per_m(p.messages),
            p.payload_bytes as f64 / p.messages.max(1) as f64,
            per_m(p.billed_per_call),
            per_m(p.billed_per_message),
        );
        println!(
            "SQS: producer {} SendMessage, event source mapping {:.0} requests per batch ({} per million ticks; largest receive {} B), dead-letter {}",
            thousands(m.per_million(m.ticks as f64)),
            m.sqs_poller_requests_per_batch(),
            thousands(m.per_million(batches) * m.sqs_poller_requests_per_batch()),
            m.receive_bytes_max,
            per_m(l.dead_letter_requests),
        );
        let kinds: Vec<String> = m
            .logs
            .kinds
            .iter()
            .map(|(kind, &(lines, bytes))| {
                format!(
                    "{kind} {:.2} lines, {:.0} B per line",
                    lines as f64 / batches,
                    bytes as f64 / lines.max(1) as f64
                )
            })
            .collect();
        println!("log lines per batch: {}", kinds.join("; "));
        println!(
            "CloudWatch Logs bytes per batch: {:.0} (function {:.0}, Lambda platform {}, 26 B per event); {:.1} MB per million ticks",
            m.log_bytes_per_batch(),
            m.logs.per_run().1 as f64 / batches,
            PLATFORM_EVENTS.iter().map(|e| e.len()).sum::<usize>(),
            m.per_million(batches) * m.log_bytes_per_batch() / 1e6,
        );
        let rounds: f64 = m
            .rows
            .iter()
            .map(|r| f64::from(r.seen.rounds.count()))
            .sum();
        for memory in [MEMORY_DEFAULT_MB, MEMORY_SMALL_MB] {
            let (mean, billed) = m.duration_ms(memory);
            println!(
                "modelled duration at {memory:.0} MB: mean {mean:.2} ms, billed {billed:.2} ms per batch ({:.2} sequential rounds per batch)",
                rounds / batches
            );
        }
        let (ours, small, spec) = (
            m.bill(MEMORY_DEFAULT_MB),
            m.bill(MEMORY_SMALL_MB),
            m.spec_bill(),
        );
        println!("dollars per million ticks:");
        println!(
            "| | tickwatch, 3,072 MB | tickwatch, 1,024 MB | specification's design (Python, 3,072 MB) |"
        );
        println!("| --- | --- | --- | --- |");
        for ((what, a), ((_, b), (_, c))) in ours
            .lines()
            .into_iter()
            .zip(small.lines().into_iter().zip(spec.lines()))
        {
            println!("| {what} | {a:.4} | {b:.4} | {c:.4} |");
        }
        let dollars = |units: u64| m.per_million(units as f64) * price::DYNAMODB_WRITE_UNIT;
        let batch_done = m.logs.of("Batch done.");
        let what_ifs = [
            (
                "state written only when a rule's state changes (skip last_seen-only puts)",
                dollars(l.state_unchanged_units),
            ),
            (
                "marks as plain UpdateItems instead of a transaction",
                dollars(
                    l.write_units
                        .get("mark notified in a transaction")
                        .copied()
                        .unwrap_or(0)
                        / 2,
                ),
            ),
            (
                "producer sends SendMessageBatch of 10 instead of SendMessage",
                0.9 * m.per_million(m.ticks as f64) * price::SQS_REQUEST,
            ),
            (
                "no 'Batch done.' line (the EMF line carries the same counts)",
                m.per_million(batch_done.1 as f64 + LOG_EVENT_OVERHEAD_BYTES * batch_done.0 as f64)
                    / GB_BYTES
                    * price::LOGS_INGESTED_GB,
            ),
            (
                "1,024 MB instead of 3,072 MB",
                ours.lambda_duration - small.lambda_duration,
            ),
        ];
        for (what, saved) in what_ifs {
            println!(
                "  what if: {what}: saves ${saved:.4} per million ticks ({:.1} % of ${:.4})",
                100.0 * saved / ours.total(),
                ours.total()
            );
        }
    }

    /// KMS and other costs that follow time, not ticks, per month; and per million ticks at a
    /// few steady rates.
    fn report_time_based(connections: u64) {
        let periods = MONTH_SECONDS / DATA_KEY_REUSE_SECONDS;
        let sqs = periods * (2.0 * PRODUCERS + CONSUMERS);
        let sqs_longest =
            MONTH_SECONDS / DATA_KEY_REUSE_SECONDS_MAX * (2.0 * PRODUCERS + CONSUMERS);
        let sns = periods * 2.0 * CONSUMERS;
        let dynamodb =
            INSTANCES_MAX * connections as f64 * TABLES * MONTH_SECONDS / TABLE_KEY_CACHE_SECONDS;
        let rules_reads = INSTANCES_MAX * MONTH_SECONDS / RULES_REFRESH_SECONDS;
        println!("== cost: time-based, per 30-day month");
        let rows = [
            (
                "KMS for the tick queue (SQS, reuse period 300 s)",
                sqs,
                sqs * price::KMS_REQUEST,
            ),
            (
                "  ... with kms_data_key_reuse_period_seconds = 86400",
                sqs_longest,
                sqs_longest * price::KMS_REQUEST,
            ),
            (
                "KMS for the alerts topic (SNS)",
                sns,
                sns * price::KMS_REQUEST,
            ),
            (
                "KMS for the tables, at most (5 instances x connections x 3 tables per 5 min)",
                dynamodb,
                dynamodb * price::KMS_REQUEST,
            ),
            (
                "rules version reads (5 warm instances, every 10 s, consistent)",
                rules_reads,
                rules_reads * price::DYNAMODB_READ_UNIT,
            ),
        ];
        for (what, requests, dollars) in rows {
            println!("{what}: {} requests, ${dollars:.3}", thousands(requests));
        }
        // The module as it is: the second row is the alternative.
        let monthly = rows[0].2 + rows[2].2 + rows[3].2 + rows[4].2;
        println!("  in all, as the module is: ${monthly:.2} a month");
        for rate in [10.0, 100.0, 1_000.0] {
            let ticks_millions = rate * MONTH_SECONDS / 1e6;
            println!(
                "  at {rate:.0} ticks/s ({} M ticks a month): ${:.4} per million ticks",
                thousands(ticks_millions),
                monthly / ticks_millions
            );
        }
        println!(
            "  (connections per instance: {connections}, as many as the function opened to the stub, which serves every service on one endpoint)"
        );
    }

    pub(super) async fn run(settings: Settings) {
        let mut measured = Vec::new();
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            let m = measure(&settings, scenario, 13 + i as u64).await;
            report(&m);
            measured.push(m);
        }
        let connections = measured.iter().map(|m| m.connections).max().unwrap_or(0);
        report_time_based(connections);
        println!(
            "== cost: summary, dollars per million ticks (tickwatch at 3,072 MB / specification's design)"
        );
        println!(
            "| | {} |",
            measured
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("| --- |{}", " --- |".repeat(measured.len()));
        let bills: Vec<(Bill, Bill)> = measured
            .iter()
            .map(|m| (m.bill(MEMORY_DEFAULT_MB), m.spec_bill()))
            .collect();
        for line in 0..Bill::default().lines().len() {
            let cells: Vec<String> = bills
                .iter()
                .map(|(ours, spec)| {
                    format!("{:.4} / {:.4}", ours.lines()[line].1, spec.lines()[line].1)
                })
                .collect();
            println!(
                "| {} | {} |",
                Bill::default().lines()[line].0,
                cells.join(" | ")
            );
        }
    }
}
