//! # tickwatch-core
//!
//! The pure engine of tickwatch. It parses and validates ticks ([`tick`]), evaluates alert rules
//! ([`rules`]), builds alerts with stable ids ([`alert`]), decides retries ([`retry`]) and runs the
//! batch pipeline ([`pipeline`]) over small port traits ([`ports`]) that adapters implement.
//!
//! Invariant: nothing in this crate does I/O, reads a clock or the environment, or spawns tasks.
//! Time comes in through [`ports::Clock`], randomness through a seeded [`retry::Rng`].
//!
//! Test support (the in-memory ports, the store contract, the hostile-tick corpus) is in
//! `testing`, compiled only with the `testing` feature that test builds enable.

pub mod alert;
pub mod board;
pub mod generate;
pub mod pipeline;
pub mod ports;
pub mod retry;
pub mod rules;
mod state_cache;
pub mod tick;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use alert::{Alert, AlertId, AlertKey, AlertKind};
pub use pipeline::{
    Accepted, AlertOutcome, BatchReport, BatchStats, FailedSteps, Failure, FinishedBatch, Outcome,
    Pipeline, PipelineConfig, SettledBatch,
};
pub use rules::{Band, BandSet, Condition, Mode, Rule, RuleBook, RuleId};
pub use tick::{Price, Symbol, Tick, TickError, Timestamp, Volume};
