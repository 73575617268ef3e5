//! The board's HTTP API over a real database and a real socket: the JSON endpoints, the rule
//! changes, the guard (token, host, write headers, security headers) and the event stream,
//! including pages that disconnect mid-stream.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tickwatch_core::board::Board as RunBoard;
use tickwatch_core::ports::AlertStore as _;
use tickwatch_core::testing::{block_on_ready, tick};
use tickwatch_core::{
    Accepted, Alert, AlertKind, AlertOutcome, Outcome, RuleBook, Tick, Timestamp,
};
use tickwatch_local::SqliteStore;
use tickwatch_local::board::{Writer, WriterState};
use tickwatch_serve::{BoardServer, ServeError, ServeOptions, Token};
use tokio::sync::oneshot;

const TOKEN: &str = "0123456789abcdef-token";

fn at(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(ms).expect("valid")
}

fn high_alert(tick: &Tick) -> Alert {
    let mut alert = tickwatch_core::testing::contract::sample_alert(
        tick.symbol,
        tick.at.epoch_ms(),
        AlertKind::High,
    );
    alert.price = tick.price;
    alert
}

/// Asserts that a store call succeeded for every item.
fn all_ok<T, E: std::fmt::Debug>(results: Vec<Result<T, E>>) {
    for result in results {
        result.expect("the store call succeeds");
    }
}

/// What a run does to the database: ticks on the board, alerts stored and on the board.
fn run_writes(store: &SqliteStore, ticks: &[Tick], alerting: &[Tick]) {
    let alerts: Vec<Alert> = alerting.iter().map(high_alert).collect();
    all_ok(block_on_ready(store.insert(&alerts)));
    let keys: Vec<_> = alerts.iter().map(Alert::key).collect();
    all_ok(block_on_ready(store.mark_notified(&keys)));
    let mut board = RunBoard::new();
    board.observe(ticks);
    let outcomes: Vec<(usize, Outcome)> = alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            (
                i,
                Outcome::Accepted(Accepted::Alerts(vec![AlertOutcome::New(Box::new(*alert))])),
            )
        })
        .collect();
    board.record(&outcomes);
    let writer = Writer {
        pid: 7,
        state: WriterState::Running,
        started: at(1_000),
        updated: at(2_000),
    };
    store
        .write_board(&board.take_flush(), writer)
        .expect("board written");
}

struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

impl Served {
    async fn start(token: Option<&str>) -> Served {
        Served::start_with(token, |options| options).await
    }

    async fn start_with(
        token: Option<&str>,
        adjust: impl FnOnce(ServeOptions) -> ServeOptions,
    ) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("board.db");
        let store = SqliteStore::open(&db).expect("database");
        let ticks = [
            tick("AAPL", 151.0, 10_000),
            tick("MSFT", 45.0, 10_000),
            tick("IBM", 100.0, 10_000),
        ];
        run_writes(&store, &ticks, &ticks[..1]);
        drop(store);
        let board = BoardServer::bind(
            "127.0.0.1:0".parse().expect("address"),
            adjust(options(&db, token)),
        )
        .expect("binds");
        let addr = board.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(board.run(async {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
            db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server; it must end even with event streams open.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        let joined = ended.expect("the server stops within 10 s, streams open or not");
        joined.expect("no panic").expect("served without error");
    }
}

fn options(db: &Path, token: Option<&str>) -> ServeOptions {
    ServeOptions {
        db: db.to_owned(),
        token: token.map(|t| Token::parse(t).expect("valid token")),
        base_rules: Arc::new(RuleBook::defaults()),
        rules_fixed: false,
    }
}

/// Sending a request whose answer the test needs (a refused connection fails the test).
trait Answer {
    async fn answer(self) -> reqwest::Response;
}

impl Answer for reqwest::RequestBuilder {
    async fn answer(self) -> reqwest::Response {
        self.send().await.expect("the board answers")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get_json(served: &Served, path: &str) -> Value {
    let response = client().get(served.url(path)).answer().await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

fn write(request: reqwest::RequestBuilder, body: &str) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/json")
        .header("x-tickwatch-request", "1")
        .body(body.to_owned())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_the_page_is_embedded() {
    let served = Served::start(None).await;
    for path in ["/", "/app.js", "/app.css", "/api/health", "/api/nothing"] {
        let response = client().get(served.url(path)).answer().await;
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"],
            tickwatch_serve::guard::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
    let page = client().get(served.url("/")).answer().await;
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("text");
    assert!(
        html.contains("/app.js") && !html.contains("http://") && !html.contains("https://"),
        "the page loads only its own assets"
    );
    let missing = client().get(served.url("/api/nothing")).answer().await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    served.stop().await;
}

#[tokio::test]
async fn the_board_alerts_health_and_rules_read_back_what_the_run_wrote() {
    let served = Served::start(None).await;
    let board = get_json(&served, "/api/board").await;
    let symbols = board["symbols"].as_array().expect("symbols");
    let line = |name: &str| {
        symbols
            .iter()
            .find(|s| s["symbol"] == name)
            .unwrap_or_else(|| panic!("{name} on the board: {board}"))
    };
    assert_eq!(line("AAPL")["zone"], "above");
    assert_eq!(line("AAPL")["zone_rules"], serde_json::json!(["high"]));
    assert_eq!(line("AAPL")["last_alert"]["rule_id"], "high");
    assert_eq!(line("MSFT")["zone"], "below");
    assert_eq!(line("IBM")["zone"], "inside");
    assert_eq!(line("IBM")["points"], serde_json::json!([[10_000, 100.0]]));
    let levels: Vec<f64> = line("IBM")["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|t| t["level"].as_f64().expect("a level"))
        .collect();
    assert_eq!(levels, [150.0, 50.0]);

    let alerts = get_json(&served, "/api/alerts").await;
    let alerts = alerts["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["symbol"], "AAPL");
    assert_eq!(alerts[0]["announced"], true);
    assert_eq!(alerts[0]["condition"], "above 150");
    for (query, count) in [
        ("?symbol=AAPL", 1),
        ("?symbol=MSFT", 0),
        ("?kind=HIGH", 1),
        ("?kind=LOW", 0),
        ("?rule=high", 1),
        ("?rule=low", 0),
        ("?symbol=&kind=&rule=", 1),
    ] {
        let found = get_json(&served, &format!("/api/alerts{query}")).await;
        assert_eq!(
            found["alerts"].as_array().map(Vec::len),
            Some(count),
            "{query}"
        );
    }
    for (query, field) in [
        ("?symbol=A%20B", "symbol"),
        ("?kind=UP", "kind"),
        ("?rule=no%20spaces", "id"),
        ("?limit=0", "limit"),
        ("?limit=100000", "limit"),
    ] {
        let response = client()
            .get(served.url(&format!("/api/alerts{query}")))
            .answer()
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }

    let health = get_json(&served, "/api/health").await;
    assert_eq!(health["writer"]["state"], "running");
    assert_eq!(health["writer"]["pid"], 7);
    assert_eq!(health["ticks"], 1);
    assert_eq!(health["alerts"], 1);
    assert_eq!(health["pending"], 0);

    let rules = get_json(&served, "/api/rules").await;
    assert_eq!(
        rules["version"],
        Value::Null,
        "the base rules, never written"
    );
    let ids: Vec<&str> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["high", "low"]);
    served.stop().await;
}

#[tokio::test]
async fn rules_change_through_the_core_validation_and_errors_name_the_field() {
    let served = Served::start(None).await;
    let http = client();
    let add = |body: &str| write(http.post(served.url("/api/rules")), body);

    let added = add(r#"{"id":"spike","symbols":"AAPL","condition":"above 200","fire":"once","label":"<img src=x onerror=alert(1)>"}"#)
        .answer().await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.expect("JSON");
    assert_eq!(
        added["rule"]["label"], "<img src=x onerror=alert(1)>",
        "stored as given, as text"
    );

    let cases = [
        (
            r#"{"id":"spike","symbols":"*","condition":"above 1"}"#,
            StatusCode::BAD_REQUEST,
            "id",
        ),
        (
            r#"{"id":"x","symbols":"*","condition":"abov 5"}"#,
            StatusCode::BAD_REQUEST,
            "condition",
        ),
        (
            r#"{"id":"x","symbols":"a b","condition":"above 5"}"#,
            StatusCode::BAD_REQUEST,
            "symbols",
        ),
        (
            r#"{"id":"x","symbols":"*","condition":"above 5","fire":"sometimes"}"#,
            StatusCode::BAD_REQUEST,
            "fire",
        ),
        (
            r#"{"id":"x","symbols":"*","condition":"above 5","cooldown_seconds":-1}"#,
            StatusCode::BAD_REQUEST,
            "cooldown_seconds",
        ),
        (
            r#"{"id":"x y","symbols":"*","condition":"above 5"}"#,
            StatusCode::BAD_REQUEST,
            "id",
        ),
    ];
    for (body, status, field) in cases {
        let response = add(body).answer().await;
        assert_eq!(response.status(), status, "{body}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(
            answer["error"]["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }

    let act = |path: &str| write(http.post(served.url(path)), "{}");
    let act_json = |path: &'static str| {
        let request = act(path);
        async move {
            let response = request.answer().await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let paused = act_json("/api/rules/high/pause").await;
    assert_eq!(paused["rule"]["paused"], true);
    let resumed = act_json("/api/rules/high/resume").await;
    assert_eq!(resumed["rule"]["paused"], false);
    let rearmed = act_json("/api/rules/spike/rearm").await;
    assert!(
        rearmed["rule"]["version"].as_u64() > added["rule"]["version"].as_u64(),
        "a re-arm restarts the rule"
    );
    assert_eq!(
        act("/api/rules/nope/pause").answer().await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act("/api/rules/high/explode").answer().await.status(),
        StatusCode::NOT_FOUND
    );
    let removed = write(http.delete(served.url("/api/rules/spike")), "{}")
        .answer()
        .await;
    assert_eq!(removed.status(), StatusCode::OK);

    // What the CLI and the pipeline read: the same store, the same rules.
    let store = SqliteStore::open(&served.db).expect("database");
    let stored = store.load_rules_now().expect("rules").expect("written");
    let ids: Vec<String> = stored.rules.iter().map(|r| r.id().to_string()).collect();
    assert_eq!(ids, ["high", "low"]);
    served.stop().await;
}

#[tokio::test]
async fn a_write_without_its_json_body_and_header_or_from_another_origin_is_refused() {
    let served = Served::start(None).await;
    let http = client();
    let url = served.url("/api/rules/high/pause");
    let refused = [
        http.post(&url),
        http.post(&url)
            .header("content-type", "application/json")
            .body("{}"),
        http.post(&url)
            .header("x-tickwatch-request", "1")
            .body("{}"),
        http.post(&url)
            .header("content-type", "text/plain")
            .header("x-tickwatch-request", "1")
            .body("{}"),
        http.post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-tickwatch-request", "1")
            .body("a=b"),
        write(http.post(&url), "{}").header("origin", "http://evil.example"),
    ];
    for request in refused {
        let response = request.answer().await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["field"], "request");
    }
    let rules = get_json(&served, "/api/rules").await;
    assert_eq!(rules["version"], Value::Null, "nothing was written");
    let same_origin = write(http.post(&url), "{}")
        .header("origin", format!("http://{}", served.addr))
        .answer()
        .await;
    assert_eq!(same_origin.status(), StatusCode::OK);
    served.stop().await;
}

#[tokio::test]
async fn without_a_token_only_loopback_names_are_answered() {
    let served = Served::start(None).await;
    for (host, status) in [
        ("localhost", StatusCode::OK),
        ("127.0.0.1", StatusCode::OK),
        ("evil.example", StatusCode::FORBIDDEN),
        ("127.0.0.1.evil.example", StatusCode::FORBIDDEN),
    ] {
        let response = client()
            .get(served.url("/api/health"))
            .header("host", host)
            .answer()
            .await;
        assert_eq!(response.status(), status, "{host}");
    }
    served.stop().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    drop(SqliteStore::open(&db).expect("database"));
    let exposed = BoardServer::bind("0.0.0.0:0".parse().expect("address"), options(&db, None));
    assert!(
        matches!(exposed, Err(ServeError::Exposed(_))),
        "{exposed:?}"
    );
    let missing = BoardServer::bind(
        "127.0.0.1:0".parse().expect("address"),
        options(&dir.path().join("none.db"), None),
    );
    assert!(
        matches!(missing, Err(ServeError::NoDatabase(_))),
        "{missing:?}"
    );
    assert!(
        !dir.path().join("none.db").exists(),
        "no database is made by serving"
    );
}

#[tokio::test]
async fn with_a_token_every_request_carries_it() {
    let served = Served::start(Some(TOKEN)).await;
    let http = client();
    let health = served.url("/api/health");
    let status = |response: reqwest::Response| response.status();
    assert_eq!(
        status(http.get(&health).answer().await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(http.get(served.url("/")).answer().await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            http.get(&health)
                .bearer_auth("0123456789abcdef-wrong")
                .answer()
                .await
        ),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(http.get(&health).bearer_auth(TOKEN).answer().await),
        StatusCode::OK
    );
    // Any Host is fine with a token.
    assert_eq!(
        status(
            http.get(&health)
                .bearer_auth(TOKEN)
                .header("host", "board.example")
                .answer()
                .await
        ),
        StatusCode::OK
    );

    let wrong = http
        .get(served.url("/?token=0123456789abcdef-wrong"))
        .answer()
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let signed_in = http
        .get(served.url(&format!("/?token={TOKEN}")))
        .answer()
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let page = http
        .get(served.url("/"))
        .header("cookie", &pair)
        .answer()
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let events = http
        .get(served.url("/api/events"))
        .header("cookie", &pair)
        .answer()
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    drop(events);
    // A write still needs its header, token or not.
    let bare = http
        .post(served.url("/api/rules/high/pause"))
        .bearer_auth(TOKEN)
        .answer()
        .await;
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    served.stop().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    drop(SqliteStore::open(&db).expect("database"));
    let exposed = BoardServer::bind(
        "0.0.0.0:0".parse().expect("address"),
        options(&db, Some(TOKEN)),
    );
    assert!(exposed.is_ok(), "a token allows any address: {exposed:?}");
}

/// Server-sent events read off a streaming response. Events not asked for yet are kept, so a
/// test can wait for events in any order.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
    kept: Vec<(String, Value)>,
}

impl EventReader {
    async fn open(served: &Served) -> EventReader {
        let response = client().get(served.url("/api/events")).answer().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("text")
                .starts_with("text/event-stream")
        );
        EventReader {
            response,
            buffer: String::new(),
            kept: Vec::new(),
        }
    }

    /// The first `alerts` event with an alert of `symbol`, within 5 s.
    async fn until_alert_of(&mut self, symbol: &str) -> Value {
        self.until("alerts", Duration::from_secs(5), |v| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["symbol"] == symbol))
        })
        .await
    }

    /// The first event named `name` whose data satisfies `wanted`, within `timeout`; it is
    /// taken, the others stay.
    async fn until(
        &mut self,
        name: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if !data.is_empty() {
                    self.kept
                        .push((event, serde_json::from_str(&data).expect("JSON data")));
                }
            }
            if let Some(found) = self
                .kept
                .iter()
                .position(|(event, data)| event == name && wanted(data))
            {
                return self.kept.remove(found).1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no such {name} event within {timeout:?}"))
                .expect("the stream stays open")
                .expect("more of the stream");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

#[tokio::test]
async fn the_event_stream_pushes_new_alerts_board_changes_rules_and_health() {
    let served = Served::start(None).await;
    let mut events = EventReader::open(&served).await;
    events
        .until("health", Duration::from_secs(5), |_| true)
        .await;

    let store = SqliteStore::open(&served.db).expect("database");
    let fresh = tick("NVDA", 180.0, 20_000);
    run_writes(&store, &[fresh], &[fresh]);
    let alerts = events.until_alert_of("NVDA").await;
    assert_eq!(alerts["skipped"], 0);
    assert!(
        alerts["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["symbol"] == "NVDA")),
        "only the new alert: {alerts}"
    );
    let board = events
        .until("board", Duration::from_secs(5), |v| {
            v["symbols"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x["symbol"] == "NVDA"))
        })
        .await;
    assert_eq!(board["symbols"][0]["zone"], "above");
    assert_eq!(board["append"], true);
    // The next move of NVDA carries only its new point.
    let next = tick("NVDA", 181.0, 21_000);
    run_writes(&store, &[next], &[]);
    let moved = events
        .until("board", Duration::from_secs(5), |v| {
            v["symbols"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| x["symbol"] == "NVDA" && x["price"] == 181.0)
            })
        })
        .await;
    let nvda = moved["symbols"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["symbol"] == "NVDA"))
        .expect("NVDA");
    assert_eq!(
        nvda["points"],
        serde_json::json!([[21_000, 181.0]]),
        "{moved}"
    );
    let full = get_json(&served, "/api/board").await;
    let nvda = full["symbols"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["symbol"] == "NVDA"))
        .expect("NVDA");
    assert_eq!(
        nvda["points"].as_array().map(Vec::len),
        Some(1),
        "a new run's board: its own points (this run wrote one per flush)"
    );

    // A rule change: the rules, and every symbol's zone against the new rules.
    let paused = write(client().post(served.url("/api/rules/high/pause")), "{}")
        .answer()
        .await;
    assert_eq!(paused.status(), StatusCode::OK);
    let rules = events
        .until("rules", Duration::from_secs(5), |v| {
            v["version"].as_u64().is_some()
        })
        .await;
    assert_eq!(rules["rules"][0]["paused"], true);
    let board = events
        .until("board", Duration::from_secs(5), |v| {
            v["symbols"].as_array().is_some_and(|s| s.len() == 4)
        })
        .await;
    assert!(
        board["symbols"]
            .as_array()
            .expect("symbols")
            .iter()
            .all(|s| {
                s["thresholds"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|l| l["paused"] == true))
            })
    );

    // A stored alert not yet announced comes with announced false, then true once marked.
    let pending = high_alert(&tick("TSLA", 300.0, 30_000));
    all_ok(block_on_ready(store.insert(&[pending])));
    let waiting = events.until_alert_of("TSLA").await;
    let tsla = |event: &Value| {
        event["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["symbol"] == "TSLA"))
            .map(|x| x["announced"].clone())
    };
    assert_eq!(tsla(&waiting), Some(Value::Bool(false)));
    let health = events
        .until("health", Duration::from_secs(5), |v| v["pending"] == 1)
        .await;
    assert_eq!(health["clients"], 1);
    all_ok(block_on_ready(store.mark_notified(&[pending.key()])));
    let announced = events.until_alert_of("TSLA").await;
    assert_eq!(tsla(&announced), Some(Value::Bool(true)));
    served.stop().await;
}

#[tokio::test]
async fn alerts_faster_than_a_page_can_take_are_counted_not_lost_from_the_store() {
    let served = Served::start(None).await;
    let mut events = EventReader::open(&served).await;
    events
        .until("health", Duration::from_secs(5), |_| true)
        .await;
    let store = SqliteStore::open(&served.db).expect("database");
    let burst: Vec<Tick> = (0..600)
        .map(|i| tick("AMD", 200.0 + f64::from(i) / 100.0, 40_000 + i64::from(i)))
        .collect();
    run_writes(&store, &burst, &burst);
    // Announced alerts come from the board (the poller may also catch them stored and not yet
    // announced: those come with announced false and are not counted here).
    let mut seen = std::collections::HashSet::new();
    let mut skipped = 0;
    while seen.len() as u64 + skipped < 600 {
        let event = events
            .until("alerts", Duration::from_secs(5), |_| true)
            .await;
        for alert in event["alerts"].as_array().expect("alerts") {
            if alert["announced"] == true {
                seen.insert(alert["alert_id"].as_str().expect("an id").to_owned());
            }
        }
        skipped += event["skipped"].as_u64().expect("a count");
    }
    assert_eq!(
        seen.len() as u64 + skipped,
        600,
        "every alert is sent or counted as skipped"
    );
    assert!(
        seen.len() <= tickwatch_serve::ALERTS_PER_EVENT_MAX as usize,
        "{} sent",
        seen.len()
    );
    let stored = get_json(&served, "/api/alerts?symbol=AMD&limit=1000").await;
    assert_eq!(
        stored["alerts"].as_array().map(Vec::len),
        Some(600),
        "all of them are in the store"
    );
    served.stop().await;
}

#[tokio::test]
async fn pages_that_disconnect_mid_stream_are_let_go() {
    let served = Served::start(None).await;
    let mut pages = Vec::new();
    for _ in 0..3 {
        let mut page = EventReader::open(&served).await;
        page.until("health", Duration::from_secs(5), |_| true).await;
        pages.push(page);
    }
    let clients = |health: &Value| health["clients"].as_u64();
    assert_eq!(clients(&get_json(&served, "/api/health").await), Some(3));
    // Two pages go away in the middle of the stream (their connections close).
    pages.truncate(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if clients(&get_json(&served, "/api/health").await) == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server still counts the pages that left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The remaining page still gets events.
    pages[0]
        .until("health", Duration::from_secs(5), |_| true)
        .await;
    // And the server shuts down with it connected (stop() checks).
    served.stop().await;
}

#[tokio::test]
async fn a_page_that_never_reads_holds_up_nobody() {
    use tokio::io::AsyncWriteExt as _;
    let served = Served::start(None).await;
    // A client that asks for the stream and then never reads a byte of it.
    let mut stuck = tokio::net::TcpStream::connect(served.addr)
        .await
        .expect("connects");
    stuck
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request sent");
    let mut page = EventReader::open(&served).await;
    page.until("health", Duration::from_secs(5), |v| v["clients"] == 2)
        .await;

    // Far more than the stuck client's socket and the server's event buffer hold.
    let store = SqliteStore::open(&served.db).expect("database");
    for round in 0..40_i64 {
        let burst: Vec<_> = (0..100)
            .map(|i| tick("AMD", 200.0, 100_000 + round * 1_000 + i))
            .collect();
        run_writes(&store, &burst, &burst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = tick("AMD", 200.0, 100_000 + 39 * 1_000 + 99);
    let last_id = high_alert(&last).alert_id.to_string();
    page.until("alerts", Duration::from_secs(10), |v| {
        v["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["alert_id"] == last_id.as_str()))
    })
    .await;
    let asked = Instant::now();
    let health = get_json(&served, "/api/health").await;
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(health["clients"], 2, "the stuck page is still connected");
    drop(stuck);
    served.stop().await;
}

#[tokio::test]
async fn a_runs_fixed_rules_are_shown_and_not_changed() {
    let fixed = tickwatch_core::testing::rule_book(&[
        r#"{"id":"spike","symbols":"*","condition":"above 100","fire":"every"}"#,
    ]);
    let served = Served::start_with(None, |options| ServeOptions {
        base_rules: fixed,
        rules_fixed: true,
        ..options
    })
    .await;
    let rules = get_json(&served, "/api/rules").await;
    let ids: Vec<&str> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["spike"]);
    let board = get_json(&served, "/api/board").await;
    let ibm = board["symbols"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["symbol"] == "IBM"))
        .expect("IBM");
    assert_eq!(ibm["zone"], "inside", "IBM at 100 is not above 100");
    assert_eq!(ibm["thresholds"][0]["level"], 100.0);
    let http = client();
    for request in [
        write(
            http.post(served.url("/api/rules")),
            r#"{"id":"x","symbols":"*","condition":"above 1"}"#,
        ),
        write(http.post(served.url("/api/rules/spike/pause")), "{}"),
        write(http.delete(served.url("/api/rules/spike")), "{}"),
    ] {
        let response = request.answer().await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["field"], "rules");
    }
    let store = SqliteStore::open(&served.db).expect("database");
    assert_eq!(
        store.rules_version_now().expect("version"),
        None,
        "nothing written"
    );
    served.stop().await;
}
