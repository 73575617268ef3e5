//! The dead-letter queue for rejected messages: a tick that can never be valid is sent there with
//! the reason, instead of being retried until SQS gives up on it.
//!
//! [`DeadLetterQueue`] is the small port the batch runner uses; [`SqsDeadLetterQueue`] sends with
//! `SendMessageBatch` (at most [`SEND_BATCH_ENTRIES_MAX`] entries and [`SEND_BATCH_BYTES_MAX`]
//! bytes per call); tests use an in-memory one from `testing`. Each letter is the
//! original body, with message attributes `reason` (the rejection, at most [`REASON_CHARS_MAX`]
//! characters), `error_code` (e.g. `price.invalid`) and `source_message_id`.

use std::future::Future;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use futures_util::stream::{self, StreamExt};
use tickwatch_core::TickError;
use tickwatch_core::ports::PortError;

use crate::error::{AwsError, truncate};

/// Most entries in one `SendMessageBatch` call (the API's limit).
pub const SEND_BATCH_ENTRIES_MAX: usize = 10;

/// Most bytes (bodies plus attributes) in one `SendMessageBatch` call, and in one message: the
/// classic SQS limit of 256 KiB, which every queue accepts.
pub const SEND_BATCH_BYTES_MAX: usize = 256 * 1024;

/// Longest `reason` attribute, in characters.
pub const REASON_CHARS_MAX: usize = 512;

/// Most `SendMessageBatch` calls in flight at once.
pub const SEND_CALLS_IN_FLIGHT_MAX: usize = 4;

/// Message group of letters on a FIFO dead-letter queue.
const FIFO_GROUP_ID: &str = "tickwatch-rejected";

/// A rejected message on its way to the dead-letter queue.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The id of the message it came in as.
    pub source_message_id: String,
    /// The original body, unchanged.
    pub body: String,
    /// Why it was rejected.
    pub error: TickError,
}

impl DeadLetter {
    /// The `reason` attribute: the rejection, cut to [`REASON_CHARS_MAX`] characters.
    pub fn reason(&self) -> String {
        truncate(&self.error.to_string(), REASON_CHARS_MAX)
    }

    /// The message attributes, as (name, value) pairs.
    pub fn attributes(&self) -> [(&'static str, String); 3] {
        [
            ("reason", self.reason()),
            ("error_code", self.error.code().to_owned()),
            ("source_message_id", self.source_message_id.clone()),
        ]
    }

    /// The attributes that fit beside the body within [`SEND_BATCH_BYTES_MAX`]: all of them,
    /// unless the body is within a few hundred bytes of the limit. Then, in order, the error
    /// code, the source message id, and as much of the reason as fits (cut by characters), so
    /// such a letter still goes to the dead-letter queue at once instead of failing its delivery
    /// five times; what does not fit is logged.
    pub fn attributes_that_fit(&self) -> Vec<(&'static str, String)> {
        let [reason, code, source] = self.attributes();
        let mut room = SEND_BATCH_BYTES_MAX.saturating_sub(self.body.len());
        let mut fitting = Vec::with_capacity(3);
        for (name, value) in [code, source] {
            let size = attribute_bytes(name, &value);
            if size <= room {
                room -= size;
                fitting.push((name, value));
            }
        }
        let (name, full) = reason;
        let value = cut_to_bytes(&full, room.saturating_sub(attribute_bytes(name, "")));
        if !value.is_empty() {
            fitting.push((name, value));
        }
        fitting
    }

    /// Bytes SQS counts for this letter: the body plus the attributes that fit.
    fn size_bytes(&self) -> usize {
        self.body.len()
            + self
                .attributes_that_fit()
                .iter()
                .map(|(name, value)| attribute_bytes(name, value))
                .sum::<usize>()
    }
}

/// `text` cut to at most `bytes_max` bytes at a character boundary, ending in `…` if cut (empty
/// if not even that fits).
fn cut_to_bytes(text: &str, bytes_max: usize) -> String {
    const ELLIPSIS: char = '…';
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let Some(mut end) = bytes_max.checked_sub(ELLIPSIS.len_utf8()) else {
        return String::new();
    };
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

/// Bytes SQS counts for one string attribute: its name, its type and its value.
fn attribute_bytes(name: &str, value: &str) -> usize {
    name.len() + "String".len() + value.len()
}

/// Where rejected messages go.
pub trait DeadLetterQueue: Send + Sync {
    /// The adapter's error.
    type Error: PortError;

    /// Sends each letter; one answer per letter, in order.
    fn send(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send;
}

/// A dead-letter queue on SQS.
#[derive(Clone, Debug)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
    fifo: bool,
}

impl SqsDeadLetterQueue {
    /// Sends to the queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsDeadLetterQueue {
        let queue_url = queue_url.into();
        SqsDeadLetterQueue {
            client,
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Checks that the queue exists (and opens a connection doing so). For start-up.
    pub async fn check_queue(&self) -> Result<(), AwsError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueAttributes", &e))?;
        Ok(())
    }

    async fn send_chunk(
        &self,
        chunk: Vec<(usize, &DeadLetter)>,
    ) -> Vec<(usize, Result<(), AwsError>)> {
        let mut answers: Vec<(usize, Option<Result<(), AwsError>>)> = Vec::new();
        let mut entries = Vec::with_capacity(chunk.len());
        for (slot, (index, letter)) in chunk.iter().enumerate() {
            match self.entry(slot, letter) {
                Ok(entry) => {
                    entries.push(entry);
                    answers.push((*index, None));
                }
                Err(error) => answers.push((*index, Some(Err(error)))),
            }
        }
        if !entries.is_empty() {
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    for ok in output.successful() {
                        if let Some(answer) = slot_of(&mut answers, ok.id()) {
                            *answer = Some(Ok(()));
                        }
                    }
                    for failed in output.failed() {
                        if let Some(answer) = slot_of(&mut answers, failed.id()) {
                            *answer = Some(Err(AwsError::entry(
                                "SendMessageBatch",
                                failed.code(),
                                failed.message(),
                                failed.sender_fault(),
                            )));
                        }
                    }
                }
                Err(error) => {
                    let error = AwsError::from_sdk("SendMessageBatch", &error);
                    for (_, answer) in answers.iter_mut().filter(|(_, a)| a.is_none()) {
                        *answer = Some(Err(error.clone()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|(index, answer)| {
                let answer = answer.unwrap_or_else(|| {
                    Err(AwsError::NoAnswer {
                        operation: "SendMessageBatch",
                        reason: "the answer did not mention this entry".into(),
                    })
                });
                (index, answer)
            })
            .collect()
    }

    fn entry(
        &self,
        slot: usize,
        letter: &DeadLetter,
    ) -> Result<SendMessageBatchRequestEntry, AwsError> {
        if letter.size_bytes() > SEND_BATCH_BYTES_MAX {
            // Reported as failed, the message stays on its queue, whose redrive policy moves it
            // to the dead-letter queue after maxReceiveCount receives: it is still not lost.
            return Err(AwsError::Limit {
                operation: "SendMessageBatch",
                reason: format!(
                    "message {} with its attributes is {} bytes; the limit is {SEND_BATCH_BYTES_MAX}",
                    letter.source_message_id,
                    letter.size_bytes()
                ),
            });
        }
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(slot.to_string())
            .message_body(&letter.body);
        let attributes = letter.attributes_that_fit();
        if attributes.len() < letter.attributes().len() {
            tracing::warn!(
                source_message_id = %letter.source_message_id,
                body_bytes = letter.body.len(),
                error_code = letter.error.code(),
                reason = %letter.reason(),
                "Rejected message too large for all its attributes; dead-lettered with those that fit."
            );
        }
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| AwsError::build("SendMessageBatch", e))?;
            entry = entry.message_attributes(name, value);
        }
        if self.fifo {
            entry = entry
                .message_group_id(FIFO_GROUP_ID)
                .message_deduplication_id(truncate(&letter.source_message_id, 128));
        }
        entry
            .build()
            .map_err(|e| AwsError::build("SendMessageBatch", e))
    }
}

/// The answer slot of the entry whose batch id is `id` (its position in the chunk).
fn slot_of<'a, T>(answers: &'a mut [(usize, Option<T>)], id: &str) -> Option<&'a mut Option<T>> {
    let slot: usize = id.parse().ok()?;
    answers.get_mut(slot).map(|(_, answer)| answer)
}

/// Splits letters into `SendMessageBatch` calls: at most [`SEND_BATCH_ENTRIES_MAX`] entries and
/// [`SEND_BATCH_BYTES_MAX`] bytes each (an oversized letter goes alone, to be refused).
fn chunks(letters: &[DeadLetter]) -> Vec<Vec<(usize, &DeadLetter)>> {
    let mut chunks: Vec<Vec<(usize, &DeadLetter)>> = Vec::new();
    let mut bytes = 0;
    for (index, letter) in letters.iter().enumerate() {
        let size = letter.size_bytes();
        let fits = chunks.last().is_some_and(|last| {
            last.len() < SEND_BATCH_ENTRIES_MAX && bytes + size <= SEND_BATCH_BYTES_MAX
        });
        if fits {
            bytes += size;
        } else {
            chunks.push(Vec::new());
            bytes = size;
        }
        if let Some(last) = chunks.last_mut() {
            last.push((index, letter));
        }
    }
    chunks
}

impl DeadLetterQueue for SqsDeadLetterQueue {
    type Error = AwsError;

    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), AwsError>> {
        {
            // Futures built first, so the stream's type holds no closure (keeps this `Send`).
            let calls: Vec<_> = chunks(letters)
                .into_iter()
                .map(|chunk| self.send_chunk(chunk))
                .collect();
            let sent: Vec<Vec<(usize, Result<(), AwsError>)>> = stream::iter(calls)
                .buffered(SEND_CALLS_IN_FLIGHT_MAX)
                .collect()
                .await;
            let mut answers: Vec<Option<Result<(), AwsError>>> = vec![None; letters.len()];
            for (index, answer) in sent.into_iter().flatten() {
                answers[index] = Some(answer);
            }
            answers
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| {
                        Err(AwsError::NoAnswer {
                            operation: "SendMessageBatch",
                            reason: "letter was never sent".into(),
                        })
                    })
                })
                .collect()
        }
    }
}

impl<T: DeadLetterQueue> DeadLetterQueue for std::sync::Arc<T> {
    type Error = T::Error;

    fn send(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        T::send(self, letters)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn attributes_shrink_to_fit_beside_a_large_body() {
        let letter = |bytes: usize| DeadLetter {
            source_message_id: "m-1".into(),
            body: "x".repeat(bytes),
            error: TickError::Price {
                value: "-1".into(),
                reason: "must be greater than 0".into(),
            },
        };
        let names = |l: &DeadLetter| {
            l.attributes_that_fit()
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&letter(100)),
            ["error_code", "source_message_id", "reason"]
        );
        assert_eq!(letter(100).attributes_that_fit()[2].1, letter(100).reason());
        for bytes in [
            SEND_BATCH_BYTES_MAX - 200,
            SEND_BATCH_BYTES_MAX - 60,
            SEND_BATCH_BYTES_MAX - 30,
            SEND_BATCH_BYTES_MAX,
        ] {
            let l = letter(bytes);
            assert!(
                l.size_bytes() <= SEND_BATCH_BYTES_MAX,
                "{bytes}: {}",
                l.size_bytes()
            );
        }
        let tight = letter(SEND_BATCH_BYTES_MAX - 100);
        let fitted = tight.attributes_that_fit();
        assert_eq!(fitted[0], ("error_code", "price.invalid".to_owned()));
        assert!(
            fitted
                .iter()
                .any(|(n, v)| *n == "reason" && v.ends_with('…') && v.starts_with("price")),
            "{fitted:?}"
        );
        assert!(
            letter(SEND_BATCH_BYTES_MAX)
                .attributes_that_fit()
                .is_empty()
        );
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(cut_to_bytes("abc", 3), "abc");
        assert_eq!(cut_to_bytes("abcdef", 5), "ab…");
        assert_eq!(cut_to_bytes("ééé", 5), "é…");
        assert_eq!(cut_to_bytes("ééé", 4), "…");
        assert_eq!(cut_to_bytes("abc", 2), "");
    }

    use super::*;
    use tickwatch_core::tick::Field;

    fn letter(id: usize, body_bytes: usize) -> DeadLetter {
        DeadLetter {
            source_message_id: format!("m-{id}"),
            body: "x".repeat(body_bytes),
            error: TickError::Missing {
                field: Field::Price,
            },
        }
    }

    #[test]
    fn attributes_carry_reason_code_and_source() {
        let l = letter(7, 3);
        assert_eq!(
            l.attributes(),
            [
                ("reason", "price: missing".to_owned()),
                ("error_code", "price.missing".to_owned()),
                ("source_message_id", "m-7".to_owned()),
            ]
        );
        let long = DeadLetter {
            error: TickError::Malformed {
                field: None,
                detail: "y".repeat(2 * REASON_CHARS_MAX),
            },
            ..l
        };
        assert_eq!(long.reason().chars().count(), REASON_CHARS_MAX);
    }

    #[test]
    fn chunks_respect_entry_and_byte_limits() {
        let sizes = |letters: &[DeadLetter]| -> Vec<Vec<usize>> {
            chunks(letters)
                .iter()
                .map(|c| c.iter().map(|(i, _)| *i).collect())
                .collect()
        };
        let small: Vec<DeadLetter> = (0..23).map(|i| letter(i, 10)).collect();
        let grouped = sizes(&small);
        assert_eq!(
            grouped.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 3]
        );
        assert_eq!(grouped.concat(), (0..23).collect::<Vec<_>>());

        let big = vec![
            letter(0, 100_000),
            letter(1, 100_000),
            letter(2, 100_000),
            letter(3, 300_000),
        ];
        assert_eq!(sizes(&big), [vec![0, 1], vec![2], vec![3]]);
    }
}
