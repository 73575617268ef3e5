//! Helpers for the end-to-end tests: a temporary working directory, running the binary, and a
//! webhook receiver on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A tick line; `at` is RFC 3339 text or epoch milliseconds.
pub(crate) fn tick(symbol: &str, price: f64, at: &str) -> String {
    let timestamp = if at.bytes().all(|b| b.is_ascii_digit()) {
        (1_795_700_000_000 + at.parse::<i64>().unwrap_or(0) * 1000).to_string()
    } else {
        format!("\"{at}\"")
    };
    format!(r#"{{"symbol":"{symbol}","price":{price},"timestamp":{timestamp},"venue":"XNAS"}}"#)
}

/// A temporary working directory for one test.
pub(crate) struct Dir {
    dir: tempfile::TempDir,
}

/// What a run of the binary produced.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    args: Vec<String>,
}

impl Run {
    pub(crate) fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.code, code,
            "tickwatch {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.stdout, self.stderr
        );
    }

    pub(crate) fn stdout_json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
            })
            .collect()
    }

    /// The processing time of the first alert on stdout (it differs between runs).
    pub(crate) fn processed_at(&self) -> String {
        self.stdout_json_lines()
            .first()
            .and_then(|a| a["processed_at"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Dir {
    pub(crate) fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write test file");
    }

    /// `tickwatch alerts --format json ARGS` as `SYMBOL:KIND`, in the order listed.
    pub(crate) fn listed_alerts(&self, args: &[&str]) -> Vec<String> {
        let mut full = vec!["alerts", "--format", "json"];
        full.extend_from_slice(args);
        let out = self.tickwatch(&full);
        out.assert_exit(0);
        out.stdout_json_lines()
            .iter()
            .map(|a| {
                format!(
                    "{}:{}",
                    a["symbol"].as_str().unwrap_or(""),
                    a["kind"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Writes tick lines (see [`tick`]) as an NDJSON file.
    pub(crate) fn write_ticks(&self, name: &str, lines: &[String]) {
        self.write(name, &lines.join("\n"));
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    pub(crate) fn tickwatch(&self, args: &[&str]) -> Run {
        self.tickwatch_stdin(args, "")
    }

    /// Starts `tickwatch` in this directory with stdin, stdout and stderr piped.
    pub(crate) fn spawn_tickwatch(&self, args: &[&str]) -> Child {
        self.spawn_tickwatch_env(args, &[])
    }

    /// Starts `tickwatch` with extra environment variables, stdin, stdout and stderr piped.
    pub(crate) fn spawn_tickwatch_env(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_tickwatch"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tickwatch starts")
    }

    pub(crate) fn tickwatch_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.tickwatch_env_stdin(args, &[], stdin)
    }

    /// Runs `tickwatch` with extra environment variables and `stdin`.
    pub(crate) fn tickwatch_env_stdin(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &str,
    ) -> Run {
        let mut child = self.spawn_tickwatch_env(args, env);
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let Output {
            status,
            stdout,
            stderr,
        } = wait_bounded(child, args);
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// Bound on a `tickwatch` command of these tests (a hang, not a measurement).
const RUN_HANG_S: u64 = 300;

/// Waits for `child` and collects its output, killing it after [`RUN_HANG_S`]: a command that
/// hangs fails its test, with what it said, instead of holding up the whole suite.
pub(crate) fn wait_bounded(mut child: Child, args: &[&str]) -> Output {
    // Read while waiting, so that a chatty child cannot fill a pipe meanwhile.
    let read_all = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = child.stdout.take().map(|s| read_all(Box::new(s)));
    let stderr = child.stderr.take().map(|s| read_all(Box::new(s)));
    let collected = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader.map_or_else(Vec::new, |r| r.join().expect("a pipe reader"))
    };
    let Some(status) = exit_within(&mut child, RUN_HANG_S) else {
        panic!(
            "tickwatch {args:?} did not end within {RUN_HANG_S} s; stderr:\n{}",
            String::from_utf8_lossy(&collected(stderr))
        );
    };
    Output {
        status,
        stdout: collected(stdout),
        stderr: collected(stderr),
    }
}

/// How `child` ended, if it did within `bound_s`; otherwise it is killed (and reaped) and `None`.
fn exit_within(child: &mut Child, bound_s: u64) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(bound_s);
    loop {
        if let Some(status) = child.try_wait().expect("poll tickwatch") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// One request the webhook received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) body: Value,
    pub(crate) content_type: String,
    pub(crate) alert_id_header: String,
}

/// An HTTP server on 127.0.0.1 that records POSTs and answers with the given statuses in turn
/// (the last one repeats). It runs on a thread until the test process ends.
pub(crate) struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Webhook {
    pub(crate) fn start(statuses: Vec<u16>) -> Webhook {
        Webhook::start_slow(statuses, std::time::Duration::ZERO)
    }

    /// A webhook that takes `delay` to answer each request, one request at a time.
    pub(crate) fn start_slow(statuses: Vec<u16>, delay: std::time::Duration) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let status = statuses[n.min(statuses.len() - 1)];
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut headers = Vec::new();
                let complete = loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break false;
                    }
                    if line == "\r\n" {
                        break true;
                    }
                    headers.push(line.trim_end().to_owned());
                };
                if !complete {
                    // The sender went away mid-request (a killed process): nothing was received.
                    continue;
                }
                let header = |name: &str| {
                    headers
                        .iter()
                        .find_map(|h| {
                            h.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                log.lock().expect("log").push(Received {
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    content_type: header("content-type"),
                    alert_id_header: header("x-tickwatch-alert-id"),
                });
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Webhook { port, received }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

/// A `tickwatch run` reading a live feed on its stdin, its stdout and stderr read line by line on
/// threads: ticks go in one at a time while the run is going, and the alerts it announces come
/// out.
pub(crate) struct LiveRun {
    child: Child,
    args: Vec<String>,
    feed: Option<std::process::ChildStdin>,
    announced: std::sync::mpsc::Receiver<String>,
    said: std::sync::mpsc::Receiver<String>,
    /// The stderr lines taken by [`LiveRun::wait_for_stderr`], kept for [`LiveRun::finish`].
    said_so_far: Vec<String>,
}

/// Bound on any wait for a live run (a hang, not a measurement).
const LIVE_HANG_S: u64 = 60;

impl LiveRun {
    /// Starts `tickwatch run --input - --notify stdout` in `dir`.
    pub(crate) fn start(dir: &Dir) -> LiveRun {
        LiveRun::start_with(dir, &[])
    }

    /// As [`LiveRun::start`], with more arguments for `tickwatch run`.
    pub(crate) fn start_with(dir: &Dir, more: &[&str]) -> LiveRun {
        let args = ["run", "--input", "-", "--notify", "stdout"];
        LiveRun::spawn(dir, &[&args[..], more].concat())
    }

    /// Starts `tickwatch` with `args` (any command), read as a live run is.
    pub(crate) fn spawn(dir: &Dir, args: &[&str]) -> LiveRun {
        let mut child = dir.spawn_tickwatch(args);
        let feed = child.stdin.take().expect("stdin is piped");
        let lines_of = |stream: Box<dyn Read + Send>| {
            let (lines, received) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            });
            received
        };
        let announced = lines_of(Box::new(child.stdout.take().expect("stdout is piped")));
        let said = lines_of(Box::new(child.stderr.take().expect("stderr is piped")));
        LiveRun {
            child,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            feed: Some(feed),
            announced,
            said,
            said_so_far: Vec::new(),
        }
    }

    /// Writes one line into the feed, which stays open.
    pub(crate) fn send(&mut self, line: &str) {
        let feed = self.feed.as_mut().expect("the feed is open");
        writeln!(feed, "{line}").expect("feed a tick");
        feed.flush().expect("flush the feed");
    }

    /// Closes the feed; the run goes on with what it read.
    pub(crate) fn close_feed(&mut self) {
        self.feed = None;
    }

    /// Waits for a line on stderr that contains `text`, and returns it.
    pub(crate) fn wait_for_stderr(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LIVE_HANG_S);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.said.recv_timeout(left) else {
                let _ = self.child.kill();
                panic!(
                    "tickwatch never said {text:?}; it said:\n{}",
                    self.said_so_far.join("\n")
                );
            };
            self.said_so_far.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends Ctrl-C (SIGINT), the feed left as it is, and waits for the run to end.
    pub(crate) fn interrupt(self) -> Run {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -INT: {status}");
        self.wait()
    }

    /// The next alert announced. The timeout only bounds a hang; it is no speed test.
    pub(crate) fn next_alert(&self) -> Value {
        let line = self
            .announced
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("an alert is announced while the feed stays open");
        serde_json::from_str(&line).expect("an alert is one JSON line")
    }

    /// Whether the run is still going.
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().expect("poll tickwatch").is_none()
    }

    /// Closes the feed and waits for the run to end.
    pub(crate) fn finish(mut self) -> Run {
        self.close_feed();
        self.wait()
    }

    /// Waits for the run to end (killing it after [`LIVE_HANG_S`]): its exit code and stderr (its
    /// stdout is what [`LiveRun::next_alert`] reads).
    fn wait(mut self) -> Run {
        let Some(status) = exit_within(&mut self.child, LIVE_HANG_S) else {
            panic!(
                "tickwatch {:?} did not end within {LIVE_HANG_S} s",
                self.args
            );
        };
        // The stream ends with the process, so this takes what is left.
        self.said_so_far.extend(self.said.iter());
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: self.said_so_far.join("\n"),
            args: self.args,
        }
    }
}
