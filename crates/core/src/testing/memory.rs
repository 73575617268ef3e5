//! In-memory ports: a store, a notifier and a manual clock, with scripted faults.
//!
//! They are the reference implementation of the port contracts (the adapters' tests check the
//! same behaviours against SQLite and DynamoDB) and the fakes that the core, the Lambda handler
//! and the fuzz targets are tested with. Nothing here touches the outside world.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::future::Either;

use crate::alert::{Alert, AlertKey};
use crate::ports::{
    Advance, Advanced, AlertStore, Classify, Clock, ErrorClass, Inserted, LoadedStates, Notifier,
    StateStore, StoredAlert,
};
use crate::rules::SymbolState;
use crate::tick::{Symbol, TIMESTAMP_MS_END, Timestamp};

/// A port operation, for scripting faults and counting calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `StateStore::advance`
    Advance,
    /// `StateStore::load` (counted only while the store reads ahead)
    Load,
    /// `AlertStore::insert`
    Insert,
    /// `AlertStore::fetch`
    Fetch,
    /// `AlertStore::mark_notified`
    MarkNotified,
    /// `Notifier::publish`
    Publish,
}

/// What a scripted call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail every item without doing anything.
    Fail(ErrorClass),
    /// Do the work, then report every item as failed (a lost response, a timeout after commit).
    FailAfterApplying(ErrorClass),
    /// Never answer (a connection that hangs); only a deadline ends the wait.
    Hang,
}

/// The error of the in-memory ports: always a scripted fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("injected {class:?} fault in {op:?}")]
pub struct InjectedFault {
    /// The operation.
    pub op: Op,
    /// Its class.
    pub class: ErrorClass,
}

impl Classify for InjectedFault {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Scripted faults and call counts, shared by the in-memory ports.
#[derive(Debug, Default)]
struct Script {
    faults: HashMap<Op, VecDeque<Option<Fault>>>,
    calls: BTreeMap<Op, u64>,
}

impl Script {
    /// Records a call of `op` and returns the fault scripted for it, if any.
    fn next(&mut self, op: Op) -> Option<Fault> {
        *self.calls.entry(op).or_default() += 1;
        self.faults
            .get_mut(&op)
            .and_then(VecDeque::pop_front)
            .flatten()
    }
}

type Answer<T> = Vec<Result<T, InjectedFault>>;

/// Runs `ok` (the real work) unless the fault says otherwise, and shapes the reply.
fn answer<T>(
    n: usize,
    op: Op,
    fault: Option<Fault>,
    ok: impl FnOnce() -> Vec<T>,
) -> Option<Answer<T>> {
    match fault {
        None => Some(ok().into_iter().map(Ok).collect()),
        Some(Fault::Fail(class)) => {
            Some((0..n).map(|_| Err(InjectedFault { op, class })).collect())
        }
        Some(Fault::FailAfterApplying(class)) => {
            ok();
            Some((0..n).map(|_| Err(InjectedFault { op, class })).collect())
        }
        Some(Fault::Hang) => None,
    }
}

/// A reply that is ready at once, or never (`None`).
fn reply<T>(answer: Option<T>) -> impl Future<Output = T> + Send
where
    T: Send,
{
    match answer {
        Some(value) => Either::Left(std::future::ready(value)),
        None => Either::Right(std::future::pending()),
    }
}

/// An in-memory alert and state store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    alerts: BTreeMap<AlertKey, StoredAlert>,
    states: HashMap<Symbol, SymbolState>,
    /// States written by "another writer" just before the next advance calls (one entry a call).
    interference: VecDeque<Vec<(Symbol, SymbolState)>>,
    /// Whether `load` reads (like SQLite) or declines (like DynamoDB).
    reads_ahead: bool,
    script: Script,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes [`StateStore::load`] read the stored states, as SQLite does; by default it declines,
    /// as DynamoDB does, and the pipeline guesses.
    pub fn read_ahead(&self) {
        self.lock().reads_ahead = true;
    }

    /// Scripts the next calls of `op`: each entry is used by one call, in order (`None` = behave).
    pub fn script(&self, op: Op, calls: impl IntoIterator<Item = Option<Fault>>) {
        self.lock()
            .script
            .faults
            .entry(op)
            .or_default()
            .extend(calls);
    }

    /// Drops every fault still scripted (the store is "back").
    pub fn heal(&self) {
        self.lock().script.faults.clear();
    }

    /// Every stored alert, by key.
    pub fn alerts(&self) -> Vec<StoredAlert> {
        self.lock().alerts.values().copied().collect()
    }

    /// The state of `symbol`.
    pub fn state(&self, symbol: &Symbol) -> Option<SymbolState> {
        self.lock().states.get(symbol).cloned()
    }

    /// Overwrites the state of `symbol` (simulates another writer).
    pub fn set_state(&self, symbol: Symbol, state: SymbolState) {
        self.lock().states.insert(symbol, state);
    }

    /// Makes "another writer" set these states right before each of the next `times` advance
    /// calls, so that those calls lose their compare-and-set race.
    pub fn interfere_before_advance(&self, states: Vec<(Symbol, SymbolState)>, times: usize) {
        let mut inner = self.lock();
        for _ in 0..times {
            inner.interference.push_back(states.clone());
        }
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().script.calls.get(&op).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        // A panic while holding the lock is a test failure already; keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl AlertStore for MemoryStore {
    type Error = InjectedFault;

    fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<Inserted, InjectedFault>>> + Send {
        let mut inner = self.lock();
        let fault = inner.script.next(Op::Insert);
        let result = answer(alerts.len(), Op::Insert, fault, || {
            alerts
                .iter()
                .map(Borrow::borrow)
                .map(|alert: &Alert| match inner.alerts.get(&alert.key()) {
                    Some(existing) => Inserted::AlreadyThere {
                        notified: existing.notified,
                    },
                    None => {
                        inner.alerts.insert(
                            alert.key(),
                            StoredAlert {
                                alert: *alert,
                                notified: false,
                            },
                        );
                        Inserted::New
                    }
                })
                .collect()
        });
        reply(result)
    }

    fn fetch(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<Option<StoredAlert>, InjectedFault>>> + Send {
        let mut inner = self.lock();
        let fault = inner.script.next(Op::Fetch);
        let result = answer(keys.len(), Op::Fetch, fault, || {
            keys.iter()
                .map(|key| inner.alerts.get(key).copied())
                .collect()
        });
        reply(result)
    }

    fn mark_notified(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<(), InjectedFault>>> + Send {
        let mut inner = self.lock();
        let fault = inner.script.next(Op::MarkNotified);
        let result = answer(keys.len(), Op::MarkNotified, fault, || {
            keys.iter()
                .map(|key| {
                    if let Some(stored) = inner.alerts.get_mut(key) {
                        stored.notified = true;
                    }
                })
                .collect()
        });
        reply(result)
    }
}

impl StateStore for MemoryStore {
    type Error = InjectedFault;

    fn load(
        &self,
        symbols: &[Symbol],
    ) -> impl Future<Output = Option<LoadedStates<InjectedFault>>> + Send {
        let mut inner = self.lock();
        if !inner.reads_ahead {
            return Either::Left(std::future::ready(None));
        }
        let fault = inner.script.next(Op::Load);
        let result = answer(symbols.len(), Op::Load, fault, || {
            symbols
                .iter()
                .map(|symbol| inner.states.get(symbol).cloned())
                .collect()
        });
        Either::Right(async move { Some(reply(result).await) })
    }

    fn advance(
        &self,
        changes: &[Advance],
    ) -> impl Future<Output = Vec<Result<Advanced, InjectedFault>>> + Send {
        let mut inner = self.lock();
        if let Some(states) = inner.interference.pop_front() {
            inner.states.extend(states);
        }
        let fault = inner.script.next(Op::Advance);
        let result = answer(changes.len(), Op::Advance, fault, || {
            changes
                .iter()
                .map(|change| {
                    let current = inner.states.get(&change.symbol).cloned();
                    if current.as_ref().map(|s| s.last_seen) != change.expected_last_seen {
                        return Advanced::Conflict(current);
                    }
                    inner.states.insert(change.symbol, change.next.clone());
                    for alert in &change.alerts {
                        inner.alerts.entry(alert.key()).or_insert(StoredAlert {
                            alert: *alert,
                            notified: false,
                        });
                    }
                    Advanced::Applied
                })
                .collect()
        });
        reply(result)
    }
}

/// A notifier that remembers what it published.
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    inner: Mutex<NotifierInner>,
}

#[derive(Debug, Default)]
struct NotifierInner {
    published: Vec<Alert>,
    script: Script,
}

impl MemoryNotifier {
    /// A notifier with nothing published.
    pub fn new() -> MemoryNotifier {
        MemoryNotifier::default()
    }

    /// Scripts the next publish calls (`None` = behave).
    pub fn script(&self, calls: impl IntoIterator<Item = Option<Fault>>) {
        self.lock()
            .script
            .faults
            .entry(Op::Publish)
            .or_default()
            .extend(calls);
    }

    /// Drops every fault still scripted.
    pub fn heal(&self) {
        self.lock().script.faults.clear();
    }

    /// Everything published, in order.
    pub fn published(&self) -> Vec<Alert> {
        self.lock().published.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotifierInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Notifier for MemoryNotifier {
    type Error = InjectedFault;

    fn publish<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<(), InjectedFault>>> + Send {
        let mut inner = self.lock();
        let fault = inner.script.next(Op::Publish);
        let result = answer(alerts.len(), Op::Publish, fault, || {
            inner
                .published
                .extend(alerts.iter().map(|alert| *alert.borrow()));
            vec![(); alerts.len()]
        });
        reply(result)
    }
}

/// A clock that only moves when told to, or when something sleeps on it (sleeping returns at once
/// and advances the time), so retry schedules run instantly and deterministically.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
    slept_ms: Mutex<Vec<u64>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: Timestamp) -> ManualClock {
        ManualClock {
            now_ms: AtomicI64::new(now.epoch_ms()),
            slept_ms: Mutex::new(Vec::new()),
        }
    }

    /// Moves the clock forward, stopping at the last valid timestamp (so [`Clock::now`] never
    /// fails, whatever a test sleeps).
    pub fn advance(&self, duration: Duration) {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms).min(TIMESTAMP_MS_END - 1))
            });
    }

    /// Every sleep so far, in milliseconds.
    pub fn sleeps_ms(&self) -> Vec<u64> {
        self.slept_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // In range by construction: `at` takes a valid timestamp and `advance` stops at the end.
        Timestamp::from_epoch_ms(self.now_ms.load(Ordering::SeqCst)).unwrap_or(Timestamp::LAST)
    }

    // Lazy: time moves only if the sleep is actually awaited (a deadline timer that loses its race
    // against the call it guards must not move the clock).
    async fn sleep(&self, duration: Duration) {
        self.slept_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.advance(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on_ready;

    #[test]
    fn the_manual_clock_stops_at_the_last_timestamp() {
        let clock = ManualClock::at(Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid"));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp::LAST);
        block_on_ready(clock.sleep(Duration::from_secs(1)));
        assert_eq!(clock.now(), Timestamp::LAST);
    }

    #[test]
    fn the_memory_store_keeps_the_port_contracts() {
        let store = MemoryStore::new();
        block_on_ready(crate::testing::contract::check_alert_store(&store, "M"));
        block_on_ready(crate::testing::contract::check_state_store(&store, "M"));
    }
}
