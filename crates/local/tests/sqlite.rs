//! The SQLite store against the port contracts, on disk, with two writers and across reopenings.

use tickwatch_core::ports::{
    Advance, Advanced, AlertStore, Classify, ErrorClass, RuleStore, StateStore,
};
use tickwatch_core::rules::{Phase, RuleState, SymbolState};
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

/// A state last seen at `ms` in which the rule of `kind` has fired.
fn fired(kind: AlertKind, ms: i64) -> SymbolState {
    SymbolState {
        last_seen: ts(ms),
        rules: vec![RuleState {
            rule: tickwatch_core::testing::contract::sample_rule(kind),
            version: 1,
            phase: Phase::Fired,
            last_alert: None,
            window: None,
        }],
    }
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
    let state = fired(AlertKind::High, 9);
    {
        let store = SqliteStore::open(&path).expect("opens");
        let change = Advance {
            symbol: sym("AAPL"),
            expected_last_seen: None,
            next: state.clone(),
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
    let change = |kind, ms| Advance {
        symbol,
        expected_last_seen: None,
        next: fired(kind, ms),
        alerts: vec![sample_alert(symbol, ms, kind)],
    };
    let a = block_on_ready(first.advance(&[change(AlertKind::High, 10)]))
        .remove(0)
        .expect("no error");
    let b = block_on_ready(second.advance(&[change(AlertKind::Low, 11)]))
        .remove(0)
        .expect("no error");
    assert_eq!(
        (a, b),
        (
            Advanced::Applied,
            Advanced::Conflict(
                first
                    .states()
                    .expect("states")
                    .first()
                    .map(|(_, s)| s.clone())
            )
        )
    );
    assert_eq!(
        first.count().expect("count"),
        1,
        "the loser stored no alert"
    );
    assert_eq!(
        second.states().expect("states")[0].1,
        fired(AlertKind::High, 10)
    );
}

/// States read ahead: what the file holds, none for a symbol it never held, and what another
/// connection stored since (each call catches up with the log first).
#[test]
fn states_read_ahead_know_this_stores_writes_and_anothers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let first = SqliteStore::open(&path).expect("opens");
    let create = |symbol, ms| Advance {
        symbol,
        expected_last_seen: None,
        next: fired(AlertKind::High, ms),
        alerts: Vec::new(),
    };
    let load = |store: &SqliteStore, symbols: &[Symbol]| -> Vec<Option<SymbolState>> {
        block_on_ready(store.load(symbols))
            .expect("SQLite reads ahead")
            .into_iter()
            .map(|state| state.expect("read"))
            .collect()
    };
    let advance = |store: &SqliteStore, change: Advance| {
        block_on_ready(store.advance(&[change]))
            .remove(0)
            .expect("no error")
    };
    assert_eq!(advance(&first, create(sym("AAPL"), 1)), Advanced::Applied);
    assert_eq!(
        load(&first, &[sym("AAPL"), sym("MSFT")]),
        [Some(fired(AlertKind::High, 1)), None]
    );
    // Stored by another connection: known at the next call, and a write against it conflicts.
    let second = SqliteStore::open(&path).expect("opens again");
    assert_eq!(advance(&second, create(sym("TSLA"), 3)), Advanced::Applied);
    assert_eq!(
        load(&first, &[sym("TSLA")]),
        [Some(fired(AlertKind::High, 3))]
    );
    assert_eq!(
        advance(&second, create(sym("NVDA"), 4)),
        Advanced::Applied,
        "written after the first store's last read"
    );
    assert_eq!(
        advance(&first, create(sym("NVDA"), 5)),
        Advanced::Conflict(Some(fired(AlertKind::High, 4)))
    );
    // A store opened now reads everything.
    let third = SqliteStore::open(&path).expect("opens a third time");
    assert_eq!(
        load(&third, &[sym("AAPL"), sym("TSLA"), sym("NVDA")]),
        [1, 3, 4].map(|ms| Some(fired(AlertKind::High, ms)))
    );
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
            "CREATE TABLE state_log (symbol TEXT PRIMARY KEY, zone TEXT);",
            "not a tickwatch database (table state_log has an unexpected schema)",
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
    assert_eq!(schema_version(&path), 6);
    SqliteStore::open(&path).expect("reopens");
}

/// The state and rules tables of schema versions 2 to 4.
const STATE_AND_RULES_V2_TO_4: &str = "
    CREATE TABLE symbol_state (symbol TEXT PRIMARY KEY, last_seen_ms INTEGER NOT NULL,
        rules BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE rules (rule_id TEXT PRIMARY KEY, definition TEXT NOT NULL,
        version INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE rules_version (only INTEGER PRIMARY KEY CHECK (only = 1),
        version INTEGER NOT NULL);";

/// The alerts table of schema versions 2 to 4: version 2's columns, then `more` (`, condition
/// TEXT` from version 3 on).
fn alerts_table_v2_to_4(more: &str) -> String {
    format!(
        "CREATE TABLE alerts (
            symbol TEXT NOT NULL, timestamp TEXT NOT NULL, rule_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('HIGH', 'LOW')), alert_id TEXT NOT NULL,
            price REAL NOT NULL, threshold REAL NOT NULL, fire TEXT NOT NULL, label TEXT,
            processed_at TEXT NOT NULL,
            notified INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)){more},
            PRIMARY KEY (symbol, timestamp, rule_id)) WITHOUT ROWID;"
    )
}

/// Writes a database as tickwatch with schema 4 left it (3: without the board tables): two
/// alerts, the first announced, the second not; a third, a window alert, announced.
/// The board tables of schema versions 4 and 5.
const BOARD_V4_TO_5: &str =
    "CREATE TABLE board_symbols (symbol TEXT PRIMARY KEY, price REAL NOT NULL,
            tick_ms INTEGER NOT NULL, ticks INTEGER NOT NULL, points TEXT NOT NULL,
            last_alert TEXT, flush INTEGER NOT NULL) WITHOUT ROWID;
         CREATE INDEX board_symbols_by_flush ON board_symbols (flush);
         CREATE TABLE board_alerts (seq INTEGER PRIMARY KEY, alert TEXT NOT NULL,
            announced INTEGER NOT NULL CHECK (announced IN (0, 1)));
         CREATE TABLE board_writer (only INTEGER PRIMARY KEY CHECK (only = 1),
            pid INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
            started_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, flush INTEGER NOT NULL,
            totals TEXT NOT NULL, alerts_skipped INTEGER NOT NULL);";

fn version_4_database(path: &std::path::Path, version: i64) {
    rusqlite::Connection::open(path)
        .expect("creates")
        .execute_batch(&format!(
            "{alerts}
             CREATE INDEX alerts_by_time ON alerts (timestamp);
             CREATE INDEX alerts_pending ON alerts (timestamp) WHERE notified = 0;
             {STATE_AND_RULES_V2_TO_4}
             {board}
             INSERT INTO alerts VALUES ('MSFT', '2026-11-26T14:30:00.000Z', 'low', 'LOW',
                '00000000000000000000000000000001', 48.5, 50, 'enter', NULL,
                '2026-11-26T14:30:01.000Z', 1, NULL);
             INSERT INTO alerts VALUES ('AAPL', '2026-11-26T14:30:02.500Z', 'high', 'HIGH',
                '00000000000000000000000000000002', 151.25, 150, 'every', 'note',
                '2026-11-26T14:30:03.000Z', 0, 'above 150');
             INSERT INTO alerts VALUES ('AAPL', '2026-11-26T14:30:05.000Z', 'vol', 'HIGH',
                '00000000000000000000000000000003', 151, 3, 'every', NULL,
                '2026-11-26T14:30:06.000Z', 1, 'volume 3x over 1h');
             PRAGMA user_version = {version};",
            alerts = alerts_table_v2_to_4(", condition TEXT"),
            board = if version >= 4 { BOARD_V4_TO_5 } else { "" }
        ))
        .expect("a version 4 database");
}

#[test]
fn version_3_and_4_databases_are_migrated_keeping_their_alerts_and_announcements() {
    for version in [3, 4] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        version_4_database(&path, version);
        let store = SqliteStore::open(&path).expect("migrates");
        assert_eq!(schema_version(&path), 6, "version {version}");
        let listed = |pending_only: bool| -> Vec<(String, String, String, bool, String)> {
            store
                .query(&AlertQuery {
                    pending_only,
                    limit: 10,
                    ..AlertQuery::default()
                })
                .expect("readable")
                .iter()
                .map(|stored| {
                    (
                        stored.alert.alert_id.to_string(),
                        stored.alert.timestamp.to_string(),
                        stored.alert.condition.to_string(),
                        stored.notified,
                        format!(
                            "{} {:?} {}",
                            stored.alert.processed_at,
                            stored.alert.label.map(|l| l.to_string()),
                            stored.alert.fire
                        ),
                    )
                })
                .collect()
        };
        assert_eq!(
            listed(false),
            [
                (
                    "00000000000000000000000000000001".into(),
                    "2026-11-26T14:30:00.000Z".into(),
                    "below 50".into(),
                    true,
                    "2026-11-26T14:30:01.000Z None enter".into()
                ),
                (
                    "00000000000000000000000000000002".into(),
                    "2026-11-26T14:30:02.500Z".into(),
                    "above 150".into(),
                    false,
                    "2026-11-26T14:30:03.000Z Some(\"note\") every".into()
                ),
                (
                    "00000000000000000000000000000003".into(),
                    "2026-11-26T14:30:05.000Z".into(),
                    "volume 3x over 1h".into(),
                    true,
                    "2026-11-26T14:30:06.000Z None every".into()
                ),
            ],
            "version {version}: every alert kept as it was, announced or not"
        );
        let pending = store
            .query(&AlertQuery {
                pending_only: true,
                limit: 10,
                ..AlertQuery::default()
            })
            .expect("readable");
        assert_eq!(pending.len(), 1);
        assert_eq!(store.pending_count().expect("counts"), 1);
        block_on_ready(store.mark_notified(&[pending[0].alert.key()]))
            .into_iter()
            .for_each(|r| r.expect("marks"));
        assert!(listed(false).iter().all(|row| row.3), "all announced now");
        assert_eq!(announced_marks(&path), (3, 0));
        assert_eq!(store.board_writer().expect("a board"), None);
        drop(store);
        SqliteStore::open(&path).expect("reopens as version 5");
    }
}

#[test]
fn a_version_4_database_with_a_row_that_does_not_parse_is_left_as_it_was() {
    unmigratable_database_is_left_as_it_was(
        |path| version_4_database(path, 4),
        "UPDATE alerts SET timestamp = 'yesterday' WHERE rule_id = 'vol'",
        "timestamp",
        ("SELECT count(*) FROM alerts WHERE notified = 1", 4, 2),
    );
}

/// Writes an old database with `write` and edits a row of it with `edit`: opening it must be
/// refused with an error that names `named`, and leave the file as it was: `(count_sql,
/// version, count)`, the schema version it keeps and what a count of its old table still says.
/// A version 5 database: one row per symbol state, AAPL's `high` rule fired, MSFT's armed.
fn version_5_database(path: &std::path::Path) {
    let connection = rusqlite::Connection::open(path).expect("creates");
    connection
        .execute_batch(&format!(
            "CREATE TABLE alerts (seq INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL,
                at_ms INTEGER NOT NULL, rule_id TEXT NOT NULL, kind TEXT NOT NULL,
                alert_id BLOB NOT NULL, price REAL NOT NULL, threshold REAL NOT NULL,
                fire TEXT NOT NULL, label TEXT, processed_ms INTEGER NOT NULL, condition TEXT);
             CREATE UNIQUE INDEX alerts_by_key ON alerts (at_ms, symbol, rule_id);
             CREATE TABLE alerts_announced (only INTEGER PRIMARY KEY CHECK (only = 1),
                through_seq INTEGER NOT NULL);
             INSERT INTO alerts_announced VALUES (1, 0);
             CREATE TABLE alerts_announced_above (seq INTEGER PRIMARY KEY);
             {STATE_AND_RULES_V2_TO_4}
             {BOARD_V4_TO_5}
             PRAGMA user_version = 5;"
        ))
        .expect("a version 5 database");
    for (symbol, state) in [
        ("AAPL", fired(AlertKind::High, 1_795_703_400_000)),
        (
            "MSFT",
            SymbolState {
                last_seen: ts(1_795_703_402_000),
                rules: Vec::new(),
            },
        ),
    ] {
        connection
            .execute(
                "INSERT INTO symbol_state VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    symbol,
                    state.last_seen.epoch_ms(),
                    tickwatch_core::rules::encode_rule_states(&state.rules)
                ],
            )
            .expect("a state row");
    }
}

#[test]
fn a_version_5_database_moves_its_states_into_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    version_5_database(&path);
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(schema_version(&path), 6);
    let expected = [
        (sym("AAPL"), fired(AlertKind::High, 1_795_703_400_000)),
        (
            sym("MSFT"),
            SymbolState {
                last_seen: ts(1_795_703_402_000),
                rules: Vec::new(),
            },
        ),
    ];
    assert_eq!(store.states().expect("readable"), expected);
    // The compare-and-set works from the migrated states.
    let change = Advance {
        symbol: sym("MSFT"),
        expected_last_seen: Some(ts(1_795_703_402_000)),
        next: fired(AlertKind::Low, 1_795_703_403_000),
        alerts: Vec::new(),
    };
    assert_eq!(
        block_on_ready(store.advance(&[change]))
            .remove(0)
            .expect("no error"),
        Advanced::Applied
    );
    drop(store);
    let reopened = SqliteStore::open(&path).expect("reopens");
    assert_eq!(
        reopened.states().expect("readable")[1].1,
        fired(AlertKind::Low, 1_795_703_403_000)
    );
}

#[test]
fn a_version_5_database_that_cannot_be_migrated_is_left_as_it_was() {
    unmigratable_database_is_left_as_it_was(
        version_5_database,
        "UPDATE symbol_state SET symbol = 'bad symbol' WHERE symbol = 'MSFT'",
        "symbol state of \"bad symbol\"",
        ("SELECT count(*) FROM symbol_state", 5, 2),
    );
}

fn unmigratable_database_is_left_as_it_was(
    write: impl Fn(&std::path::Path),
    edit: &str,
    named: &str,
    (count_sql, version, count): (&str, i64, i64),
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    write(&path);
    rusqlite::Connection::open(&path)
        .expect("opens")
        .execute(edit, [])
        .expect("edits");
    let error = SqliteStore::open(&path).expect_err("refused");
    assert!(error.to_string().contains(named), "{error}");
    let rows: i64 = rusqlite::Connection::open(&path)
        .expect("opens")
        .query_row(count_sql, [], |row| row.get(0))
        .expect("the old table is still there");
    assert_eq!((schema_version(&path), rows), (version, count));
}

/// The high-water mark of announced alerts and how many are announced above it.
fn announced_marks(path: &std::path::Path) -> (i64, i64) {
    rusqlite::Connection::open(path)
        .expect("opens")
        .query_row(
            "SELECT through_seq, (SELECT count(*) FROM alerts_announced_above)
             FROM alerts_announced",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("reads the marks")
}

fn notified(store: &SqliteStore, alerts: &[tickwatch_core::Alert]) -> Vec<bool> {
    let keys: Vec<_> = alerts.iter().map(|a| a.key()).collect();
    block_on_ready(store.fetch(&keys))
        .into_iter()
        .map(|r| r.expect("fetches").expect("stored").notified)
        .collect()
}

/// A database in a new directory with `n` alerts of AAPL stored (1 ms apart), none announced.
fn store_with_alerts(
    n: i64,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    SqliteStore,
    Vec<tickwatch_core::Alert>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).expect("opens");
    let alerts: Vec<_> = (1..=n)
        .map(|ms| sample_alert(sym("AAPL"), ms, AlertKind::High))
        .collect();
    for result in block_on_ready(store.insert(&alerts)) {
        result.expect("stores");
    }
    (dir, path, store, alerts)
}

fn mark(store: &SqliteStore, alerts: &[&tickwatch_core::Alert]) {
    let keys: Vec<_> = alerts.iter().map(|a| a.key()).collect();
    for result in block_on_ready(store.mark_notified(&keys)) {
        result.expect("marks");
    }
}

#[test]
fn announcements_out_of_order_wait_above_the_mark_until_it_reaches_them() {
    let (_dir, path, store, alerts) = store_with_alerts(5);
    mark(&store, &[&alerts[2], &alerts[4]]);
    assert_eq!(notified(&store, &alerts), [false, false, true, false, true]);
    assert_eq!(announced_marks(&path), (0, 2));
    assert_eq!(store.pending_count().expect("counts"), 3);
    let pending: Vec<i64> = store
        .query(&AlertQuery {
            pending_only: true,
            limit: 10,
            ..AlertQuery::default()
        })
        .expect("lists")
        .iter()
        .map(|stored| stored.alert.timestamp.epoch_ms())
        .collect();
    let at = |i: usize| alerts[i].timestamp.epoch_ms();
    assert_eq!(pending, [at(0), at(1), at(3)]);

    mark(&store, &[&alerts[0]]);
    assert_eq!(
        announced_marks(&path),
        (1, 2),
        "the mark moves to the first gap"
    );
    // A second store (another process) remembers nothing of what this one stored.
    let other = SqliteStore::open(&path).expect("opens");
    mark(&other, &[&alerts[3], &alerts[1]]);
    assert_eq!(notified(&store, &alerts), [true; 5]);
    assert_eq!(
        announced_marks(&path),
        (5, 0),
        "the mark passed everything announced above it, which is forgotten"
    );
    mark(&store, &[&alerts[0], &alerts[2]]);
    assert_eq!(
        announced_marks(&path),
        (5, 0),
        "marking again changes nothing"
    );
}

#[test]
fn rows_deleted_by_hand_neither_stall_the_mark_nor_hand_their_place_to_a_new_alert() {
    let (_dir, path, store, alerts) = store_with_alerts(3);
    let raw = rusqlite::Connection::open(&path).expect("opens");
    raw.execute("DELETE FROM alerts WHERE seq = 2", [])
        .expect("deletes");
    mark(&store, &[&alerts[0], &alerts[2]]);
    assert_eq!(announced_marks(&path), (3, 0));

    raw.execute("DELETE FROM alerts", []).expect("deletes all");
    let new = sample_alert(sym("MSFT"), 1, AlertKind::Low);
    assert_eq!(
        block_on_ready(store.insert(&[new]))[0]
            .as_ref()
            .expect("stores"),
        &tickwatch_core::ports::Inserted::New
    );
    assert_eq!(notified(&store, &[new]), [false], "not under the mark");
    assert_eq!(store.pending_count().expect("counts"), 1);
}

#[test]
fn a_large_insert_tells_new_alerts_from_known_ones_row_by_row() {
    use tickwatch_core::ports::Inserted;
    let store = SqliteStore::in_memory().expect("opens");
    let alerts: Vec<_> = (0..300)
        .map(|ms| sample_alert(sym("AAPL"), ms, AlertKind::High))
        .collect();
    // Some already stored (one of them announced), and one key twice in the call, in a
    // statement of many rows and in the rows left over after them.
    let known = [&alerts[5], &alerts[70], &alerts[299]];
    let first: Vec<_> = known.iter().map(|a| **a).collect();
    for result in block_on_ready(store.insert(&first)) {
        result.expect("stores");
    }
    mark(&store, &[&alerts[70]]);
    let mut call = alerts.clone();
    call.insert(10, alerts[3]);
    call.push(alerts[298]);
    let outcomes: Vec<Inserted> = block_on_ready(store.insert(&call))
        .into_iter()
        .map(|r| r.expect("stores"))
        .collect();
    let expected: Vec<Inserted> = call
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let n = alerts
                .iter()
                .position(|a| a.key() == alert.key())
                .expect("one of them");
            if n == 70 {
                Inserted::AlreadyThere { notified: true }
            } else if n == 5 || n == 299 || i == 10 || i == call.len() - 1 {
                Inserted::AlreadyThere { notified: false }
            } else {
                Inserted::New
            }
        })
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(store.count().expect("counts"), 300);
    let all: Vec<&tickwatch_core::Alert> = alerts.iter().collect();
    mark(&store, &all);
    assert_eq!(store.pending_count().expect("counts"), 0);
}

#[test]
fn a_version_2_database_gains_the_alerts_condition_and_keeps_its_alerts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v2.db");
    rusqlite::Connection::open(&path)
        .expect("creates")
        .execute_batch(&format!(
            "{alerts}
             {STATE_AND_RULES_V2_TO_4}
             INSERT INTO alerts VALUES ('AAPL', '2026-11-26T14:30:00.000Z', 'low', 'LOW',
                '00000000000000000000000000000000', 48.5, 50, 'enter', NULL,
                '2026-11-26T14:30:01.000Z', 1);
             PRAGMA user_version = 2;",
            alerts = alerts_table_v2_to_4("")
        ))
        .expect("a version 2 database");
    let store = SqliteStore::open(&path).expect("migrates");
    let window = tickwatch_core::testing::contract::sample_window_alert(sym("MSFT"), 5);
    assert!(
        block_on_ready(store.insert(&[window]))
            .iter()
            .all(Result::is_ok)
    );
    let alerts = store
        .query(&AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        })
        .expect("readable");
    let mut conditions: Vec<String> = alerts
        .iter()
        .map(|stored| stored.alert.condition.to_string())
        .collect();
    conditions.sort();
    assert_eq!(
        conditions,
        ["below 50", "volume 3x over 1h"],
        "an old alert's condition is its level; a new one's is stored"
    );
    assert!(
        alerts.iter().any(|stored| stored.notified),
        "the old alert stays notified"
    );
    drop(store);
    assert_eq!(schema_version(&path), 6);
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

/// Writes a database as tickwatch 0.1 (schema version 1) left it.
fn version_1_database(path: &std::path::Path) {
    let connection = rusqlite::Connection::open(path).expect("opens");
    connection
        .execute_batch(
            "CREATE TABLE alerts (
                symbol TEXT NOT NULL, timestamp TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('HIGH', 'LOW')), alert_id TEXT NOT NULL,
                price REAL NOT NULL, threshold REAL NOT NULL,
                mode TEXT NOT NULL CHECK (mode IN ('cross', 'level')), processed_at TEXT NOT NULL,
                notified INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)),
                PRIMARY KEY (symbol, timestamp, kind)) WITHOUT ROWID;
             CREATE INDEX alerts_by_time ON alerts (timestamp);
             CREATE INDEX alerts_pending ON alerts (timestamp) WHERE notified = 0;
             CREATE TABLE symbol_state (
                symbol TEXT PRIMARY KEY, zone TEXT NOT NULL, since_ms INTEGER NOT NULL,
                last_seen_ms INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO alerts VALUES ('AAPL', '2026-11-26T14:30:00.000Z', 'HIGH',
                'c646ed7184a02dc26212544c8b713409', 151.25, 150, 'cross', '2026-11-26T14:30:01.000Z', 1);
             INSERT INTO alerts VALUES ('MSFT', '2026-11-26T14:30:02.000Z', 'LOW',
                'caf7c80c38a8478ae941e3c884d945da', 40, 50, 'level', '2026-11-26T14:30:03.000Z', 0);
             INSERT INTO symbol_state VALUES ('AAPL', 'high', 1795703400000, 1795703400000);
             INSERT INTO symbol_state VALUES ('MSFT', 'normal', 1795703402000, 1795703402000);
             PRAGMA user_version = 1;",
        )
        .expect("writes version 1");
}

#[test]
fn a_version_1_database_is_migrated_keeping_its_alerts_and_zones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    version_1_database(&path);
    let store = SqliteStore::open(&path).expect("migrates");
    let alerts = store
        .query(&AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        })
        .expect("readable");
    let summary: Vec<(String, String, String, bool)> = alerts
        .iter()
        .map(|stored| {
            (
                stored.alert.symbol.to_string(),
                stored.alert.rule_id.to_string(),
                stored.alert.fire.to_string(),
                stored.notified,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("AAPL".into(), "high".into(), "enter".into(), true),
            ("MSFT".into(), "low".into(), "every".into(), false),
        ]
    );
    assert_eq!(
        alerts[0].alert.alert_id.to_string(),
        "c646ed7184a02dc26212544c8b713409",
        "stored alerts keep their ids"
    );
    let states = store.states().expect("readable");
    assert_eq!(states[0].0, sym("AAPL"));
    assert_eq!(
        states[0]
            .1
            .rules
            .iter()
            .map(|r| r.rule.to_string())
            .collect::<Vec<_>>(),
        ["high", "high.AAPL"],
        "in the high zone: the high rules have fired"
    );
    assert!(states[1].1.rules.is_empty(), "normal zone: all armed");
    assert_eq!(
        block_on_ready(store.rules_version()).expect("reads"),
        None,
        "no rules written yet: the base rules are in force"
    );
    drop(store);
    SqliteStore::open(&path).expect("reopens as the current version");
}

#[test]
fn a_version_1_database_that_cannot_be_migrated_is_left_as_it_was() {
    unmigratable_database_is_left_as_it_was(
        version_1_database,
        "UPDATE symbol_state SET symbol = 'bad symbol' WHERE symbol = 'MSFT'",
        "symbol state",
        ("SELECT count(*) FROM alerts", 1, 2),
    );
}

fn rule(json: &str) -> tickwatch_core::Rule {
    tickwatch_core::Rule::from_doc(
        tickwatch_core::rules::RuleDoc::from_json(json).expect("valid JSON"),
    )
    .expect("valid rule")
}

#[test]
fn rules_are_stored_with_a_change_counter_and_compare_and_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.db");
    let store = SqliteStore::open(&path).expect("opens");
    assert_eq!(block_on_ready(store.rules_version()).expect("reads"), None);
    assert_eq!(block_on_ready(store.load_rules()).expect("reads"), None);

    let a = rule(r#"{"id":"a","symbols":"AAPL","condition":"above 200","label":"<b>x</b>"}"#);
    let b = rule(r#"{"id":"b","symbols":"BTC-*","condition":"below 5","fire":"once"}"#);
    assert!(
        block_on_ready(store.commit_rules(None, &[a.clone(), b.clone()], &[])).expect("commits")
    );
    assert!(
        !block_on_ready(store.commit_rules(None, std::slice::from_ref(&a), &[])).expect("answers"),
        "a writer that expected an unwritten store loses"
    );
    let other = SqliteStore::open(&path).expect("second connection");
    assert_eq!(
        block_on_ready(other.rules_version()).expect("reads"),
        Some(1)
    );
    let loaded = block_on_ready(other.load_rules())
        .expect("reads")
        .expect("written");
    assert_eq!(
        (loaded.version, loaded.rules.clone()),
        (1, vec![a.clone(), b.clone()])
    );

    let a2 = a.with_version(2);
    assert!(
        block_on_ready(other.commit_rules(Some(1), std::slice::from_ref(&a2), &[b.id()]))
            .expect("commits")
    );
    assert!(!block_on_ready(store.commit_rules(Some(1), &[b], &[])).expect("answers"));
    let loaded = block_on_ready(store.load_rules())
        .expect("reads")
        .expect("written");
    assert_eq!((loaded.version, loaded.rules), (2, vec![a2]));
    assert!(loaded.invalid.is_empty());
}

#[test]
fn a_rule_edited_into_nonsense_is_listed_as_invalid_and_the_others_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.db");
    let store = SqliteStore::open(&path).expect("opens");
    let good = rule(r#"{"id":"good","symbols":"*","condition":"above 1"}"#);
    let bad = rule(r#"{"id":"bad","symbols":"*","condition":"above 2"}"#);
    assert!(block_on_ready(store.commit_rules(None, &[good.clone(), bad], &[])).expect("commits"));
    rusqlite::Connection::open(&path)
        .expect("opens")
        .execute(
            "UPDATE rules SET definition = replace(definition, 'above 2', 'over 2') WHERE rule_id = 'bad'",
            [],
        )
        .expect("edits");
    let loaded = block_on_ready(store.load_rules())
        .expect("reads")
        .expect("written");
    assert_eq!(loaded.rules, vec![good]);
    assert_eq!(loaded.invalid.len(), 1);
    assert_eq!(loaded.invalid[0].id, "bad");
    assert!(
        loaded.invalid[0]
            .error
            .to_string()
            .starts_with("condition: "),
        "{}",
        loaded.invalid[0].error
    );
}

/// The schema version written in the database file at `path`.
fn schema_version(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .expect("opens")
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version")
}

/// The size of the database file itself (a checkpoint is what writes it; commits go to the WAL).
fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).expect("the file is there").len()
}

/// Stores 4,000 alerts of AAPL in 40 commits.
fn store_in_many_commits(store: &SqliteStore) {
    for commit in 0..40 {
        let alerts: Vec<_> = (1..=100)
            .map(|ms| sample_alert(sym("AAPL"), commit * 1_000 + ms, AlertKind::High))
            .collect();
        for result in block_on_ready(store.insert(&alerts)) {
            result.expect("stores");
        }
    }
}

#[test]
fn background_checkpoints_copy_commits_into_the_file_while_it_is_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .expect("opens")
            .query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))
            .expect("counts")
    };

    // Without: the commits stay in the WAL (far below the writer's checkpoint threshold).
    let plain_path = dir.path().join("plain.db");
    let plain = SqliteStore::open(&plain_path).expect("opens");
    let plain_len = file_len(&plain_path);
    store_in_many_commits(&plain);
    std::thread::sleep(std::time::Duration::from_millis(
        tickwatch_local::checkpoint::CHECKPOINT_INTERVAL_MS * 5,
    ));
    assert_eq!(file_len(&plain_path), plain_len, "no checkpoint ran");

    // With: the file grows while the store is open, and a reader holding a snapshot meanwhile
    // neither blocks the writer nor sees a page it should not.
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path)
        .and_then(SqliteStore::checkpoint_in_background)
        .expect("opens");
    let empty_len = file_len(&path);
    let reader = rusqlite::Connection::open(&path).expect("opens");
    reader.execute_batch("BEGIN").expect("begins");
    let before: i64 = reader
        .query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))
        .expect("counts");
    store_in_many_commits(&store);
    let during: i64 = reader
        .query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))
        .expect("counts");
    assert_eq!((before, during), (0, 0), "the snapshot stays as it began");
    reader.execute_batch("COMMIT").expect("ends");
    // One more commit wakes the checkpointer now that nothing holds it back.
    block_on_ready(store.insert(&[sample_alert(sym("MSFT"), 1, AlertKind::Low)]))[0]
        .as_ref()
        .expect("stores");
    let waited = std::time::Instant::now();
    while file_len(&path) <= empty_len + 200 * 1024 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "the file is still {} bytes",
            file_len(&path)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(count(&path), 4_001);
    drop(reader);
    drop(store);
    assert!(
        !dir.path().join("t.db-wal").exists(),
        "the last connection to close checkpoints the rest and removes the WAL"
    );
    assert_eq!(count(&path), 4_001);
}

#[test]
fn a_store_checkpointing_in_background_keeps_the_port_contract() {
    let memory = SqliteStore::in_memory()
        .and_then(SqliteStore::checkpoint_in_background)
        .expect("opens");
    block_on_ready(check_alert_store(&memory, "M"));
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SqliteStore::open(&dir.path().join("t.db"))
        .and_then(SqliteStore::checkpoint_in_background)
        .expect("opens");
    block_on_ready(check_alert_store(&disk, "D"));
    block_on_ready(check_state_store(&disk, "D"));
}
