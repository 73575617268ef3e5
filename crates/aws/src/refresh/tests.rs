//! The refresher over a scripted in-memory rule store and the in-memory pipeline: what it reads,
//! when, and what the pipeline evaluates with afterwards.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tickwatch_core::ports::{InvalidRule, RuleStore, StoredRules};
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Rule, RuleId, RulesError};
use tickwatch_core::testing::{MemoryRig, block_on_ready, rule, spec_config};
use tickwatch_core::{Mode, Outcome, Timestamp};

use super::*;
use crate::error::AwsError;
use crate::testing::LogSink;

const T0_MS: i64 = 1_795_703_400_000;
const INTERVAL_S: u32 = 10;

/// What the store was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Version,
    Load,
}

/// A rule store in memory that records every call and fails the calls it is told to.
#[derive(Default)]
struct ScriptedRuleStore {
    stored: Mutex<Option<StoredRules>>,
    calls: Mutex<Vec<Call>>,
    /// Whether each next call fails (`true`), in order; empty: every call succeeds.
    failures: Mutex<VecDeque<bool>>,
}

impl ScriptedRuleStore {
    fn set(&self, stored: Option<StoredRules>) {
        *self.stored.lock().expect("lock") = stored;
    }

    fn fail_next(&self, failures: &[bool]) {
        self.failures.lock().expect("lock").extend(failures);
    }

    /// The calls so far, emptied.
    fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }

    fn answer<T>(
        &self,
        call: Call,
        value: impl FnOnce(Option<StoredRules>) -> T,
    ) -> Result<T, AwsError> {
        self.calls.lock().expect("lock").push(call);
        if self.failures.lock().expect("lock").pop_front() == Some(true) {
            return Err(AwsError::NoAnswer {
                operation: "GetItem",
                reason: "throttled (scripted)".into(),
            });
        }
        Ok(value(self.stored.lock().expect("lock").clone()))
    }
}

impl RuleStore for ScriptedRuleStore {
    type Error = AwsError;

    fn rules_version(&self) -> impl Future<Output = Result<Option<u64>, AwsError>> + Send {
        std::future::ready(self.answer(Call::Version, |s| s.map(|s| s.version)))
    }

    fn load_rules(&self) -> impl Future<Output = Result<Option<StoredRules>, AwsError>> + Send {
        std::future::ready(self.answer(Call::Load, |s| s))
    }

    fn commit_rules(
        &self,
        _expected: Option<u64>,
        _put: &[Rule],
        _remove: &[RuleId],
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        std::future::ready(Ok(false))
    }
}

/// `AAPL above 200`, firing on every tick, as rule `aapl-200`.
fn aapl_200() -> Rule {
    rule(r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"every"}"#)
}

fn stored(version: u64, rules: Vec<Rule>, invalid: Vec<InvalidRule>) -> Option<StoredRules> {
    Some(StoredRules {
        version,
        rules,
        invalid,
    })
}

fn invalid(id: &str) -> InvalidRule {
    InvalidRule {
        id: id.into(),
        error: RulesError {
            location: "condition".into(),
            reason: "must start with \"above\" or \"below\"".into(),
        },
    }
}

struct Harness {
    rig: MemoryRig,
    refresher: RulesRefresher<ScriptedRuleStore>,
}

impl Harness {
    /// The in-memory pipeline with the specification's rules as the base, and a refresher over
    /// a store holding `initial`, loaded at T0.
    fn start(initial: Option<StoredRules>) -> Harness {
        let config = spec_config(Mode::Cross, RetryPolicy::new(2, 10, 20).expect("valid"), 1);
        let base = config.rules.clone();
        let rig = MemoryRig::new(config, ts(T0_MS));
        let store = ScriptedRuleStore::default();
        store.set(initial);
        let refresher = RulesRefresher::new(store, base, INTERVAL_S);
        let book = block_on_ready(refresher.load(rig.clock.now())).expect("loads");
        rig.pipeline.set_rules(book);
        assert_eq!(refresher.store().take_calls(), [Call::Load]);
        Harness { rig, refresher }
    }

    fn store(&self) -> &ScriptedRuleStore {
        self.refresher.store()
    }

    fn advance_s(&self, seconds: f64) {
        self.rig
            .clock
            .advance(Duration::from_millis((seconds * 1000.0) as u64));
    }

    fn refresh(&self) -> Refresh {
        block_on_ready(self.refresher.refresh(&self.rig.pipeline))
    }

    fn rule_ids(&self) -> Vec<String> {
        self.rig
            .pipeline
            .rules()
            .rules()
            .iter()
            .map(|rule| rule.id().to_string())
            .collect()
    }

    /// Processes one tick of AAPL at `price`, `second` seconds after T0; the rule ids that fired.
    fn tick(&self, price: f64, second: i64) -> Vec<String> {
        let body = format!(
            r#"{{"symbol":"AAPL","price":{price},"timestamp":{}}}"#,
            T0_MS + second * 1000
        );
        let report = block_on_ready(self.rig.pipeline.process(vec![("m", body)], None));
        match &report.outcomes[0].1 {
            Outcome::Accepted(accepted) => accepted
                .new_alerts()
                .map(|alert| alert.rule_id.to_string())
                .collect(),
            other => panic!("not accepted: {other:?}"),
        }
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(ms).expect("valid")
}

#[test]
fn a_store_never_written_leaves_the_base_rules_in_force() {
    let h = Harness::start(None);
    assert_eq!(h.rule_ids(), ["high", "low"]);
    h.advance_s(10.0);
    assert_eq!(h.refresh(), Refresh::Unchanged);
    assert_eq!(h.store().take_calls(), [Call::Version], "one cheap read");
    assert_eq!(h.tick(151.0, 1), ["high"]);
}

#[test]
fn batches_within_the_interval_read_nothing_and_a_check_after_it_reads_the_version_once() {
    let h = Harness::start(stored(3, vec![aapl_200()], Vec::new()));
    assert_eq!(h.rule_ids(), ["aapl-200"], "the stored rules, not the base");
    for second in 0..10 {
        assert_eq!(h.refresh(), Refresh::NotDue, "second {second}");
        h.tick(210.0, second);
        h.advance_s(0.999);
    }
    assert!(
        h.store().take_calls().is_empty(),
        "no read within the interval"
    );
    h.advance_s(0.01); // 10.0 s since the load
    assert_eq!(h.refresh(), Refresh::Unchanged);
    assert_eq!(h.store().take_calls(), [Call::Version], "exactly one read");
    assert_eq!(h.refresh(), Refresh::NotDue, "the interval starts again");
    h.advance_s(9.9);
    assert_eq!(h.refresh(), Refresh::NotDue);
    assert!(h.store().take_calls().is_empty());
}

#[test]
fn a_changed_version_loads_the_rules_and_the_next_batch_evaluates_with_them() {
    let h = Harness::start(None);
    assert_eq!(h.tick(210.0, 1), ["high"]);
    // Someone adds a rule (seeding the base rules, as `tickwatch rules add` does).
    let mut rules = h
        .refresher
        .base()
        .rules()
        .iter()
        .map(|r| (**r).clone())
        .collect::<Vec<_>>();
    rules.push(aapl_200());
    h.store().set(stored(1, rules, Vec::new()));
    h.advance_s(2.0);
    assert_eq!(h.refresh(), Refresh::NotDue);
    assert_eq!(
        h.tick(211.0, 2),
        Vec::<String>::new(),
        "not picked up before the interval"
    );
    h.advance_s(8.0);
    assert_eq!(h.refresh(), Refresh::Reloaded { version: Some(1) });
    assert_eq!(h.store().take_calls(), [Call::Version, Call::Load]);
    assert_eq!(h.rule_ids(), ["high", "low", "aapl-200"]);
    // `high` fired before and stays fired; the new rule fires on every tick above 200.
    assert_eq!(h.tick(212.0, 3), ["aapl-200"]);
    // Emptied again (every rule removed, then the version item too): back to the base rules.
    h.store().set(None);
    h.advance_s(10.0);
    assert_eq!(h.refresh(), Refresh::Reloaded { version: None });
    assert_eq!(h.rule_ids(), ["high", "low"]);
}

#[test]
fn a_failing_check_keeps_the_rules_in_force_and_tries_again_one_interval_later() {
    let h = Harness::start(stored(1, vec![aapl_200()], Vec::new()));
    h.store().set(stored(2, Vec::new(), Vec::new()));
    h.store().fail_next(&[true]);
    h.advance_s(10.0);
    assert_eq!(h.refresh(), Refresh::Failed);
    assert_eq!(h.store().take_calls(), [Call::Version]);
    assert_eq!(h.rule_ids(), ["aapl-200"], "the rules in force stay");
    assert_eq!(h.tick(210.0, 1), ["aapl-200"], "alerting goes on");
    assert_eq!(
        h.refresh(),
        Refresh::NotDue,
        "no read per batch while it fails"
    );
    assert!(h.store().take_calls().is_empty());
    // The version moved, the load fails: still the old rules, and still no read per batch.
    h.advance_s(10.0);
    h.store().fail_next(&[false, true]);
    assert_eq!(h.refresh(), Refresh::Failed);
    assert_eq!(h.store().take_calls(), [Call::Version, Call::Load]);
    assert_eq!(h.refresh(), Refresh::NotDue);
    assert!(h.store().take_calls().is_empty());
    // Healthy again: the next interval loads the change.
    h.advance_s(10.0);
    assert_eq!(h.refresh(), Refresh::Reloaded { version: Some(2) });
    assert!(h.rule_ids().is_empty());
}

#[test]
fn a_clock_that_went_back_makes_the_check_due() {
    let h = Harness::start(None);
    h.advance_s(5.0);
    assert_eq!(h.refresh(), Refresh::NotDue);
    let earlier = MemoryRig::new(
        spec_config(Mode::Cross, RetryPolicy::new(2, 10, 20).expect("valid"), 1),
        ts(T0_MS - 60_000),
    );
    assert_eq!(
        block_on_ready(h.refresher.refresh(&earlier.pipeline)),
        Refresh::Unchanged
    );
}

#[test]
fn invalid_rules_are_logged_once_per_load_and_skipped() {
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let h = Harness::start(stored(4, vec![aapl_200()], vec![invalid("bad-1")]));
        assert_eq!(h.rule_ids(), ["aapl-200"]);
        for _ in 0..3 {
            h.advance_s(10.0);
            assert_eq!(h.refresh(), Refresh::Unchanged);
        }
        h.store().set(stored(
            5,
            vec![aapl_200()],
            vec![invalid("bad-1"), invalid("bad-2")],
        ));
        h.advance_s(10.0);
        assert_eq!(h.refresh(), Refresh::Reloaded { version: Some(5) });
        assert_eq!(
            h.tick(210.0, 1),
            ["aapl-200"],
            "the valid rules still alert"
        );
    });
    let lines: Vec<serde_json::Value> = sink
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON log line"))
        .filter(|line: &serde_json::Value| {
            line["fields"]["message"] == "Stored rule is invalid; skipped."
        })
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|line| line["fields"]["rule_id"].as_str().expect("rule_id"))
        .collect();
    assert_eq!(
        ids,
        ["bad-1", "bad-1", "bad-2"],
        "once per load, not per check"
    );
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["fields"]["field"], "condition");
    assert_eq!(lines[0]["fields"]["version"], 4);
}

#[test]
fn stored_rules_that_make_no_rule_book_fail_the_load_and_a_refresh_keeps_the_old_ones() {
    let duplicate = vec![aapl_200(), aapl_200()];
    let store = ScriptedRuleStore::default();
    store.set(stored(1, duplicate.clone(), Vec::new()));
    let base = tickwatch_core::testing::spec_rules(Mode::Cross);
    let refresher = RulesRefresher::new(store, base, INTERVAL_S);
    let error = block_on_ready(refresher.load(ts(T0_MS))).expect_err("two rules, one id");
    assert!(matches!(error, LoadError::Rules(_)), "{error}");

    let h = Harness::start(stored(1, vec![aapl_200()], Vec::new()));
    h.store().set(stored(2, duplicate, Vec::new()));
    h.advance_s(10.0);
    assert_eq!(h.refresh(), Refresh::Failed);
    assert_eq!(h.rule_ids(), ["aapl-200"]);
}

#[test]
fn the_interval_is_clamped_to_its_bounds() {
    let base = tickwatch_core::testing::spec_rules(Mode::Cross);
    let interval = |seconds| {
        RulesRefresher::new(ScriptedRuleStore::default(), base.clone(), seconds).interval_ms()
    };
    assert_eq!(interval(0), 1_000);
    assert_eq!(interval(10), 10_000);
    assert_eq!(interval(u32::MAX), 3_600_000);
}
