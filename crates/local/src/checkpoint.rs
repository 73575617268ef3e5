//! Copying the WAL back into the database on a thread of its own.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a *checkpoint* copies them into the
//! database file. SQLite does that on the committing thread, once the WAL holds
//! `wal_autocheckpoint` pages, and when the last connection closes. For `tickwatch run` both
//! land on the critical path: the thread that stores a batch stops to copy megabytes, and the
//! run's end waits for whatever the WAL still holds (the whole run's pages, for a file that
//! never reached the threshold).
//!
//! A checkpointer ([`crate::SqliteStore::checkpoint_in_background`]) owns a second connection
//! and, woken after the store's commits of alerts, marks, states and the board, runs a `PASSIVE`
//! checkpoint: it copies what is committed without taking any lock a writer or reader waits on,
//! and stops at a page a reader still needs. So the copying happens while the writer works on,
//! on whichever core is idle, and what is left for the close is the last few commits. Other
//! commits (the rules') are left to the writer's own checkpoints, as before. Nothing about
//! durability changes: a checkpoint only moves committed pages from one file to the other, and
//! the WAL stays authoritative until SQLite resets it.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::sqlite::SqliteError;

/// Least time between two background checkpoints. Each one syncs the WAL and the database file
/// (`synchronous = NORMAL`), so they are spaced, not run after every commit.
pub const CHECKPOINT_INTERVAL_MS: u64 = 40;

/// The state the writer and the checkpointing thread share.
#[derive(Debug, Default)]
struct Signal {
    /// A commit happened since the last checkpoint began.
    pending: bool,
    /// The store is closing: the thread ends.
    stopping: bool,
}

/// A thread that checkpoints the database at `path` after commits (see the module docs).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    shared: Arc<(Mutex<Signal>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts the thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Checkpointer, SqliteError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(busy_timeout)?;
        // The same sync level as the writer: a checkpoint syncs the WAL before copying and the
        // database file after.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // This connection checkpoints only when the thread asks. It is closed before the
        // writer's (see `Drop`), so it is never the last connection, whose close checkpoints.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        let shared = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("tickwatch-checkpoint".into())
            .spawn({
                let shared = shared.clone();
                move || run(&connection, &shared)
            })
            .map_err(SqliteError::Thread)?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread a commit happened. Never waits for it.
    pub(crate) fn committed(&self) {
        let (signal, wake) = &*self.shared;
        let mut signal = signal.lock().unwrap_or_else(PoisonError::into_inner);
        if !signal.pending {
            signal.pending = true;
            wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread (a checkpoint under way finishes first) and closes its connection; the
    /// writer's connection, closed after, checkpoints what is left.
    fn drop(&mut self) {
        {
            let (signal, wake) = &*self.shared;
            signal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stopping = true;
            wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: waits for a commit, checkpoints, waits out the interval, and again.
fn run(connection: &Connection, shared: &(Mutex<Signal>, Condvar)) {
    let (signal, wake) = shared;
    let mut last: Option<Instant> = None;
    loop {
        {
            let mut state = signal.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if state.stopping {
                    return;
                }
                let due_in = last.map_or(Duration::ZERO, |at| {
                    Duration::from_millis(CHECKPOINT_INTERVAL_MS).saturating_sub(at.elapsed())
                });
                if state.pending && due_in.is_zero() {
                    break;
                }
                state = if state.pending {
                    wake.wait_timeout(state, due_in)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                } else {
                    wake.wait(state).unwrap_or_else(PoisonError::into_inner)
                };
            }
            state.pending = false;
        }
        last = Some(Instant::now());
        // A checkpoint that cannot run now (another one under way, a busy file) is only work
        // left for the next one, or for the writer's own.
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%error, "background checkpoint");
        }
    }
}
