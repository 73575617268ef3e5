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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Finds `moto_server`: `$TICKWATCH_MOTO_SERVER`, else `<workspace>/.venv/moto/bin/moto_server`.
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
    let path = workspace_root().join(".venv/moto/bin/moto_server");
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
