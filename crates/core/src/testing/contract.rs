//! The port contracts as executable checks, for adapter test suites.
//!
//! Every store adapter (in memory, SQLite, DynamoDB) must behave the same way, because the
//! pipeline's guarantees rest on it. Each adapter's tests call these functions against a real
//! instance; they panic with a description on the first violation. Symbols are prefixed with
//! `prefix` so several checks can share one table.

use crate::alert::{Alert, AlertKey, AlertKind};
use crate::ports::{Advance, Advanced, AlertStore, Inserted, StateStore};
use crate::rules::{Mode, SymbolState, Zone};
use crate::tick::{Price, Symbol, Timestamp};

fn symbol(prefix: &str, name: &str) -> Symbol {
    Symbol::parse(&format!("{prefix}{name}")).expect("contract symbols are valid")
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(1_795_700_000_000 + ms).expect("contract times are valid")
}

/// An alert for the checks.
pub fn sample_alert(symbol: Symbol, at_ms: i64, kind: AlertKind) -> Alert {
    let key = AlertKey {
        symbol,
        at: at(at_ms),
        kind,
    };
    Alert {
        alert_id: key.id(),
        symbol,
        kind,
        price: Price::new(if kind == AlertKind::High {
            151.25
        } else {
            48.5
        })
        .expect("valid price"),
        threshold: if kind == AlertKind::High { 150.0 } else { 50.0 },
        mode: Mode::Cross,
        timestamp: key.at,
        processed_at: at(at_ms + 7),
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
    let c = sample_alert(symbol(prefix, "B"), 1, AlertKind::High);

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
    assert!(ok(store.insert(&[]).await, "empty insert").is_empty());
}

/// Compare-and-set of symbol state, atomic with the alerts a change raises; a conflict reports
/// the state the store holds.
pub async fn check_state_store<S: StateStore + AlertStore>(store: &S, prefix: &str) {
    let s = symbol(prefix, "S");
    let high = SymbolState {
        zone: Zone::High,
        since: at(10),
        last_seen: at(10),
    };
    let raised = sample_alert(s, 10, AlertKind::High);
    let first = Advance {
        symbol: s,
        expected_last_seen: None,
        next: high,
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
        next: SymbolState {
            zone: Zone::Low,
            since: at(11),
            last_seen: at(11),
        },
        alerts: vec![stale_alert],
    };
    let older = Advance {
        expected_last_seen: Some(at(9)),
        ..stale.clone()
    };
    assert_eq!(
        ok(store.advance(&[stale, older]).await, "conflicting advances"),
        [
            Advanced::Conflict(Some(high)),
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
    let normal = SymbolState {
        zone: Zone::Normal,
        since: at(12),
        last_seen: at(13),
    };
    let next = Advance {
        symbol: s,
        expected_last_seen: Some(at(10)),
        next: normal,
        alerts: vec![raised],
    };
    let other = symbol(prefix, "T");
    let quiet = SymbolState {
        zone: Zone::Normal,
        since: at(5),
        last_seen: at(5),
    };
    let fresh = Advance {
        symbol: other,
        expected_last_seen: None,
        next: quiet,
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
        next: quiet,
        alerts: Vec::new(),
    };
    assert_eq!(
        ok(store.advance(&[probe(other), probe(s)]).await, "probe both"),
        [
            Advanced::Conflict(Some(quiet)),
            Advanced::Conflict(Some(normal))
        ],
        "answers follow the order asked"
    );
}
