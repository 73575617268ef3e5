//! The everyday commands (`run`, `alerts`, `notify`, `generate`) in a temporary directory, with
//! their stdout, stderr, exit code and database checked afterwards.

use crate::support::{Dir, LiveRun, Webhook, tick};
use serde_json::Value;

#[test]
fn run_stores_and_announces_alerts_then_a_rerun_adds_nothing() {
    let dir = Dir::new();
    dir.write_ticks(
        "ticks.ndjson",
        &[
            tick("AAPL", 151.25, "2026-11-26T14:30:00.123Z"),
            tick("AAPL", 152.0, "2026-11-26T14:30:01Z"),
            tick("MSFT", 49.5, "2026-11-26T14:30:02Z"),
            tick("NVDA", 100.0, "2026-11-26T14:30:03Z"),
            tick("AAPL", 100.0, "2026-11-26T14:30:04Z"),
            tick("AAPL", 150.5, "2026-11-26T14:30:05Z"),
        ],
    );
    let first = dir.tickwatch(&["run", "--input", "ticks.ndjson"]);
    first.assert_exit(0);
    let announced = first.stdout_json_lines();
    let summary: Vec<(String, String)> = announced
        .iter()
        .map(|a| {
            (
                a["symbol"].as_str().unwrap_or("").to_owned(),
                a["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("AAPL".into(), "HIGH".into()),
            ("AAPL".into(), "HIGH".into()),
            ("MSFT".into(), "LOW".into())
        ],
        "cross mode: AAPL enters high, re-arms at 100, enters again; MSFT enters low"
    );
    assert_eq!(announced[0]["price"], 151.25);
    assert_eq!(announced[0]["threshold"], 150.0);
    assert_eq!(announced[0]["timestamp"], "2026-11-26T14:30:00.123Z");
    assert!(first.stderr.contains("6 ticks"), "{}", first.stderr);
    assert!(
        dir.path("tickwatch.db").exists(),
        "default database in the working directory"
    );

    let second = dir.tickwatch(&["run", "--input", "ticks.ndjson"]);
    second.assert_exit(0);
    assert_eq!(second.stdout, "", "nothing announced twice");
    assert!(second.stderr.contains("0 new"), "{}", second.stderr);

    let stored = dir.tickwatch(&["alerts", "--format", "json"]);
    stored.assert_exit(0);
    let stored = stored.stdout_json_lines();
    assert_eq!(stored.len(), 3, "no duplicate rows after the re-run");
    assert!(stored.iter().all(|a| a["notified"] == true));
    let ids = |alerts: &[Value]| {
        let mut ids: Vec<String> = alerts.iter().map(|a| a["alert_id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&stored),
        ids(&announced),
        "the stored ids are the announced ids"
    );
}

#[test]
fn level_mode_alerts_on_every_tick_beyond_a_threshold() {
    let dir = Dir::new();
    dir.write_ticks(
        "t.ndjson",
        &[
            tick("AAPL", 151.0, "1"),
            tick("AAPL", 152.0, "2"),
            tick("AAPL", 150.0, "3"),
            tick("AAPL", 40.0, "4"),
        ],
    );
    let out = dir.tickwatch(&["run", "--input", "t.ndjson", "--mode", "level"]);
    out.assert_exit(0);
    let kinds: Vec<String> = out
        .stdout_json_lines()
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["HIGH", "HIGH", "LOW"], "150 itself raises nothing");
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let dir = Dir::new();
    dir.write(
        "t.ndjson",
        &[
            tick("AAPL", 151.0, "1"),
            r#"{"symbol":"AAPL","price":"151","timestamp":2}"#.to_owned(),
            "garbage".to_owned(),
            String::new(),
            r#"{"symbol":"MS FT","price":40,"timestamp":3}"#.to_owned(),
            tick("MSFT", 40.0, "4"),
        ]
        .join("\n"),
    );
    let out = dir.tickwatch(&["run", "--input", "t.ndjson"]);
    out.assert_exit(0);
    assert_eq!(
        out.stdout_json_lines().len(),
        2,
        "the valid ticks around the bad ones still alert"
    );
    for expected in [
        r#"line 2: price: must be a JSON number, got string "151""#,
        "line 3: body: not valid JSON",
        "line 5: symbol: has U+0020 at position 3",
    ] {
        assert!(
            out.stderr.contains(expected),
            "stderr should contain {expected:?}:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains("rejected   3 (body.malformed 1, price.invalid 1, symbol.invalid 1)"),
        "{}",
        out.stderr
    );

    let strict = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--db",
        "strict.db",
        "--strict",
    ]);
    strict.assert_exit(1);
    assert!(
        strict
            .stderr
            .contains("--strict: stopped at the first invalid tick: line 2: price"),
        "{}",
        strict.stderr
    );
    assert_eq!(
        strict.stdout_json_lines().len(),
        1,
        "ticks before the bad line are processed"
    );
}

#[test]
fn csv_from_stdin_and_from_a_file() {
    let dir = Dir::new();
    let csv = "timestamp,symbol,price\n2026-11-26T14:30:00Z,AAPL,151\n2026-11-26T14:30:01Z,MSFT,NaN\n1795703402000,MSFT,20\n";
    dir.write("t.csv", csv);
    let from_file = dir.tickwatch(&["run", "--input", "t.csv", "--db", "a.db"]);
    from_file.assert_exit(0);
    assert_eq!(from_file.stdout_json_lines().len(), 2);
    assert!(
        from_file
            .stderr
            .contains("line 3: price: must be a number like 151.25, got \"NaN\""),
        "{}",
        from_file.stderr
    );

    let from_stdin = dir.tickwatch_stdin(&["run", "--format", "csv", "--db", "b.db"], csv);
    from_stdin.assert_exit(0);
    assert_eq!(
        from_stdin.stdout,
        from_file
            .stdout
            .replace(&from_file.processed_at(), &from_stdin.processed_at())
    );

    let bad_header =
        dir.tickwatch_stdin(&["run", "--format", "csv", "--db", "c.db"], "sym,px\nA,1\n");
    bad_header.assert_exit(1);
    assert!(
        bad_header
            .stderr
            .contains("must name the columns symbol, price and timestamp"),
        "{}",
        bad_header.stderr
    );
}

#[test]
fn a_rules_file_sets_per_symbol_thresholds_and_bad_ones_are_refused() {
    let dir = Dir::new();
    dir.write(
        "rules.toml",
        "[default]\nmode = \"level\"\n\n[symbols.AAPL]\nhigh = 200\nlow = 120\n",
    );
    dir.write_ticks(
        "t.ndjson",
        &[
            tick("AAPL", 160.0, "1"),
            tick("AAPL", 110.0, "2"),
            tick("MSFT", 160.0, "3"),
        ],
    );
    let out = dir.tickwatch(&["run", "--input", "t.ndjson", "--rules", "rules.toml"]);
    out.assert_exit(0);
    let alerts = out.stdout_json_lines();
    let seen: Vec<(String, f64)> = alerts
        .iter()
        .map(|a| {
            (
                a["symbol"].as_str().unwrap_or("").to_owned(),
                a["threshold"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(seen, [("AAPL".into(), 120.0), ("MSFT".into(), 150.0)]);

    dir.write(
        "bad.toml",
        "[default]\nhigh = 150\n\n[symbols.AAPL]\nhigh = 100\nlow = 120\n",
    );
    let refused = dir.tickwatch(&[
        "run", "--input", "t.ndjson", "--rules", "bad.toml", "--db", "x.db",
    ]);
    refused.assert_exit(1);
    assert!(
        refused
            .stderr
            .contains("line 6 [symbols.AAPL] low: (120) must be below high (100)"),
        "{}",
        refused.stderr
    );
    assert!(
        !dir.path("x.db").exists(),
        "refused before touching anything"
    );
}

#[test]
fn alerts_can_be_written_to_a_file() {
    let dir = Dir::new();
    dir.write(
        "t.ndjson",
        &[tick("AAPL", 151.0, "1"), tick("MSFT", 40.0, "2")].join("\n"),
    );
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--notify",
        "file:alerts.ndjson",
    ]);
    out.assert_exit(0);
    assert_eq!(out.stdout, "");
    let written = dir.read("alerts.ndjson");
    assert_eq!(written.lines().count(), 2, "{written}");
    assert!(
        written
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
}

#[test]
fn a_webhook_receives_each_alert() {
    let dir = Dir::new();
    let hook = Webhook::start(vec![200]);
    dir.write_ticks(
        "t.ndjson",
        &[
            tick("AAPL", 151.0, "1"),
            tick("MSFT", 40.0, "2"),
            tick("NVDA", 100.0, "3"),
        ],
    );
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--notify",
        &format!("webhook:{}", hook.url()),
    ]);
    out.assert_exit(0);
    let received = hook.received();
    assert_eq!(received.len(), 2);
    let symbols: Vec<&str> = received
        .iter()
        .map(|r| r.body["symbol"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(symbols, ["AAPL", "MSFT"]);
    assert!(
        received
            .iter()
            .all(|r| r.content_type == "application/json")
    );
    assert_eq!(
        received[0].alert_id_header,
        received[0].body["alert_id"].as_str().unwrap_or("-")
    );
}

#[test]
fn a_failing_webhook_loses_nothing_and_notify_delivers_later() {
    let dir = Dir::new();
    // Every request fails with 503: transient, retried, then given up on.
    let down = Webhook::start(vec![503]);
    dir.write(
        "t.ndjson",
        &[tick("AAPL", 151.0, "1"), tick("MSFT", 40.0, "2")].join("\n"),
    );
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--notify",
        &format!("webhook:{}", down.url()),
    ]);
    out.assert_exit(3);
    assert!(
        out.stderr.contains("webhook answered HTTP 503"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("tickwatch notify"),
        "tells the user what to do: {}",
        out.stderr
    );
    assert!(
        down.received().len() >= 4,
        "each alert was retried: {}",
        down.received().len()
    );

    let pending = dir.tickwatch(&["alerts", "--pending", "--format", "json"]);
    assert_eq!(
        pending.stdout_json_lines().len(),
        2,
        "both alerts are stored, un-notified"
    );

    let up = Webhook::start(vec![200]);
    let notify = dir.tickwatch(&["notify", "--notify", &format!("webhook:{}", up.url())]);
    notify.assert_exit(0);
    assert!(
        notify.stderr.contains("2 announced, 0 still pending"),
        "{}",
        notify.stderr
    );
    assert_eq!(up.received().len(), 2);
    assert_eq!(
        dir.tickwatch(&["alerts", "--pending"])
            .stdout
            .lines()
            .count(),
        1,
        "only the header is left"
    );

    // A webhook that refuses the alert (4xx) is not retried.
    let refusing = Webhook::start(vec![400]);
    dir.write("u.ndjson", &tick("NVDA", 200.0, "9"));
    let out = dir.tickwatch(&[
        "run",
        "--input",
        "u.ndjson",
        "--notify",
        &format!("webhook:{}", refusing.url()),
    ]);
    out.assert_exit(3);
    assert_eq!(
        refusing.received().len(),
        1,
        "permanent failures are not retried"
    );
}

#[test]
fn alerts_query_filters() {
    let dir = Dir::new();
    dir.write_ticks(
        "t.ndjson",
        &[
            tick("AAPL", 151.0, "2026-11-26T10:00:00Z"),
            tick("MSFT", 40.0, "2026-11-26T11:00:00Z"),
            tick("NVDA", 160.0, "2026-11-26T12:00:00Z"),
            tick("AAPL", 100.0, "2026-11-26T13:00:00Z"),
            tick("AAPL", 30.0, "2026-11-26T14:00:00Z"),
        ],
    );
    dir.tickwatch(&["run", "--input", "t.ndjson"])
        .assert_exit(0);
    let symbols = |args: &[&str]| dir.listed_alerts(args);
    assert_eq!(
        symbols(&[]),
        ["AAPL:LOW", "NVDA:HIGH", "MSFT:LOW", "AAPL:HIGH"]
    );
    assert_eq!(symbols(&["--symbol", "AAPL"]), ["AAPL:LOW", "AAPL:HIGH"]);
    assert_eq!(symbols(&["--kind", "LOW"]), ["AAPL:LOW", "MSFT:LOW"]);
    assert_eq!(
        symbols(&[
            "--since",
            "2026-11-26T11:00:00Z",
            "--until",
            "2026-11-26T14:00:00Z"
        ]),
        ["NVDA:HIGH", "MSFT:LOW"]
    );
    // Newest first, so a limit keeps the newest.
    assert_eq!(symbols(&["--limit", "1"]), ["AAPL:LOW"]);
    assert_eq!(symbols(&["--limit", "2"]), ["AAPL:LOW", "NVDA:HIGH"]);
    assert_eq!(symbols(&["--symbol", "AAPL", "--limit", "1"]), ["AAPL:LOW"]);
    let huge = dir.tickwatch(&["alerts", "--limit", "4294967295"]);
    huge.assert_exit(0);
    let times: Vec<&str> = huge.stdout.lines().skip(1).map(|l| &l[..24]).collect();
    assert_eq!(
        times,
        [
            "2026-11-26T14:00:00.000Z",
            "2026-11-26T12:00:00.000Z",
            "2026-11-26T11:00:00.000Z",
            "2026-11-26T10:00:00.000Z"
        ]
    );

    let table = dir.tickwatch(&["alerts"]);
    assert!(table.stdout.starts_with("TIMESTAMP"), "{}", table.stdout);
    assert_eq!(table.stdout.lines().count(), 5);

    let bad = dir.tickwatch(&["alerts", "--since", "yesterday"]);
    bad.assert_exit(1);
    assert!(
        bad.stderr.contains("--since \"yesterday\""),
        "{}",
        bad.stderr
    );
    let missing = dir.tickwatch(&["alerts", "--db", "nope.db"]);
    missing.assert_exit(1);
    assert!(
        missing.stderr.contains("no database at nope.db"),
        "{}",
        missing.stderr
    );
}

#[test]
fn generate_is_reproducible_and_feeds_run() {
    let dir = Dir::new();
    let a = dir.tickwatch(&[
        "generate",
        "--symbols",
        "5",
        "--ticks",
        "3000",
        "--seed",
        "7",
    ]);
    let b = dir.tickwatch(&[
        "generate",
        "--symbols",
        "5",
        "--ticks",
        "3000",
        "--seed",
        "7",
        "--output",
        "b.ndjson",
    ]);
    a.assert_exit(0);
    b.assert_exit(0);
    assert_eq!(a.stdout, dir.read("b.ndjson"));
    assert_eq!(a.stdout.lines().count(), 3000);
    let c = dir.tickwatch(&[
        "generate",
        "--symbols",
        "5",
        "--ticks",
        "3000",
        "--seed",
        "8",
    ]);
    assert_ne!(a.stdout, c.stdout);

    let out = dir.tickwatch(&[
        "run",
        "--input",
        "b.ndjson",
        "--notify",
        "file:alerts.ndjson",
    ]);
    out.assert_exit(0);
    let alerts = dir.read("alerts.ndjson");
    assert!(
        alerts.contains("\"HIGH\"") && alerts.contains("\"LOW\""),
        "the walk crosses both thresholds"
    );
    assert!(out.stderr.contains("rejected   0"), "{}", out.stderr);
}

#[test]
fn the_committed_example_runs() {
    let dir = Dir::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ticks.ndjson");
    let out = dir.tickwatch(&["run", "--input", example]);
    out.assert_exit(0);
    let kinds: std::collections::BTreeSet<String> = out
        .stdout_json_lines()
        .iter()
        .map(|alert| alert["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["HIGH".to_owned(), "LOW".to_owned()].into(),
        "the example shows both kinds of alert, as README promises"
    );
    assert!(out.stderr.contains("rejected   0"), "{}", out.stderr);
    // README says how the example was made; keep that true.
    let generated = dir.tickwatch(&[
        "generate",
        "--symbols",
        "8",
        "--ticks",
        "1000",
        "--seed",
        "5",
    ]);
    generated.assert_exit(0);
    let committed = std::fs::read_to_string(example).expect("example");
    assert!(
        generated.stdout == committed,
        "examples/ticks.ndjson is `tickwatch generate --symbols 8 --ticks 1000 --seed 5`"
    );
}

#[test]
fn usage_errors_say_what_is_wrong() {
    let dir = Dir::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--input", "missing.ndjson"],
            1,
            "opening input missing.ndjson",
        ),
        (
            &["run", "--notify", "email:me"],
            2,
            "notify destination must be stdout, file:PATH or webhook:",
        ),
        (
            &["run", "--rules", "none.toml"],
            1,
            "reading rules file none.toml",
        ),
        (
            &["generate", "--symbols", "0"],
            1,
            "--symbols must be between 1 and",
        ),
        (&["bogus"], 2, "unrecognized subcommand"),
    ];
    for (args, code, needle) in cases {
        let out = dir.tickwatch(args);
        out.assert_exit(*code);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn the_hostile_corpus_gets_its_expected_outcomes_in_the_local_mode() {
    use tickwatch_core::testing::hostile::{self, Expect};
    let corpus = include_str!("../../../../testdata/hostile-ticks.json");
    let cases: Vec<_> = hostile::parse(corpus)
        .expect("corpus")
        .into_iter()
        .filter(|c| c.fits_one_line())
        .collect();
    let dir = Dir::new();
    let mut file = Vec::new();
    for case in &cases {
        file.extend_from_slice(&case.body);
        file.push(b'\n');
    }
    std::fs::write(dir.path("hostile.ndjson"), file).expect("write corpus");
    let out = dir.tickwatch(&["run", "--input", "hostile.ndjson", "--mode", "level"]);
    out.assert_exit(0);
    let rejected: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .collect();
    let mut expected_rejections = 0;
    for (i, case) in cases.iter().enumerate() {
        let prefix = format!("line {}: ", i + 1);
        let reported = rejected.iter().find(|l| l.starts_with(&prefix));
        match (&case.expect, reported) {
            (Expect::Accept, None) => {}
            (Expect::Reject { contains, .. }, Some(line)) => {
                expected_rejections += 1;
                assert!(
                    line.contains(contains.as_str()),
                    "{}: {line:?} should contain {contains:?}",
                    case.name
                );
            }
            (expect, got) => panic!("{}: expected {expect:?}, stderr has {got:?}", case.name),
        }
    }
    assert!(
        out.stderr.contains(&format!("{} ticks", cases.len()))
            && out
                .stderr
                .contains(&format!("rejected   {expected_rejections} (")),
        "{}",
        out.stderr
    );
}

#[test]
fn a_second_run_continues_where_the_first_stopped() {
    let dir = Dir::new();
    dir.write("a.ndjson", &tick("AAPL", 151.0, "1"));
    dir.write("b.ndjson", &tick("AAPL", 155.0, "2"));
    dir.write(
        "c.ndjson",
        &[tick("AAPL", 100.0, "3"), tick("AAPL", 160.0, "4")].join("\n"),
    );
    let first = dir.tickwatch(&["run", "--input", "a.ndjson"]);
    assert_eq!(first.stdout_json_lines().len(), 1);
    let second = dir.tickwatch(&["run", "--input", "b.ndjson"]);
    second.assert_exit(0);
    assert_eq!(
        second.stdout, "",
        "AAPL is still in the high zone from the first run"
    );
    let third = dir.tickwatch(&["run", "--input", "c.ndjson"]);
    let alerts = third.stdout_json_lines();
    assert_eq!(alerts.len(), 1, "re-armed at 100, entered again at 160");
    assert_eq!(alerts[0]["price"], 160.0);
}

/// A feed that stays open (a producer piping into stdin): each tick's alert is announced while
/// the feed is still open, not when it ends.
#[test]
fn a_live_feed_is_announced_while_it_is_still_open() {
    let dir = Dir::new();
    let mut live = LiveRun::start(&dir);
    for (symbol, price, at, kind) in [
        ("AAPL", 160.0, "2026-11-26T14:30:00Z", "HIGH"),
        ("MSFT", 40.0, "2026-11-26T14:30:01Z", "LOW"),
    ] {
        live.send(&tick(symbol, price, at));
        let alert = live.next_alert();
        assert_eq!(
            (alert["symbol"].as_str(), alert["kind"].as_str()),
            (Some(symbol), Some(kind))
        );
        assert!(live.running(), "tickwatch is still reading the open feed");
    }
    let ended = live.finish();
    ended.assert_exit(0);
    assert!(ended.stderr.contains("2 ticks"), "{}", ended.stderr);
}

/// Ctrl-C while the feed is quiet and stays open (a FIFO or a queue, which the same Ctrl-C does
/// not end): the run stops at once, says it was interrupted, and what it read is stored and
/// announced. With the board written (the default) and without it, whose reads do not wake for
/// the board.
#[test]
fn ctrl_c_stops_a_run_whose_feed_is_quiet() {
    for more in [&[][..], &["--no-board"][..]] {
        let dir = Dir::new();
        let mut live = LiveRun::start_with(&dir, more);
        live.send(&tick("AAPL", 160.0, "2026-11-26T14:30:00Z"));
        assert_eq!(live.next_alert()["symbol"], "AAPL", "{more:?}");
        let ended = live.interrupt();
        ended.assert_exit(1);
        assert!(ended.stderr.contains("interrupted"), "{}", ended.stderr);
        let stored = dir.tickwatch(&["alerts", "--format", "json"]);
        stored.assert_exit(0);
        let stored = stored.stdout_json_lines();
        assert_eq!(stored.len(), 1, "{more:?}");
        assert_eq!(stored[0]["notified"], true, "{more:?}");
    }
}

/// A run with `--serve` keeps its board up after the input ends, until Ctrl-C: sent at once
/// after the summary (where a Ctrl-C was once lost, and the board stayed up for good), or while
/// the feed is still open (when the run stops and the board goes down with it).
#[test]
fn a_served_run_goes_down_on_ctrl_c_whenever_it_comes() {
    for round in 0..5 {
        let dir = Dir::new();
        let mut live = LiveRun::start_with(&dir, &["--serve", "127.0.0.1:0"]);
        live.wait_for_stderr(" is at http://");
        live.send(&tick("AAPL", 160.0, "2026-11-26T14:30:00Z"));
        live.close_feed();
        live.wait_for_stderr("the board stays up until Ctrl-C");
        let ended = live.interrupt();
        ended.assert_exit(0);
        assert!(
            ended.stderr.contains("1 new and announced"),
            "round {round}: {}",
            ended.stderr
        );
    }
    let dir = Dir::new();
    let mut live = LiveRun::start_with(&dir, &["--serve", "127.0.0.1:0"]);
    live.wait_for_stderr(" is at http://");
    live.send(&tick("AAPL", 160.0, "2026-11-26T14:30:00Z"));
    assert_eq!(live.next_alert()["symbol"], "AAPL");
    let ended = live.interrupt();
    ended.assert_exit(1);
    assert!(ended.stderr.contains("interrupted"), "{}", ended.stderr);
}

/// `tickwatch serve` ends cleanly on a Ctrl-C sent as soon as it prints its address: its listener
/// is registered before that, so the Ctrl-C is never left to the default action (which kills the
/// process, no exit code).
#[test]
fn tickwatch_serve_ends_cleanly_on_ctrl_c_as_soon_as_it_is_up() {
    for _ in 0..5 {
        let dir = Dir::new();
        dir.tickwatch_stdin(&["run", "--input", "-"], "")
            .assert_exit(0);
        let mut served = LiveRun::spawn(&dir, &["serve", "--listen", "127.0.0.1:0"]);
        served.wait_for_stderr(" is at http://");
        served.interrupt().assert_exit(0);
    }
}

/// Lines of several full batches (`BATCH_TICKS_MAX`, 32,768 ticks each) of `AAPL` at 100, with
/// an alert every 20,000 lines and the same `DUP` tick every 9,973 (so in every batch); and how
/// many distinct alerts they raise in level mode.
fn batches_with_few_alerts() -> (Vec<String>, usize) {
    const LINES: usize = 6 * 32_768 + 1_000;
    let repeated = tick("DUP", 160.0, "5");
    let lines: Vec<String> = (0..LINES)
        .map(|i| match i {
            _ if i % 9_973 == 0 => repeated.clone(),
            _ if i % 20_000 == 3 => tick("AAPL", 151.0, &i.to_string()),
            _ => tick("AAPL", 100.0, &i.to_string()),
        })
        .collect();
    let unique_alerts = (0..LINES)
        .filter(|i| i % 9_973 != 0 && i % 20_000 == 3)
        .count();
    (lines, unique_alerts + 1)
}

/// `tickwatch run --mode level` of `t.ndjson` into a webhook.
fn level_run_args(hook: &Webhook) -> Vec<String> {
    ["run", "--input", "t.ndjson", "--mode", "level", "--notify"]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([format!("webhook:{}", hook.url())])
        .collect()
}

/// A file of several full batches, each evaluated while the one before is stored and announced
/// (here to a webhook that takes 200 ms an alert, so the next batch is evaluated long before): a
/// tick repeated
/// all through it, so in every batch, is stored once and announced once, and the other alerts
/// are announced in the order of the input.
#[test]
fn a_tick_repeated_across_batches_is_announced_once() {
    let (lines, alerts) = batches_with_few_alerts();
    let dir = Dir::new();
    dir.write_ticks("t.ndjson", &lines);
    let hook = Webhook::start_slow(vec![200], std::time::Duration::from_millis(200));
    let args = level_run_args(&hook);
    let out = dir.tickwatch(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out.assert_exit(0);
    let announced: Vec<Value> = hook.received().into_iter().map(|r| r.body).collect();
    let dup = announced.iter().filter(|a| a["symbol"] == "DUP").count();
    assert_eq!(dup, 1, "the repeated tick's alert, announced once");
    assert_eq!(announced.len(), alerts);
    let times: Vec<&str> = announced
        .iter()
        .filter(|a| a["symbol"] == "AAPL")
        .map(|a| a["timestamp"].as_str().unwrap_or(""))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "announced in the order of the input: {times:?}"
    );
}

/// `kill -9` while one batch is being announced and the next stored (the webhook holds each
/// alert 200 ms; the kill comes after its first or its sixth alert), then the same command again:
/// every alert is stored, each is announced at least once over the two runs, and a third run
/// announces nothing, so every alert was marked.
#[test]
fn a_run_killed_while_announcing_and_run_again_loses_nothing() {
    let (lines, alerts) = batches_with_few_alerts();
    for kill_after in [1, 6] {
        let dir = Dir::new();
        dir.write_ticks("t.ndjson", &lines);
        let slow = Webhook::start_slow(vec![200], std::time::Duration::from_millis(200));
        let args = level_run_args(&slow);
        let mut killed = dir.spawn_tickwatch(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let waited = std::time::Instant::now();
        while slow.received().len() < kill_after {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(60),
                "the run never announced {kill_after} alerts"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        killed.kill().expect("kill -9");
        killed.wait().expect("reaped");

        let hook = Webhook::start(vec![200]);
        let args = level_run_args(&hook);
        dir.tickwatch(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .assert_exit(0);
        let ids = |hook: &Webhook| -> std::collections::BTreeSet<String> {
            hook.received()
                .iter()
                .map(|r| r.body["alert_id"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        let announced: std::collections::BTreeSet<String> =
            ids(&slow).union(&ids(&hook)).cloned().collect();
        let stored = dir.tickwatch(&["alerts", "--format", "json"]);
        stored.assert_exit(0);
        let stored: std::collections::BTreeSet<String> = stored
            .stdout_json_lines()
            .iter()
            .map(|a| a["alert_id"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(stored.len(), alerts);
        assert_eq!(announced, stored, "killed after {kill_after}");

        let last = Webhook::start(vec![200]);
        let args = level_run_args(&last);
        dir.tickwatch(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .assert_exit(0);
        assert!(last.received().is_empty(), "nothing left to announce");
    }
}
