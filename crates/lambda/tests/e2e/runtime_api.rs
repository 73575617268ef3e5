//! A small Lambda Runtime API emulator: HTTP/1.1 on 127.0.0.1, enough of the protocol for a custom
//! runtime (`GET .../invocation/next`, `POST .../invocation/{id}/response`, `.../error`,
//! `POST .../init/error`), with keep-alive and chunked request bodies as hyper sends them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

/// Longest request head or body accepted, in bytes.
const REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The function ARN given to every invocation.
pub(crate) const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:tickwatch-e2e";

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `POST .../response` with this body.
    Response(String),
    /// `POST .../error` with this body.
    Error(String),
}

struct Pending {
    request_id: String,
    payload: String,
    deadline_ms: u64,
}

#[derive(Default)]
struct Shared {
    answers: HashMap<String, oneshot::Sender<Answer>>,
}

/// The emulator.
pub(crate) struct RuntimeApi {
    address: String,
    events: mpsc::Sender<Pending>,
    shared: Arc<Mutex<Shared>>,
    init_error: watch::Receiver<Option<String>>,
    counter: std::sync::atomic::AtomicU64,
}

impl RuntimeApi {
    /// Starts listening on a free port of 127.0.0.1.
    pub(crate) async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let address = listener.local_addr().expect("address").to_string();
        let (events, receiver) = mpsc::channel::<Pending>(16);
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (init_sender, init_error) = watch::channel(None);
        let init_sender = Arc::new(init_sender);
        let state = (receiver, shared.clone(), init_sender);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (receiver, shared, init) = (state.0.clone(), state.1.clone(), state.2.clone());
                tokio::spawn(serve(stream, receiver, shared, init));
            }
        });
        RuntimeApi {
            address,
            events,
            shared,
            init_error,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Invokes the function with `payload`, Lambda's deadline `timeout` from now, and waits (at
    /// most `wait`) for its answer.
    pub(crate) async fn invoke(
        &self,
        payload: String,
        timeout: Duration,
        wait: Duration,
    ) -> Answer {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request_id = format!("e2e-request-{n:04}");
        let (sender, receiver) = oneshot::channel();
        self.shared
            .lock()
            .await
            .answers
            .insert(request_id.clone(), sender);
        let deadline_ms = now_ms() + timeout.as_millis() as u64;
        self.events
            .send(Pending {
                request_id: request_id.clone(),
                payload,
                deadline_ms,
            })
            .await
            .expect("runtime API running");
        tokio::time::timeout(wait, receiver)
            .await
            .unwrap_or_else(|_| panic!("no answer to {request_id} within {wait:?}"))
            .expect("answer sent")
    }

    /// Waits (at most `wait`) for an init error report; `None` if none came.
    pub(crate) async fn init_error(&self, wait: Duration) -> Option<String> {
        let mut receiver = self.init_error.clone();
        let reported = tokio::time::timeout(wait, receiver.wait_for(Option::is_some)).await;
        match reported {
            Ok(Ok(value)) => value.clone(),
            _ => None,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Serves one connection: requests one after another (keep-alive).
async fn serve(
    stream: TcpStream,
    events: Arc<Mutex<mpsc::Receiver<Pending>>>,
    shared: Arc<Mutex<Shared>>,
    init_error: Arc<watch::Sender<Option<String>>>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    while let Some(request) = read_request(&mut reader).await {
        let reply = route(request, &events, &shared, &init_error).await;
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn route(
    request: Request,
    events: &Mutex<mpsc::Receiver<Pending>>,
    shared: &Mutex<Shared>,
    init_error: &watch::Sender<Option<String>>,
) -> Vec<u8> {
    const PREFIX: &str = "/2018-06-01/runtime/";
    let Some(rest) = request.path.strip_prefix(PREFIX) else {
        return reply(404, &[], b"{}");
    };
    let body = String::from_utf8_lossy(&request.body).into_owned();
    match (request.method.as_str(), rest) {
        ("GET", "invocation/next") => {
            let Some(pending) = events.lock().await.recv().await else {
                return reply(500, &[], b"{}");
            };
            let headers = [
                ("Lambda-Runtime-Aws-Request-Id", pending.request_id.clone()),
                (
                    "Lambda-Runtime-Deadline-Ms",
                    pending.deadline_ms.to_string(),
                ),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    FUNCTION_ARN.to_owned(),
                ),
                (
                    "Lambda-Runtime-Trace-Id",
                    format!(
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=e2e:{}",
                        pending.request_id
                    ),
                ),
                ("Content-Type", "application/json".to_owned()),
            ];
            reply(200, &headers, pending.payload.as_bytes())
        }
        ("POST", "init/error") => {
            let _ = init_error.send(Some(body));
            reply(202, &[], br#"{"status":"OK"}"#)
        }
        ("POST", path) => {
            let mut parts = path.split('/');
            let (Some("invocation"), Some(id), Some(kind)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return reply(404, &[], b"{}");
            };
            let answer = match kind {
                "response" => Answer::Response(body),
                "error" => Answer::Error(body),
                _ => return reply(404, &[], b"{}"),
            };
            if let Some(sender) = shared.lock().await.answers.remove(id) {
                let _ = sender.send(answer);
            }
            reply(202, &[], br#"{"status":"OK"}"#)
        }
        _ => reply(404, &[], b"{}"),
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one request; `None` when the connection closes or the request is unreadable.
async fn read_request<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut head_bytes = line.len();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await.ok()? == 0 {
            return None;
        }
        head_bytes += header.len();
        if head_bytes > REQUEST_BYTES_MAX {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await.ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if body.len() + size > REQUEST_BYTES_MAX {
                return None;
            }
            let mut chunk = vec![0u8; size + 2]; // data and its CRLF
            reader.read_exact(&mut chunk).await.ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        if content_length > REQUEST_BYTES_MAX {
            return None;
        }
        body.resize(content_length, 0);
        reader.read_exact(&mut body).await.ok()?;
    }
    Some(Request { method, path, body })
}
