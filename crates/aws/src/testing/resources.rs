//! Emulator resources for tests: fresh tables, queues and topics under unique names, sending and
//! draining messages, reading what arrived, and a log sink.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};

use crate::config::AwsClients;
use crate::{DynamoRuleStore, DynamoStore};

use super::unique_name;

/// A [`DynamoStore`] on a new alerts table and a new state table, both [`unique_name`]d and
/// created.
pub async fn fresh_store(dynamodb: &aws_sdk_dynamodb::Client) -> DynamoStore {
    let store = DynamoStore::new(
        dynamodb.clone(),
        unique_name("alerts"),
        unique_name("state"),
    );
    store.create_tables().await.expect("tables created");
    store
}

/// A [`DynamoRuleStore`] on a new, [`unique_name`]d and created rules table.
pub async fn fresh_rule_store(dynamodb: &aws_sdk_dynamodb::Client) -> DynamoRuleStore {
    let store = DynamoRuleStore::new(dynamodb.clone(), unique_name("rules"));
    store.create_table().await.expect("rules table created");
    store
}

/// Every item of a table (consistent reads, all pages).
pub async fn scan_items(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Scan {table}: {e:?}"));
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The string value of `message`'s attribute `name`, if it has one.
pub fn message_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}

/// An in-memory log sink: give clones to a `tracing` subscriber's writer, read [`LogSink::text`].
#[derive(Clone, Debug, Default)]
pub struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends each of `bodies` to the queue, one `SendMessage` each, in order.
pub async fn send_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str, bodies: &[String]) {
    for body in bodies {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }
}

/// The queue's (visible, in flight) message counts; `u64::MAX` for a count it did not report.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let count = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Creates a standard queue (with `attributes`) and returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value.clone());
    }
    let created = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"));
    created
        .queue_url()
        .unwrap_or_else(|| panic!("CreateQueue {name} returned no URL"))
        .to_owned()
}

/// The ARN of a queue.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {queue_url}: {e:?}"));
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("no ARN for {queue_url}"))
        .clone()
}

/// Creates a topic and returns its ARN.
pub async fn create_topic(sns: &aws_sdk_sns::Client, name: &str) -> String {
    sns.create_topic()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTopic {name}: {e:?}"))
        .topic_arn()
        .unwrap_or_else(|| panic!("CreateTopic {name} returned no ARN"))
        .to_owned()
}

/// Subscribes a queue to a topic; with `raw`, messages arrive without the SNS envelope.
pub async fn subscribe_queue(clients: &AwsClients, topic_arn: &str, queue_url: &str, raw: bool) {
    let arn = queue_arn(&clients.sqs, queue_url).await;
    let mut request = clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn);
    if raw {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("Subscribe {queue_url} to {topic_arn}: {e:?}"));
}

/// Receives and deletes messages until `expected` have arrived or a receive comes back empty after
/// `wait_s` seconds of long polling; returns them with their attributes.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    wait_s: i32,
) -> Vec<Message> {
    let mut messages = Vec::new();
    // Bounded: each round either gets messages or ends the loop.
    for _ in 0..=expected {
        let wait = if messages.len() >= expected {
            0
        } else {
            wait_s
        };
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage {queue_url}: {e:?}"));
        let batch = received.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for message in &batch {
            if let Some(receipt) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("DeleteMessage {queue_url}: {e:?}"));
            }
        }
        messages.extend(batch);
    }
    messages
}

/// How many times each alert id arrived, from announcement messages (raw delivery: each body is
/// an alert's JSON).
pub fn announced_copies(messages: &[Message]) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for message in messages {
        let alert: serde_json::Value =
            serde_json::from_str(message.body().expect("an announcement has a body"))
                .expect("an announcement is an alert's JSON");
        let id = alert["alert_id"]
            .as_str()
            .expect("an alert has an alert_id");
        *copies.entry(id.to_owned()).or_default() += 1;
    }
    copies
}
