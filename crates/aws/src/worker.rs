//! The SQS worker: the same pipeline as the Lambda function, fed by long-polling a queue, for
//! containers and VMs (`tickwatch sqs-worker`) and for tests that drive the whole path.
//!
//! It does what Lambda's event source mapping does: receive up to 10 messages, bring the rules
//! up to date as the function does ([`RulesSource::before_batch`]), run the batch runner, delete what succeeded (rejected messages included, once they are in the dead-letter
//! queue), and leave failures invisible until their visibility timeout expires, so SQS redelivers
//! them and its redrive policy applies. On shutdown it finishes the batch in hand, then returns.
//! A receive in flight when shutdown comes is abandoned: whatever it got reappears on the queue
//! after the visibility timeout.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use futures_util::FutureExt;
use futures_util::future::{Either, select};
use tickwatch_core::ports::{AlertStore, Classify, Clock, ErrorClass, Notifier, StateStore};
use tickwatch_core::{BatchStats, Pipeline};

use crate::batch::{SqsMessage, run_batch};
use crate::config::ATTEMPT_TIMEOUT_MS;
use crate::dead_letter::DeadLetterQueue;
use crate::error::AwsError;
use crate::metrics::emf_lines;
use crate::refresh::RulesSource;

/// Most messages one receive may return (the API's limit).
pub const MESSAGES_PER_RECEIVE_MAX: u32 = 10;

/// Longest long-poll wait (the API's limit), in seconds.
pub const WAIT_TIME_S_MAX: u32 = 20;

/// Longest visibility timeout (the API's limit), in seconds.
pub const VISIBILITY_TIMEOUT_S_MAX: u32 = 43_200;

/// Time kept back from the visibility timeout, so a batch is answered (and its messages deleted)
/// before SQS makes them visible again, in milliseconds.
pub const DEADLINE_MARGIN_MS: u64 = 2_000;

/// Shortest visibility timeout accepted, in seconds: enough for the margin and one batch.
pub const VISIBILITY_TIMEOUT_S_MIN: u32 = 5;

/// The visibility timeout `tickwatch sqs-worker` asks for unless told otherwise, in seconds: the
/// function's timeout (60 s), so a batch has as long as it would have in Lambda.
pub const VISIBILITY_TIMEOUT_S_DEFAULT: u32 = 60;

/// Consecutive transient receive failures after which the worker gives up.
pub const RECEIVE_FAILURES_MAX: u32 = 10;

/// Longest pause after a failed receive, in milliseconds (it doubles from 100 ms up to this).
pub const RECEIVE_BACKOFF_MS_MAX: u64 = 5_000;

/// When the worker stops (besides shutdown, which always stops it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunUntil {
    /// Only on shutdown.
    Shutdown,
    /// When a receive comes back empty (the queue is drained, except messages in flight).
    QueueEmpty,
    /// After this many batches (or earlier on an empty receive).
    Batches(u64),
}

/// How the worker polls. No `Default`: say what you want.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// The queue of ticks.
    pub queue_url: String,
    /// Long-poll wait per receive, in seconds (0 to [`WAIT_TIME_S_MAX`]; 20 in production, short
    /// in tests).
    pub wait_time_s: u32,
    /// Messages per receive (1 to [`MESSAGES_PER_RECEIVE_MAX`]).
    pub messages_per_receive: u32,
    /// Visibility timeout asked for on each receive, in seconds ([`VISIBILITY_TIMEOUT_S_MIN`] to
    /// [`VISIBILITY_TIMEOUT_S_MAX`]). A batch's deadline is the receive time plus this, minus
    /// [`DEADLINE_MARGIN_MS`]; failed messages come back after it.
    pub visibility_timeout_s: u32,
    /// When to stop.
    pub run_until: RunUntil,
    /// The `Service` dimension of the metrics; `None` prints no metrics lines.
    pub metrics_service: Option<String>,
}

impl WorkerOptions {
    /// Checks every bound.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let bad = |what: &str| Err(WorkerError::Options(what.to_owned()));
        if self.queue_url.is_empty() {
            return bad("queue_url must not be empty");
        }
        if self.wait_time_s > WAIT_TIME_S_MAX {
            return bad(&format!(
                "wait_time_s must be at most {WAIT_TIME_S_MAX}, got {}",
                self.wait_time_s
            ));
        }
        if !(1..=MESSAGES_PER_RECEIVE_MAX).contains(&self.messages_per_receive) {
            return bad(&format!(
                "messages_per_receive must be between 1 and {MESSAGES_PER_RECEIVE_MAX}, got {}",
                self.messages_per_receive
            ));
        }
        if !(VISIBILITY_TIMEOUT_S_MIN..=VISIBILITY_TIMEOUT_S_MAX)
            .contains(&self.visibility_timeout_s)
        {
            return bad(&format!(
                "visibility_timeout_s must be between {VISIBILITY_TIMEOUT_S_MIN} and {VISIBILITY_TIMEOUT_S_MAX}, got {}",
                self.visibility_timeout_s
            ));
        }
        if self.run_until == RunUntil::Batches(0) {
            return bad("run_until Batches(n) needs n >= 1");
        }
        Ok(())
    }
}

/// What a worker run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Batches processed.
    pub batches: u64,
    /// Messages received.
    pub received: u64,
    /// Messages deleted (done: accepted, or rejected and dead-lettered).
    pub deleted: u64,
    /// Messages left on the queue for redelivery (failed, or a delete that failed): the sum of
    /// `stats.failed_steps`, `dead_letter_failures` and `delete_failures`.
    pub left_for_redelivery: u64,
    /// Deletes that failed (those messages will be delivered again and found done).
    pub delete_failures: u64,
    /// Rejected messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Rejected messages the dead-letter queue refused (left for redelivery instead).
    pub dead_letter_failures: u64,
    /// The pipeline's counts over all batches (`stats.failed_steps`: messages left for
    /// redelivery because a pipeline step failed, by step).
    pub stats: BatchStats,
}

impl WorkerReport {
    /// Messages left for redelivery whose work is not done: a tick not yet evaluated or its alert
    /// not known to be stored (`advance_state`, `insert_alert`, `fetch_alert`), or a rejected
    /// tick not yet in the dead-letter queue. The rest of `left_for_redelivery` is stored, and its
    /// redelivery only announces, marks or deletes.
    pub fn left_unstored(&self) -> u64 {
        self.stats.failed_unstored() + self.dead_letter_failures
    }

    /// Why messages were left for redelivery: each step that failed, with its count, in pipeline
    /// order (`advance_state`, `insert_alert`, `fetch_alert`, `publish`, `mark_notified`), then
    /// `dead_letter` and `delete`. Empty when nothing was left.
    pub fn left_by_step(&self) -> Vec<(&'static str, u64)> {
        self.stats
            .failed_steps
            .by_step()
            .into_iter()
            .map(|(step, count)| (step.as_str(), count))
            .chain([
                ("dead_letter", self.dead_letter_failures),
                ("delete", self.delete_failures),
            ])
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

/// Why the worker stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The options are out of bounds.
    #[error("invalid worker options: {0}")]
    Options(String),
    /// Receiving failed permanently (no such queue, access denied) or too often in a row.
    #[error("receiving from the queue failed: {error} (after {batches} batches)")]
    Receive {
        /// The last receive error.
        error: Box<AwsError>,
        /// Batches done before.
        batches: u64,
    },
}

/// Polls `options.queue_url` and runs every batch through `pipeline`, with `rules` brought up to
/// date before each (a deployment's `rules`, or [`crate::FixedRules`]), until `options.run_until`
/// or `shutdown` resolves (the batch in hand is finished first).
pub async fn run<S, N, C, D, R>(
    sqs: &Client,
    options: &WorkerOptions,
    pipeline: &Pipeline<S, N, C>,
    dead_letters: &D,
    rules: &R,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerReport, WorkerError>
where
    S: AlertStore + StateStore,
    N: Notifier,
    C: Clock,
    D: DeadLetterQueue,
    R: RulesSource,
{
    let clock = pipeline.clock();
    options.validate()?;
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let mut report = WorkerReport::default();
    let mut failures_in_a_row = 0u32;
    loop {
        if let RunUntil::Batches(n) = options.run_until
            && report.batches >= n
        {
            break;
        }
        let receive = receive(sqs, options);
        let received = match select(std::pin::pin!(receive), shutdown.as_mut()).await {
            Either::Left((received, _)) => received,
            Either::Right(_) => break,
        };
        let received_at = clock.now();
        let messages = match received {
            Ok(messages) => {
                failures_in_a_row = 0;
                messages
            }
            Err(error) => {
                failures_in_a_row += 1;
                if error.class() == ErrorClass::Permanent
                    || failures_in_a_row >= RECEIVE_FAILURES_MAX
                {
                    return Err(WorkerError::Receive {
                        error: Box::new(error),
                        batches: report.batches,
                    });
                }
                let pause_ms = (100u64 << failures_in_a_row.min(10)).min(RECEIVE_BACKOFF_MS_MAX);
                tracing::warn!(%error, pause_ms, "Receive failed; trying again.");
                let pause = clock.sleep(Duration::from_millis(pause_ms));
                if let Either::Right(_) = select(std::pin::pin!(pause), shutdown.as_mut()).await {
                    break;
                }
                continue;
            }
        };
        if messages.is_empty() {
            if options.run_until == RunUntil::Shutdown {
                continue;
            }
            break;
        }

        let budget_ms = u64::from(options.visibility_timeout_s) * 1_000 - DEADLINE_MARGIN_MS;
        let deadline = received_at.saturating_add_ms(budget_ms);
        let (batch, receipts): (Vec<SqsMessage>, Vec<Option<String>>) = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let message = SqsMessage {
                    message_id: m.message_id.unwrap_or_else(|| format!("unnamed-{i}")),
                    body: m.body.unwrap_or_default(),
                };
                (message, m.receipt_handle)
            })
            .unzip();
        let ids: Vec<String> = batch.iter().map(|m| m.message_id.clone()).collect();
        rules.before_batch(pipeline).await;
        let result = run_batch(pipeline, dead_letters, batch, Some(deadline)).await;
        if let Some(service) = &options.metrics_service {
            for line in emf_lines(service, clock.now(), &result.metrics()) {
                println!("{line}");
            }
        }

        let done: Vec<(String, String)> = ids
            .into_iter()
            .zip(receipts)
            .filter(|(id, _)| !result.failed_message_ids.contains(id))
            .filter_map(|(id, receipt)| receipt.map(|r| (id, r)))
            .collect();
        let done_count = done.len() as u64;
        let delete_failures = delete(sqs, &options.queue_url, done).await;
        report.batches += 1;
        report.received += result.stats.messages;
        report.deleted += done_count - delete_failures;
        report.delete_failures += delete_failures;
        report.left_for_redelivery += result.failed_message_ids.len() as u64 + delete_failures;
        report.dead_lettered += result.dead_lettered;
        report.dead_letter_failures += result.dead_letter_failures;
        report.stats.add(&result.stats);
        tracing::info!(
            batch = report.batches,
            messages = result.stats.messages,
            failed = result.failed_message_ids.len(),
            delete_failures,
            duration_ms = result.duration_ms,
            "Batch done."
        );
    }
    Ok(report)
}

async fn receive(
    sqs: &Client,
    options: &WorkerOptions,
) -> Result<Vec<aws_sdk_sqs::types::Message>, AwsError> {
    // A long poll legitimately takes `wait_time_s`: give this call that much more than the
    // client's usual attempt timeout.
    let attempt_ms = u64::from(options.wait_time_s) * 1_000 + ATTEMPT_TIMEOUT_MS;
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(crate::config::CONNECT_TIMEOUT_MS))
        .operation_attempt_timeout(Duration::from_millis(attempt_ms))
        .build();
    let output = sqs
        .receive_message()
        .queue_url(&options.queue_url)
        .max_number_of_messages(options.messages_per_receive as i32)
        .wait_time_seconds(options.wait_time_s as i32)
        .visibility_timeout(options.visibility_timeout_s as i32)
        .customize()
        .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ReceiveMessage", &e))?;
    Ok(output.messages.unwrap_or_default())
}

/// Deletes `(message id, receipt handle)` pairs, 10 per call; returns how many deletes failed.
async fn delete(sqs: &Client, queue_url: &str, done: Vec<(String, String)>) -> u64 {
    let mut failures = 0u64;
    for chunk in done.chunks(MESSAGES_PER_RECEIVE_MAX as usize) {
        let entries: Result<Vec<DeleteMessageBatchRequestEntry>, _> = chunk
            .iter()
            .enumerate()
            .map(|(slot, (_, receipt))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(slot.to_string())
                    .receipt_handle(receipt)
                    .build()
            })
            .collect();
        let deleted = match entries {
            Ok(entries) => sqs
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DeleteMessageBatch", &e)),
            Err(e) => Err(AwsError::build("DeleteMessageBatch", e)),
        };
        match deleted {
            Ok(output) => {
                for failed in output.failed() {
                    let message_id = failed
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|slot| chunk.get(slot))
                        .map_or("?", |(id, _)| id.as_str());
                    tracing::warn!(
                        message_id,
                        code = failed.code(),
                        reason = failed.message(),
                        "Delete failed; the message will be delivered again and found done."
                    );
                }
                failures += output.failed().len() as u64;
            }
            Err(error) => {
                tracing::warn!(%error, messages = chunk.len(),
                    "Delete failed; the messages will be delivered again and found done.");
                failures += chunk.len() as u64;
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use tickwatch_core::pipeline::Step;

    use super::*;

    fn options() -> WorkerOptions {
        WorkerOptions {
            queue_url: "http://localhost/123/q".into(),
            wait_time_s: 20,
            messages_per_receive: 10,
            visibility_timeout_s: 30,
            run_until: RunUntil::Shutdown,
            metrics_service: None,
        }
    }

    #[test]
    fn the_report_says_why_messages_were_left() {
        let mut report = WorkerReport::default();
        assert!(report.left_by_step().is_empty());
        assert_eq!(report.left_unstored(), 0);
        report.stats.failed_steps.count(Step::Publish);
        report.stats.failed_steps.count(Step::Publish);
        report.delete_failures = 1;
        assert_eq!(report.left_by_step(), [("publish", 2), ("delete", 1)]);
        assert_eq!(report.left_unstored(), 0, "stored, only announcing is left");
        report.stats.failed_steps.count(Step::Advance);
        report.dead_letter_failures = 1;
        assert_eq!(
            report.left_by_step(),
            [
                ("advance_state", 1),
                ("publish", 2),
                ("dead_letter", 1),
                ("delete", 1)
            ]
        );
        assert_eq!(report.left_unstored(), 2);
    }

    #[test]
    fn options_are_bounded() {
        assert!(options().validate().is_ok());
        let cases: [(&str, fn(&mut WorkerOptions)); 6] = [
            ("queue_url", |o| o.queue_url.clear()),
            ("wait_time_s", |o| o.wait_time_s = 21),
            ("messages_per_receive", |o| o.messages_per_receive = 0),
            ("messages_per_receive", |o| o.messages_per_receive = 11),
            ("visibility_timeout_s", |o| o.visibility_timeout_s = 4),
            ("run_until", |o| o.run_until = RunUntil::Batches(0)),
        ];
        for (field, change) in cases {
            let mut o = options();
            change(&mut o);
            let error = o.validate().expect_err(field);
            assert!(error.to_string().contains(field), "{error}");
        }
    }
}
