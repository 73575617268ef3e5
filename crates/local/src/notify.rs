//! Local notifiers: where `tickwatch run` announces alerts.
//!
//! * `stdout`: one JSON alert per line (pipe it to `jq`); progress and summaries go to stderr.
//! * `file:PATH`: the same lines appended to a file. A publish succeeds once the lines are written
//!   to the operating system (they survive a crash of the process, like the SQLite store's
//!   commits); the file is synced to disk when the notifier is closed, not after every batch,
//!   because a disk flush per batch would cap throughput at the disk's flush rate.
//! * `webhook:URL`: an HTTP POST of the alert JSON per alert. 2xx is success; timeouts, refused
//!   connections, 408, 429 and 5xx are transient (the pipeline retries them with its backoff
//!   policy); other statuses are permanent. Either way a failed alert stays stored and un-notified.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tickwatch_core::Alert;
use tickwatch_core::ports::{Classify, ErrorClass, Notifier};

/// Longest wait for one webhook request, connection included.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// Webhook requests in flight at once.
pub const WEBHOOK_CONCURRENCY_MAX: usize = 8;

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
    /// The webhook answered with a non-2xx status.
    #[error("webhook answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
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
        }
    }
}

/// The local notifiers behind one type, chosen at run time.
#[derive(Clone, Debug)]
pub enum LocalNotifier {
    /// Standard output.
    Stdout,
    /// An append-only file.
    File(Arc<Mutex<File>>),
    /// An HTTP endpoint.
    Webhook {
        /// The client (connection pool).
        client: reqwest::Client,
        /// The target URL.
        url: String,
    },
}

impl LocalNotifier {
    /// Opens the destination (creating the file, building the HTTP client).
    pub fn open(destination: &Destination) -> io::Result<LocalNotifier> {
        Ok(match destination {
            Destination::Stdout => LocalNotifier::Stdout,
            Destination::File(path) => {
                LocalNotifier::File(Arc::new(Mutex::new(open_append(path)?)))
            }
            Destination::Webhook(url) => LocalNotifier::Webhook {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_millis(WEBHOOK_TIMEOUT_MS))
                    .build()
                    .map_err(io::Error::other)?,
                url: url.clone(),
            },
        })
    }
}

impl LocalNotifier {
    /// Flushes what was announced to stable storage (the file's data; stdout and webhooks have
    /// nothing to flush). Call it once at the end of a run.
    pub fn close(&self) -> io::Result<()> {
        match self {
            LocalNotifier::File(file) => file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sync_data(),
            LocalNotifier::Stdout | LocalNotifier::Webhook { .. } => Ok(()),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes alerts as JSON lines in one write call.
fn write_lines(out: &mut impl Write, alerts: &[Alert]) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(alerts.len() * 256);
    for alert in alerts {
        serde_json::to_writer(&mut buffer, alert)?;
        buffer.push(b'\n');
    }
    out.write_all(&buffer)?;
    out.flush()
}

async fn post(client: &reqwest::Client, url: &str, alert: &Alert) -> Result<(), NotifyError> {
    let body = serde_json::to_vec(alert).map_err(|e| NotifyError::Write(e.to_string()))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-tickwatch-alert-id", alert.alert_id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| NotifyError::Unreachable(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Status {
            status: status.as_u16(),
        })
    }
}

impl Notifier for LocalNotifier {
    type Error = NotifyError;

    async fn publish(&self, alerts: &[Alert]) -> Vec<Result<(), NotifyError>> {
        let whole = |result: io::Result<()>| -> Vec<Result<(), NotifyError>> {
            let result = result.map_err(|e| NotifyError::Write(e.to_string()));
            alerts.iter().map(|_| result.clone()).collect()
        };
        match self {
            LocalNotifier::Stdout => whole(write_lines(&mut io::stdout().lock(), alerts)),
            LocalNotifier::File(file) => {
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                whole(write_lines(&mut *file, alerts))
            }
            LocalNotifier::Webhook { client, url } => {
                // Built up front: a lazily mapped stream trips the compiler's Send check (the
                // closure would have to be general over the alert reference's lifetime).
                let requests: Vec<_> = alerts
                    .iter()
                    .map(|alert| post(client, url, alert))
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
    }
}
