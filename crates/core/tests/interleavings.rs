//! Two pipelines given the same messages at once (SQS delivers a message to two consumers now and
//! then), with the interleavings forced: ports that stop at a chosen call until the test lets them
//! go. Whatever the order, every alert is stored once and announced at least once, and neither
//! pipeline reports a failure.

use std::borrow::Borrow;
use std::sync::{Arc, Mutex};

use tickwatch_core::ports::{
    Advance, Advanced, AlertStore, ErrorClass, Inserted, Notifier, StateStore, StoredAlert,
};
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::testing::{Fault, ManualClock, MemoryNotifier, MemoryStore, spec_config};
use tickwatch_core::{Accepted, Alert, AlertKey, AlertOutcome, Mode, Outcome, Pipeline, Timestamp};
use tokio::sync::oneshot;

const NOW_MS: i64 = 1_795_703_400_000;

/// Stops the first call that reaches it, tells the test, and waits for the test to let it go.
#[derive(Default)]
struct Gate {
    armed: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Gate {
    /// Arms the gate; returns (reached, release).
    fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.armed.lock().expect("gate lock") = Some((reached_tx, release_rx));
        (reached_rx, release_tx)
    }

    async fn pass(&self) {
        let armed = self.armed.lock().expect("gate lock").take();
        if let Some((reached, release)) = armed {
            let _ = reached.send(());
            let _ = release.await;
        }
    }
}

/// One pipeline's view of the shared store, with gates before its state and lookup calls.
#[derive(Clone)]
struct GatedStore {
    inner: Arc<MemoryStore>,
    before_advance: Arc<Gate>,
    before_fetch: Arc<Gate>,
}

impl AlertStore for GatedStore {
    type Error = <MemoryStore as AlertStore>::Error;

    async fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> Vec<Result<Inserted, Self::Error>> {
        self.inner.insert(alerts).await
    }

    async fn fetch(&self, keys: &[AlertKey]) -> Vec<Result<Option<StoredAlert>, Self::Error>> {
        self.before_fetch.pass().await;
        self.inner.fetch(keys).await
    }

    async fn mark_notified(&self, keys: &[AlertKey]) -> Vec<Result<(), Self::Error>> {
        self.inner.mark_notified(keys).await
    }
}

impl StateStore for GatedStore {
    type Error = <MemoryStore as StateStore>::Error;

    async fn advance(&self, changes: &[Advance]) -> Vec<Result<Advanced, Self::Error>> {
        self.before_advance.pass().await;
        self.inner.advance(changes).await
    }
}

/// One pipeline's view of the shared notifier, with a gate before publishing.
#[derive(Clone)]
struct GatedNotifier {
    inner: Arc<MemoryNotifier>,
    before_publish: Arc<Gate>,
}

impl Notifier for GatedNotifier {
    type Error = <MemoryNotifier as Notifier>::Error;

    async fn publish<A: Borrow<Alert> + Sync>(&self, alerts: &[A]) -> Vec<Result<(), Self::Error>> {
        self.before_publish.pass().await;
        self.inner.publish(alerts).await
    }
}

type GatedPipeline = Pipeline<GatedStore, GatedNotifier, Arc<ManualClock>>;

struct Consumer {
    pipeline: GatedPipeline,
    before_advance: Arc<Gate>,
    before_fetch: Arc<Gate>,
    before_publish: Arc<Gate>,
}

struct World {
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
}

impl World {
    fn new() -> World {
        World {
            store: Arc::new(MemoryStore::new()),
            notifier: Arc::new(MemoryNotifier::new()),
        }
    }

    fn consumer(&self, seed: u64) -> Consumer {
        let (before_advance, before_fetch, before_publish) = Default::default();
        let config = spec_config(
            Mode::Cross,
            RetryPolicy::new(3, 10, 200).expect("valid"),
            seed,
        );
        let store = GatedStore {
            inner: self.store.clone(),
            before_advance: Arc::clone(&before_advance),
            before_fetch: Arc::clone(&before_fetch),
        };
        let notifier = GatedNotifier {
            inner: self.notifier.clone(),
            before_publish: Arc::clone(&before_publish),
        };
        let clock = Arc::new(ManualClock::at(
            Timestamp::from_epoch_ms(NOW_MS).expect("valid"),
        ));
        Consumer {
            pipeline: Pipeline::new(config, store, notifier, clock),
            before_advance,
            before_fetch,
            before_publish,
        }
    }

    fn stored_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .store
            .alerts()
            .iter()
            .map(|s| s.alert.alert_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// How often each stored alert was published.
    fn publications(&self) -> Vec<usize> {
        let published = self.notifier.published();
        self.stored_ids()
            .iter()
            .map(|id| {
                published
                    .iter()
                    .filter(|a| a.alert_id.to_string() == *id)
                    .count()
            })
            .collect()
    }
}

/// AAPL enters the high zone, comes back, enters the low zone: two alerts.
fn messages() -> Vec<(String, Vec<u8>)> {
    [(100.0, 1i64), (160.0, 2), (100.0, 3), (40.0, 4)]
        .iter()
        .map(|&(price, at)| {
            (
                format!("m{at}"),
                format!(
                    r#"{{"symbol":"AAPL","price":{price},"timestamp":{}}}"#,
                    1_795_700_000_000 + at * 1000
                )
                .into_bytes(),
            )
        })
        .collect()
}

/// What each message did; the specification's rules raise at most one alert per tick.
fn labels(outcomes: &[(String, Outcome)]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|(_, outcome)| match outcome {
            Outcome::Accepted(Accepted::Alerts(alerts)) => match alerts.as_slice() {
                [AlertOutcome::New(_)] => "alerted",
                [
                    AlertOutcome::Duplicate {
                        announced_now: false,
                        ..
                    },
                ] => "duplicate",
                [
                    AlertOutcome::Duplicate {
                        announced_now: true,
                        ..
                    },
                ] => "duplicate, announced now",
                _ => "several alerts",
            },
            Outcome::Accepted(Accepted::Stale) => "stale",
            Outcome::Accepted(Accepted::Quiet) => "quiet",
            Outcome::Accepted(Accepted::Rearmed) => "rearmed",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        })
        .collect()
}

/// B evaluates the batch, stops before its compare-and-set, and A processes the whole batch.
/// B's write then conflicts; B judges the ticks against A's state (all stale) and must find A's
/// alerts by looking them up, not drop them as stale.
#[tokio::test]
async fn a_pipeline_that_loses_the_race_finds_the_winners_alerts() {
    let world = World::new();
    let (a, b) = (world.consumer(1), world.consumer(2));
    let (reached, release) = b.before_advance.arm();
    let (b_report, a_report) = tokio::join!(b.pipeline.process(messages(), None), async {
        reached.await.expect("B reaches its compare-and-set");
        let report = a.pipeline.process(messages(), None).await;
        release.send(()).expect("B waits");
        report
    });
    assert_eq!(
        labels(&a_report.outcomes),
        ["quiet", "alerted", "rearmed", "alerted"]
    );
    assert_eq!(
        labels(&b_report.outcomes),
        ["stale", "duplicate", "stale", "duplicate"]
    );
    assert_eq!(world.stored_ids().len(), 2);
    assert_eq!(world.publications(), [1, 1], "A announced each once");
    assert!(world.store.alerts().iter().all(|s| s.notified));
}

/// A commits state and alerts and stops before announcing them. B loses the compare-and-set,
/// finds the alerts stored and not yet announced, and announces them itself. Then A announces
/// them too: at least once, both copies with the same alert id.
#[tokio::test]
async fn a_winner_stopped_before_announcing_is_covered_by_the_loser() {
    let world = World::new();
    let (a, b) = (world.consumer(1), world.consumer(2));
    let (reached, release) = a.before_publish.arm();
    let (a_report, b_report) = tokio::join!(a.pipeline.process(messages(), None), async {
        reached.await.expect("A reaches publishing");
        let report = b.pipeline.process(messages(), None).await;
        release.send(()).expect("A waits");
        report
    });
    assert_eq!(
        labels(&b_report.outcomes),
        [
            "stale",
            "duplicate, announced now",
            "stale",
            "duplicate, announced now"
        ]
    );
    assert_eq!(
        labels(&a_report.outcomes),
        ["quiet", "alerted", "rearmed", "alerted"]
    );
    assert_eq!(world.stored_ids().len(), 2);
    assert_eq!(world.publications(), [2, 2]);
    assert!(world.store.alerts().iter().all(|s| s.notified));
}

/// B loses the compare-and-set and stops before looking the alerts up, while A is stopped before
/// announcing. Both then go on; whichever order they finish in, nothing is lost.
#[tokio::test]
async fn both_stopped_between_storing_and_announcing_lose_nothing() {
    let world = World::new();
    let (a, b) = (world.consumer(1), world.consumer(2));
    let (a_reached, a_release) = a.before_publish.arm();
    let (b_reached, b_release) = b.before_fetch.arm();
    let (a_report, b_report, ()) = tokio::join!(
        a.pipeline.process(messages(), None),
        async {
            a_reached.await.expect("A reaches publishing");
            b.pipeline.process(messages(), None).await
        },
        async {
            b_reached.await.expect("B reaches its lookup");
            // A announces and marks first; B's lookup then finds them announced.
            a_release.send(()).expect("A waits");
            tokio::task::yield_now().await;
            b_release.send(()).expect("B waits");
        }
    );
    for report in [&a_report, &b_report] {
        assert!(
            !labels(&report.outcomes).contains(&"failed"),
            "{:?}",
            report.outcomes
        );
    }
    assert_eq!(world.stored_ids().len(), 2);
    assert!(world.publications().iter().all(|&n| n >= 1));
    assert!(world.store.alerts().iter().all(|s| s.notified));
}

/// A commits state and alerts, then fails to announce (its message goes back to the queue). The
/// redelivery reaches B, which has never seen the symbol: the ticks are stale against the stored
/// state, and B must still find and announce the alerts.
#[tokio::test]
async fn a_redelivery_judged_stale_still_announces_the_stored_alerts() {
    let world = World::new();
    let (a, b) = (world.consumer(1), world.consumer(2));
    world
        .notifier
        .script([Some(Fault::Fail(ErrorClass::Permanent))]);
    let first = a.pipeline.process(messages(), None).await;
    assert_eq!(labels(&first.outcomes), ["failed"; 4]);
    assert_eq!(first.stats.failed_unstored(), 0, "only announcing failed");
    assert_eq!(first.stats.unannounced, 2);
    assert_eq!(world.stored_ids().len(), 2, "stored with the state");
    assert!(world.store.alerts().iter().all(|s| !s.notified));

    let again = b.pipeline.process(messages(), None).await;
    assert_eq!(
        labels(&again.outcomes),
        [
            "stale",
            "duplicate, announced now",
            "stale",
            "duplicate, announced now"
        ]
    );
    assert_eq!(world.publications(), [1, 1]);
    assert!(world.store.alerts().iter().all(|s| s.notified));
}
