//! The deployed-stack smoke test: sends real ticks to a deployed tickwatch and checks, through the
//! AWS APIs, that they came out where they should.
//!
//! It reads the deployment from `cfn-outputs/flat-outputs.json` (the flat key/value file written
//! from `terraform output`), then:
//! 1. checks the queue, the dead-letter queue, both tables and the topic exist;
//! 2. subscribes a temporary queue to the topic (raw delivery);
//! 3. sends a high, a low, a normal and a malformed tick, for symbols unique to this run;
//! 4. lets the consumer run, if the caller brings one (against an emulator, where no Lambda
//!    function runs, the caller drives the SQS worker; on AWS the function consumes by itself);
//! 5. polls, within a deadline, until: the high and low alerts are in the alerts table and marked
//!    notified, both arrived on the subscribed queue with their attributes, no alert exists for
//!    the normal tick, and the malformed tick is in the dead-letter queue with its reason;
//! 6. cleans up: the subscription, the temporary queue, this run's alerts and symbol states, and
//!    its dead-letter message.
//!
//! Every check is reported, passed or not; the caller decides the exit code.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Deserialize;
use tickwatch_aws::{AwsClients, AwsError, DynamoStore, SnsNotifier};
use tickwatch_core::ports::AlertStore;
use tickwatch_core::{AlertKey, AlertKind, Symbol, Timestamp};

/// Longest long-poll wait of one receive while polling for results, in seconds.
const POLL_WAIT_S: i32 = 2;

/// The deployment under test: what the smoke test needs from the flat outputs file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(super) struct Deployment {
    /// The tick queue.
    pub(super) queue_url: String,
    /// The dead-letter queue.
    pub(super) dead_letter_queue_url: String,
    /// The alerts table.
    pub(super) alerts_table_name: String,
    /// The symbol state table.
    pub(super) state_table_name: String,
    /// The alerts topic.
    pub(super) alerts_topic_arn: String,
    /// The region the stack is deployed in (the example root's `aws_region` output). The smoke
    /// test talks to that region whatever the environment's default region is.
    #[serde(default)]
    pub(super) aws_region: Option<String>,
}

/// Why the smoke test could not run at all (as opposed to a failed check).
#[derive(Debug, thiserror::Error)]
pub(super) enum SmokeError {
    /// The outputs file lacks a key or is not flat JSON.
    #[error("flat outputs: {0}")]
    Outputs(String),
    /// Setting up the temporary subscriber failed.
    #[error("setting up: {0}")]
    Setup(#[from] AwsError),
}

impl Deployment {
    /// Reads the flat outputs JSON (`{"queue_url": "...", ...}`; other keys are ignored).
    pub(super) fn from_flat_outputs(json: &str) -> Result<Deployment, SmokeError> {
        serde_json::from_str(json).map_err(|e| SmokeError::Outputs(e.to_string()))
    }
}

/// One check and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Check {
    /// What was checked.
    pub(super) name: String,
    /// Whether it held.
    pub(super) passed: bool,
    /// What was seen.
    pub(super) detail: String,
}

/// Every check of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SmokeReport {
    /// In the order they were made.
    pub(super) checks: Vec<Check>,
}

impl SmokeReport {
    /// Whether every check passed.
    pub(super) fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail: detail.into(),
        });
    }
}

/// The ticks of one run.
struct Probe {
    high: AlertKey,
    low: AlertKey,
    normal: AlertKey,
    marker: String,
}

impl Probe {
    fn new(run_id: &str, now: Timestamp) -> Probe {
        let symbol = |suffix: &str| {
            Symbol::parse(&format!("SMOKE-{run_id}-{suffix}")).expect("smoke symbols are valid")
        };
        // The default rules of a fresh deployment (its rules table not written yet).
        let rule =
            |id: &str| tickwatch_core::RuleId::parse(id).expect("the default rule ids are valid");
        Probe {
            high: AlertKey {
                symbol: symbol("H"),
                at: now,
                rule: rule("high"),
            },
            low: AlertKey {
                symbol: symbol("L"),
                at: now,
                rule: rule("low"),
            },
            normal: AlertKey {
                symbol: symbol("N"),
                at: now,
                rule: rule("high"),
            },
            marker: format!("smoke-{run_id}"),
        }
    }

    fn bodies(&self) -> Vec<String> {
        let tick = |key: &AlertKey, price: &str| {
            format!(
                r#"{{"symbol":"{}","price":{price},"timestamp":"{}","smoke":"{}"}}"#,
                key.symbol, key.at, self.marker
            )
        };
        vec![
            tick(&self.high, "151.25"),
            tick(&self.low, "49.5"),
            tick(&self.normal, "100"),
            tick(&self.normal, r#""not a number""#),
        ]
    }
}

/// Runs the smoke test against `deployment`. `run_id` makes this run's symbols unique (letters,
/// digits and `-`); `now` is the tick time; `consume` runs after the ticks are sent (pass a
/// ready future when the deployment consumes by itself).
pub(super) async fn run<F>(
    clients: &AwsClients,
    deployment: &Deployment,
    run_id: &str,
    now: Timestamp,
    timeout: Duration,
    consume: F,
) -> Result<SmokeReport, SmokeError>
where
    F: Future<Output = Result<(), String>>,
{
    let mut report = SmokeReport::default();
    let store = DynamoStore::new(
        clients.dynamodb.clone(),
        &deployment.alerts_table_name,
        &deployment.state_table_name,
    );
    let notifier = SnsNotifier::new(clients.sns.clone(), &deployment.alerts_topic_arn);
    let (tables, topic, queue, dead_letter_queue) = futures_util::join!(
        store.check_tables(),
        notifier.check_topic(),
        queue_exists(clients, &deployment.queue_url),
        queue_exists(clients, &deployment.dead_letter_queue_url),
    );
    for (name, result) in [
        ("alerts and state tables exist", tables),
        ("alerts topic exists", topic),
        ("tick queue exists", queue),
        ("dead-letter queue exists", dead_letter_queue),
    ] {
        let detail = result
            .as_ref()
            .map_or_else(ToString::to_string, |()| "ok".into());
        report.check(name, result.is_ok(), detail);
    }
    if !report.passed() {
        return Ok(report);
    }

    let probe = Probe::new(run_id, now);
    let subscriber = Subscriber::create(clients, deployment, run_id).await?;
    let outcome = exercise(
        clients,
        deployment,
        &store,
        &subscriber,
        &probe,
        timeout,
        consume,
        &mut report,
    )
    .await;
    let cleanup = cleanup(clients, &store, &probe, &subscriber).await;
    report.check(
        "clean up",
        cleanup.is_ok(),
        cleanup.err().map_or_else(|| "ok".into(), |e| e.to_string()),
    );
    outcome.map(|()| report)
}

#[allow(clippy::too_many_arguments)] // One call site; grouping these would only rename them.
async fn exercise<F>(
    clients: &AwsClients,
    deployment: &Deployment,
    store: &DynamoStore,
    subscriber: &Subscriber,
    probe: &Probe,
    timeout: Duration,
    consume: F,
    report: &mut SmokeReport,
) -> Result<(), SmokeError>
where
    F: Future<Output = Result<(), String>>,
{
    for body in probe.bodies() {
        clients
            .sqs
            .send_message()
            .queue_url(&deployment.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendMessage", &e))?;
    }
    let consumed = consume.await;
    report.check(
        "ticks consumed",
        consumed.is_ok(),
        consumed.err().unwrap_or_else(|| "ok".into()),
    );

    let started = Instant::now();
    let expected_alerts = [probe.high, probe.low];
    let mut announced: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut dead_letter: Option<BTreeMap<String, String>> = None;
    let mut stored_ok = false;
    let mut stored_detail = String::from("not polled");
    // Bounded by the timeout; each round long-polls the two queues and reads the table.
    while started.elapsed() < timeout {
        let fetched = store.fetch(&expected_alerts).await;
        let notified = fetched
            .iter()
            .filter(|r| matches!(r, Ok(Some(s)) if s.notified))
            .count();
        stored_ok = notified == expected_alerts.len();
        stored_detail = format!(
            "{notified} of {} alerts stored and marked notified",
            expected_alerts.len()
        );
        for message in receive(clients, &subscriber.queue_url).await? {
            let id = message
                .attributes
                .get("alert_id")
                .cloned()
                .unwrap_or_default();
            announced.insert(id, message.attributes);
        }
        if dead_letter.is_none() {
            for message in receive(clients, &deployment.dead_letter_queue_url).await? {
                if message.body.contains(&probe.marker) {
                    delete(clients, &deployment.dead_letter_queue_url, &message.receipt).await?;
                    dead_letter = Some(message.attributes);
                }
            }
        }
        let all_announced = expected_alerts
            .iter()
            .all(|k| announced.contains_key(&k.id().to_string()));
        if stored_ok && all_announced && dead_letter.is_some() {
            break;
        }
    }
    report.check(
        "high and low alerts stored and marked notified",
        stored_ok,
        stored_detail,
    );
    for key in expected_alerts {
        let kind = if key.rule.as_str() == "high" {
            AlertKind::High
        } else {
            AlertKind::Low
        };
        let name = format!("{kind} alert announced on the topic with its attributes");
        match announced.get(&key.id().to_string()) {
            Some(attributes) => {
                let good = attributes.get("symbol").map(String::as_str)
                    == Some(key.symbol.as_str())
                    && attributes.get("kind").map(String::as_str) == Some(kind.as_str())
                    && attributes.get("rule_id").map(String::as_str) == Some(key.rule.as_str());
                report.check(&name, good, format!("attributes {attributes:?}"));
            }
            None => report.check(&name, false, "not received"),
        }
    }
    let normal = store.fetch(&[probe.normal]).await;
    let quiet = matches!(normal.first(), Some(Ok(None)));
    report.check("no alert for the normal tick", quiet, format!("{normal:?}"));
    match dead_letter {
        Some(attributes) => {
            let code = attributes.get("error_code").cloned().unwrap_or_default();
            let reason = attributes.get("reason").cloned().unwrap_or_default();
            report.check(
                "malformed tick dead-lettered with its reason",
                code == "price.invalid" && reason.starts_with("price:"),
                format!("error_code {code:?}, reason {reason:?}"),
            );
        }
        None => report.check(
            "malformed tick dead-lettered with its reason",
            false,
            "not found in the dead-letter queue",
        ),
    }
    Ok(())
}

async fn queue_exists(clients: &AwsClients, queue_url: &str) -> Result<(), AwsError> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetQueueAttributes", &e))?;
    Ok(())
}

/// A temporary queue subscribed to the alerts topic.
struct Subscriber {
    queue_url: String,
    subscription_arn: Option<String>,
}

impl Subscriber {
    async fn create(
        clients: &AwsClients,
        deployment: &Deployment,
        run_id: &str,
    ) -> Result<Subscriber, AwsError> {
        let name = format!("tickwatch-smoke-{run_id}");
        let queue_url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateQueue", &e))?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        let queue_arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueAttributes", &e))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        // Only this topic may send to the queue.
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": deployment.alerts_topic_arn}}
            }]
        });
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SetQueueAttributes", &e))?;
        let subscription_arn = clients
            .sns
            .subscribe()
            .topic_arn(&deployment.alerts_topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Subscribe", &e))?
            .subscription_arn()
            .map(str::to_owned);
        Ok(Subscriber {
            queue_url,
            subscription_arn,
        })
    }
}

/// A received message: body, receipt handle and string attributes.
struct Received {
    body: String,
    receipt: String,
    attributes: BTreeMap<String, String>,
}

async fn receive(clients: &AwsClients, queue_url: &str) -> Result<Vec<Received>, AwsError> {
    let output = clients
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(POLL_WAIT_S)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ReceiveMessage", &e))?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| Received {
            body: m.body.unwrap_or_default(),
            receipt: m.receipt_handle.unwrap_or_default(),
            attributes: m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                .collect(),
        })
        .collect())
}

async fn delete(clients: &AwsClients, queue_url: &str, receipt: &str) -> Result<(), AwsError> {
    clients
        .sqs
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DeleteMessage", &e))?;
    Ok(())
}

/// Removes everything this run created. Tries every step and reports the first failure.
async fn cleanup(
    clients: &AwsClients,
    store: &DynamoStore,
    probe: &Probe,
    subscriber: &Subscriber,
) -> Result<(), AwsError> {
    let mut first_error = None;
    let mut note = |result: Result<(), AwsError>| {
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    };
    if let Some(arn) = &subscriber.subscription_arn {
        note(
            clients
                .sns
                .unsubscribe()
                .subscription_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("Unsubscribe", &e)),
        );
    }
    note(
        clients
            .sqs
            .delete_queue()
            .queue_url(&subscriber.queue_url)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteQueue", &e)),
    );
    for key in [probe.high, probe.low, probe.normal] {
        note(store.delete_alert(&key).await);
        note(store.delete_state(&key.symbol).await);
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_outputs_are_read_and_extra_keys_ignored() {
        let json = r#"{"queue_url":"q","dead_letter_queue_url":"d","alerts_table_name":"a","state_table_name":"s","alerts_topic_arn":"t","function_name":"f","alarm_names":"x,y"}"#;
        let deployment = Deployment::from_flat_outputs(json).expect("valid");
        assert_eq!(deployment.alerts_topic_arn, "t");
        assert_eq!(
            deployment.aws_region, None,
            "an older outputs file has no region"
        );
        let with_region = json.replace('{', r#"{"aws_region":"eu-west-1","#);
        let deployment = Deployment::from_flat_outputs(&with_region).expect("valid");
        assert_eq!(deployment.aws_region.as_deref(), Some("eu-west-1"));
        let missing =
            Deployment::from_flat_outputs(r#"{"queue_url":"q"}"#).expect_err("incomplete");
        assert!(missing.to_string().contains("missing field"), "{missing}");
    }

    #[test]
    fn probe_ticks_cover_every_outcome() {
        let now = Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid");
        let probe = Probe::new("r1", now);
        let outcomes: Vec<Result<f64, String>> = probe
            .bodies()
            .iter()
            .map(|b| {
                tickwatch_core::Tick::decode(b.as_bytes())
                    .map(|t| t.price.get())
                    .map_err(|e| e.code().to_owned())
            })
            .collect();
        assert_eq!(
            outcomes,
            [Ok(151.25), Ok(49.5), Ok(100.0), Err("price.invalid".into())]
        );
        assert!(probe.bodies().iter().all(|b| b.contains("smoke-r1")));
    }

    #[test]
    fn a_report_passes_only_when_every_check_does() {
        let mut report = SmokeReport::default();
        assert!(!report.passed(), "no checks is not a pass");
        report.check("a", true, "ok");
        assert!(report.passed());
        report.check("b", false, "no");
        assert!(!report.passed());
    }
}
