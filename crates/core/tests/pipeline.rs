//! The batch pipeline over the in-memory ports: outcomes, idempotence, retries, deadlines and the
//! "store, publish, mark" delivery order under every kind of fault.

use std::sync::Arc;

use tickwatch_core::ports::ErrorClass::{Permanent, Transient};
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Fire, Phase, RuleState, SymbolState};
use tickwatch_core::testing::{
    Fault, ManualClock, MemoryNotifier, MemoryRig, MemoryStore, Op, spec_rules,
};
use tickwatch_core::{
    Accepted, Alert, AlertKind, AlertOutcome, Band, BandSet, BatchReport, Mode, Outcome, Pipeline,
    PipelineConfig, RuleBook, RuleId, Symbol, Timestamp,
};

const NOW_MS: i64 = 1_795_703_400_000; // 2026-11-26T14:30:00Z

type TestPipeline = Pipeline<Arc<MemoryStore>, Arc<MemoryNotifier>, Arc<ManualClock>>;

struct Harness {
    pipeline: TestPipeline,
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
    clock: Arc<ManualClock>,
}

impl Harness {
    /// Processes one batch of `(message id, body)` with no deadline.
    async fn process(&self, items: &[(&str, String)]) -> BatchReport<String> {
        self.pipeline.process(batch(items), None).await
    }
}

fn harness(mode: Mode) -> Harness {
    harness_with(spec_rules(mode))
}

fn harness_with(rules: Arc<RuleBook>) -> Harness {
    let config = PipelineConfig {
        rules,
        retry: RetryPolicy::new(3, 10, 200).expect("valid"),
        jitter_seed: 7,
    };
    let MemoryRig {
        pipeline,
        store,
        notifier,
        clock,
    } = MemoryRig::new(config, ts(NOW_MS));
    Harness {
        pipeline,
        store,
        notifier,
        clock,
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(ms).expect("valid")
}

fn sym(text: &str) -> Symbol {
    Symbol::parse(text).expect("valid")
}

/// A JSON tick body; `at` is seconds after a fixed start so tests read naturally.
fn body(symbol: &str, price: f64, at: i64) -> String {
    format!(
        r#"{{"symbol":"{symbol}","price":{price},"timestamp":{}}}"#,
        1_795_700_000_000 + at * 1000
    )
}

fn batch(items: &[(&str, String)]) -> Vec<(String, Vec<u8>)> {
    items
        .iter()
        .map(|(id, b)| ((*id).to_owned(), b.clone().into_bytes()))
        .collect()
}

/// A compact view of outcomes: `A:HIGH`, `Q`, `R`, `S`, `D`, `D*` (duplicate announced now),
/// `X:code` (rejected), `F:step`; a tick with several alerts joins them with `+`.
fn summary(outcomes: &[(String, Outcome)]) -> Vec<String> {
    outcomes
        .iter()
        .map(|(id, outcome)| {
            let what = match outcome {
                Outcome::Accepted(Accepted::Alerts(alerts)) => alerts
                    .iter()
                    .map(|alert| match alert {
                        AlertOutcome::New(alert) => format!("A:{}", alert.kind),
                        AlertOutcome::Duplicate {
                            announced_now: false,
                            ..
                        } => "D".into(),
                        AlertOutcome::Duplicate {
                            announced_now: true,
                            ..
                        } => "D*".into(),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
                Outcome::Accepted(Accepted::Quiet) => "Q".into(),
                Outcome::Accepted(Accepted::Rearmed) => "R".into(),
                Outcome::Accepted(Accepted::Stale) => "S".into(),
                Outcome::Rejected(error) => format!("X:{}", error.code()),
                Outcome::Failed(failure) => format!("F:{}", failure.step.as_str()),
            };
            format!("{id}={what}")
        })
        .collect()
}

fn rule_id(text: &str) -> RuleId {
    RuleId::parse(text).expect("valid")
}

/// The state of a rule that fired on entering (no cooldown, so no time of the last alert).
fn fired(rule: &str) -> RuleState {
    RuleState {
        rule: rule_id(rule),
        version: 1,
        phase: Phase::Fired,
        last_alert: None,
        window: None,
    }
}

/// The rules of a symbol's stored state that are not armed, as `rule=phase`.
fn rule_phases(h: &Harness, symbol: &str) -> Vec<String> {
    h.store
        .state(&sym(symbol))
        .map(|state| {
            state
                .rules
                .iter()
                .filter(|r| r.phase != Phase::Armed)
                .map(|r| format!("{}={}", r.rule, r.phase.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

fn published_ids(h: &Harness) -> Vec<String> {
    h.notifier
        .published()
        .iter()
        .map(|a: &Alert| a.alert_id.to_string())
        .collect()
}

fn stored_count(h: &Harness) -> usize {
    h.store.alerts().len()
}

fn all_notified(h: &Harness) -> bool {
    h.store.alerts().iter().all(|s| s.notified)
}

fn mixed_batch() -> Vec<(String, Vec<u8>)> {
    batch(&[
        ("m1", body("AAPL", 151.25, 1)),
        ("m2", body("MSFT", 42.0, 1)),
        ("m3", body("NVDA", 100.0, 1)),
        (
            "m4",
            r#"{"symbol":"AAPL","price":"high","timestamp":1}"#.into(),
        ),
        ("m5", "not json at all".into()),
        ("m6", body("TSLA", 150.0, 1)),
        ("m7", body("AMZN", 50.0, 2)),
        ("m8", r#"{"symbol":"","price":1,"timestamp":1}"#.into()),
    ])
}

#[tokio::test]
async fn a_mixed_batch_gets_one_outcome_per_message_in_order() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        let report = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(
            summary(&report.outcomes),
            [
                "m1=A:HIGH",
                "m2=A:LOW",
                "m3=Q",
                "m4=X:price.invalid",
                "m5=X:body.malformed",
                "m6=Q",
                "m7=Q",
                "m8=X:symbol.invalid"
            ],
            "{mode:?}"
        );
        assert_eq!(
            (
                report.stats.alerts,
                report.stats.rejected,
                report.stats.published
            ),
            (2, 3, 2)
        );
        assert_eq!(stored_count(&h), 2);
        assert_eq!(published_ids(&h).len(), 2);
        assert!(all_notified(&h));
    }
}

#[tokio::test]
async fn alerts_carry_the_rule_and_the_injected_clock() {
    let h = harness(Mode::Cross);
    h.process(&[("m1", body("AAPL", 151.25, 1))]).await;
    let alert = h.notifier.published()[0];
    assert_eq!(alert.symbol, sym("AAPL"));
    assert_eq!(alert.kind, AlertKind::High);
    assert_eq!(alert.price.get(), 151.25);
    assert_eq!(alert.threshold, 150.0);
    assert_eq!(alert.rule_id, rule_id("high"));
    assert_eq!(alert.label, None);
    assert_eq!(alert.fire, Fire::Enter);
    assert_eq!(alert.timestamp, ts(1_795_700_001_000));
    assert_eq!(alert.processed_at, ts(NOW_MS));
    assert_eq!(alert.alert_id, alert.key().id());
    let json = serde_json::to_value(alert).expect("serialisable");
    assert_eq!(json["kind"], "HIGH");
    assert_eq!(json["rule_id"], "high");
    assert_eq!(json["fire"], "enter");
    assert_eq!(json["timestamp"], "2026-11-26T13:33:21.000Z");
    assert_eq!(
        serde_json::from_value::<Alert>(json).expect("round trip"),
        alert
    );
}

#[tokio::test]
async fn the_same_batch_delivered_twice_adds_and_publishes_nothing() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        h.pipeline.process(mixed_batch(), None).await;
        let again = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(summary(&again.outcomes)[0], "m1=D", "{mode:?}");
        assert_eq!(summary(&again.outcomes)[1], "m2=D", "{mode:?}");
        assert_eq!(
            (
                again.stats.alerts,
                again.stats.published,
                again.stats.duplicates
            ),
            (0, 0, 2)
        );
        assert_eq!(stored_count(&h), 2);
        assert_eq!(
            published_ids(&h).len(),
            2,
            "{mode:?}: nothing published twice"
        );
    }
}

#[tokio::test]
async fn the_same_tick_twice_in_one_batch_is_one_alert() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        let report = h
            .process(&[("a", body("AAPL", 160.0, 1)), ("b", body("AAPL", 160.0, 1))])
            .await;
        let expected = ["a=A:HIGH", "b=D"];
        assert_eq!(summary(&report.outcomes), expected, "{mode:?}");
        assert_eq!(published_ids(&h).len(), 1);
    }
}

#[tokio::test]
async fn ticks_of_a_symbol_are_evaluated_in_arrival_order_and_older_ones_are_stale() {
    // The same verdicts as if each tick came in a batch of its own: a tick older than one that
    // arrived before it is stale, inside a batch as across batches.
    let h = harness(Mode::Cross);
    let report = h
        .process(&[
            ("late", body("AAPL", 40.0, 3)),
            ("first", body("AAPL", 160.0, 1)),
            ("middle", body("AAPL", 100.0, 2)),
            ("other", body("MSFT", 160.0, 1)),
            ("next", body("AAPL", 100.0, 4)),
            ("after", body("AAPL", 170.0, 5)),
        ])
        .await;
    assert_eq!(
        summary(&report.outcomes),
        [
            "late=A:LOW",
            "first=S",
            "middle=S",
            "other=A:HIGH",
            "next=R",
            "after=A:HIGH"
        ]
    );
    let aapl: Vec<_> = h
        .notifier
        .published()
        .iter()
        .filter(|a| a.symbol.to_string() == "AAPL")
        .map(|a| a.kind)
        .collect();
    assert_eq!(
        aapl,
        [AlertKind::Low, AlertKind::High],
        "a symbol's alerts go out in the order they were raised"
    );
    // The zone the band used to keep is now the state of its rules: `high` has fired.
    assert_eq!(rule_phases(&h, "AAPL"), ["high=fired"]);
}

#[tokio::test]
async fn cross_mode_state_carries_over_batches_and_stale_ticks_change_nothing() {
    let h = harness(Mode::Cross);
    h.process(&[("a", body("AAPL", 160.0, 10))]).await;
    let report = h
        .process(&[("b", body("AAPL", 170.0, 11)), ("c", body("AAPL", 40.0, 5))])
        .await;
    // b: still high (no second alert); c: older than the newest tick seen, and its low price never
    // raised an alert, so it is stale rather than a duplicate.
    assert_eq!(summary(&report.outcomes), ["b=Q", "c=S"]);
    let expected = SymbolState {
        last_seen: ts(1_795_700_011_000),
        rules: vec![fired("high")],
    };
    assert_eq!(h.store.state(&sym("AAPL")), Some(expected));
    assert_eq!(published_ids(&h).len(), 1);
}

#[tokio::test]
async fn per_symbol_overrides_apply_in_the_pipeline() {
    let base = Band::new(150.0, 50.0, 0.0, Mode::Cross).expect("valid");
    let bands = BandSet::uniform(base).with_override(
        sym("AAPL"),
        Band::new(200.0, 120.0, 0.0, Mode::Level).expect("valid"),
    );
    let h = harness_with(Arc::new(RuleBook::try_from(&bands).expect("valid")));
    let report = h
        .process(&[
            ("a1", body("AAPL", 160.0, 1)),
            ("a2", body("AAPL", 110.0, 2)),
            ("a3", body("AAPL", 110.0, 3)),
            ("m1", body("MSFT", 160.0, 1)),
        ])
        .await;
    assert_eq!(
        summary(&report.outcomes),
        ["a1=Q", "a2=A:LOW", "a3=A:LOW", "m1=A:HIGH"]
    );
    let low = h
        .notifier
        .published()
        .into_iter()
        .find(|a| a.symbol == sym("AAPL"))
        .expect("AAPL alert");
    assert_eq!(
        (low.threshold, low.fire, low.rule_id),
        (120.0, Fire::Every, rule_id("low.AAPL"))
    );
}

/// Every valid message of the mixed batch that concerns AAPL or MSFT (the alerting ones).
const ALERTING: [&str; 2] = ["m1", "m2"];

#[tokio::test]
async fn an_unreachable_store_fails_every_valid_message_and_publishes_nothing() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        let down = Some(Fault::Fail(Transient));
        for op in [Op::Advance, Op::Insert, Op::Fetch, Op::MarkNotified] {
            h.store.script(op, [down; 3]);
        }
        let report = h.pipeline.process(mixed_batch(), None).await;
        for (id, outcome) in &report.outcomes {
            let valid = !["m4", "m5", "m8"].contains(&id.as_str());
            let alerting = ALERTING.contains(&id.as_str());
            match outcome {
                Outcome::Failed(f) => assert!(
                    valid && (mode == Mode::Cross || alerting),
                    "{mode:?} {id}: {f}"
                ),
                Outcome::Rejected(_) => assert!(!valid),
                Outcome::Accepted(a) => {
                    assert!(mode == Mode::Level && !alerting, "{mode:?} {id}: {a:?}")
                }
            }
        }
        assert!(h.notifier.published().is_empty(), "{mode:?}");
        // The policy allows three attempts; all were used, with backoff between them.
        let first_step = if mode == Mode::Cross {
            Op::Advance
        } else {
            Op::Insert
        };
        assert_eq!(h.store.calls(first_step), 3, "{mode:?}");
        assert_eq!(
            h.clock.sleeps_ms().len(),
            2,
            "{mode:?}: two waits for three attempts"
        );

        // Redelivery once the store is back completes everything, once.
        h.store.heal();
        let report = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(report.stats.failed, 0, "{mode:?}");
        assert_eq!(
            (stored_count(&h), published_ids(&h).len()),
            (2, 2),
            "{mode:?}"
        );
        assert!(all_notified(&h));
    }
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let h = harness(Mode::Level);
    h.store.script(Op::Insert, [Some(Fault::Fail(Permanent))]);
    let report = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    let Outcome::Failed(failure) = &report.outcomes[0].1 else {
        panic!("should fail")
    };
    assert_eq!(failure.class, Permanent);
    assert_eq!(h.store.calls(Op::Insert), 1);
    assert!(h.clock.sleeps_ms().is_empty());
}

#[tokio::test]
async fn transient_errors_are_retried_within_the_batch() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        let step = if mode == Mode::Cross {
            Op::Advance
        } else {
            Op::Insert
        };
        h.store.script(
            step,
            [Some(Fault::Fail(Transient)), Some(Fault::Fail(Transient))],
        );
        h.notifier.script([Some(Fault::Fail(Transient))]);
        let report = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
        assert_eq!(summary(&report.outcomes), ["a=A:HIGH"], "{mode:?}");
        assert_eq!(published_ids(&h).len(), 1);
        let sleeps = h.clock.sleeps_ms();
        assert_eq!(
            sleeps.len(),
            3,
            "{mode:?}: two store retries and one publish retry"
        );
        assert!(
            sleeps[0] <= 10 && sleeps[1] <= 20 && sleeps[2] <= 10,
            "full jitter within the ceiling: {sleeps:?}"
        );
    }
}

#[tokio::test]
async fn a_publish_failure_after_the_write_is_completed_by_redelivery_exactly_once() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        h.notifier.script([Some(Fault::Fail(Transient)); 3]);
        let first = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(
            &summary(&first.outcomes)[..2],
            ["m1=F:publish", "m2=F:publish"],
            "{mode:?}"
        );
        assert_eq!(stored_count(&h), 2, "{mode:?}: the alerts are stored");
        assert!(h.notifier.published().is_empty());
        assert!(h.store.alerts().iter().all(|s| !s.notified));

        let second = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(
            &summary(&second.outcomes)[..2],
            ["m1=D*", "m2=D*"],
            "{mode:?}"
        );
        let third = h.pipeline.process(mixed_batch(), None).await;
        assert_eq!(&summary(&third.outcomes)[..2], ["m1=D", "m2=D"], "{mode:?}");
        assert_eq!(
            published_ids(&h).len(),
            2,
            "{mode:?}: each alert published exactly once"
        );
        assert_eq!(stored_count(&h), 2);
        assert!(all_notified(&h));
    }
}

#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_completed_by_redelivery() {
    for mode in [Mode::Cross, Mode::Level] {
        let h = harness(mode);
        let step = if mode == Mode::Cross {
            Op::Advance
        } else {
            Op::Insert
        };
        // The write lands but every answer is lost, on every attempt.
        h.store
            .script(step, [Some(Fault::FailAfterApplying(Transient)); 3]);
        let first = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
        assert!(
            matches!(first.outcomes[0].1, Outcome::Failed(_)),
            "{mode:?}"
        );
        assert_eq!(stored_count(&h), 1);
        assert!(h.notifier.published().is_empty());

        let second = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
        assert_eq!(summary(&second.outcomes), ["a=D*"], "{mode:?}");
        assert_eq!(published_ids(&h).len(), 1);
        assert!(all_notified(&h));
    }
}

#[tokio::test]
async fn a_lost_mark_means_one_extra_publication_at_most() {
    // Publishing succeeded but recording it failed: the redelivery cannot know the first
    // publication happened, so it publishes again. At-least-once, with the same alert id.
    let h = harness(Mode::Cross);
    h.store
        .script(Op::MarkNotified, [Some(Fault::Fail(Transient)); 3]);
    let first = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    assert_eq!(summary(&first.outcomes), ["a=F:mark_notified"]);
    let second = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    assert_eq!(summary(&second.outcomes), ["a=D*"]);
    h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    let ids = published_ids(&h);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the repeat carries the same alert id, for subscribers to drop"
    );
}

#[tokio::test]
async fn a_failure_for_one_symbol_does_not_fail_the_others() {
    let h = harness(Mode::Level);
    // Publishing is per alert; fail only the first call, which carries both alerts, then let the
    // retry through for everyone: nothing fails.
    h.notifier.script([Some(Fault::Fail(Transient))]);
    let report = h.pipeline.process(mixed_batch(), None).await;
    assert_eq!(report.stats.failed, 0);

    // A permanent failure of a publish fails only the symbols in that call.
    let h = harness(Mode::Level);
    h.process(&[("x", body("MSFT", 40.0, 1))]).await;
    h.notifier.script([Some(Fault::Fail(Permanent))]);
    let report = h
        .process(&[("a", body("AAPL", 160.0, 1)), ("m", body("MSFT", 100.0, 2))])
        .await;
    assert_eq!(summary(&report.outcomes), ["a=F:publish", "m=Q"]);
}

#[tokio::test]
async fn no_call_outlives_the_deadline() {
    let h = harness(Mode::Cross);
    h.notifier.script([Some(Fault::Hang)]);
    let deadline = ts(NOW_MS + 5_000);
    let report = h
        .pipeline
        .process(batch(&[("a", body("AAPL", 160.0, 1))]), Some(deadline))
        .await;
    let Outcome::Failed(failure) = &report.outcomes[0].1 else {
        panic!("should fail")
    };
    assert_eq!(failure.class, Transient);
    assert!(failure.reason.contains("deadline"), "{failure}");
    assert_eq!(
        h.clock.sleeps_ms(),
        [5_000],
        "waited exactly until the deadline, no longer"
    );
    // The alert is stored; the redelivery publishes it.
    let report = h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    assert_eq!(summary(&report.outcomes), ["a=D*"]);
}

#[tokio::test]
async fn retries_stop_before_the_deadline() {
    let h = harness(Mode::Level);
    h.store
        .script(Op::Insert, [Some(Fault::Fail(Transient)); 3]);
    // 5 ms left: any backoff that would end at or past the deadline is not scheduled.
    let report = h
        .pipeline
        .process(
            batch(&[("a", body("AAPL", 160.0, 1))]),
            Some(ts(NOW_MS + 5)),
        )
        .await;
    assert!(matches!(report.outcomes[0].1, Outcome::Failed(_)));
    let now = h.clock.sleeps_ms().iter().sum::<u64>() as i64 + NOW_MS;
    assert!(now < NOW_MS + 5, "never slept up to the deadline");
    // A deadline already passed starts nothing at all.
    let h = harness(Mode::Level);
    let report = h
        .pipeline
        .process(batch(&[("a", body("AAPL", 160.0, 1))]), Some(ts(NOW_MS)))
        .await;
    assert!(matches!(report.outcomes[0].1, Outcome::Failed(_)));
    assert_eq!(h.store.calls(Op::Insert), 0);
}

#[tokio::test]
async fn a_lost_compare_and_set_race_re_evaluates_against_the_winner() {
    let h = harness(Mode::Cross);
    // Another invocation moved AAPL into the high zone at t=5 between our load and our write.
    let winner = SymbolState {
        last_seen: ts(1_795_700_005_000),
        rules: vec![fired("high")],
    };
    h.store
        .interfere_before_advance(vec![(sym("AAPL"), winner.clone())], 1);
    let report = h.process(&[("a", body("AAPL", 160.0, 10))]).await;
    assert_eq!(
        summary(&report.outcomes),
        ["a=Q"],
        "already high: no second alert"
    );
    assert_eq!(stored_count(&h), 0);
    assert_eq!(
        h.store.calls(Op::Advance),
        2,
        "the conflict carried the winner's state: no read, one more compare-and-set"
    );
    let after = SymbolState {
        last_seen: ts(1_795_700_010_000),
        ..winner
    };
    assert_eq!(
        h.store.state(&sym("AAPL")),
        Some(after),
        "our tick is recorded as seen"
    );
}

#[tokio::test]
async fn endless_races_fail_the_message_for_redelivery() {
    let h = harness(Mode::Cross);
    let states: Vec<_> = (0..10)
        .map(|i| {
            let at = ts(1_795_700_000_000 + i);
            vec![(
                sym("AAPL"),
                SymbolState {
                    last_seen: at,
                    rules: vec![fired("low")],
                },
            )]
        })
        .collect();
    for s in states {
        h.store.interfere_before_advance(s, 1);
    }
    let report = h.process(&[("a", body("AAPL", 160.0, 10))]).await;
    assert_eq!(summary(&report.outcomes), ["a=F:advance_state"]);
    assert_eq!(
        h.store.calls(Op::Advance),
        u64::from(tickwatch_core::pipeline::CAS_ATTEMPTS_MAX)
    );
    assert!(h.notifier.published().is_empty());
}

#[tokio::test]
async fn an_empty_batch_is_fine() {
    let h = harness(Mode::Cross);
    let report = h
        .pipeline
        .process(Vec::<(String, Vec<u8>)>::new(), None)
        .await;
    assert!(report.outcomes.is_empty());
    assert_eq!(h.store.calls(Op::Advance), 0);
}

#[tokio::test]
async fn stored_alerts_can_be_announced_later() {
    let h = harness(Mode::Level);
    h.notifier.script([Some(Fault::Fail(Permanent))]);
    h.process(&[("a", body("AAPL", 160.0, 1)), ("b", body("MSFT", 40.0, 1))])
        .await;
    let pending: Vec<Alert> = h
        .store
        .alerts()
        .iter()
        .filter(|s| !s.notified)
        .map(|s| s.alert)
        .collect();
    assert_eq!(pending.len(), 2);

    h.store
        .script(Op::MarkNotified, [Some(Fault::Fail(Permanent))]);
    let results = h.pipeline.announce_stored(&pending, None).await;
    assert!(results.iter().all(|r| {
        r.as_ref()
            .is_err_and(|f| f.step == tickwatch_core::pipeline::Step::MarkNotified)
    }));
    let results = h.pipeline.announce_stored(&pending, None).await;
    assert!(results.iter().all(Result::is_ok));
    assert!(all_notified(&h));
    assert_eq!(
        published_ids(&h).len(),
        4,
        "published by both calls: the first could not record it"
    );
}

#[tokio::test]
async fn a_warm_pipeline_guesses_the_state_it_wrote_itself() {
    let h = harness(Mode::Cross);
    h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    assert_eq!(
        h.store.calls(Op::Advance),
        1,
        "no state: the first guess was right"
    );
    let report = h
        .process(&[("b", body("AAPL", 100.0, 2)), ("c", body("AAPL", 170.0, 3))])
        .await;
    assert_eq!(summary(&report.outcomes), ["b=R", "c=A:HIGH"]);
    assert_eq!(
        h.store.calls(Op::Advance),
        2,
        "the state it wrote is remembered: one compare-and-set, no conflict"
    );
    assert_eq!(h.store.calls(Op::Advance), 2);
}

#[tokio::test]
async fn a_remembered_state_that_went_stale_costs_a_retry_not_a_wrong_answer() {
    let h = harness(Mode::Cross);
    h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    // Another worker re-armed AAPL at t=5; this pipeline still remembers "high since t=1".
    let rearmed = SymbolState {
        last_seen: ts(1_795_700_005_000),
        rules: Vec::new(),
    };
    h.store.set_state(sym("AAPL"), rearmed);
    let report = h.process(&[("b", body("AAPL", 160.0, 10))]).await;
    assert_eq!(
        summary(&report.outcomes),
        ["b=A:HIGH"],
        "evaluated against the store's state after the conflict"
    );
    assert_eq!(
        h.store.calls(Op::Advance),
        3,
        "one conflict, then the write"
    );
    // And a stale remembered state never lets an old tick through: t=3 is older than the store's t=10.
    let report = h.process(&[("c", body("AAPL", 40.0, 3))]).await;
    assert_eq!(summary(&report.outcomes), ["c=S"]);
}

/// A harness whose store reads ahead and holds AAPL high since t=5, written by another worker (or
/// an earlier run): its pipeline has never seen AAPL.
fn reading_ahead_with_aapl_high() -> Harness {
    let h = harness(Mode::Cross);
    h.store.read_ahead();
    let high = SymbolState {
        last_seen: ts(1_795_700_005_000),
        rules: vec![fired("high")],
    };
    h.store.set_state(sym("AAPL"), high);
    h
}

#[tokio::test]
async fn a_store_that_reads_ahead_turns_a_miss_into_one_write() {
    let h = reading_ahead_with_aapl_high();
    let report = h
        .process(&[
            ("a", body("AAPL", 160.0, 10)),
            ("b", body("MSFT", 40.0, 10)),
        ])
        .await;
    assert_eq!(
        summary(&report.outcomes),
        ["a=Q", "b=A:LOW"],
        "AAPL was already high; MSFT had no state"
    );
    assert_eq!(
        (h.store.calls(Op::Load), h.store.calls(Op::Advance)),
        (1, 1),
        "one read for both misses, then one compare-and-set that holds"
    );
    // Remembered now: no read.
    h.process(&[("c", body("AAPL", 100.0, 11))]).await;
    assert_eq!(
        (h.store.calls(Op::Load), h.store.calls(Op::Advance)),
        (1, 2)
    );
}

#[tokio::test]
async fn a_read_ahead_that_fails_leaves_the_guess_to_the_compare_and_set() {
    let h = reading_ahead_with_aapl_high();
    h.store.script(Op::Load, [Some(Fault::Fail(Transient))]);
    let report = h.process(&[("a", body("AAPL", 160.0, 10))]).await;
    assert_eq!(summary(&report.outcomes), ["a=Q"], "still already high");
    assert_eq!(
        h.store.calls(Op::Advance),
        2,
        "the guess (no state) conflicted and was corrected"
    );
}

#[tokio::test]
async fn a_failed_commit_forgets_the_remembered_state() {
    let h = harness(Mode::Cross);
    h.process(&[("a", body("AAPL", 160.0, 1))]).await;
    // The write lands but its answer is lost: what the store holds is unknown to the pipeline.
    h.store
        .script(Op::Advance, [Some(Fault::FailAfterApplying(Transient)); 3]);
    let report = h.process(&[("b", body("AAPL", 100.0, 2))]).await;
    assert!(matches!(report.outcomes[0].1, Outcome::Failed(_)));
    let advances = h.store.calls(Op::Advance);
    let report = h.process(&[("b", body("AAPL", 100.0, 2))]).await;
    // The guess (no state) conflicts and brings back what the lost write stored: t=2 was
    // applied, so its redelivery is stale.
    assert_eq!(summary(&report.outcomes), ["b=S"]);
    assert_eq!(
        h.store.calls(Op::Advance),
        advances + 1,
        "the next batch learns the truth"
    );
}
