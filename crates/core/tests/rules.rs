//! Rules as data through the pipeline over the in-memory ports: several rules firing on one tick,
//! stateless and stateful rules side by side, rules changed between batches
//! (`Pipeline::set_rules`), and what each `tickwatch rules` command writes (`plan_edit`).

use std::collections::BTreeSet;
use std::sync::Arc;

use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Phase, RuleEdit, RulePlan, plan_edit};
use tickwatch_core::testing::{MemoryRig, rule, rule_book};
use tickwatch_core::{
    Accepted, AlertOutcome, BatchReport, Outcome, PipelineConfig, Rule, RuleBook, RuleId, Symbol,
    Timestamp,
};

const NOW_MS: i64 = 1_795_703_400_000; // 2026-11-26T14:30:00Z
/// Tick times in these tests are seconds after this.
const START_MS: i64 = 1_795_700_000_000;

fn rig(rules: Arc<RuleBook>) -> MemoryRig {
    let config = PipelineConfig {
        rules,
        retry: RetryPolicy::new(3, 10, 200).expect("valid"),
        jitter_seed: 7,
    };
    MemoryRig::new(config, Timestamp::from_epoch_ms(NOW_MS).expect("valid"))
}

fn sym(text: &str) -> Symbol {
    Symbol::parse(text).expect("valid")
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_epoch_ms(START_MS + second * 1000).expect("valid")
}

/// A tick in a batch: (message id, symbol, price, second).
type Message<'a> = (&'a str, &'a str, f64, i64);

/// Processes one batch.
fn process(rig: &MemoryRig, messages: &[Message<'_>]) -> BatchReport<String> {
    let batch = messages
        .iter()
        .map(|&(id, symbol, price, second)| {
            let body = format!(
                r#"{{"symbol":"{symbol}","price":{price},"timestamp":{}}}"#,
                START_MS + second * 1000
            );
            (id.to_owned(), body.into_bytes())
        })
        .collect();
    tickwatch_core::testing::block_on_ready(rig.pipeline.process(batch, None))
}

/// A compact view of outcomes, by the rules that fired: `id=rule+rule` for new alerts (rule ids
/// sorted), `D:rule` a duplicate, `D*:rule` a duplicate announced now, `Q`, `R`, `S`, `F`, `X`.
fn summary(rig: &MemoryRig, report: &BatchReport<String>) -> Vec<String> {
    let stored = rig.store.alerts();
    let rule_of = |alert_id| {
        stored
            .iter()
            .find(|s| s.alert.alert_id == alert_id)
            .map_or_else(|| "?".to_owned(), |s| s.alert.rule_id.to_string())
    };
    report
        .outcomes
        .iter()
        .map(|(id, outcome)| {
            let what = match outcome {
                Outcome::Accepted(Accepted::Alerts(alerts)) => {
                    let mut parts: Vec<String> = alerts
                        .iter()
                        .map(|alert| match alert {
                            AlertOutcome::New(alert) => alert.rule_id.to_string(),
                            AlertOutcome::Duplicate {
                                alert_id,
                                announced_now,
                            } => {
                                let star = if *announced_now { "*" } else { "" };
                                format!("D{star}:{}", rule_of(*alert_id))
                            }
                        })
                        .collect();
                    parts.sort();
                    parts.join("+")
                }
                Outcome::Accepted(Accepted::Quiet) => "Q".into(),
                Outcome::Accepted(Accepted::Rearmed) => "R".into(),
                Outcome::Accepted(Accepted::Stale) => "S".into(),
                Outcome::Rejected(_) => "X".into(),
                Outcome::Failed(_) => "F".into(),
            };
            format!("{id}={what}")
        })
        .collect()
}

/// Every stored alert as `rule:symbol@second`, sorted.
fn stored(rig: &MemoryRig) -> Vec<String> {
    let mut alerts: Vec<String> = rig
        .store
        .alerts()
        .iter()
        .map(|s| {
            let second = (s.alert.timestamp.epoch_ms() - START_MS) / 1000;
            format!("{}:{}@{second}", s.alert.rule_id, s.alert.symbol)
        })
        .collect();
    alerts.sort();
    alerts
}

fn published_ids(rig: &MemoryRig) -> Vec<String> {
    rig.notifier
        .published()
        .iter()
        .map(|a| a.alert_id.to_string())
        .collect()
}

#[test]
fn two_rules_firing_on_one_tick_are_both_stored_and_announced() {
    // Each pair of rules holds on one AAPL tick at 250; stateful rules store their alerts with
    // the state, stateless ones by insertion, so every combination goes both ways.
    let cases: &[(&str, &[&str])] = &[
        (
            "two stateful rules (enter and once)",
            &[
                r#"{"id":"wide","symbols":"*","condition":"above 100","label":"wide move"}"#,
                r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"once","label":"AAPL breakout"}"#,
            ],
        ),
        (
            "two stateless rules (every)",
            &[
                r#"{"id":"wide","symbols":"*","condition":"above 100","fire":"every","label":"wide move"}"#,
                r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"every"}"#,
            ],
        ),
        (
            "one of each, prefix and exact",
            &[
                r#"{"id":"wide","symbols":"AA*","condition":"above 100","fire":"every","label":"wide move"}"#,
                r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","cooldown_seconds":60,"label":"AAPL breakout"}"#,
            ],
        ),
        (
            "above and below on one tick (HIGH and LOW from the same tick are both kept)",
            &[
                r#"{"id":"wide","symbols":"*","condition":"above 100"}"#,
                r#"{"id":"aapl-200","symbols":"AAPL","condition":"below 300","fire":"every","label":"under 300"}"#,
            ],
        ),
    ];
    for (name, jsons) in cases {
        let book = rule_book(jsons);
        let rig = rig(book.clone());
        let report = process(&rig, &[("m1", "AAPL", 250.0, 1)]);

        // The outcome lists both alerts, each new, each with its rule.
        let Outcome::Accepted(Accepted::Alerts(alerts)) = &report.outcomes[0].1 else {
            panic!("{name}: {:?}", report.outcomes)
        };
        assert_eq!(alerts.len(), 2, "{name}");
        assert_eq!(
            new_rule_ids(&report.outcomes[0].1),
            BTreeSet::from(["aapl-200".to_owned(), "wide".to_owned()]),
            "{name}"
        );
        assert_eq!(
            (report.stats.alerts, report.stats.published),
            (2, 2),
            "{name}"
        );

        // Both stored, both announced, each with its rule id, label, condition and policy.
        assert_eq!(stored(&rig), ["aapl-200:AAPL@1", "wide:AAPL@1"], "{name}");
        assert!(rig.store.alerts().iter().all(|s| s.notified), "{name}");
        let published = rig.notifier.published();
        assert_eq!(published.len(), 2, "{name}");
        for alert in &published {
            let rule = book.get(&alert.rule_id).expect("a rule of the book");
            assert_eq!(alert.label, rule.label(), "{name}: {}", alert.rule_id);
            assert_eq!(alert.kind, rule.condition().kind(), "{name}");
            assert_eq!(
                rule.condition().threshold(),
                Some(alert.threshold),
                "{name}"
            );
            assert_eq!(alert.fire, rule.fire(), "{name}");
            assert_eq!(
                (alert.symbol, alert.timestamp),
                (sym("AAPL"), at(1)),
                "{name}"
            );
            assert_eq!(alert.alert_id, alert.key().id(), "{name}");
        }
        assert_ne!(published[0].alert_id, published[1].alert_id, "{name}");
        let json = serde_json::to_value(published[0]).expect("serialisable");
        assert_eq!(json["rule_id"], published[0].rule_id.as_str(), "{name}");

        // Redelivered: both found, nothing new, nothing announced again.
        let again = process(&rig, &[("m1", "AAPL", 250.0, 1)]);
        assert_eq!(summary(&rig, &again), ["m1=D:aapl-200+D:wide"], "{name}");
        assert_eq!(
            (again.stats.alerts, again.stats.duplicates),
            (0, 2),
            "{name}"
        );
        assert_eq!(rig.notifier.published().len(), 2, "{name}");
    }
}

/// The rule ids of the new alerts of an outcome.
fn new_rule_ids(outcome: &Outcome) -> BTreeSet<String> {
    match outcome {
        Outcome::Accepted(accepted) => accepted
            .new_alerts()
            .map(|alert| alert.rule_id.to_string())
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn a_stateless_rule_alerts_on_a_late_tick_that_its_stateful_neighbour_ignores() {
    // `level` fires on every tick above 150 (no state); `cross` on entering (state). A late tick
    // is stale for `cross` but still a tick above 150 for `level`, as the specification's level
    // alerts are.
    let book = rule_book(&[
        r#"{"id":"level","symbols":"*","condition":"above 150","fire":"every"}"#,
        r#"{"id":"cross","symbols":"*","condition":"above 150","fire":"enter"}"#,
    ]);
    let messages: [Message<'_>; 8] = [
        ("enter", "AAPL", 160.0, 2),
        ("stay", "AAPL", 170.0, 3),
        ("late-above", "AAPL", 180.0, 1),
        ("late-inside", "AAPL", 100.0, 0),
        ("leave", "AAPL", 100.0, 4),
        ("again", "AAPL", 160.0, 5),
        ("twice", "AAPL", 160.0, 5),
        ("other", "MSFT", 155.0, 1),
    ];
    let expected = [
        "enter=cross+level",
        "stay=level",
        "late-above=level",
        "late-inside=S",
        "leave=R",
        "again=cross+level",
        "twice=D:cross+D:level",
        "other=cross+level",
    ];
    // The same answers in one batch, one tick at a time, or split anywhere.
    for sizes in [vec![8], vec![1], vec![3, 5], vec![2, 3, 3], vec![6, 2]] {
        let rig = rig(book.clone());
        let mut got = Vec::new();
        let mut rest = &messages[..];
        let mut stale = 0;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            let report = process(&rig, batch);
            got.extend(summary(&rig, &report));
            stale += report.stats.stale;
            rest = tail;
        }
        assert_eq!(got, expected, "batches of {sizes:?}");
        assert_eq!(
            stale, 1,
            "{sizes:?}: only the late tick that raised nothing counts as stale"
        );
        assert_eq!(
            stored(&rig),
            [
                "cross:AAPL@2",
                "cross:AAPL@5",
                "cross:MSFT@1",
                "level:AAPL@1",
                "level:AAPL@2",
                "level:AAPL@3",
                "level:AAPL@5",
                "level:MSFT@1",
            ],
            "{sizes:?}"
        );
        // The late tick moved nothing: the state is the newest tick's, `cross` fired.
        let state = rig.store.state(&sym("AAPL")).expect("AAPL has state");
        assert_eq!(state.last_seen, at(5), "{sizes:?}");
        let phases: Vec<(String, Phase)> = state
            .rules
            .iter()
            .map(|r| (r.rule.to_string(), r.phase))
            .collect();
        assert_eq!(phases, [("cross".to_owned(), Phase::Fired)], "{sizes:?}");
        assert_eq!(published_ids(&rig).len(), stored(&rig).len(), "{sizes:?}");
    }
}

/// One step of a script: the rules to put in force first (if any), a batch, and what each of its
/// messages should do.
type Step<'a> = (Option<Arc<RuleBook>>, &'a [Message<'a>], &'a [&'a str]);

/// Runs a script through one pipeline, changing its rules between batches.
fn script(name: &str, first: Arc<RuleBook>, steps: &[Step<'_>]) -> MemoryRig {
    let rig = rig(first);
    for (number, (rules, batch, expected)) in steps.iter().enumerate() {
        if let Some(rules) = rules {
            rig.pipeline.set_rules(rules.clone());
            assert!(
                Arc::ptr_eq(&rig.pipeline.rules(), rules),
                "{name}: the new rules are in force"
            );
        }
        let report = process(&rig, batch);
        assert_eq!(
            summary(&rig, &report),
            *expected,
            "{name}, step {}",
            number + 1
        );
    }
    rig
}

const HIGH: &str = r#"{"id":"high","symbols":"*","condition":"above 150"}"#;
const AAPL_200: &str =
    r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","label":"AAPL breakout"}"#;
const AAPL_EVERY: &str =
    r#"{"id":"aapl-every","symbols":"AAPL","condition":"above 200","fire":"every"}"#;
const ONCE: &str = r#"{"id":"once","symbols":"*","condition":"above 150","fire":"once"}"#;

fn paused(json: &str) -> Rule {
    let mut doc = rule(json).doc().clone();
    doc.paused = true;
    Rule::from_doc(doc).expect("valid")
}

fn book_of(rules: Vec<Rule>) -> Arc<RuleBook> {
    Arc::new(RuleBook::new(rules).expect("valid"))
}

#[test]
fn a_rule_added_between_batches_takes_effect_on_the_next_batch() {
    let rig = script(
        "add",
        rule_book(&[HIGH]),
        &[
            (None, &[("a1", "AAPL", 210.0, 1)], &["a1=high"]),
            (None, &[("a2", "AAPL", 220.0, 2)], &["a2=Q"]),
            (
                Some(rule_book(&[HIGH, AAPL_200])),
                &[("a3", "AAPL", 230.0, 3), ("m3", "MSFT", 230.0, 3)],
                // The new rule starts armed and fires at once; `high` keeps its state.
                &["a3=aapl-200", "m3=high"],
            ),
            (None, &[("a4", "AAPL", 240.0, 4)], &["a4=Q"]),
        ],
    );
    let added = rig
        .notifier
        .published()
        .into_iter()
        .find(|a| a.rule_id.as_str() == "aapl-200")
        .expect("announced");
    assert_eq!(
        added.label.map(|l| l.to_string()).as_deref(),
        Some("AAPL breakout")
    );
}

#[test]
fn a_paused_rule_stops_alerting_and_alerts_again_once_resumed() {
    script(
        "pause a stateless rule",
        rule_book(&[HIGH, AAPL_EVERY]),
        &[
            (None, &[("a1", "AAPL", 210.0, 1)], &["a1=aapl-every+high"]),
            (
                Some(book_of(vec![rule(HIGH), paused(AAPL_EVERY)])),
                &[("a2", "AAPL", 220.0, 2), ("a3", "AAPL", 230.0, 3)],
                &["a2=Q", "a3=Q"],
            ),
            (
                Some(rule_book(&[HIGH, AAPL_EVERY])),
                &[("a4", "AAPL", 240.0, 4)],
                &["a4=aapl-every"],
            ),
        ],
    );
    script(
        "pause a stateful rule",
        rule_book(&[HIGH, AAPL_EVERY]),
        &[
            (
                Some(book_of(vec![paused(HIGH), rule(AAPL_EVERY)])),
                &[("a1", "AAPL", 210.0, 1), ("m1", "MSFT", 160.0, 1)],
                &["a1=aapl-every", "m1=Q"],
            ),
            (
                Some(rule_book(&[HIGH, AAPL_EVERY])),
                &[("m2", "MSFT", 170.0, 2)],
                &["m2=high"],
            ),
        ],
    );
}

#[test]
fn a_rearmed_once_rule_fires_again() {
    let once = rule(ONCE);
    script(
        "rearm",
        book_of(vec![once.clone()]),
        &[
            (None, &[("a1", "AAPL", 160.0, 1)], &["a1=once"]),
            // Done for AAPL: leaving and coming back does not fire it.
            (
                None,
                &[("a2", "AAPL", 100.0, 2), ("a3", "AAPL", 160.0, 3)],
                &["a2=Q", "a3=Q"],
            ),
            // The same rules loaded again (a refresh that found nothing new) re-arm nothing.
            (
                Some(book_of(vec![once.clone()])),
                &[("a4", "AAPL", 165.0, 4)],
                &["a4=Q"],
            ),
            // Re-armed: a new version starts armed for every symbol, and fires once more.
            (
                Some(book_of(vec![once.with_version(2)])),
                &[("a5", "AAPL", 170.0, 5), ("a6", "AAPL", 175.0, 6)],
                &["a5=once", "a6=Q"],
            ),
        ],
    );
}

/// Pausing and resuming keep a rule's version "so its state survives" (rules/edit.rs,
/// `Rule::restarts`): a rule that fired must not fire again just because it was paused and
/// resumed, also when another rule of the symbol moved the symbol's state during the pause.
#[test]
fn a_paused_rule_keeps_its_state_while_other_rules_move_the_symbol() {
    script(
        "a done once rule stays done",
        rule_book(&[HIGH, ONCE]),
        &[
            (None, &[("a1", "AAPL", 160.0, 1)], &["a1=high+once"]),
            (
                Some(book_of(vec![rule(HIGH), paused(ONCE)])),
                &[("a2", "AAPL", 100.0, 2)],
                &["a2=R"],
            ),
            (
                Some(rule_book(&[HIGH, ONCE])),
                &[("a3", "AAPL", 160.0, 3)],
                &["a3=high"],
            ),
        ],
    );
    script(
        "an enter rule that never left its zone does not enter again",
        rule_book(&[HIGH, AAPL_200]),
        &[
            (None, &[("a1", "AAPL", 210.0, 1)], &["a1=aapl-200+high"]),
            (
                Some(book_of(vec![rule(HIGH), paused(AAPL_200)])),
                &[("a2", "AAPL", 211.0, 2)],
                &["a2=Q"],
            ),
            (
                Some(rule_book(&[HIGH, AAPL_200])),
                &[("a3", "AAPL", 212.0, 3)],
                &["a3=Q"],
            ),
        ],
    );
}

// What each `tickwatch rules` command writes.

const STORE_NEXT_VERSION: u64 = 5;

/// The rules a store at version 4 holds: the defaults as seeded, `a` (written at 3) and `once`
/// (re-armed at 4).
fn stored_rules() -> Vec<Rule> {
    let base = RuleBook::defaults();
    let mut rules: Vec<Rule> = base.rules().iter().map(|r| (**r).clone()).collect();
    rules.push(rule(
        r#"{"id":"a","symbols":"AAPL","condition":"above 200","version":3}"#,
    ));
    rules.push(rule(
        r#"{"id":"once","symbols":"*","condition":"above 300","fire":"once","version":4}"#,
    ));
    rules
}

/// A plan as text: `seeded; put id@version[ paused][ "label"] ...; remove id ...`.
fn show(plan: &RulePlan) -> String {
    let put: Vec<String> = plan
        .put
        .iter()
        .map(|rule| {
            let mut text = format!("{}@{}", rule.id(), rule.version());
            if rule.paused() {
                text.push_str(" paused");
            }
            if let Some(label) = rule.label() {
                text.push_str(&format!(" {:?}", label.as_str()));
            }
            text
        })
        .collect();
    let remove: Vec<String> = plan.remove.iter().map(RuleId::to_string).collect();
    format!(
        "{}put {}; remove {}",
        if plan.seeded { "seeded; " } else { "" },
        if put.is_empty() {
            "-".into()
        } else {
            put.join(" ")
        },
        if remove.is_empty() {
            "-".into()
        } else {
            remove.join(" ")
        },
    )
}

fn id(text: &str) -> RuleId {
    RuleId::parse(text).expect("valid")
}

#[test]
fn plan_edit_decides_what_each_command_writes() {
    let base: Vec<Rule> = RuleBook::defaults()
        .rules()
        .iter()
        .map(|r| (**r).clone())
        .collect();
    let current = stored_rules();
    let new_rule = || rule(r#"{"id":"b","symbols":"MSFT","condition":"below 20"}"#);
    let a_edited = || rule(r#"{"id":"a","symbols":"AAPL","condition":"above 210"}"#);
    let a_labelled =
        || rule(r#"{"id":"a","symbols":"AAPL","condition":"above 200","label":"big"}"#);
    let a_paused = || rule(r#"{"id":"a","symbols":"AAPL","condition":"above 200","paused":true}"#);
    // As `rules export` wrote it: with its version.
    let a_exported = || rule(r#"{"id":"a","symbols":"AAPL","condition":"above 200","version":3}"#);
    let once_labelled = || {
        rule(r#"{"id":"once","symbols":"*","condition":"above 300","fire":"once","label":"top"}"#)
    };
    let import = |rules: Vec<Rule>, replace| RuleEdit::Import { rules, replace };
    let unwritten: Option<&[Rule]> = None;
    let written = Some(current.as_slice());
    let paused_store = vec![a_paused().with_version(3)];

    let cases: Vec<(&str, Option<&[Rule]>, RuleEdit, &str)> = vec![
        (
            "add to an unwritten store seeds the base rules",
            unwritten,
            RuleEdit::Add(new_rule()),
            "seeded; put high@1 low@1 b@5; remove -",
        ),
        (
            "add",
            written,
            RuleEdit::Add(new_rule()),
            "put b@5; remove -",
        ),
        (
            "an edit that changes the condition restarts the rule",
            written,
            RuleEdit::Replace(a_edited()),
            "put a@5; remove -",
        ),
        (
            "an edit of the label only keeps the version",
            written,
            RuleEdit::Replace(a_labelled()),
            "put a@3 \"big\"; remove -",
        ),
        (
            "an edit that only pauses keeps the version",
            written,
            RuleEdit::Replace(a_paused()),
            "put a@3 paused; remove -",
        ),
        (
            "pause",
            written,
            RuleEdit::Pause(id("a")),
            "put a@3 paused; remove -",
        ),
        (
            "resume",
            Some(paused_store.as_slice()),
            RuleEdit::Resume(id("a")),
            "put a@3; remove -",
        ),
        (
            "pause on an unwritten store seeds the others",
            unwritten,
            RuleEdit::Pause(id("high")),
            "seeded; put low@1 high@1 paused; remove -",
        ),
        (
            "rearm bumps the version",
            written,
            RuleEdit::Rearm(id("once")),
            "put once@5; remove -",
        ),
        ("rm", written, RuleEdit::Remove(id("a")), "put -; remove a"),
        (
            "rm on an unwritten store stores the rest",
            unwritten,
            RuleEdit::Remove(id("high")),
            "seeded; put low@1; remove -",
        ),
        (
            "import without replace: unchanged rules are not rewritten",
            written,
            import(vec![a_exported(), once_labelled(), new_rule()], false),
            "put once@4 \"top\" b@5; remove -",
        ),
        (
            "an exported list imported back changes nothing",
            written,
            import(current.clone(), false),
            "put -; remove -",
        ),
        (
            "import with replace deletes what the list does not have",
            written,
            import(vec![a_exported(), new_rule()], true),
            "put b@5; remove high low once",
        ),
        (
            "import onto an unwritten store seeds the base rules",
            unwritten,
            import(vec![new_rule()], false),
            "seeded; put high@1 low@1 b@5; remove -",
        ),
        (
            "import with replace onto an unwritten store keeps only the list",
            unwritten,
            import(vec![new_rule()], true),
            "seeded; put b@5; remove -",
        ),
    ];
    for (name, current, edit, expected) in cases {
        let plan = plan_edit(current, &base, edit, STORE_NEXT_VERSION)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(show(&plan), expected, "{name}");
    }
}

#[test]
fn plan_edit_refuses_bad_changes_naming_the_field() {
    let base: Vec<Rule> = RuleBook::defaults()
        .rules()
        .iter()
        .map(|r| (**r).clone())
        .collect();
    let current = stored_rules();
    let written = Some(current.as_slice());
    let cases: Vec<(&str, Option<&[Rule]>, RuleEdit, &str, &str)> = vec![
        (
            "add of a taken id",
            written,
            RuleEdit::Add(rule(r#"{"id":"a","symbols":"*","condition":"below 1"}"#)),
            "id",
            "a is taken",
        ),
        (
            "add of an id the base rules use, on an unwritten store",
            None,
            RuleEdit::Add(rule(r#"{"id":"high","symbols":"*","condition":"below 1"}"#)),
            "id",
            "high is taken",
        ),
        (
            "edit of a missing rule",
            written,
            RuleEdit::Replace(rule(r#"{"id":"zz","symbols":"*","condition":"below 1"}"#)),
            "id",
            "no rule has the id zz",
        ),
        (
            "pause of a missing rule",
            written,
            RuleEdit::Pause(id("zz")),
            "id",
            "zz",
        ),
        (
            "resume of a missing rule",
            written,
            RuleEdit::Resume(id("zz")),
            "id",
            "zz",
        ),
        (
            "rearm of a missing rule",
            written,
            RuleEdit::Rearm(id("zz")),
            "id",
            "zz",
        ),
        (
            "rm of a missing rule",
            written,
            RuleEdit::Remove(id("zz")),
            "id",
            "zz",
        ),
        (
            "an import that names one id twice",
            written,
            RuleEdit::Import {
                rules: vec![
                    rule(r#"{"id":"c","symbols":"*","condition":"below 1"}"#),
                    rule(r#"{"id":"c","symbols":"*","condition":"below 2"}"#),
                ],
                replace: false,
            },
            "id",
            "c is used by two rules",
        ),
    ];
    for (name, current, edit, field, reason) in cases {
        let error = plan_edit(current, &base, edit, STORE_NEXT_VERSION).expect_err(name);
        assert_eq!(error.location, field, "{name}: {error}");
        assert!(error.reason.contains(reason), "{name}: {error}");
    }
}

/// A rule store in memory whose first `losses` commits find another writer came first (after
/// which that writer's change, `rival`, is what the store holds).
struct RacedStore {
    held: std::sync::Mutex<Option<tickwatch_core::ports::StoredRules>>,
    losses: std::sync::atomic::AtomicU32,
    rival: Vec<tickwatch_core::Rule>,
}

impl tickwatch_core::ports::RuleStore for RacedStore {
    type Error = tickwatch_core::testing::InjectedFault;

    async fn rules_version(&self) -> Result<Option<u64>, Self::Error> {
        Ok(self.held.lock().expect("lock").as_ref().map(|s| s.version))
    }

    async fn load_rules(&self) -> Result<Option<tickwatch_core::ports::StoredRules>, Self::Error> {
        Ok(self.held.lock().expect("lock").clone())
    }

    async fn commit_rules(
        &self,
        expected: Option<u64>,
        put: &[tickwatch_core::Rule],
        remove: &[tickwatch_core::RuleId],
    ) -> Result<bool, Self::Error> {
        let mut held = self.held.lock().expect("lock");
        let version = held.as_ref().map(|s| s.version);
        if self.losses.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.losses
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            *held = Some(tickwatch_core::ports::StoredRules {
                version: version.unwrap_or(0) + 1,
                rules: self.rival.clone(),
                invalid: Vec::new(),
            });
            return Ok(false);
        }
        if version != expected {
            return Ok(false);
        }
        let mut rules: Vec<tickwatch_core::Rule> = held
            .as_ref()
            .map(|s| s.rules.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !remove.contains(&r.id()) && !put.iter().any(|p| p.id() == r.id()))
            .collect();
        rules.extend(put.iter().cloned());
        *held = Some(tickwatch_core::ports::StoredRules {
            version: version.unwrap_or(0) + 1,
            rules,
            invalid: Vec::new(),
        });
        Ok(true)
    }
}

#[test]
fn apply_edit_plans_again_after_a_lost_commit_and_names_a_missing_rule() {
    use tickwatch_core::rules::{EditError, apply_edit};
    use tickwatch_core::testing::block_on_ready;
    let base: Vec<tickwatch_core::Rule> = RuleBook::defaults()
        .rules()
        .iter()
        .map(|r| (**r).clone())
        .collect();
    let spike = rule(r#"{"id":"spike","symbols":"*","condition":"above 500"}"#);
    let store = RacedStore {
        held: std::sync::Mutex::new(None),
        losses: std::sync::atomic::AtomicU32::new(1),
        rival: vec![spike.clone()],
    };

    // The first commit loses to a writer that replaced everything with `spike`: pausing `high`
    // is planned again over that, where `high` is no longer in force.
    let lost = block_on_ready(apply_edit(&store, &base, RuleEdit::Pause(rule_id("high"))));
    assert!(
        matches!(&lost, Err(EditError::Missing(id)) if id.as_str() == "high"),
        "{lost:?}"
    );
    assert_eq!(
        lost.map(|_| ()).expect_err("missing").to_string(),
        "id: no rule has the id high"
    );

    // Over what the store holds now, pausing `spike` commits.
    let plan = block_on_ready(apply_edit(&store, &base, RuleEdit::Pause(rule_id("spike"))))
        .expect("committed");
    assert!(plan.put.iter().all(|r| r.paused()));
    let held = store.held.lock().expect("lock").clone().expect("written");
    assert_eq!(held.version, 2);
    assert!(
        held.rules
            .iter()
            .any(|r| r.id().as_str() == "spike" && r.paused())
    );

    // Every change that names a rule needs it in force; adding does not.
    for edit in [
        RuleEdit::Resume(rule_id("nope")),
        RuleEdit::Rearm(rule_id("nope")),
        RuleEdit::Remove(rule_id("nope")),
        RuleEdit::Replace(rule(r#"{"id":"nope","symbols":"*","condition":"below 1"}"#)),
    ] {
        let refused = block_on_ready(apply_edit(&store, &base, edit));
        assert!(matches!(refused, Err(EditError::Missing(_))), "{refused:?}");
    }
    assert_eq!(
        store.held.lock().expect("lock").as_ref().map(|s| s.version),
        Some(2)
    );
}

fn rule_id(text: &str) -> tickwatch_core::RuleId {
    tickwatch_core::RuleId::parse(text).expect("valid id")
}
