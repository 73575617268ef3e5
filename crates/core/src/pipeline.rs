//! The batch pipeline: a batch of (message id, body) in, one [`Outcome`] per message out.
//!
//! For each batch the pipeline
//! 1. decodes every body (a bad one is [`Outcome::Rejected`] and touches nothing else);
//! 2. groups ticks by symbol, keeping their arrival order, so a symbol's ticks are evaluated in
//!    the order they came while different symbols go through every step side by side. Arrival
//!    order is the only order that makes the answer independent of batch boundaries: a tick
//!    older than one that arrived before it is stale in the same batch as in a later one;
//! 3. evaluates each symbol's group under the rules that apply to it ([`RuleBook::for_symbol`]).
//!    If any of them keeps state, the group is evaluated from the symbol's state as last seen by
//!    this pipeline (or from no state), and the new state is committed together with the alerts
//!    of the stateful rules in one compare-and-set ([`StateStore::advance`]): at most one state
//!    write per symbol per batch, never one per tick. A wrong guess or a lost race comes back
//!    with the stored state, and the group is evaluated again from it, at most
//!    [`CAS_ATTEMPTS_MAX`] times. So a batch costs one round trip to the store, not a read and a
//!    write. Symbols it does not remember are read first ([`StateStore::load`]) where the store
//!    reads cheaply (SQLite), so a miss does not cost a lost compare-and-set. The alerts of
//!    stateless rules (`every` without a cooldown) are inserted idempotently
//!    ([`AlertStore::insert`]);
//! 4. looks up the alerts of redelivered or late ticks ([`AlertStore::fetch`]), so a delivery that
//!    failed half-way is completed by the retry;
//! 5. publishes every alert not yet announced, then marks it notified.
//!
//! [`Pipeline::process`] does it all; [`Pipeline::settle_ticks`] (the evaluation and the state
//! commits) and [`Pipeline::finish_batch`] (the rest) let a caller finish one batch while it
//! settles the next.
//!
//! A step that fails for a symbol fails every message of that symbol in the batch
//! ([`Outcome::Failed`]); because each step is idempotent, redelivering them redoes only what is
//! missing. Transient port errors are retried here with the [`RetryPolicy`], never past the deadline.

// Keys here are made by the program from validated ticks, and a batch is bounded: foldhash's
// seeded hashing is several times cheaper than SipHash on them, with no predictable order.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::borrow::{Borrow, Cow};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::alert::{Alert, AlertId, AlertKey};
use crate::ports::{
    Advance, Advanced, AlertStore, Clock, ErrorClass, Inserted, Notifier, PortError, StateStore,
    StoredAlert, before_deadline,
};
use crate::retry::{RetryPolicy, Rng};
use crate::rules::{Cursor, Evaluation, Rule, RuleBook, SymbolRules, SymbolState};
use crate::state_cache::StateCache;
use crate::tick::{Symbol, Tick, TickError, Timestamp};

/// How many times a symbol's state may be reloaded after losing a compare-and-set race within one
/// batch before its messages are failed (and left to redelivery).
pub const CAS_ATTEMPTS_MAX: u32 = 5;

/// Most symbols whose last known state a pipeline remembers between batches (about 150 bytes
/// each with two rules). The remembered state is the guess the next batch's compare-and-set
/// starts from; a stale or missing guess costs one more compare-and-set, never a wrong answer.
/// Past it, CLOCK eviction forgets a symbol not used lately.
pub const STATE_CACHE_SYMBOLS_MAX: usize = 100_000;

/// What the pipeline needs besides its ports. No `Default`: callers say what they want.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The alert rules at start ([`Pipeline::set_rules`] replaces them while it runs).
    pub rules: Arc<RuleBook>,
    /// How port calls are retried.
    pub retry: RetryPolicy,
    /// Seed of the backoff jitter; fixed in tests for reproducible schedules.
    pub jitter_seed: u64,
}

/// The engine: rules and retry policy over a store, a notifier and a clock.
pub struct Pipeline<S, N, C> {
    store: S,
    notifier: N,
    clock: C,
    config: PipelineConfig,
    /// The rules in force; each batch takes the book current when it starts.
    rules: std::sync::RwLock<Arc<RuleBook>>,
    batches: AtomicU64,
    /// The last state this pipeline read or wrote per symbol.
    states: std::sync::Mutex<StateCache>,
}

/// The fate of one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done: the tick was evaluated and everything it caused is stored and announced.
    Accepted(Accepted),
    /// The message is not a valid tick. Permanent: retrying cannot help.
    Rejected(Box<TickError>),
    /// A step failed; the message may succeed if delivered again.
    Failed(Failure),
}

/// What an accepted tick did.
#[derive(Clone, Debug, PartialEq)]
pub enum Accepted {
    /// No rule fired.
    Quiet,
    /// An `enter` rule's condition cleared: it can fire again.
    Rearmed,
    /// Rules fired: one entry per alert, in rule order.
    Alerts(Vec<AlertOutcome>),
    /// Not newer than the newest tick seen for its symbol, so its stateful rules ignored it.
    Stale,
}

impl Accepted {
    /// The new alerts it raised (stored and announced now).
    pub fn new_alerts(&self) -> impl Iterator<Item = &Alert> {
        let outcomes: &[AlertOutcome] = match self {
            Accepted::Alerts(outcomes) => outcomes,
            _ => &[],
        };
        outcomes.iter().filter_map(|outcome| match outcome {
            AlertOutcome::New(alert) => Some(&**alert),
            AlertOutcome::Duplicate { .. } => None,
        })
    }
}

/// One alert of an accepted tick.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertOutcome {
    /// Raised now, stored and announced. (Boxed: alerts are rare, and an unboxed alert would
    /// make every outcome as large as one.)
    New(Box<Alert>),
    /// Already stored (a redelivery, or the same tick twice); announced now only if no earlier
    /// delivery had finished doing so.
    Duplicate {
        /// The alert's id.
        alert_id: AlertId,
        /// Whether this delivery published it.
        announced_now: bool,
    },
}

/// The pipeline step that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Committing symbol state with the alerts of stateful rules.
    Advance,
    /// Storing the alerts of stateless rules.
    Insert,
    /// Looking up the alerts of redelivered ticks.
    Fetch,
    /// Announcing alerts.
    Publish,
    /// Recording announcements.
    MarkNotified,
}

impl Step {
    /// Whether a message that failed at this step has everything it raised stored: only
    /// announcing (or recording the announcement) is left, which `tickwatch notify` or a
    /// redelivery completes. A failure at any earlier step may have stored nothing, so the tick
    /// must be processed again.
    pub fn leaves_alerts_stored(self) -> bool {
        matches!(self, Step::Publish | Step::MarkNotified)
    }

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Advance => "advance_state",
            Step::Insert => "insert_alert",
            Step::Fetch => "fetch_alert",
            Step::Publish => "publish",
            Step::MarkNotified => "mark_notified",
        }
    }
}

/// Failed messages counted by the pipeline step that failed them: what a message left for
/// redelivery still needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedSteps {
    /// Committing symbol state with its alerts: the tick is not evaluated yet.
    pub advance_state: u64,
    /// Storing the alerts of stateless rules: not stored yet.
    pub insert_alert: u64,
    /// Looking up the alerts of redelivered ticks.
    pub fetch_alert: u64,
    /// Announcing alerts: stored, not announced.
    pub publish: u64,
    /// Recording announcements: stored and announced, not marked.
    pub mark_notified: u64,
}

impl FailedSteps {
    /// Counts one message that failed at `step`.
    pub fn count(&mut self, step: Step) {
        *self.slot(step) += 1;
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: &FailedSteps) {
        for (step, count) in other.by_step() {
            *self.slot(step) += count;
        }
    }

    /// Every step with its count, in pipeline order.
    pub fn by_step(&self) -> [(Step, u64); 5] {
        [
            (Step::Advance, self.advance_state),
            (Step::Insert, self.insert_alert),
            (Step::Fetch, self.fetch_alert),
            (Step::Publish, self.publish),
            (Step::MarkNotified, self.mark_notified),
        ]
    }

    /// Messages that failed before everything they raise was known to be stored (the steps
    /// where [`Step::leaves_alerts_stored`] is false); they must be processed again.
    pub fn before_storing(&self) -> u64 {
        self.by_step()
            .into_iter()
            .filter(|(step, _)| !step.leaves_alerts_stored())
            .map(|(_, count)| count)
            .sum()
    }

    fn slot(&mut self, step: Step) -> &mut u64 {
        match step {
            Step::Advance => &mut self.advance_state,
            Step::Insert => &mut self.insert_alert,
            Step::Fetch => &mut self.fetch_alert,
            Step::Publish => &mut self.publish,
            Step::MarkNotified => &mut self.mark_notified,
        }
    }
}

/// Why a message failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Where.
    pub step: Step,
    /// Whether redelivery can help. Permanent failures still leave the message to its queue's
    /// redrive policy: it is our side that is broken, not the tick.
    pub class: ErrorClass,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({}): {}",
            self.step.as_str(),
            self.class,
            self.reason
        )
    }
}

/// Counts over one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Messages in the batch.
    pub messages: u64,
    /// Accepted messages.
    pub accepted: u64,
    /// Rejected messages.
    pub rejected: u64,
    /// Failed messages.
    pub failed: u64,
    /// Failed messages (included in `failed`) by the step that failed them.
    pub failed_steps: FailedSteps,
    /// New alerts raised, stored and announced.
    pub alerts: u64,
    /// New alerts raised and stored, but not announced (their messages failed at publishing or
    /// marking); a redelivery or `tickwatch notify` announces them.
    pub unannounced: u64,
    /// Alerts published by this batch (new ones and completed redeliveries).
    pub published: u64,
    /// Alerts found already stored (their ticks were delivered before).
    pub duplicates: u64,
    /// Stale ticks.
    pub stale: u64,
}

impl BatchStats {
    /// Failed messages whose results are not (completely) stored: they must be processed again.
    pub fn failed_unstored(&self) -> u64 {
        self.failed_steps.before_storing()
    }

    fn count(&mut self, outcome: &Outcome) {
        self.messages += 1;
        match outcome {
            Outcome::Accepted(accepted) => {
                self.accepted += 1;
                match accepted {
                    Accepted::Alerts(outcomes) => {
                        for outcome in outcomes {
                            match outcome {
                                AlertOutcome::New(_) => {
                                    self.alerts += 1;
                                    self.published += 1;
                                }
                                AlertOutcome::Duplicate { announced_now, .. } => {
                                    self.duplicates += 1;
                                    self.published += u64::from(*announced_now);
                                }
                            }
                        }
                    }
                    Accepted::Stale => self.stale += 1,
                    Accepted::Quiet | Accepted::Rearmed => {}
                }
            }
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Failed(failure) => {
                self.failed += 1;
                self.failed_steps.count(failure.step);
            }
        }
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: &BatchStats) {
        self.messages += other.messages;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.failed_steps.add(&other.failed_steps);
        self.alerts += other.alerts;
        self.unannounced += other.unannounced;
        self.published += other.published;
        self.duplicates += other.duplicates;
        self.stale += other.stale;
    }
}

/// A batch evaluated, its symbols' states committed with the alerts of their stateful rules:
/// what [`Pipeline::settle_ticks`] hands to [`Pipeline::finish_batch`].
pub struct SettledBatch<Id> {
    ids: Vec<Id>,
    rejected: Vec<(usize, TickError)>,
    groups: Vec<Group>,
    members: Members,
    rng: Rng,
}

impl<Id> SettledBatch<Id> {
    /// Whether committing a symbol's state failed: its ticks' alerts and state may not be stored
    /// (see [`BatchStats::failed_unstored`], which also counts the steps of
    /// [`Pipeline::finish_batch`]).
    pub fn failed_unstored(&self) -> bool {
        self.groups.iter().any(|group| {
            group
                .failure
                .as_ref()
                .is_some_and(|failure| !failure.step.leaves_alerts_stored())
        })
    }
}

/// A batch through every step: what [`Pipeline::finish_batch`] hands back, for its report.
pub struct FinishedBatch<Id> {
    ids: Vec<Id>,
    rejected: Vec<(usize, TickError)>,
    groups: Vec<Group>,
    members: Members,
    facts: Facts,
}

impl<Id> FinishedBatch<Id> {
    /// One outcome per message, in input order, with counts.
    pub fn into_report(mut self) -> BatchReport<Id> {
        report(
            self.ids,
            self.rejected,
            self.groups,
            &self.members,
            &mut self.facts,
        )
    }
}

/// One outcome per message, in input order, with counts.
#[derive(Clone, Debug)]
pub struct BatchReport<Id> {
    /// `(message id, outcome)` in the order the messages came in.
    pub outcomes: Vec<(Id, Outcome)>,
    /// Counts over `outcomes`.
    pub stats: BatchStats,
}

/// A port error, or the deadline passing while waiting for one.
#[derive(Debug)]
enum StepError<E> {
    Port(E),
    Deadline,
}

impl<E: PortError> StepError<E> {
    fn into_failure(self, step: Step) -> Failure {
        match self {
            StepError::Port(e) => Failure {
                step,
                class: e.class(),
                reason: e.to_string(),
            },
            StepError::Deadline => Failure {
                step,
                class: ErrorClass::Transient,
                reason: "the invocation deadline left no time for this step".into(),
            },
        }
    }
}

/// What happens to one tick of a group, before the store and notifier have answered.
#[derive(Clone, Debug)]
struct Fate {
    /// What the tick did besides alerting.
    base: Base,
    /// Its alerts: this range of its group's `items` (most ticks have none).
    items: std::ops::Range<u32>,
}

impl Fate {
    /// The fate of a tick not evaluated yet.
    const UNSET: Fate = Fate {
        base: Base::Quiet,
        items: 0..0,
    };
}

#[derive(Clone, Copy, Debug)]
enum Base {
    Quiet,
    Rearmed,
    Stale,
}

/// One alert of a tick. Boxed so that a batch's fates stay small.
#[derive(Clone, Debug)]
enum Item {
    /// Raised by a stateful rule; stored by `advance` with the state.
    Raised(Box<Alert>),
    /// Raised by a stateless rule; stored by `insert`.
    Level(Box<Alert>),
    /// A stale tick that satisfies a stateful rule: it may be the redelivery of the tick that
    /// fired it, so its alert may exist.
    Candidate(Box<Candidate>),
}

/// A stale tick's alert key, with its id: the batch's facts are kept by alert id (16 bytes to
/// hash and compare, where a key has about 110), so a candidate's is derived once.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    key: AlertKey,
    id: AlertId,
}

/// All ticks of one symbol in a batch.
struct Group {
    symbol: Symbol,
    rules: Arc<SymbolRules>,
    /// Its ticks: this range of the batch's [`Members`].
    span: std::ops::Range<usize>,
    /// Whether its ticks' fates are set (a group may fail before it is evaluated).
    evaluated: bool,
    /// The alerts of every tick of the group, in order (one allocation per group, not per tick).
    items: Vec<Item>,
    failure: Option<Failure>,
}

/// The valid ticks of a batch, group after group, each group's in arrival order: two arrays for
/// the whole batch, not two allocations per group (a batch over many symbols has tens of
/// thousands of groups).
struct Members {
    /// Message indices.
    index: Vec<u32>,
    /// Parallel to `index`: each tick's fate, once its group is evaluated.
    fates: Vec<Fate>,
}

impl Group {
    fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }

    fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The per-batch answer about one alert key.
#[derive(Clone, Copy)]
enum Known {
    New,
    Existing { notified: bool },
    Absent,
}

/// What a batch has learnt and done about one alert key.
#[derive(Clone, Copy)]
struct Fact {
    known: Known,
    /// Taken for announcing (each key is announced once per batch).
    picked: bool,
    /// Published and marked by this batch.
    announced: bool,
    /// Reported by a message already: the first message of the batch that carries a key owns it.
    owned: bool,
}

impl Fact {
    fn new(known: Known) -> Fact {
        Fact {
            known,
            picked: false,
            announced: false,
            owned: false,
        }
    }
}

/// The batch's facts by alert id (one id per alert key: [`AlertKey::id`]).
type Facts = HashMap<AlertId, Fact>;

impl<S, N, C> Pipeline<S, N, C>
where
    S: AlertStore + StateStore,
    N: Notifier,
    C: Clock,
{
    /// Builds a pipeline over its ports.
    pub fn new(config: PipelineConfig, store: S, notifier: N, clock: C) -> Self {
        Pipeline {
            store,
            notifier,
            clock,
            rules: std::sync::RwLock::new(config.rules.clone()),
            config,
            batches: AtomicU64::new(0),
            states: std::sync::Mutex::new(StateCache::new(STATE_CACHE_SYMBOLS_MAX)),
        }
    }

    /// Remembers the states of at most `symbols_max` symbols between batches instead of
    /// [`STATE_CACHE_SYMBOLS_MAX`]; 0 remembers none, and every batch asks the store
    /// ([`StateStore::load`]) for the states of its symbols. That suits a store that holds every
    /// state in memory itself (the local SQLite store): a second copy here would only cost memory
    /// and time.
    pub fn with_state_cache(mut self, symbols_max: usize) -> Self {
        self.states = std::sync::Mutex::new(StateCache::new(symbols_max));
        self
    }

    /// The clock (callers timing batches should use the pipeline's own).
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleBook> {
        self.rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `rules` in force from the next batch on. A batch already running finishes under the
    /// rules it started with.
    pub fn set_rules(&self, rules: Arc<RuleBook>) {
        *self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rules;
    }

    /// The store (for callers that also query it).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// Decodes JSON bodies and processes them. No step is started or retried past `deadline`.
    ///
    /// One outcome per message comes back, in input order. Here over the in-memory ports of
    /// `testing` (the adapters plug in SQLite or DynamoDB and a notifier in their place):
    ///
    /// ```
    /// use tickwatch_core::testing::{MemoryRig, block_on_ready};
    /// use tickwatch_core::{AlertOutcome, Band, Mode, Outcome, PipelineConfig, RuleBook, Timestamp};
    /// use tickwatch_core::retry::RetryPolicy;
    /// use tickwatch_core::tick::Field;
    ///
    /// let config = PipelineConfig {
    ///     // The rules `high` (above 150) and `low` (below 50), firing on entering.
    ///     rules: std::sync::Arc::new(RuleBook::from(Band::new(150.0, 50.0, 0.0, Mode::Cross)?)),
    ///     retry: RetryPolicy::new(3, 50, 1_000).expect("valid policy"),
    ///     jitter_seed: 1,
    /// };
    /// let rig = MemoryRig::new(config, Timestamp::parse_rfc3339("2026-11-26T14:31:00Z").expect("valid"));
    /// let batch = vec![
    ///     ("m1", r#"{"symbol":"AAPL","price":151.25,"timestamp":"2026-11-26T14:30:00Z"}"#),
    ///     ("m2", r#"{"symbol":"AAPL","price":152.00,"timestamp":"2026-11-26T14:30:01Z"}"#),
    ///     ("m3", r#"{"symbol":"AAPL","price":"high","timestamp":"2026-11-26T14:30:02Z"}"#),
    /// ];
    /// let report = block_on_ready(rig.pipeline.process(batch, None));
    ///
    /// // The first tick enters the high zone: `high` fires, its alert stored and announced. The
    /// // second stays there. The third is not a tick at all, and says which field is wrong.
    /// let Outcome::Accepted(first) = &report.outcomes[0].1 else { panic!("accepted") };
    /// let alerts: Vec<_> = first.new_alerts().collect();
    /// assert_eq!((alerts.len(), alerts[0].rule_id.as_str()), (1, "high"));
    /// assert!(matches!(&report.outcomes[1].1, Outcome::Accepted(a) if a.new_alerts().count() == 0));
    /// assert!(matches!(&report.outcomes[2].1, Outcome::Rejected(e) if e.field() == Some(Field::Price)));
    /// assert_eq!((report.stats.alerts, report.stats.rejected), (1, 1));
    /// assert_eq!(rig.notifier.published().len(), 1);
    /// assert!(rig.store.alerts().iter().all(|stored| stored.notified));
    /// # Ok::<(), tickwatch_core::rules::RulesError>(())
    /// ```
    pub async fn process<Id, B>(
        &self,
        messages: Vec<(Id, B)>,
        deadline: Option<Timestamp>,
    ) -> BatchReport<Id>
    where
        B: AsRef<[u8]>,
    {
        let decoded = messages
            .into_iter()
            .map(|(id, body)| {
                let tick = Tick::decode(body.as_ref());
                (id, tick)
            })
            .collect();
        self.process_ticks(decoded, deadline).await
    }

    /// Processes already decoded ticks (a decoding error becomes [`Outcome::Rejected`]).
    pub async fn process_ticks<Id>(
        &self,
        messages: Vec<(Id, Result<Tick, TickError>)>,
        deadline: Option<Timestamp>,
    ) -> BatchReport<Id> {
        let stored = self.settle_ticks(messages, deadline).await;
        self.finish_batch(stored, deadline).await.into_report()
    }

    /// The first half of [`Pipeline::process_ticks`]: evaluates the ticks and commits each
    /// symbol's state with the alerts of its stateful rules (steps 1 to 3, less the alerts of
    /// stateless rules). [`Pipeline::finish_batch`] does the rest. A caller with a second core may
    /// settle the next batch while it finishes this one: a batch's evaluation depends on the
    /// states the batches before committed, never on what finishing them does.
    pub async fn settle_ticks<Id>(
        &self,
        messages: Vec<(Id, Result<Tick, TickError>)>,
        deadline: Option<Timestamp>,
    ) -> SettledBatch<Id> {
        let now = self.clock.now();
        let mut rng = self.batch_rng();
        let Sorted {
            ids,
            ticks,
            rejected,
            mut groups,
            mut members,
        } = self.group_by_symbol(messages);
        let tick = |index: u32| ticks[index as usize].expect("group members are valid ticks");

        evaluate_stateless_groups(&mut groups, &mut members, &tick, now);
        self.settle_stateful_groups(&mut groups, &mut members, &tick, now, deadline, &mut rng)
            .await;
        SettledBatch {
            ids,
            rejected,
            groups,
            members,
            rng,
        }
    }

    /// The second half of [`Pipeline::process_ticks`]: stores the alerts of stateless rules,
    /// looks up those of redelivered and late ticks, and announces what is not yet announced
    /// (steps 3 to 5); [`FinishedBatch::into_report`] then reports every message. Batches settled
    /// one after the other must be finished in that order, each call after the previous one has
    /// returned: every alert a batch finds stored is then marked if an earlier batch announced
    /// it, and nothing is announced twice.
    pub async fn finish_batch<Id>(
        &self,
        batch: SettledBatch<Id>,
        deadline: Option<Timestamp>,
    ) -> FinishedBatch<Id> {
        let SettledBatch {
            ids,
            rejected,
            mut groups,
            members,
            mut rng,
        } = batch;
        // What the batch learns about each alert key, and the alerts that are not in an item of
        // a group (of stateful rules, and found stored), by key.
        let mut facts: Facts = HashMap::with_capacity(item_count(&groups));
        let mut stored: HashMap<AlertId, Alert> = HashMap::new();
        self.insert_level_alerts(&mut groups, &mut facts, &mut stored, deadline, &mut rng)
            .await;
        self.fetch_candidates(&mut groups, &mut facts, &mut stored, deadline, &mut rng)
            .await;
        self.announce(&mut groups, &mut facts, &stored, deadline, &mut rng)
            .await;
        FinishedBatch {
            ids,
            rejected,
            groups,
            members,
            facts,
        }
    }

    /// The jitter source of one batch: seeded, different for every batch of this pipeline.
    fn batch_rng(&self) -> Rng {
        let batch_number = self.batches.fetch_add(1, Ordering::Relaxed);
        Rng::seeded(self.config.jitter_seed ^ batch_number.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Splits a batch into its rejected messages and one group per symbol, each with the rules
    /// that apply to it.
    fn group_by_symbol<Id>(&self, messages: Vec<(Id, Result<Tick, TickError>)>) -> Sorted<Id> {
        let book = self.rules();
        let mut sorted = Sorted {
            ids: Vec::with_capacity(messages.len()),
            ticks: Vec::with_capacity(messages.len()),
            rejected: Vec::new(),
            groups: Vec::new(),
            members: Members {
                index: Vec::new(),
                fates: Vec::new(),
            },
        };
        // Each valid tick's group, and each group's size; then the groups laid out one after the
        // other in `members` (a counting sort).
        let mut group_of_tick: Vec<u32> = Vec::with_capacity(messages.len());
        let mut sizes: Vec<usize> = Vec::new();
        let mut group_of: HashMap<Symbol, u32> = HashMap::new();
        for (index, (id, decoded)) in messages.into_iter().enumerate() {
            sorted.ids.push(id);
            match decoded {
                Ok(tick) => {
                    let groups = &mut sorted.groups;
                    let g = *group_of.entry(tick.symbol).or_insert_with(|| {
                        groups.push(Group {
                            symbol: tick.symbol,
                            rules: book.for_symbol(&tick.symbol),
                            span: 0..0,
                            evaluated: false,
                            items: Vec::new(),
                            failure: None,
                        });
                        sizes.push(0);
                        (groups.len() - 1) as u32
                    });
                    sizes[g as usize] += 1;
                    group_of_tick.push(g);
                    sorted.ticks.push(Some(tick));
                }
                Err(error) => {
                    sorted.rejected.push((index, error));
                    group_of_tick.push(u32::MAX);
                    sorted.ticks.push(None);
                }
            }
        }
        let mut next = Vec::with_capacity(sorted.groups.len());
        let mut start = 0;
        for (group, size) in sorted.groups.iter_mut().zip(sizes) {
            group.span = start..start + size;
            next.push(start);
            start += size;
        }
        let members = &mut sorted.members;
        members.index = vec![0; start];
        members.fates = vec![Fate::UNSET; start];
        // Members stay in arrival order, never sorted by tick time: a tick older than one that
        // arrived before it is stale whether the two share a batch or not, so the alerts cannot
        // depend on where batch boundaries fall.
        for (index, &g) in group_of_tick.iter().enumerate() {
            if g != u32::MAX {
                let at = &mut next[g as usize];
                members.index[*at] = index as u32;
                *at += 1;
            }
        }
        sorted
    }

    /// Announces stored alerts that are not yet marked notified (after a notifier outage, say):
    /// publishes each, then marks it, with the same retries and deadline as a batch. Returns one
    /// result per alert, in order.
    pub async fn announce_stored(
        &self,
        alerts: &[Alert],
        deadline: Option<Timestamp>,
    ) -> Vec<Result<(), Failure>> {
        let mut rng = self.batch_rng();
        self.publish_and_mark(alerts, deadline, &mut rng).await
    }

    /// Publishes `alerts`, then marks notified those that were published. One result per alert,
    /// in order: the first step that failed for it, if any.
    async fn publish_and_mark<A: Borrow<Alert> + Clone + Sync>(
        &self,
        alerts: &[A],
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) -> Vec<Result<(), Failure>> {
        let published = self
            .attempt(alerts, deadline, rng, |a| async move {
                self.notifier.publish(&a).await
            })
            .await;
        let mut results: Vec<Result<(), Failure>> = Vec::with_capacity(alerts.len());
        // The published alerts' keys, and where each one's result is.
        let mut keys = Vec::with_capacity(alerts.len());
        let mut marking = Vec::with_capacity(alerts.len());
        for (alert, result) in alerts.iter().zip(published) {
            match result {
                Ok(()) => {
                    keys.push(alert.borrow().key());
                    marking.push(results.len());
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e.into_failure(Step::Publish))),
            }
        }
        let marked = self
            .attempt(&keys, deadline, rng, |k| async move {
                self.store.mark_notified(&k).await
            })
            .await;
        for (index, result) in marking.into_iter().zip(marked) {
            if let Err(e) = result {
                results[index] = Err(e.into_failure(Step::MarkNotified));
            }
        }
        results
    }

    /// Groups with stateful rules: evaluate and commit each symbol's state, reloading after lost
    /// races.
    async fn settle_stateful_groups(
        &self,
        groups: &mut [Group],
        members: &mut Members,
        tick: &impl Fn(u32) -> Tick,
        now: Timestamp,
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) {
        // Guess each symbol's state: the one this pipeline last saw, or (read ahead where the
        // store reads cheaply) the stored one, or none. The compare-and-set checks the guess; a
        // wrong one comes back as a conflict carrying the truth.
        let mut missed = Vec::new();
        let mut pending: Vec<(usize, Option<SymbolState>)> = {
            let mut remembered = self.lock_states();
            (0..groups.len())
                .filter(|&g| groups[g].rules.stateful())
                .map(|g| {
                    let state = remembered.get(&groups[g].symbol).cloned();
                    if state.is_none() {
                        missed.push(groups[g].symbol);
                    }
                    (g, state)
                })
                .collect()
        };
        if !missed.is_empty() {
            self.read_ahead(&missed, &mut pending, deadline).await;
        }
        for _ in 0..CAS_ATTEMPTS_MAX {
            if pending.is_empty() {
                return;
            }
            let mut changes = Vec::new();
            let mut changed_groups = Vec::new();
            for (g, prior) in pending.drain(..) {
                let group = &mut groups[g];
                let next = plan(group, members, prior.as_ref(), tick, now);
                if let Some(next) = next {
                    changes.push(Advance {
                        symbol: group.symbol,
                        expected_last_seen: prior.as_ref().map(|state| state.last_seen),
                        next,
                        alerts: group
                            .items
                            .iter()
                            .filter_map(|item| match item {
                                Item::Raised(alert) => Some(**alert),
                                _ => None,
                            })
                            .collect(),
                    });
                    changed_groups.push(g);
                }
            }
            let results = self
                .attempt(&changes, deadline, rng, |c| async move {
                    self.store.advance(&c).await
                })
                .await;
            for ((&g, change), result) in changed_groups.iter().zip(changes).zip(results) {
                match result {
                    Ok(Advanced::Applied) => self.remember(change.symbol, change.next),
                    Ok(Advanced::Conflict(current)) => {
                        match &current {
                            Some(state) => self.remember(change.symbol, state.clone()),
                            None => self.forget(&change.symbol),
                        }
                        pending.push((g, current));
                    }
                    Err(e) => {
                        // It may or may not have been applied: the next batch learns the truth.
                        self.forget(&change.symbol);
                        groups[g].fail(e.into_failure(Step::Advance));
                    }
                }
            }
        }
        for (g, _) in pending {
            groups[g].fail(Failure {
                step: Step::Advance,
                class: ErrorClass::Transient,
                reason: format!(
                    "state of {} changed under us {CAS_ATTEMPTS_MAX} times in a row",
                    groups[g].symbol
                ),
            });
        }
    }

    /// Fills in the stored states of the `missed` symbols, whose guesses are the `None`s of
    /// `pending` (in the same order), if the store reads ahead. A read that fails or runs out of
    /// time leaves the guess: the compare-and-set is what keeps the state right, the read only
    /// saves it a round.
    async fn read_ahead(
        &self,
        missed: &[Symbol],
        pending: &mut [(usize, Option<SymbolState>)],
        deadline: Option<Timestamp>,
    ) {
        let Some(Some(loaded)) =
            before_deadline(&self.clock, deadline, || self.store.load(missed)).await
        else {
            return;
        };
        let guesses = pending.iter_mut().filter(|(_, guess)| guess.is_none());
        for ((_, guess), state) in guesses.zip(loaded) {
            if let Ok(state) = state {
                *guess = state;
            }
        }
    }

    fn lock_states(&self) -> std::sync::MutexGuard<'_, StateCache> {
        // Held only for map operations, never across an await; a panic there leaves a usable map.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a state this pipeline read or wrote, within [`STATE_CACHE_SYMBOLS_MAX`].
    fn remember(&self, symbol: Symbol, state: SymbolState) {
        self.lock_states().insert(symbol, state);
    }

    fn forget(&self, symbol: &Symbol) {
        self.lock_states().remove(symbol);
    }

    /// Stateless rules: store their alerts. A key twice in the batch (the same tick twice) is
    /// stored by the first and found by the second; what the first learnt is what counts.
    async fn insert_level_alerts(
        &self,
        groups: &mut [Group],
        facts: &mut Facts,
        stored: &mut HashMap<AlertId, Alert>,
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) {
        // The alerts themselves stay in their items: the store is handed references.
        let mut alerts: Vec<&Alert> = Vec::with_capacity(item_count(groups));
        let mut owners = Vec::with_capacity(alerts.capacity());
        for (g, group) in groups.iter().enumerate().filter(|(_, g)| g.ok()) {
            for item in &group.items {
                if let Item::Level(alert) = item {
                    alerts.push(alert);
                    owners.push(g);
                }
            }
        }
        let results = self
            .attempt(&alerts, deadline, rng, |a| async move {
                AlertStore::insert(&self.store, &a).await
            })
            .await;
        let mut failed = Vec::new();
        for ((alert, g), result) in alerts.iter().zip(owners).zip(results) {
            // A level alert is announced from its item, so only its fate is kept by key.
            let known = match result {
                Ok(Inserted::New) => Known::New,
                Ok(Inserted::AlreadyThere { notified }) => Known::Existing { notified },
                Err(e) => {
                    failed.push((g, e.into_failure(Step::Insert)));
                    continue;
                }
            };
            facts.entry(alert.alert_id).or_insert(Fact::new(known));
        }
        for (g, failure) in failed {
            groups[g].fail(failure);
        }
        for group in groups.iter().filter(|g| g.ok()) {
            for item in &group.items {
                if let Item::Raised(alert) = item {
                    // Kept by key too: a stale copy of its tick in this batch (a candidate)
                    // announces it from here.
                    facts.insert(alert.alert_id, Fact::new(Known::New));
                    stored.insert(alert.alert_id, **alert);
                }
            }
        }
    }

    /// Looks up the alerts of late or redelivered ticks.
    async fn fetch_candidates(
        &self,
        groups: &mut [Group],
        facts: &mut Facts,
        stored: &mut HashMap<AlertId, Alert>,
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) {
        let (candidates, owners) = owned_items(groups, |item| match item {
            Item::Candidate(candidate) if !facts.contains_key(&candidate.id) => {
                Some((candidate.id, **candidate))
            }
            _ => None,
        });
        let keys: Vec<AlertKey> = candidates.iter().map(|candidate| candidate.key).collect();
        let results = self
            .attempt(&keys, deadline, rng, |k| async move {
                self.store.fetch(&k).await
            })
            .await;
        for ((candidate, g), result) in candidates.iter().zip(owners).zip(results) {
            match result {
                Ok(Some(StoredAlert { alert, notified })) => {
                    facts.insert(candidate.id, Fact::new(Known::Existing { notified }));
                    stored.insert(candidate.id, alert);
                }
                Ok(None) => {
                    facts.insert(candidate.id, Fact::new(Known::Absent));
                }
                Err(e) => groups[g].fail(e.into_failure(Step::Fetch)),
            }
        }
    }

    /// Publishes every alert of a healthy group that is not yet announced (each key once, for
    /// the group that first carries it), then marks it; records in `facts` what was announced.
    async fn announce(
        &self,
        groups: &mut [Group],
        facts: &mut Facts,
        stored: &HashMap<AlertId, Alert>,
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) {
        // References to the alerts in their items (or found stored), as for inserting.
        let mut alerts: Vec<&Alert> = Vec::with_capacity(facts.len());
        // Each alert's owner and the id its fact is kept by (a stored alert's own id may be older:
        // ids of the first release were derived differently).
        let mut owners = Vec::with_capacity(alerts.capacity());
        for (g, group) in groups.iter().enumerate().filter(|(_, g)| g.ok()) {
            for item in &group.items {
                let (id, alert) = match item {
                    Item::Raised(alert) | Item::Level(alert) => (alert.alert_id, Some(&**alert)),
                    Item::Candidate(candidate) => (candidate.id, None),
                };
                let Some(fact) = facts.get_mut(&id) else {
                    continue;
                };
                let pending =
                    matches!(fact.known, Known::New | Known::Existing { notified: false });
                if pending && !fact.picked {
                    fact.picked = true;
                    alerts.push(alert.unwrap_or_else(|| &stored[&id]));
                    owners.push((g, id));
                }
            }
        }
        let results = self.publish_and_mark(&alerts, deadline, rng).await;
        for ((g, id), result) in owners.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    if let Some(fact) = facts.get_mut(&id) {
                        fact.announced = true;
                    }
                }
                Err(failure) => groups[g].fail(failure),
            }
        }
    }

    /// Calls a port with `items`, retrying the items that failed transiently, with backoff, until
    /// they succeed, the policy gives up, or the deadline would be passed.
    async fn attempt<'a, T, R, E, F, Fut>(
        &self,
        items: &'a [T],
        deadline: Option<Timestamp>,
        rng: &mut Rng,
        mut call: F,
    ) -> Vec<Result<R, StepError<E>>>
    where
        T: Clone,
        E: PortError,
        F: FnMut(Cow<'a, [T]>) -> Fut,
        Fut: Future<Output = Vec<Result<R, E>>>,
    {
        let mut results: Vec<Option<Result<R, StepError<E>>>> =
            (0..items.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut attempts_done = 0;
        while !pending.is_empty() {
            attempts_done += 1;
            // The first attempt takes every item as it is; a retry, the ones that failed.
            let subset = if pending.len() == items.len() {
                Cow::Borrowed(items)
            } else {
                Cow::Owned(pending.iter().map(|&i| items[i].clone()).collect())
            };
            let Some(answers) = before_deadline(&self.clock, deadline, || call(subset)).await
            else {
                for &i in &pending {
                    results[i] = Some(Err(StepError::Deadline));
                }
                break;
            };
            assert_eq!(
                answers.len(),
                pending.len(),
                "a port must answer every item"
            );
            let mut again = Vec::new();
            for (&i, answer) in pending.iter().zip(answers) {
                if matches!(&answer, Err(e) if e.is_transient()) {
                    again.push(i);
                }
                results[i] = Some(answer.map_err(StepError::Port));
            }
            if again.is_empty() {
                break;
            }
            let now = self.clock.now();
            match self
                .config
                .retry
                .next_delay(attempts_done, now, deadline, rng)
            {
                Some(delay) => {
                    self.clock.sleep(delay).await;
                    pending = again;
                }
                None => break,
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item was attempted"))
            .collect()
    }
}

/// A batch after decoding: message ids and ticks by input index, the rejected messages, and the
/// valid ones grouped by symbol.
struct Sorted<Id> {
    ids: Vec<Id>,
    ticks: Vec<Option<Tick>>,
    rejected: Vec<(usize, TickError)>,
    groups: Vec<Group>,
    members: Members,
}

/// Groups without stateful rules need no state: each tick's fate follows from the tick alone.
fn evaluate_stateless_groups(
    groups: &mut [Group],
    members: &mut Members,
    tick: &impl Fn(u32) -> Tick,
    now: Timestamp,
) {
    for group in groups.iter_mut().filter(|g| !g.rules.stateful()) {
        plan(group, members, None, tick, now);
    }
}

/// One outcome per message, in input order, and the batch's counts.
fn report<Id>(
    ids: Vec<Id>,
    rejected: Vec<(usize, TickError)>,
    groups: Vec<Group>,
    members: &Members,
    facts: &mut Facts,
) -> BatchReport<Id> {
    let mut outcomes: Vec<Option<Outcome>> = (0..ids.len()).map(|_| None).collect();
    for (index, error) in rejected {
        outcomes[index] = Some(Outcome::Rejected(Box::new(error)));
    }
    let mut unannounced: HashSet<AlertId> = HashSet::new();
    for group in groups {
        if let Some(failure) = &group.failure
            && failure.step.leaves_alerts_stored()
        {
            // The group's new alerts are stored; only their announcement failed.
            for item in &group.items {
                if let Item::Raised(alert) | Item::Level(alert) = item
                    && let Some(fact) = facts.get(&alert.alert_id)
                    && matches!(fact.known, Known::New)
                    && !fact.announced
                {
                    unannounced.insert(alert.alert_id);
                }
            }
        }
        // Each fate's items follow the previous one's: they are handed over, not copied.
        let indices = &members.index[group.span.clone()];
        if group.evaluated {
            let mut items = group.items.into_iter();
            for (&index, fate) in indices.iter().zip(&members.fates[group.span.clone()]) {
                let own = items.by_ref().take(fate.items.len());
                let outcome = match &group.failure {
                    Some(failure) => Outcome::Failed(failure.clone()),
                    None => Outcome::Accepted(resolve(fate, own, facts)),
                };
                outcomes[index as usize] = Some(outcome);
            }
        } else {
            // The group failed before evaluation (e.g. its state could not be loaded).
            for &index in indices {
                let failure = group
                    .failure
                    .clone()
                    .expect("an unevaluated group has failed");
                outcomes[index as usize] = Some(Outcome::Failed(failure));
            }
        }
    }
    let mut stats = BatchStats {
        unannounced: unannounced.len() as u64,
        ..BatchStats::default()
    };
    let outcomes = ids
        .into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| {
            let outcome = outcome.expect("every message has an outcome");
            stats.count(&outcome);
            (id, outcome)
        })
        .collect();
    BatchReport { outcomes, stats }
}

/// The alerts and candidates of every group.
fn item_count(groups: &[Group]) -> usize {
    groups.iter().map(|group| group.items.len()).sum()
}

/// What `pick` finds in the fates of the healthy groups, each item once (by its key), with the
/// group that first carried it: the group that fails if the item's step fails.
fn owned_items<K: Eq + std::hash::Hash, T>(
    groups: &[Group],
    mut pick: impl FnMut(&Item) -> Option<(K, T)>,
) -> (Vec<T>, Vec<usize>) {
    let mut items = Vec::new();
    let mut owners = Vec::new();
    let mut seen = HashSet::new();
    for (g, group) in groups.iter().enumerate().filter(|(_, g)| g.ok()) {
        for item in &group.items {
            if let Some((key, item)) = pick(item) {
                if seen.is_empty() {
                    seen.reserve(item_count(groups));
                }
                if !seen.insert(key) {
                    continue;
                }
                items.push(item);
                owners.push(g);
            }
        }
    }
    (items, owners)
}

/// Evaluates a group from `prior` (its symbol's state, or none) into its ticks' fates in
/// `members` and its `items`. Returns the new state, if any tick moved it.
fn plan(
    group: &mut Group,
    members: &mut Members,
    prior: Option<&SymbolState>,
    tick: &impl Fn(u32) -> Tick,
    now: Timestamp,
) -> Option<SymbolState> {
    let rules = group.rules.clone();
    let mut cursor = Cursor::new(&rules, prior);
    let mut evaluation = Evaluation::default();
    group.items.clear();
    let fates = &mut members.fates[group.span.clone()];
    for (&i, fate) in members.index[group.span.clone()].iter().zip(fates) {
        let t = tick(i);
        cursor.step_into(&t, &mut evaluation);
        let start = group.items.len() as u32;
        for fired in &evaluation.fired {
            let alert = Box::new(build_alert(
                &rules.rules()[fired.rule],
                &t,
                fired.kind,
                fired.threshold,
                now,
            ));
            group.items.push(if rules.keeps_state(fired.rule) {
                Item::Raised(alert)
            } else {
                Item::Level(alert)
            });
        }
        for &index in &evaluation.maybe_fired {
            let key = AlertKey {
                symbol: t.symbol,
                at: t.at,
                rule: rules.rules()[index].id(),
            };
            group
                .items
                .push(Item::Candidate(Box::new(Candidate { key, id: key.id() })));
        }
        let base = if evaluation.stale {
            Base::Stale
        } else if evaluation.rearmed {
            Base::Rearmed
        } else {
            Base::Quiet
        };
        *fate = Fate {
            base,
            items: start..group.items.len() as u32,
        };
    }
    group.evaluated = true;
    cursor.finish()
}

/// Builds the alert `rule` raises on `tick`, of `kind`, having compared it with `threshold` (see
/// [`crate::rules::Fired`]).
pub fn build_alert(
    rule: &Rule,
    tick: &Tick,
    kind: crate::AlertKind,
    threshold: f64,
    now: Timestamp,
) -> Alert {
    let key = AlertKey {
        symbol: tick.symbol,
        at: tick.at,
        rule: rule.id(),
    };
    Alert {
        alert_id: key.id(),
        rule_id: rule.id(),
        label: rule.label(),
        symbol: tick.symbol,
        kind,
        condition: rule.condition(),
        price: tick.price,
        threshold,
        fire: rule.fire(),
        timestamp: tick.at,
        processed_at: now,
    }
}

/// The accepted outcome of a tick in a healthy group.
fn resolve(fate: &Fate, items: impl Iterator<Item = Item>, facts: &mut Facts) -> Accepted {
    // The first message of the batch carrying an alert owns it: it alone reports the alert as
    // raised or announced, so counts add up to what was stored and published.
    let mut own = |id: &AlertId| {
        facts.get_mut(id).map(|fact| {
            let first = !std::mem::replace(&mut fact.owned, true);
            (fact.known, first, first && fact.announced)
        })
    };
    let duplicate = |alert_id: AlertId, announced_now: bool| AlertOutcome::Duplicate {
        alert_id,
        announced_now,
    };
    let outcomes: Vec<AlertOutcome> = items
        .filter_map(|item| match item {
            Item::Raised(alert) | Item::Level(alert) => {
                let id = alert.alert_id;
                Some(match own(&id) {
                    Some((Known::New, true, _)) => AlertOutcome::New(alert),
                    Some((_, _, announced_now)) => duplicate(id, announced_now),
                    None => duplicate(id, false),
                })
            }
            Item::Candidate(candidate) => match own(&candidate.id) {
                Some((Known::Existing { .. } | Known::New, _, announced_now)) => {
                    Some(duplicate(candidate.id, announced_now))
                }
                _ => None,
            },
        })
        .collect();
    if !outcomes.is_empty() {
        return Accepted::Alerts(outcomes);
    }
    match fate.base {
        Base::Quiet => Accepted::Quiet,
        Base::Rearmed => Accepted::Rearmed,
        Base::Stale => Accepted::Stale,
    }
}
