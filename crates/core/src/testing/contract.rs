//! The port contracts as executable checks, for adapter test suites.
//!
//! Every store adapter (in memory, SQLite, DynamoDB) must behave the same way, because the
//! pipeline's guarantees rest on it. Each adapter's tests call these functions against a real
//! instance; they panic with a description on the first violation. Symbols are prefixed with
//! `prefix` so several checks can share one table.

use crate::alert::{Alert, AlertKey, AlertKind};
use crate::ports::{Advance, Advanced, AlertStore, Inserted, StateStore};
use crate::rules::{Condition, Fire, Phase, RuleId, RuleState, SymbolState};
use crate::tick::{Price, Symbol, Tick, Timestamp, Volume};

fn symbol(prefix: &str, name: &str) -> Symbol {
    Symbol::parse(&format!("{prefix}{name}")).expect("contract symbols are valid")
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(1_795_700_000_000 + ms).expect("contract times are valid")
}

/// The id of the rule the sample alerts of `kind` come from: `high` or `low`.
pub fn sample_rule(kind: AlertKind) -> RuleId {
    RuleId::parse(match kind {
        AlertKind::High => "high",
        AlertKind::Low => "low",
    })
    .expect("valid rule id")
}

/// A state last seen at `last_ms` in which the rule of `fired` (if any) has fired, its last
/// alert at `last_ms`.
fn state(last_ms: i64, fired: Option<AlertKind>) -> SymbolState {
    SymbolState {
        last_seen: at(last_ms),
        rules: fired
            .map(|kind| RuleState {
                rule: sample_rule(kind),
                version: 1,
                phase: Phase::Fired,
                last_alert: Some(at(last_ms)),
                window: None,
            })
            .into_iter()
            .collect(),
    }
}

/// An alert for the checks.
pub fn sample_alert(symbol: Symbol, at_ms: i64, kind: AlertKind) -> Alert {
    let key = AlertKey {
        symbol,
        at: at(at_ms),
        rule: sample_rule(kind),
    };
    Alert {
        alert_id: key.id(),
        rule_id: key.rule,
        label: None,
        symbol,
        kind,
        condition: Condition::level(kind, if kind == AlertKind::High { 150.0 } else { 50.0 }),
        price: Price::new(if kind == AlertKind::High {
            151.25
        } else {
            48.5
        })
        .expect("valid price"),
        threshold: if kind == AlertKind::High { 150.0 } else { 50.0 },
        fire: Fire::Enter,
        timestamp: key.at,
        processed_at: at(at_ms + 7),
    }
}

/// An alert of a window rule (`volume 3x over 1h`): its threshold is a volume, and its condition
/// must survive the store.
pub fn sample_window_alert(symbol: Symbol, at_ms: i64) -> Alert {
    let mut alert = sample_alert(symbol, at_ms, AlertKind::High);
    alert.rule_id = RuleId::parse("volume-3x").expect("valid rule id");
    alert.alert_id = alert.key().id();
    alert.condition = "volume 3x over 1h".parse().expect("valid condition");
    alert.threshold = 4500.5;
    alert
}

/// A rule state with a full window (60 intervals of values), as a busy symbol's window rule has.
fn window_state(last_ms: i64) -> RuleState {
    let condition: Condition = "rise 10% within 1h".parse().expect("valid condition");
    let window = condition.window().expect("a window condition");
    let mut series = window.series();
    for minute in 0..61 {
        let tick = Tick {
            symbol: Symbol::parse("W").expect("valid symbol"),
            price: Price::new(100.0 + f64::from(minute) / 7.0).expect("valid price"),
            at: at(last_ms - (60 - i64::from(minute)) * 60_000),
            volume: Volume::ZERO,
        };
        window.observe(&mut series, &tick);
    }
    RuleState {
        rule: RuleId::parse("rise-10").expect("valid rule id"),
        version: 3,
        phase: Phase::Fired,
        last_alert: Some(at(last_ms)),
        window: Some(Box::new(series)),
    }
}

fn ok<T, E: std::fmt::Display>(results: Vec<Result<T, E>>, what: &str) -> Vec<T> {
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("{what}: item {i} failed: {e}")))
        .collect()
}

/// Idempotent insertion, lookup and the notified flag.
pub async fn check_alert_store<S: AlertStore>(store: &S, prefix: &str) {
    let a = sample_alert(symbol(prefix, "A"), 1, AlertKind::High);
    let b = sample_alert(symbol(prefix, "A"), 2, AlertKind::Low);
    let c = sample_window_alert(symbol(prefix, "B"), 1);

    let first = ok(store.insert(&[a, b]).await, "insert new alerts");
    assert_eq!(
        first,
        [Inserted::New, Inserted::New],
        "new alerts are reported new"
    );
    let again = ok(
        store.insert(&[a, c]).await,
        "insert a known and a new alert",
    );
    assert_eq!(
        again,
        [Inserted::AlreadyThere { notified: false }, Inserted::New],
        "a second insert of the same key reports it and changes nothing"
    );

    let fetched = ok(store.fetch(&[a.key(), b.key(), c.key()]).await, "fetch");
    assert_eq!(fetched.len(), 3, "one answer per key");
    for (stored, alert) in fetched.iter().zip([a, b, c]) {
        let stored = stored.unwrap_or_else(|| panic!("{alert:?} should be stored"));
        assert_eq!(stored.alert, alert, "stored alerts read back exactly");
        assert!(!stored.notified, "new alerts are not notified");
    }
    let missing = sample_alert(symbol(prefix, "C"), 1, AlertKind::High);
    assert_eq!(
        ok(store.fetch(&[missing.key()]).await, "fetch unknown"),
        [None],
        "unknown keys are absent"
    );

    ok(store.mark_notified(&[a.key()]).await, "mark notified");
    let fetched = ok(store.fetch(&[a.key(), b.key()]).await, "fetch after mark");
    assert!(
        fetched[0].is_some_and(|s| s.notified),
        "marked alert is notified"
    );
    assert!(
        fetched[1].is_some_and(|s| !s.notified),
        "other alerts are untouched"
    );
    assert_eq!(
        ok(store.insert(&[a]).await, "insert notified alert"),
        [Inserted::AlreadyThere { notified: true }],
        "inserting a notified alert reports it notified"
    );
    assert!(ok(store.insert::<Alert>(&[]).await, "empty insert").is_empty());
}

/// Compare-and-set of symbol state, atomic with the alerts a change raises; a conflict reports
/// the state the store holds.
pub async fn check_state_store<S: StateStore + AlertStore>(store: &S, prefix: &str) {
    let s = symbol(prefix, "S");
    let high = state(10, Some(AlertKind::High));
    let raised = sample_alert(s, 10, AlertKind::High);
    let first = Advance {
        symbol: s,
        expected_last_seen: None,
        next: high.clone(),
        alerts: vec![raised],
    };
    // Expecting a state where there is none conflicts, and says there is none.
    let guessed = Advance {
        expected_last_seen: Some(at(3)),
        ..first.clone()
    };
    assert_eq!(
        ok(
            store.advance(std::slice::from_ref(&guessed)).await,
            "advance from a wrong guess"
        ),
        [Advanced::Conflict(None)],
        "a wrong guess conflicts and reports no state"
    );
    assert_eq!(
        ok(
            store.advance(std::slice::from_ref(&first)).await,
            "first advance"
        ),
        [Advanced::Applied]
    );
    let stored = ok(store.fetch(&[raised.key()]).await, "fetch raised");
    assert!(
        stored[0].is_some_and(|st| st.alert == raised && !st.notified),
        "the advance stored its alert"
    );

    // A writer that read no state (or an older one) loses, stores nothing, and learns the truth.
    let stale_alert = sample_alert(s, 11, AlertKind::Low);
    let stale = Advance {
        symbol: s,
        expected_last_seen: None,
        next: state(11, Some(AlertKind::Low)),
        alerts: vec![stale_alert],
    };
    let older = Advance {
        expected_last_seen: Some(at(9)),
        ..stale.clone()
    };
    assert_eq!(
        ok(store.advance(&[stale, older]).await, "conflicting advances"),
        [
            Advanced::Conflict(Some(high.clone())),
            Advanced::Conflict(Some(high))
        ],
        "an advance from a state that is not current conflicts and reports the current one exactly"
    );
    assert_eq!(
        ok(
            store.fetch(&[stale_alert.key()]).await,
            "fetch after conflict"
        ),
        [None],
        "a conflicting advance stores no alert"
    );

    // The current writer moves on; alerts already stored are fine (idempotent).
    // Several rule states, every phase, with and without a last alert: stored and read back
    // exactly.
    let mut normal = state(13, Some(AlertKind::Low));
    normal.rules.push(RuleState {
        rule: RuleId::parse("once.rule-1").expect("valid rule id"),
        version: u64::MAX,
        phase: Phase::Done,
        last_alert: None,
        window: None,
    });
    normal.rules.push(RuleState {
        rule: RuleId::parse(&"x".repeat(64)).expect("valid rule id"),
        version: 7,
        phase: Phase::Armed,
        last_alert: Some(at(2)),
        window: None,
    });
    normal.rules.push(window_state(13));
    let next = Advance {
        symbol: s,
        expected_last_seen: Some(at(10)),
        next: normal.clone(),
        alerts: vec![raised],
    };
    let other = symbol(prefix, "T");
    let quiet = state(5, None);
    let fresh = Advance {
        symbol: other,
        expected_last_seen: None,
        next: quiet.clone(),
        alerts: Vec::new(),
    };
    assert_eq!(
        ok(
            store.advance(&[next, fresh.clone()]).await,
            "advance two symbols"
        ),
        [Advanced::Applied, Advanced::Applied],
        "independent symbols advance together; re-storing an existing alert is not a conflict"
    );
    let probe = |symbol| Advance {
        symbol,
        expected_last_seen: None,
        next: quiet.clone(),
        alerts: Vec::new(),
    };
    assert_eq!(
        ok(store.advance(&[probe(other), probe(s)]).await, "probe both"),
        [
            Advanced::Conflict(Some(quiet.clone())),
            Advanced::Conflict(Some(normal.clone()))
        ],
        "answers follow the order asked"
    );

    // A store that reads ahead reads exactly what it holds, in the order asked, none for a
    // symbol it never saw (given twice, too).
    let unseen = symbol(prefix, "U");
    if let Some(loaded) = store.load(&[s, unseen, other, unseen]).await {
        assert_eq!(
            ok(loaded, "load"),
            [Some(normal), None, Some(quiet), None],
            "states read ahead"
        );
    }
}
