//! End-to-end tests of the notifiers against the faults they meet outside: a webhook that
//! redirects, one that never answers, and `file:` destinations that are not regular files. Each
//! runs the built `tickwatch` binary as a user runs it.

use std::collections::HashSet;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Dir, Webhook, tick};
use serde_json::Value;
use tickwatch_local::testing::{BlackHole, Redirector};

/// The stored alerts, as `tickwatch alerts --format json` prints them.
fn stored_alerts(dir: &Dir) -> Vec<Value> {
    let out = dir.tickwatch(&["alerts", "--format", "json", "--limit", "10000"]);
    out.assert_exit(0);
    out.stdout_json_lines()
}

#[test]
fn a_redirecting_webhook_leaves_the_alerts_unannounced() {
    let dir = Dir::new();
    let server = Redirector::start();
    dir.write(
        "t.ndjson",
        &[tick("AAPL", 151.0, "1"), tick("MSFT", 40.0, "2")].join("\n"),
    );
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--notify",
        &format!("webhook:{}", server.url()),
    ]);
    out.assert_exit(3);
    let expected = format!(
        "webhook answered HTTP 302 redirect to {}: redirects are not followed, point --notify at \
         the final URL",
        server.target()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);

    let stored = stored_alerts(&dir);
    assert_eq!(stored.len(), 2, "both alerts are stored");
    assert!(
        stored.iter().all(|a| a["notified"] == false),
        "neither is marked notified: {stored:?}"
    );
    assert_eq!(
        server.requests(),
        ["POST /alerts HTTP/1.1", "POST /alerts HTTP/1.1"],
        "one POST per alert (permanent: not retried) and no GET to the redirect's target"
    );
}

#[test]
fn a_webhook_that_never_answers_cannot_stall_a_run() {
    const SYMBOLS: usize = 30;
    const TICKS_PER_SYMBOL: usize = 10;
    let dir = Dir::new();
    // Level mode: every tick above the high threshold raises an alert of its own.
    let ticks: Vec<String> = (0..SYMBOLS)
        .flat_map(|s| {
            (1..=TICKS_PER_SYMBOL)
                .map(move |t| tick(&format!("SYM{s}"), 151.0 + t as f64, &t.to_string()))
        })
        .collect();
    dir.write("ticks.ndjson", &ticks.join("\n"));

    let black_hole = BlackHole::start();
    let url = black_hole.url();
    let child = dir.spawn_tickwatch(&[
        "run",
        "--input",
        "ticks.ndjson",
        "--mode",
        "level",
        "--notify",
        &format!("webhook:{url}"),
    ]);
    let pid = child.id();
    let started = Instant::now();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    // Without a limit this run takes about 300 alerts / 8 in flight x 4 attempts x 5 s.
    let Ok(output) = finished.recv_timeout(Duration::from_secs(90)) else {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("`tickwatch run` against a webhook that never answers still ran after 90 s");
    };
    let output = output.expect("tickwatch finishes");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
    assert!(
        stderr.contains(
            "webhook circuit open after 8 consecutive timeouts; alerts stay stored for \
             `tickwatch notify`"
        ),
        "{stderr}"
    );

    let stored = stored_alerts(&dir);
    assert_eq!(
        stored.len(),
        SYMBOLS * TICKS_PER_SYMBOL,
        "every tick alerted"
    );
    assert!(stored.iter().all(|a| a["notified"] == false));

    // Once the webhook is back, `tickwatch notify` announces every one of them.
    let up = Webhook::start(vec![200]);
    let notify = dir.tickwatch(&["notify", "--notify", &format!("webhook:{}", up.url())]);
    notify.assert_exit(0);
    let ids: HashSet<String> = up
        .received()
        .into_iter()
        .map(|r| r.alert_id_header)
        .collect();
    assert_eq!(ids.len(), stored.len(), "{}", notify.stderr);
    assert!(stored_alerts(&dir).iter().all(|a| a["notified"] == true));
}

#[test]
fn alerts_to_a_device_or_a_fifo_end_the_run_cleanly() {
    let dir = Dir::new();
    dir.write_ticks(
        "t.ndjson",
        &[
            tick("AAPL", 151.0, "1"),
            tick("MSFT", 40.0, "2"),
            tick("NVDA", 100.0, "3"),
        ],
    );
    let out = dir.tickwatch(&["run", "--input", "t.ndjson", "--notify", "file:/dev/null"]);
    out.assert_exit(0);
    assert!(
        out.stderr.contains("tickwatch run: 3 ticks") && out.stderr.contains("2 announced"),
        "the summary is printed: {}",
        out.stderr
    );

    let fifo = dir.path("alerts.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(matches!(&made, Ok(s) if s.success()), "mkfifo: {made:?}");
    // Opening blocks until tickwatch opens the other end; reading ends when it closes it.
    let reader = std::thread::spawn(move || std::fs::read_to_string(fifo));
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--db",
        "fifo.db",
        "--notify",
        "file:alerts.fifo",
    ]);
    out.assert_exit(0);
    let read = reader
        .join()
        .expect("reader thread")
        .expect("read the FIFO");
    let symbols: Vec<Value> = read
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line")["symbol"].clone())
        .collect();
    assert_eq!(symbols, ["AAPL", "MSFT"]);
}
