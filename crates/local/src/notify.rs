//! Local notifiers: where `tickwatch run` announces alerts.
//!
//! * `stdout`: one JSON alert per line (pipe it to `jq`); progress and summaries go to stderr.
//! * `file:PATH`: the same lines appended to a file. A publish succeeds once the lines are written
//!   to the operating system (they survive a crash of the process, like the SQLite store's
//!   commits); the file is synced to disk when the notifier is closed, not after every batch,
//!   because a disk flush per batch would cap throughput at the disk's flush rate. The file always
//!   ends in a whole line, so a reader never sees half an alert glued to the next one: a write
//!   that fails part-way (a full disk) is cut back to where it started and the batch fails whole,
//!   and a file left ending mid-line (a previous run killed mid-write) is cut back to its last
//!   whole line when opened. That assumes one writer per file. Pipes, devices and other files
//!   that are not regular (`/dev/null`, `/dev/stdout` into a pipe, a FIFO) are written the same
//!   way but neither synced nor cut, which they do not support.
//! * `webhook:URL`: an HTTP POST of the alert JSON per alert. 2xx is success; timeouts, refused
//!   connections, 408, 429 and 5xx are transient (the pipeline retries them with its backoff
//!   policy); other statuses are permanent. Redirects (3xx) are not followed, because following
//!   one turns the POST into a GET without the alert, and fail permanently with the target named.
//!   Either way a failed alert stays stored and un-notified.
//!
//!   A webhook that never answers would otherwise hold a run for hours (every alert waiting out
//!   [`WEBHOOK_TIMEOUT_MS`] on each retry), so the notifier has a circuit breaker: after
//!   [`WEBHOOK_TIMEOUTS_TO_OPEN`] consecutive requests that timed out or could not connect, the
//!   circuit opens, requests still in flight are abandoned, and every publish fails at once
//!   (transient) without sending anything. Every [`WEBHOOK_CIRCUIT_COOLDOWN_MS`] one request is
//!   let through as a probe: an answer closes the circuit (a live feed resumes announcing by
//!   itself), a timeout keeps it open another cooldown, so a dead webhook costs at most one
//!   timeout per cooldown. Any HTTP answer while it is closed resets the count. Failed alerts
//!   stay stored and un-notified, and `tickwatch notify` announces them once the webhook is back.

use std::borrow::Borrow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use futures_util::stream::{self, StreamExt};
use tickwatch_core::Alert;
use tickwatch_core::ports::{Classify, ErrorClass, Notifier};
use tokio::sync::Notify;

/// Longest wait for one webhook request, connection included.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// Longest wait for a webhook connection (TCP and TLS); a host that does not accept is given up
/// on sooner than one that accepted and is slow to answer.
pub const WEBHOOK_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Webhook requests in flight at once.
pub const WEBHOOK_CONCURRENCY_MAX: usize = 8;
/// Consecutive webhook requests that timed out or could not connect after which the circuit
/// opens and the notifier stops sending for the rest of the process's life.
pub const WEBHOOK_TIMEOUTS_TO_OPEN: u32 = 8;
/// How long an open webhook circuit refuses everything before it lets one probe request through.
pub const WEBHOOK_CIRCUIT_COOLDOWN_MS: u64 = 30_000;

/// How much of an alerts file's end is read at a time when looking for its last whole line.
const TAIL_READ_BYTES: usize = 4_096;

/// Room reserved per alert for its JSON (most are 230-260 bytes; a longer one only grows the
/// buffer).
const ALERT_JSON_BYTES_TYPICAL: usize = 256;

/// Where alerts go, as given on the command line (`stdout`, `file:PATH`, `webhook:URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// POSTed to a URL.
    Webhook(String),
}

/// A destination that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("notify destination must be stdout, file:PATH or webhook:http(s)://..., got {0:?}")]
pub struct BadDestination(String);

impl std::str::FromStr for Destination {
    type Err = BadDestination;
    fn from_str(text: &str) -> Result<Destination, BadDestination> {
        if text == "stdout" {
            return Ok(Destination::Stdout);
        }
        if let Some(path) = text.strip_prefix("file:").filter(|p| !p.is_empty()) {
            return Ok(Destination::File(PathBuf::from(path)));
        }
        if let Some(url) = text.strip_prefix("webhook:")
            && (url.starts_with("http://") || url.starts_with("https://"))
            && reqwest::Url::parse(url).is_ok()
        {
            return Ok(Destination::Webhook(url.to_owned()));
        }
        Err(BadDestination(text.to_owned()))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stdout => f.write_str("stdout"),
            Destination::File(path) => write!(f, "file:{}", path.display()),
            Destination::Webhook(url) => write!(f, "webhook:{url}"),
        }
    }
}

/// Why an alert could not be announced.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NotifyError {
    /// Writing to stdout or the file failed.
    #[error("writing alert: {0}")]
    Write(String),
    /// The webhook could not be reached or did not answer in time.
    #[error("webhook unreachable: {0}")]
    Unreachable(String),
    /// The webhook answered with a non-2xx, non-3xx status.
    #[error("webhook answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The webhook answered with a redirect, which is not followed.
    #[error(
        "webhook answered HTTP {status} redirect to {}: redirects are not followed, point --notify at the final URL",
        .location.as_deref().unwrap_or("nowhere (no Location header)")
    )]
    Redirect {
        /// The HTTP status code (3xx).
        status: u16,
        /// The redirect's target (the `Location` header, resolved against the request URL).
        location: Option<String>,
    },
    /// The circuit breaker is open: the webhook stopped answering and nothing more is sent.
    #[error(
        "webhook circuit open after {timeouts} consecutive timeouts; alerts stay stored for `tickwatch notify`"
    )]
    CircuitOpen {
        /// Consecutive timeouts that opened it.
        timeouts: u32,
    },
}

impl Classify for NotifyError {
    fn class(&self) -> ErrorClass {
        match self {
            // A full disk or a closed pipe does not heal by itself within a run.
            NotifyError::Write(_) => ErrorClass::Permanent,
            NotifyError::Unreachable(_) => ErrorClass::Transient,
            NotifyError::Status { status }
                if *status == 408 || *status == 429 || *status >= 500 =>
            {
                ErrorClass::Transient
            }
            NotifyError::Status { .. } => ErrorClass::Permanent,
            // Asking again gets the same redirect; the URL has to change.
            NotifyError::Redirect { .. } => ErrorClass::Permanent,
            // Nothing wrong with the alert: a later `tickwatch notify` may succeed. Retries within
            // this process fail at once, so they cost only the backoff sleeps.
            NotifyError::CircuitOpen { .. } => ErrorClass::Transient,
        }
    }
}

/// The local notifiers behind one type, chosen at run time.
#[derive(Clone, Debug)]
pub enum LocalNotifier {
    /// Standard output.
    Stdout,
    /// An append-only file.
    File(Arc<FileNotifier>),
    /// An HTTP endpoint.
    Webhook(Arc<WebhookNotifier>),
}

impl LocalNotifier {
    /// Opens the destination (creating the file or cutting a partial last line off it, building
    /// the HTTP client).
    pub fn open(destination: &Destination) -> io::Result<LocalNotifier> {
        Ok(match destination {
            Destination::Stdout => LocalNotifier::Stdout,
            Destination::File(path) => LocalNotifier::File(Arc::new(FileNotifier::open(path)?)),
            Destination::Webhook(url) => {
                LocalNotifier::Webhook(Arc::new(WebhookNotifier::new(url)?))
            }
        })
    }

    /// Flushes what was announced to stable storage (the file's data; stdout, webhooks and files
    /// that are not regular have nothing to flush). Call it once at the end of a run.
    pub fn close(&self) -> io::Result<()> {
        match self {
            LocalNotifier::File(file) => file.sync(),
            LocalNotifier::Stdout | LocalNotifier::Webhook(_) => Ok(()),
        }
    }
}

/// Alerts appended to a file as JSON lines; the file always ends in a whole line.
#[derive(Debug)]
pub struct FileNotifier {
    /// Opened for appending. The mutex makes this notifier the file's only writer in the process,
    /// which is what lets a failed write be cut back to the length it started from.
    file: Mutex<File>,
    /// Whether it is a regular file: only those can be synced and cut back.
    regular: bool,
}

impl FileNotifier {
    /// Opens (or creates) `path` for appending; a regular file that ends mid-line is cut back to
    /// its last whole line first.
    fn open(path: &Path) -> io::Result<FileNotifier> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let metadata = file.metadata()?;
        let regular = metadata.is_file();
        if regular && metadata.len() > 0 {
            // The append handle cannot read; a second handle can (a FIFO is never opened this
            // way: opening it for reading would make us its reader).
            match File::open(path) {
                Ok(mut reader) => {
                    let end = last_line_end(&mut reader, metadata.len())?;
                    if end < metadata.len() {
                        tracing::warn!(
                            path = %path.display(),
                            cut_bytes = metadata.len() - end,
                            "The alerts file ended mid-line (a previous run stopped while writing \
                             it); cut back to its last whole line."
                        );
                        file.set_len(end)?;
                    }
                }
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    %error,
                    "The alerts file cannot be read, so a partial last line is not checked for."
                ),
            }
        }
        Ok(FileNotifier {
            file: Mutex::new(file),
            regular,
        })
    }

    /// Appends the alerts' lines in one write. If it fails part-way, what was written is cut off
    /// again, so the file still ends in a whole line and the batch fails whole.
    fn append<A: Borrow<Alert>>(&self, alerts: &[A]) -> io::Result<()> {
        let buffer = json_lines(alerts);
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.regular {
            file.write_all(&buffer)?;
            return file.flush();
        }
        let len = file.metadata()?.len();
        let written = file.write_all(&buffer).and_then(|()| file.flush());
        if let Err(error) = written {
            if let Err(cut) = file.set_len(len) {
                return Err(io::Error::new(
                    error.kind(),
                    format!("{error}; cutting the partial write off again also failed: {cut}"),
                ));
            }
            return Err(error);
        }
        Ok(())
    }

    /// Syncs the file's data to disk (regular files only: pipes and devices refuse with EINVAL).
    fn sync(&self) -> io::Result<()> {
        if !self.regular {
            return Ok(());
        }
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync_data()
    }
}

/// Where the last whole line of the file's first `len` bytes ends: just after its last '\n', or
/// 0 when it has none.
fn last_line_end(file: &mut File, len: u64) -> io::Result<u64> {
    let mut chunk = vec![0; TAIL_READ_BYTES];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(TAIL_READ_BYTES as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(newline) = memchr::memrchr(b'\n', part) {
            return Ok(start + newline as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The alerts as JSON lines, ready for one write call.
fn json_lines<A: Borrow<Alert>>(alerts: &[A]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(alerts.len() * ALERT_JSON_BYTES_TYPICAL);
    for alert in alerts {
        alert.borrow().write_json(&mut buffer);
        buffer.push(b'\n');
    }
    buffer
}

/// Writes alerts as JSON lines in one write call.
fn write_lines<A: Borrow<Alert>>(out: &mut impl Write, alerts: &[A]) -> io::Result<()> {
    out.write_all(&json_lines(alerts))?;
    out.flush()
}

/// Alerts POSTed to a URL, behind a circuit breaker.
#[derive(Debug)]
pub struct WebhookNotifier {
    /// The client (connection pool); it follows no redirects.
    client: reqwest::Client,
    /// The target URL.
    url: String,
    /// Stops sending once the webhook has stopped answering.
    circuit: Circuit,
}

impl WebhookNotifier {
    fn new(url: &str) -> io::Result<WebhookNotifier> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(WEBHOOK_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(WEBHOOK_CONNECT_TIMEOUT_MS))
            // A followed 301/302/303 re-sends the POST as a GET without the alert, and the
            // target's 200 would then mark an alert notified that never arrived.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(io::Error::other)?;
        Ok(WebhookNotifier {
            client,
            url: url.to_owned(),
            circuit: Circuit::new(Duration::from_millis(WEBHOOK_CIRCUIT_COOLDOWN_MS)),
        })
    }

    /// POSTs one alert unless the circuit is open, and gives up on it if the circuit opens while
    /// it is in flight (waiting out its timeout would only delay the run).
    async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        // Registered before the check, so an opening between the check and the wait is seen.
        let opened = self.circuit.opened.notified();
        let admitted = self.circuit.admit();
        if admitted == Admit::Refuse {
            return Err(Circuit::open_error());
        }
        match select(pin!(self.send(alert, admitted)), pin!(opened)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(Circuit::open_error()),
        }
    }

    async fn send(&self, alert: &Alert, admitted: Admit) -> Result<(), NotifyError> {
        let mut body = Vec::with_capacity(ALERT_JSON_BYTES_TYPICAL);
        alert.write_json(&mut body);
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-tickwatch-alert-id", alert.alert_id.to_string())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                if self.circuit.record_timeout(admitted) {
                    tracing::warn!(
                        url = %self.url,
                        timeouts = WEBHOOK_TIMEOUTS_TO_OPEN,
                        cooldown_ms = self.circuit.cooldown.as_millis() as u64,
                        "Webhook circuit opened: alerts fail at once and stay stored; one probe \
                         per cooldown tries the webhook again."
                    );
                }
                return Err(NotifyError::Unreachable(error_chain(&error)));
            }
        };
        if self.circuit.record_answer(admitted) {
            tracing::warn!(url = %self.url, "Webhook answered the probe: circuit closed.");
        }
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(|target| {
                    response
                        .url()
                        .join(target)
                        .map_or_else(|_| target.to_owned(), String::from)
                });
            Err(NotifyError::Redirect {
                status: status.as_u16(),
                location,
            })
        } else {
            Err(NotifyError::Status {
                status: status.as_u16(),
            })
        }
    }
}

/// An error and its causes, `a: b: c` as anyhow's `{:#}` prints them ("error sending request:
/// ...: operation timed out"): reqwest's own message leaves out what actually happened.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Counts consecutive webhook requests that got no answer; at [`WEBHOOK_TIMEOUTS_TO_OPEN`] the
/// circuit opens. While open, requests fail at once without being sent, except one probe every
/// `cooldown` ([`WEBHOOK_CIRCUIT_COOLDOWN_MS`]): an answer to the probe closes the circuit, a
/// timeout keeps it open for another cooldown. So a dead webhook costs a run at most one timeout
/// per cooldown, and a live feed resumes announcing by itself once the webhook is back.
#[derive(Debug)]
struct Circuit {
    /// Consecutive timeouts, never above [`WEBHOOK_TIMEOUTS_TO_OPEN`] (reaching it means open).
    timeouts: AtomicU32,
    /// When the circuit last opened (or a probe last failed); `None` while closed.
    opened_at: Mutex<Option<Instant>>,
    /// A probe is in flight: only one at a time.
    probing: AtomicBool,
    /// How long the circuit stays open before a probe.
    cooldown: Duration,
    /// Wakes the requests in flight when the circuit opens.
    opened: Notify,
}

/// What the circuit lets a request do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admit {
    /// Closed: send.
    Send,
    /// Open, and the cooldown is over: send this one request as the probe.
    Probe,
    /// Open: fail at once.
    Refuse,
}

impl Circuit {
    fn new(cooldown: Duration) -> Circuit {
        Circuit {
            timeouts: AtomicU32::new(0),
            opened_at: Mutex::new(None),
            probing: AtomicBool::new(false),
            cooldown,
            opened: Notify::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.timeouts.load(Ordering::SeqCst) >= WEBHOOK_TIMEOUTS_TO_OPEN
    }

    fn opened_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a request may go out now.
    fn admit(&self) -> Admit {
        if !self.is_open() {
            return Admit::Send;
        }
        let cooled = self
            .opened_at()
            .is_some_and(|at| at.elapsed() >= self.cooldown);
        if cooled
            && self
                .probing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            Admit::Probe
        } else {
            Admit::Refuse
        }
    }

    /// Counts a request that got no answer; returns whether this one opened the circuit (a
    /// failed probe keeps it open, for another cooldown, and opens nothing).
    fn record_timeout(&self, admitted: Admit) -> bool {
        if admitted == Admit::Probe {
            *self.opened_at() = Some(Instant::now());
            self.probing.store(false, Ordering::SeqCst);
            return false;
        }
        let counted = self
            .timeouts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < WEBHOOK_TIMEOUTS_TO_OPEN).then_some(n + 1)
            });
        let opened = counted == Ok(WEBHOOK_TIMEOUTS_TO_OPEN - 1);
        if opened {
            *self.opened_at() = Some(Instant::now());
            self.opened.notify_waiters();
        }
        opened
    }

    /// An answer (any status) ends a run of timeouts; the probe's answer closes the circuit.
    /// Returns whether it closed it.
    fn record_answer(&self, admitted: Admit) -> bool {
        if admitted == Admit::Probe {
            *self.opened_at() = None;
            self.timeouts.store(0, Ordering::SeqCst);
            self.probing.store(false, Ordering::SeqCst);
            return true;
        }
        // Refused (Err) when open: an answer to a request sent before it opened changes nothing.
        let _ = self
            .timeouts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < WEBHOOK_TIMEOUTS_TO_OPEN).then_some(0)
            });
        false
    }

    fn open_error() -> NotifyError {
        NotifyError::CircuitOpen {
            timeouts: WEBHOOK_TIMEOUTS_TO_OPEN,
        }
    }
}

impl Notifier for LocalNotifier {
    type Error = NotifyError;

    async fn publish<A: Borrow<Alert> + Sync>(&self, alerts: &[A]) -> Vec<Result<(), NotifyError>> {
        let whole = |result: io::Result<()>| -> Vec<Result<(), NotifyError>> {
            let result = result.map_err(|e| NotifyError::Write(e.to_string()));
            alerts.iter().map(|_| result.clone()).collect()
        };
        match self {
            LocalNotifier::Stdout => whole(write_lines(&mut io::stdout().lock(), alerts)),
            LocalNotifier::File(file) => whole(file.append(alerts)),
            LocalNotifier::Webhook(hook) => {
                // Built up front: a lazily mapped stream trips the compiler's Send check (the
                // closure would have to be general over the alert reference's lifetime).
                let requests: Vec<_> = alerts
                    .iter()
                    .map(|alert| hook.post(alert.borrow()))
                    .collect();
                stream::iter(requests)
                    .buffered(WEBHOOK_CONCURRENCY_MAX)
                    .collect()
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let cases: &[(&str, Option<Destination>)] = &[
            ("stdout", Some(Destination::Stdout)),
            (
                "file:alerts.ndjson",
                Some(Destination::File("alerts.ndjson".into())),
            ),
            (
                "webhook:http://127.0.0.1:9/hook",
                Some(Destination::Webhook("http://127.0.0.1:9/hook".into())),
            ),
            (
                "webhook:https://example.com/a?b=c",
                Some(Destination::Webhook("https://example.com/a?b=c".into())),
            ),
            ("file:", None),
            ("webhook:ftp://x", None),
            ("webhook:http://", None),
            ("email:me@example.com", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Destination>().ok(), *expected, "{text}");
        }
    }

    #[test]
    fn webhook_statuses_are_classified() {
        let cases = [
            (400, ErrorClass::Permanent),
            (404, ErrorClass::Permanent),
            (408, ErrorClass::Transient),
            (429, ErrorClass::Transient),
            (500, ErrorClass::Transient),
            (503, ErrorClass::Transient),
        ];
        for (status, class) in cases {
            assert_eq!(NotifyError::Status { status }.class(), class, "{status}");
        }
        assert_eq!(
            NotifyError::Unreachable("refused".into()).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            NotifyError::Write("disk full".into()).class(),
            ErrorClass::Permanent
        );
        let redirect = NotifyError::Redirect {
            status: 302,
            location: Some("http://127.0.0.1:9/final".into()),
        };
        assert_eq!(redirect.class(), ErrorClass::Permanent);
        assert_eq!(
            redirect.to_string(),
            "webhook answered HTTP 302 redirect to http://127.0.0.1:9/final: redirects are not \
             followed, point --notify at the final URL"
        );
        let nowhere = NotifyError::Redirect {
            status: 301,
            location: None,
        };
        assert!(
            nowhere
                .to_string()
                .contains("HTTP 301 redirect to nowhere (no Location header)")
        );
        assert_eq!(
            Circuit::open_error().class(),
            ErrorClass::Transient,
            "a later `tickwatch notify` may succeed"
        );
    }

    #[test]
    fn the_circuit_opens_after_consecutive_timeouts_and_probes_after_the_cooldown() {
        let circuit = Circuit::new(Duration::from_millis(50));
        // An answer in between starts the count again.
        for _ in 1..WEBHOOK_TIMEOUTS_TO_OPEN {
            assert!(!circuit.record_timeout(Admit::Send));
        }
        circuit.record_answer(Admit::Send);
        for _ in 1..WEBHOOK_TIMEOUTS_TO_OPEN {
            assert!(!circuit.record_timeout(Admit::Send));
        }
        assert_eq!(circuit.admit(), Admit::Send);
        assert!(circuit.record_timeout(Admit::Send), "the last one opens it");
        // Open: refused, and a late answer to an earlier request changes nothing.
        assert_eq!(circuit.admit(), Admit::Refuse);
        assert!(!circuit.record_answer(Admit::Send));
        assert!(!circuit.record_timeout(Admit::Send), "already open");
        assert_eq!(circuit.admit(), Admit::Refuse);

        // After the cooldown, one probe at a time; its timeout keeps the circuit open.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(circuit.admit(), Admit::Probe);
        assert_eq!(circuit.admit(), Admit::Refuse, "one probe at a time");
        assert!(!circuit.record_timeout(Admit::Probe));
        assert_eq!(
            circuit.admit(),
            Admit::Refuse,
            "a failed probe restarts the cooldown"
        );

        // The next probe is answered: closed, and counting starts from zero.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(circuit.admit(), Admit::Probe);
        assert!(circuit.record_answer(Admit::Probe));
        assert_eq!(circuit.admit(), Admit::Send);
        for _ in 1..WEBHOOK_TIMEOUTS_TO_OPEN {
            assert!(!circuit.record_timeout(Admit::Send));
        }
        assert_eq!(circuit.admit(), Admit::Send);
    }
}
