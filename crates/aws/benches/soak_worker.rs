//! Soak of the SQS worker against the moto emulator: rounds of generated ticks are sent to a
//! queue and drained by the worker (`worker::run`, the loop `tickwatch sqs-worker` runs) into
//! DynamoDB, SNS and a dead-letter queue, all in moto. After every round it
//! prints the round's throughput and this process's memory, so memory is seen against the
//! number of ticks processed.
//!
//! ```sh
//! scripts/setup-test-env     # moto, once
//! TICKWATCH_MOTO_SERVER=$PWD/.venv/moto/bin/tickwatch-moto cargo bench -p tickwatch-aws --bench soak_worker
//! ```
//! Bounded by count and time: `TICKWATCH_SOAK_TICKS` (default 20,000) in rounds of
//! `TICKWATCH_SOAK_ROUND` (2,000), over `TICKWATCH_SOAK_SYMBOLS` (200) symbols, with
//! `TICKWATCH_SOAK_WORKERS` (2) workers polling side by side; it stops after
//! [`SOAK_TIME_MAX`] whatever the count. Throughput is bounded by moto (one Python process,
//! several calls per batch), not by tickwatch: the figure is the emulator's, the memory curve is
//! tickwatch's.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures_util::stream::{self, StreamExt};
use tickwatch_aws::testing::{Moto, create_queue, create_topic, fresh_store, unique_name};
use tickwatch_aws::{
    AwsClients, RunUntil, SnsNotifier, SqsDeadLetterQueue, WorkerOptions, WorkerReport,
};
use tickwatch_clock::SystemClock;
use tickwatch_core::generate::RandomWalk;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::testing::spec_config;
use tickwatch_core::{Mode, Pipeline, Timestamp};
use tickwatch_local::testing::ProcessMemory;

/// Longest a soak runs, whatever the tick count.
const SOAK_TIME_MAX: Duration = Duration::from_secs(1_200);

/// `SendMessageBatch` calls in flight while a round is sent.
const SENDS_IN_FLIGHT: usize = 8;

/// Heap growth from the second round to the last that still counts as flat, in KiB.
const FLAT_GROWTH_KIB_MAX: u64 = 16 * 1024;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v >= 1)
        .unwrap_or(default)
}

/// (VmRSS, RssAnon, VmHWM) of this process, in KiB (zeros where `/proc` cannot tell).
fn memory() -> (u64, u64, u64) {
    let m = ProcessMemory::read(None).unwrap_or_default();
    (m.rss_kib, m.anon_kib, m.peak_kib)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: a soak is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "soak_worker: a benchmark; run it with cargo bench -p tickwatch-aws --bench soak_worker"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let flat = runtime.block_on(soak());
    if !flat {
        eprintln!("soak: the worker's memory grew with the number of ticks");
        std::process::exit(1);
    }
}

async fn soak() -> bool {
    let ticks = setting("TICKWATCH_SOAK_TICKS", 20_000);
    let round_ticks = setting("TICKWATCH_SOAK_ROUND", 2_000).min(ticks);
    let symbols = setting("TICKWATCH_SOAK_SYMBOLS", 200) as usize;
    let workers = setting("TICKWATCH_SOAK_WORKERS", 2) as usize;

    let moto = Moto::start();
    let clients: AwsClients = moto.clients().await;
    let store = fresh_store(&clients.dynamodb).await;
    // No subscriber: a subscribed queue would fill up and slow moto down round after round
    // (SQS allows one PurgeQueue a minute), which would measure moto, not the worker.
    let topic = create_topic(&clients.sns, &unique_name("alerts")).await;
    let queue = create_queue(&clients.sqs, &unique_name("ticks"), &[]).await;
    let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
    let pipeline = Pipeline::new(
        spec_config(
            Mode::Cross,
            RetryPolicy::new(4, 50, 1_000).expect("valid"),
            1,
        ),
        store,
        SnsNotifier::new(clients.sns.clone(), &topic),
        SystemClock,
    );
    let dead_letters = SqsDeadLetterQueue::new(clients.sqs.clone(), &dlq);
    let options = WorkerOptions {
        queue_url: queue.clone(),
        // An empty receive ends a worker at once: the round's time is the work's.
        wait_time_s: 0,
        messages_per_receive: 10,
        visibility_timeout_s: 30,
        run_until: RunUntil::QueueEmpty,
        metrics_service: None,
    };

    println!(
        "soak: {ticks} ticks in rounds of {round_ticks}, {symbols} symbols, {workers} workers, cross mode"
    );
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9}",
        "round", "ticks", "s", "ticks/s", "alerts", "batches", "RSS MiB", "heap MiB", "peak MiB"
    );
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    let mut walk = RandomWalk::new(symbols, 1, start);
    let started = Instant::now();
    let (mut done, mut busy, mut round) = (0u64, Duration::ZERO, 0u64);
    let mut heaps: Vec<u64> = Vec::new();
    let mut totals = WorkerReport::default();
    while done < ticks && started.elapsed() < SOAK_TIME_MAX {
        round += 1;
        let count = round_ticks.min(ticks - done);
        let bodies: Vec<String> = (&mut walk)
            .take(count as usize)
            .map(|t| {
                let mut line = Vec::with_capacity(128);
                t.write_ndjson(&mut line);
                String::from_utf8_lossy(line.trim_ascii_end()).into_owned()
            })
            .collect();
        send(&clients.sqs, &queue, &bodies).await;

        let round_started = Instant::now();
        let mut round_report = WorkerReport::default();
        // Workers side by side until the queue is empty (a worker stops at its first empty
        // receive, which may come while another holds the last messages).
        while round_report.deleted < count {
            let runs = (0..workers).map(|_| {
                tickwatch_aws::worker::run(
                    &clients.sqs,
                    &options,
                    &pipeline,
                    &dead_letters,
                    &tickwatch_aws::FixedRules,
                    std::future::pending(),
                )
            });
            for report in futures_util::future::join_all(runs).await {
                let report = report.expect("the worker runs");
                round_report.batches += report.batches;
                round_report.received += report.received;
                round_report.deleted += report.deleted;
                round_report.left_for_redelivery += report.left_for_redelivery;
                round_report.stats.add(&report.stats);
            }
            assert!(
                started.elapsed() < SOAK_TIME_MAX,
                "round {round} did not drain"
            );
        }
        let elapsed = round_started.elapsed();
        busy += elapsed;
        done += count;
        assert_eq!(
            round_report.left_for_redelivery, 0,
            "nothing fails against a healthy emulator"
        );
        totals.batches += round_report.batches;
        totals.stats.add(&round_report.stats);
        let (rss, anon, peak) = memory();
        heaps.push(anon);
        println!(
            "{round:>6} {done:>9} {:>8.1} {:>9.0} {:>7} {:>8} {:>9.1} {:>9.1} {:>9.1}",
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            round_report.stats.alerts,
            round_report.batches,
            mib(rss),
            mib(anon),
            mib(peak)
        );
    }
    let (_, _, peak) = memory();
    println!(
        "total: {done} ticks, {} batches, {} alerts, {:.1} s of draining, {:.0} ticks/s, peak RSS {:.1} MiB",
        totals.batches,
        totals.stats.alerts,
        busy.as_secs_f64(),
        done as f64 / busy.as_secs_f64(),
        mib(peak)
    );
    // Flat: the heap after the last round against the heap after the second (the first warms
    // up connection pools and buffers).
    let warm = heaps.get(1).or(heaps.first()).copied().unwrap_or(0);
    let end = heaps.last().copied().unwrap_or(0);
    let growth = end.saturating_sub(warm);
    let flat = growth <= FLAT_GROWTH_KIB_MAX;
    println!(
        "heap after round 2: {:.1} MiB; after round {round}: {:.1} MiB; growth {:.1} MiB ({})",
        mib(warm),
        mib(end),
        mib(growth),
        if flat { "flat" } else { "GROWS" }
    );
    flat
}

/// Sends `bodies` with `SendMessageBatch`, 10 a call, a few calls at a time.
async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, bodies: &[String]) {
    let calls = bodies.chunks(10).map(|chunk| {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("entry")
            })
            .collect();
        async move {
            let sent = sqs
                .send_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("SendMessageBatch");
            assert!(sent.failed().is_empty(), "{:?}", sent.failed());
        }
    });
    stream::iter(calls)
        .buffer_unordered(SENDS_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}
