//! The handler: an SQS event in, a partial batch response out.
//!
//! It is generic over the ports, so tests drive it with the in-memory store, notifier and
//! dead-letter queue and an event read from a fixture file, without the Lambda runtime. The work
//! itself is the shared batch runner ([`tickwatch_aws::run_batch`]), after the rules are brought
//! up to date as the SQS worker does it ([`RulesSource::before_batch`]: at most one cheap read of
//! the rules table per refresh interval); this adds the invocation deadline, the request id on
//! every log line, the metrics line, and the response.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tickwatch_aws::metrics::emf_lines;
use tickwatch_aws::{DeadLetterQueue, FixedRules, RulesSource, SqsMessage, run_batch};
use tickwatch_core::ports::{AlertStore, Clock, Notifier, StateStore};
use tickwatch_core::{Pipeline, Timestamp};
use tracing::Instrument;

/// Time kept back from the invocation deadline, in milliseconds: no pipeline step starts and no
/// retry is scheduled later than this before Lambda's timeout, so the function always answers
/// (with its partial failures) instead of timing out and failing the whole batch. It covers one
/// SDK attempt already in flight ([`tickwatch_aws::config::ATTEMPT_TIMEOUT_MS`]) and the response.
pub const DEADLINE_MARGIN_MS: u64 = 5_000;

/// An event the handler cannot answer item by item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// A record without a message id cannot be named in `batchItemFailures`; failing the
    /// invocation makes SQS redeliver the whole batch, which is safe because every step is
    /// idempotent.
    #[error(
        "record {index} of the event has no messageId; failing the whole batch so nothing is lost"
    )]
    MissingMessageId {
        /// The record's position in the event.
        index: usize,
    },
}

/// The function: the pipeline (and its clock), the dead-letter queue, where its rules come
/// from, and the metrics dimension.
pub struct Handler<S, N, C, D, R = FixedRules> {
    pipeline: Pipeline<S, N, C>,
    dead_letters: D,
    rules: R,
    service: String,
}

impl<S, N, C, D> Handler<S, N, C, D>
where
    S: AlertStore + StateStore,
    N: Notifier,
    C: Clock,
    D: DeadLetterQueue,
{
    /// Builds the handler with the pipeline's rules fixed. Deadlines are computed and enforced on
    /// the pipeline's one clock.
    pub fn new(pipeline: Pipeline<S, N, C>, dead_letters: D, service: impl Into<String>) -> Self {
        Handler {
            pipeline,
            dead_letters,
            rules: FixedRules,
            service: service.into(),
        }
    }
}

impl<S, N, C, D, R> Handler<S, N, C, D, R>
where
    S: AlertStore + StateStore,
    N: Notifier,
    C: Clock,
    D: DeadLetterQueue,
    R: RulesSource,
{
    /// The same handler with its rules brought up to date by `rules` before every batch.
    pub fn with_rules<R2: RulesSource>(self, rules: R2) -> Handler<S, N, C, D, R2> {
        Handler {
            pipeline: self.pipeline,
            dead_letters: self.dead_letters,
            rules,
            service: self.service,
        }
    }

    /// Where the rules come from.
    pub fn rules(&self) -> &R {
        &self.rules
    }

    /// The pipeline (for tests and callers that inspect its ports).
    pub fn pipeline(&self) -> &Pipeline<S, N, C> {
        &self.pipeline
    }

    /// The dead-letter queue.
    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// Handles one SQS event.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, HandlerError> {
        let (event, context) = event.into_parts();
        // ERROR level so the span, and the request id on every line inside it, exist whatever
        // LOG_LEVEL is; a span's level only decides whether it is recorded.
        let span = tracing::error_span!("invocation", request_id = %context.request_id);
        self.handle_records(event, context.deadline)
            .instrument(span)
            .await
    }

    async fn handle_records(
        &self,
        event: SqsEvent,
        deadline_ms: u64,
    ) -> Result<SqsBatchResponse, HandlerError> {
        let mut messages = Vec::with_capacity(event.records.len());
        for (index, record) in event.records.into_iter().enumerate() {
            let message_id = record
                .message_id
                .ok_or(HandlerError::MissingMessageId { index })?;
            messages.push(SqsMessage {
                message_id,
                body: record.body.unwrap_or_default(),
            });
        }
        let deadline = answer_by(deadline_ms);
        self.rules.before_batch(&self.pipeline).await;
        let result = run_batch(&self.pipeline, &self.dead_letters, messages, deadline).await;
        for line in emf_lines(
            &self.service,
            self.pipeline.clock().now(),
            &result.metrics(),
        ) {
            println!("{line}");
        }
        let failed = result.failed_message_ids.len();
        tracing::info!(
            messages = result.stats.messages,
            alerts = result.stats.alerts,
            rejected = result.stats.rejected,
            failed,
            duration_ms = result.duration_ms,
            "Batch done."
        );
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = result
            .failed_message_ids
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        Ok(response)
    }
}

/// The time by which the pipeline must be done: Lambda's deadline (epoch milliseconds) minus
/// [`DEADLINE_MARGIN_MS`]. `None` when there is no usable deadline (0, or out of range).
pub fn answer_by(deadline_ms: u64) -> Option<Timestamp> {
    let ms = deadline_ms.checked_sub(DEADLINE_MARGIN_MS)?;
    Timestamp::from_epoch_ms(i64::try_from(ms).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lambda_runtime::Context;
    use tickwatch_aws::testing::LogSink;
    use tickwatch_aws::testing::MemoryDeadLetterQueue;
    use tickwatch_core::ports::ErrorClass;
    use tickwatch_core::retry::RetryPolicy;
    use tickwatch_core::testing::{
        Fault, ManualClock, MemoryNotifier, MemoryRig, MemoryStore, Op, spec_config,
    };
    use tickwatch_core::{AlertKind, Mode};

    use super::*;

    const NOW_MS: i64 = 1_795_703_460_000; // a minute after the fixture's ticks
    const MIXED: &str = include_str!("../tests/fixtures/sqs-mixed-batch.json");
    const WITHOUT_ID: &str = include_str!("../tests/fixtures/sqs-record-without-id.json");
    const WITHOUT_BODY: &str = include_str!("../tests/fixtures/sqs-record-without-body.json");
    const AAPL_ID: &str = "4d1c2a0e-7b5f-4c1e-9a52-0f1d2e3c4b5a";
    const MSFT_ID: &str = "a8e3f1b2-5c6d-4e7f-8a9b-0c1d2e3f4a5b";
    const GOOGL_ID: &str = "0f9e8d7c-6b5a-4f3e-2d1c-0b9a8f7e6d5c";
    const MALFORMED_ID: &str = "c3b2a190-8f7e-4d6c-5b4a-39281706f5e4";
    const INVALID_ID: &str = "5e4d3c2b-1a09-4f8e-7d6c-5b4a39281706";

    type TestHandler = Handler<
        Arc<MemoryStore>,
        Arc<MemoryNotifier>,
        Arc<ManualClock>,
        Arc<MemoryDeadLetterQueue>,
    >;

    struct Harness {
        handler: TestHandler,
        store: Arc<MemoryStore>,
        notifier: Arc<MemoryNotifier>,
        dead_letters: Arc<MemoryDeadLetterQueue>,
    }

    fn harness() -> Harness {
        // Every test installs (or waits for) the log subscriber before anything logs, so no
        // callsite's interest is computed without it.
        captured_logs();
        let dead_letters = Arc::new(MemoryDeadLetterQueue::new());
        let config = spec_config(Mode::Cross, RetryPolicy::new(3, 10, 100).expect("valid"), 5);
        let MemoryRig {
            pipeline,
            store,
            notifier,
            ..
        } = MemoryRig::new(config, Timestamp::from_epoch_ms(NOW_MS).expect("valid"));
        Harness {
            handler: Handler::new(pipeline, dead_letters.clone(), "tickwatch-test"),
            store,
            notifier,
            dead_letters,
        }
    }

    /// An invocation of `fixture` with Lambda's deadline at `deadline_ms` (0: none).
    fn event(fixture: &str, deadline_ms: u64) -> LambdaEvent<SqsEvent> {
        let payload: SqsEvent = serde_json::from_str(fixture).expect("fixture is an SQS event");
        let mut context = Context::default();
        context.request_id = "8f4c1a6e-2b3d-4e5f-9a0b-1c2d3e4f5a6b".into();
        context.deadline = deadline_ms;
        LambdaEvent::new(payload, context)
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    /// A deadline comfortably in the future.
    fn roomy_deadline() -> u64 {
        (NOW_MS as u64) + 60_000
    }

    #[tokio::test]
    async fn a_mixed_batch_alerts_dead_letters_and_reports_no_failures() {
        let h = harness();
        let response = h
            .handler
            .handle(event(MIXED, roomy_deadline()))
            .await
            .expect("answers");
        assert!(failures(&response).is_empty(), "{response:?}");

        let published = h.notifier.published();
        let kinds: Vec<(&str, AlertKind)> = published
            .iter()
            .map(|a| (a.symbol.as_str(), a.kind))
            .collect();
        assert_eq!(kinds, [("AAPL", AlertKind::High), ("MSFT", AlertKind::Low)]);
        assert!(h.store.alerts().iter().all(|s| s.notified));

        let letters = h.handler.dead_letters().letters();
        let sources: Vec<(&str, &str)> = letters
            .iter()
            .map(|l| (l.source_message_id.as_str(), l.error.code()))
            .collect();
        assert_eq!(
            sources,
            [
                (MALFORMED_ID, "body.malformed"),
                (INVALID_ID, "price.invalid")
            ]
        );
        assert_eq!(
            letters[0].body, "price=151.25;symbol=AAPL",
            "the original body, unchanged"
        );
        let ids: Vec<String> = h
            .handler
            .pipeline()
            .rules()
            .rules()
            .iter()
            .map(|rule| rule.id().to_string())
            .collect();
        assert_eq!(ids, ["high", "low"], "the specification's rules");
    }

    /// A rules source that counts the batches it was asked about and swaps in a book at the
    /// second.
    struct CountingRules {
        batches: std::sync::atomic::AtomicU32,
        second: Arc<tickwatch_core::RuleBook>,
    }

    impl RulesSource for CountingRules {
        async fn before_batch<S, N, C>(&self, pipeline: &Pipeline<S, N, C>)
        where
            S: AlertStore + StateStore,
            N: Notifier,
            C: Clock,
        {
            let seen = self
                .batches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if seen == 1 {
                pipeline.set_rules(self.second.clone());
            }
        }
    }

    #[tokio::test]
    async fn the_rules_are_brought_up_to_date_before_every_batch() {
        let h = harness();
        let handler = h.handler.with_rules(CountingRules {
            batches: std::sync::atomic::AtomicU32::new(0),
            second: tickwatch_core::testing::rule_book(&[
                r#"{"id":"aapl-150","symbols":"AAPL","condition":"above 150","fire":"every"}"#,
            ]),
        });
        handler
            .handle(event(MIXED, roomy_deadline()))
            .await
            .expect("answers");
        let second = records(&[(
            "late".to_owned(),
            format!(r#"{{"symbol":"AAPL","price":160,"timestamp":{}}}"#, NOW_MS),
        )]);
        handler.handle(second).await.expect("answers");
        assert_eq!(
            handler
                .rules()
                .batches
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        let rules: Vec<String> = h
            .notifier
            .published()
            .iter()
            .map(|alert| alert.rule_id.to_string())
            .collect();
        assert_eq!(
            rules,
            ["high", "low", "aapl-150"],
            "the second batch ran under the rules put in force before it"
        );
    }

    /// The log lines of this test binary: a global JSON subscriber writing into memory, installed
    /// once (a thread-local one would race with the callsite interest cache of parallel tests).
    fn captured_logs() -> &'static LogSink {
        static LOGS: std::sync::OnceLock<LogSink> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let captured = LogSink::default();
            let sink = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_span_list(true)
                .with_current_span(false)
                .flatten_event(true)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || sink.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
            captured
        })
    }

    #[tokio::test]
    async fn every_log_line_carries_the_request_id_and_the_message_id() {
        let h = harness();
        let logs = captured_logs();
        std::io::Write::flush(&mut logs.clone()).expect("flush");
        let mut invocation = event(MIXED, roomy_deadline());
        invocation.context.request_id = "log-test-request".into();
        h.handler.handle(invocation).await.expect("answers");

        let text = logs.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON log line"))
            .collect();
        assert!(
            lines
                .iter()
                .all(|l| l["spans"][0]["request_id"].is_string()),
            "every line is inside an invocation: {text}"
        );
        let ours: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["spans"][0]["request_id"] == "log-test-request")
            .collect();
        let done = ours
            .iter()
            .find(|l| l["message"] == "Batch done.")
            .expect("batch line");
        assert_eq!(
            (done["messages"].as_u64(), done["failed"].as_u64()),
            (Some(5), Some(0))
        );
        let alerted = ours
            .iter()
            .find(|l| l["outcome"] == "alerted" && l["symbol"] == "AAPL")
            .expect("alert line");
        assert_eq!(alerted["spans"][1]["message_id"], AAPL_ID);
        assert_eq!(alerted["kind"], "HIGH");
        let rejected = ours
            .iter()
            .find(|l| l["outcome"] == "rejected" && l["code"] == "body.malformed")
            .expect("rejection line");
        assert_eq!(rejected["spans"][1]["message_id"], MALFORMED_ID);
        assert!(
            !text.contains("price=151.25"),
            "bodies stay out of info-level logs"
        );
    }

    #[tokio::test]
    async fn the_same_batch_delivered_twice_announces_each_alert_once() {
        let h = harness();
        for _ in 0..2 {
            let response = h
                .handler
                .handle(event(MIXED, roomy_deadline()))
                .await
                .expect("answers");
            assert!(failures(&response).is_empty());
        }
        assert_eq!(h.notifier.published().len(), 2);
        assert_eq!(h.store.alerts().len(), 2);
    }

    #[tokio::test]
    async fn store_failures_fail_the_valid_messages_only() {
        let h = harness();
        h.store
            .script(Op::Advance, [Some(Fault::Fail(ErrorClass::Transient)); 4]);
        let response = h
            .handler
            .handle(event(MIXED, roomy_deadline()))
            .await
            .expect("answers");
        assert_eq!(failures(&response), [AAPL_ID, MSFT_ID, GOOGL_ID]);
        assert!(h.notifier.published().is_empty());
        assert_eq!(
            h.dead_letters.letters().len(),
            2,
            "rejects are still dead-lettered"
        );
    }

    #[tokio::test]
    async fn a_refused_dead_letter_is_reported_as_a_failure() {
        let h = harness();
        h.dead_letters.script([Some(ErrorClass::Transient)]);
        let response = h
            .handler
            .handle(event(MIXED, roomy_deadline()))
            .await
            .expect("answers");
        assert_eq!(failures(&response), [MALFORMED_ID, INVALID_ID]);
    }

    #[tokio::test]
    async fn a_record_without_an_id_fails_the_whole_invocation() {
        let h = harness();
        let error = h
            .handler
            .handle(event(WITHOUT_ID, roomy_deadline()))
            .await
            .expect_err("no id");
        assert_eq!(error, HandlerError::MissingMessageId { index: 1 });
        assert!(error.to_string().contains("record 1"));
        assert!(
            h.notifier.published().is_empty(),
            "nothing done before failing"
        );
    }

    #[tokio::test]
    async fn a_record_without_a_body_is_rejected() {
        let h = harness();
        let response = h
            .handler
            .handle(event(WITHOUT_BODY, 0))
            .await
            .expect("answers");
        assert!(failures(&response).is_empty());
        let letters = h.dead_letters.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].body, "");
    }

    #[tokio::test]
    async fn no_time_left_before_the_deadline_fails_every_message() {
        let h = harness();
        // Lambda's deadline is exactly the margin away: the answer-by time is now.
        let deadline = (NOW_MS as u64) + DEADLINE_MARGIN_MS;
        let response = h
            .handler
            .handle(event(MIXED, deadline))
            .await
            .expect("answers");
        assert_eq!(failures(&response).len(), 5, "{response:?}");
        assert!(h.store.alerts().is_empty());
        assert!(h.dead_letters.letters().is_empty());
    }

    #[test]
    fn answer_by_keeps_the_margin() {
        let cases = [
            (0, None),
            (DEADLINE_MARGIN_MS - 1, None),
            (DEADLINE_MARGIN_MS, Some(0)),
            (
                1_795_703_460_000,
                Some(1_795_703_460_000 - DEADLINE_MARGIN_MS as i64),
            ),
            (u64::MAX, None),
        ];
        for (deadline, expected) in cases {
            assert_eq!(
                answer_by(deadline).map(Timestamp::epoch_ms),
                expected,
                "{deadline}"
            );
        }
    }

    /// An event of records `(message id, body)`.
    fn records(records: &[(String, String)]) -> LambdaEvent<SqsEvent> {
        let mut event = SqsEvent::default();
        event.records = records
            .iter()
            .map(|(id, body)| {
                let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
                record.message_id = Some(id.clone());
                record.body = Some(body.clone());
                record
            })
            .collect();
        let mut context = Context::default();
        context.deadline = roomy_deadline();
        LambdaEvent::new(event, context)
    }

    /// The Lambda path keeps the pipeline's promise: however SQS composes its batches, a sequence
    /// of ticks raises the same alerts as one tick per invocation. The ticks are shuffled within
    /// small windows, as a standard queue delivers them, and cross the thresholds both ways.
    #[tokio::test]
    async fn how_sqs_splits_the_ticks_into_events_never_changes_the_alerts() {
        let mut rng = tickwatch_core::retry::Rng::seeded(11);
        let mut ticks: Vec<(String, String)> = (0..120)
            .map(|i: i64| {
                let symbol = ["AAPL", "MSFT", "GOOGL"][(i % 3) as usize];
                let price = [100.0, 160.0, 45.0, 120.0, 151.5, 49.0][((i / 3) % 6) as usize];
                let at = NOW_MS - 60_000 + i * 100;
                (
                    format!("m{i}"),
                    format!(r#"{{"symbol":"{symbol}","price":{price},"timestamp":{at}}}"#),
                )
            })
            .collect();
        for window in ticks.chunks_mut(7) {
            for i in (1..window.len()).rev() {
                window.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let mut answers = Vec::new();
        for event_size in [1, 2, 3, 7, 10, 120] {
            let h = harness();
            for chunk in ticks.chunks(event_size) {
                let response = h.handler.handle(records(chunk)).await.expect("answers");
                assert!(failures(&response).is_empty(), "{response:?}");
            }
            let mut ids: Vec<String> = h
                .store
                .alerts()
                .iter()
                .map(|stored| stored.alert.alert_id.to_string())
                .collect();
            ids.sort();
            assert_eq!(h.notifier.published().len(), ids.len(), "size {event_size}");
            answers.push((event_size, ids));
        }
        let (_, one_by_one) = &answers[0];
        assert!(
            one_by_one.len() >= 10,
            "the sequence alerts: {one_by_one:?}"
        );
        for (event_size, ids) in &answers {
            assert_eq!(ids, one_by_one, "events of {event_size} records");
        }
    }
}
