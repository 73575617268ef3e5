//! Property tests of the pipeline's delivery guarantees over the in-memory ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tickwatch_core::ports::ErrorClass;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Condition, Fire, Label, RuleDoc, RuleId, SymbolPattern, SymbolState};
use tickwatch_core::testing::{
    Fault, ManualClock, MemoryNotifier, MemoryRig, MemoryStore, Op, block_on_ready, spec_config,
};
use tickwatch_core::{Mode, Outcome, Pipeline, PipelineConfig, Rule, RuleBook, Symbol, Timestamp};

type Memory = Pipeline<Arc<MemoryStore>, Arc<MemoryNotifier>, Arc<ManualClock>>;

fn pipeline(mode: Mode) -> (Memory, Arc<MemoryStore>, Arc<MemoryNotifier>) {
    let config = spec_config(mode, RetryPolicy::new(2, 10, 100).expect("valid"), 1);
    let rig = MemoryRig::new(
        config,
        Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid"),
    );
    (rig.pipeline, rig.store, rig.notifier)
}

/// A tick body: one of four symbols, a price around the thresholds, a time in a small window (so
/// duplicates and out-of-order ticks are common).
fn tick_body() -> impl Strategy<Value = String> {
    (
        0..4usize,
        prop_oneof![Just(50.0), Just(150.0), 20.0..80.0f64, 120.0..180.0f64],
        0..40i64,
    )
        .prop_map(|(s, price, at)| {
            let price = (price * 100.0).round() / 100.0;
            format!(
                r#"{{"symbol":"S{s}","price":{price},"timestamp":{}}}"#,
                1_795_700_000_000 + at * 1000
            )
        })
}

/// Splits `items` into consecutive batches of the given sizes (cycled).
fn batches<T: Clone>(items: &[T], sizes: &[usize]) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = items;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.push(head.to_vec());
        rest = tail;
    }
    out
}

fn process(pipeline: &Memory, bodies: &[(usize, String)]) -> Vec<(usize, Outcome)> {
    let messages = bodies
        .iter()
        .map(|(id, body)| (*id, body.clone().into_bytes()))
        .collect();
    block_on_ready(pipeline.process(messages, None)).outcomes
}

/// Whether an outcome reports an alert raised (stored and announced) by this delivery.
fn raised_new_alert(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Accepted(accepted) if accepted.new_alerts().next().is_some())
}

fn alert_ids(store: &MemoryStore) -> BTreeSet<String> {
    store
        .alerts()
        .iter()
        .map(|s| s.alert.alert_id.to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Redelivering any subset of already processed messages, in any batches, adds no alert and
    /// publishes nothing again.
    #[test]
    fn redelivery_never_adds_an_alert(
        bodies in prop::collection::vec(tick_body(), 1..60),
        sizes in prop::collection::vec(1..25usize, 1..5),
        redeliver in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
        redeliver_sizes in prop::collection::vec(1..25usize, 1..5),
        cross in any::<bool>(),
    ) {
        let mode = if cross { Mode::Cross } else { Mode::Level };
        let (pipeline, store, notifier) = pipeline(mode);
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        for batch in batches(&numbered, &sizes) {
            process(&pipeline, &batch);
        }
        let alerts_before = alert_ids(&store);
        let published_before = notifier.published().len();
        prop_assert_eq!(published_before, alerts_before.len(), "each alert published once");

        let subset: Vec<(usize, String)> = redeliver.iter().map(|i| numbered[i.index(numbered.len())].clone()).collect();
        for batch in batches(&subset, &redeliver_sizes) {
            for (_, outcome) in process(&pipeline, &batch) {
                prop_assert!(!raised_new_alert(&outcome), "a redelivery raised a new alert: {:?}", outcome);
            }
        }
        prop_assert_eq!(alert_ids(&store), alerts_before);
        prop_assert_eq!(notifier.published().len(), published_before);
    }

    /// Level mode: the alerts, and their ids, depend only on the ticks, not on how they were
    /// batched or ordered.
    #[test]
    fn level_mode_alert_ids_are_stable(
        bodies in prop::collection::vec(tick_body(), 1..60),
        sizes in prop::collection::vec(1..25usize, 1..5),
        shuffle_seed in any::<u64>(),
    ) {
        let (one, store_one, _) = pipeline(Mode::Level);
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        process(&one, &numbered);

        let mut shuffled = numbered.clone();
        let mut rng = tickwatch_core::retry::Rng::seeded(shuffle_seed);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (two, store_two, _) = pipeline(Mode::Level);
        for batch in batches(&shuffled, &sizes) {
            process(&two, &batch);
        }
        prop_assert_eq!(alert_ids(&store_one), alert_ids(&store_two));
        for stored in store_one.alerts() {
            prop_assert_eq!(stored.alert.alert_id, stored.alert.key().id());
        }
    }

    /// Under random transient faults in every port, redelivering whatever failed until nothing
    /// fails ends with exactly the alerts of a fault-free run, every one published and marked.
    /// Only a lost "mark notified" may cause a repeat publication.
    #[test]
    fn faults_lose_nothing_and_duplicate_nothing(
        bodies in prop::collection::vec(tick_body(), 1..40),
        faults in prop::collection::vec((0..5usize, 0..3usize), 0..30),
    ) {
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        let (clean, clean_store, _) = pipeline(Mode::Level);
        process(&clean, &numbered);

        let (pipeline, store, notifier) = pipeline(Mode::Level);
        let ops = [Op::Advance, Op::Insert, Op::Fetch, Op::MarkNotified, Op::Publish];
        let mut mark_faults = 0;
        for &(op, kind) in &faults {
            let fault = match kind {
                0 => Fault::Fail(ErrorClass::Transient),
                1 => Fault::FailAfterApplying(ErrorClass::Transient),
                _ => Fault::Fail(ErrorClass::Permanent),
            };
            if ops[op] == Op::MarkNotified || (ops[op] == Op::Publish && kind == 1) {
                mark_faults += 1;
            }
            if ops[op] == Op::Publish {
                notifier.script([Some(fault)]);
            } else {
                store.script(ops[op], [Some(fault)]);
            }
        }
        let mut pending = numbered.clone();
        for _round in 0..100 {
            if pending.is_empty() {
                break;
            }
            let outcomes = process(&pipeline, &pending);
            let failed: BTreeSet<usize> = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .map(|(id, _)| *id)
                .collect();
            pending.retain(|(id, _)| failed.contains(id));
        }
        prop_assert!(pending.is_empty(), "faults are finite, so everything eventually succeeds");
        prop_assert_eq!(alert_ids(&store), alert_ids(&clean_store));
        prop_assert!(store.alerts().iter().all(|s| s.notified));
        let mut publications: BTreeMap<String, usize> = BTreeMap::new();
        for alert in notifier.published() {
            *publications.entry(alert.alert_id.to_string()).or_default() += 1;
        }
        prop_assert_eq!(publications.keys().cloned().collect::<BTreeSet<_>>(), alert_ids(&store));
        // A lost mark (or a publish whose answer is lost) makes the redelivery publish every alert
        // of that call again; nothing else may.
        let repeats: usize = publications.values().map(|n| n - 1).sum();
        prop_assert!(repeats <= mark_faults * publications.len(), "{} repeats, {} lost marks", repeats, mark_faults);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Two workers (two pipelines, each remembering states) share one store and get the messages
    /// in any split and order. Every alert is stored once and announced once, and redelivering
    /// everything through either worker raises nothing new; whether the store reads states
    /// ahead (SQLite) or lets the workers guess (DynamoDB).
    #[test]
    fn two_workers_sharing_a_store_never_duplicate(
        bodies in prop::collection::vec(tick_body(), 1..60),
        split in prop::collection::vec(any::<bool>(), 60),
        sizes in prop::collection::vec(1..10usize, 1..4),
        reads_ahead in any::<bool>(),
    ) {
        let store = Arc::new(MemoryStore::new());
        if reads_ahead {
            store.read_ahead();
        }
        let notifier = Arc::new(MemoryNotifier::new());
        let clock = Arc::new(ManualClock::at(Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid")));
        let worker = |seed| {
            let config = spec_config(Mode::Cross, RetryPolicy::new(2, 10, 100).expect("valid"), seed);
            Pipeline::new(config, store.clone(), notifier.clone(), clock.clone())
        };
        let (one, two) = (worker(1), worker(2));
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        let (mine, theirs): (Vec<_>, Vec<_>) = numbered.iter().cloned().partition(|(i, _)| split[*i]);
        let (mine, theirs) = (batches(&mine, &sizes), batches(&theirs, &sizes));
        for i in 0..mine.len().max(theirs.len()) {
            if let Some(b) = mine.get(i) { process(&one, b); }
            if let Some(b) = theirs.get(i) { process(&two, b); }
        }
        let alerts = alert_ids(&store);
        let published: Vec<String> = notifier.published().iter().map(|a| a.alert_id.to_string()).collect();
        prop_assert_eq!(published.len(), alerts.len(), "each alert announced once");
        prop_assert_eq!(published.iter().cloned().collect::<BTreeSet<_>>(), alerts.clone());
        for worker in [&one, &two] {
            for (_, outcome) in process(worker, &numbered) {
                prop_assert!(!raised_new_alert(&outcome), "a redelivery raised a new alert: {:?}", outcome);
            }
        }
        prop_assert_eq!(alert_ids(&store), alerts);
        prop_assert_eq!(notifier.published().len(), published.len());
    }
}

/// What a message's outcome says, without the details that legitimately differ between runs
/// (which message of a batch owns an alert's announcement).
fn verdict(outcome: &Outcome) -> &'static str {
    use tickwatch_core::Accepted;
    match outcome {
        Outcome::Accepted(Accepted::Alerts(_)) => "alert",
        Outcome::Accepted(Accepted::Quiet) => "quiet",
        Outcome::Accepted(Accepted::Rearmed) => "rearmed",
        Outcome::Accepted(Accepted::Stale) => "stale",
        Outcome::Rejected(_) => "rejected",
        Outcome::Failed(_) => "failed",
    }
}

/// The verdict of every message, fed in batches of `sizes`.
fn verdicts_in_batches(
    pipeline: &Memory,
    numbered: &[(usize, String)],
    sizes: &[usize],
) -> BTreeMap<usize, &'static str> {
    let mut verdicts = BTreeMap::new();
    for batch in batches(numbered, sizes) {
        for (id, outcome) in process(pipeline, &batch) {
            verdicts.insert(id, verdict(&outcome));
        }
    }
    verdicts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any split of a sequence of ticks into batches gives the same alerts, and the same verdict
    /// for every tick, as feeding the ticks one at a time: the answer cannot depend on how fast
    /// the ticks arrived, on a reader's batch size, or on how SQS composed its batches.
    /// Regression: batches used to be sorted by tick time, so `A@2s=100, A@1s=160` alerted as
    /// one batch and was stale when the two ticks came one by one.
    #[test]
    fn batch_boundaries_never_change_the_answer(
        bodies in prop::collection::vec(tick_body(), 1..80),
        sizes in prop::collection::vec(1..30usize, 1..6),
        cross in any::<bool>(),
    ) {
        let mode = if cross { Mode::Cross } else { Mode::Level };
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        let (single, single_store, single_notifier) = pipeline(mode);
        let mut single_verdicts = BTreeMap::new();
        for message in &numbered {
            for (id, outcome) in process(&single, std::slice::from_ref(message)) {
                single_verdicts.insert(id, verdict(&outcome));
            }
        }
        let (batched, batched_store, batched_notifier) = pipeline(mode);
        let batched_verdicts = verdicts_in_batches(&batched, &numbered, &sizes);
        prop_assert_eq!(alert_ids(&batched_store), alert_ids(&single_store));
        prop_assert_eq!(batched_verdicts, single_verdicts);
        prop_assert_eq!(batched_notifier.published().len(), single_notifier.published().len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Settling the next batch before this one is finished (`tickwatch run` overlaps the two on
    /// its two cores) changes nothing: the same alerts stored, the same verdict for every
    /// message, and the same announcements in the same order as one batch after the other.
    #[test]
    fn settling_ahead_of_finishing_changes_nothing(
        bodies in prop::collection::vec(tick_body(), 1..80),
        sizes in prop::collection::vec(1..30usize, 1..6),
        cross in any::<bool>(),
    ) {
        let mode = if cross { Mode::Cross } else { Mode::Level };
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        let (plain, plain_store, plain_notifier) = pipeline(mode);
        let plain_verdicts = verdicts_in_batches(&plain, &numbered, &sizes);

        let (overlapped, store, notifier) = pipeline(mode);
        let mut verdicts = BTreeMap::new();
        let mut in_flight = None;
        for batch in batches(&numbered, &sizes) {
            let messages = batch
                .iter()
                .map(|(id, body)| (*id, tickwatch_core::Tick::decode(body.as_bytes())))
                .collect();
            let stored = block_on_ready(overlapped.settle_ticks(messages, None));
            if let Some(previous) = in_flight.replace(stored) {
                for (id, outcome) in block_on_ready(overlapped.finish_batch(previous, None)).into_report().outcomes {
                    verdicts.insert(id, verdict(&outcome));
                }
            }
        }
        if let Some(last) = in_flight {
            for (id, outcome) in block_on_ready(overlapped.finish_batch(last, None)).into_report().outcomes {
                verdicts.insert(id, verdict(&outcome));
            }
        }
        prop_assert_eq!(alert_ids(&store), alert_ids(&plain_store));
        prop_assert_eq!(verdicts, plain_verdicts);
        let ids = |n: &MemoryNotifier| -> Vec<String> {
            n.published().iter().map(|a| a.alert_id.to_string()).collect()
        };
        prop_assert_eq!(ids(&notifier), ids(&plain_notifier));
        prop_assert!(store.alerts().iter().all(|s| s.notified));
    }
}

/// The case that found the bug, as a plain test: one batch, then one tick at a time.
#[test]
fn a_late_crossing_is_stale_in_one_batch_as_in_two() {
    let ticks = [
        r#"{"symbol":"A","price":100,"timestamp":1795700002000}"#,
        r#"{"symbol":"A","price":160,"timestamp":1795700001000}"#,
    ];
    let numbered: Vec<(usize, String)> = ticks.iter().map(|t| t.to_string()).enumerate().collect();
    let (together, together_store, _) = pipeline(Mode::Cross);
    let outcomes: Vec<&str> = process(&together, &numbered)
        .iter()
        .map(|(_, o)| verdict(o))
        .collect();
    assert_eq!(outcomes, ["quiet", "stale"]);
    let (apart, apart_store, _) = pipeline(Mode::Cross);
    for message in &numbered {
        process(&apart, std::slice::from_ref(message));
    }
    assert!(together_store.alerts().is_empty());
    assert!(apart_store.alerts().is_empty());
}

/// The symbols of the many-rules property, named so that exact, prefix and `*` rules overlap.
const MANY_SYMBOLS: [&str; 6] = ["AAPL", "AAPM", "AMZN", "BTC-USD", "BTC-EUR", "ETH-USD"];
/// The patterns its rules watch (besides each exact symbol).
const MANY_PATTERNS: [&str; 6] = ["*", "A*", "AA*", "AAPL*", "BTC-*", "E*"];

/// One random rule, numbered `n`: any pattern, above or below a threshold near the ticks' prices,
/// any firing policy with the options it allows (a cooldown for `every` and `enter`, hysteresis
/// for `enter`), sometimes an exception, an expiry, a label, or paused; a price level or, for
/// about a third, a window condition (`rise`, `fall`, `volume`, `crosses_ma`).
fn random_rule(n: usize) -> impl Strategy<Value = Rule> {
    (
        0..MANY_SYMBOLS.len() + MANY_PATTERNS.len(),
        any::<bool>(),
        prop_oneof![Just(50.0), Just(100.0), Just(150.0), 30.0..170.0f64],
        0..3usize,
        prop::option::weighted(0.4, 1..10u64),
        prop_oneof![3 => Just(0.0), 1 => 0.5..20.0f64],
        prop::option::weighted(0.2, 0..MANY_SYMBOLS.len()),
        prop::option::weighted(0.2, 0..40i64),
        prop::option::weighted(0.2, Just(())),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.3, 0..4usize),
    )
        .prop_map(
            move |(
                pattern,
                above,
                threshold,
                fire,
                cooldown,
                hysteresis,
                except,
                expires,
                label,
                paused,
                window,
            )| {
                let symbols = match pattern.checked_sub(MANY_SYMBOLS.len()) {
                    Some(p) => MANY_PATTERNS[p],
                    None => MANY_SYMBOLS[pattern],
                };
                let threshold = (threshold * 100.0f64).round() / 100.0;
                // Window conditions over 1 or 2 minutes: the ticks span 40 s, so windows fill,
                // roll and empty.
                let span = if above { "1m" } else { "2m" };
                let condition = match window {
                    Some(0) => format!("rise {}% within {span}", 1 + (threshold as u32) % 30),
                    Some(1) => format!("fall {}% within {span}", 1 + (threshold as u32) % 30),
                    Some(2) => format!("volume {}x over {span}", 1 + (threshold as u32) % 4),
                    Some(_) => format!("crosses_ma {span}"),
                    None if above => format!("above {threshold}"),
                    None => format!("below {threshold}"),
                };
                let condition: Condition = condition.parse().expect("valid condition");
                let fire = [Fire::Every, Fire::Enter, Fire::Once][fire];
                let doc = RuleDoc {
                    except: except
                        .map(|s| Symbol::parse(MANY_SYMBOLS[s]).expect("valid"))
                        .into_iter()
                        .collect(),
                    hysteresis: if fire == Fire::Enter && window.is_none() {
                        hysteresis
                    } else {
                        0.0
                    },
                    cooldown_seconds: cooldown.filter(|_| fire != Fire::Once),
                    expires_at: expires.map(|second| {
                        Timestamp::from_epoch_ms(1_795_700_000_000 + second * 1000).expect("valid")
                    }),
                    label: label.map(|()| Label::parse(&format!("rule {n}")).expect("valid")),
                    paused,
                    ..RuleDoc::new(
                        RuleId::parse(&format!("r{n}")).expect("valid"),
                        symbols.parse::<SymbolPattern>().expect("valid"),
                        condition,
                        fire,
                    )
                };
                Rule::from_doc(doc).expect("generated rules are valid")
            },
        )
}

/// 5 to 40 random rules with distinct ids.
fn many_rules() -> impl Strategy<Value = Vec<Rule>> {
    (5..=40usize).prop_flat_map(|count| (0..count).map(random_rule).collect::<Vec<_>>())
}

/// A tick of one of [`MANY_SYMBOLS`]: a price around the rules' thresholds, a time in a small
/// window (whole or half seconds, so cooldowns, duplicates and late ticks are common), and
/// sometimes a volume.
fn many_rules_tick() -> impl Strategy<Value = String> {
    (
        0..MANY_SYMBOLS.len(),
        prop_oneof![Just(50.0), Just(100.0), Just(150.0), 20.0..180.0f64],
        0..80i64,
        prop::option::weighted(0.7, 0..1000u32),
    )
        .prop_map(|(s, price, half_seconds, volume)| {
            let price = (price * 100.0).round() / 100.0;
            let volume = volume.map_or(String::new(), |v| format!(r#","volume":{v}"#));
            format!(
                r#"{{"symbol":"{}","price":{price},"timestamp":{}{volume}}}"#,
                MANY_SYMBOLS[s],
                1_795_700_000_000 + half_seconds * 500
            )
        })
}

/// Every symbol's stored state.
fn states(store: &MemoryStore) -> Vec<Option<SymbolState>> {
    MANY_SYMBOLS
        .iter()
        .map(|s| store.state(&Symbol::parse(s).expect("valid")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Many rules of every kind over overlapping symbols: processing a sequence of ticks, then
    /// redelivering any subset of it, in any order and any batches, through the same worker or a
    /// fresh one sharing the store, stores no new alert, announces nothing again and changes no
    /// symbol's state.
    #[test]
    fn with_many_rules_redelivery_adds_no_alert_and_moves_no_state(
        rules in many_rules(),
        bodies in prop::collection::vec(many_rules_tick(), 1..60),
        sizes in prop::collection::vec(1..25usize, 1..5),
        redeliver in prop::collection::vec(any::<prop::sample::Index>(), 1..60),
        redeliver_sizes in prop::collection::vec(1..25usize, 1..5),
        fresh_worker in any::<bool>(),
    ) {
        let store = Arc::new(MemoryStore::new());
        let notifier = Arc::new(MemoryNotifier::new());
        let clock = Arc::new(ManualClock::at(Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid")));
        let book = Arc::new(RuleBook::new(rules).expect("distinct ids"));
        let worker = || {
            let config = PipelineConfig {
                rules: book.clone(),
                retry: RetryPolicy::new(2, 10, 100).expect("valid"),
                jitter_seed: 1,
            };
            Pipeline::new(config, store.clone(), notifier.clone(), clock.clone())
        };
        let first = worker();
        let numbered: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
        for batch in batches(&numbered, &sizes) {
            for (_, outcome) in process(&first, &batch) {
                prop_assert!(!matches!(outcome, Outcome::Failed(_) | Outcome::Rejected(_)), "{:?}", outcome);
            }
        }
        let alerts_before = alert_ids(&store);
        let states_before = states(&store);
        let published_before = notifier.published().len();
        prop_assert_eq!(published_before, alerts_before.len(), "each alert published once");
        prop_assert!(store.alerts().iter().all(|s| s.notified));

        let again = if fresh_worker { worker() } else { first };
        let subset: Vec<(usize, String)> = redeliver
            .iter()
            .map(|i| numbered[i.index(numbered.len())].clone())
            .collect();
        for batch in batches(&subset, &redeliver_sizes) {
            for (_, outcome) in process(&again, &batch) {
                prop_assert!(!matches!(outcome, Outcome::Failed(_)), "{:?}", outcome);
                prop_assert!(!raised_new_alert(&outcome), "a redelivery raised a new alert: {:?}", outcome);
            }
        }
        prop_assert_eq!(alert_ids(&store), alerts_before);
        prop_assert_eq!(states(&store), states_before);
        prop_assert_eq!(notifier.published().len(), published_before);
    }
}
