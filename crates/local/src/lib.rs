//! # tickwatch-local
//!
//! Adapters for running tickwatch on one machine with no cloud at all: the embedded SQLite store
//! ([`sqlite`]), tick readers for NDJSON and CSV files or stdin ([`source`]), and notifiers for
//! stdout, a file or a webhook ([`notify`]). They implement the core's ports; the `tickwatch`
//! binary wires them to the pipeline, holding an [`AnnounceLock`] ([`lock`]) so that one process at
//! a time announces from a database.

pub mod board;
pub mod checkpoint;
pub mod lock;
pub mod notify;
pub mod prefetch;
pub mod source;
pub mod sqlite;
pub mod state_log;
#[cfg(feature = "testing")]
pub mod testing;

pub use lock::{AnnounceLock, LockError};
pub use notify::{Destination, LocalNotifier};
pub use source::{DecodeAhead, Format, Next, TickReader};
pub use sqlite::{AlertQuery, Order, SqliteStore};
