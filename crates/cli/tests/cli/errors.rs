//! End-to-end tests of what `tickwatch` says when something is wrong, and of the inputs and
//! situations adversarial testing found mishandled: byte order marks, terminal escape sequences in
//! input, repeated CSV columns, float timestamps, rules-file and database errors, listing order
//! and memory, and two processes announcing from one database.

use std::io::{BufRead, BufReader};

use crate::support::{Dir, Webhook, tick, wait_bounded};
use tickwatch_local::AnnounceLock;

/// Stderr must never carry a raw control character other than the line breaks between messages:
/// an ESC from the input would be run by the terminal that shows it.
fn assert_no_raw_controls(stderr: &str) {
    if let Some(bad) = stderr.chars().find(|&c| c.is_control() && c != '\n') {
        panic!("stderr has a raw {bad:?}:\n{}", stderr.escape_debug());
    }
}

/// Runs `tickwatch run` on one file and returns (exit code, stderr).
fn run_file(dir: &Dir, name: &str, contents: &str, extra: &[&str]) -> (i32, String) {
    dir.write(name, contents);
    let mut args = vec!["run", "--input", name, "--db", "t.db"];
    args.extend_from_slice(extra);
    let out = dir.tickwatch(&args);
    assert_no_raw_controls(&out.stderr);
    (out.code, out.stderr)
}

#[test]
fn a_leading_byte_order_mark_is_skipped() {
    let cases: &[(&str, &str)] = &[
        (
            "bom.csv",
            "\u{feff}symbol,price,timestamp\nAAPL,151,1767225600000\n",
        ),
        (
            "bom.ndjson",
            "\u{feff}{\"symbol\":\"AAPL\",\"price\":151,\"timestamp\":1767225600000}\n",
        ),
    ];
    for (name, contents) in cases {
        let dir = Dir::new();
        dir.write(name, contents);
        let out = dir.tickwatch(&["run", "--input", name]);
        out.assert_exit(0);
        assert_eq!(out.stdout_json_lines().len(), 1, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("rejected   0"),
            "{name}: {}",
            out.stderr
        );
    }
}

#[test]
fn input_is_echoed_with_control_characters_escaped() {
    // (file, contents, exit code, what stderr must say)
    let cases: &[(&str, &str, i32, &str)] = &[
        (
            "header.csv",
            "sym\u{1b}[31mbol,price,timestamp\nAAPL,151,1\n",
            1,
            r#"it has: "sym\u{1b}[31mbol", "price", "timestamp""#,
        ),
        (
            "symbol.csv",
            "symbol,price,timestamp\nA\u{1b}[31mX,151,1\n",
            0,
            r#"line 2: symbol: has U+001B at position 2; allowed are A-Z a-z 0-9 . _ - : /, got "A\u{1b}[31mX""#,
        ),
        (
            "price.csv",
            "symbol,price,timestamp\nAAPL,151\u{1b}[0m,1\n",
            0,
            r#"line 2: price: must be a number like 151.25, got "151\u{1b}[0m""#,
        ),
        (
            "timestamp.csv",
            "symbol,price,timestamp\nAAPL,151,2026-01-01T00:00:00\u{1b}]0;title\u{7}\n",
            0,
            r#"got "2026-01-01T00:00:00\u{1b}]0;title\u{7}""#,
        ),
        (
            "symbol.ndjson",
            r#"{"symbol":"A\u001b[31mX","price":151,"timestamp":1}"#,
            0,
            r#"line 1: symbol: has U+001B at position 2; allowed are A-Z a-z 0-9 . _ - : /, got "A\u{1b}[31mX""#,
        ),
        (
            "price.ndjson",
            r#"{"symbol":"AAPL","price":"1\u001b[0m","timestamp":1}"#,
            0,
            r#"line 1: price: must be a JSON number, got string "1\u{1b}[0m""#,
        ),
        (
            "raw.ndjson",
            "{\"symbol\":\"A\u{1b}[31mX\",\"price\":151,\"timestamp\":1}",
            0,
            "line 1: symbol: not valid JSON: control character",
        ),
    ];
    for (name, contents, code, needle) in cases {
        let dir = Dir::new();
        let (got, stderr) = run_file(&dir, name, contents, &[]);
        assert_eq!(got, *code, "{name}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: {needle:?} not in:\n{stderr}"
        );
    }
}

#[test]
fn a_repeated_csv_column_is_refused() {
    let cases: &[(&str, &str)] = &[
        ("symbol,price,price,timestamp\nAAPL,151,1,1\n", "\"price\""),
        (
            "symbol,price,timestamp,Symbol\nAAPL,151,1,MSFT\n",
            "\"symbol\"",
        ),
        (
            "symbol,price,timestamp,venue,venue\nAAPL,151,1,a,b\n",
            "\"venue\"",
        ),
    ];
    for (contents, column) in cases {
        let dir = Dir::new();
        let (code, stderr) = run_file(&dir, "t.csv", contents, &[]);
        assert_eq!(code, 1, "{contents:?}: {stderr}");
        let expected = format!(
            "tickwatch: error: CSV header (line 1) names the column {column} more than once"
        );
        assert!(stderr.contains(&expected), "{expected:?} not in:\n{stderr}");
    }
}

#[test]
fn csv_row_errors_speak_csv() {
    let dir = Dir::new();
    let csv = [
        "symbol,price,timestamp",
        "AAPL,151",
        "AAPL,151,1,extra",
        "\"AAPL,151,1",
        "AAPL,abc,1",
        "AAPL,NaN,1",
        "AAPL,1e300,1",
        "AAPL,151,1767225600000.0",
        "AAPL,151,yesterday",
        "AAPL,151,1767225600000",
    ]
    .join("\n");
    let (code, stderr) = run_file(&dir, "t.csv", &csv, &[]);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "line 2: row has 2 fields, the header has 3",
        "line 3: row has 4 fields, the header has 3",
        "line 4: row has a quoted field that is never closed",
        "line 5: price: must be a number like 151.25, got \"abc\"",
        "line 6: price: must be a number like 151.25, got \"NaN\"",
        "line 7: price: must be below 1e12, got 1e300",
        "line 8: timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.0",
        "line 9: timestamp: must be RFC 3339",
        "rejected   8 (price.invalid 3, row.malformed 3, timestamp.invalid 2)",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    assert!(
        !stderr.contains("JSON"),
        "a CSV error mentions JSON:\n{stderr}"
    );
}

#[test]
fn a_float_epoch_timestamp_is_refused_saying_it_was_a_float() {
    let dir = Dir::new();
    let ndjson = [
        r#"{"symbol":"AAPL","price":151,"timestamp":1767225600000.0}"#,
        r#"{"symbol":"AAPL","price":151,"timestamp":1767225600000.5}"#,
        r#"{"symbol":"AAPL","price":151,"timestamp":1.7672256e12}"#,
        r#"{"symbol":"AAPL","price":151,"timestamp":1767225600000}"#,
    ]
    .join("\n");
    let (code, stderr) = run_file(&dir, "t.ndjson", &ndjson, &[]);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "line 1: timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.0",
        "line 2: timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.5",
        "line 3: timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.0",
        "rejected   3 (timestamp.invalid 3)",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
}

#[test]
fn rules_file_errors_point_at_the_key_and_keep_numbers_short() {
    // (rules file, the message after "rules file rules.toml: ")
    let cases: &[(&str, &str)] = &[
        (
            "[default]\nmode = \"level\"\n\nhigh = 1e300\n",
            "line 4 [default] high: must be below 1e12, got 1e300",
        ),
        (
            "[default]\nhigh = 150\n\n[symbols.AAPL]\nhigh = 100\nlow = 120\n",
            "line 6 [symbols.AAPL] low: (120) must be below high (100)",
        ),
        (
            "[symbols.AAPL]\nhigh = 200\nlow = -1e-300\n",
            "line 3 [symbols.AAPL] low: must not be negative, got -1e-300",
        ),
        (
            "[symbols.\"A\\u001b[31m\"]\nhigh = 200\n",
            r#"line 1 [symbols."A\u{1b}[31m"]: symbol: has U+001B at position 2; allowed are A-Z a-z 0-9 . _ - : /, got "A\u{1b}[31m""#,
        ),
    ];
    for (rules, expected) in cases {
        let dir = Dir::new();
        dir.write("rules.toml", rules);
        let (code, stderr) = run_file(
            &dir,
            "t.ndjson",
            &tick("AAPL", 151.0, "1"),
            &["--rules", "rules.toml"],
        );
        assert_eq!(code, 1, "{rules:?}: {stderr}");
        let expected = format!("tickwatch: error: rules file rules.toml: {expected}\n");
        assert!(
            stderr.ends_with(&expected),
            "{expected:?} is not the end of:\n{stderr}"
        );
    }
}

#[test]
fn database_errors_say_each_thing_once() {
    let dir = Dir::new();
    dir.write("notes.db", &"not a database\n".repeat(300));
    write_foreign_database(&dir.path("foreign.db"));
    let foreign = "foreign.db";
    // (arguments, the whole of stderr)
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["alerts", "--db", "notes.db"],
            "tickwatch: error: opening database notes.db: sqlite: file is not a database\n".into(),
        ),
        (
            vec!["alerts", "--db", &foreign],
            format!(
                "tickwatch: error: opening database {foreign}: not a tickwatch database (table alerts has an unexpected schema)\n"
            ),
        ),
        (
            vec!["notify", "--db", &foreign],
            format!(
                "tickwatch: error: opening database {foreign}: not a tickwatch database (table alerts has an unexpected schema)\n"
            ),
        ),
    ];
    for (args, expected) in cases {
        let out = dir.tickwatch(&args);
        out.assert_exit(1);
        assert_eq!(out.stderr, expected, "{args:?}");
    }
}

/// Writes the database another program might have made: its own, empty `alerts (id INTEGER
/// PRIMARY KEY, message TEXT)` table. This crate has no SQLite of its own to make it with, and the
/// store refuses to, so it is written in SQLite's file format (version 3.0.0 and later): page 1
/// holds the file header and the schema table, with one row; page 2 is the empty table.
fn write_foreign_database(path: &std::path::Path) {
    const PAGE: usize = 4096;
    let sql = "CREATE TABLE alerts (id INTEGER PRIMARY KEY, message TEXT)";
    // The record of the schema row: type, name, tbl_name, rootpage, sql.
    let texts: [&[u8]; 3] = [b"table", b"alerts", b"alerts"];
    let mut header = Vec::new();
    let mut body = Vec::new();
    for text in texts {
        header.extend(varint((text.len() * 2 + 13) as u64));
        body.extend_from_slice(text);
    }
    header.push(1); // rootpage: an 8-bit integer
    body.push(2);
    header.extend(varint((sql.len() * 2 + 13) as u64));
    body.extend_from_slice(sql.as_bytes());
    let mut record = varint((header.len() + 1) as u64);
    record.extend(header);
    record.extend(body);
    let mut cell = varint(record.len() as u64);
    cell.extend(varint(1)); // rowid
    cell.extend(record);

    let mut file = vec![0u8; PAGE * 2];
    file[..16].copy_from_slice(b"SQLite format 3\0");
    file[16..18].copy_from_slice(&(PAGE as u16).to_be_bytes());
    file[18] = 1; // file format write version: legacy
    file[19] = 1; // read version
    file[21] = 64; // max embedded payload fraction
    file[22] = 32; // min embedded payload fraction
    file[23] = 32; // leaf payload fraction
    file[24..28].copy_from_slice(&1u32.to_be_bytes()); // change counter
    file[28..32].copy_from_slice(&2u32.to_be_bytes()); // pages in the file
    file[40..44].copy_from_slice(&1u32.to_be_bytes()); // schema cookie
    file[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
    file[56..60].copy_from_slice(&1u32.to_be_bytes()); // text encoding: UTF-8
    file[92..96].copy_from_slice(&1u32.to_be_bytes()); // version-valid-for
    file[96..100].copy_from_slice(&3_045_000u32.to_be_bytes()); // SQLite version number
    // Page 1: the schema table, a leaf with one cell at the end of the page.
    let cell_at = PAGE - cell.len();
    file[cell_at..PAGE].copy_from_slice(&cell);
    file[100] = 13; // table leaf
    file[103..105].copy_from_slice(&1u16.to_be_bytes()); // one cell
    file[105..107].copy_from_slice(&(cell_at as u16).to_be_bytes());
    file[108..110].copy_from_slice(&(cell_at as u16).to_be_bytes()); // its pointer
    // Page 2: the empty `alerts` table, a leaf with no cells.
    file[PAGE] = 13;
    file[PAGE + 5..PAGE + 7].copy_from_slice(&(PAGE as u16).to_be_bytes());
    std::fs::write(path, file).expect("write a foreign database");
}

/// SQLite's variable-length integer (big-endian, 7 bits a byte), for values below 2^56.
fn varint(mut value: u64) -> Vec<u8> {
    let mut bytes = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        bytes.push(((value & 0x7f) as u8) | 0x80);
        value >>= 7;
    }
    bytes.reverse();
    bytes
}

#[test]
fn a_listing_cut_short_by_its_reader_ends_quietly() {
    let dir = Dir::new();
    dir.tickwatch(&["generate", "--ticks", "6000", "--output", "t.ndjson"])
        .assert_exit(0);
    dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--mode",
        "level",
        "--notify",
        "file:a.ndjson",
        "-q",
    ])
    .assert_exit(0);
    assert!(
        dir.read("a.ndjson").lines().count() > 1_000,
        "enough alerts to fill a pipe"
    );
    let mut child = dir.spawn_tickwatch(&["alerts", "--limit", "1000000"]);
    drop(child.stdin.take());
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut header = String::new();
    stdout.read_line(&mut header).expect("the header");
    assert!(header.starts_with("TIMESTAMP"), "{header}");
    drop(stdout); // `| head -1`
    let output = wait_bounded(child, &["alerts", "--limit", "1000000"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn notify_fails_fast_while_another_process_announces_from_the_database() {
    let dir = Dir::new();
    dir.write("t.ndjson", &tick("AAPL", 151.0, "1"));
    // Stored, not announced: a webhook that refuses it.
    let refusing = Webhook::start(vec![400]);
    dir.tickwatch(&[
        "run",
        "--input",
        "t.ndjson",
        "--notify",
        &format!("webhook:{}", refusing.url()),
    ])
    .assert_exit(3);
    let pending = dir.tickwatch(&["alerts", "--pending", "--format", "json"]);
    assert_eq!(pending.stdout_json_lines().len(), 1, "{}", pending.stderr);

    // This test process plays the other announcer.
    let held = AnnounceLock::acquire(&dir.path("tickwatch.db")).expect("the lock is free");
    let started = std::time::Instant::now();
    let refused = dir.tickwatch(&["notify", "--notify", "file:b.ndjson"]);
    refused.assert_exit(1);
    assert_eq!(
        refused.stderr,
        "tickwatch: error: another tickwatch process is announcing from tickwatch.db; try again when it ends\n"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "it does not wait for the lock"
    );
    assert!(!dir.path("b.ndjson").exists(), "nothing was announced");

    drop(held);
    let after = dir.tickwatch(&["notify", "--notify", "file:b.ndjson"]);
    after.assert_exit(0);
    assert!(
        after.stderr.contains("1 announced, 0 still pending"),
        "{}",
        after.stderr
    );
    assert_eq!(dir.read("b.ndjson").lines().count(), 1);
}

#[test]
fn a_run_refuses_a_database_another_process_is_announcing_from() {
    let dir = Dir::new();
    dir.write("t.ndjson", &(tick("AAPL", 160.0, "1") + "\n"));
    let _held = AnnounceLock::acquire(&dir.path("tickwatch.db")).expect("lock");
    let out = dir.tickwatch(&["run", "--input", "t.ndjson"]);
    out.assert_exit(1);
    assert!(
        out.stderr
            .contains("another tickwatch process is announcing from"),
        "{}",
        out.stderr
    );
}
