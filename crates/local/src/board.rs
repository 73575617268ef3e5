//! The board tables: what `tickwatch run` hands over ([`BoardFlush`]) for a board server, in this
//! process or another, to read.
//!
//! One process writes (the run holding the database's announce lock), any number read. A write
//! is one short transaction; readers ask for what changed since the last thing they saw: symbols
//! by the writer's flush counter, alerts by their rising sequence number.

use rusqlite::{OptionalExtension, params};
use tickwatch_core::alert::Alert;
use tickwatch_core::board::{BoardAlert, BoardFlush, LastAlert, SymbolView, Totals};
use tickwatch_core::{Symbol, Timestamp};

use crate::sqlite::{PENDING, SqliteError, SqliteStore};

/// Alerts the board table keeps; older ones are deleted (they stay in the alerts table).
pub const BOARD_ALERTS_KEPT: i64 = 1_000;

/// Whether the writing run is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterState {
    /// Writing.
    Running,
    /// It ended (and said so: a killed run stays `Running`, its last update growing old).
    Stopped,
}

impl WriterState {
    /// `running` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriterState::Running => "running",
            WriterState::Stopped => "stopped",
        }
    }
}

/// The run that writes the board, as [`SqliteStore::write_board`] records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    /// Its process id.
    pub pid: u32,
    /// Running or stopped.
    pub state: WriterState,
    /// When it started.
    pub started: Timestamp,
    /// When it wrote this.
    pub updated: Timestamp,
}

/// The board writer's row.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterRow {
    /// Who wrote it, and when.
    pub writer: Writer,
    /// The number of the last write (rises by one with each).
    pub flush: u64,
    /// The run's counts.
    pub totals: Totals,
    /// Alerts left off the board because they came too fast, over every run.
    pub alerts_skipped: u64,
}

/// An alert on the board with its sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct SequencedAlert {
    /// Rising with every alert written to the board.
    pub seq: u64,
    /// The alert.
    pub alert: BoardAlert,
}

fn bad(what: &str, error: impl std::fmt::Display) -> SqliteError {
    SqliteError::BadRow(format!("{what}: {error}"))
}

impl SqliteStore {
    /// Writes what changed on the board, and the writer's row, in one transaction. A symbol keeps
    /// the last alert an earlier run wrote for it until this run raises one.
    pub fn write_board(&self, flush: &BoardFlush, writer: Writer) -> Result<(), SqliteError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let previous: Option<i64> = transaction
            .query_row("SELECT flush FROM board_writer WHERE only = 1", [], |row| {
                row.get(0)
            })
            .optional()?;
        let number = previous.unwrap_or(0) + 1;
        {
            let mut put = transaction.prepare_cached(
                "INSERT INTO board_symbols (symbol, price, tick_ms, ticks, points, last_alert, flush)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (symbol) DO UPDATE SET price = ?2, tick_ms = ?3, ticks = ?4,
                     points = ?5, last_alert = coalesce(?6, last_alert), flush = ?7",
            )?;
            for view in &flush.symbols {
                let points = serde_json::to_string(&view.points).map_err(|e| bad("points", e))?;
                let last_alert = view
                    .last_alert
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| bad("last alert", e))?;
                put.execute(params![
                    view.symbol.as_str(),
                    view.price,
                    view.timestamp.epoch_ms(),
                    view.ticks as i64,
                    points,
                    last_alert,
                    number,
                ])?;
            }
            let mut add = transaction
                .prepare_cached("INSERT INTO board_alerts (alert, announced) VALUES (?1, ?2)")?;
            for alert in &flush.alerts {
                let json = serde_json::to_string(&alert.alert).map_err(|e| bad("alert", e))?;
                add.execute(params![json, alert.announced])?;
            }
        }
        if !flush.alerts.is_empty() {
            transaction.execute(
                "DELETE FROM board_alerts
                 WHERE seq <= (SELECT max(seq) FROM board_alerts) - ?1",
                [BOARD_ALERTS_KEPT],
            )?;
        }
        let totals = serde_json::to_string(&flush.totals).map_err(|e| bad("totals", e))?;
        transaction.execute(
            "INSERT INTO board_writer
                 (only, pid, state, started_ms, updated_ms, flush, totals, alerts_skipped)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (only) DO UPDATE SET pid = ?1, state = ?2, started_ms = ?3,
                 updated_ms = ?4, flush = ?5, totals = ?6,
                 alerts_skipped = alerts_skipped + ?7",
            params![
                writer.pid,
                writer.state.as_str(),
                writer.started.epoch_ms(),
                writer.updated.epoch_ms(),
                number,
                totals,
                flush.alerts_skipped as i64,
            ],
        )?;
        transaction.commit()?;
        self.committed();
        Ok(())
    }

    /// The board writer's row; `None` if no run has written the board of this database.
    pub fn board_writer(&self) -> Result<Option<WriterRow>, SqliteError> {
        let connection = self.lock();
        let row = connection
            .query_row(
                "SELECT pid, state, started_ms, updated_ms, flush, totals, alerts_skipped
                 FROM board_writer WHERE only = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, u32>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((pid, state, started_ms, updated_ms, flush, totals, skipped)) = row else {
            return Ok(None);
        };
        let time = |ms: i64| Timestamp::from_epoch_ms(ms).map_err(|e| bad("board writer", e));
        Ok(Some(WriterRow {
            writer: Writer {
                pid,
                state: match state.as_str() {
                    "running" => WriterState::Running,
                    _ => WriterState::Stopped,
                },
                started: time(started_ms)?,
                updated: time(updated_ms)?,
            },
            flush: flush as u64,
            totals: serde_json::from_str(&totals).map_err(|e| bad("board totals", e))?,
            alerts_skipped: skipped as u64,
        }))
    }

    /// The symbols on the board written after flush `after` (every symbol for 0), by symbol.
    pub fn board_symbols(&self, after: u64) -> Result<Vec<SymbolView>, SqliteError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT symbol, price, tick_ms, ticks, points, last_alert FROM board_symbols
             WHERE flush > ?1 ORDER BY symbol",
        )?;
        let mut rows = statement.query([after as i64])?;
        let mut views = Vec::new();
        while let Some(row) = rows.next()? {
            let symbol: String = row.get(0)?;
            let points: String = row.get(4)?;
            let last_alert: Option<String> = row.get(5)?;
            views.push(SymbolView {
                symbol: Symbol::parse(&symbol).map_err(|e| bad("board symbol", e))?,
                price: row.get(1)?,
                timestamp: Timestamp::from_epoch_ms(row.get(2)?)
                    .map_err(|e| bad("board symbol", e))?,
                ticks: row.get::<_, i64>(3)? as u64,
                points: serde_json::from_str(&points).map_err(|e| bad("board points", e))?,
                last_alert: last_alert
                    .map(|text| serde_json::from_str::<LastAlert>(&text))
                    .transpose()
                    .map_err(|e| bad("board last alert", e))?,
            });
        }
        Ok(views)
    }

    /// The newest `limit` board alerts after sequence number `after`, oldest first.
    pub fn board_alerts(&self, after: u64, limit: u32) -> Result<Vec<SequencedAlert>, SqliteError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT seq, alert, announced FROM board_alerts WHERE seq > ?1
             ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut rows = statement.query(params![after as i64, limit])?;
        let mut alerts = Vec::new();
        while let Some(row) = rows.next()? {
            let json: String = row.get(1)?;
            let alert: Alert = serde_json::from_str(&json).map_err(|e| bad("board alert", e))?;
            alerts.push(SequencedAlert {
                seq: row.get::<_, i64>(0)? as u64,
                alert: BoardAlert {
                    alert,
                    announced: row.get(2)?,
                },
            });
        }
        alerts.reverse();
        Ok(alerts)
    }

    /// The highest board alert sequence number (0 when there is none).
    pub fn board_alerts_seq(&self) -> Result<u64, SqliteError> {
        let connection = self.lock();
        let seq: Option<i64> =
            connection.query_row("SELECT max(seq) FROM board_alerts", [], |row| row.get(0))?;
        Ok(seq.unwrap_or(0) as u64)
    }

    /// How many alerts are stored but not announced yet.
    pub fn pending_count(&self) -> Result<u64, SqliteError> {
        let connection = self.lock();
        let count: i64 = connection.query_row(
            &format!("SELECT count(*) FROM alerts WHERE {PENDING}"),
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use tickwatch_core::board::Board;
    use tickwatch_core::testing::tick;
    use tickwatch_core::{Accepted, AlertOutcome, Outcome};

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_epoch_ms(ms).expect("valid")
    }

    fn writer(state: WriterState, updated_ms: i64) -> Writer {
        Writer {
            pid: 42,
            state,
            started: at(1_000),
            updated: at(updated_ms),
        }
    }

    #[test]
    fn a_database_without_a_board_has_no_writer_and_nothing_on_it() {
        let store = SqliteStore::in_memory().expect("store");
        assert_eq!(store.board_writer().expect("read"), None);
        assert!(store.board_symbols(0).expect("read").is_empty());
        assert!(store.board_alerts(0, 10).expect("read").is_empty());
        assert_eq!(store.board_alerts_seq().expect("read"), 0);
    }

    #[test]
    fn what_a_run_writes_reads_back_by_flush_and_sequence() {
        let store = SqliteStore::in_memory().expect("store");
        let mut board = Board::new();
        let first = [tick("AAPL", 151.0, 2_000), tick("MSFT", 300.0, 2_000)];
        board.observe(&first);
        let alert = tickwatch_core::testing::contract::sample_alert(
            first[0].symbol,
            2_000,
            tickwatch_core::AlertKind::High,
        );
        board.record(&[
            (
                1,
                Outcome::Accepted(Accepted::Alerts(vec![AlertOutcome::New(Box::new(alert))])),
            ),
            (2, Outcome::Accepted(Accepted::Quiet)),
        ]);
        store
            .write_board(&board.take_flush(), writer(WriterState::Running, 3_000))
            .expect("write");

        let row = store.board_writer().expect("read").expect("a writer");
        assert_eq!(row.flush, 1);
        assert_eq!(row.writer, writer(WriterState::Running, 3_000));
        assert_eq!((row.totals.ticks, row.totals.alerts), (2, 1));
        let symbols = store.board_symbols(0).expect("read");
        assert_eq!(symbols.len(), 2);
        assert_eq!(symbols[0].symbol.as_str(), "AAPL");
        assert_eq!(symbols[0].points, [(2_000, 151.0)]);
        assert_eq!(
            symbols[0].last_alert.as_ref().map(|l| l.rule_id),
            Some(alert.rule_id)
        );
        let alerts = store.board_alerts(0, 10).expect("read");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert.alert, alert);
        assert!(alerts[0].alert.announced);

        // The second flush: only MSFT moved.
        board.observe(&[tick("MSFT", 301.0, 3_000)]);
        store
            .write_board(&board.take_flush(), writer(WriterState::Stopped, 4_000))
            .expect("write");
        let changed = store.board_symbols(1).expect("read");
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].points, [(2_000, 300.0), (3_000, 301.0)]);
        assert!(
            store
                .board_alerts(alerts[0].seq, 10)
                .expect("read")
                .is_empty()
        );
        let row = store.board_writer().expect("read").expect("a writer");
        assert_eq!((row.flush, row.writer.state), (2, WriterState::Stopped));

        // The next run: AAPL moves without an alert; its last alert stays on the board.
        let mut next = Board::new();
        next.observe(&[tick("AAPL", 149.0, 5_000)]);
        store
            .write_board(&next.take_flush(), writer(WriterState::Running, 6_000))
            .expect("write");
        let aapl = store.board_symbols(2).expect("read");
        assert_eq!(aapl.len(), 1);
        assert_eq!(aapl[0].price, 149.0);
        assert_eq!(
            aapl[0].last_alert.as_ref().map(|l| l.rule_id),
            Some(alert.rule_id)
        );
    }

    #[test]
    fn board_alerts_are_kept_to_a_bound_and_read_newest_first_within_a_limit() {
        let store = SqliteStore::in_memory().expect("store");
        let symbol = Symbol::parse("AAPL").expect("valid");
        let mut total = 0;
        for round in 0..6 {
            let alerts: Vec<BoardAlert> = (0..200)
                .map(|i| BoardAlert {
                    alert: tickwatch_core::testing::contract::sample_alert(
                        symbol,
                        round * 1_000 + i,
                        tickwatch_core::AlertKind::High,
                    ),
                    announced: true,
                })
                .collect();
            total += alerts.len() as u64;
            let flush = BoardFlush {
                alerts,
                alerts_skipped: 7,
                ..BoardFlush::default()
            };
            store
                .write_board(&flush, writer(WriterState::Running, 2_000))
                .expect("write");
        }
        assert_eq!(store.board_alerts_seq().expect("read"), total);
        let kept = store.board_alerts(0, 5_000).expect("read");
        assert_eq!(kept.len() as i64, BOARD_ALERTS_KEPT);
        let newest = store.board_alerts(0, 3).expect("read");
        let seqs: Vec<u64> = newest.iter().map(|a| a.seq).collect();
        assert_eq!(
            seqs,
            [total - 2, total - 1, total],
            "the newest, oldest first"
        );
        let row = store.board_writer().expect("read").expect("a writer");
        assert_eq!(row.alerts_skipped, 42, "skipped counts add up over flushes");
    }

    #[test]
    fn the_pending_count_is_the_alerts_not_announced() {
        use tickwatch_core::ports::AlertStore as _;
        let store = SqliteStore::in_memory().expect("store");
        let symbol = Symbol::parse("AAPL").expect("valid");
        let alerts: Vec<Alert> = (0..3)
            .map(|i| {
                tickwatch_core::testing::contract::sample_alert(
                    symbol,
                    1_000 + i,
                    tickwatch_core::AlertKind::High,
                )
            })
            .collect();
        let inserted = tickwatch_core::testing::block_on_ready(store.insert(&alerts));
        assert!(inserted.iter().all(Result::is_ok));
        assert_eq!(store.pending_count().expect("count"), 3);
        let keys = [alerts[0].key()];
        let marked = tickwatch_core::testing::block_on_ready(store.mark_notified(&keys));
        assert!(marked.iter().all(Result::is_ok));
        assert_eq!(store.pending_count().expect("count"), 2);
    }
}
