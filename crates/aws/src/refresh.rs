//! Keeping a running pipeline's rules current with a rule store: [`RulesRefresher`], which the
//! Lambda handler and the SQS worker both call before every batch ([`RulesSource`]), and which
//! `tickwatch run` uses over its SQLite database ([`RulesRefresher::every_batch`]).
//!
//! At start-up the refresher loads the rules ([`RulesRefresher::load`]) and the pipeline starts
//! with `RuleBook::in_force(stored, base)`: the store's valid rules once it has been written, the
//! base rules (the deployment's variables) until then. Afterwards, before a batch, if at least
//! the refresh interval has passed since the last check (on the pipeline's clock), it makes one
//! cheap call, [`RuleStore::rules_version`]; only when the version changed does it load the rules
//! and put them in force ([`tickwatch_core::Pipeline::set_rules`]). So a batch within the interval
//! costs no store call at all, a check costs one read, and a full load happens once per change.
//! Every warm instance therefore applies a change at most one interval after it is committed,
//! plus the time until its next batch (an idle instance checks when work arrives).
//!
//! Alerting never stops on account of the rules: a rule that does not validate is logged (once
//! per load, with its id and the field at fault) and skipped, and a check or load that fails
//! (throttling, a network error) is logged and leaves the rules in force as they were; the next
//! interval tries again. Only the first load, at start-up, must succeed: without it the rules in
//! force are unknown.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tickwatch_core::Pipeline;
use tickwatch_core::Timestamp;
use tickwatch_core::ports::{AlertStore, Clock, Notifier, RuleStore, StateStore, StoredRules};
use tickwatch_core::rules::{RuleBook, RulesError};

/// Shortest refresh interval, in seconds.
pub const REFRESH_SECONDS_MIN: u32 = 1;
/// Longest refresh interval, in seconds.
pub const REFRESH_SECONDS_MAX: u32 = 3_600;
/// The refresh interval unless one is configured, in seconds.
pub const REFRESH_SECONDS_DEFAULT: u32 = 10;

/// What happens to a pipeline's rules before each batch: the one hook the Lambda handler and the
/// SQS worker share.
pub trait RulesSource: Send + Sync {
    /// Brings `pipeline`'s rules up to date, if that is due. Never fails: the rules in force stay
    /// when the source cannot be read.
    fn before_batch<S, N, C>(
        &self,
        pipeline: &Pipeline<S, N, C>,
    ) -> impl Future<Output = ()> + Send
    where
        S: AlertStore + StateStore,
        N: Notifier,
        C: Clock;
}

/// The rules given at start stay in force: nothing is read before a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedRules;

impl RulesSource for FixedRules {
    async fn before_batch<S, N, C>(&self, _pipeline: &Pipeline<S, N, C>)
    where
        S: AlertStore + StateStore,
        N: Notifier,
        C: Clock,
    {
    }
}

/// `None`: fixed rules (a deployment without a rules table).
impl<T: RulesSource> RulesSource for Option<T> {
    async fn before_batch<S, N, C>(&self, pipeline: &Pipeline<S, N, C>)
    where
        S: AlertStore + StateStore,
        N: Notifier,
        C: Clock,
    {
        if let Some(source) = self {
            source.before_batch(pipeline).await;
        }
    }
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E: std::error::Error + 'static> {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[source] E),
    /// The stored rules do not make a rule book (more than `tickwatch_core::rules::RULES_MAX`).
    #[error("the stored rules cannot be put in force: {0}")]
    Rules(#[source] RulesError),
}

/// What one [`RulesRefresher::refresh`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Less than the interval has passed since the last check: nothing was read.
    NotDue,
    /// The version is the one in force: one read, nothing changed.
    Unchanged,
    /// The version changed: the rules were loaded and are in force from the next batch.
    Reloaded {
        /// The store's version now in force (`None`: never written, the base rules).
        version: Option<u64>,
    },
    /// Reading failed; the rules in force stay, and the next interval tries again.
    Failed,
}

/// What the refresher knows between batches.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// When the version was last checked (on the pipeline's clock).
    checked_at: Option<Timestamp>,
    /// The store's version of the rules in force.
    version: Option<u64>,
}

/// Keeps a pipeline's rules current with a [`RuleStore`] (see the module documentation).
pub struct RulesRefresher<R> {
    store: R,
    base: Arc<RuleBook>,
    interval_ms: u64,
    seen: Mutex<Seen>,
}

impl<R: RuleStore> RulesRefresher<R> {
    /// A refresher over `store` that falls back to `base` while the store was never written, and
    /// checks at most once every `interval_seconds` (clamped to [`REFRESH_SECONDS_MIN`] ..=
    /// [`REFRESH_SECONDS_MAX`]; deployment settings are validated before they get here).
    pub fn new(store: R, base: Arc<RuleBook>, interval_seconds: u32) -> RulesRefresher<R> {
        let seconds = interval_seconds.clamp(REFRESH_SECONDS_MIN, REFRESH_SECONDS_MAX);
        RulesRefresher {
            store,
            base,
            interval_ms: u64::from(seconds) * 1_000,
            seen: Mutex::new(Seen {
                checked_at: None,
                version: None,
            }),
        }
    }

    /// A refresher that checks before every batch (interval 0): the local mode's, where a check
    /// is one read of a local database and a change should apply to the very next batch.
    pub fn every_batch(store: R, base: Arc<RuleBook>) -> RulesRefresher<R> {
        RulesRefresher {
            interval_ms: 0,
            ..RulesRefresher::new(store, base, REFRESH_SECONDS_MIN)
        }
    }

    /// The store.
    pub fn store(&self) -> &R {
        &self.store
    }

    /// The base rules.
    pub fn base(&self) -> &Arc<RuleBook> {
        &self.base
    }

    /// The interval between two checks, in milliseconds.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Loads the rules (start-up): the rule book to start the pipeline with. The interval counts
    /// from `now`.
    pub async fn load(&self, now: Timestamp) -> Result<Arc<RuleBook>, LoadError<R::Error>> {
        let stored = self.store.load_rules().await.map_err(LoadError::Store)?;
        let (book, version) = self.book(stored).map_err(LoadError::Rules)?;
        *self.lock() = Seen {
            checked_at: Some(now),
            version,
        };
        Ok(book)
    }

    /// Before a batch: checks the version if the interval has passed, and reloads the rules into
    /// `pipeline` if it changed. Logs what it did when it read something.
    pub async fn refresh<S, N, C>(&self, pipeline: &Pipeline<S, N, C>) -> Refresh
    where
        S: AlertStore + StateStore,
        N: Notifier,
        C: Clock,
    {
        let now = pipeline.clock().now();
        let known = {
            let mut seen = self.lock();
            // A clock that went back (`now` before the last check) makes the check due rather
            // than postponing it by the jump.
            let due = seen
                .checked_at
                .is_none_or(|at| now < at || at.ms_until(now) >= self.interval_ms);
            if !due {
                return Refresh::NotDue;
            }
            // Claimed before the reads, so batches that overlap make one check between them.
            seen.checked_at = Some(now);
            seen.version
        };
        let version = match self.store.rules_version().await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(%error, "Checking the rules version failed; the rules in force stay.");
                return Refresh::Failed;
            }
        };
        if version == known {
            return Refresh::Unchanged;
        }
        let stored = match self.store.load_rules().await {
            Ok(stored) => stored,
            Err(error) => {
                // The version in force is not updated, so the next check loads again: one
                // interval later, never on every batch.
                tracing::warn!(%error, "Loading the changed rules failed; the rules in force stay.");
                return Refresh::Failed;
            }
        };
        match self.book(stored) {
            Ok((book, version)) => {
                let count = book.rules().len();
                pipeline.set_rules(book);
                self.lock().version = version;
                tracing::info!(
                    version = ?version,
                    rules = count,
                    "Rules changed; the new rules apply from the next batch."
                );
                Refresh::Reloaded { version }
            }
            Err(error) => {
                tracing::error!(%error, "The changed rules cannot be put in force; the rules in force stay.");
                Refresh::Failed
            }
        }
    }

    /// The rule book `stored` means, and its version; logs each invalid rule.
    fn book(
        &self,
        stored: Option<StoredRules>,
    ) -> Result<(Arc<RuleBook>, Option<u64>), RulesError> {
        let version = stored.as_ref().map(|s| s.version);
        if let Some(stored) = &stored {
            for invalid in &stored.invalid {
                tracing::warn!(
                    rule_id = %invalid.id,
                    field = %invalid.error.location,
                    reason = %invalid.error.reason,
                    version = stored.version,
                    "Stored rule is invalid; skipped."
                );
            }
        }
        RuleBook::in_force(stored, &self.base).map(|book| (book, version))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Held only for a copy or an assignment, never across an await.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R: RuleStore> RulesSource for RulesRefresher<R> {
    async fn before_batch<S, N, C>(&self, pipeline: &Pipeline<S, N, C>)
    where
        S: AlertStore + StateStore,
        N: Notifier,
        C: Clock,
    {
        self.refresh(pipeline).await;
    }
}

#[cfg(test)]
mod tests;
