//! A rejected tick near the SQS message size limit, through the batch runner and the real
//! dead-letter queue (moto).
//!
//! Regression: a body that fits the tick queue (at most 256 KiB) but left no room for the
//! letter's attributes (`reason`, `error_code`, `source_message_id`, about 150 bytes) used to be
//! refused by `SqsDeadLetterQueue` and reported as a failure, so SQS delivered it five times in
//! vain before its redrive policy moved it without a reason. Now the letter carries the
//! attributes that fit (the code first, then the source id, then as much of the reason as fits),
//! and goes to the dead-letter queue at once.

use tickwatch_aws::testing::{Moto, create_queue, drain_queue, message_attribute, unique_name};
use tickwatch_aws::{DynamoStore, SnsNotifier, SqsDeadLetterQueue, SqsMessage, run_batch};
use tickwatch_clock::SystemClock;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::testing::spec_config;
use tickwatch_core::{Mode, Pipeline};

/// The classic SQS message size limit, which the tick queue keeps (Terraform's default).
const SQS_MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// A tick with an invalid price, padded with an ignored field to exactly `bytes` bytes.
fn rejected_body(bytes: usize) -> String {
    let head = r#"{"symbol":"AAPL","price":-1,"timestamp":1795703400000,"pad":""#;
    let mut body = String::with_capacity(bytes);
    body.push_str(head);
    body.push_str(&"x".repeat(bytes - head.len() - 2));
    body.push_str("\"}");
    assert_eq!(body.len(), bytes);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_rejected_body_near_the_sqs_size_limit_is_dead_lettered_with_its_reason() {
    let clients = Moto::shared().clients().await;
    let dlq_url = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
    // No alert can come of a rejected tick: the store and topic are never called.
    let pipeline = Pipeline::new(
        spec_config(Mode::Cross, RetryPolicy::new(2, 10, 20).expect("valid"), 1),
        DynamoStore::new(clients.dynamodb.clone(), "unused", "unused"),
        SnsNotifier::new(
            clients.sns.clone(),
            "arn:aws:sns:us-east-1:123456789012:unused",
        ),
        SystemClock,
    );
    let dead_letters = SqsDeadLetterQueue::new(clients.sqs.clone(), &dlq_url);

    // (body size, what it is)
    let cases = [
        (1_000, "a small reject (the control case)"),
        (
            SQS_MESSAGE_BYTES_MAX - 1_000,
            "a reject 1,000 bytes under the limit",
        ),
        (
            SQS_MESSAGE_BYTES_MAX - 100,
            "a reject 100 bytes under the limit",
        ),
        (SQS_MESSAGE_BYTES_MAX, "a reject of exactly the limit"),
    ];
    let mut wrong = Vec::new();
    for (bytes, what) in cases {
        let message = SqsMessage {
            message_id: format!("near-limit-{bytes}"),
            body: rejected_body(bytes),
        };
        let result = run_batch(&pipeline, &dead_letters, vec![message], None).await;
        assert_eq!(result.stats.rejected, 1, "{what}: rejected");
        let letters = drain_queue(&clients.sqs, &dlq_url, 1, 1).await;
        // A body of exactly the limit leaves no room for any attribute: it is dead-lettered
        // as it is (and the reason logged).
        let room_for_attributes = bytes < SQS_MESSAGE_BYTES_MAX;
        let explained = letters.iter().any(|l| {
            l.body().map(str::len) == Some(bytes)
                && (!room_for_attributes
                    || (message_attribute(l, "error_code").as_deref() == Some("price.invalid")
                        && message_attribute(l, "reason").is_some_and(|r| r.starts_with("price"))))
        });
        if !result.failed_message_ids.is_empty() || !explained {
            wrong.push(format!(
                "{what} ({bytes} bytes): reported failed {:?}, dead-lettered with its reason: {explained}",
                result.failed_message_ids
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "rejected ticks that fit the tick queue must be dead-lettered at once, with what fits of their reason:\n{}",
        wrong.join("\n")
    );
}
