//! The local notifiers against the faults they meet outside: a webhook that redirects or never
//! answers, a disk that fills up mid-write, a file left mid-line by a crash, files that cannot be
//! synced.

use std::time::{Duration, Instant};

use serde_json::Value;
use tickwatch_core::ports::{Classify, ErrorClass, Notifier};
use tickwatch_core::testing::contract::sample_alert;
use tickwatch_core::{Alert, AlertKind, Symbol};
use tickwatch_local::notify::{NotifyError, WEBHOOK_CONCURRENCY_MAX, WEBHOOK_TIMEOUTS_TO_OPEN};
use tickwatch_local::testing::{BlackHole, Redirector, Tmpfs};
use tickwatch_local::{Destination, LocalNotifier};

/// `count` distinct alerts, ticks `first..first + count` of AAPL.
fn alerts(first: i64, count: i64) -> Vec<Alert> {
    let symbol = Symbol::parse("AAPL").expect("valid");
    (first..first + count)
        .map(|at| sample_alert(symbol, at, AlertKind::High))
        .collect()
}

fn errors(results: Vec<Result<(), NotifyError>>) -> Vec<NotifyError> {
    results
        .into_iter()
        .map(|r| r.expect_err("the publish must fail"))
        .collect()
}

#[tokio::test]
async fn a_redirecting_webhook_fails_the_publish_and_is_not_followed() {
    let server = Redirector::start();
    let notifier = LocalNotifier::open(&Destination::Webhook(server.url())).expect("opens");
    let failures = errors(notifier.publish(&alerts(1, 2)).await);
    let location = server.target();
    for failure in &failures {
        let message = failure.to_string();
        assert!(
            message.contains(&format!("HTTP 302 redirect to {location}"))
                && message.contains("redirects are not followed"),
            "{message}"
        );
        assert_eq!(failure.class(), ErrorClass::Permanent, "{message}");
    }
    let requests = server.requests();
    assert_eq!(
        requests,
        ["POST /alerts HTTP/1.1", "POST /alerts HTTP/1.1"],
        "one POST per alert and no GET to the redirect's target"
    );
}

#[tokio::test]
async fn a_webhook_that_never_answers_opens_the_circuit() {
    let server = BlackHole::start();
    let notifier = LocalNotifier::open(&Destination::Webhook(server.url())).expect("opens");
    let started = Instant::now();
    let failures = errors(notifier.publish(&alerts(1, 40)).await);
    let first_publish = started.elapsed();
    // Without the breaker: 40 alerts / 8 in flight x 5 s = 25 s; with it, about one timeout.
    assert!(
        first_publish < Duration::from_secs(15),
        "took {first_publish:?}"
    );
    assert!(failures.iter().all(|f| f.class() == ErrorClass::Transient));
    let open = format!(
        "webhook circuit open after {WEBHOOK_TIMEOUTS_TO_OPEN} consecutive timeouts; \
         alerts stay stored for `tickwatch notify`"
    );
    assert!(
        failures.iter().filter(|f| f.to_string() == open).count() >= 40 - 8,
        "{failures:?}"
    );
    // Sent: the first window, and those that took the place of a timed-out request before the
    // circuit opened; they were abandoned when it opened, not waited out.
    let connections = server.connections();
    assert!(
        connections < WEBHOOK_CONCURRENCY_MAX + WEBHOOK_TIMEOUTS_TO_OPEN as usize,
        "{connections} connections"
    );

    // Open for good: later publishes fail at once without sending anything.
    let started = Instant::now();
    let failures = errors(notifier.publish(&alerts(100, 5)).await);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        failures.iter().all(|f| f.to_string() == open),
        "{failures:?}"
    );
    assert_eq!(server.connections(), connections, "nothing more was sent");
}

/// Every line of `text` is a JSON object and the text ends with a whole line; returns the count.
fn whole_json_lines(text: &str) -> usize {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the file ends mid-line: ...{:?}",
        &text[text.len().saturating_sub(80)..]
    );
    for line in text.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
            "not a JSON line: {line:?}"
        );
    }
    text.lines().count()
}

#[tokio::test]
async fn a_full_disk_leaves_the_file_ending_in_a_whole_line() {
    const BATCH: i64 = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    // Declared before the notifier, so unmounted after it has closed its file, even on panic.
    let _tmpfs = Tmpfs::mount(dir.path(), 64);
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 40 * 1024]).expect("filler fits");
    let path = dir.path().join("alerts.ndjson");
    let notifier = LocalNotifier::open(&Destination::File(path.clone())).expect("opens");

    let mut published = 0;
    let mut failed = None;
    for round in 0..100 {
        let results = notifier.publish(&alerts(round * BATCH, BATCH)).await;
        if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
            assert!(results.iter().all(|r| r.is_err()), "a batch fails whole");
            failed = Some(error.clone());
            break;
        }
        published += BATCH;
    }
    let failed = failed.expect("the disk filled up");
    assert_eq!(failed.class(), ErrorClass::Permanent, "{failed}");
    assert!(published > 0, "some batches fit before the disk filled");
    let text = std::fs::read_to_string(&path).expect("readable");
    assert_eq!(
        whole_json_lines(&text) as i64,
        published,
        "exactly the batches that succeeded are in the file"
    );

    // With room again, the next batch lands on a line of its own.
    std::fs::remove_file(&filler).expect("remove filler");
    let results = notifier.publish(&alerts(10_000, BATCH)).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    notifier.close().expect("syncs");
    let text = std::fs::read_to_string(&path).expect("readable");
    assert_eq!(whole_json_lines(&text) as i64, published + BATCH);
}

#[tokio::test]
async fn opening_a_file_left_mid_line_cuts_the_partial_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = |at| serde_json::to_string(&alerts(at, 1)[0]).expect("serializes") + "\n";
    let half = &line(9)[..40];
    let cases = [
        (format!("{}{}{half}", line(1), line(2)), line(1) + &line(2)),
        (half.to_owned(), String::new()),
        (line(1), line(1)),
        (String::new(), String::new()),
    ];
    for (n, (before, after)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("alerts-{n}.ndjson"));
        std::fs::write(&path, before).expect("write");
        let notifier = LocalNotifier::open(&Destination::File(path.clone())).expect("opens");
        assert_eq!(
            &std::fs::read_to_string(&path).expect("read"),
            after,
            "case {n}"
        );
        let results = notifier.publish(&alerts(20, 1)).await;
        assert!(results.iter().all(Result::is_ok));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, after.clone() + &line(20), "case {n}");
    }
    // A file that does not exist yet is created.
    let path = dir.path().join("new.ndjson");
    let notifier = LocalNotifier::open(&Destination::File(path.clone())).expect("opens");
    assert!(notifier.publish(&alerts(1, 1)).await[0].is_ok());
    assert_eq!(
        whole_json_lines(&std::fs::read_to_string(&path).expect("read")),
        1
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_synced_closes_cleanly() {
    let notifier =
        LocalNotifier::open(&Destination::File("/dev/null".into())).expect("opens /dev/null");
    assert!(
        notifier
            .publish(&alerts(1, 3))
            .await
            .iter()
            .all(Result::is_ok)
    );
    notifier.close().expect("nothing to sync on /dev/null");
}
