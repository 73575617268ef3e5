//! What the board costs `tickwatch run` (issue 14): the same ticks through three runs, each fed
//! through its stdin pipe from this process:
//! 1. `--no-board`: nothing written for the board;
//! 2. the default: the run writes its board (symbols, newest alerts, counts) into the database;
//! 3. `--serve 127.0.0.1:0` with 50 pages connected to the event stream for the whole run (each
//!    a client reading every event, as a browser's EventSource does), connected before the first
//!    tick is written.
//!
//! Each is timed from the first byte written to the run's summary line (so starting the process
//! and the server, and the clients connecting, are not counted), five times each, interleaved,
//! best of five, in cross and in level mode (a quarter of the ticks alert: the event stream's
//! heaviest load). The peak memory of each run (VmHWM) is read from /proc before it ends. The
//! issue's target: with 50 clients, at least 95 % of the throughput of the run without a server.
//!
//! `cargo bench -p tickwatch --bench board` (build nothing first: cargo builds the binary).
//! `TICKWATCH_BENCH_TICKS` changes the tick count (1,000,000). `cargo test --all-targets` runs one
//! quick pass over a few thousand ticks, so the bench cannot rot, and reports nothing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tickwatch_local::testing::ProcessMemory;

const TICKS_DEFAULT: u64 = 1_000_000;
/// Ticks of the quick pass made under `cargo test`.
const TICKS_SMOKE: u64 = 3_000;
const SYMBOLS: &str = "50";
const CLIENTS: usize = 50;
const REPEATS: usize = 5;
/// Bound on any wait for the run (a hang, not a measurement).
const HANG_S: u64 = 300;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    NoBoard,
    Board,
    Served,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::NoBoard => "--no-board",
            Variant::Board => "board written (default)",
            Variant::Served => "--serve, 50 pages connected",
        }
    }
}

struct Measured {
    elapsed: Duration,
    peak_kib: u64,
    event_bytes: u64,
}

fn main() {
    let (benchmarking, ticks) = support::ticks(TICKS_DEFAULT, TICKS_SMOKE);
    let repeats = if benchmarking { REPEATS } else { 1 };
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("ticks.ndjson");
    let generated = Command::new(env!("CARGO_BIN_EXE_tickwatch"))
        .args([
            "generate",
            "--ticks",
            &ticks.to_string(),
            "--symbols",
            SYMBOLS,
        ])
        .args(["--seed", "1", "--output"])
        .arg(&input)
        .status()
        .expect("tickwatch generate runs");
    assert!(generated.success());
    let bytes = std::fs::read(&input).expect("read the ticks");
    println!(
        "input: {ticks} ticks, {SYMBOLS} symbols, {:.1} MB",
        bytes.len() as f64 / 1e6
    );

    for mode in ["cross", "level"] {
        let variants = [Variant::NoBoard, Variant::Board, Variant::Served];
        let mut best: Vec<Option<Measured>> = variants.iter().map(|_| None).collect();
        for _ in 0..repeats {
            for (slot, variant) in best.iter_mut().zip(variants) {
                let measured = feed(dir.path(), &bytes, mode, variant);
                if slot.as_ref().is_none_or(|b| measured.elapsed < b.elapsed) {
                    *slot = Some(measured);
                }
            }
        }
        let best: Vec<Measured> = best.into_iter().map(|m| m.expect("measured")).collect();
        for (variant, measured) in variants.iter().zip(&best) {
            println!(
                "{mode:<5} {:<28} {:>7.3} s  {:>10.0} ticks/s  peak {:>7.1} MB{}",
                variant.name(),
                measured.elapsed.as_secs_f64(),
                ticks as f64 / measured.elapsed.as_secs_f64(),
                measured.peak_kib as f64 / 1024.0,
                if *variant == Variant::Served {
                    format!(
                        "  ({:.1} MB of events to the pages)",
                        measured.event_bytes as f64 / 1e6
                    )
                } else {
                    String::new()
                }
            );
        }
        let keep = |of: &Measured, against: &Measured| {
            100.0 * against.elapsed.as_secs_f64() / of.elapsed.as_secs_f64()
        };
        println!(
            "{mode:<5} with 50 pages: {:.1} % of the ticks/s without a server (target: at least 95 %); the board written: {:.1} % of --no-board",
            keep(&best[2], &best[1]),
            keep(&best[1], &best[0]),
        );
    }
}

/// One run fed `bytes` on its stdin.
fn feed(dir: &Path, bytes: &[u8], mode: &str, variant: Variant) -> Measured {
    let db = dir.join(format!("bench-{mode}.db"));
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", db.display()));
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickwatch"));
    command
        .args(["run", "--input", "-", "--mode", mode, "--db"])
        .arg(&db)
        .arg("--notify")
        .arg(format!("file:{}", dir.join("alerts.ndjson").display()));
    match variant {
        Variant::NoBoard => {
            command.arg("--no-board");
        }
        Variant::Board => {}
        Variant::Served => {
            command.args(["--serve", "127.0.0.1:0"]);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("TICKWATCH_TOKEN")
        .spawn()
        .expect("tickwatch starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines, said) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let pid = child.id().to_string();
    let wait_for = |prefix: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(HANG_S);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = said.recv_timeout(left).unwrap_or_else(|_| {
                // Ended, so that the feeder (blocked on a full pipe, perhaps) ends too.
                let _ = Command::new("kill").args(["-9", &pid]).status();
                panic!("tickwatch never said {prefix:?}")
            });
            if line.contains(prefix) {
                return line;
            }
        }
    };
    let pages = (variant == Variant::Served).then(|| {
        let line = wait_for(" is at http://");
        let url = line
            .split(" is at ")
            .nth(1)
            .expect("the address")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        Pages::connect(&url, CLIENTS)
    });

    let mut stdin = child.stdin.take().expect("piped");
    let started = Instant::now();
    let writer = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            stdin.write_all(bytes).expect("feed the run");
        });
        wait_for("tickwatch run: ");
        writer.join()
    });
    let elapsed = started.elapsed();
    writer.expect("the feeder finished");
    // The peak so far (VmHWM): the run has printed its summary and is still alive.
    let peak_kib = ProcessMemory::read(Some(child.id())).map_or(0, |memory| memory.peak_kib);
    if pages.is_some() {
        // Ctrl-C ends the board, which ends every event stream.
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
    let deadline = Instant::now() + Duration::from_secs(HANG_S);
    let status = loop {
        if let Some(status) = child.try_wait().expect("tickwatch is waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tickwatch run did not end within {HANG_S} s (of Ctrl-C, for a served run)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "tickwatch run failed: {status}");
    let event_bytes = pages.map_or(0, Pages::finish);
    Measured {
        elapsed,
        peak_kib,
        event_bytes,
    }
}

/// Pages connected to the event stream, each reading everything sent to it.
struct Pages {
    thread: std::thread::JoinHandle<()>,
    received: Arc<AtomicU64>,
}

impl Pages {
    /// Connects `count` pages and returns once the server counts them all.
    fn connect(url: &str, count: usize) -> Pages {
        let received = Arc::new(AtomicU64::new(0));
        let (ready, connected) = mpsc::channel();
        let url = url.to_owned();
        let thread = std::thread::spawn({
            let received = received.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let http = reqwest::Client::new();
                    let mut readers = Vec::new();
                    for _ in 0..count {
                        let response = http
                            .get(format!("{url}/api/events"))
                            .send()
                            .await
                            .expect("the event stream answers");
                        assert!(response.status().is_success());
                        let received = received.clone();
                        readers.push(tokio::spawn(async move {
                            let mut response = response;
                            while let Ok(Some(chunk)) = response.chunk().await {
                                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                        }));
                    }
                    loop {
                        let health: serde_json::Value = http
                            .get(format!("{url}/api/health"))
                            .send()
                            .await
                            .expect("health answers")
                            .json()
                            .await
                            .expect("JSON");
                        if health["clients"].as_u64() == Some(count as u64) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let _ = ready.send(());
                    for reader in readers {
                        let _ = reader.await;
                    }
                });
            }
        });
        connected
            .recv_timeout(Duration::from_secs(HANG_S))
            .expect("the pages connect");
        Pages { thread, received }
    }

    /// Waits for every stream to end; the bytes the pages received.
    fn finish(self) -> u64 {
        self.thread.join().expect("the pages' thread");
        self.received.load(Ordering::Relaxed)
    }
}
