//! # tickwatch-core
//!
//! The pure engine of tickwatch. It parses and validates ticks ([`tick`]), evaluates alert rules
//! ([`rules`]), builds alerts with stable ids ([`alert`]), decides retries ([`retry`]) and runs the
//! batch pipeline ([`pipeline`]) over small port traits ([`ports`]) that adapters implement.
//!
//! Invariant: nothing in this crate does I/O, reads a clock or the environment, or spawns tasks.
//! Time comes in through [`ports::Clock`], randomness through a seeded [`retry::Rng`].

pub mod alert;
pub mod contract;
pub mod generate;
pub mod hostile;
pub mod memory;
pub mod pipeline;
pub mod ports;
pub mod retry;
pub mod rules;
pub mod tick;

pub use alert::{Alert, AlertId, AlertKey, AlertKind};
pub use pipeline::{
    Accepted, BatchReport, BatchStats, FailedSteps, Failure, Outcome, Pipeline, PipelineConfig,
};
pub use rules::{Mode, Rule, RuleSet};
pub use tick::{Price, Symbol, Tick, TickError, Timestamp};
