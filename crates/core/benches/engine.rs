//! Engine throughput on one core: decoding, rule evaluation and the whole batch pipeline over the
//! in-memory ports, with the two default rules, with 10,000 rules over 5,000 symbols (issue 11),
//! and with three window rules against one threshold rule (issue 12).
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

/// Evaluates `ticks` as the pipeline does: in batches of `BATCH_TICKS`, each symbol's ticks of a
/// batch through one cursor from its state, the state kept between batches. Returns the alerts.
fn evaluate(book: &RuleBook, ticks: &[Tick]) -> u64 {
    let mut states: HashMap<Symbol, (Arc<SymbolRules>, Option<SymbolState>)> = HashMap::new();
    let mut by_symbol: HashMap<Symbol, Vec<usize>> = HashMap::new();
    let mut alerts = 0u64;
    for batch in ticks.chunks(BATCH_TICKS) {
        by_symbol.values_mut().for_each(Vec::clear);
        for (i, tick) in batch.iter().enumerate() {
            by_symbol.entry(tick.symbol).or_default().push(i);
        }
        for (symbol, members) in &by_symbol {
            if members.is_empty() {
                continue;
            }
            let (rules, state) = states
                .entry(*symbol)
                .or_insert_with(|| (book.for_symbol(symbol), None));
            let mut cursor = Cursor::new(rules, state.as_ref());
            for &i in members {
                alerts += cursor.step(&batch[i]).fired.len() as u64;
            }
            if let Some(next) = cursor.finish() {
                *state = Some(next);
            }
        }
    }
    alerts
}

/// Issue 12's target: evaluating a tick against three window rules (a rise, a volume spike and a
/// moving-average cross, every symbol) costs at most 1.5x a threshold rule. Ticks are decoded
/// first: this is the rules' cost, then the whole pipeline's.
fn windows(c: &mut Criterion) {
    let lines = lines(SYMBOLS);
    let ticks: Vec<Tick> = lines
        .iter()
        .map(|line| Tick::decode(line).expect("valid"))
        .collect();
    let rule = |json: &str| {
        tickwatch_core::Rule::from_doc(
            tickwatch_core::rules::RuleDoc::from_json(json).expect("valid JSON"),
        )
        .expect("valid rule")
    };
    let books = [
        (
            "threshold",
            Arc::new(
                RuleBook::new(vec![rule(
                    r#"{"id":"high","symbols":"*","condition":"above 150"}"#,
                )])
                .expect("valid"),
            ),
        ),
        (
            "three_windows",
            Arc::new(
                RuleBook::new(vec![
                    rule(r#"{"id":"rise-20","symbols":"*","condition":"rise 20% within 1h"}"#),
                    rule(r#"{"id":"volume-3x","symbols":"*","condition":"volume 3x over 15m"}"#),
                    rule(
                        r#"{"id":"ma-1h","symbols":"*","condition":"crosses_ma 1h","fire":"every","cooldown_seconds":600}"#,
                    ),
                ])
                .expect("valid"),
            ),
        ),
    ];
    for (name, book) in &books {
        eprintln!(
            "windows/{name}: {} ticks raise {} alerts",
            ticks.len(),
            evaluate(book, &ticks)
        );
    }
    let mut group = c.benchmark_group("windows");
    group.throughput(Throughput::Elements(TICKS as u64));
    group.sample_size(20);
    for (name, book) in &books {
        group.bench_function(format!("evaluate_{name}"), |b| {
            b.iter(|| black_box(evaluate(book, &ticks)))
        });
    }
    for (name, book) in &books {
        let config = PipelineConfig {
            rules: book.clone(),
            retry: RetryPolicy::no_retry(),
            jitter_seed: 0,
        };
        group.bench_function(format!("pipeline_{name}"), |b| {
            b.iter(|| black_box(run_pipeline(config.clone(), &lines)))
        });
    }
    group.finish();
}

criterion_group!(benches, engine, rules, windows);
criterion_main!(benches);
