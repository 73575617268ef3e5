//! Arbitrary SQS-like batches through the whole pipeline over the in-memory ports, delivered
//! twice, with faults scripted from the input. Invariants: one outcome per message in order;
//! every rejection is permanent and names a code; after everything that failed is redelivered
//! until it succeeds, every stored alert is announced and marked, and a second delivery of the
//! whole input raises no alert and publishes nothing.
#![no_main]


use libfuzzer_sys::fuzz_target;
use tickwatch_core::testing::{Fault, ManualClock, MemoryNotifier, MemoryStore, Op, block_on_ready};
use tickwatch_core::ports::ErrorClass;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::{Accepted, Mode, Outcome, Pipeline, PipelineConfig, Rule, RuleSet, Timestamp};

/// Most rounds of redelivery before the target gives up (faults are finite, so it never should).
const ROUNDS_MAX: usize = 50;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    // Bodies are separated by 0xFF (never valid UTF-8, so it cannot hide inside a real tick).
    let bodies: Vec<&[u8]> = rest.split(|&b| b == 0xFF).take(64).collect();
    let mode = if control & 1 == 0 { Mode::Cross } else { Mode::Level };
    let store = MemoryStore::new();
    let notifier = MemoryNotifier::new();
    // Scripted transient faults: the control byte's other bits pick which operations fail once.
    let ops = [Op::Advance, Op::Insert, Op::Fetch, Op::MarkNotified];
    for (bit, op) in ops.iter().enumerate() {
        if control & (2 << bit) != 0 {
            store.script(*op, [Some(Fault::Fail(ErrorClass::Transient)); 3]);
        }
    }
    if control & 0x40 != 0 {
        notifier.script([Some(Fault::Fail(ErrorClass::Transient)); 3]);
    }
    let clock = ManualClock::at(Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid"));
    let config = PipelineConfig {
        rules: RuleSet::uniform(Rule::new(150.0, 50.0, 0.0, mode).expect("valid")),
        retry: RetryPolicy::new(2, 10, 100).expect("valid"),
        jitter_seed: u64::from(control),
    };
    let pipeline = Pipeline::new(config, store, notifier, clock);

    let mut pending: Vec<(usize, &[u8])> = bodies.iter().copied().enumerate().collect();
    for _ in 0..ROUNDS_MAX {
        if pending.is_empty() {
            break;
        }
        let report = block_on_ready(pipeline.process(pending.clone(), None));
        assert_eq!(report.outcomes.len(), pending.len());
        let mut failed = Vec::new();
        for ((id, outcome), (sent, body)) in report.outcomes.iter().zip(&pending) {
            assert_eq!(id, sent, "outcomes come back in input order");
            match outcome {
                Outcome::Rejected(error) => assert!(tickwatch_core::Tick::decode(body).is_err(), "{error}"),
                Outcome::Failed(_) => failed.push((*sent, *body)),
                Outcome::Accepted(_) => assert!(tickwatch_core::Tick::decode(body).is_ok()),
            }
        }
        pending = failed;
    }
    assert!(pending.is_empty(), "finite faults: everything succeeds eventually");
    let stored = pipeline.store().alerts();
    assert!(stored.iter().all(|s| s.notified), "every stored alert is announced and marked");

    // Faults scripted for calls that never happened must not leak into the redelivery.
    pipeline.store().heal();
    pipeline.notifier().heal();
    let published = pipeline.notifier().published().len();
    let again = block_on_ready(pipeline.process(bodies.iter().copied().enumerate().collect(), None));
    for (_, outcome) in &again.outcomes {
        assert!(!matches!(outcome, Outcome::Accepted(Accepted::Alerted(_))), "redelivery raised {outcome:?}");
        assert!(!matches!(outcome, Outcome::Failed(_)), "no faults are left: {outcome:?}");
    }
    assert_eq!(pipeline.store().alerts().len(), stored.len(), "redelivery stores nothing new");
    assert_eq!(pipeline.notifier().published().len(), published, "redelivery publishes nothing");
});
