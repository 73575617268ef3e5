//! End-to-end throughput of `tickwatch run`, next to a bare serde_json parse of the same file.
//!
//! `cargo bench -p tickwatch --bench run_e2e` generates 1,000,000 ticks (50 symbols, seed 1) into a
//! temporary file, then times, three times each on the same file:
//! 1. a bare parse: read the file line by line and `serde_json::from_slice` each line into a
//!    struct of borrowed fields (no validation, no rules, no storage);
//! 2. `tickwatch run --notify file:...` into a fresh SQLite database (cross mode, the default), as
//!    a user runs it, via the built binary;
//! 3. the same in level mode (every tick beyond a threshold alerts);
//! 4. cross mode with the rules taken from the database and watched for changes (no `--mode`:
//!    one read of the rules' change counter per batch), next to 2, for the cost of watching;
//! 5. on a second file of the same size over 5,000 symbols: the two default rules, then 10,000
//!    rules imported into the database (exact, prefix and `*` mixed), for the cost of many rules;
//! 6. on the first file: three window rules for every symbol (`rise`, `volume`, `crosses_ma`)
//!    instead of the defaults, for the cost of conditions over time.
//!
//! `TICKWATCH_BENCH_TICKS` changes the tick count. Both sides run single-threaded.
//!
//! `cargo test --all-targets` also runs this binary (without `--bench`): it then makes one quick
//! pass over a few thousand ticks, so the benchmark cannot rot, and reports nothing.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tickwatch_core::Timestamp;
use tickwatch_core::generate::RandomWalk;

const TICKS_DEFAULT: u64 = 1_000_000;
/// Ticks in the quick pass made under `cargo test`.
const TICKS_SMOKE: u64 = 3_000;
const SYMBOLS: usize = 50;
/// Symbols of the many-rules file.
const MANY_RULES_SYMBOLS: usize = 5_000;
/// Rules of the many-rules run.
const MANY_RULES: usize = 10_000;
const REPEATS: usize = 3;

#[derive(serde::Deserialize)]
struct Bare<'a> {
    #[serde(borrow)]
    symbol: &'a str,
    price: f64,
    #[serde(borrow)]
    timestamp: &'a str,
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let ticks: u64 = match std::env::var("TICKWATCH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(ticks) => ticks,
        None if benchmarking => TICKS_DEFAULT,
        None => TICKS_SMOKE,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("ticks.ndjson");
    write_ticks(&input, ticks, SYMBOLS);
    let bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!(
        "input: {ticks} ticks, {SYMBOLS} symbols, {:.1} MB",
        bytes as f64 / 1e6
    );

    let bare = best_of(|| bare_parse(&input, ticks));
    report("bare serde_json parse", ticks, bare);
    let cross = best_of(|| run_tickwatch(dir.path(), &input, Some("cross"), None));
    report("tickwatch run (cross, SQLite, file notify)", ticks, cross);
    let level = best_of(|| run_tickwatch(dir.path(), &input, Some("level"), None));
    report("tickwatch run (level, SQLite, file notify)", ticks, level);
    println!(
        "ratio run(cross) / bare parse: {:.2}x (target: at most 2x); run(level) / bare parse: {:.2}x",
        cross.as_secs_f64() / bare.as_secs_f64(),
        level.as_secs_f64() / bare.as_secs_f64()
    );
    let watched = best_of(|| run_tickwatch(dir.path(), &input, None, None));
    report(
        "tickwatch run (the database's rules, watched; the defaults)",
        ticks,
        watched,
    );
    println!(
        "cost of watching the rules: {:+.1} % of the time of --mode cross (target: under 2 %)",
        100.0 * (watched.as_secs_f64() / cross.as_secs_f64() - 1.0)
    );

    let many_input = dir.path().join("many.ndjson");
    write_ticks(&many_input, ticks, MANY_RULES_SYMBOLS);
    let rules_file = dir.path().join("rules.json");
    write_many_rules(&rules_file);
    let defaults = best_of(|| run_tickwatch(dir.path(), &many_input, None, None));
    report(
        "tickwatch run, 5,000 symbols, the 2 default rules",
        ticks,
        defaults,
    );
    println!("  alerts: {}", alert_lines(dir.path(), "db"));
    let many = best_of(|| run_tickwatch(dir.path(), &many_input, None, Some(&rules_file)));
    report(
        "tickwatch run, 5,000 symbols, 10,000 rules in the database",
        ticks,
        many,
    );
    println!("  alerts: {}", alert_lines(dir.path(), "many"));
    println!(
        "10,000 rules keep {:.0} % of the ticks/s of the 2 default rules (target: at least 70 %)",
        100.0 * defaults.as_secs_f64() / many.as_secs_f64()
    );

    let window_rules = dir.path().join("window-rules.json");
    std::fs::write(&window_rules, WINDOW_RULES).expect("write window rules");
    let windows = best_of(|| run_tickwatch(dir.path(), &input, None, Some(&window_rules)));
    report("tickwatch run, 50 symbols, 3 window rules", ticks, windows);
    println!(
        "  alerts: {} (target: at least 2,000,000 ticks/s; {:.0} % of the defaults' ticks/s)",
        alert_lines(dir.path(), "many"),
        100.0 * watched.as_secs_f64() / windows.as_secs_f64()
    );
}

/// The window rules of run 6, for every symbol in place of the defaults.
const WINDOW_RULES: &str = r#"[
  {"id":"rise-20","symbols":"*","condition":"rise 20% within 1h","fire":"enter"},
  {"id":"volume-3x","symbols":"*","condition":"volume 3x over 15m","fire":"enter"},
  {"id":"ma-1h","symbols":"*","condition":"crosses_ma 1h","fire":"every","cooldown_seconds":600}
]"#;

/// 10,000 rules over the walk's 5,000 symbols: the two defaults (`*`), an exact pair (above and
/// below, on entering) for most symbols, and one-symbol prefix rules (`SYM004321*`) for the rest,
/// firing `every` tick with a cooldown; so a symbol has about four rules of its own to evaluate
/// among ten thousand that do not apply to it. Their thresholds lie well beyond the defaults'
/// (175 to 225, 21 to 35), so that the two runs store alerts of the same order (both counts are
/// printed): the comparison is of matching and evaluating rules, not of storing more alerts.
fn write_many_rules(path: &Path) {
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    let walk = RandomWalk::new(MANY_RULES_SYMBOLS, 1, start);
    let symbols: Vec<String> = walk
        .take(MANY_RULES_SYMBOLS * 20)
        .map(|generated| generated.tick.symbol.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rules = vec![
        serde_json::json!({"id": "high", "symbols": "*", "condition": "above 150"}),
        serde_json::json!({"id": "low", "symbols": "*", "condition": "below 50"}),
    ];
    let mut i = 0;
    while rules.len() < MANY_RULES {
        let symbol = &symbols[i % symbols.len()];
        if i < 3_999 {
            rules.push(serde_json::json!({
                "id": format!("x{i}.up"), "symbols": symbol,
                "condition": format!("above {}", 175 + i % 50),
            }));
            rules.push(serde_json::json!({
                "id": format!("x{i}.down"), "symbols": symbol,
                "condition": format!("below {}", 35 - i % 15),
            }));
        } else {
            rules.push(serde_json::json!({
                "id": format!("p{i}"), "symbols": format!("{symbol}*"),
                "condition": format!("above {}", 185 + i % 40), "fire": "every",
                "cooldown_seconds": 60,
            }));
        }
        i += 1;
    }
    rules.truncate(MANY_RULES);
    std::fs::write(path, serde_json::to_vec(&rules).expect("rules serialize"))
        .expect("write rules");
}

fn write_ticks(path: &Path, ticks: u64, symbols: usize) {
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let mut line = Vec::with_capacity(160);
    for tick in RandomWalk::new(symbols, 1, start).take(ticks as usize) {
        line.clear();
        tick.write_ndjson(&mut line);
        out.write_all(&line).expect("write input");
    }
    out.flush().expect("flush input");
}

fn bare_parse(path: &Path, ticks: u64) -> Duration {
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).expect("open input"));
    let mut line = Vec::with_capacity(256);
    let (mut count, mut checksum) = (0u64, 0.0f64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let tick: Bare<'_> = serde_json::from_slice(&line).expect("valid tick");
        checksum += tick.price + (tick.symbol.len() + tick.timestamp.len()) as f64;
        count += 1;
    }
    assert_eq!(count, ticks);
    std::hint::black_box(checksum);
    started.elapsed()
}

/// One `tickwatch run` into a fresh database: with `--mode` if given (the rules fixed for the
/// run), else the database's rules, watched; `rules` imported into the database first (not timed).
fn run_tickwatch(dir: &Path, input: &Path, mode: Option<&str>, rules: Option<&Path>) -> Duration {
    let name = mode.unwrap_or(if rules.is_some() { "many" } else { "db" });
    let db = dir.join(format!("bench-{name}.db"));
    let alerts = dir.join(format!("alerts-{name}.ndjson"));
    for stale in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
        alerts.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    if let Some(rules) = rules {
        let status = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
            .args(["rules", "import", "--replace", "--db"])
            .arg(&db)
            .arg(rules)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("tickwatch rules import runs");
        assert!(status.success(), "tickwatch rules import failed: {status}");
    }
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickwatch"));
    command
        .arg("run")
        .arg("--input")
        .arg(input)
        .arg("--db")
        .arg(&db);
    if let Some(mode) = mode {
        command.arg("--mode").arg(mode);
    }
    let status = command
        .arg("--notify")
        .arg(format!("file:{}", alerts.display()))
        .arg("--quiet")
        .status()
        .expect("tickwatch runs");
    let elapsed = started.elapsed();
    assert!(status.success(), "tickwatch run failed: {status}");
    elapsed
}

/// Alerts the last run named `name` announced into its file.
fn alert_lines(dir: &Path, name: &str) -> usize {
    let text = std::fs::read(dir.join(format!("alerts-{name}.ndjson"))).unwrap_or_default();
    text.iter().filter(|&&b| b == b'\n').count()
}

fn best_of(mut measure: impl FnMut() -> Duration) -> Duration {
    (0..REPEATS)
        .map(|_| measure())
        .min()
        .expect("at least one repeat")
}

fn report(what: &str, ticks: u64, elapsed: Duration) {
    println!(
        "{what:<45} {:>8.3} s  {:>12.0} ticks/s  (best of {REPEATS})",
        elapsed.as_secs_f64(),
        ticks as f64 / elapsed.as_secs_f64()
    );
}
