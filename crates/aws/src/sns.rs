//! SNS: announces alerts on a topic ([`Notifier`]).
//!
//! Alerts go out with `PublishBatch`, [`PUBLISH_BATCH_ENTRIES_MAX`] per call, the calls side by
//! side. Each message is the alert's JSON; its subject is the alert's one-line summary (at most
//! [`SUBJECT_CHARS_MAX`] characters, printable ASCII, as SNS requires); message attributes
//! `symbol`, `kind`, `rule_id` and `alert_id` let subscribers filter (a filter policy on
//! `rule_id` subscribes to chosen rules) and de-duplicate. A FIFO topic (its ARN ends in `.fifo`)
//! gets the symbol as message group and the alert id as de-duplication id.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use futures_util::stream::{self, StreamExt};
use std::borrow::Borrow;
use tickwatch_core::Alert;
use tickwatch_core::ports::Notifier;

use crate::error::AwsError;

/// Most entries in one `PublishBatch` call (the API's limit).
pub const PUBLISH_BATCH_ENTRIES_MAX: usize = 10;

/// Most `PublishBatch` calls in flight at once.
pub const PUBLISH_CALLS_IN_FLIGHT_MAX: usize = 8;

/// Longest SNS subject, in characters (the API's limit).
pub const SUBJECT_CHARS_MAX: usize = 100;

/// Publishes alerts to one SNS topic.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
    fifo: bool,
}

impl SnsNotifier {
    /// A notifier for the topic `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> SnsNotifier {
        let topic_arn = topic_arn.into();
        SnsNotifier {
            client,
            fifo: topic_arn.ends_with(".fifo"),
            topic_arn,
        }
    }

    /// The topic.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Checks that the topic exists (and opens a connection doing so). For start-up.
    pub async fn check_topic(&self) -> Result<(), AwsError> {
        self.client
            .get_topic_attributes()
            .topic_arn(&self.topic_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetTopicAttributes", &e))?;
        Ok(())
    }

    async fn publish_chunk<A: Borrow<Alert>>(&self, chunk: &[A]) -> Vec<Result<(), AwsError>> {
        let mut answers: Vec<Option<Result<(), AwsError>>> = vec![None; chunk.len()];
        let mut entries = Vec::with_capacity(chunk.len());
        for (index, alert) in chunk.iter().enumerate() {
            match self.entry(index, alert.borrow()) {
                Ok(entry) => entries.push(entry),
                Err(error) => answers[index] = Some(Err(error)),
            }
        }
        if !entries.is_empty() {
            let sent = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    for ok in output.successful() {
                        if let Some(slot) = entry_slot(&mut answers, ok.id()) {
                            *slot = Some(Ok(()));
                        }
                    }
                    for failed in output.failed() {
                        if let Some(slot) = entry_slot(&mut answers, Some(failed.id())) {
                            *slot = Some(Err(AwsError::entry(
                                "PublishBatch",
                                failed.code(),
                                failed.message(),
                                failed.sender_fault(),
                            )));
                        }
                    }
                }
                Err(error) => {
                    let error = AwsError::from_sdk("PublishBatch", &error);
                    for slot in answers.iter_mut().filter(|a| a.is_none()) {
                        *slot = Some(Err(error.clone()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(AwsError::NoAnswer {
                        operation: "PublishBatch",
                        reason: "the answer did not mention this entry".into(),
                    })
                })
            })
            .collect()
    }

    fn entry(&self, index: usize, alert: &Alert) -> Result<PublishBatchRequestEntry, AwsError> {
        // The same body as every local sink's (written by the core, not serialized here).
        let mut body = Vec::new();
        alert.write_json(&mut body);
        let message = String::from_utf8(body).map_err(|e| AwsError::build("PublishBatch", e))?;
        let mut entry = PublishBatchRequestEntry::builder()
            .id(index.to_string())
            .message(message)
            .subject(subject(alert))
            .message_attributes("symbol", string_attribute(alert.symbol.as_str())?)
            .message_attributes("kind", string_attribute(alert.kind.as_str())?)
            .message_attributes("rule_id", string_attribute(alert.rule_id.as_str())?)
            .message_attributes("alert_id", string_attribute(&alert.alert_id.to_string())?);
        if self.fifo {
            entry = entry
                .message_group_id(alert.symbol.as_str())
                .message_deduplication_id(alert.alert_id.to_string());
        }
        entry
            .build()
            .map_err(|e| AwsError::build("PublishBatch", e))
    }
}

/// The slot of the entry whose batch id is `id` (its index in the chunk).
fn entry_slot<'a, T>(answers: &'a mut [Option<T>], id: Option<&str>) -> Option<&'a mut Option<T>> {
    let index: usize = id?.parse().ok()?;
    answers.get_mut(index)
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, AwsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| AwsError::build("PublishBatch", e))
}

/// The alert's summary as an SNS subject: printable ASCII only, at most [`SUBJECT_CHARS_MAX`]
/// characters (cut with `...` if longer).
pub fn subject(alert: &Alert) -> String {
    let text: String = alert
        .subject()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.len() <= SUBJECT_CHARS_MAX {
        return text;
    }
    // ASCII only by now, so byte and character positions agree.
    format!("{}...", &text[..SUBJECT_CHARS_MAX - 3])
}

impl Notifier for SnsNotifier {
    type Error = AwsError;

    async fn publish<A: Borrow<Alert> + Sync>(&self, alerts: &[A]) -> Vec<Result<(), AwsError>> {
        {
            // Futures built first, so the stream's type holds no closure (keeps this `Send`).
            let calls: Vec<_> = alerts
                .chunks(PUBLISH_BATCH_ENTRIES_MAX)
                .map(|chunk| self.publish_chunk(chunk))
                .collect();
            let answers: Vec<Vec<Result<(), AwsError>>> = stream::iter(calls)
                .buffered(PUBLISH_CALLS_IN_FLIGHT_MAX)
                .collect()
                .await;
            answers.into_iter().flatten().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwatch_core::rules::{Fire, RuleId};
    use tickwatch_core::{AlertKey, AlertKind, Price, Symbol, Timestamp};

    fn alert(symbol: &str, price: f64, threshold: f64) -> Alert {
        let symbol = Symbol::parse(symbol).expect("valid");
        let at = Timestamp::from_epoch_ms(1_795_703_400_123).expect("valid");
        let rule = RuleId::parse("high").expect("valid");
        Alert {
            alert_id: AlertKey { symbol, at, rule }.id(),
            rule_id: rule,
            label: None,
            symbol,
            kind: AlertKind::High,
            condition: tickwatch_core::Condition::Above(threshold),
            price: Price::new(price).expect("valid"),
            threshold,
            fire: Fire::Every,
            timestamp: at,
            processed_at: at,
        }
    }

    #[test]
    fn entries_carry_the_attributes_subscribers_filter_on() {
        let notifier = SnsNotifier::new(
            aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::Config::builder()
                    .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
                    .build(),
            ),
            "arn:aws:sns:us-east-1:123456789012:alerts",
        );
        let alert = alert("AAPL", 151.25, 150.0);
        let entry = notifier.entry(3, &alert).expect("entry");
        let attributes = entry.message_attributes().expect("attributes");
        let value = |name: &str| {
            attributes
                .get(name)
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        assert_eq!(value("symbol").as_deref(), Some("AAPL"));
        assert_eq!(value("kind").as_deref(), Some("HIGH"));
        assert_eq!(value("rule_id").as_deref(), Some("high"));
        assert_eq!(value("alert_id"), Some(alert.alert_id.to_string()));
        assert_eq!(entry.id(), "3");
    }

    #[test]
    fn subjects_fit_the_sns_limit() {
        let short = alert("AAPL", 151.25, 150.0);
        assert_eq!(
            subject(&short),
            "AAPL HIGH 151.25 > 150 at 2026-11-26T14:30:00.123Z"
        );
        let long = alert(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
            999_999_999_999.123_4,
            123_456_789.123_456_79,
        );
        assert!(
            long.subject().len() > SUBJECT_CHARS_MAX,
            "the case must need cutting"
        );
        let cut = subject(&long);
        assert_eq!(cut.len(), SUBJECT_CHARS_MAX);
        assert!(cut.ends_with("..."));
        assert!(cut.starts_with("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 HIGH "));
    }

    #[test]
    fn entry_slots_come_from_entry_ids() {
        let mut answers: Vec<Option<u8>> = vec![None; 3];
        assert!(entry_slot(&mut answers, Some("2")).is_some());
        assert!(entry_slot(&mut answers, Some("3")).is_none());
        assert!(entry_slot(&mut answers, Some("x")).is_none());
        assert!(entry_slot(&mut answers, None).is_none());
    }
}
