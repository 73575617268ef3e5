//! Engine throughput on one core: decoding, rule evaluation and the whole batch pipeline over the
//! in-memory ports. Run with `cargo bench -p tickwatch-core --bench engine`; see BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickwatch_core::generate::RandomWalk;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{SymbolState, evaluate};
use tickwatch_core::testing::{
    ManualClock, MemoryNotifier, MemoryStore, block_on_ready, spec_config,
};
use tickwatch_core::{Mode, Pipeline, Rule, Symbol, Tick, Timestamp};

const TICKS: usize = 100_000;
const SYMBOLS: usize = 50;
const BATCH_TICKS: usize = 8_192;

fn lines() -> Vec<Vec<u8>> {
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    RandomWalk::new(SYMBOLS, 42, start)
        .take(TICKS)
        .map(|g| {
            let mut line = Vec::new();
            g.write_ndjson(&mut line);
            line.pop();
            line
        })
        .collect()
}

fn engine(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(TICKS as u64));
    group.sample_size(20);

    group.bench_function("serde_json_struct_parse", |b| {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Bare<'a> {
            symbol: &'a str,
            price: f64,
            timestamp: &'a str,
        }
        b.iter(|| {
            for line in &lines {
                black_box(serde_json::from_slice::<Bare<'_>>(line).expect("valid"));
            }
        })
    });

    group.bench_function("decode", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(Tick::decode(line).expect("valid"));
            }
        })
    });

    let rule = Rule::new(150.0, 50.0, 0.0, Mode::Cross).expect("valid");
    group.bench_function("decode_and_evaluate_cross", |b| {
        b.iter(|| {
            let mut states: std::collections::HashMap<Symbol, SymbolState> = Default::default();
            let mut alerts = 0u64;
            for line in &lines {
                let tick = Tick::decode(line).expect("valid");
                let prior = states.get(&tick.symbol).copied();
                let (verdict, next) = evaluate(&rule, prior, &tick);
                if let Some(next) = next {
                    states.insert(tick.symbol, next);
                }
                alerts += u64::from(matches!(verdict, tickwatch_core::rules::Verdict::Alert(_)));
            }
            black_box(alerts)
        })
    });

    for mode in [Mode::Cross, Mode::Level] {
        group.bench_function(format!("pipeline_memory_{mode}"), |b| {
            b.iter(|| {
                let config = spec_config(mode, RetryPolicy::no_retry(), 0);
                let now = Timestamp::parse_rfc3339("2026-11-26T00:00:00Z").expect("valid");
                let pipeline = Pipeline::new(
                    config,
                    MemoryStore::new(),
                    MemoryNotifier::new(),
                    ManualClock::at(now),
                );
                for chunk in lines.chunks(BATCH_TICKS) {
                    let batch: Vec<(usize, &[u8])> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (i, l.as_slice()))
                        .collect();
                    black_box(block_on_ready(pipeline.process(batch, None)).stats);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
