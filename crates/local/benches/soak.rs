//! Soak of the local mode, as a user runs it: `tickwatch generate` writes the ticks, then
//! `tickwatch run` (the release binary) reads them from stdin while this program feeds them and
//! samples the process's memory after every [`SAMPLE_EVERY_TICKS`] ticks, so memory is seen
//! against ticks processed, not against time.
//!
//! Scenarios (each in a fresh temporary directory and database):
//! * `10m-ticks`: 10,000,000 ticks over 50 symbols, cross mode (the default);
//! * `10m-ticks-level`: the same in level mode (every tick beyond a threshold alerts), so the
//!   database outgrows SQLite's page cache;
//! * `1m-symbols`: 5,000,000 ticks over 1,000,000 distinct symbols, cross mode, so the state
//!   table holds a million rows.
//!
//! After the fed run, scenarios that are quick enough are timed once more reading the file
//! directly (`tickwatch run --input FILE`, a fresh database): the throughput without the feeding.
//!
//! ```sh
//! cargo build --release -p tickwatch
//! cargo bench -p tickwatch-local --bench soak                # both scenarios
//! cargo bench -p tickwatch-local --bench soak -- 1m-symbols  # one
//! ```
//! The binary is found next to this benchmark's own (`target/release/tickwatch`) or through
//! `TICKWATCH_BIN`. `TICKWATCH_SOAK_SCALE` divides every tick and symbol count (e.g. 100 for a
//! quick look). Memory: `VmRSS` split into `RssAnon` (heap: what the program holds) and `RssFile`
//! (SQLite's memory-mapped database file, bounded by its `mmap_size`), and `VmHWM` (the peak).
//! The run ends with a verdict on growth: from the first tenth of the ticks to the end, the heap
//! may grow by what SQLite's page cache takes (as much of the database as fits in its 64 MiB,
//! `CACHE_KIB` in `tickwatch-local`) and [`GROWTH_SLACK_KIB`] more; beyond that it would be state
//! that grows with the ticks.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tickwatch_local::testing::ProcessMemory;

/// Ticks between two memory samples.
const SAMPLE_EVERY_TICKS: u64 = 1_000_000;

/// SQLite's page cache of the `tickwatch run` connection, in KiB (`CACHE_KIB` in the SQLite
/// store): it fills with database pages as the database grows, then stays at this size.
const SQLITE_CACHE_KIB: u64 = 64 * 1024;

/// Heap growth beyond the page cache's that still counts as flat, in KiB.
const GROWTH_SLACK_KIB: u64 = 16 * 1024;

/// Longest a scenario may run.
const SCENARIO_TIME_MAX: Duration = Duration::from_secs(900);

struct Scenario {
    name: &'static str,
    ticks: u64,
    symbols: u64,
    mode: &'static str,
    /// Whether to time a second run reading the file directly.
    direct: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "10m-ticks",
        ticks: 10_000_000,
        symbols: 50,
        mode: "cross",
        direct: true,
    },
    Scenario {
        name: "10m-ticks-level",
        ticks: 10_000_000,
        symbols: 50,
        mode: "level",
        direct: true,
    },
    Scenario {
        name: "1m-symbols",
        ticks: 5_000_000,
        symbols: 1_000_000,
        mode: "cross",
        direct: false,
    },
];

/// One reading of the `tickwatch` process's memory.
fn memory(pid: u32) -> Option<ProcessMemory> {
    ProcessMemory::read(Some(pid))
}

fn tickwatch_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TICKWATCH_BIN") {
        return PathBuf::from(path);
    }
    // target/release/deps/soak-HASH -> target/release/tickwatch
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("tickwatch")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "no tickwatch binary beside this benchmark: run `cargo build --release -p tickwatch` first, or set TICKWATCH_BIN"
        ),
    }
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`, in a debug build:
    // a soak of millions of ticks is not a test, so say so and stop.
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: a benchmark; run it with cargo bench -p tickwatch-local --bench soak");
        return;
    }
    // `cargo bench` passes `--bench`; other arguments name scenarios.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let scale: u64 = std::env::var("TICKWATCH_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or(1);
    let binary = tickwatch_binary();
    println!("binary: {}", binary.display());
    let mut all_flat = true;
    for scenario in SCENARIOS
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name))
    {
        all_flat &= soak(&binary, scenario, scale);
    }
    if !all_flat {
        eprintln!("soak: memory grew with the number of ticks");
        std::process::exit(1);
    }
}

/// Runs one scenario; returns whether the heap stayed flat.
fn soak(binary: &Path, scenario: &Scenario, scale: u64) -> bool {
    let ticks = scenario.ticks / scale;
    let symbols = (scenario.symbols / scale).max(1);
    let sample_every = (SAMPLE_EVERY_TICKS / scale).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("ticks.ndjson");
    let db = dir.path().join("soak.db");
    let alerts = dir.path().join("alerts.ndjson");
    println!(
        "\n== {}: {ticks} ticks, {symbols} symbols, {} mode",
        scenario.name, scenario.mode
    );

    let generate = format!(
        "tickwatch generate --symbols {symbols} --ticks {ticks} --seed 7 --output {}",
        input.display()
    );
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["generate", "--symbols", &symbols.to_string()])
        .args(["--ticks", &ticks.to_string(), "--seed", "7", "--output"])
        .arg(&input)
        .status()
        .expect("tickwatch generate runs");
    assert!(status.success(), "{generate}: {status}");
    let generated = started.elapsed();
    let bytes = std::fs::metadata(&input).map_or(0, |m| m.len());
    println!(
        "$ {generate}\n  {:.1} s, {:.0} MB, {:.0} ticks/s",
        generated.as_secs_f64(),
        bytes as f64 / 1e6,
        ticks as f64 / generated.as_secs_f64()
    );

    let run = format!(
        "tickwatch run --input - --db {} --mode {} --notify file:{} --quiet < {}",
        db.display(),
        scenario.mode,
        alerts.display(),
        input.display()
    );
    println!("$ {run}");
    let mut child = Command::new(binary)
        .args(["run", "--input", "-", "--db"])
        .arg(&db)
        .args(["--mode", scenario.mode, "--notify"])
        .arg(format!("file:{}", alerts.display()))
        .arg("--quiet")
        .stdin(Stdio::piped())
        .spawn()
        .expect("tickwatch run starts");
    let pid = child.id();
    // Buffered: a write per line would cost the feeder more than the reader. What is fed but
    // not yet read is at most this buffer and the pipe's 64 KiB, a few thousand ticks.
    let mut stdin =
        std::io::BufWriter::with_capacity(64 * 1024, child.stdin.take().expect("stdin piped"));
    let mut reader = BufReader::with_capacity(1 << 20, File::open(&input).expect("input"));
    let mut line = Vec::with_capacity(256);
    let mut fed = 0u64;
    let mut samples: Vec<(u64, ProcessMemory, Duration)> = Vec::new();
    let started = Instant::now();
    println!(
        "  {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "ticks fed", "RSS MiB", "heap MiB", "file MiB", "peak MiB", "s"
    );
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read input") == 0 {
            break;
        }
        stdin.write_all(&line).expect("tickwatch reads its input");
        fed += 1;
        if fed.is_multiple_of(sample_every) {
            // The pipe holds at most 64 KiB and the reader one batch: what was fed is what was
            // processed, to within a batch of 8,192 ticks.
            let m = memory(pid).expect("the process is running");
            let at = started.elapsed();
            println!(
                "  {fed:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.1}",
                m.rss_kib as f64 / 1024.0,
                m.anon_kib as f64 / 1024.0,
                m.file_kib as f64 / 1024.0,
                m.peak_kib as f64 / 1024.0,
                at.as_secs_f64()
            );
            samples.push((fed, m, at));
            assert!(at < SCENARIO_TIME_MAX, "{}: too slow", scenario.name);
        }
    }
    stdin.flush().expect("tickwatch reads its input");
    drop(stdin);
    // The last batch is being stored: keep reading the peak until the process ends.
    let mut last = samples.last().map(|s| s.1).unwrap_or_default();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Some(m) = memory(pid) {
            last = m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    assert!(status.success(), "{run}: {status}");
    let alert_count = BufReader::new(File::open(&alerts).expect("alerts file"))
        .lines()
        .count();
    let db_bytes: u64 = ["soak.db", "soak.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "  done: {:.1} s, {:.0} ticks/s, {alert_count} alerts, database {:.0} MB, peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        ticks as f64 / elapsed.as_secs_f64(),
        db_bytes as f64 / 1e6,
        last.peak_kib as f64 / 1024.0
    );

    // Flat: from the first tenth (warm-up: the first batches' buffers) to the end, the heap may
    // grow by what the page cache takes, and the slack.
    let warm = samples
        .iter()
        .find(|(fed, _, _)| *fed >= ticks / 10)
        .map(|s| s.1)
        .unwrap_or(last);
    let end = samples.last().map(|s| s.1).unwrap_or(last);
    let growth = end.anon_kib.saturating_sub(warm.anon_kib);
    let cache = (db_bytes / 1024).min(SQLITE_CACHE_KIB);
    let flat = growth <= cache + GROWTH_SLACK_KIB;
    println!(
        "  heap after {}: {:.1} MiB; at the end: {:.1} MiB; growth {:.1} MiB, page cache at most {:.1} MiB ({})",
        ticks / 10,
        warm.anon_kib as f64 / 1024.0,
        end.anon_kib as f64 / 1024.0,
        growth as f64 / 1024.0,
        cache as f64 / 1024.0,
        if flat { "flat" } else { "GROWS" }
    );

    if scenario.direct {
        let direct_db = dir.path().join("direct.db");
        let direct_alerts = dir.path().join("direct-alerts.ndjson");
        println!(
            "$ tickwatch run --input {} --db {} --mode {} --notify file:{} --quiet",
            input.display(),
            direct_db.display(),
            scenario.mode,
            direct_alerts.display()
        );
        let started = Instant::now();
        let status = Command::new(binary)
            .args(["run", "--input"])
            .arg(&input)
            .arg("--db")
            .arg(&direct_db)
            .args(["--mode", scenario.mode, "--notify"])
            .arg(format!("file:{}", direct_alerts.display()))
            .arg("--quiet")
            .status()
            .expect("tickwatch run runs");
        let elapsed = started.elapsed();
        assert!(status.success(), "direct run: {status}");
        println!(
            "  {:.1} s, {:.0} ticks/s",
            elapsed.as_secs_f64(),
            ticks as f64 / elapsed.as_secs_f64()
        );
    }
    flat
}
