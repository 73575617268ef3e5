//! The embedded store: alerts, symbol state and the rules in one SQLite database.
//!
//! One file holds everything, in WAL mode, so `tickwatch alerts` can read and `tickwatch rules`
//! can write while `tickwatch run` works. Every port call is one transaction: a batch of ticks
//! costs a handful of transactions, not one per tick. Alerts are keyed by (symbol, timestamp,
//! rule id), so storing one is idempotent, and which are announced is a high-water mark (see
//! `ALERTS_TABLE`); symbol state is compare-and-set on `last_seen_ms`, so
//! two processes sharing a database cannot move a symbol backwards (the states are a log in the
//! file and held whole in memory: [`crate::state_log`]). The rules carry a change counter (one
//! row) that a running pipeline reads between batches to pick up changes.
//!
//! Calls run inline on the caller's thread: each is a short local transaction. A store for a
//! long run of writes can leave copying the WAL back into the file to a thread of its own
//! ([`SqliteStore::checkpoint_in_background`]).

use std::borrow::Borrow;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use tickwatch_core::alert::{Alert, AlertId, AlertKey, AlertKind};
use tickwatch_core::ports::{
    Advance, Advanced, AlertStore, Classify, ErrorClass, Inserted, InvalidRule, LoadedStates,
    RuleStore, StateStore, StoredAlert, StoredRules,
};
use tickwatch_core::rules::{
    Condition, Fire, Label, Rule, RuleDoc, RuleId, SymbolState, encode_rule_states,
};
use tickwatch_core::tick::quote;
use tickwatch_core::{Price, Symbol, Timestamp};

use crate::checkpoint::Checkpointer;
use crate::state_log::{STATE_LOG_TABLES, StateLog};

/// How long a writer waits for another process's lock before the call fails (transiently).
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Most alerts one query returns.
pub const QUERY_LIMIT_MAX: u32 = 1_000_000;

/// Page cache per connection, in KiB. The symbol states are held in memory ([`crate::state_log`]),
/// so the pages a batch reads and writes are mostly the newest of the alerts and of the log: a
/// small cache serves them, where 64 MB only made the process larger at the same speed.
const CACHE_KIB: i64 = 8 * 1024;

/// Bytes of the file SQLite may map into memory (reads without a syscall per page).
const MMAP_BYTES: i64 = 256 * 1024 * 1024;

/// Page cache of a connection opened for one pass of reading ([`SqliteStore::open_for_listing`]),
/// in KiB: a listing reads each page once, so a cache would only grow with the database.
const LISTING_CACHE_KIB: i64 = 2 * 1024;

/// Pages the WAL may hold before a commit copies them back into the database. SQLite's default
/// (1,000) checkpoints after nearly every batch that touches many symbols; a page written by
/// several batches in a row is copied back once per checkpoint, so fewer checkpoints copy less
/// (a million symbols: about 15 % faster).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Bytes of WAL file kept after a checkpoint; beyond that the file is truncated.
const WAL_KEPT_BYTES: i64 = 64 * 1024 * 1024;

/// The schema version this code writes. A database of version 1 (tickwatch 0.1: one band per
/// symbol), 2 (alerts without their condition), 3 (no board tables), 4 (alerts keyed by symbol,
/// each marked notified by a second write) or 5 (a row per symbol state, see
/// [`crate::state_log`]) is migrated on open; any other version is refused.
const SCHEMA_VERSION: i64 = 6;

/// The alerts (version 5). Each alert is one row appended to the table, in the order stored
/// (`seq`), plus one entry in one index, its key, which makes storing it idempotent and serves
/// queries by time. Which alerts are announced is a high-water mark, not a column: every alert up
/// to `through_seq` is, and so is every `seq` in `alerts_announced_above` (announced out of
/// order: after a failed announcement, or by `tickwatch notify`). So marking a batch announced
/// is one small write, not one per alert, and an alert's row is written once.
///
/// `AUTOINCREMENT`: a `seq` is never used twice, even if rows are deleted by hand, so a new
/// alert can never fall under the mark unannounced.
const ALERTS_TABLE: &str = "
CREATE TABLE alerts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- rising in the order alerts were stored
    symbol       TEXT    NOT NULL,
    at_ms        INTEGER NOT NULL,  -- tick time, milliseconds since the Unix epoch
    rule_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('HIGH', 'LOW')),
    alert_id     BLOB    NOT NULL,  -- 16 bytes; derived from the key, so unique with it
    price        REAL    NOT NULL,
    threshold    REAL    NOT NULL,
    fire         TEXT    NOT NULL,  -- every, enter or once (checked when read)
    label        TEXT,
    processed_ms INTEGER NOT NULL,
    condition    TEXT               -- the rule's condition; NULL: the level of kind and threshold
                                    -- (above for HIGH, below for LOW)
);
CREATE UNIQUE INDEX alerts_by_key ON alerts (at_ms, symbol, rule_id);
CREATE TABLE alerts_announced (
    only         INTEGER PRIMARY KEY CHECK (only = 1),
    through_seq  INTEGER NOT NULL   -- every alert with seq up to this one is announced
);
INSERT INTO alerts_announced (only, through_seq) VALUES (1, 0);
CREATE TABLE alerts_announced_above (
    seq          INTEGER PRIMARY KEY  -- announced alerts above through_seq
);
";

/// Whether the row of `alerts` in scope is announced (see [`ALERTS_TABLE`]).
const NOTIFIED: &str = "(alerts.seq <= (SELECT through_seq FROM alerts_announced)
    OR alerts.seq IN (SELECT seq FROM alerts_announced_above))";

/// Whether the row of `alerts` in scope is not announced yet: [`NOTIFIED`] turned round so that
/// counting them reads only the rows above the mark.
pub(crate) const PENDING: &str = "(alerts.seq > (SELECT through_seq FROM alerts_announced)
    AND alerts.seq NOT IN (SELECT seq FROM alerts_announced_above))";

/// The alerts table of versions 2 to 4 (version 2 lacked `condition`), which migrations from
/// versions 1 to 3 build before the move to version 5.
const ALERTS_TABLE_V4: &str = "
CREATE TABLE alerts (
    symbol       TEXT    NOT NULL,
    timestamp    TEXT    NOT NULL,
    rule_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('HIGH', 'LOW')),
    alert_id     TEXT    NOT NULL,
    price        REAL    NOT NULL,
    threshold    REAL    NOT NULL,
    fire         TEXT    NOT NULL,
    label        TEXT,
    processed_at TEXT    NOT NULL,
    notified     INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)),
    condition    TEXT,
    PRIMARY KEY (symbol, timestamp, rule_id)
) WITHOUT ROWID;
";

/// The symbol states of versions 2 to 5, one row each (version 6 logs them: [`crate::state_log`]).
const STATE_TABLE: &str = "
CREATE TABLE symbol_state (
    symbol       TEXT    PRIMARY KEY,
    last_seen_ms INTEGER NOT NULL,
    rules        BLOB    NOT NULL   -- the rule states, tickwatch_core::rules::encode_rule_states
) WITHOUT ROWID;
";

const RULES_TABLES: &str = "
CREATE TABLE rules (
    rule_id      TEXT    PRIMARY KEY,
    definition   TEXT    NOT NULL,  -- the rule as JSON (tickwatch_core::rules::RuleDoc)
    version      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE rules_version (
    only         INTEGER PRIMARY KEY CHECK (only = 1),
    version      INTEGER NOT NULL   -- moves up by one with every change of the rules
);
";

/// The board (version 4): what `tickwatch run` last saw, for `tickwatch serve` to show. Written
/// by [`SqliteStore::write_board`](crate::board), a few times a second at most; read by the board
/// server.
const BOARD_TABLES: &str = "
CREATE TABLE board_symbols (
    symbol       TEXT    PRIMARY KEY,
    price        REAL    NOT NULL,  -- of the newest tick
    tick_ms      INTEGER NOT NULL,  -- the newest tick's time
    ticks        INTEGER NOT NULL,
    points       TEXT    NOT NULL,  -- recent prices, JSON [[epoch ms, price], ...], oldest first
    last_alert   TEXT,              -- JSON (tickwatch_core::board::LastAlert), or NULL
    flush        INTEGER NOT NULL   -- the board_writer flush that wrote it last
) WITHOUT ROWID;
CREATE INDEX board_symbols_by_flush ON board_symbols (flush);
CREATE TABLE board_alerts (
    seq          INTEGER PRIMARY KEY,  -- rising: the newest alerts of each flush, in order
    alert        TEXT    NOT NULL,     -- the alert as JSON (its notification body)
    announced    INTEGER NOT NULL CHECK (announced IN (0, 1))
);
CREATE TABLE board_writer (
    only         INTEGER PRIMARY KEY CHECK (only = 1),
    pid          INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'stopped')),
    started_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    flush        INTEGER NOT NULL,  -- moves up by one with every write of the board
    totals       TEXT    NOT NULL,  -- the run's counts, JSON (tickwatch_core::board::Totals)
    alerts_skipped INTEGER NOT NULL -- alerts left off the board because they came too fast
);
";

/// Version 1 to 2, in the transaction that opens the database: alerts gain their rule (`high` or
/// `low`, the rules the default band became) and firing policy (cross: enter, level: every); the
/// symbol states are rewritten by [`migrate_states`].
const MIGRATE_V1_ALERTS: &str = "
ALTER TABLE alerts RENAME TO alerts_v1;
DROP INDEX IF EXISTS alerts_by_time;
DROP INDEX IF EXISTS alerts_pending;
";

const COPY_V1_ALERTS: &str = "
INSERT INTO alerts
    (symbol, timestamp, rule_id, kind, alert_id, price, threshold, fire, label, processed_at, notified)
SELECT symbol, timestamp, CASE kind WHEN 'HIGH' THEN 'high' ELSE 'low' END, kind, alert_id, price,
       threshold, CASE mode WHEN 'level' THEN 'every' ELSE 'enter' END, NULL, processed_at, notified
FROM alerts_v1;
DROP TABLE alerts_v1;
ALTER TABLE symbol_state RENAME TO symbol_state_v1;
";

/// A SQLite failure.
///
/// Each message says what went wrong once: rusqlite's own errors repeat their cause as a source
/// (`X: Error code 1: X` when printed as a chain) and quote whole SQL scripts, so the database's
/// message is kept and the rest dropped (see `describe`). None of these has a source.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The database reported an error.
    #[error("sqlite: {}", describe(.0))]
    Sqlite(rusqlite::Error),
    /// The database was written by an incompatible version of tickwatch.
    #[error("database schema version {found} is not supported (expected {SCHEMA_VERSION})")]
    SchemaVersion {
        /// The version found.
        found: i64,
    },
    /// The file is a SQLite database made by something else; it is left untouched.
    #[error("not a tickwatch database ({problem})")]
    Foreign {
        /// What gives it away: `table alerts has an unexpected schema`.
        problem: String,
    },
    /// A stored row cannot be read back (edited by hand, or corrupt).
    #[error("stored row is invalid: {0}")]
    BadRow(String),
    /// The thread that checkpoints in the background could not be started.
    #[error("starting the checkpoint thread: {0}")]
    Thread(std::io::Error),
}

impl From<rusqlite::Error> for SqliteError {
    fn from(error: rusqlite::Error) -> SqliteError {
        SqliteError::Sqlite(error)
    }
}

/// What a rusqlite error says, once: SQLite's message without the code that repeats it, and
/// without the SQL text rusqlite appends to syntax errors (it is ours, not the user's).
fn describe(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqliteFailure(code, None) => {
            // "The database file is locked" reads as a sentence start; mid-message it is lower.
            let text = rusqlite::ffi::code_to_str(code.extended_code);
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

impl Classify for SqliteError {
    fn class(&self) -> ErrorClass {
        match self {
            // Another process holds the lock: waiting and retrying helps.
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                ErrorClass::Transient
            }
            _ => ErrorClass::Permanent,
        }
    }
}

/// The order alerts are listed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest tick first (then by symbol and kind): the order to announce in.
    #[default]
    OldestFirst,
    /// Newest tick first (then by alert id, highest first): the order a person reads in.
    NewestFirst,
}

/// Filters for [`SqliteStore::query`]. Every filter is optional.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    /// Only this symbol.
    pub symbol: Option<Symbol>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Only alerts of this rule.
    pub rule: Option<RuleId>,
    /// Only ticks at or after this time.
    pub since: Option<Timestamp>,
    /// Only ticks before this time.
    pub until: Option<Timestamp>,
    /// Only alerts not yet announced.
    pub pending_only: bool,
    /// At most this many (the first ones in `order`), capped at [`QUERY_LIMIT_MAX`].
    pub limit: u32,
    /// Which come first.
    pub order: Order,
}

/// Alerts and symbol state in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    /// Copies the WAL back into the file in the background, if asked for
    /// ([`SqliteStore::checkpoint_in_background`]). Declared first, so dropped first: its thread
    /// and connection are gone when `connection` closes and checkpoints what is left.
    checkpointer: Option<Checkpointer>,
    connection: Mutex<Connection>,
    /// Alerts this store has stored and not yet marked announced (taken after `connection`).
    unmarked: Mutex<KeySeqs>,
    /// Every symbol's state, read from the log on the first call that needs one (taken after
    /// `connection`).
    states: Mutex<StateLog>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, SqliteError> {
        SqliteStore::setup(Connection::open(path)?, CACHE_KIB, MMAP_BYTES)
    }

    /// Opens the database at `path` for a long pass of reading, such as listing every alert: with
    /// a small page cache and no memory map, the process's memory stays the same however large
    /// the database is (with [`SqliteStore::open`]'s, a full listing grows by the file's size).
    pub fn open_for_listing(path: &Path) -> Result<SqliteStore, SqliteError> {
        SqliteStore::setup(Connection::open(path)?, LISTING_CACHE_KIB, 0)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn in_memory() -> Result<SqliteStore, SqliteError> {
        SqliteStore::setup(Connection::open_in_memory()?, CACHE_KIB, MMAP_BYTES)
    }

    fn setup(
        connection: Connection,
        cache_kib: i64,
        mmap_bytes: i64,
    ) -> Result<SqliteStore, SqliteError> {
        connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        // Recognise the file before changing anything in it: the journal mode below is a
        // persistent setting, and a database made by something else is left as it was.
        let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        match version {
            0 | SCHEMA_VERSION => check_tables(&connection, version, &TABLES)?,
            5 => check_tables(&connection, version, &tables_v5())?,
            4 => check_tables(&connection, version, &TABLES_V4)?,
            3 => check_tables(&connection, version, &TABLES_V4[..TABLES_V3])?,
            2 => check_tables(&connection, version, &tables_v2())?,
            1 => check_tables(&connection, version, &TABLES_V1)?,
            found => return Err(SqliteError::SchemaVersion { found }),
        }
        // WAL: readers never block the writer. NORMAL sync is durable across process crashes
        // (a power cut may lose the last transactions, never corrupt the file).
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "cache_size", -cache_kib)?;
        connection.pragma_update(None, "mmap_size", mmap_bytes)?;
        connection.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        connection.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
        if version == 0 {
            // One transaction: a crash leaves either no tables or all of them, versioned.
            connection.execute_batch(&format!(
                "BEGIN IMMEDIATE; {ALERTS_TABLE} {STATE_LOG_TABLES} {RULES_TABLES} {BOARD_TABLES}
                 PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
        }
        if version == 1 {
            // A failure leaves the version 1 database as it was.
            in_transaction(&connection, migrate_v1)?;
        }
        // Each step is one transaction: a crash between two leaves a database of the version in
        // between, which the next open carries on from.
        if version == 2 {
            // Adding a nullable column rewrites nothing: instant, whatever the size.
            connection.execute_batch(&format!(
                "BEGIN IMMEDIATE; ALTER TABLE alerts ADD COLUMN condition TEXT; {BOARD_TABLES}
                 PRAGMA user_version = 4; COMMIT;"
            ))?;
        }
        if version == 3 {
            connection.execute_batch(&format!(
                "BEGIN IMMEDIATE; {BOARD_TABLES} PRAGMA user_version = 4; COMMIT;"
            ))?;
        }
        if (1..=4).contains(&version) {
            in_transaction(&connection, migrate_v4)?;
        }
        if (1..=5).contains(&version) {
            in_transaction(&connection, migrate_v5)?;
        }
        Ok(SqliteStore {
            checkpointer: None,
            connection: Mutex::new(connection),
            unmarked: Mutex::new(KeySeqs::default()),
            states: Mutex::new(StateLog::default()),
        })
    }

    /// Moves the WAL checkpoints of this store's file to a thread of their own (see
    /// [`crate::checkpoint`]): for a process that writes much, such as `tickwatch run`, whose
    /// storing thread then never stops to copy pages, and whose close finds little left to copy.
    /// A store in memory has no WAL: it is returned as it was.
    pub fn checkpoint_in_background(mut self) -> Result<SqliteStore, SqliteError> {
        let path = self.lock().path().map(std::path::PathBuf::from);
        let Some(path) = path.filter(|path| !path.as_os_str().is_empty()) else {
            return Ok(self);
        };
        self.checkpointer = Some(Checkpointer::start(
            &path,
            Duration::from_millis(BUSY_TIMEOUT_MS),
        )?);
        Ok(self)
    }

    /// Tells the background checkpointer, if any, that a transaction committed.
    pub(crate) fn committed(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-call leaves no open transaction behind (rusqlite rolls back on drop).
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Alerts matching `query`, in its order.
    pub fn query(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, SqliteError> {
        let mut found = Vec::new();
        self.query_each(query, |stored| {
            found.push(stored);
            Ok::<_, SqliteError>(())
        })?;
        Ok(found)
    }

    /// Calls `each` with every alert matching `query`, in its order, as the rows are read: memory
    /// stays flat however many match. Stops at the first error, `each`'s included. Other calls on
    /// this store wait until it returns.
    pub fn query_each<E: From<SqliteError>>(
        &self,
        query: &AlertQuery,
        mut each: impl FnMut(StoredAlert) -> Result<(), E>,
    ) -> Result<(), E> {
        let connection = self.lock();
        let order = match query.order {
            Order::OldestFirst => "at_ms, symbol, rule_id",
            Order::NewestFirst => "at_ms DESC, alert_id DESC",
        };
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS}, {NOTIFIED}
                 FROM alerts
                 WHERE (?1 IS NULL OR symbol = ?1)
                   AND (?2 IS NULL OR kind = ?2)
                   AND (?3 IS NULL OR at_ms >= ?3)
                   AND (?4 IS NULL OR at_ms < ?4)
                   AND (?5 = 0 OR {PENDING})
                   AND (?7 IS NULL OR rule_id = ?7)
                 ORDER BY {order}
                 LIMIT ?6"
            ))
            .map_err(SqliteError::from)?;
        let mut rows = statement
            .query(params![
                query.symbol.map(|s| s.to_string()),
                query.kind.map(AlertKind::as_str),
                query.since.map(Timestamp::epoch_ms),
                query.until.map(Timestamp::epoch_ms),
                query.pending_only,
                query.limit.min(QUERY_LIMIT_MAX),
                query.rule.map(|r| r.to_string()),
            ])
            .map_err(SqliteError::from)?;
        while let Some(row) = rows.next().map_err(SqliteError::from)? {
            each(read_alert_row(row).map_err(SqliteError::from)??)?;
        }
        Ok(())
    }

    /// Number of stored alerts.
    pub fn count(&self) -> Result<u64, SqliteError> {
        let connection = self.lock();
        let count: i64 =
            connection.query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The state of every symbol, by symbol.
    pub fn states(&self) -> Result<Vec<(Symbol, SymbolState)>, SqliteError> {
        let connection = self.lock();
        let transaction = connection.unchecked_transaction()?;
        let mut states = self.lock_states();
        states.catch_up(&transaction)?;
        transaction.finish()?;
        states.all()
    }

    fn insert_now<A: Borrow<Alert>>(&self, alerts: &[A]) -> Result<Vec<Inserted>, SqliteError> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcomes = self.insert_alerts(&transaction, alerts)?;
        transaction.commit()?;
        self.committed();
        Ok(outcomes)
    }

    /// Stores `alerts` in the open transaction, [`INSERT_ROWS_MAX`] rows to a statement, and
    /// remembers the `seq` of each one not yet announced, for [`SqliteStore::mark_now`].
    ///
    /// A statement that stored all its rows stored them under consecutive `seq`s ending at
    /// `last_insert_rowid()` (this connection holds the write lock, so nothing else inserts in
    /// between). One that stored fewer (a key already there, or twice in the call) is sorted out
    /// row by row: a row whose key has a `seq` above the highest one before the statement was
    /// stored by it, once.
    fn insert_alerts<A: Borrow<Alert>>(
        &self,
        connection: &Connection,
        alerts: &[A],
    ) -> Result<Vec<Inserted>, SqliteError> {
        let mut outcomes = Vec::with_capacity(alerts.len());
        let mut unmarked = self.lock_unmarked();
        if unmarked.len() + alerts.len() > UNMARKED_REMEMBERED_MAX {
            // Forgetting only costs a lookup when marking.
            unmarked.clear();
        }
        let mut full = connection.prepare_cached(&insert_alerts_sql(INSERT_ROWS_MAX))?;
        let mut one = connection.prepare_cached(&insert_alerts_sql(1))?;
        let mut seq_before = highest_seq(connection)?;
        let (many, rest) = alerts.split_at(alerts.len() / INSERT_ROWS_MAX * INSERT_ROWS_MAX);
        let statements = many
            .chunks(INSERT_ROWS_MAX)
            .map(|rows| (true, rows))
            .chain(rest.chunks(1).map(|row| (false, row)));
        for (is_full, rows) in statements {
            let statement = if is_full { &mut full } else { &mut one };
            seq_before = store_rows(
                connection,
                statement,
                rows,
                seq_before,
                &mut unmarked,
                &mut outcomes,
            )?;
        }
        Ok(outcomes)
    }

    fn lock_unmarked(&self) -> MutexGuard<'_, KeySeqs> {
        self.unmarked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_states(&self) -> MutexGuard<'_, StateLog> {
        self.states.lock().unwrap_or_else(|poisoned| {
            // A panic mid-call may have left the states ahead of the database: read them again.
            self.states.clear_poison();
            let mut states = poisoned.into_inner();
            states.forget();
            states
        })
    }

    fn fetch_now(&self, keys: &[AlertKey]) -> Result<Vec<Option<StoredAlert>>, SqliteError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS}, {NOTIFIED} FROM alerts WHERE at_ms = ?1 AND symbol = ?2 AND rule_id = ?3"
        ))?;
        keys.iter()
            .map(|key| {
                statement
                    .query_row(
                        params![key.at.epoch_ms(), key.symbol.as_str(), key.rule.as_str()],
                        read_alert_row,
                    )
                    .optional()?
                    .transpose()
            })
            .collect()
    }

    /// Records `keys` as announced: moves the high-water mark over every alert announced in a
    /// row from it, and keeps the rest in `alerts_announced_above` until the mark reaches them.
    /// A key that is not stored is passed over (as an update of no row would be).
    fn mark_now(&self, keys: &[AlertKey]) -> Result<(), SqliteError> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let through: i64 =
            transaction.query_row("SELECT through_seq FROM alerts_announced", [], |row| {
                row.get(0)
            })?;
        let mut seqs = Vec::with_capacity(keys.len());
        {
            let remembered = self.lock_unmarked().take(keys);
            for (key, seq) in keys.iter().zip(remembered) {
                let seq = match seq {
                    Some(seq) => Some(seq),
                    None => find_alert(&transaction, key)?.map(|(seq, _)| seq),
                };
                seqs.extend(seq.filter(|&seq| seq > through));
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        let mut next = through;
        {
            // Walk the alerts above the mark in order while each is announced: by this call, or
            // earlier out of order. The first one that is not stops it (usually the first alert
            // stored after this batch's, or none).
            let mut walk =
                transaction.prepare_cached("SELECT seq FROM alerts WHERE seq > ?1 ORDER BY seq")?;
            let mut above = transaction
                .prepare_cached("SELECT 1 FROM alerts_announced_above WHERE seq = ?1")?;
            let mut rows = walk.query([through])?;
            let mut marked = seqs.iter().peekable();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                while marked.next_if(|&&marked| marked < seq).is_some() {}
                if marked.next_if(|&&marked| marked == seq).is_some() || above.exists([seq])? {
                    next = seq;
                } else {
                    break;
                }
            }
        }
        let mut remember = transaction
            .prepare_cached("INSERT OR IGNORE INTO alerts_announced_above (seq) VALUES (?1)")?;
        for &seq in seqs.iter().filter(|&&seq| seq > next) {
            remember.execute([seq])?;
        }
        drop(remember);
        if next > through {
            transaction.execute("DELETE FROM alerts_announced_above WHERE seq <= ?1", [next])?;
            transaction.execute("UPDATE alerts_announced SET through_seq = ?1", [next])?;
        }
        transaction.commit()?;
        self.committed();
        self.lock_unmarked().forget_through(next);
        Ok(())
    }

    fn load_now(&self, symbols: &[Symbol]) -> Result<Vec<Option<SymbolState>>, SqliteError> {
        let connection = self.lock();
        // One snapshot for the whole read.
        let transaction = connection.unchecked_transaction()?;
        let mut states = self.lock_states();
        states.catch_up(&transaction)?;
        transaction.finish()?;
        symbols.iter().map(|symbol| states.get(symbol)).collect()
    }

    fn advance_now(&self, changes: &[Advance]) -> Result<Vec<Advanced>, SqliteError> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut states = self.lock_states();
        let advanced = (|| {
            states.catch_up(&transaction)?;
            let outcomes = states.advance(&transaction, changes)?;
            // A stateful rule's alert is new with its state; one already there (the state was
            // lost and rebuilt, say) stays as it was.
            let alerts: Vec<Alert> = changes
                .iter()
                .zip(&outcomes)
                .filter(|(_, outcome)| matches!(outcome, Advanced::Applied))
                .flat_map(|(change, _)| change.alerts.iter().copied())
                .collect();
            self.insert_alerts(&transaction, &alerts)?;
            transaction.commit()?;
            self.committed();
            Ok(outcomes)
        })();
        if advanced.is_err() {
            states.forget();
        }
        advanced
    }
}

/// Alert keys stored by this connection and not yet marked announced, with their `seq`, in the
/// order stored. Alerts are nearly always marked in the order they were stored, so marking one
/// is a comparison with the first key, not a hash lookup of a key of about 110 bytes; keys
/// marked out of order are found through an index built for that call.
#[derive(Debug, Default)]
struct KeySeqs {
    /// `(key, seq)`; a `seq` of 0 is a key marked out of order, skipped.
    order: std::collections::VecDeque<(AlertKey, i64)>,
}

impl KeySeqs {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn clear(&mut self) {
        self.order.clear();
    }

    fn insert(&mut self, key: AlertKey, seq: i64) {
        self.order.push_back((key, seq));
    }

    /// The `seq` of each of `keys` this remembers (taken: each is given out once).
    fn take(&mut self, keys: &[AlertKey]) -> Vec<Option<i64>> {
        let mut seqs = vec![None; keys.len()];
        let mut missed = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            while self.order.front().is_some_and(|&(_, seq)| seq == 0) {
                self.order.pop_front();
            }
            match self.order.front() {
                Some((first, seq)) if first == key => {
                    seqs[at] = Some(*seq);
                    self.order.pop_front();
                }
                _ => missed.push(at),
            }
        }
        if !missed.is_empty() && !self.order.is_empty() {
            let index: foldhash::HashMap<AlertKey, usize> = self
                .order
                .iter()
                .enumerate()
                .filter(|(_, (_, seq))| *seq != 0)
                .map(|(place, (key, _))| (*key, place))
                .collect();
            for at in missed {
                if let Some(&place) = index.get(&keys[at]) {
                    let seq = std::mem::take(&mut self.order[place].1);
                    seqs[at] = (seq != 0).then_some(seq);
                }
            }
        }
        seqs
    }

    /// Forgets the keys at the front marked already: every `seq` up to `through` is.
    fn forget_through(&mut self, through: i64) {
        while self.order.front().is_some_and(|&(_, seq)| seq <= through) {
            self.order.pop_front();
        }
    }
}

/// Most alert keys [`SqliteStore`] remembers between storing and marking them (about 128 bytes
/// each); beyond, it forgets them all and marking looks each `seq` up by key.
const UNMARKED_REMEMBERED_MAX: usize = 1 << 20;

/// Alerts stored by one statement: fewer statements for SQLite to step through per alert.
const INSERT_ROWS_MAX: usize = 64;

/// Parameters of one alert row in an insert (SQLite allows 32,766 in a statement).
const ALERT_PARAMS: usize = 11;

/// Stores `rows` with `statement` (an insert of exactly that many), given the highest `seq`
/// before it; adds one outcome per row and the `seq`s not yet announced to `unmarked`. Returns
/// the highest `seq` after it.
fn store_rows<A: Borrow<Alert>>(
    connection: &Connection,
    statement: &mut rusqlite::Statement<'_>,
    rows: &[A],
    seq_before: i64,
    unmarked: &mut KeySeqs,
    outcomes: &mut Vec<Inserted>,
) -> Result<i64, SqliteError> {
    for (row, alert) in rows.iter().enumerate() {
        bind_alert(statement, row * ALERT_PARAMS, alert.borrow())?;
    }
    if statement.raw_execute()? == rows.len() {
        let last = connection.last_insert_rowid();
        let first = last - rows.len() as i64 + 1;
        for (seq, alert) in (first..=last).zip(rows) {
            unmarked.insert(alert.borrow().key(), seq);
            outcomes.push(Inserted::New);
        }
        return Ok(last);
    }
    let mut claimed = Vec::new();
    for alert in rows.iter().map(Borrow::borrow) {
        let (seq, notified) = find_alert(connection, &alert.key())?.ok_or_else(|| {
            SqliteError::BadRow(format!(
                "alert of {} by {} at {} was neither stored nor found (a constraint refused it)",
                alert.symbol, alert.rule_id, alert.timestamp
            ))
        })?;
        if seq > seq_before && !claimed.contains(&seq) {
            claimed.push(seq);
            unmarked.insert(alert.key(), seq);
            outcomes.push(Inserted::New);
        } else {
            if !notified {
                unmarked.insert(alert.key(), seq);
            }
            outcomes.push(Inserted::AlreadyThere { notified });
        }
    }
    highest_seq(connection)
}

/// An insert of `rows` alerts that passes over a key already stored.
fn insert_alerts_sql(rows: usize) -> String {
    let row = |r: usize| {
        let p = |i: usize| format!("?{}", r * ALERT_PARAMS + i);
        format!(
            "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11)
        )
    };
    let values: Vec<String> = (0..rows).map(row).collect();
    format!(
        "INSERT OR IGNORE INTO alerts (symbol, at_ms, rule_id, kind, alert_id, price, threshold,
                                       fire, label, processed_ms, condition)
         VALUES {}",
        values.join(", ")
    )
}

/// Binds `alert` as the row whose parameters follow the `offset`th.
fn bind_alert(
    statement: &mut rusqlite::Statement<'_>,
    offset: usize,
    alert: &Alert,
) -> Result<(), SqliteError> {
    let condition = (alert.condition != Condition::level(alert.kind, alert.threshold))
        .then(|| alert.condition.to_string());
    statement.raw_bind_parameter(offset + 1, alert.symbol.as_str())?;
    statement.raw_bind_parameter(offset + 2, alert.timestamp.epoch_ms())?;
    statement.raw_bind_parameter(offset + 3, alert.rule_id.as_str())?;
    statement.raw_bind_parameter(offset + 4, alert.kind.as_str())?;
    statement.raw_bind_parameter(offset + 5, &alert.alert_id.to_bytes()[..])?;
    statement.raw_bind_parameter(offset + 6, alert.price.get())?;
    statement.raw_bind_parameter(offset + 7, alert.threshold)?;
    statement.raw_bind_parameter(offset + 8, alert.fire.as_str())?;
    statement.raw_bind_parameter(offset + 9, alert.label.as_ref().map(Label::as_str))?;
    statement.raw_bind_parameter(offset + 10, alert.processed_at.epoch_ms())?;
    statement.raw_bind_parameter(offset + 11, condition)?;
    Ok(())
}

/// The `seq` of the stored alert with `key`, and whether it is announced.
fn find_alert(connection: &Connection, key: &AlertKey) -> Result<Option<(i64, bool)>, SqliteError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT seq, {NOTIFIED} FROM alerts WHERE at_ms = ?1 AND symbol = ?2 AND rule_id = ?3"
    ))?;
    Ok(statement
        .query_row(
            params![key.at.epoch_ms(), key.symbol.as_str(), key.rule.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// The highest `seq` ever given to an alert (0 before the first).
fn highest_seq(connection: &Connection) -> Result<i64, SqliteError> {
    let mut statement =
        connection.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'alerts'")?;
    Ok(statement
        .query_row([], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// A table's name and its columns, in order.
type Columns = (&'static str, &'static [&'static str]);

const STATE_COLUMNS: Columns = ("symbol_state", &["symbol", "last_seen_ms", "rules"]);
const RULES_COLUMNS: Columns = ("rules", &["rule_id", "definition", "version"]);
const RULES_VERSION_COLUMNS: Columns = ("rules_version", &["only", "version"]);
const BOARD_SYMBOLS_COLUMNS: Columns = (
    "board_symbols",
    &[
        "symbol",
        "price",
        "tick_ms",
        "ticks",
        "points",
        "last_alert",
        "flush",
    ],
);
const BOARD_ALERTS_COLUMNS: Columns = ("board_alerts", &["seq", "alert", "announced"]);
const BOARD_WRITER_COLUMNS: Columns = (
    "board_writer",
    &[
        "only",
        "pid",
        "state",
        "started_ms",
        "updated_ms",
        "flush",
        "totals",
        "alerts_skipped",
    ],
);

const ALERTS_COLUMNS: Columns = (
    "alerts",
    &[
        "seq",
        "symbol",
        "at_ms",
        "rule_id",
        "kind",
        "alert_id",
        "price",
        "threshold",
        "fire",
        "label",
        "processed_ms",
        "condition",
    ],
);
const ANNOUNCED_COLUMNS: Columns = ("alerts_announced", &["only", "through_seq"]);
const ANNOUNCED_ABOVE_COLUMNS: Columns = ("alerts_announced_above", &["seq"]);

/// The symbol-state log of version 6 ([`STATE_LOG_TABLES`]).
const STATE_LOG_COLUMNS: [Columns; 2] = [
    ("state_log", &["seq", "base", "states"]),
    ("state_folded", &["only", "base_seq"]),
];

/// The columns of each table this code makes, in order.
const TABLES: [Columns; 10] = [
    ALERTS_COLUMNS,
    STATE_LOG_COLUMNS[0],
    STATE_LOG_COLUMNS[1],
    RULES_COLUMNS,
    RULES_VERSION_COLUMNS,
    BOARD_SYMBOLS_COLUMNS,
    BOARD_ALERTS_COLUMNS,
    BOARD_WRITER_COLUMNS,
    ANNOUNCED_COLUMNS,
    ANNOUNCED_ABOVE_COLUMNS,
];

/// The tables of schema version 5: [`TABLES`] with a row per symbol state instead of the log.
fn tables_v5() -> Vec<Columns> {
    let mut tables = TABLES.to_vec();
    tables.splice(1..=STATE_LOG_COLUMNS.len(), [STATE_COLUMNS]);
    tables
}

/// The tables of schema version 4.
const TABLES_V4: [Columns; 7] = [
    (
        "alerts",
        &[
            "symbol",
            "timestamp",
            "rule_id",
            "kind",
            "alert_id",
            "price",
            "threshold",
            "fire",
            "label",
            "processed_at",
            "notified",
            "condition",
        ],
    ),
    STATE_COLUMNS,
    RULES_COLUMNS,
    RULES_VERSION_COLUMNS,
    BOARD_SYMBOLS_COLUMNS,
    BOARD_ALERTS_COLUMNS,
    BOARD_WRITER_COLUMNS,
];

/// Schema version 3 had the first this many of [`TABLES_V4`] (no board tables).
const TABLES_V3: usize = 4;

/// The tables of schema version 2: alerts without `condition`, no board tables.
fn tables_v2() -> [Columns; TABLES_V3] {
    let mut tables = [TABLES_V4[0], TABLES_V4[1], TABLES_V4[2], TABLES_V4[3]];
    let alerts = tables[0].1;
    tables[0].1 = &alerts[..alerts.len() - 1];
    tables
}

/// The tables of schema version 1.
const TABLES_V1: [Columns; 2] = [
    (
        "alerts",
        &[
            "symbol",
            "timestamp",
            "kind",
            "alert_id",
            "price",
            "threshold",
            "mode",
            "processed_at",
            "notified",
        ],
    ),
    (
        "symbol_state",
        &["symbol", "zone", "since_ms", "last_seen_ms"],
    ),
];

/// Runs `step` in one immediate transaction: committed if it succeeds, rolled back (the database
/// left as it was) if it fails.
fn in_transaction(
    connection: &Connection,
    step: impl FnOnce(&Connection) -> Result<(), SqliteError>,
) -> Result<(), SqliteError> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match step(connection) {
        Ok(()) => Ok(connection.execute_batch("COMMIT")?),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Migrates a version 1 database to version 4 (in a transaction of the caller's).
fn migrate_v1(connection: &Connection) -> Result<(), SqliteError> {
    connection.execute_batch(MIGRATE_V1_ALERTS)?;
    connection.execute_batch(ALERTS_TABLE_V4)?;
    connection.execute_batch(COPY_V1_ALERTS)?;
    connection.execute_batch(STATE_TABLE)?;
    migrate_states(connection)?;
    connection.execute_batch(&format!(
        "DROP TABLE symbol_state_v1; {RULES_TABLES} {BOARD_TABLES}
         PRAGMA user_version = 4;"
    ))?;
    Ok(())
}

/// Migrates a version 4 database to version 5 (in a transaction of the caller's): every alert is
/// copied into the new table, the announced ones first, so the high-water mark is their number.
/// Text times and ids become numbers and bytes; a row that does not parse stops the migration and
/// leaves the database as it was.
fn migrate_v4(connection: &Connection) -> Result<(), SqliteError> {
    connection.execute_batch(
        "ALTER TABLE alerts RENAME TO alerts_v4;
         DROP INDEX IF EXISTS alerts_by_time;
         DROP INDEX IF EXISTS alerts_pending;",
    )?;
    connection.execute_batch(ALERTS_TABLE)?;
    // The statements end before the old table is dropped (SQLite refuses while one reads it).
    let announced = {
        let mut read = connection.prepare(
            "SELECT symbol, timestamp, rule_id, kind, alert_id, price, threshold, fire, label,
                    processed_at, condition, notified
             FROM alerts_v4 ORDER BY notified DESC, timestamp, symbol, rule_id",
        )?;
        let mut write = connection.prepare(
            "INSERT INTO alerts (symbol, at_ms, rule_id, kind, alert_id, price, threshold, fire,
                                 label, processed_ms, condition)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut rows = read.query([])?;
        let mut announced: i64 = 0;
        while let Some(row) = rows.next()? {
            let (timestamp, alert_id, processed_at): (String, String, String) =
                (row.get(1)?, row.get(4)?, row.get(9)?);
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                SqliteError::BadRow(format!("alert {alert_id}: {what}: {e}"))
            };
            let at = Timestamp::parse_rfc3339(&timestamp).map_err(|e| bad("timestamp", &e))?;
            let processed =
                Timestamp::parse_rfc3339(&processed_at).map_err(|e| bad("processed_at", &e))?;
            let id: AlertId = alert_id.parse().map_err(|e| bad("alert_id", &e))?;
            write.execute(params![
                row.get::<_, Value>(0)?,
                at.epoch_ms(),
                row.get::<_, Value>(2)?,
                row.get::<_, Value>(3)?,
                &id.to_bytes()[..],
                row.get::<_, Value>(5)?,
                row.get::<_, Value>(6)?,
                row.get::<_, Value>(7)?,
                row.get::<_, Value>(8)?,
                processed.epoch_ms(),
                row.get::<_, Value>(10)?,
            ])?;
            if row.get::<_, bool>(11)? {
                announced += 1;
            }
        }
        announced
    };
    connection.execute(
        "UPDATE alerts_announced SET through_seq = ?1",
        params![announced],
    )?;
    connection.execute_batch("DROP TABLE alerts_v4; PRAGMA user_version = 5;")?;
    Ok(())
}

/// Migrates a version 5 database to version 6 (in a transaction of the caller's): the symbol
/// states move from a row each into the log.
fn migrate_v5(connection: &Connection) -> Result<(), SqliteError> {
    crate::state_log::migrate_state_table(connection)?;
    connection.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    Ok(())
}

/// Version 1 kept a zone per symbol; version 2 keeps the state of each rule
/// ([`SymbolState::from_zone`]: in the high or low zone, that side's rule has fired).
fn migrate_states(connection: &Connection) -> Result<(), SqliteError> {
    let mut read = connection.prepare("SELECT symbol, zone, last_seen_ms FROM symbol_state_v1")?;
    let mut write = connection
        .prepare("INSERT INTO symbol_state (symbol, last_seen_ms, rules) VALUES (?1, ?2, ?3)")?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let (symbol, zone, last_seen_ms): (String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let bad = |e: &dyn std::fmt::Display| SqliteError::BadRow(format!("symbol state: {e}"));
        let parsed = Symbol::parse(&symbol).map_err(|e| bad(&e))?;
        let last_seen = Timestamp::from_epoch_ms(last_seen_ms).map_err(|e| bad(&e))?;
        let state = SymbolState::from_zone(&zone, &parsed, last_seen);
        write.execute(params![
            symbol,
            last_seen_ms,
            encode_rule_states(&state.rules)
        ])?;
    }
    Ok(())
}

/// Refuses a database made by something else: one whose tables of our names have other columns,
/// or, not yet versioned by us (`version` 0), one holding tables we do not make (creating ours
/// among them would change a stranger's file).
fn check_tables(
    connection: &Connection,
    version: i64,
    tables: &[(&str, &[&str])],
) -> Result<(), SqliteError> {
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY name",
    )?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for name in &names {
        let Some((_, expected)) = tables.iter().find(|(table, _)| table == name) else {
            if version == 0 {
                return Err(SqliteError::Foreign {
                    problem: format!(
                        "it has a table {} that tickwatch does not make",
                        quote(name)
                    ),
                });
            }
            continue;
        };
        let mut columns =
            connection.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let found = columns
            .query_map([name], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if found != *expected {
            return Err(SqliteError::Foreign {
                problem: format!("table {name} has an unexpected schema"),
            });
        }
    }
    let ours = tables
        .iter()
        .filter(|(table, _)| names.iter().any(|name| name == table))
        .count();
    if version != 0 && ours < tables.len() {
        return Err(SqliteError::Foreign {
            problem: "its tables are missing".into(),
        });
    }
    Ok(())
}

/// The columns [`read_alert_row`] reads, in its order, but for the last: [`NOTIFIED`].
const ALERT_COLUMNS: &str = "alert_id, rule_id, label, symbol, kind, price, threshold, fire, at_ms, processed_ms, condition";

fn read_alert_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredAlert, SqliteError>> {
    let text = |i: usize| row.get::<_, String>(i);
    let (rule_id, symbol, kind, fire) = (text(1)?, text(3)?, text(4)?, text(7)?);
    let label: Option<String> = row.get(2)?;
    let condition: Option<String> = row.get(10)?;
    let (price, threshold): (f64, f64) = (row.get(5)?, row.get(6)?);
    let (at_ms, processed_ms, notified): (i64, i64, bool) =
        (row.get(8)?, row.get(9)?, row.get(11)?);
    let alert_id = match row.get_ref(0)? {
        rusqlite::types::ValueRef::Blob(bytes) => <[u8; 16]>::try_from(bytes).ok(),
        _ => None,
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        SqliteError::BadRow(format!(
            "alert of {symbol} at {at_ms} by {rule_id}: {what}: {e}"
        ))
    };
    Ok((|| {
        Ok(StoredAlert {
            alert: Alert {
                alert_id: AlertId::from_bytes(
                    alert_id.ok_or_else(|| bad("alert_id", &"not 16 bytes"))?,
                ),
                rule_id: RuleId::parse(&rule_id).map_err(|e| bad("rule_id", &e))?,
                label: label
                    .map(|l| Label::parse(&l))
                    .transpose()
                    .map_err(|e| bad("label", &e))?,
                symbol: Symbol::parse(&symbol).map_err(|e| bad("symbol", &e))?,
                kind: kind.parse().map_err(|e| bad("kind", &e))?,
                condition: match condition {
                    Some(text) => text.parse().map_err(|e| bad("condition", &e))?,
                    None => Condition::level(kind.parse().map_err(|e| bad("kind", &e))?, threshold),
                },
                price: Price::new(price).map_err(|e| bad("price", &e))?,
                threshold,
                fire: fire.parse::<Fire>().map_err(|e| bad("fire", &e))?,
                timestamp: Timestamp::from_epoch_ms(at_ms).map_err(|e| bad("at_ms", &e))?,
                processed_at: Timestamp::from_epoch_ms(processed_ms)
                    .map_err(|e| bad("processed_ms", &e))?,
            },
            notified,
        })
    })())
}

/// Spreads one call's result over its items: the call is one transaction, so it succeeds or fails
/// as a whole.
fn per_item<T, E>(result: Result<Vec<T>, E>, n: usize) -> Vec<Result<T, E>>
where
    E: Clone,
{
    match result {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(error) => (0..n).map(|_| Err(error.clone())).collect(),
    }
}

/// A shareable copy of a call's error, for reporting it on every item of the call.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    class: ErrorClass,
}

impl From<SqliteError> for StoreError {
    fn from(error: SqliteError) -> StoreError {
        StoreError {
            class: error.class(),
            message: error.to_string(),
        }
    }
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

impl AlertStore for SqliteStore {
    type Error = StoreError;

    async fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> Vec<Result<Inserted, StoreError>> {
        per_item(
            self.insert_now(alerts).map_err(StoreError::from),
            alerts.len(),
        )
    }

    async fn fetch(&self, keys: &[AlertKey]) -> Vec<Result<Option<StoredAlert>, StoreError>> {
        per_item(self.fetch_now(keys).map_err(StoreError::from), keys.len())
    }

    async fn mark_notified(&self, keys: &[AlertKey]) -> Vec<Result<(), StoreError>> {
        per_item(
            self.mark_now(keys)
                .map(|()| vec![(); keys.len()])
                .map_err(StoreError::from),
            keys.len(),
        )
    }
}

impl StateStore for SqliteStore {
    type Error = StoreError;

    /// Reads ahead: the states are held in memory (see [`crate::state_log`]), so after catching
    /// up with the log a read is a lookup, far cheaper than the lost compare-and-set and second
    /// transaction it saves.
    async fn load(&self, symbols: &[Symbol]) -> Option<LoadedStates<StoreError>> {
        Some(per_item(
            self.load_now(symbols).map_err(StoreError::from),
            symbols.len(),
        ))
    }

    async fn advance(&self, changes: &[Advance]) -> Vec<Result<Advanced, StoreError>> {
        per_item(
            self.advance_now(changes).map_err(StoreError::from),
            changes.len(),
        )
    }
}

impl SqliteStore {
    /// [`RuleStore::rules_version`], for a caller off any async runtime.
    pub fn rules_version_now(&self) -> Result<Option<u64>, SqliteError> {
        let connection = self.lock();
        read_rules_version(&connection)
    }

    /// [`RuleStore::load_rules`], for a caller off any async runtime.
    pub fn load_rules_now(&self) -> Result<Option<StoredRules>, SqliteError> {
        let mut connection = self.lock();
        // One read transaction: the version and the rules it counts.
        let transaction = connection.transaction()?;
        let Some(version) = read_rules_version(&transaction)? else {
            return Ok(None);
        };
        let mut rules = Vec::new();
        let mut invalid = Vec::new();
        {
            let mut statement = transaction.prepare_cached(
                "SELECT rule_id, definition, version FROM rules ORDER BY rule_id",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let (id, definition, rule_version): (String, String, i64) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                let parsed = RuleDoc::from_json(&definition)
                    .and_then(|doc| {
                        if doc.id.as_str() == id {
                            Ok(doc)
                        } else {
                            Err(tickwatch_core::rules::RulesError {
                                location: "id".into(),
                                reason: format!("{} is stored under {}", doc.id, quote(&id)),
                            })
                        }
                    })
                    .and_then(Rule::from_doc)
                    .map(|rule| rule.with_version(u64::try_from(rule_version).unwrap_or(1)));
                match parsed {
                    Ok(rule) => rules.push(rule),
                    Err(error) => invalid.push(InvalidRule { id, error }),
                }
            }
        }
        Ok(Some(StoredRules {
            version,
            rules,
            invalid,
        }))
    }

    fn commit_rules_now(
        &self,
        expected: Option<u64>,
        put: &[Rule],
        remove: &[RuleId],
    ) -> Result<bool, SqliteError> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if read_rules_version(&transaction)? != expected {
            return Ok(false);
        }
        {
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO rules (rule_id, definition, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rule_id) DO UPDATE SET definition = ?2, version = ?3",
            )?;
            for rule in put {
                let definition = serde_json::to_string(rule.doc())
                    .map_err(|e| SqliteError::BadRow(format!("rule {}: {e}", rule.id())))?;
                let version = i64::try_from(rule.version()).unwrap_or(i64::MAX);
                upsert.execute(params![rule.id().as_str(), definition, version])?;
            }
            let mut delete = transaction.prepare_cached("DELETE FROM rules WHERE rule_id = ?1")?;
            for id in remove {
                delete.execute(params![id.as_str()])?;
            }
            let next = i64::try_from(expected.unwrap_or(0) + 1).unwrap_or(i64::MAX);
            transaction.execute(
                "INSERT INTO rules_version (only, version) VALUES (1, ?1)
                 ON CONFLICT (only) DO UPDATE SET version = ?1",
                params![next],
            )?;
        }
        transaction.commit()?;
        Ok(true)
    }
}

fn read_rules_version(connection: &Connection) -> Result<Option<u64>, SqliteError> {
    let version: Option<i64> = connection
        .prepare_cached("SELECT version FROM rules_version WHERE only = 1")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(version.map(|v| u64::try_from(v).unwrap_or(0)))
}

impl RuleStore for SqliteStore {
    type Error = StoreError;

    async fn rules_version(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.rules_version_now()?)
    }

    async fn load_rules(&self) -> Result<Option<StoredRules>, StoreError> {
        Ok(self.load_rules_now()?)
    }

    async fn commit_rules(
        &self,
        expected: Option<u64>,
        put: &[Rule],
        remove: &[RuleId],
    ) -> Result<bool, StoreError> {
        Ok(self.commit_rules_now(expected, put, remove)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(symbol: &str) -> AlertKey {
        AlertKey {
            symbol: Symbol::parse(symbol).expect("valid"),
            at: Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid"),
            rule: RuleId::parse("high").expect("valid"),
        }
    }

    #[test]
    fn remembered_seqs_are_given_out_once_in_any_order() {
        // (keys marked, the seqs given out, what is remembered after), after A..E stored as 1..5
        // and the mark moved to the highest seq given out so far.
        let cases: &[(&[&str], &[Option<i64>], &[&str])] = &[
            (&["A", "B"], &[Some(1), Some(2)], &["C", "D", "E"]),
            (&["D"], &[Some(4)], &["C", "E"]),
            (&["C", "D", "X"], &[Some(3), None, None], &["E"]),
            (&["E", "E"], &[Some(5), None], &[]),
        ];
        let mut seqs = KeySeqs::default();
        for (seq, symbol) in (1..).zip(["A", "B", "C", "D", "E"]) {
            seqs.insert(key(symbol), seq);
        }
        let mut through = 0;
        for (step, (marked, given, left)) in cases.iter().enumerate() {
            let keys: Vec<AlertKey> = marked.iter().map(|symbol| key(symbol)).collect();
            assert_eq!(seqs.take(&keys), *given, "step {step}");
            through = given.iter().flatten().fold(through, |a, &b| a.max(b));
            // The mark stops at the first seq not given out (C at step 1).
            let mark = if step == 1 { 2 } else { through };
            seqs.forget_through(mark);
            let remembered: Vec<&str> = seqs
                .order
                .iter()
                .filter(|(_, seq)| *seq != 0)
                .map(|(key, _)| key.symbol.as_str())
                .collect();
            assert_eq!(remembered, *left, "step {step}");
        }
    }
}
