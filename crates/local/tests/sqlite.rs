//! The SQLite store against the port contracts, on disk, with two writers and across reopenings.

use tickwatch_core::ports::{Advance, Advanced, AlertStore, Classify, ErrorClass, StateStore};
use tickwatch_core::rules::{SymbolState, Zone};
use tickwatch_core::testing::block_on_ready;
use tickwatch_core::testing::contract::{check_alert_store, check_state_store, sample_alert};
use tickwatch_core::{AlertKind, Symbol, Timestamp};
use tickwatch_local::notify::error_chain;
use tickwatch_local::sqlite::SqliteError;
use tickwatch_local::{AlertQuery, Order, SqliteStore};

fn sym(text: &str) -> Symbol {
    Symbol::parse(text).expect("valid")
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_epoch_ms(ms).expect("valid")
}

#[test]
fn keeps_the_port_contracts_in_memory_and_on_disk() {
    let memory = SqliteStore::in_memory().expect("opens");
    block_on_ready(check_alert_store(&memory, "M"));
    block_on_ready(check_state_store(&memory, "M"));

    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
    block_on_ready(check_alert_store(&disk, "D"));
    block_on_ready(check_state_store(&disk, "D"));
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let alert = sample_alert(sym("AAPL"), 1, AlertKind::High);
    let state = SymbolState {
        zone: Zone::High,
        since: ts(5),
        last_seen: ts(9),
    };
    {
        let store = SqliteStore::open(&path).expect("opens");
        let change = Advance {
            symbol: sym("AAPL"),
            expected_last_seen: None,
            next: state,
            alerts: vec![alert],
        };
        assert!(matches!(
            block_on_ready(store.advance(&[change]))[0],
            Ok(Advanced::Applied)
        ));
        assert!(block_on_ready(store.mark_notified(&[alert.key()]))[0].is_ok());
    }
    let store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.states().expect("readable"), [(sym("AAPL"), state)]);
    let stored = store
        .query(&AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        })
        .expect("readable");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].alert, alert);
    assert!(stored[0].notified);
}

#[test]
fn two_writers_on_one_file_cannot_both_win() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    let first = SqliteStore::open(&path).expect("opens");
    let second = SqliteStore::open(&path).expect("opens again");
    let symbol = sym("AAPL");
    // Both read "no state" and try to move from it, in separate processes' worth of connections.
    let change = |zone, ms| Advance {
        symbol,
        expected_last_seen: None,
        next: SymbolState {
            zone,
            since: ts(ms),
            last_seen: ts(ms),
        },
        alerts: vec![sample_alert(
            symbol,
            ms,
            if zone == Zone::High {
                AlertKind::High
            } else {
                AlertKind::Low
            },
        )],
    };
    let a = block_on_ready(first.advance(&[change(Zone::High, 10)]))
        .remove(0)
        .expect("no error");
    let b = block_on_ready(second.advance(&[change(Zone::Low, 11)]))
        .remove(0)
        .expect("no error");
    assert_eq!(
        (a, b),
        (
            Advanced::Applied,
            Advanced::Conflict(first.states().expect("states").first().map(|(_, s)| *s))
        )
    );
    assert_eq!(
        first.count().expect("count"),
        1,
        "the loser stored no alert"
    );
    assert_eq!(second.states().expect("states")[0].1.zone, Zone::High);
}

#[test]
fn queries_filter_and_order_by_tick_time() {
    let store = SqliteStore::in_memory().expect("opens");
    let alerts = [
        sample_alert(sym("AAPL"), 30, AlertKind::High),
        sample_alert(sym("MSFT"), 10, AlertKind::Low),
        sample_alert(sym("AAPL"), 20, AlertKind::Low),
        sample_alert(sym("NVDA"), 40, AlertKind::High),
    ];
    assert!(
        block_on_ready(store.insert(&alerts))
            .iter()
            .all(Result::is_ok)
    );
    assert!(block_on_ready(store.mark_notified(&[alerts[0].key()]))[0].is_ok());
    let base = 1_795_700_000_000;
    let query = |q: AlertQuery| -> Vec<String> {
        store
            .query(&AlertQuery {
                limit: if q.limit == 0 { 100 } else { q.limit },
                ..q
            })
            .expect("query")
            .iter()
            .map(|s| format!("{}@{}", s.alert.symbol, s.alert.timestamp.epoch_ms() - base))
            .collect()
    };
    assert_eq!(
        query(AlertQuery::default()),
        ["MSFT@10", "AAPL@20", "AAPL@30", "NVDA@40"]
    );
    assert_eq!(
        query(AlertQuery {
            symbol: Some(sym("AAPL")),
            ..Default::default()
        }),
        ["AAPL@20", "AAPL@30"]
    );
    assert_eq!(
        query(AlertQuery {
            kind: Some(AlertKind::High),
            ..Default::default()
        }),
        ["AAPL@30", "NVDA@40"]
    );
    assert_eq!(
        query(AlertQuery {
            since: Some(ts(base + 20)),
            until: Some(ts(base + 40)),
            ..Default::default()
        }),
        ["AAPL@20", "AAPL@30"],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        query(AlertQuery {
            pending_only: true,
            ..Default::default()
        }),
        ["MSFT@10", "AAPL@20", "NVDA@40"]
    );
    assert_eq!(
        query(AlertQuery {
            limit: 2,
            ..Default::default()
        }),
        ["MSFT@10", "AAPL@20"]
    );
    assert_eq!(
        query(AlertQuery {
            order: Order::NewestFirst,
            ..Default::default()
        }),
        ["NVDA@40", "AAPL@30", "AAPL@20", "MSFT@10"]
    );
    assert_eq!(
        query(AlertQuery {
            order: Order::NewestFirst,
            limit: 2,
            ..Default::default()
        }),
        ["NVDA@40", "AAPL@30"],
        "the limit keeps the newest"
    );
    assert_eq!(
        query(AlertQuery {
            order: Order::NewestFirst,
            pending_only: true,
            kind: Some(AlertKind::Low),
            ..Default::default()
        }),
        ["AAPL@20", "MSFT@10"]
    );
}

#[test]
fn alerts_of_one_instant_list_newest_first_by_id() {
    let store = SqliteStore::in_memory().expect("opens");
    let alerts: Vec<_> = ["AAPL", "MSFT", "NVDA", "BRK.B", "X"]
        .into_iter()
        .map(|s| sample_alert(sym(s), 7, AlertKind::High))
        .collect();
    assert!(
        block_on_ready(store.insert(&alerts))
            .iter()
            .all(Result::is_ok)
    );
    let ids: Vec<String> = store
        .query(&AlertQuery {
            order: Order::NewestFirst,
            limit: 10,
            ..AlertQuery::default()
        })
        .expect("query")
        .iter()
        .map(|s| s.alert.alert_id.to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
}

#[test]
fn query_each_streams_rows_and_stops_at_the_callers_error() {
    let store = SqliteStore::in_memory().expect("opens");
    let alerts: Vec<_> = (0..50)
        .map(|ms| sample_alert(sym("AAPL"), ms, AlertKind::High))
        .collect();
    assert!(
        block_on_ready(store.insert(&alerts))
            .iter()
            .all(Result::is_ok)
    );
    let query = AlertQuery {
        order: Order::NewestFirst,
        limit: 1_000,
        ..AlertQuery::default()
    };
    let mut seen = Vec::new();
    store
        .query_each(&query, |stored| {
            seen.push(stored.alert.timestamp);
            Ok::<_, SqliteError>(())
        })
        .expect("query");
    assert_eq!(seen.len(), 50);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    #[derive(Debug)]
    enum Stop {
        Enough,
        Store,
    }
    impl From<SqliteError> for Stop {
        fn from(_: SqliteError) -> Stop {
            Stop::Store
        }
    }
    let mut calls = 0;
    let stopped = store.query_each(&query, |_| {
        calls += 1;
        if calls == 3 {
            Err(Stop::Enough)
        } else {
            Ok(())
        }
    });
    assert!(matches!(stopped, Err(Stop::Enough)), "{stopped:?}");
    assert_eq!(calls, 3, "no row is read after the caller stops");
    assert_eq!(
        store.count().expect("count"),
        50,
        "the store is usable again"
    );
}

#[test]
fn database_errors_say_each_thing_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_database = dir.path().join("notes.db");
    std::fs::write(&not_a_database, "x".repeat(4096)).expect("write");
    let error = SqliteStore::open(&not_a_database).expect_err("refused");
    assert_eq!(error_chain(&error), "sqlite: file is not a database");

    let busy = SqliteError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        None,
    ));
    assert_eq!(error_chain(&busy), "sqlite: database is locked");
    let with_message = SqliteError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("database is locked".into()),
    ));
    assert_eq!(error_chain(&with_message), "sqlite: database is locked");
}

#[test]
fn a_database_made_by_something_else_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    // (name, its SQL, the message)
    let cases: &[(&str, &str, &str)] = &[
        (
            "other_alerts.db",
            "CREATE TABLE alerts (id INTEGER PRIMARY KEY, message TEXT);",
            "not a tickwatch database (table alerts has an unexpected schema)",
        ),
        (
            "other_state.db",
            "CREATE TABLE symbol_state (symbol TEXT PRIMARY KEY, zone TEXT);",
            "not a tickwatch database (table symbol_state has an unexpected schema)",
        ),
        (
            "other_app.db",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
            "not a tickwatch database (it has a table \"users\" that tickwatch does not make)",
        ),
        (
            "same_version.db",
            "CREATE TABLE alerts (id INTEGER PRIMARY KEY); PRAGMA user_version = 1;",
            "not a tickwatch database (table alerts has an unexpected schema)",
        ),
        (
            "empty_version_1.db",
            "PRAGMA user_version = 1;",
            "not a tickwatch database (its tables are missing)",
        ),
    ];
    for (name, sql, expected) in cases {
        let path = dir.path().join(name);
        rusqlite::Connection::open(&path)
            .expect("opens")
            .execute_batch(sql)
            .expect("foreign schema");
        let schema = |path: &std::path::Path| -> (String, String) {
            let connection = rusqlite::Connection::open(path).expect("opens");
            let tables: Vec<String> = connection
                .prepare("SELECT sql FROM sqlite_schema ORDER BY name")
                .expect("prepare")
                .query_map([], |row| row.get::<_, Option<String>>(0))
                .expect("query")
                .map(|sql| sql.expect("row").unwrap_or_default())
                .collect();
            let journal: String = connection
                .pragma_query_value(None, "journal_mode", |row| row.get(0))
                .expect("journal mode");
            (tables.join("\n"), journal)
        };
        let before = schema(&path);
        let error = SqliteStore::open(&path).expect_err("refused");
        assert_eq!(error_chain(&error), *expected, "{name}");
        assert_eq!(error.class(), ErrorClass::Permanent);
        assert_eq!(schema(&path), before, "{name}: the file was changed");
    }
}

#[test]
fn a_fresh_database_is_created_whole_and_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    drop(SqliteStore::open(&path).expect("creates"));
    let connection = rusqlite::Connection::open(&path).expect("opens");
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    assert_eq!(version, 1);
    drop(connection);
    SqliteStore::open(&path).expect("reopens");
}

#[test]
fn a_database_from_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("future.db");
    {
        let connection = rusqlite::Connection::open(&path).expect("opens");
        connection
            .pragma_update(None, "user_version", 99)
            .expect("sets version");
    }
    let error = SqliteStore::open(&path).expect_err("refused");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[test]
fn lock_contention_is_transient_and_everything_else_permanent() {
    let busy = SqliteError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        None,
    ));
    assert_eq!(busy.class(), ErrorClass::Transient);
    let full = SqliteError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        None,
    ));
    assert_eq!(full.class(), ErrorClass::Permanent);
    assert_eq!(
        SqliteError::BadRow("x".into()).class(),
        ErrorClass::Permanent
    );
}

#[test]
fn rows_edited_into_nonsense_are_reported_not_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).expect("opens");
    let alert = sample_alert(sym("AAPL"), 1, AlertKind::High);
    assert!(block_on_ready(store.insert(&[alert]))[0].is_ok());
    rusqlite::Connection::open(&path)
        .expect("opens")
        .execute("UPDATE alerts SET alert_id = 'not-an-id'", [])
        .expect("edits");
    let error = block_on_ready(store.fetch(&[alert.key()]))
        .remove(0)
        .expect_err("bad row");
    assert!(error.to_string().contains("alert_id"), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
}
