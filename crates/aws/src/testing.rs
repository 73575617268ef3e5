//! Test support (feature `testing`): the moto AWS emulator, a TCP proxy that injects latency or
//! refuses connections, and helpers to create and read emulator resources.
//!
//! [`Moto::shared`] starts one moto server per test binary, on 127.0.0.1 and a free port, the first
//! time a test asks for it. It runs under a tiny shell wrapper that holds the read end of a pipe
//! from this process: when the test binary exits (normally, by panic or killed), the pipe closes
//! and the wrapper stops moto, so no emulator outlives its tests. Tests share the server and
//! isolate themselves with [`unique_name`]d resources.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use futures_util::future::{Either, select};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::DynamoStore;
use crate::config::{AwsClients, emulator_sdk_config};

/// The environment variable naming the `moto_server` executable.
pub const MOTO_SERVER_ENV: &str = "TICKWATCH_MOTO_SERVER";

/// Longest wait for moto to accept connections after starting it, in milliseconds.
pub const MOTO_START_MS_MAX: u64 = 20_000;

/// Pause between two connection attempts while waiting for moto, in milliseconds.
const MOTO_POLL_MS: u64 = 25;

/// How many times starting moto is tried (the free port found may be taken before moto binds it).
const MOTO_START_ATTEMPTS_MAX: u32 = 3;

/// The region every test resource lives in.
pub const REGION: &str = "us-east-1";

/// A running moto server. Stops when dropped (for [`Moto::start`]) or when the process exits.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    port: u16,
    wrapper: Mutex<Option<Child>>,
}

impl Moto {
    /// The server shared by every test of this test binary, started on first use.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// Starts a server of one's own. Panics (with what to do) if moto is not installed.
    pub fn start() -> Moto {
        let binary = moto_binary();
        let mut last_error = String::new();
        for _ in 0..MOTO_START_ATTEMPTS_MAX {
            let port = free_port();
            match start_wrapped(&binary, port) {
                Ok(child) => {
                    return Moto {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        port,
                        wrapper: Mutex::new(Some(child)),
                    };
                }
                Err(error) => last_error = error,
            }
        }
        panic!("could not start moto ({}): {last_error}", binary.display());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An SDK configuration pointing at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        emulator_sdk_config(&self.endpoint, REGION).await
    }

    /// Clients pointing at this server, with tickwatch's retry and timeout settings.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::new(&self.sdk_config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut guard = self
            .wrapper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut child) = guard.take() {
            // Closing the wrapper's stdin makes it stop moto, then exit.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// Finds the emulator: `$TICKWATCH_MOTO_SERVER`, else `<workspace>/.venv/moto/bin/tickwatch-moto`
/// (moto with DynamoDB requests serialized, as `scripts/setup-test-env` installs it).
pub fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{MOTO_SERVER_ENV}={} does not exist; run scripts/setup-test-env",
            path.display()
        );
        return path;
    }
    let path = workspace_root().join(".venv/moto/bin/tickwatch-moto");
    assert!(
        path.is_file(),
        "moto is not installed at {} (and {MOTO_SERVER_ENV} is not set): run scripts/setup-test-env",
        path.display()
    );
    path
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Starts moto under the wrapper and waits until it accepts connections.
fn start_wrapped(binary: &Path, port: u16) -> Result<Child, String> {
    // `cat` returns when our end of its stdin closes, which happens when this process ends.
    let script = r#"moto="$1"; port="$2"
"$moto" -H 127.0.0.1 -p "$port" </dev/null >/dev/null 2>&1 &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("moto-wrapper")
        .arg(binary)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let started = Instant::now();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while started.elapsed() < Duration::from_millis(MOTO_START_MS_MAX) {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the moto wrapper exited early: {status}"));
        }
        std::thread::sleep(Duration::from_millis(MOTO_POLL_MS));
    }
    let _ = child.stdin.take().map(|mut s| s.flush());
    let _ = child.kill();
    Err(format!(
        "moto did not answer on port {port} within {MOTO_START_MS_MAX} ms"
    ))
}

/// A name no other test (of this or a parallel test binary) uses: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A [`DynamoStore`] on a new alerts table and a new state table, both [`unique_name`]d and
/// created.
pub async fn fresh_store(dynamodb: &aws_sdk_dynamodb::Client) -> DynamoStore {
    let store = DynamoStore::new(
        dynamodb.clone(),
        unique_name("alerts"),
        unique_name("state"),
    );
    store.create_tables().await.expect("tables created");
    store
}

/// The string value of `message`'s attribute `name`, if it has one.
pub fn message_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

/// An in-memory log sink: give clones to a `tracing` subscriber's writer, read [`LogSink::text`].
#[derive(Clone, Debug, Default)]
pub struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends each of `bodies` to the queue, one `SendMessage` each, in order.
pub async fn send_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str, bodies: &[String]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }
}

/// The queue's (visible, in flight) message counts; `u64::MAX` for a count it did not report.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let count = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Creates a standard queue (with `attributes`) and returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value.clone());
    }
    let created = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"));
    created
        .queue_url()
        .unwrap_or_else(|| panic!("CreateQueue {name} returned no URL"))
        .to_owned()
}

/// The ARN of a queue.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {queue_url}: {e:?}"));
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("no ARN for {queue_url}"))
        .clone()
}

/// Creates a topic and returns its ARN.
pub async fn create_topic(sns: &aws_sdk_sns::Client, name: &str) -> String {
    sns.create_topic()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTopic {name}: {e:?}"))
        .topic_arn()
        .unwrap_or_else(|| panic!("CreateTopic {name} returned no ARN"))
        .to_owned()
}

/// Subscribes a queue to a topic; with `raw`, messages arrive without the SNS envelope.
pub async fn subscribe_queue(clients: &AwsClients, topic_arn: &str, queue_url: &str, raw: bool) {
    let arn = queue_arn(&clients.sqs, queue_url).await;
    let mut request = clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn);
    if raw {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("Subscribe {queue_url} to {topic_arn}: {e:?}"));
}

/// Receives and deletes messages until `expected` have arrived or a receive comes back empty after
/// `wait_s` seconds of long polling; returns them with their attributes.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    wait_s: i32,
) -> Vec<Message> {
    let mut messages = Vec::new();
    // Bounded: each round either gets messages or ends the loop.
    for _ in 0..=expected {
        let wait = if messages.len() >= expected {
            0
        } else {
            wait_s
        };
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage {queue_url}: {e:?}"));
        let batch = received.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for message in &batch {
            if let Some(receipt) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("DeleteMessage {queue_url}: {e:?}"));
            }
        }
        messages.extend(batch);
    }
    messages
}

/// What the proxy does with new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Forward, after the configured delay.
    Forward = 0,
    /// Accept and close at once (the service looks down: connection reset / empty reply).
    Refuse = 1,
}

/// A TCP proxy on 127.0.0.1 that forwards to an upstream address, delaying each request by a fixed
/// time, or refusing connections. moto closes every connection after one response, so one
/// connection carries one request and the delay applies per request.
#[derive(Clone, Debug)]
pub struct LatencyProxy {
    address: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicU64>,
}

impl LatencyProxy {
    /// Starts the proxy on the current tokio runtime, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, delay_ms: u64) -> LatencyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let proxy = LatencyProxy {
            address,
            delay_ms: Arc::new(AtomicU64::new(delay_ms)),
            mode: Arc::new(AtomicU8::new(ProxyMode::Forward as u8)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let state = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move { state.serve(client, upstream).await });
            }
        });
        proxy
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sets what happens to new connections.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Sets the delay per request.
    pub fn set_delay_ms(&self, delay_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::SeqCst);
    }

    /// Requests seen so far (connections accepted).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    async fn serve(&self, mut client: tokio::net::TcpStream, upstream: SocketAddr) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.mode.load(Ordering::SeqCst) == ProxyMode::Refuse as u8 {
            return;
        }
        // Wait for the request's first bytes, then hold it for the delay. One connection carries
        // one request (moto closes it after answering), so every request pays the delay once.
        let mut first = vec![0u8; 64 * 1024];
        let Ok(n) = client.read(&mut first).await else {
            return;
        };
        if n == 0 {
            return;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        if server.write_all(&first[..n]).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// The AWS service a request is for, read from its signature's credential scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// DynamoDB (AWS JSON 1.0; the operation is in `X-Amz-Target`).
    DynamoDb,
    /// SNS (AWS query; the operation is the body's `Action=`).
    Sns,
    /// SQS (AWS JSON 1.0 in current SDKs, `X-Amz-Target`; AWS query in older ones).
    Sqs,
    /// Anything else (or a request the proxy could not read).
    Other,
}

impl Service {
    fn from_scope(scope: &str) -> Service {
        match scope {
            "dynamodb" => Service::DynamoDb,
            "sns" => Service::Sns,
            "sqs" => Service::Sqs,
            _ => Service::Other,
        }
    }
}

/// What the [`FaultProxy`] does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this HTTP status and error code in the service's own error format (JSON
    /// `__type` for DynamoDB and SQS, an XML `ErrorResponse` for SNS); nothing is forwarded.
    Error {
        /// The HTTP status, e.g. 400 for throttling, 500 for an internal error.
        status: u16,
        /// The error code, e.g. `ProvisionedThroughputExceededException`.
        code: &'static str,
    },
    /// Forwards at once but holds the answer back for this long (the work is done, the answer is
    /// late). Stops holding if the client hangs up.
    SlowAnswer {
        /// How long, in milliseconds.
        delay_ms: u64,
    },
    /// Holds the request for this long, then forwards it even if the client has given up (a
    /// request that arrives late: the write lands after its caller stopped waiting).
    SlowRequest {
        /// How long, in milliseconds.
        delay_ms: u64,
    },
    /// Closes the connection without forwarding (the request is lost on the way).
    DropRequest,
    /// Forwards, then closes the connection without answering (the work is done, the answer is
    /// lost).
    DropAnswer,
    /// Never forwards and never answers; the connection ends only when the client hangs up.
    Hang,
}

impl Fault {
    /// DynamoDB's `ProvisionedThroughputExceededException` (HTTP 400).
    pub const DYNAMODB_THROUGHPUT_EXCEEDED: Fault = Fault::Error {
        status: 400,
        code: "ProvisionedThroughputExceededException",
    };
    /// The `ThrottlingException` DynamoDB's control and data planes answer (HTTP 400).
    pub const DYNAMODB_THROTTLING: Fault = Fault::Error {
        status: 400,
        code: "ThrottlingException",
    };
    /// DynamoDB's `InternalServerError` (HTTP 500).
    pub const DYNAMODB_INTERNAL: Fault = Fault::Error {
        status: 500,
        code: "InternalServerError",
    };
    /// SNS's `Throttling` (HTTP 400).
    pub const SNS_THROTTLING: Fault = Fault::Error {
        status: 400,
        code: "Throttling",
    };
    /// SNS's and SQS's `InternalError` (HTTP 500).
    pub const INTERNAL_ERROR: Fault = Fault::Error {
        status: 500,
        code: "InternalError",
    };
}

/// One request as the [`FaultProxy`] saw it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The service.
    pub service: Service,
    /// The operation (`PutItem`, `PublishBatch`, ...), empty if it could not be read.
    pub operation: String,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The status the upstream answered with, if the request was forwarded and answered.
    pub upstream_status: Option<u16>,
    /// The request body.
    pub body: Vec<u8>,
}

impl Exchange {
    /// Whether the upstream did the work and said so (a forwarded request answered with 2xx),
    /// whether or not the client got the answer.
    pub fn applied(&self) -> bool {
        self.upstream_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Debug)]
struct FaultRule {
    service: Service,
    operation: Option<String>,
    fault: Fault,
    remaining: u32,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<FaultRule>,
    log: Vec<Exchange>,
    in_flight: u64,
}

/// Longest request head or body, and longest answer, the [`FaultProxy`] reads, in bytes.
pub const PROXY_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A fault-injecting HTTP proxy on 127.0.0.1 in front of one upstream (moto serves every
/// service on one port). It reads each request, works out the service (from the signature's
/// credential scope) and operation (from `X-Amz-Target`, or the `Action=` of a query request),
/// applies the first matching rule from [`FaultProxy::inject`], and logs every exchange.
///
/// It speaks just enough HTTP/1.1 for the AWS SDK: `Content-Length` request bodies and one
/// request per connection (moto answers with `Connection: close`, and so do injected answers).
#[derive(Clone, Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<Mutex<FaultState>>,
    changed: Arc<tokio::sync::Notify>,
}

impl FaultProxy {
    /// Starts the proxy on the current tokio runtime, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let proxy = FaultProxy {
            address,
            state: Arc::new(Mutex::new(FaultState::default())),
            changed: Arc::new(tokio::sync::Notify::new()),
        };
        let server = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(client, upstream).await });
            }
        });
        proxy
    }

    /// Starts a proxy in front of `moto`.
    pub async fn in_front_of(moto: &Moto) -> FaultProxy {
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], moto.port()))).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Clients that reach the upstream through this proxy, with tickwatch's retry and timeout
    /// settings.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::new(&emulator_sdk_config(&self.endpoint(), REGION).await)
    }

    /// Applies `fault` to the next `times` requests of `service` (and of `operation`, if given).
    /// Rules are tried in the order they were added; a request takes one use of the first rule
    /// that matches and has uses left.
    pub fn inject(&self, service: Service, operation: Option<&str>, fault: Fault, times: u32) {
        self.lock().rules.push(FaultRule {
            service,
            operation: operation.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    /// Drops every rule (the service is healthy again).
    pub fn heal(&self) {
        self.lock().rules.clear();
    }

    /// Uses of injected faults not yet taken.
    pub fn faults_pending(&self) -> u32 {
        self.lock().rules.iter().map(|r| r.remaining).sum()
    }

    /// Every exchange so far, in the order the requests were read.
    pub fn log(&self) -> Vec<Exchange> {
        self.lock().log.clone()
    }

    /// Requests of `service` (and `operation`, if given) seen so far.
    pub fn requests(&self, service: Service, operation: Option<&str>) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|e| e.service == service && operation.is_none_or(|o| e.operation == o))
            .count()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.lock().log.iter().filter(|e| e.fault.is_some()).count()
    }

    /// Waits until `condition` holds on the log, at most `wait`; returns whether it does.
    pub async fn wait_until(
        &self,
        wait: Duration,
        condition: impl Fn(&[Exchange]) -> bool,
    ) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a change between the look and the wait wakes us.
            let changed = self.changed.notified();
            if condition(&self.lock().log) {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return condition(&self.lock().log);
            }
        }
    }

    /// Waits until no request is being handled (late requests have landed), at most `wait`;
    /// returns whether that happened.
    pub async fn wait_idle(&self, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            if self.lock().in_flight == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.lock().in_flight == 0;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Updates the state and wakes whoever waits on it.
    fn update<T>(&self, change: impl FnOnce(&mut FaultState) -> T) -> T {
        let result = change(&mut self.lock());
        self.changed.notify_waiters();
        result
    }

    async fn serve(&self, mut client: tokio::net::TcpStream, upstream: SocketAddr) {
        let Some(request) = read_request(&mut client).await else {
            return;
        };
        let (service, operation) = request.identify();
        let (slot, fault) = self.update(|state| {
            let fault = state
                .rules
                .iter_mut()
                .find(|r| {
                    r.remaining > 0
                        && r.service == service
                        && r.operation.as_deref().is_none_or(|o| o == operation)
                })
                .map(|rule| {
                    rule.remaining -= 1;
                    rule.fault
                });
            state.in_flight += 1;
            state.log.push(Exchange {
                service,
                operation: operation.clone(),
                fault,
                upstream_status: None,
                body: request.body.clone(),
            });
            (state.log.len() - 1, fault)
        });

        match fault {
            None => {
                if let Some(answer) = self.forward(slot, &request, upstream).await {
                    let _ = client.write_all(&answer).await;
                }
            }
            Some(Fault::Error { status, code }) => {
                let _ = client.write_all(&error_answer(service, status, code)).await;
            }
            Some(Fault::SlowAnswer { delay_ms }) => {
                if let Some(answer) = self.forward(slot, &request, upstream).await {
                    let mut probe = [0u8; 1];
                    let held = tokio::time::sleep(Duration::from_millis(delay_ms));
                    let hung_up = client.read(&mut probe);
                    // The client hung up (or sent more, which it must not): stop holding.
                    let held_to_the_end = matches!(
                        select(std::pin::pin!(held), std::pin::pin!(hung_up)).await,
                        Either::Left(_)
                    );
                    if held_to_the_end {
                        let _ = client.write_all(&answer).await;
                    }
                }
            }
            Some(Fault::SlowRequest { delay_ms }) => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                if let Some(answer) = self.forward(slot, &request, upstream).await {
                    let _ = client.write_all(&answer).await;
                }
            }
            Some(Fault::DropRequest) => {}
            Some(Fault::DropAnswer) => {
                let _ = self.forward(slot, &request, upstream).await;
            }
            Some(Fault::Hang) => {
                let mut probe = [0u8; 1];
                let _ = client.read(&mut probe).await;
            }
        }
        let _ = client.shutdown().await;
        self.update(|state| state.in_flight -= 1);
    }

    /// Sends the request upstream and reads the whole answer; records its status.
    async fn forward(
        &self,
        slot: usize,
        request: &HttpRequest,
        upstream: SocketAddr,
    ) -> Option<Vec<u8>> {
        let mut server = tokio::net::TcpStream::connect(upstream).await.ok()?;
        server.write_all(&request.head).await.ok()?;
        server.write_all(&request.body).await.ok()?;
        // moto closes the connection after its answer: read to the end.
        let mut answer = Vec::new();
        (&mut server)
            .take(PROXY_MESSAGE_BYTES_MAX as u64)
            .read_to_end(&mut answer)
            .await
            .ok()?;
        let status = std::str::from_utf8(answer.get(9..12)?)
            .ok()?
            .parse::<u16>()
            .ok()?;
        self.update(|state| state.log[slot].upstream_status = Some(status));
        Some(answer)
    }
}

/// One HTTP request: its head (request line and headers, with the blank line) and body.
struct HttpRequest {
    head: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The service (from `Authorization: ... Credential=KEY/DATE/REGION/SERVICE/aws4_request`)
    /// and the operation.
    fn identify(&self) -> (Service, String) {
        let service = self
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .map_or(Service::Other, Service::from_scope);
        let operation = match self.header("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or_default().to_owned(),
            None => std::str::from_utf8(&self.body)
                .ok()
                .and_then(|form| {
                    form.split('&')
                        .find_map(|pair| pair.strip_prefix("Action="))
                        .map(str::to_owned)
                })
                .unwrap_or_default(),
        };
        (service, operation)
    }
}

/// Reads one request with a `Content-Length` body; `None` if the client hung up or sent
/// something else.
async fn read_request(client: &mut tokio::net::TcpStream) -> Option<HttpRequest> {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > PROXY_MESSAGE_BYTES_MAX {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head_text = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head_text
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > PROXY_MESSAGE_BYTES_MAX {
        return None;
    }
    let mut body = buffer.split_off(head_end);
    while body.len() < length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(HttpRequest {
        head: buffer,
        headers,
        body,
    })
}

/// An error answer in `service`'s own format, as the AWS SDK parses it.
fn error_answer(service: Service, status: u16, code: &str) -> Vec<u8> {
    let message = "injected by the tickwatch fault proxy";
    let (content_type, body, extra) = match service {
        Service::Sns => {
            let party = if status >= 500 { "Receiver" } else { "Sender" };
            (
                "text/xml",
                format!(
                    r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{party}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"#
                ),
                String::new(),
            )
        }
        Service::Sqs => (
            "application/x-amz-json-1.0",
            format!(r#"{{"__type":"com.amazonaws.sqs#{code}","message":"{message}"}}"#),
            // SQS's JSON protocol names the query-compatible code in a header too.
            format!(
                "x-amzn-query-error: {code};{}\r\n",
                if status >= 500 { "Receiver" } else { "Sender" }
            ),
        ),
        Service::DynamoDb | Service::Other => (
            "application/x-amz-json-1.0",
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}"#
            ),
            String::new(),
        ),
    };
    let reason = if status >= 500 {
        "Internal Server Error"
    } else {
        "Bad Request"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: injected\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
