//! The board end to end: the real `tickwatch` binaries, and a real headless Chromium from the
//! Debian packages driving the page through chromedriver.
//!
//! A test binary of its own: the browser test times how fast a tick reaches the page, which it
//! should not do while the forty end-to-end tests of the `cli` binary run beside it.

mod webdriver;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use webdriver::Browser;

/// A page must show a tick written into the live pipe within this (the issue's bound).
const TICK_TO_PAGE_MS_MAX: u64 = 1_000;

/// Bounds on waits that are about correctness, not speed: they only keep a hang from lasting.
const HANG_S: u64 = 20;

/// One Chromium at a time: the tests that drive one take turns, so the tick-to-page timing never
/// shares the two cores with another browser and a burst of thousands of alerts.
static BROWSER_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn browser_turn() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed while holding it leaves nothing behind that the next one could trip on.
    BROWSER_TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn tick(symbol: &str, price: f64, second: i64) -> String {
    let ms = 1_795_700_000_000 + second * 1000;
    format!(r#"{{"symbol":"{symbol}","price":{price},"timestamp":{ms}}}"#)
}

/// A `tickwatch` process in a temporary directory: its stdin is a live pipe, its stderr is read
/// on a thread for the board's address.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    board_url: Option<String>,
}

impl Process {
    fn start(dir: &std::path::Path, args: &[&str], serves: bool) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env_remove("TICKWATCH_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tickwatch starts");
        let stderr = child.stderr.take().expect("piped");
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split(" is at ").nth(1) {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let board_url = serves.then(|| {
            address
                .recv_timeout(Duration::from_secs(HANG_S))
                .expect("tickwatch says where the board is")
        });
        let stdin = child.stdin.take();
        Process {
            child,
            stdin,
            board_url,
        }
    }

    fn url(&self) -> &str {
        self.board_url.as_deref().expect("a board")
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the feed is open");
        writeln!(stdin, "{line}").expect("feed a line");
        stdin.flush().expect("flush the feed");
    }

    fn close_input(&mut self) {
        self.stdin = None;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tickwatch run --serve` on a live pipe (with `extra` arguments), and Chromium on its page once
/// the page has loaded and its event stream is open.
fn served_page(dir: &std::path::Path, extra: &[&str]) -> (Process, Browser) {
    let mut args = vec!["run", "--input", "-", "--db", "board.db"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--notify", "file:alerts.ndjson", "--serve", "127.0.0.1:0"]);
    let run = Process::start(dir, &args, true);
    let browser = Browser::start();
    browser.goto(run.url());
    browser.wait_for(
        "document.body.dataset.ready === '1' && document.querySelector('#connection').textContent.trim() === 'live'",
        Duration::from_secs(HANG_S),
    );
    (run, browser)
}

/// JSON from the board's API (a plain blocking GET over a socket: no client library needed for
/// what the page itself does with fetch).
fn get(base: &str, path: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::get(format!("{}{}", base.trim_end_matches('/'), path))
            .await
            .expect("the board answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    })
}

fn post(base: &str, path: &str) -> reqwest::StatusCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}{}", base.trim_end_matches('/'), path))
            .header("content-type", "application/json")
            .header("x-tickwatch-request", "1")
            .body("{}")
            .send()
            .await
            .expect("the board answers")
            .status()
    })
}

/// Polls `check` until it gives something, for at most [`HANG_S`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(HANG_S);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {HANG_S} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alerts_of(base: &str, symbol: &str) -> Vec<Value> {
    get(base, &format!("/api/alerts?symbol={symbol}"))["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Console entries other than the ones a test provoked on purpose.
fn unexpected(console: &[Value], provoked: &[&str]) -> Vec<Value> {
    console
        .iter()
        .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !provoked.iter().any(|p| message.contains(p))
        })
        .cloned()
        .collect()
}

#[test]
fn the_page_in_chromium_shows_live_ticks_pauses_rules_and_shows_hostile_text_as_text() {
    let _turn = browser_turn();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut run, browser) = served_page(dir.path(), &[]);
    let console = browser.console();
    assert_eq!(
        unexpected(&console, &[]),
        Vec::<Value>::new(),
        "the page loads with no console errors"
    );

    // Accessible: every control has a name, and the keyboard moves through and works them.
    let unnamed = browser.script(
        r#"return [...document.querySelectorAll('input, select, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map(el => el.outerHTML);"#,
    );
    assert_eq!(unnamed, serde_json::json!([]), "controls without a name");
    browser.script("document.querySelector('#filter-symbol').focus(); return null;");
    browser.keys("#filter-symbol", "\u{E004}"); // Tab
    assert_eq!(
        browser.script("return document.activeElement.id;"),
        "filter-kind",
        "Tab goes from the symbol filter to the kind filter"
    );
    browser.keys(r#"button.sort[data-sort="price"]"#, "\u{E007}"); // Enter
    browser.wait_for(
        r#"document.querySelector('#board th[data-sort="price"]').getAttribute('aria-sort') === 'ascending'"#,
        Duration::from_secs(HANG_S),
    );

    // A tick into the live pipe reaches the page within a second.
    let sent = Instant::now();
    run.send(&tick("AAPL", 155.0, 1));
    browser.wait_for(
        r#"document.querySelector('#alerts tbody tr[data-symbol="AAPL"]')"#,
        Duration::from_millis(TICK_TO_PAGE_MS_MAX),
    );
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_millis(TICK_TO_PAGE_MS_MAX),
        "{latency:?}"
    );
    eprintln!("a tick reached the page in {latency:?}");
    browser.wait_for(
        r#"(document.querySelector('#board tbody tr[data-symbol="AAPL"] td.price') || {}).textContent === '155'"#,
        Duration::from_secs(HANG_S),
    );

    // Pausing `high` on the page stops its alerts for the next matching tick.
    browser.click(r#"#rules tbody tr[data-rule-id="high"] button[data-action="pause"]"#);
    browser.wait_for(
        r#"document.querySelector('#rules tbody tr[data-rule-id="high"] td.state').textContent.trim() === 'paused'"#,
        Duration::from_secs(HANG_S),
    );
    run.send(&tick("MSFT", 160.0, 2)); // would raise `high`, were it not paused
    run.send(&tick("MSFT", 40.0, 3)); // raises `low`: once it shows, the tick before was done
    browser.wait_for(
        r#"document.querySelector('#alerts tbody tr[data-symbol="MSFT"]')"#,
        Duration::from_secs(HANG_S),
    );
    let msft = browser.script(
        r#"return [...document.querySelectorAll('#alerts tbody tr[data-symbol="MSFT"]')].map(r => r.textContent);"#,
    );
    let rows = msft.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only the low alert: {msft}");
    assert!(
        rows[0].as_str().is_some_and(|r| r.contains("LOW")),
        "{msft}"
    );
    let stored: Vec<String> = alerts_of(run.url(), "MSFT")
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(stored, ["low"], "nothing stored for the paused rule");

    // A rule added on the page, with a hostile label: it is shown as text, never run.
    let hostile = r#"<img src=x onerror="document.body.dataset.owned='yes'">"#;
    browser.type_into("#rule-id", "spike");
    browser.type_into("#rule-symbols", "NVDA");
    browser.type_into("#rule-condition", "above 100");
    browser.type_into("#rule-label", hostile);
    browser.click("#rule-submit");
    browser.wait_for(
        r#"document.querySelector('#rules tbody tr[data-rule-id="spike"]')"#,
        Duration::from_secs(HANG_S),
    );
    run.send(&tick("NVDA", 120.0, 4));
    browser.wait_for(
        r#"document.querySelector('#alerts tbody tr[data-symbol="NVDA"]')"#,
        Duration::from_secs(HANG_S),
    );
    let shown = browser.script(
        r#"return {
            images: document.querySelectorAll('img').length,
            owned: document.body.dataset.owned || null,
            alert: document.querySelector('#alerts tbody tr[data-symbol="NVDA"]').textContent,
            rule: document.querySelector('#rules tbody tr[data-rule-id="spike"]').textContent,
        };"#,
    );
    assert_eq!(shown["images"], 0, "{shown}");
    assert_eq!(
        shown["owned"],
        Value::Null,
        "the label's script never ran: {shown}"
    );
    for place in ["alert", "rule"] {
        assert!(
            shown[place]
                .as_str()
                .is_some_and(|text| text.contains(hostile)),
            "the {place} shows the label as text: {shown}"
        );
    }

    // A tick with a hostile symbol is rejected, and the health panel counts it by reason.
    run.send(r#"{"symbol":"<img src=x onerror=alert(1)>","price":1,"timestamp":1795700005000}"#);
    browser.wait_for(
        "document.querySelector('#health-rejected').textContent.includes('symbol.invalid')",
        Duration::from_secs(HANG_S),
    );

    // A bad rule: the error shows next to the field it names.
    browser.type_into("#rule-id", "broken");
    browser.type_into("#rule-symbols", "*");
    browser.type_into("#rule-condition", "abov 5");
    browser.click("#rule-submit");
    browser.wait_for(
        r#"document.querySelector('[data-error-for="condition"]').textContent.includes('above X')"#,
        Duration::from_secs(HANG_S),
    );
    let console = browser.console();
    assert_eq!(
        unexpected(&console, &["status of 400"]),
        Vec::<Value>::new(),
        "no console errors but the refused rule's 400"
    );

    // A fuller board for the picture: a few symbols moving.
    let cents = |price: f64| (price * 100.0).round() / 100.0;
    for second in 5..45 {
        let wave = (second as f64 * 0.4).sin();
        let drift = (second as f64 * 0.3).cos();
        run.send(&tick("AAPL", cents(140.0 + 15.0 * wave), second));
        run.send(&tick("MSFT", cents(60.0 - 15.0 * wave), second));
        run.send(&tick("NVDA", cents(100.0 + 5.0 * drift), second));
        run.send(&tick("BTC-USD", cents(95_000.0 + 500.0 * wave), second));
    }
    browser.wait_for(
        r#"document.querySelector('#board tbody tr[data-symbol="BTC-USD"]')"#,
        Duration::from_secs(HANG_S),
    );
    // The health figures come once a second: let them catch up; show the page from the top.
    std::thread::sleep(Duration::from_millis(1_500));
    browser.script("document.activeElement.blur(); window.scrollTo(0, 0); return null;");
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board.png");
    std::fs::write(&shot, browser.screenshot()).expect("screenshot saved");
    eprintln!("screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000);
}

#[test]
fn a_page_keeps_up_with_thousands_of_alerts_a_second() {
    let _turn = browser_turn();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut run, browser) = served_page(dir.path(), &["--mode", "level"]);
    // The longest stretch the page's main thread was busy, from here on.
    browser.script(
        "window.__longest = 0; new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration); }).observe({type: 'longtask', buffered: false}); return null;",
    );
    // 6,000 alerts (every tick beyond a threshold, level mode), in 30 writes of 200 lines.
    const BURST: i64 = 6_000;
    let started = Instant::now();
    for chunk in 0..30 {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                tick(
                    &format!("S{}", i % 40),
                    200.0 + (i as f64) / 100.0,
                    chunk * 200 + i,
                )
            })
            .collect();
        run.send(&lines.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let fed = started.elapsed();
    browser.wait_for(
        &format!(
            "Number(document.querySelector('#health-alerts').textContent.replace(/,/g, '')) >= {BURST}"
        ),
        Duration::from_secs(HANG_S),
    );
    let page = browser.script(
        "return { rows: document.querySelectorAll('#alerts tbody tr').length, longest: window.__longest };",
    );
    let rows = page["rows"].as_u64().expect("a count");
    assert_eq!(rows, 500, "the page keeps the newest 500 rows: {page}");
    // The page still answers at once after the burst.
    let asked = Instant::now();
    browser.script("return document.querySelectorAll('#board tbody tr').length;");
    let answered = asked.elapsed();
    eprintln!(
        "{BURST} alerts in {fed:?} ({:.0}/s); the page's longest task {} ms; a script answered in {answered:?}",
        BURST as f64 / fed.as_secs_f64(),
        page["longest"]
    );
    assert!(
        BURST as f64 / fed.as_secs_f64() >= 1_000.0,
        "the burst must come at 1,000 alerts/s or more to test anything"
    );
    let console = browser.console();
    assert_eq!(unexpected(&console, &[]), Vec::<Value>::new());
}

#[test]
fn tickwatch_serve_shows_and_steers_a_run_in_another_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = Process::start(
        dir.path(),
        &[
            "run",
            "--input",
            "-",
            "--db",
            "shared.db",
            "--notify",
            "file:alerts.ndjson",
            "-q",
        ],
        false,
    );
    run.send(&tick("AAPL", 151.0, 1));
    eventually("the run makes its database", || {
        dir.path().join("shared.db").exists().then_some(())
    });
    let serve = Process::start(
        dir.path(),
        &["serve", "--db", "shared.db", "--listen", "127.0.0.1:0"],
        true,
    );
    let base = serve.url().to_owned();

    let alert = eventually("the run's alert on the board", || {
        alerts_of(&base, "AAPL").into_iter().next()
    });
    assert_eq!(alert["rule_id"], "high");
    let health = eventually("the run on the board", || {
        let health = get(&base, "/api/health");
        (health["writer"]["state"] == "running").then_some(health)
    });
    assert_eq!(health["writer"]["pid"], run.child.id());
    let board = get(&base, "/api/board");
    assert_eq!(board["symbols"][0]["symbol"], "AAPL");

    // A rule paused through this server is in force in the other process's next batch.
    assert_eq!(
        post(&base, "/api/rules/high/pause"),
        reqwest::StatusCode::OK
    );
    run.send(&tick("MSFT", 160.0, 2));
    run.send(&tick("MSFT", 40.0, 3));
    let msft = eventually("the low alert", || {
        let found = alerts_of(&base, "MSFT");
        (!found.is_empty()).then_some(found)
    });
    let rules: Vec<&str> = msft.iter().filter_map(|a| a["rule_id"].as_str()).collect();
    assert_eq!(rules, ["low"]);

    // The run ends: the board says so.
    run.close_input();
    eventually("the run's end on the board", || {
        (get(&base, "/api/health")["writer"]["state"] == "stopped").then_some(())
    });
}

#[test]
fn a_board_that_cannot_serve_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .args(["run", "--input", "-", "--db", "t.db", "-q"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("tickwatch runs");
    assert!(run.status.success());
    // A port another process holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken = taken.local_addr().expect("its address").to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "--listen", &taken, "--db", "t.db"],
            "listening on 127.0.0.1:",
        ),
        (
            &["run", "--input", "-", "--db", "t.db", "--serve", &taken],
            "listening on 127.0.0.1:",
        ),
        (
            &["serve", "--listen", "0.0.0.0:0", "--db", "t.db"],
            "not a loopback address and no token is set",
        ),
        (&["serve", "--db", "none.db"], "no database at none.db"),
        (
            &[
                "serve",
                "--listen",
                "0.0.0.0:0",
                "--db",
                "t.db",
                "--token",
                "short",
            ],
            "token: must be 16 to 256 characters",
        ),
        (
            &[
                "run",
                "--input",
                "-",
                "--db",
                "t.db",
                "--serve",
                "0.0.0.0:0",
            ],
            "not a loopback address and no token is set",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
            .args(*args)
            .current_dir(dir.path())
            .env_remove("TICKWATCH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("tickwatch runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("none.db").exists());
}

#[test]
fn a_board_that_cannot_be_written_never_stops_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .args(["run", "--input", "-", "--db", "t.db", "-q"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("tickwatch runs");
    assert!(made.status.success());
    // Every write of the board fails from now on; the rest of the database is as it was.
    rusqlite::Connection::open(dir.path().join("t.db"))
        .expect("opens")
        .execute_batch(
            "CREATE TRIGGER no_board BEFORE INSERT ON board_writer
                 BEGIN SELECT RAISE(ABORT, 'the board is refused'); END;
             CREATE TRIGGER no_board_symbols BEFORE INSERT ON board_symbols
                 BEGIN SELECT RAISE(ABORT, 'the board is refused'); END;",
        )
        .expect("triggers");
    // A live feed: a board write is due after every tick, so it fails again and again.
    let mut run = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .args([
            "run",
            "--input",
            "-",
            "--db",
            "t.db",
            "--notify",
            "file:alerts.ndjson",
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickwatch starts");
    let mut feed = run.stdin.take().expect("piped");
    for second in 1..=8 {
        let price = if second % 2 == 0 { 160.0 } else { 100.0 };
        writeln!(feed, "{}", tick("AAPL", price, second)).expect("feed");
        feed.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(120));
    }
    drop(feed);
    let out = run.wait_with_output().expect("tickwatch ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let announced = std::fs::read_to_string(dir.path().join("alerts.ndjson")).expect("alerts");
    assert_eq!(
        announced.lines().count(),
        4,
        "every entry above 150 is announced"
    );
    assert_eq!(
        stderr.matches("the board could not be written").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("the board is refused"), "{stderr}");
}
