//! One test's AWS resources on the shared moto server (tables, topic with a subscribed queue, tick
//! queue, dead-letter queue), the `bootstrap` process, and an "event source mapping" that turns
//! messages received from the tick queue into SQS events and settles them afterwards.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use tickwatch_aws::AwsClients;
use tickwatch_aws::testing::{
    Moto, REGION, create_queue, create_topic, drain_queue, fresh_store, queue_arn, send_bodies,
    subscribe_queue, unique_name,
};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::runtime_api::{Answer, RuntimeApi};

/// Lambda's timeout for every invocation of these tests.
pub(crate) const FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for an answer from the function.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The resources of one test.
pub(crate) struct Stack {
    pub(crate) clients: AwsClients,
    pub(crate) alerts_table: String,
    pub(crate) state_table: String,
    pub(crate) topic_name: String,
    pub(crate) topic_arn: String,
    pub(crate) subscriber_url: String,
    pub(crate) ticks_url: String,
    pub(crate) ticks_arn: String,
    pub(crate) dlq_url: String,
}

impl Stack {
    pub(crate) async fn create() -> Stack {
        let clients = Moto::shared().clients().await;
        let store = fresh_store(&clients.dynamodb).await;
        let topic_name = unique_name("alerts");
        let topic_arn = create_topic(&clients.sns, &topic_name).await;
        let subscriber_url = create_queue(&clients.sqs, &unique_name("subscriber"), &[]).await;
        subscribe_queue(&clients, &topic_arn, &subscriber_url, true).await;
        let ticks_url = create_queue(&clients.sqs, &unique_name("ticks"), &[]).await;
        let ticks_arn = queue_arn(&clients.sqs, &ticks_url).await;
        let dlq_url = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
        Stack {
            alerts_table: store.alerts_table().to_owned(),
            state_table: store.state_table().to_owned(),
            clients,
            topic_name,
            topic_arn,
            subscriber_url,
            ticks_url,
            ticks_arn,
            dlq_url,
        }
    }

    /// The function's environment: moto for every service, this stack's resources.
    pub(crate) fn env(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("AWS_ENDPOINT_URL", Moto::shared().endpoint().to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", "tickwatch-e2e".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "e2e".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/tickwatch-e2e".to_owned(),
            ),
            ("ALERTS_TABLE_NAME", self.alerts_table.clone()),
            ("STATE_TABLE_NAME", self.state_table.clone()),
            ("ALERTS_TOPIC_ARN", self.topic_arn.clone()),
            ("DEAD_LETTER_QUEUE_URL", self.dlq_url.clone()),
            ("LOG_LEVEL", "debug".to_owned()),
        ])
    }

    /// Sends tick bodies to the tick queue.
    pub(crate) async fn send(&self, bodies: &[String]) {
        send_bodies(&self.clients.sqs, &self.ticks_url, bodies).await;
    }

    /// Receives up to `count` messages from the tick queue (as the event source mapping would).
    pub(crate) async fn receive(&self, count: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        for _ in 0..count.div_ceil(10) + 2 {
            if messages.len() >= count {
                break;
            }
            let received = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.ticks_url)
                .max_number_of_messages(((count - messages.len()).min(10)) as i32)
                .wait_time_seconds(1)
                .visibility_timeout(300)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage");
            messages.extend(received.messages.unwrap_or_default());
        }
        assert_eq!(
            messages.len(),
            count,
            "messages received from the tick queue"
        );
        messages
    }

    /// The SQS event Lambda would build from `messages`.
    pub(crate) fn event(&self, messages: &[Message]) -> String {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.ticks_arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        json!({ "Records": records }).to_string()
    }

    /// Settles a delivered batch like the event source mapping: deletes what succeeded and makes
    /// the failures visible again at once (instead of after the visibility timeout).
    pub(crate) async fn settle(&self, messages: &[Message], failed: &[String]) {
        for message in messages {
            let receipt = message.receipt_handle().expect("receipt handle");
            let id = message.message_id().expect("message id");
            if failed.iter().any(|f| f == id) {
                self.clients
                    .sqs
                    .change_message_visibility()
                    .queue_url(&self.ticks_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("ChangeMessageVisibility");
            } else {
                self.clients
                    .sqs
                    .delete_message()
                    .queue_url(&self.ticks_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }

    /// Every notification delivered to the subscriber queue so far (and removes them).
    pub(crate) async fn notifications(&self, expected: usize) -> Vec<Message> {
        drain_queue(&self.clients.sqs, &self.subscriber_url, expected, 1).await
    }

    /// Every dead letter so far (and removes them).
    pub(crate) async fn dead_letters(&self, expected: usize) -> Vec<Message> {
        drain_queue(&self.clients.sqs, &self.dlq_url, expected, 1).await
    }

    /// Every item of the alerts table.
    pub(crate) async fn alert_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let scanned = self
            .clients
            .dynamodb
            .scan()
            .table_name(&self.alerts_table)
            .send()
            .await
            .expect("Scan");
        scanned.items.unwrap_or_default()
    }

    /// The state item of `symbol`.
    pub(crate) async fn state_item(&self, symbol: &str) -> Option<HashMap<String, AttributeValue>> {
        self.clients
            .dynamodb
            .get_item()
            .table_name(&self.state_table)
            .key("symbol", AttributeValue::S(symbol.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }
}

/// A running `bootstrap`, killed when dropped, its stdout collected.
pub(crate) struct Function {
    pub(crate) child: Child,
    pub(crate) stdout: Arc<Mutex<Vec<String>>>,
}

impl Function {
    /// Starts `bootstrap` against `api` with exactly `env` (nothing inherited but `PATH`).
    ///
    /// The binary is the one cargo built, unless `TICKWATCH_BOOTSTRAP` names another executable:
    /// `scripts/test-package` sets it to run the packaged arm64 `bootstrap` under `qemu-aarch64`.
    pub(crate) fn start(api: &RuntimeApi, env: &HashMap<&'static str, String>) -> Function {
        let binary = std::env::var_os("TICKWATCH_BOOTSTRAP")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_bootstrap").into());
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Under `cargo llvm-cov`, keep the coverage profile where the tool collects it.
        if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
            command.env("LLVM_PROFILE_FILE", profile);
        }
        let mut child = command.spawn().expect("bootstrap starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stdout.take().expect("stdout piped");
        let lines = stdout.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        Function { child, stdout }
    }

    /// Stdout lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The failed message ids of a batch response.
pub(crate) fn failed_ids(answer: &Answer) -> Vec<String> {
    let Answer::Response(body) = answer else {
        panic!("the function answered with an error: {answer:?}");
    };
    let response: Value = serde_json::from_str(body).expect("response JSON");
    response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_owned()
        })
        .collect()
}
