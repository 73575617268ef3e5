//! Ports: the small traits through which the pipeline reaches the outside world. Adapters (SQLite,
//! DynamoDB, SNS, webhooks, an in-memory store for tests) implement them; the core never does I/O.
//!
//! Every batch method takes a slice and returns one result per item, in order, so that one bad
//! item does not fail its neighbours and only failed items are retried. Implementations may work
//! on the items concurrently, up to a bound of their own.

use std::borrow::Borrow;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{Either, select};

use crate::alert::{Alert, AlertKey};
use crate::rules::SymbolState;
use crate::tick::{Symbol, Timestamp};

/// Whether retrying an operation can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The same call will fail the same way (bad request, missing table, access denied).
    Permanent,
    /// The call may succeed later (throttling, timeouts, 5xx, dropped connections).
    Transient,
}

impl ErrorClass {
    /// `permanent` or `transient`, for messages, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors that know whether retrying can help. The pipeline acts on this and nothing else.
pub trait Classify {
    /// Permanent or transient.
    fn class(&self) -> ErrorClass;

    /// Shorthand for `class() == Transient`.
    fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

/// The error type every port uses.
pub trait PortError: std::error::Error + Classify + Send + Sync + 'static {}
impl<T: std::error::Error + Classify + Send + Sync + 'static> PortError for T {}

/// What inserting an alert found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// It was new and is now stored, not yet marked notified.
    New,
    /// An alert with the same key was already stored; nothing changed.
    AlreadyThere {
        /// Whether that alert was already announced.
        notified: bool,
    },
}

/// An alert as stored, with its delivery status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoredAlert {
    /// The alert.
    pub alert: Alert,
    /// Whether it has been announced.
    pub notified: bool,
}

/// Durable alerts. Insertion is idempotent on the alert key.
pub trait AlertStore: Send + Sync {
    /// The adapter's error.
    type Error: PortError;

    /// Stores each alert unless one with the same key exists (then reports it and changes nothing).
    /// The alerts may be owned or borrowed (`&[Alert]` or `&[&Alert]`): the pipeline hands over
    /// references to the alerts its batch holds, never copies.
    fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<Inserted, Self::Error>>> + Send;

    /// Looks up alerts by key.
    fn fetch(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<Option<StoredAlert>, Self::Error>>> + Send;

    /// Records that these alerts have been announced.
    fn mark_notified(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send;
}

/// A cross-mode state change: move `symbol` from the state whose `last_seen` is
/// `expected_last_seen` (or from no state) to `next`, and store the alerts that move raised.
#[derive(Clone, Debug, PartialEq)]
pub struct Advance {
    /// The symbol.
    pub symbol: Symbol,
    /// The `last_seen` of the state this change was computed from; `None` if there was none.
    pub expected_last_seen: Option<Timestamp>,
    /// The new state.
    pub next: SymbolState,
    /// Alerts raised on the way from the old state to `next`, oldest first.
    pub alerts: Vec<Alert>,
}

/// What an [`Advance`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Advanced {
    /// The state moved and the alerts are stored (new, not notified).
    Applied,
    /// The stored state is not the expected one (another writer moved it, or the caller guessed);
    /// nothing changed. Carries the state the store holds (`None`: no state), so the caller can
    /// evaluate again without a separate read.
    Conflict(Option<SymbolState>),
}

/// The states [`StateStore::load`] read: one result per symbol asked for, in order (`None`: the
/// symbol has no state).
pub type LoadedStates<E> = Vec<Result<Option<SymbolState>, E>>;

/// Per-symbol cross-mode state, with compare-and-set. A caller guesses the state (the one it last
/// saw, or none) and the compare-and-set tells it the truth when the guess was wrong, so a batch
/// never spends a round trip reading state it already knows. For symbols it does not remember, it
/// asks [`StateStore::load`] first, where the store reads cheaply.
pub trait StateStore: Send + Sync {
    /// The adapter's error.
    type Error: PortError;

    /// Reads the stored states of `symbols`, which the caller does not remember, so that it plans
    /// from the truth rather than a guess: a miss then costs one read instead of a lost
    /// compare-and-set and a second write.
    ///
    /// `None` (the default): this store does not read ahead, because a read would cost what it
    /// saves. On DynamoDB a read is a round trip of its own, as is the conflict it avoids, and a
    /// symbol that is new needs neither. The caller then guesses "no state" and the
    /// compare-and-set corrects it.
    fn load(
        &self,
        symbols: &[Symbol],
    ) -> impl Future<Output = Option<LoadedStates<Self::Error>>> + Send {
        let _ = symbols;
        std::future::ready(None)
    }

    /// Applies each change atomically: the state moves *and* its alerts are inserted (idempotently),
    /// or nothing happens. Making the two one write is what guarantees that an alert can never be
    /// lost between the state change and its storage.
    fn advance(
        &self,
        changes: &[Advance],
    ) -> impl Future<Output = Vec<Result<Advanced, Self::Error>>> + Send;
}

/// Announces alerts (stdout, a file, a webhook, an SNS topic).
pub trait Notifier: Send + Sync {
    /// The adapter's error.
    type Error: PortError;

    /// Publishes each alert. A success means the alert has left our hands. Owned or borrowed, as
    /// for [`AlertStore::insert`].
    fn publish<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send;
}

/// Time, injected: the core never reads the system clock itself.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Starts `call` unless `deadline` (read on `clock`) has passed, and waits for it unless the
/// deadline passes first; then the call is dropped, not finished, and the answer is `None`. With
/// no deadline it simply runs. `call` is a closure so that nothing of it runs once the deadline is
/// gone (a port may do work when called, before its future is polled). The one way every step of
/// a batch, in the core and in the adapters' batch runner, respects the invocation deadline:
/// computed and enforced on the same clock.
pub async fn before_deadline<C: Clock, F: Future>(
    clock: &C,
    deadline: Option<Timestamp>,
    call: impl FnOnce() -> F,
) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(call().await);
    };
    let remaining_ms = clock.now().ms_until(deadline);
    if remaining_ms == 0 {
        return None;
    }
    let call = call();
    let timer = clock.sleep(Duration::from_millis(remaining_ms));
    match select(std::pin::pin!(call), std::pin::pin!(timer)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

// Shared ports: several pipelines (or tasks) may use one store or notifier.
impl<T: AlertStore> AlertStore for std::sync::Arc<T> {
    type Error = T::Error;

    fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<Inserted, Self::Error>>> + Send {
        T::insert(self, alerts)
    }

    fn fetch(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<Option<StoredAlert>, Self::Error>>> + Send {
        T::fetch(self, keys)
    }

    fn mark_notified(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        T::mark_notified(self, keys)
    }
}

impl<T: StateStore> StateStore for std::sync::Arc<T> {
    type Error = T::Error;

    fn load(
        &self,
        symbols: &[Symbol],
    ) -> impl Future<Output = Option<LoadedStates<Self::Error>>> + Send {
        T::load(self, symbols)
    }

    fn advance(
        &self,
        changes: &[Advance],
    ) -> impl Future<Output = Vec<Result<Advanced, Self::Error>>> + Send {
        T::advance(self, changes)
    }
}

impl<T: Notifier> Notifier for std::sync::Arc<T> {
    type Error = T::Error;

    fn publish<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        T::publish(self, alerts)
    }
}

impl<T: Clock> Clock for std::sync::Arc<T> {
    fn now(&self) -> Timestamp {
        T::now(self)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        T::sleep(self, duration)
    }
}

/// Rules as the store holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRules {
    /// The store's change counter: every committed change moves it up by one.
    pub version: u64,
    /// The valid rules.
    pub rules: Vec<crate::rules::Rule>,
    /// Rules the store holds that do not validate (written by hand, or by a newer release): the
    /// pipeline skips them, and says so.
    pub invalid: Vec<InvalidRule>,
}

/// A stored rule that does not validate.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidRule {
    /// Its id as stored (any text).
    pub id: String,
    /// What is wrong with it.
    pub error: crate::rules::RulesError,
}

/// Where rules live (a SQLite database, a DynamoDB table). A store that has never been written
/// holds no version: then the base rules (the configuration's, or the defaults) are in force.
pub trait RuleStore: Send + Sync {
    /// The adapter's error.
    type Error: PortError;

    /// The change counter, cheaply (one row, one item); `None` if no rule was ever written.
    fn rules_version(&self) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send;

    /// Every rule, with the version they were read at; `None` if no rule was ever written.
    fn load_rules(&self) -> impl Future<Output = Result<Option<StoredRules>, Self::Error>> + Send;

    /// Stores `put` (replacing rules with the same id) and deletes `remove`, moving the version
    /// from `expected` (`None`: never written) up by one, atomically. `Ok(false)`: the version was
    /// not `expected` (another writer came first) and nothing changed.
    fn commit_rules(
        &self,
        expected: Option<u64>,
        put: &[crate::rules::Rule],
        remove: &[crate::rules::RuleId],
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}
