//! Symbol states: a log on disk, every state in memory.
//!
//! A batch over many symbols changes a state in most of them. Kept as one row per symbol, each
//! change was a statement and a B-tree walk, and each batch's commit wrote most of the table's
//! pages again (a million symbols: two thirds of the run). Here a commit appends the states it
//! changes as one row of `state_log`, and the store holds every symbol's state in memory
//! (`StateLog`), so the compare-and-set and the read ahead are lookups in a map.
//!
//! The log stays short: once it holds at least as many states as there are symbols (and no fewer
//! than [`FOLD_LOGGED_MIN`]), a commit *folds* it: it writes every state as rows marked `base`
//! and deletes the rest, so a fold costs at most one state written per state logged.
//!
//! Several processes may share the database. A call first catches up with the log as its
//! transaction sees it: rows past the last one it applied, or, if another process folded since
//! (`state_folded.base_seq` is above that row), the whole log again. A write transaction holds
//! SQLite's write lock from that catching up to its commit, so the compare-and-set is exact.
//!
//! A `states` blob is a format byte (1), then for each state: the symbol's length (1 byte) and
//! text, the last tick time (milliseconds since the Unix epoch, 8 bytes big-endian), and the
//! length (4 bytes big-endian) and bytes of the rule states as
//! [`encode_rule_states`] writes them (none: every rule in its initial state).

use std::hash::BuildHasher;

use foldhash::HashSet;
use rusqlite::{Connection, params};
use tickwatch_core::ports::{Advance, Advanced};
use tickwatch_core::rules::{SymbolState, decode_rule_states, encode_rule_states};
use tickwatch_core::tick::quote;
use tickwatch_core::{Symbol, Timestamp};

use crate::sqlite::SqliteError;

/// The tables of the log (schema version 6).
pub(crate) const STATE_LOG_TABLES: &str = "
CREATE TABLE state_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- rising, never used twice
    base         INTEGER NOT NULL CHECK (base IN (0, 1)),  -- 1: part of the last fold's copy of
                                                           -- every state; 0: one commit's changes
    states       BLOB    NOT NULL   -- symbol states (the module documentation)
);
CREATE TABLE state_folded (
    only         INTEGER PRIMARY KEY CHECK (only = 1),
    base_seq     INTEGER NOT NULL   -- the first row of the last fold (0: never folded)
);
INSERT INTO state_folded (only, base_seq) VALUES (1, 0);
";

/// States logged since the last fold below which no commit folds, however few the symbols: a
/// fold rewrites every state, so a log of a few symbols is not folded at every commit.
pub const FOLD_LOGGED_MIN: usize = 1 << 18;

/// States in one `base` row of a fold.
const BASE_ROW_STATES: usize = 4_096;

/// The first byte of every `states` blob: the version of its format.
const FORMAT: u8 = 1;

/// One symbol's state: its last tick time and its rule states as [`encode_rule_states`] writes
/// them (empty: every rule in its initial state).
#[derive(Debug)]
struct Held {
    last_seen_ms: i64,
    rules: Box<[u8]>,
}

impl Held {
    fn of(state: &SymbolState) -> Held {
        Held {
            last_seen_ms: state.last_seen.epoch_ms(),
            rules: if state.rules.is_empty() {
                Box::default()
            } else {
                encode_rule_states(&state.rules).into_boxed_slice()
            },
        }
    }
}

/// The state of `symbol` last seen at `last_seen_ms` with the encoded `rules`.
fn decode_state(
    symbol: &Symbol,
    last_seen_ms: i64,
    rules: &[u8],
) -> Result<SymbolState, SqliteError> {
    let bad =
        |e: &dyn std::fmt::Display| SqliteError::BadRow(format!("symbol state of {symbol}: {e}"));
    Ok(SymbolState {
        last_seen: Timestamp::from_epoch_ms(last_seen_ms).map_err(|e| bad(&e))?,
        rules: if rules.is_empty() {
            Vec::new()
        } else {
            decode_rule_states(rules).map_err(|e| bad(&e))?
        },
    })
}

/// A symbol's entry in [`Table`]: 48 bytes.
#[derive(Debug)]
struct Slot {
    symbol: Symbol,
    /// 0: every rule in its initial state (nearly every symbol, most of the time); otherwise one
    /// more than the index of its rule states in [`Table::rules`].
    rules: u32,
    last_seen_ms: i64,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Slot) -> bool {
        self.symbol == other.symbol
    }
}

impl Eq for Slot {}

impl std::hash::Hash for Slot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the symbol hashes: a slot is looked up by its symbol.
        self.symbol.hash(state);
    }
}

impl std::borrow::Borrow<Symbol> for Slot {
    fn borrow(&self) -> &Symbol {
        &self.symbol
    }
}

/// Sets the symbols are spread over. A set that grows holds its old and new slots at once for a
/// moment; one set of a million symbols would then need 75 MB, one of 64 sets barely more than
/// its 50.
const TABLE_SHARDS: usize = 64;

/// Every symbol's state, compactly: a million symbols in about 50 MB.
#[derive(Debug)]
struct Table {
    /// The slots, spread over [`TABLE_SHARDS`] sets by [`Table::shard`].
    shards: Vec<HashSet<Slot>>,
    /// The rule states that are not all initial, by slot.
    rules: Vec<Box<[u8]>>,
    /// Places in `rules` free for reuse.
    free: Vec<u32>,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            shards: (0..TABLE_SHARDS).map(|_| HashSet::default()).collect(),
            rules: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl Table {
    fn len(&self) -> usize {
        self.shards.iter().map(HashSet::len).sum()
    }

    /// The set of `symbol`'s slot: by a hash of the symbol other than the sets' own.
    fn shard(symbol: &Symbol) -> usize {
        let hash = foldhash::fast::FixedState::default().hash_one(symbol);
        (hash >> 58) as usize % TABLE_SHARDS
    }

    /// The last tick time and encoded rule states of `symbol`.
    fn get(&self, symbol: &Symbol) -> Option<(i64, &[u8])> {
        let slot = self.shards[Table::shard(symbol)].get(symbol)?;
        Some((slot.last_seen_ms, self.rules_of(slot)))
    }

    fn rules_of(&self, slot: &Slot) -> &[u8] {
        match slot.rules {
            0 => &[],
            at => &self.rules[at as usize - 1],
        }
    }

    fn insert(&mut self, symbol: Symbol, held: Held) {
        let rules = if held.rules.is_empty() {
            0
        } else if let Some(at) = self.free.pop() {
            self.rules[at as usize] = held.rules;
            at + 1
        } else {
            self.rules.push(held.rules);
            u32::try_from(self.rules.len()).expect("fewer than 4 billion symbols")
        };
        let slot = Slot {
            symbol,
            rules,
            last_seen_ms: held.last_seen_ms,
        };
        if let Some(old) = self.shards[Table::shard(&symbol)].replace(slot)
            && old.rules != 0
        {
            self.rules[old.rules as usize - 1] = Box::default();
            self.free.push(old.rules - 1);
        }
    }

    /// Every state, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (&Symbol, i64, &[u8])> {
        self.shards
            .iter()
            .flatten()
            .map(|slot| (&slot.symbol, slot.last_seen_ms, self.rules_of(slot)))
    }
}

/// Every symbol's state, as of the last row of `state_log` applied.
#[derive(Debug)]
pub(crate) struct StateLog {
    held: Table,
    /// Every row up to this `seq` is in `held`. `None`: nothing read yet, or forgotten after a
    /// failed write.
    applied_seq: Option<i64>,
    /// States in change rows since the last fold.
    logged: usize,
    /// [`FOLD_LOGGED_MIN`] (smaller in tests).
    fold_logged_min: usize,
}

impl Default for StateLog {
    fn default() -> StateLog {
        StateLog {
            held: Table::default(),
            applied_seq: None,
            logged: 0,
            fold_logged_min: FOLD_LOGGED_MIN,
        }
    }
}

impl StateLog {
    /// Brings the states up to date with the log as `connection`'s open transaction sees it.
    pub(crate) fn catch_up(&mut self, connection: &Connection) -> Result<(), SqliteError> {
        let base_seq: i64 = connection
            .prepare_cached("SELECT base_seq FROM state_folded")?
            .query_row([], |row| row.get(0))?;
        let applied = match self.applied_seq {
            Some(applied) if base_seq <= applied => applied,
            // Never read, or folded by another process since: the rows applied may be gone.
            _ => {
                self.held = Table::default();
                self.logged = 0;
                0
            }
        };
        let mut read = connection.prepare_cached(
            "SELECT seq, base, states FROM state_log WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = read.query([applied])?;
        let mut last = applied;
        while let Some(row) = rows.next()? {
            let (seq, base): (i64, bool) = (row.get(0)?, row.get(1)?);
            let bad = |what: String| SqliteError::BadRow(format!("state_log row {seq}: {what}"));
            let blob = row
                .get_ref(2)?
                .as_blob()
                .map_err(|_| bad("states is not a blob".into()))?;
            let count = decode(blob, |symbol, held| {
                self.held.insert(symbol, held);
            })
            .map_err(bad)?;
            if !base {
                self.logged += count;
            }
            last = seq;
        }
        self.applied_seq = Some(last);
        Ok(())
    }

    /// The state of `symbol`, if it has one.
    pub(crate) fn get(&self, symbol: &Symbol) -> Result<Option<SymbolState>, SqliteError> {
        self.held
            .get(symbol)
            .map(|(last_seen_ms, rules)| decode_state(symbol, last_seen_ms, rules))
            .transpose()
    }

    /// Every symbol's state, by symbol.
    pub(crate) fn all(&self) -> Result<Vec<(Symbol, SymbolState)>, SqliteError> {
        let mut all = self
            .held
            .iter()
            .map(|(symbol, last_seen_ms, rules)| {
                Ok((*symbol, decode_state(symbol, last_seen_ms, rules)?))
            })
            .collect::<Result<Vec<_>, SqliteError>>()?;
        all.sort_unstable_by_key(|(symbol, _)| *symbol);
        Ok(all)
    }

    /// Applies each change whose expected state is the one held (a compare-and-set on the last
    /// tick time), in order, and appends those applied as one row, in the write transaction of
    /// `connection` that [`StateLog::catch_up`] read in; folds the log if it is due. If the
    /// transaction then does not commit, the caller must [`StateLog::forget`].
    pub(crate) fn advance(
        &mut self,
        connection: &Connection,
        changes: &[Advance],
    ) -> Result<Vec<Advanced>, SqliteError> {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut row = vec![FORMAT];
        let mut applied = 0;
        for change in changes {
            let held = self.held.get(&change.symbol);
            let expected = change.expected_last_seen.map(Timestamp::epoch_ms);
            if held.map(|(last_seen_ms, _)| last_seen_ms) != expected {
                outcomes.push(Advanced::Conflict(
                    held.map(|(last_seen_ms, rules)| {
                        decode_state(&change.symbol, last_seen_ms, rules)
                    })
                    .transpose()?,
                ));
                continue;
            }
            let held = Held::of(&change.next);
            encode(&mut row, &change.symbol, held.last_seen_ms, &held.rules);
            self.held.insert(change.symbol, held);
            outcomes.push(Advanced::Applied);
            applied += 1;
        }
        if applied > 0 {
            connection
                .prepare_cached("INSERT INTO state_log (base, states) VALUES (0, ?1)")?
                .execute([&row])?;
            self.applied_seq = Some(connection.last_insert_rowid());
            self.logged += applied;
            if self.logged >= self.held.len().max(self.fold_logged_min) {
                self.fold(connection)?;
            }
        }
        Ok(outcomes)
    }

    /// Replaces the log by a copy of every state.
    fn fold(&mut self, connection: &Connection) -> Result<(), SqliteError> {
        connection.execute("DELETE FROM state_log", [])?;
        let mut insert =
            connection.prepare_cached("INSERT INTO state_log (base, states) VALUES (1, ?1)")?;
        let mut first = None;
        let mut states = self.held.iter().peekable();
        // At least one row, even with no states: `base_seq` then always names a row.
        loop {
            let mut row = vec![FORMAT];
            for (symbol, last_seen_ms, rules) in states.by_ref().take(BASE_ROW_STATES) {
                encode(&mut row, symbol, last_seen_ms, rules);
            }
            insert.execute([&row])?;
            first.get_or_insert(connection.last_insert_rowid());
            if states.peek().is_none() {
                break;
            }
        }
        connection.execute(
            "UPDATE state_folded SET base_seq = ?1",
            params![first.expect("one row at least")],
        )?;
        self.applied_seq = Some(connection.last_insert_rowid());
        self.logged = 0;
        Ok(())
    }

    /// Drops every state held: after a write that did not commit, what is held may be ahead of
    /// the database, so the next call reads the log again.
    pub(crate) fn forget(&mut self) {
        self.held = Table::default();
        self.applied_seq = None;
        self.logged = 0;
    }
}

/// Moves the states of schema version 5's `symbol_state` table into a new log, as one fold, and
/// drops the table (in a transaction of the caller's). A row that does not read stops the move.
pub(crate) fn migrate_state_table(connection: &Connection) -> Result<(), SqliteError> {
    connection.execute_batch(STATE_LOG_TABLES)?;
    let mut log = StateLog::default();
    {
        let mut read =
            connection.prepare("SELECT symbol, last_seen_ms, rules FROM symbol_state")?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let (text, last_seen_ms, rules): (String, i64, Vec<u8>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            let bad = |e: &dyn std::fmt::Display| {
                SqliteError::BadRow(format!("symbol state of {}: {e}", quote(&text)))
            };
            let symbol = Symbol::parse(&text).map_err(|e| bad(&e))?;
            Timestamp::from_epoch_ms(last_seen_ms).map_err(|e| bad(&e))?;
            let initial = decode_rule_states(&rules).map_err(|e| bad(&e))?.is_empty();
            let held = Held {
                last_seen_ms,
                rules: if initial {
                    Box::default()
                } else {
                    rules.into_boxed_slice()
                },
            };
            log.held.insert(symbol, held);
        }
    }
    log.fold(connection)?;
    connection.execute_batch("DROP TABLE symbol_state")?;
    Ok(())
}

/// Appends one state to a `states` blob: the symbol's length and bytes, the last tick time (8
/// bytes, big-endian), and the length (4 bytes) and bytes of the encoded rule states.
fn encode(row: &mut Vec<u8>, symbol: &Symbol, last_seen_ms: i64, rules: &[u8]) {
    let text = symbol.as_str().as_bytes();
    row.push(text.len() as u8);
    row.extend_from_slice(text);
    row.extend_from_slice(&last_seen_ms.to_be_bytes());
    row.extend_from_slice(&(rules.len() as u32).to_be_bytes());
    row.extend_from_slice(rules);
}

/// Calls `each` with every state of a `states` blob, in order; returns how many there were.
fn decode(blob: &[u8], mut each: impl FnMut(Symbol, Held)) -> Result<usize, String> {
    let Some((&format, mut rest)) = blob.split_first() else {
        return Err("empty".into());
    };
    if format != FORMAT {
        return Err(format!("unknown format {format}"));
    }
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if rest.len() < n {
            return Err("cut short".into());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let mut count = 0;
    while !rest.is_empty() {
        let len = take(&mut rest, 1)?[0];
        let text = std::str::from_utf8(take(&mut rest, usize::from(len))?)
            .map_err(|_| "a symbol is not UTF-8".to_owned())?;
        let symbol = Symbol::parse(text).map_err(|e| e.to_string())?;
        let last_seen_ms = i64::from_be_bytes(take(&mut rest, 8)?.try_into().expect("8 bytes"));
        let rules_len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes"));
        let rules = take(&mut rest, rules_len as usize)?;
        each(
            symbol,
            Held {
                last_seen_ms,
                rules: rules.into(),
            },
        );
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwatch_core::rules::{Phase, RuleId, RuleState};

    fn sym(text: &str) -> Symbol {
        Symbol::parse(text).expect("valid")
    }

    fn state(ms: i64, fired: &[&str]) -> SymbolState {
        SymbolState {
            last_seen: Timestamp::from_epoch_ms(ms).expect("valid"),
            rules: fired
                .iter()
                .map(|rule| RuleState {
                    phase: Phase::Fired,
                    ..RuleState::armed(RuleId::parse(rule).expect("valid"), 1)
                })
                .collect(),
        }
    }

    #[test]
    fn states_read_back_as_written() {
        let written = [
            (sym("AAPL"), state(1_795_703_400_000, &[])),
            (
                sym("BTC-USD"),
                state(1_795_703_400_001, &["high", "drop.5m"]),
            ),
            (sym(&"X".repeat(32)), state(0, &["low"])),
        ];
        let mut blob = vec![FORMAT];
        for (symbol, state) in &written {
            let held = Held::of(state);
            encode(&mut blob, symbol, held.last_seen_ms, &held.rules);
        }
        let mut read = Vec::new();
        let count = decode(&blob, |symbol, held| {
            let state = decode_state(&symbol, held.last_seen_ms, &held.rules).expect("valid");
            read.push((symbol, state));
        })
        .expect("decodes");
        assert_eq!(count, 3);
        assert_eq!(read, written);
    }

    fn change(symbol: &str, expected_ms: Option<i64>, ms: i64) -> Advance {
        Advance {
            symbol: sym(symbol),
            expected_last_seen: expected_ms.map(|ms| Timestamp::from_epoch_ms(ms).expect("valid")),
            next: state(ms, &[]),
            alerts: Vec::new(),
        }
    }

    /// A connection to the database at `path`, as the store opens it.
    fn open(path: &std::path::Path) -> Connection {
        let connection = Connection::open(path).expect("opens");
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .expect("WAL");
        connection
    }

    /// `changes` applied by `log` in one committed write transaction.
    fn advance(
        log: &mut StateLog,
        connection: &mut Connection,
        changes: &[Advance],
    ) -> Vec<Advanced> {
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begins");
        log.catch_up(&transaction).expect("catches up");
        let outcomes = log.advance(&transaction, changes).expect("advances");
        transaction.commit().expect("commits");
        outcomes
    }

    /// Every state `log` knows after catching up.
    fn read(log: &mut StateLog, connection: &mut Connection) -> Vec<(Symbol, SymbolState)> {
        let transaction = connection.transaction().expect("begins");
        log.catch_up(&transaction).expect("catches up");
        log.all().expect("decodes")
    }

    /// The log's rows: (base, changes).
    fn rows(connection: &Connection) -> (i64, i64) {
        connection
            .query_row(
                "SELECT count(*) FILTER (WHERE base), count(*) FILTER (WHERE NOT base) FROM state_log",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("counts")
    }

    #[test]
    fn a_fold_by_one_connection_is_followed_by_another() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let (mut a_db, mut b_db) = (open(&path), open(&path));
        a_db.execute_batch(STATE_LOG_TABLES).expect("tables");
        let folding_at_4 = || StateLog {
            fold_logged_min: 4,
            ..StateLog::default()
        };
        let (mut a, mut b) = (folding_at_4(), folding_at_4());
        let created =
            [("S1", None, 1), ("S2", None, 1), ("S3", None, 1)].map(|(s, e, ms)| change(s, e, ms));
        assert_eq!(
            advance(&mut a, &mut a_db, &created),
            [Advanced::Applied, Advanced::Applied, Advanced::Applied]
        );
        assert_eq!(
            rows(&a_db),
            (0, 1),
            "3 logged, below the minimum of 4: no fold"
        );
        assert_eq!(
            read(&mut b, &mut b_db).len(),
            3,
            "the other connection reads them"
        );

        assert_eq!(
            advance(&mut a, &mut a_db, &[change("S1", Some(1), 2)]),
            [Advanced::Applied]
        );
        assert_eq!(
            rows(&a_db),
            (1, 0),
            "4 logged, as many as the 3 symbols: folded"
        );

        // B last read a row the fold deleted: it reads the fold, and its compare-and-set sees A's
        // move of S1.
        assert_eq!(
            advance(
                &mut b,
                &mut b_db,
                &[change("S1", Some(1), 3), change("S2", Some(1), 3)]
            ),
            [Advanced::Conflict(Some(state(2, &[]))), Advanced::Applied]
        );
        let expected = [("S1", 2), ("S2", 3), ("S3", 1)].map(|(s, ms)| (sym(s), state(ms, &[])));
        assert_eq!(read(&mut a, &mut a_db), expected);
        assert_eq!(
            read(&mut StateLog::default(), &mut open(&path)),
            expected,
            "a new reader"
        );
    }

    #[test]
    fn a_write_that_does_not_commit_is_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut db = open(&dir.path().join("t.db"));
        db.execute_batch(STATE_LOG_TABLES).expect("tables");
        let mut log = StateLog::default();
        advance(&mut log, &mut db, &[change("S1", None, 1)]);
        {
            let transaction = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begins");
            log.catch_up(&transaction).expect("catches up");
            log.advance(&transaction, &[change("S1", Some(1), 5)])
                .expect("advances");
            // Dropped: rolled back.
        }
        log.forget();
        assert_eq!(read(&mut log, &mut db), [(sym("S1"), state(1, &[]))]);
        assert_eq!(
            advance(&mut log, &mut db, &[change("S1", Some(5), 6)]),
            [Advanced::Conflict(Some(state(1, &[])))],
            "the write that was rolled back is not taken for the truth"
        );
    }

    /// Two connections take turns at random changes (guesses right and wrong, several per call,
    /// some rolled back), folding every few states; after every call, each one's states are
    /// those of a single map that applied the same changes in the same order.
    #[test]
    fn two_connections_agree_with_one_map_through_folds_and_rollbacks() {
        const SYMBOLS: u64 = 6;
        const CALLS: u64 = 400;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let mut dbs = [open(&path), open(&path)];
        dbs[0].execute_batch(STATE_LOG_TABLES).expect("tables");
        let mut logs: [StateLog; 2] = std::array::from_fn(|_| StateLog {
            fold_logged_min: 3,
            ..StateLog::default()
        });
        let mut truth: std::collections::BTreeMap<Symbol, i64> = Default::default();
        let mut rng = tickwatch_core::retry::Rng::seeded(13);
        let mut folds = std::collections::BTreeSet::new();
        for call in 1..=CALLS {
            let who = rng.below(2) as usize;
            let mut changes = Vec::new();
            for n in 0..=rng.below(3) {
                let symbol = sym(&format!("S{}", rng.below(SYMBOLS)));
                let guess = match rng.below(4) {
                    0 => None,
                    1 => Some(rng.below(call * 4) as i64),
                    _ => truth.get(&symbol).copied(),
                };
                changes.push(change(symbol.as_str(), guess, (call * 4 + n) as i64));
            }
            let transaction = dbs[who]
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begins");
            logs[who].catch_up(&transaction).expect("catches up");
            let outcomes = logs[who].advance(&transaction, &changes).expect("advances");
            let base_seq: i64 = transaction
                .query_row("SELECT base_seq FROM state_folded", [], |row| row.get(0))
                .expect("reads");
            if rng.below(8) == 0 {
                drop(transaction);
                logs[who].forget();
            } else {
                transaction.commit().expect("commits");
                folds.insert(base_seq);
                for (change, outcome) in changes.iter().zip(&outcomes) {
                    let held = truth.get(&change.symbol).copied();
                    let expected = change.expected_last_seen.map(Timestamp::epoch_ms);
                    if held == expected {
                        assert_eq!(*outcome, Advanced::Applied, "call {call}");
                        truth.insert(change.symbol, change.next.last_seen.epoch_ms());
                    } else {
                        let current = held.map(|ms| state(ms, &[]));
                        assert_eq!(*outcome, Advanced::Conflict(current), "call {call}");
                    }
                }
            }
            let expected: Vec<_> = truth.iter().map(|(s, ms)| (*s, state(*ms, &[]))).collect();
            for (log, db) in logs.iter_mut().zip(dbs.iter_mut()) {
                assert_eq!(read(log, db), expected, "call {call}");
            }
        }
        assert!(
            folds.len() > 10,
            "the log was folded {} times",
            folds.len() - 1
        );
    }

    #[test]
    fn a_symbol_takes_48_bytes_in_the_table() {
        assert_eq!(std::mem::size_of::<Slot>(), 48);
    }

    #[test]
    fn a_damaged_blob_is_refused_with_what_is_wrong() {
        let mut blob = vec![FORMAT];
        let held = Held::of(&state(1, &["high"]));
        encode(&mut blob, &sym("AAPL"), held.last_seen_ms, &held.rules);
        // (blob, the error)
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (vec![9], "unknown format 9"),
            (blob[..blob.len() - 1].to_vec(), "cut short"),
            ([&[FORMAT, 3][..], b"a b"].concat(), "symbol"),
            (
                [&[FORMAT, 2][..], &[0xff, 0xfe]].concat(),
                "a symbol is not UTF-8",
            ),
        ];
        for (blob, expected) in cases {
            let error = decode(&blob, |_, _| {}).expect_err("refused");
            assert!(error.contains(expected), "{blob:?}: {error}");
        }
    }
}
