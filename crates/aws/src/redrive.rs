//! Reading and redriving the dead-letter queue: what `tickwatch dlq list | show | redrive` does.
//!
//! SQS has no way to look at a message without receiving it. [`DeadLetters::collect`] receives
//! the queue's messages (holding each invisible for [`HOLD_S`] seconds), keeps those that match
//! a [`Filter`], and gives every other one back at once; whoever collected must give the rest back
//! too ([`DeadLetters::release`]) or move them ([`DeadLetters::redrive`]).
//!
//! A redrive sends each chosen letter's body to the tick queue, then deletes it from the
//! dead-letter queue. Two queues cannot change in one transaction, so a [`Journal`] makes the
//! move exactly once: a letter's message id is written to the journal (and synced) after its send
//! succeeded and before its delete. A redrive interrupted between the two (a crash, a failed
//! delete) leaves the letter in the dead-letter queue; the next redrive with the same journal
//! finds its id there and only deletes it. So with one journal per dead-letter queue, every letter
//! is moved once or left in place: never lost, never sent twice.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use tickwatch_core::Timestamp;

use crate::error::AwsError;

/// How long a collected letter stays invisible to others, in seconds: long enough to confirm and
/// move a few thousand letters, short enough that an interrupted tool gives them back soon.
pub const HOLD_S: i32 = 300;

/// Most letters one collection receives (matching or not): the bound on a scan's work.
pub const SCAN_LETTERS_MAX: usize = 10_000;

/// Letters per SQS batch call (the API's limit).
const BATCH_ENTRIES_MAX: usize = 10;

/// The message attribute a redriven tick carries: the dead letter it came from.
pub const REDRIVEN_FROM_ATTRIBUTE: &str = "redriven_from";

/// Which letters to pick. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The rejection code (`error_code` attribute), e.g. `price.invalid`.
    pub reason: Option<String>,
    /// Sent to the dead-letter queue at or after this time.
    pub since: Option<Timestamp>,
    /// The tick's `symbol` (when the body is JSON with a string `symbol`).
    pub symbol: Option<String>,
}

impl Filter {
    fn matches(&self, letter: &Letter) -> bool {
        self.reason
            .as_ref()
            .is_none_or(|r| letter.error_code.as_deref() == Some(r.as_str()))
            && self
                .since
                .is_none_or(|since| letter.sent_at.is_some_and(|at| at >= since))
            && self
                .symbol
                .as_ref()
                .is_none_or(|s| letter.symbol.as_deref() == Some(s.as_str()))
    }
}

/// One dead letter, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// Its SQS message id in the dead-letter queue (what `show` and the journal name it by).
    pub message_id: String,
    /// The original tick body.
    pub body: String,
    /// Why it was rejected (`reason` attribute; absent on letters SQS's redrive policy moved).
    pub reason: Option<String>,
    /// The rejection code (`error_code` attribute).
    pub error_code: Option<String>,
    /// The tick queue message it was (`source_message_id` attribute).
    pub source_message_id: Option<String>,
    /// When it was sent to the dead-letter queue.
    pub sent_at: Option<Timestamp>,
    /// The tick's symbol, if the body is JSON with a string `symbol`.
    pub symbol: Option<String>,
    /// How many times it has been received (this collection included).
    pub receive_count: u32,
    receipt: String,
}

/// What a collection found.
#[derive(Debug, Default)]
pub struct Collected {
    /// The matching letters (at most the limit), held invisible until released or moved.
    pub letters: Vec<Letter>,
    /// Letters received in all (matching or not).
    pub scanned: usize,
    /// Whether the scan stopped at [`SCAN_LETTERS_MAX`] or at the limit before the queue was
    /// exhausted: more letters may match.
    pub more: bool,
}

/// What a redrive did. `moved + sent_delete_pending + left` is the number of letters it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Sent to the tick queue (now or by an earlier, interrupted run) and deleted here.
    pub moved: usize,
    /// Of `moved`: sent by an earlier run, only deleted now.
    pub completed_from_journal: usize,
    /// Sent to the tick queue but not yet deleted here (the delete failed): the journal has
    /// them, so the next redrive deletes them without sending them again.
    pub sent_delete_pending: usize,
    /// Not sent (the send failed): still in the dead-letter queue, given back.
    pub left: usize,
}

/// The message ids of letters already sent to the tick queue, kept in a file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    sent: HashSet<String>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let mut sent = HashSet::new();
        if let Ok(existing) = File::open(path) {
            for line in BufReader::new(existing).lines() {
                let line = line?;
                if !line.is_empty() {
                    sent.insert(line);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            sent,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `message_id` was sent by an earlier redrive.
    pub fn sent(&self, message_id: &str) -> bool {
        self.sent.contains(message_id)
    }

    /// Records that `message_id` was sent, durably, before its delete is tried.
    fn record(&mut self, message_id: &str) -> io::Result<()> {
        writeln!(self.file, "{message_id}")?;
        self.file.sync_data()?;
        self.sent.insert(message_id.to_owned());
        Ok(())
    }
}

/// A dead-letter queue, for inspection and redrive.
#[derive(Clone, Debug)]
pub struct DeadLetters {
    sqs: Client,
    queue_url: String,
    hold_s: i32,
}

impl DeadLetters {
    /// The dead-letter queue at `queue_url`; letters are held [`HOLD_S`] seconds.
    pub fn new(sqs: Client, queue_url: &str) -> DeadLetters {
        DeadLetters {
            sqs,
            queue_url: queue_url.to_owned(),
            hold_s: HOLD_S,
        }
    }

    /// The same queue with another hold time (tests use a short one to see letters come back).
    pub fn with_hold_s(mut self, hold_s: i32) -> DeadLetters {
        self.hold_s = hold_s;
        self
    }

    /// Receives letters until the queue has no more for us, [`SCAN_LETTERS_MAX`] were received,
    /// or `limit` matched. Non-matching letters are given back before this returns; the matching
    /// ones stay held for the caller.
    pub async fn collect(&self, filter: &Filter, limit: usize) -> Result<Collected, AwsError> {
        let mut collected = Collected::default();
        let mut others: Vec<Letter> = Vec::new();
        let outcome = loop {
            if collected.letters.len() >= limit || collected.scanned >= SCAN_LETTERS_MAX {
                collected.more = true;
                break Ok(());
            }
            let messages = match self.receive().await {
                Ok(messages) => messages,
                Err(e) => break Err(e),
            };
            if messages.is_empty() {
                break Ok(());
            }
            for message in messages {
                collected.scanned += 1;
                let letter = letter(message);
                if collected.letters.len() < limit && filter.matches(&letter) {
                    collected.letters.push(letter);
                } else {
                    others.push(letter);
                }
            }
        };
        // Whatever happened, give back what we will not use.
        let released = self.release(&others).await;
        match outcome {
            Ok(()) => released.map(|()| collected),
            Err(e) => {
                let _ = self.release(&collected.letters).await;
                Err(e)
            }
        }
    }

    /// Makes held letters visible again at once.
    pub async fn release(&self, letters: &[Letter]) -> Result<(), AwsError> {
        for chunk in letters.chunks(BATCH_ENTRIES_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(slot, l)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(slot.to_string())
                        .receipt_handle(&l.receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| AwsError::build("ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ChangeMessageVisibilityBatch", &e))?;
        }
        Ok(())
    }

    /// Moves held `letters` to the tick queue at `to_queue_url`, exactly once with `journal`
    /// (see the module documentation). A letter whose send fails is given back; one whose delete
    /// fails stays sent and journaled. Errors only if the journal cannot be written (then nothing
    /// more is sent, and what was not sent is given back).
    pub async fn redrive(
        &self,
        to_queue_url: &str,
        letters: Vec<Letter>,
        journal: &mut Journal,
    ) -> Result<RedriveReport, RedriveError> {
        let mut report = RedriveReport::default();
        let mut pending = letters.into_iter().peekable();
        while pending.peek().is_some() {
            let chunk: Vec<Letter> = pending.by_ref().take(BATCH_ENTRIES_MAX).collect();
            let (earlier, fresh): (Vec<Letter>, Vec<Letter>) =
                chunk.into_iter().partition(|l| journal.sent(&l.message_id));
            let earlier_ids: HashSet<String> =
                earlier.iter().map(|l| l.message_id.clone()).collect();
            let (sent, unsent) = self.send(to_queue_url, fresh).await;
            let mut to_delete = earlier;
            let mut sent = sent.into_iter();
            while let Some(letter) = sent.next() {
                if let Err(error) = journal.record(&letter.message_id) {
                    // Everything sent is deleted now, journaled or not: a letter sent but left in
                    // the queue without a journal line would be sent again by the next run.
                    to_delete.push(letter);
                    to_delete.extend(sent);
                    let (deleted, failed) = self.delete(to_delete).await;
                    report.moved += deleted.len();
                    report.completed_from_journal += deleted
                        .iter()
                        .filter(|id| earlier_ids.contains(*id))
                        .count();
                    report.sent_delete_pending += failed.len();
                    // What was not sent goes back.
                    let mut rest = unsent;
                    rest.extend(pending);
                    report.left += rest.len();
                    let _ = self.release(&rest).await;
                    return Err(RedriveError::Journal {
                        path: journal.path().to_owned(),
                        error,
                        report,
                    });
                }
                to_delete.push(letter);
            }
            report.left += unsent.len();
            let _ = self.release(&unsent).await;
            let (deleted, failed) = self.delete(to_delete).await;
            report.moved += deleted.len();
            report.completed_from_journal += deleted
                .iter()
                .filter(|id| earlier_ids.contains(*id))
                .count();
            report.sent_delete_pending += failed.len();
        }
        Ok(report)
    }

    async fn receive(&self) -> Result<Vec<Message>, AwsError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH_ENTRIES_MAX as i32)
            .wait_time_seconds(1)
            .visibility_timeout(self.hold_s)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ReceiveMessage", &e))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Sends letters' bodies to the tick queue; returns (sent, not sent).
    async fn send(&self, to_queue_url: &str, letters: Vec<Letter>) -> (Vec<Letter>, Vec<Letter>) {
        if letters.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let entries: Result<Vec<_>, _> = letters
            .iter()
            .enumerate()
            .map(|(slot, l)| {
                let from = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&l.message_id)
                    .build()?;
                SendMessageBatchRequestEntry::builder()
                    .id(slot.to_string())
                    .message_body(&l.body)
                    .message_attributes(REDRIVEN_FROM_ATTRIBUTE, from)
                    .build()
            })
            .collect();
        let Ok(entries) = entries else {
            return (Vec::new(), letters);
        };
        let answer = self
            .sqs
            .send_message_batch()
            .queue_url(to_queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let Ok(answer) = answer else {
            return (Vec::new(), letters);
        };
        split_by_slot(letters, answer.successful().iter().map(|s| s.id()))
    }

    /// Deletes letters; returns the message ids (deleted, not deleted).
    async fn delete(&self, letters: Vec<Letter>) -> (Vec<String>, Vec<String>) {
        if letters.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let ids: Vec<String> = letters.iter().map(|l| l.message_id.clone()).collect();
        let entries: Result<Vec<_>, _> = letters
            .iter()
            .enumerate()
            .map(|(slot, l)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(slot.to_string())
                    .receipt_handle(&l.receipt)
                    .build()
            })
            .collect();
        let Ok(entries) = entries else {
            return (Vec::new(), ids);
        };
        let answer = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let Ok(answer) = answer else {
            return (Vec::new(), ids);
        };
        split_by_slot(ids, answer.successful().iter().map(|s| s.id()))
    }
}

/// Splits batch entries (whose ids are their slots, `0`, `1`, ...) into those the answer lists
/// as successful and the rest.
fn split_by_slot<'a, T>(
    items: Vec<T>,
    successful_ids: impl Iterator<Item = &'a str>,
) -> (Vec<T>, Vec<T>) {
    let ok: HashSet<usize> = successful_ids.filter_map(|id| id.parse().ok()).collect();
    let (mut done, mut not_done) = (Vec::new(), Vec::new());
    for (slot, item) in items.into_iter().enumerate() {
        if ok.contains(&slot) {
            done.push(item);
        } else {
            not_done.push(item);
        }
    }
    (done, not_done)
}

/// A redrive that had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The journal could not be written: nothing more was sent.
    #[error("writing the redrive journal {}: {error} (stopped; nothing more was sent)", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// Why.
        error: io::Error,
        /// What was done before it stopped.
        report: RedriveReport,
    },
}

/// A received message as a letter.
fn letter(message: Message) -> Letter {
    let attribute = |name: &str| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|a| a.get(&name))
            .map(String::as_str)
    };
    let body = message.body().unwrap_or_default().to_owned();
    let symbol = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("symbol")?.as_str().map(str::to_owned));
    Letter {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        reason: attribute("reason"),
        error_code: attribute("error_code"),
        source_message_id: attribute("source_message_id"),
        sent_at: system(MessageSystemAttributeName::SentTimestamp)
            .and_then(|ms| ms.parse().ok())
            .and_then(|ms| Timestamp::from_epoch_ms(ms).ok()),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        symbol,
        body,
        receipt: message.receipt_handle().unwrap_or_default().to_owned(),
    }
}
