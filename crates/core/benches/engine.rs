//! Engine throughput on one core: decoding, rule evaluation and the whole batch pipeline over the
//! in-memory ports, with the two default rules and with 10,000 rules over 5,000 symbols (issue 11).
//! Run with `cargo bench -p tickwatch-core --bench engine`; see BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickwatch_core::generate::RandomWalk;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Cursor, SymbolRules, SymbolState};
use tickwatch_core::testing::{
    ManualClock, MemoryNotifier, MemoryStore, block_on_ready, rule_mix, spec_config, spec_rules,
};
use tickwatch_core::{
    BatchStats, Mode, Pipeline, PipelineConfig, RuleBook, Symbol, Tick, Timestamp,
};

const TICKS: usize = 100_000;
const SYMBOLS: usize = 50;
const BATCH_TICKS: usize = 8_192;

/// Issue 11's scale: this many rules over this many symbols.
const MANY_RULES: usize = 10_000;
const MANY_RULES_SYMBOLS: usize = 5_000;

/// `TICKS` generated ticks over `symbols` symbols, as NDJSON lines without their newline.
fn lines(symbols: usize) -> Vec<Vec<u8>> {
    let start = Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid");
    RandomWalk::new(symbols, 42, start)
        .take(TICKS)
        .map(|g| {
            let mut line = Vec::new();
            g.write_ndjson(&mut line);
            line.pop();
            line
        })
        .collect()
}

/// `lines` with their `"volume":N` field taken out.
fn without_volume(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|line| {
            let text = std::str::from_utf8(line).expect("generated ticks are UTF-8");
            let start = text
                .find(r#","volume":"#)
                .expect("generated ticks carry a volume");
            let end = start + 1 + text[start + 1..].find(',').expect("a field follows volume");
            format!("{}{}", &text[..start], &text[end..]).into_bytes()
        })
        .collect()
}

/// Every line through a fresh pipeline over the in-memory ports, in batches of `BATCH_TICKS`.
fn run_pipeline(config: PipelineConfig, lines: &[Vec<u8>]) -> BatchStats {
    let now = Timestamp::parse_rfc3339("2026-11-26T00:00:00Z").expect("valid");
    let pipeline = Pipeline::new(
        config,
        MemoryStore::new(),
        MemoryNotifier::new(),
        ManualClock::at(now),
    );
    let mut stats = BatchStats::default();
    for chunk in lines.chunks(BATCH_TICKS) {
        let batch: Vec<(usize, &[u8])> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.as_slice()))
            .collect();
        stats.add(&block_on_ready(pipeline.process(batch, None)).stats);
    }
    stats
}

fn engine(c: &mut Criterion) {
    let lines = lines(SYMBOLS);
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

    // The same ticks without their `volume` field, the shape of producers that send none: reading
    // the volume must not slow them down.
    let lines_without_volume = without_volume(&lines);
    group.bench_function("decode_without_volume", |b| {
        b.iter(|| {
            for line in &lines_without_volume {
                black_box(Tick::decode(line).expect("valid"));
            }
        })
    });

    // The two rules of the cross-mode band, each tick evaluated from its symbol's state (as the
    // pipeline does, with each symbol's rules looked up once).
    let book = spec_rules(Mode::Cross);
    group.bench_function("decode_and_evaluate_cross", |b| {
        b.iter(|| {
            let mut states: HashMap<Symbol, (Arc<SymbolRules>, Option<SymbolState>)> =
                HashMap::new();
            let mut alerts = 0u64;
            for line in &lines {
                let tick = Tick::decode(line).expect("valid");
                let (rules, state) = states
                    .entry(tick.symbol)
                    .or_insert_with(|| (book.for_symbol(&tick.symbol), None));
                let mut cursor = Cursor::new(rules, state.as_ref());
                alerts += cursor.step(&tick).fired.len() as u64;
                if let Some(next) = cursor.finish() {
                    *state = Some(next);
                }
            }
            black_box(alerts)
        })
    });

    for mode in [Mode::Cross, Mode::Level] {
        group.bench_function(format!("pipeline_memory_{mode}"), |b| {
            b.iter(|| {
                let config = spec_config(mode, RetryPolicy::no_retry(), 0);
                black_box(run_pipeline(config, &lines))
            })
        });
    }
    group.finish();
}

/// Issue 11's target: the whole pipeline over the same ticks (5,000 symbols) with the two default
/// rules and with 10,000 rules (exact, prefix and `*` mixed: `testing::rule_mix`). The ratio of
/// the two is the price of many rules; the target is at least 70 %.
fn rules(c: &mut Criterion) {
    let lines = lines(MANY_RULES_SYMBOLS);
    let mut symbols: Vec<Symbol> = lines
        .iter()
        .map(|line| Tick::decode(line).expect("valid").symbol)
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let books = [
        ("defaults", Arc::new(RuleBook::defaults())),
        (
            "10k_over_5k_symbols",
            Arc::new(RuleBook::new(rule_mix(&symbols, MANY_RULES, 11)).expect("distinct ids")),
        ),
    ];
    let config = |rules: &Arc<RuleBook>| PipelineConfig {
        rules: rules.clone(),
        retry: RetryPolicy::no_retry(),
        jitter_seed: 0,
    };
    // What each run does, so the figures can be read with their alert volume.
    for (name, book) in &books {
        let rules_per_symbol: usize = symbols
            .iter()
            .map(|s| book.for_symbol(s).rules().len())
            .sum();
        let stats = run_pipeline(config(book), &lines);
        eprintln!(
            "rules/{name}: {} rules, {} symbols, {:.1} rules per symbol; {} ticks raise {} alerts",
            book.rules().len(),
            symbols.len(),
            rules_per_symbol as f64 / symbols.len() as f64,
            stats.messages,
            stats.alerts,
        );
    }

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(TICKS as u64));
    group.sample_size(20);
    for (name, book) in &books {
        group.bench_function(*name, |b| {
            b.iter(|| black_box(run_pipeline(config(book), &lines)))
        });
    }
    group.finish();
}

criterion_group!(benches, engine, rules);
criterion_main!(benches);
