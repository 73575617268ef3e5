//! End-to-end throughput of `tickwatch run`, next to a bare serde_json parse of the same file.
//!
//! `cargo bench -p tickwatch --bench run_e2e` generates 1,000,000 ticks (50 symbols, seed 1) into a
//! temporary file, then times, three times each on the same file:
//! 1. a bare parse: read the file line by line and `serde_json::from_slice` each line into a
//!    struct of borrowed fields (no validation, no rules, no storage);
//! 2. `tickwatch run --notify file:...` into a fresh SQLite database (cross mode, the default), as
//!    a user runs it, via the built binary;
//! 3. the same in level mode (every tick beyond a threshold alerts).
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
    write_ticks(&input, ticks);
    let bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!(
        "input: {ticks} ticks, {SYMBOLS} symbols, {:.1} MB",
        bytes as f64 / 1e6
    );

    let bare = best_of(|| bare_parse(&input, ticks));
    report("bare serde_json parse", ticks, bare);
    let cross = best_of(|| run_tickwatch(dir.path(), &input, "cross"));
    report("tickwatch run (cross, SQLite, file notify)", ticks, cross);
    let level = best_of(|| run_tickwatch(dir.path(), &input, "level"));
    report("tickwatch run (level, SQLite, file notify)", ticks, level);
    println!(
        "ratio run(cross) / bare parse: {:.2}x (target: at most 2x); run(level) / bare parse: {:.2}x",
        cross.as_secs_f64() / bare.as_secs_f64(),
        level.as_secs_f64() / bare.as_secs_f64()
    );
}

fn write_ticks(path: &Path, ticks: u64) {
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let mut line = Vec::with_capacity(160);
    for tick in RandomWalk::new(SYMBOLS, 1, start).take(ticks as usize) {
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

fn run_tickwatch(dir: &Path, input: &Path, mode: &str) -> Duration {
    let db = dir.join(format!("bench-{mode}.db"));
    let alerts = dir.join(format!("alerts-{mode}.ndjson"));
    for stale in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
        alerts.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .arg("run")
        .arg("--input")
        .arg(input)
        .arg("--db")
        .arg(&db)
        .arg("--mode")
        .arg(mode)
        .arg("--notify")
        .arg(format!("file:{}", alerts.display()))
        .arg("--quiet")
        .status()
        .expect("tickwatch runs");
    let elapsed = started.elapsed();
    assert!(status.success(), "tickwatch run failed: {status}");
    elapsed
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
