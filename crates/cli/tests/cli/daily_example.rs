//! Real daily closes (`examples/daily/us-stocks-2007-2009.csv`: AAPL, GOOG, IBM and MSFT,
//! 2007-2009, see the README beside it) through two rules, `rise 10% within 5d` and
//! `fall 10% within 5d`, both firing on every tick. The expected alerts are computed here from
//! the CSV alone, in exact decimal arithmetic, without tickwatch's engine; the binary is then run
//! end to end (`rules import`, `run`, `alerts`) and must store exactly that set.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::Dir;

/// The example, relative to the repository root.
const EXAMPLE: &str = "examples/daily/us-stocks-2007-2009.csv";

/// The two rules, as `tickwatch rules import` reads them.
const RULES_JSON: &str = r#"[
  {"id":"rise10","symbols":"*","condition":"rise 10% within 5d","fire":"every"},
  {"id":"fall10","symbols":"*","condition":"fall 10% within 5d","fire":"every"}
]"#;

const MS_PER_DAY: i64 = 86_400_000;

/// The look-back of both rules: a tick at `t` compares with the ticks in `(t - 5 days, t]`.
const WINDOW_MS: i64 = 5 * MS_PER_DAY;

/// Prices are compared as integers of this many units per 1 (no float rounding anywhere).
const PRICE_SCALE_DIGITS: usize = 6;

/// One tick of the input: the price in units of 1e-6, the time in epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    symbol: String,
    price: i128,
    at_ms: i64,
}

/// An alert as (rule id, symbol, tick time in epoch milliseconds).
type AlertKey = (String, String, i64);

/// Parses decimal text (`122`, `122.0`, `17.729`) exactly into units of 1e-6. Panics on anything
/// else, or on more fraction digits than that scale holds: nothing may be rounded.
fn parse_price(text: &str) -> i128 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    assert!(
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() <= PRICE_SCALE_DIGITS,
        "price {text:?} is not a plain decimal with at most {PRICE_SCALE_DIGITS} fraction digits"
    );
    let digits = format!("{whole}{fraction:0<PRICE_SCALE_DIGITS$}");
    digits
        .parse()
        .unwrap_or_else(|e| panic!("price {text:?}: {e}"))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (the UTC form both the CSV and `tickwatch alerts`
/// write) into epoch milliseconds; a fraction past milliseconds is truncated.
fn parse_utc_ms(text: &str) -> i64 {
    let shape = "is not YYYY-MM-DDTHH:MM:SS[.fff]Z";
    let body = text
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("timestamp {text:?} {shape}"));
    let (seconds_part, fraction) = body.split_once('.').unwrap_or((body, ""));
    let b = seconds_part.as_bytes();
    assert!(
        b.len() == 19
            && [b[4], b[7], b[10], b[13], b[16]] == [b'-', b'-', b'T', b':', b':']
            && fraction.bytes().all(|c| c.is_ascii_digit()),
        "timestamp {text:?} {shape}"
    );
    let number = |range: std::ops::Range<usize>| -> i64 {
        seconds_part[range]
            .parse()
            .unwrap_or_else(|_| panic!("timestamp {text:?} has a field that is not a number"))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    assert!(
        (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60,
        "timestamp {text:?} is out of range"
    );
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .unwrap_or(0);
    days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute) * 60 + second) * 1000
        + millis
}

/// Reads CSV text with a `symbol,price,timestamp` header (columns in any order, no quoting).
fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("a header line").split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .unwrap_or_else(|| panic!("the header {header:?} has no column {name}"))
    };
    let (symbol, price, timestamp) = (column("symbol"), column("price"), column("timestamp"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            assert_eq!(fields.len(), header.len(), "row {line:?}");
            Row {
                symbol: fields[symbol].to_owned(),
                price: parse_price(fields[price]),
                at_ms: parse_utc_ms(fields[timestamp]),
            }
        })
        .collect()
}

/// The alerts of `rise10` and `fall10` (fire `every`) on `rows`, computed from first principles.
///
/// A tick of symbol S at time t with price p is compared with the ticks of S at times t' with
/// t - 5 days < t' <= t, itself included: with m the lowest and M the highest of their prices,
/// `rise10` fires when p * 100 >= 110 * m and `fall10` when p * 100 <= 90 * M. Each symbol's rows
/// must be in strictly ascending time order (other symbols' rows may be interleaved).
fn expected_alerts(rows: &[Row]) -> BTreeSet<AlertKey> {
    let mut by_symbol: Vec<(&str, Vec<&Row>)> = Vec::new();
    for row in rows {
        match by_symbol.iter_mut().find(|(s, _)| *s == row.symbol) {
            Some((_, ticks)) => ticks.push(row),
            None => by_symbol.push((&row.symbol, vec![row])),
        }
    }
    let mut alerts = BTreeSet::new();
    for (symbol, ticks) in by_symbol {
        for (i, tick) in ticks.iter().enumerate() {
            if i > 0 {
                assert!(
                    ticks[i - 1].at_ms < tick.at_ms,
                    "{symbol}: ticks are not in ascending time order at {}",
                    tick.at_ms
                );
            }
            let window = ticks[..=i]
                .iter()
                .rev()
                .take_while(|earlier| earlier.at_ms > tick.at_ms - WINDOW_MS)
                .map(|earlier| earlier.price);
            let (low, high) = window.fold((tick.price, tick.price), |(low, high), price| {
                (low.min(price), high.max(price))
            });
            if tick.price * 100 >= 110 * low {
                alerts.insert(("rise10".to_owned(), symbol.to_owned(), tick.at_ms));
            }
            if tick.price * 100 <= 90 * high {
                alerts.insert(("fall10".to_owned(), symbol.to_owned(), tick.at_ms));
            }
        }
    }
    alerts
}

fn count(alerts: &BTreeSet<AlertKey>, rule: &str) -> usize {
    alerts.iter().filter(|(id, _, _)| id == rule).count()
}

fn repository_root() -> PathBuf {
    // crates/cli -> the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cli sits two levels below the repository root")
        .to_path_buf()
}

#[test]
fn the_independent_computation_counts_exactly_ten_percent_and_excludes_ticks_five_days_back() {
    let day = |n: i64| format!("2020-01-{:02}T00:00:00Z", 6 + n);
    let csv = [
        "symbol,price,timestamp".to_owned(),
        format!("A,90.5,{}", day(0)),
        format!("B,200,{}", day(0)),
        // Rises from 90.5, but only 4.97 %; falls from B's 200, but that is another symbol.
        format!("A,95,{}", day(1)),
        // Exactly 10 % above 90.5 (in f64, 1.1 * 90.5 = 99.55000000000001 would miss it).
        format!("A,99.55,{}", day(2)),
        // Exactly 10 % below 200.
        format!("B,180.000,{}", day(3)),
        // 14.9 % above A's 90.5, but that tick is exactly 5 days back, outside the window; only
        // 9.47 % above the 95 of day 1, which is inside.
        format!("A,104,{}", day(5)),
    ]
    .join("\n");
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[3].price, 99_550_000);
    assert_eq!(rows[5].at_ms - rows[0].at_ms, WINDOW_MS);
    assert_eq!(parse_utc_ms("2020-01-06T00:00:00Z"), 1_578_268_800_000);
    assert_eq!(parse_utc_ms("2020-01-06T00:00:00.250Z"), 1_578_268_800_250);

    let expected: BTreeSet<AlertKey> = [
        ("rise10".to_owned(), "A".to_owned(), parse_utc_ms(&day(2))),
        ("fall10".to_owned(), "B".to_owned(), parse_utc_ms(&day(3))),
    ]
    .into_iter()
    .collect();
    assert_eq!(expected_alerts(&rows), expected);

    // One millisecond later, the day-0 tick falls inside the window of the last A tick.
    let mut shifted = rows.clone();
    shifted[5].at_ms -= 1;
    assert!(expected_alerts(&shifted).contains(&(
        "rise10".to_owned(),
        "A".to_owned(),
        shifted[5].at_ms
    )));
}

#[test]
fn the_daily_example_raises_the_independently_computed_rise_and_fall_alerts() {
    let csv_path = repository_root().join(EXAMPLE);
    let text = std::fs::read_to_string(&csv_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", csv_path.display()));
    let rows = parse_csv(&text);
    let expected = expected_alerts(&rows);
    let (rises, falls) = (count(&expected, "rise10"), count(&expected, "fall10"));
    eprintln!(
        "{EXAMPLE}: {} ticks; expected alerts: rise10 {rises}, fall10 {falls}",
        rows.len()
    );
    assert!(
        rises > 0 && falls > 0,
        "the example must exercise both rules"
    );

    let dir = Dir::new();
    dir.write("rules.json", RULES_JSON);
    let db_path = dir.path("tw.db");
    let db = db_path.to_str().expect("a UTF-8 temp path");
    let rules = dir.path("rules.json");
    let notified = format!("file:{}", dir.path("notified.ndjson").display());
    // --replace: only these two rules are in force, not the base rules (high, low) as well.
    dir.tickwatch(&[
        "rules",
        "import",
        "--replace",
        rules.to_str().expect("a UTF-8 temp path"),
        "--db",
        db,
    ])
    .assert_exit(0);
    dir.tickwatch(&[
        "run",
        "--input",
        csv_path.to_str().expect("a UTF-8 repository path"),
        "--db",
        db,
        "--notify",
        &notified,
        "--strict",
        "--quiet",
    ])
    .assert_exit(0);

    let listed = dir.tickwatch(&[
        "alerts", "--db", db, "--format", "json", "--limit", "1000000",
    ]);
    listed.assert_exit(0);
    let listed = listed.stdout_json_lines();
    let text_field = |alert: &serde_json::Value, name: &str| {
        alert[name]
            .as_str()
            .unwrap_or_else(|| panic!("alert without a text {name}: {alert}"))
            .to_owned()
    };
    let actual: BTreeSet<AlertKey> = listed
        .iter()
        .map(|alert| {
            (
                text_field(alert, "rule_id"),
                text_field(alert, "symbol"),
                parse_utc_ms(&text_field(alert, "timestamp")),
            )
        })
        .collect();
    assert_eq!(listed.len(), actual.len(), "an alert is stored twice");
    eprintln!(
        "tickwatch stored: rise10 {}, fall10 {}, {} in all",
        count(&actual, "rise10"),
        count(&actual, "fall10"),
        actual.len()
    );
    // The table names each alert's condition, and JSON carries it.
    assert!(listed.iter().all(|alert| alert["condition"]
        == format!(
            "{} 10% within 5d",
            if alert["rule_id"] == "rise10" {
                "rise"
            } else {
                "fall"
            }
        )));
    let table = dir.tickwatch(&["alerts", "--db", db, "--rule", "rise10", "--limit", "2"]);
    table.assert_exit(0);
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert!(rows[0].contains("CONDITION"), "{}", table.stdout);
    assert!(
        rows[1..].len() == 2
            && rows[1..]
                .iter()
                .all(|row| row.contains("rise 10% within 5d")),
        "{}",
        table.stdout
    );
    let missing: Vec<_> = expected.difference(&actual).take(20).collect();
    let unexpected: Vec<_> = actual.difference(&expected).take(20).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "expected {} alerts, stored {}\nmissing (first 20): {missing:?}\nunexpected (first 20): \
         {unexpected:?}",
        expected.len(),
        actual.len()
    );
}
