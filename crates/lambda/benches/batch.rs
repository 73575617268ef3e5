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
//!
//! The stub answers DynamoDB, SNS and SQS calls with minimal successful responses (no state: every
//! symbol looks new, so every tick beyond a threshold raises an alert), keeping connections alive
//! as AWS does. It isolates our own cost plus the injected latency from moto's, which is slow and
//! grows with the data it holds (its transactions copy every table).
//!
//! Run: `cargo bench -p tickwatch-lambda --bench batch [-- latency|cold|memory]`.

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
}

const FULL: Settings = Settings {
    latency_rounds: 20,
    moto_rounds: 5,
    latencies_ms: &[0, 20, 50],
    cold_starts: 10,
    memory_batches: 1_000,
    cpu_batches: 500,
};

const SMOKE: Settings = Settings {
    latency_rounds: 1,
    moto_rounds: 0,
    latencies_ms: &[0, 5],
    cold_starts: 1,
    memory_batches: 10,
    cpu_batches: 2,
};
/// Longest wait for any one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// A stub of the DynamoDB, SNS and SQS endpoints: every call succeeds after `delay_ms`.
struct StubAws {
    endpoint: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Requests by API operation (`TransactWriteItems`, `PublishBatch`, ...).
    by_operation: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl StubAws {
    async fn start(delay_ms: u64) -> StubAws {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let by_operation: std::sync::Arc<
            std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
        > = std::sync::Arc::default();
        let counter = requests.clone();
        let operations = std::sync::Arc::clone(&by_operation);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let operations = std::sync::Arc::clone(&operations);
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
                            .entry(operation)
                            .or_insert(0) += 1;
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
        }
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
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({
                "messageId": format!("bench-{batch}-{i}"),
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
    });
}
