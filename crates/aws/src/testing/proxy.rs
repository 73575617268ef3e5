//! TCP and HTTP proxies in front of the emulator: [`LatencyProxy`] delays or refuses
//! connections; [`FaultProxy`] answers chosen requests with the errors AWS would send, or lets them
//! through late, and logs every exchange.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{Either, select};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::AwsClients;

use super::{Moto, REGION, emulator_sdk_config};

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
    /// DynamoDB `TransactWriteItems` only: answers as DynamoDB does when one item of a
    /// transaction fails for a reason of its own (nothing is forwarded, so nothing is written):
    /// `TransactionCanceledException`, whose cancellation reasons give `code` (say
    /// `ThrottlingError`) to the first item whose `symbol` attribute is `symbol` and `None` to
    /// every other item.
    CancelItem {
        /// The symbol whose first item (its state, in a state change) fails.
        symbol: &'static str,
        /// The reason code of that item.
        code: &'static str,
    },
}

impl Fault {
    /// An error answer with `status` and AWS error `code`.
    pub const fn error(status: u16, code: &'static str) -> Fault {
        Fault::Error { status, code }
    }

    /// DynamoDB's `ProvisionedThroughputExceededException` (HTTP 400).
    pub const DYNAMODB_THROUGHPUT_EXCEEDED: Fault =
        Fault::error(400, "ProvisionedThroughputExceededException");
    /// The `ThrottlingException` DynamoDB's control and data planes answer (HTTP 400).
    pub const DYNAMODB_THROTTLING: Fault = Fault::error(400, "ThrottlingException");
    /// DynamoDB's `InternalServerError` (HTTP 500).
    pub const DYNAMODB_INTERNAL: Fault = Fault::error(500, "InternalServerError");
    /// SNS's `Throttling` (HTTP 400).
    pub const SNS_THROTTLING: Fault = Fault::error(400, "Throttling");
    /// SNS's and SQS's `InternalError` (HTTP 500).
    pub const INTERNAL_ERROR: Fault = Fault::error(500, "InternalError");
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
    /// Only requests whose body contains this.
    body_contains: Option<String>,
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
            body_contains: None,
            fault,
            remaining: times,
        });
    }

    /// Like [`FaultProxy::inject`], for requests of `operation` whose body contains `needle`
    /// only: say the `TransactWriteItems` that mark alerts notified (`"Update"`) and not those
    /// that store them.
    pub fn inject_where(
        &self,
        service: Service,
        operation: &str,
        needle: &str,
        fault: Fault,
        times: u32,
    ) {
        self.lock().rules.push(FaultRule {
            service,
            operation: Some(operation.to_owned()),
            body_contains: Some(needle.to_owned()),
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
                        && r.body_contains.as_deref().is_none_or(|needle| {
                            request
                                .body
                                .windows(needle.len())
                                .any(|w| w == needle.as_bytes())
                        })
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
            Some(Fault::CancelItem { symbol, code }) => {
                let _ = client
                    .write_all(&cancellation_answer(&request.body, symbol, code))
                    .await;
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
/// A `TransactionCanceledException` for the transaction in `body`: reason `code` for the first
/// item whose `symbol` attribute (in its `Item` or `Key`) is `symbol`, `None` for the others.
fn cancellation_answer(body: &[u8], symbol: &str, code: &str) -> Vec<u8> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let items = request["TransactItems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut hit = false;
    let reasons: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let action = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or_default();
            let named = [&action["Item"], &action["Key"]]
                .iter()
                .any(|attrs| attrs["symbol"]["S"] == symbol);
            if named && !hit {
                hit = true;
                serde_json::json!({"Code": code, "Message": "injected by the tickwatch fault proxy"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons
        .iter()
        .map(|r| r["Code"].as_str().unwrap_or("None"))
        .collect();
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    })
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nx-amzn-RequestId: injected\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

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
