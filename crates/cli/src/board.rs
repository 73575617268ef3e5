//! The board a run keeps and writes into its database for `tickwatch serve` (in this process or
//! another) to show: the core's [`Board`] fed with each batch and written when it says the
//! changes are due (a few times a second at most, sooner on a live feed); here only the clock,
//! the store and the warning when a write fails.

use std::time::{Duration, Instant};

use tickwatch_core::board::Board;
use tickwatch_core::{Outcome, Tick, TickError, Timestamp};
use tickwatch_local::SqliteStore;
use tickwatch_local::board::{Writer, WriterState};

/// The board of one run (or none, with `--no-board`: then every call does nothing).
pub(crate) struct RunBoard {
    enabled: bool,
    board: Board,
    pid: u32,
    started: Timestamp,
    flushed: Instant,
    /// Whether the last batch ended with what had arrived (a live feed).
    live: bool,
    failing: bool,
}

impl RunBoard {
    pub(crate) fn new(started: Timestamp, enabled: bool) -> RunBoard {
        RunBoard {
            enabled,
            board: Board::new(),
            pid: std::process::id(),
            started,
            flushed: Instant::now(),
            live: false,
            failing: false,
        }
    }

    /// Follows a batch's valid ticks (before the pipeline takes the batch).
    pub(crate) fn observe(&mut self, batch: &[(u64, Result<Tick, TickError>)]) {
        if !self.enabled {
            return;
        }
        self.live = batch.len() < tickwatch_local::source::BATCH_TICKS_MAX;
        self.board
            .observe(batch.iter().filter_map(|(_, tick)| tick.as_ref().ok()));
    }

    /// Counts the batch's outcomes.
    pub(crate) fn record(&mut self, outcomes: &[(u64, Outcome)]) {
        if self.enabled {
            self.board.record(outcomes);
        }
    }

    /// How long until unwritten changes are due; `None` when there are none.
    pub(crate) fn due_in(&self) -> Option<Duration> {
        let since_ms = u64::try_from(self.flushed.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.board
            .flush_due_in_ms(since_ms, self.live)
            .map(Duration::from_millis)
    }

    /// Writes the changes if they are due.
    pub(crate) fn flush_if_due(&mut self, store: &SqliteStore, now: Timestamp) {
        if self.due_in() == Some(Duration::ZERO) {
            self.flush(store, now, WriterState::Running);
        }
    }

    /// Writes the changes now (`Stopped` at the end of the run, whatever changed).
    pub(crate) fn flush(&mut self, store: &SqliteStore, now: Timestamp, state: WriterState) {
        if !self.enabled || (!self.board.changed() && state == WriterState::Running) {
            return;
        }
        let flush = self.board.take_flush();
        self.flushed = Instant::now();
        let writer = Writer {
            pid: self.pid,
            state,
            started: self.started,
            updated: now,
        };
        // The board is a view: a failure to write it (a full disk) is reported once and never
        // stops the run, whose alerts are stored by the pipeline.
        match store.write_board(&flush, writer) {
            Ok(()) => self.failing = false,
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!("the board could not be written (the run goes on): {error}");
            }
            Err(_) => {}
        }
    }
}
