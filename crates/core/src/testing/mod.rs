//! Test support: the in-memory ports (the reference implementation of the port contracts), the
//! store contract every store adapter's tests run, the hostile-tick corpus reader, and the small
//! helpers tests and benchmarks share. Like the rest of the core, it does no I/O. Compiled only for this crate's tests and with the `testing`
//! feature, which test, bench and fuzz builds enable; it is no part of the production API.

pub mod contract;
pub mod hostile;
pub mod memory;
pub mod rules;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

pub use memory::{Fault, InjectedFault, ManualClock, MemoryNotifier, MemoryStore, Op};
pub use rules::{rule, rule_book, rule_mix};

use crate::retry::RetryPolicy;
use crate::rules::RuleBook;
use crate::{Band, Mode, Pipeline, PipelineConfig, Timestamp};

/// Most polls [`block_on_ready`] makes before it decides the future waits on something real.
pub const READY_POLLS_MAX: u64 = 10_000_000;

/// Drives a future whose every await is immediately ready, as with the in-memory ports, on the
/// calling thread and without a runtime: what the property tests, fuzz targets and benchmarks
/// use to run the pipeline fast and deterministically.
///
/// # Panics
/// If the future is still pending after [`READY_POLLS_MAX`] polls: it waits on a real timer or
/// I/O, which this executor never wakes.
pub fn block_on_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..READY_POLLS_MAX {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!(
        "a future stayed pending for {READY_POLLS_MAX} polls: it waits on more than in-memory ports"
    )
}

/// A valid tick without volume.
///
/// # Panics
/// If `symbol`, `price` or `at_ms` is not valid.
pub fn tick(symbol: &str, price: f64, at_ms: i64) -> crate::Tick {
    crate::Tick {
        symbol: crate::Symbol::parse(symbol).expect("a valid symbol"),
        price: crate::Price::new(price).expect("a valid price"),
        at: Timestamp::from_epoch_ms(at_ms).expect("a valid time"),
        volume: crate::Volume::ZERO,
    }
}

/// The specification's rules for every symbol: `high` (above 150) and `low` (below 50), firing on
/// `enter` (cross) or `every` tick (level), no hysteresis.
pub fn spec_rules(mode: Mode) -> Arc<RuleBook> {
    Arc::new(RuleBook::from(
        Band::new(150.0, 50.0, 0.0, mode).expect("the specification's band is valid"),
    ))
}

/// A pipeline configuration with [`spec_rules`], the one most tests run.
pub fn spec_config(mode: Mode, retry: RetryPolicy, jitter_seed: u64) -> PipelineConfig {
    PipelineConfig {
        rules: spec_rules(mode),
        retry,
        jitter_seed,
    }
}

/// The pipeline over the in-memory ports.
pub type MemoryPipeline = Pipeline<Arc<MemoryStore>, Arc<MemoryNotifier>, Arc<ManualClock>>;

/// A pipeline over fresh in-memory ports, with handles on each port to script faults and look
/// inside.
pub struct MemoryRig {
    /// The pipeline.
    pub pipeline: MemoryPipeline,
    /// Its store.
    pub store: Arc<MemoryStore>,
    /// Its notifier.
    pub notifier: Arc<MemoryNotifier>,
    /// Its clock, showing `now` until something sleeps on it or a test moves it.
    pub clock: Arc<ManualClock>,
}

impl MemoryRig {
    /// A pipeline with `config` over empty in-memory ports, its clock at `now`.
    pub fn new(config: PipelineConfig, now: Timestamp) -> MemoryRig {
        let store = Arc::new(MemoryStore::new());
        let notifier = Arc::new(MemoryNotifier::new());
        let clock = Arc::new(ManualClock::at(now));
        MemoryRig {
            pipeline: Pipeline::new(config, store.clone(), notifier.clone(), clock.clone()),
            store,
            notifier,
            clock,
        }
    }
}
