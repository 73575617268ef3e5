//! The SQS batch runner shared by the Lambda handler and the SQS worker: messages in, the ids to
//! report as failed out.
//!
//! It runs the pipeline, sends every rejected body to the dead-letter queue, and reports for
//! redelivery every failed message and every rejected one whose dead-letter send failed, so no
//! message is ever dropped. It logs one line per message inside a span carrying the SQS message id.

use std::collections::BTreeMap;
use std::time::Instant;

use tickwatch_core::ports::{AlertStore, Clock, ErrorClass, Notifier, StateStore, before_deadline};
use tickwatch_core::{
    Accepted, AlertOutcome, BatchStats, Outcome, Pipeline, Symbol, Tick, TickError, Timestamp,
};

use crate::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::error::truncate;
use crate::metrics::BatchMetrics;

/// Longest excerpt of a rejected body written to the (debug-level) log, in characters.
pub const BODY_LOG_CHARS_MAX: usize = 200;

/// One SQS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsMessage {
    /// The SQS message id (what a partial batch response names).
    pub message_id: String,
    /// The body.
    pub body: String,
}

/// What a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Ids of the messages to leave for redelivery, in input order.
    pub failed_message_ids: Vec<String>,
    /// The pipeline's counts.
    pub stats: BatchStats,
    /// Rejected messages now in the dead-letter queue.
    pub dead_lettered: u64,
    /// Rejected messages that could not be dead-lettered (and are reported as failed instead).
    pub dead_letter_failures: u64,
    /// Rejected messages by reason code (`price.invalid`, ...).
    pub rejected_by_code: BTreeMap<&'static str, u64>,
    /// Wall time of the batch, in milliseconds.
    pub duration_ms: u64,
}

impl BatchResult {
    /// The batch's metrics.
    pub fn metrics(&self) -> BatchMetrics {
        BatchMetrics {
            stats: self.stats.clone(),
            messages_failed: self.failed_message_ids.len() as u64,
            duration_ms: self.duration_ms,
            rejected_by_code: self.rejected_by_code.clone(),
        }
    }
}

/// Runs one batch: the pipeline, then the dead-letter queue for rejected messages. Nothing is
/// started past `deadline`; a dead-letter send the deadline cuts short counts as failed.
pub async fn run_batch<S, N, C, D>(
    pipeline: &Pipeline<S, N, C>,
    dead_letters: &D,
    messages: Vec<SqsMessage>,
    deadline: Option<Timestamp>,
) -> BatchResult
where
    S: AlertStore + StateStore,
    N: Notifier,
    C: Clock,
    D: DeadLetterQueue,
{
    let started = Instant::now();
    let mut symbols: Vec<Option<Symbol>> = Vec::with_capacity(messages.len());
    let decoded: Vec<(usize, Result<Tick, TickError>)> = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let tick = Tick::decode(message.body.as_bytes());
            symbols.push(tick.as_ref().ok().map(|t| t.symbol));
            (index, tick)
        })
        .collect();
    let report = pipeline.process_ticks(decoded, deadline).await;

    let mut messages = messages;
    let mut letters = Vec::new();
    let mut letter_of: Vec<Option<usize>> = vec![None; messages.len()];
    let mut rejected_by_code = BTreeMap::new();
    for (index, outcome) in &report.outcomes {
        if let Outcome::Rejected(error) = outcome {
            *rejected_by_code.entry(error.code()).or_default() += 1;
            letter_of[*index] = Some(letters.len());
            letters.push(DeadLetter {
                source_message_id: messages[*index].message_id.clone(),
                body: std::mem::take(&mut messages[*index].body),
                error: (**error).clone(),
            });
        }
    }
    let sent: Vec<Result<(), String>> = if letters.is_empty() {
        Vec::new()
    } else {
        match before_deadline(pipeline.clock(), deadline, || dead_letters.send(&letters)).await {
            Some(answers) => answers
                .into_iter()
                .map(|a| a.map_err(|e| e.to_string()))
                .collect(),
            None => vec![
                Err("the invocation deadline passed while dead-lettering".into());
                letters.len()
            ],
        }
    };

    let mut result = BatchResult {
        stats: report.stats,
        rejected_by_code,
        ..BatchResult::default()
    };
    for (index, outcome) in &report.outcomes {
        let message = &messages[*index];
        let span = message_span(&message.message_id);
        let _entered = span.enter();
        let symbol = symbols[*index].as_ref().map(Symbol::as_str);
        let dead_letter = letter_of[*index].map(|l| (&letters[l], &sent[l]));
        let failed = log_outcome(symbol, outcome, dead_letter);
        match (outcome, failed) {
            (Outcome::Rejected(_), false) => result.dead_lettered += 1,
            (Outcome::Rejected(_), true) => result.dead_letter_failures += 1,
            _ => {}
        }
        if failed {
            result.failed_message_ids.push(message.message_id.clone());
        }
    }
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

/// The span of one message. Created at ERROR level so that it exists whatever the log level
/// (a span's level only decides whether it is recorded), and every line inside names the message.
fn message_span(message_id: &str) -> tracing::Span {
    tracing::error_span!("sqs_message", message_id = %message_id)
}

/// Logs one message's outcome; returns whether the message must be reported as failed.
fn log_outcome(
    symbol: Option<&str>,
    outcome: &Outcome,
    dead_letter: Option<(&DeadLetter, &Result<(), String>)>,
) -> bool {
    match outcome {
        Outcome::Accepted(accepted) => {
            match accepted {
                Accepted::Alerts(outcomes) => {
                    for alert in outcomes {
                        match alert {
                            AlertOutcome::New(alert) => tracing::info!(
                                symbol, outcome = "alerted", alert_id = %alert.alert_id,
                                rule_id = %alert.rule_id, kind = %alert.kind,
                                price = alert.price.get(), threshold = alert.threshold,
                                "Alert raised."
                            ),
                            AlertOutcome::Duplicate {
                                alert_id,
                                announced_now,
                            } => tracing::info!(
                                symbol, outcome = "duplicate", alert_id = %alert_id, announced_now,
                                "Alert already stored (redelivery)."
                            ),
                        }
                    }
                }
                Accepted::Quiet => tracing::debug!(symbol, outcome = "quiet", "No alert."),
                Accepted::Rearmed => {
                    tracing::debug!(
                        symbol,
                        outcome = "rearmed",
                        "A rule re-armed: its condition cleared."
                    )
                }
                Accepted::Stale => {
                    tracing::debug!(symbol, outcome = "stale", "Tick older than the state.")
                }
            }
            false
        }
        Outcome::Rejected(error) => {
            let Some((letter, sent)) = dead_letter else {
                // Every rejection has a letter; without one, keep the message rather than lose it.
                tracing::error!(symbol, outcome = "rejected", reason = %error, "Rejected message has no letter.");
                return true;
            };
            tracing::debug!(body = %truncate(&letter.body, BODY_LOG_CHARS_MAX), "Rejected body (excerpt).");
            match sent {
                Ok(()) => {
                    tracing::warn!(
                        symbol, outcome = "rejected", code = error.code(), reason = %error,
                        body_bytes = letter.body.len(), "Tick rejected; sent to the dead-letter queue."
                    );
                    false
                }
                Err(send_error) => {
                    tracing::error!(
                        symbol, outcome = "failed", code = error.code(), reason = %error,
                        dead_letter_error = %send_error,
                        "Tick rejected but the dead-letter queue refused it; left for redelivery."
                    );
                    true
                }
            }
        }
        Outcome::Failed(failure) => {
            let step = failure.step.as_str();
            match failure.class {
                ErrorClass::Transient => tracing::warn!(
                    symbol, outcome = "failed", step, class = ErrorClass::Transient.as_str(), reason = %failure.reason,
                    "Message failed; left for redelivery."
                ),
                ErrorClass::Permanent => tracing::error!(
                    symbol, outcome = "failed", step, class = ErrorClass::Permanent.as_str(), reason = %failure.reason,
                    "Message failed on a permanent error; left for redelivery and the queue's redrive policy."
                ),
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tickwatch_core::retry::RetryPolicy;
    use tickwatch_core::testing::{
        Fault, ManualClock, MemoryNotifier, MemoryPipeline, MemoryRig, MemoryStore, Op, spec_config,
    };
    use tickwatch_core::{FailedSteps, Mode};

    use super::*;
    use crate::testing::MemoryDeadLetterQueue;

    const NOW_MS: i64 = 1_795_703_400_000;

    struct Harness {
        pipeline: MemoryPipeline,
        store: Arc<MemoryStore>,
        notifier: Arc<MemoryNotifier>,
        clock: Arc<ManualClock>,
        dlq: MemoryDeadLetterQueue,
    }

    fn harness() -> Harness {
        let config = spec_config(Mode::Cross, RetryPolicy::new(2, 10, 20).expect("valid"), 3);
        let MemoryRig {
            pipeline,
            store,
            notifier,
            clock,
        } = MemoryRig::new(config, Timestamp::from_epoch_ms(NOW_MS).expect("valid"));
        Harness {
            pipeline,
            store,
            notifier,
            clock,
            dlq: MemoryDeadLetterQueue::new(),
        }
    }

    fn messages(bodies: &[&str]) -> Vec<SqsMessage> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| SqsMessage {
                message_id: format!("m{i}"),
                body: (*body).to_owned(),
            })
            .collect()
    }

    const HIGH: &str = r#"{"symbol":"AAPL","price":151,"timestamp":1000}"#;
    const QUIET: &str = r#"{"symbol":"MSFT","price":100,"timestamp":1000}"#;
    const BAD: &str = r#"{"symbol":"AAPL","price":"x","timestamp":1000}"#;

    async fn run(h: &Harness, bodies: &[&str], deadline: Option<Timestamp>) -> BatchResult {
        run_batch(&h.pipeline, &h.dlq, messages(bodies), deadline).await
    }

    #[tokio::test]
    async fn rejected_messages_go_to_the_dead_letter_queue_and_count_as_done() {
        let h = harness();
        let result = run(&h, &[HIGH, QUIET, BAD], None).await;
        assert!(result.failed_message_ids.is_empty(), "{result:?}");
        assert_eq!(
            (
                result.stats.accepted,
                result.stats.rejected,
                result.stats.alerts
            ),
            (2, 1, 1)
        );
        assert_eq!((result.dead_lettered, result.dead_letter_failures), (1, 0));
        let letters = h.dlq.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].source_message_id, "m2");
        assert_eq!(letters[0].body, BAD);
        assert_eq!(letters[0].error.code(), "price.invalid");
        assert_eq!(h.notifier.published().len(), 1);
        assert_eq!(result.metrics().messages_failed, 0);
        assert_eq!(
            result.metrics().rejected_by_code,
            BTreeMap::from([("price.invalid", 1)]),
            "rejections are counted by reason for the dashboard"
        );
    }

    #[tokio::test]
    async fn a_refused_dead_letter_keeps_the_message_for_redelivery() {
        let h = harness();
        h.dlq.script([Some(ErrorClass::Transient)]);
        let result = run(&h, &[HIGH, BAD], None).await;
        assert_eq!(result.failed_message_ids, ["m1"]);
        assert_eq!((result.dead_lettered, result.dead_letter_failures), (0, 1));
        assert_eq!(result.metrics().messages_failed, 1);
    }

    #[tokio::test]
    async fn failed_messages_are_reported() {
        let h = harness();
        h.store
            .script(Op::Advance, [Some(Fault::Fail(ErrorClass::Permanent))]);
        let result = run(&h, &[HIGH, QUIET, BAD], None).await;
        // AAPL's state write failed; MSFT needed none (quiet first tick writes state too).
        assert!(
            result.failed_message_ids.contains(&"m0".to_owned()),
            "{result:?}"
        );
        assert!(!result.failed_message_ids.contains(&"m2".to_owned()));
        assert!(h.notifier.published().is_empty());
        assert_eq!(
            result.stats.failed as usize,
            result.failed_message_ids.len()
        );
        // Each failure is counted at the step that failed it.
        assert_eq!(
            result.stats.failed_steps,
            FailedSteps {
                advance_state: result.stats.failed,
                ..FailedSteps::default()
            }
        );
    }

    #[tokio::test]
    async fn a_passed_deadline_sends_nothing_and_keeps_every_message() {
        let h = harness();
        let deadline = Timestamp::from_epoch_ms(NOW_MS - 1).expect("valid");
        let result = run(&h, &[HIGH, BAD], Some(deadline)).await;
        assert_eq!(result.failed_message_ids, ["m0", "m1"]);
        assert!(h.dlq.letters().is_empty());
        assert_eq!(result.dead_letter_failures, 1);
        assert!(h.store.alerts().is_empty());
    }

    #[tokio::test]
    async fn a_dead_letter_send_cut_by_the_deadline_keeps_the_message() {
        struct Hanging;
        impl DeadLetterQueue for Hanging {
            type Error = crate::testing::InjectedDeadLetterFault;
            fn send(
                &self,
                _letters: &[DeadLetter],
            ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
                std::future::pending()
            }
        }
        let h = harness();
        let deadline = Timestamp::from_epoch_ms(NOW_MS + 5_000).expect("valid");
        let result = run_batch(&h.pipeline, &Hanging, messages(&[BAD]), Some(deadline)).await;
        assert_eq!(result.failed_message_ids, ["m0"]);
        assert_eq!(h.clock.now(), deadline, "waited exactly until the deadline");
    }
}
