//! The moto AWS emulator, one per test binary. [`Moto::shared`] starts it on 127.0.0.1 and a free
//! port the first time a test asks. It runs under a tiny shell wrapper that holds the read end of
//! a pipe from this process: when the test binary exits (normally, by panic or killed), the pipe
//! closes and the wrapper stops moto, so no emulator outlives its tests. Tests share the server
//! and isolate themselves with [`unique_name`]d resources.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{AwsClients, retry_config, timeout_config};

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

/// An SDK configuration for an emulator or another fixed endpoint, with an explicit region and
/// static dummy credentials, so no credential provider chain runs.
pub async fn emulator_sdk_config(endpoint_url: &str, region: &str) -> SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tickwatch-static");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint_url)
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}
