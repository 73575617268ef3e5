//! The hostile-tick corpus (`testdata/hostile-ticks.json`) through the Lambda path.
//!
//! Every case that can travel as an SQS message goes through the handler as a record of an SQS
//! event, first with the in-memory ports (every case, in batches of 1, 10 and 25), then through
//! the real `bootstrap` under the Runtime API emulator against moto, with the bodies sent to and
//! received from a real queue and the rejections read back from a real dead-letter queue. Each
//! case must get exactly its expected outcome: an accepted tick is neither a batch item failure
//! nor dead-lettered; a rejected one is dead-lettered once, unchanged, with its error code and a
//! reason containing the expected text, and is not a batch item failure.
//!
//! The end-to-end run leaves `LOG_LEVEL` unset (the default, `info`) and gives the function
//! credentials with recognisable values, so it also checks that no body and no secret reaches
//! the logs.

// The end-to-end harness of `tests/e2e` is shared, not copied; this binary uses part of it.
#[allow(dead_code)]
#[path = "e2e/runtime_api.rs"]
mod runtime_api;
#[allow(dead_code)]
#[path = "e2e/stack.rs"]
mod stack;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Context, LambdaEvent};
use runtime_api::RuntimeApi;
use serde_json::{Value, json};
use stack::{ANSWER_WAIT, FUNCTION_TIMEOUT, Function, Stack, failed_ids};
use tickwatch_aws::DeadLetter;
use tickwatch_aws::testing::MemoryDeadLetterQueue;
use tickwatch_aws::testing::message_attribute;
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::testing::hostile::{self, Expect, HostileCase};
use tickwatch_core::testing::{ManualClock, MemoryNotifier, MemoryRig, MemoryStore, spec_config};
use tickwatch_core::{Mode, Timestamp};
use tickwatch_lambda::Handler;

const CORPUS: &str = include_str!("../../../testdata/hostile-ticks.json");

/// The handler's clock: a minute after the corpus's usual tick time.
const NOW_MS: i64 = 1_795_703_460_000;

/// The most bytes a message of the deployed tick queue can hold (the Terraform provider's
/// default `max_message_size`, which the module keeps). Larger bodies never reach the function.
const TICK_QUEUE_MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// Records per event in the end-to-end run (the module's default batch size is at most this).
const E2E_BATCH_SIZE: usize = 10;

/// Shortest body checked for in the logs; shorter ones (`{}`, `null`) occur in any JSON text.
const BODY_CHECKED_CHARS_MIN: usize = 16;

/// The cases that can travel as SQS messages, as text.
fn sqs_cases() -> Vec<(HostileCase, String)> {
    let cases: Vec<(HostileCase, String)> = hostile::parse(CORPUS)
        .expect("the corpus parses")
        .into_iter()
        .filter(HostileCase::fits_sqs)
        .map(|case| {
            let body = String::from_utf8(case.body.clone()).expect("fits_sqs implies UTF-8");
            (case, body)
        })
        .collect();
    assert!(cases.len() >= 40, "the corpus has enough SQS-sized cases");
    cases
}

fn message_id(index: usize) -> String {
    format!("hostile-{index:03}")
}

/// An SQS event as Lambda delivers it, one record per `(message id, body)`.
fn event(records: &[(String, &str)]) -> LambdaEvent<SqsEvent> {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("receipt-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tickwatch-ticks-test",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    // Through JSON, as the runtime does: the bodies are decoded from JSON strings first.
    let payload: SqsEvent =
        serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
    let mut context = Context::default();
    context.request_id = "hostile-corpus".into();
    context.deadline = (NOW_MS as u64) + 60_000;
    LambdaEvent::new(payload, context)
}

type MemoryHandler =
    Handler<Arc<MemoryStore>, Arc<MemoryNotifier>, Arc<ManualClock>, Arc<MemoryDeadLetterQueue>>;

fn memory_handler(mode: Mode) -> MemoryHandler {
    let config = spec_config(mode, RetryPolicy::new(3, 10, 100).expect("valid"), 11);
    let rig = MemoryRig::new(config, Timestamp::from_epoch_ms(NOW_MS).expect("valid"));
    Handler::new(
        rig.pipeline,
        Arc::new(MemoryDeadLetterQueue::new()),
        "tickwatch-hostile",
    )
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// What the function did with one message: its dead letters as (body, error code, reason).
struct Seen {
    failed: bool,
    letters: Vec<(String, String, String)>,
}

/// Checks every case against what was seen for its message id; panics naming each mismatch.
fn check_outcomes(cases: &[(&HostileCase, &str, String)], seen: &HashMap<String, Seen>) {
    let mut wrong = Vec::new();
    for (case, body, id) in cases {
        let empty = Seen {
            failed: false,
            letters: Vec::new(),
        };
        let seen = seen.get(id).unwrap_or(&empty);
        if seen.failed {
            wrong.push(format!("{}: reported as a batch item failure", case.name));
        }
        match &case.expect {
            Expect::Accept => {
                if !seen.letters.is_empty() {
                    wrong.push(format!(
                        "{}: accepted, but dead-lettered as {:?}",
                        case.name, seen.letters[0].1
                    ));
                }
            }
            Expect::Reject { code, contains } => match seen.letters.as_slice() {
                [(letter_body, letter_code, reason)] => {
                    if letter_body != body {
                        wrong.push(format!("{}: the dead letter's body changed", case.name));
                    }
                    if letter_code != code {
                        wrong.push(format!(
                            "{}: error_code {letter_code:?}, expected {code:?}",
                            case.name
                        ));
                    }
                    if !reason.contains(contains.as_str()) {
                        wrong.push(format!(
                            "{}: reason {reason:?} does not contain {contains:?}",
                            case.name
                        ));
                    }
                }
                letters => wrong.push(format!(
                    "{}: expected one dead letter ({code}), got {}",
                    case.name,
                    letters.len()
                )),
            },
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_sqs_sized_hostile_tick_gets_its_outcome_from_the_handler() {
    let cases = sqs_cases();
    // Alone, in SQS-receive-sized batches and in the module's largest default batch, in both
    // modes: a hostile neighbour must not change anybody's outcome.
    for mode in [Mode::Cross, Mode::Level] {
        for batch_size in [1, 10, 25] {
            let handler = memory_handler(mode);
            let records: Vec<(String, &str)> = cases
                .iter()
                .enumerate()
                .map(|(i, (_, body))| (message_id(i), body.as_str()))
                .collect();
            let mut seen: HashMap<String, Seen> = HashMap::new();
            for batch in records.chunks(batch_size) {
                let response = handler.handle(event(batch)).await.expect("answers");
                for id in failures(&response) {
                    seen.entry(id)
                        .or_insert(Seen {
                            failed: false,
                            letters: Vec::new(),
                        })
                        .failed = true;
                }
            }
            for letter in handler.dead_letters().letters() {
                let DeadLetter {
                    source_message_id,
                    body,
                    error,
                } = &letter;
                seen.entry(source_message_id.clone())
                    .or_insert(Seen {
                        failed: false,
                        letters: Vec::new(),
                    })
                    .letters
                    .push((body.clone(), error.code().to_owned(), letter.reason()));
            }
            let expected: Vec<(&HostileCase, &str, String)> = cases
                .iter()
                .enumerate()
                .map(|(i, (case, body))| (case, body.as_str(), message_id(i)))
                .collect();
            check_outcomes(&expected, &seen);

            let accepted = cases
                .iter()
                .filter(|(c, _)| c.expect == Expect::Accept)
                .count();
            let alerted = handler.pipeline().store().alerts();
            assert!(
                !alerted.is_empty() && alerted.iter().all(|a| a.notified),
                "{mode:?}/{batch_size}: the accepted high ticks raised alerts, all announced"
            );
            assert_eq!(
                handler.dead_letters().letters().len(),
                cases.len() - accepted,
                "{mode:?}/{batch_size}: one letter per rejected case"
            );
        }
    }
}

/// A value no real log line contains by chance.
fn marker(what: &str) -> String {
    format!("tickwatch-{what}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_function_gives_every_hostile_tick_its_outcome_and_logs_no_body_or_secret() {
    let cases: Vec<(HostileCase, String)> = sqs_cases()
        .into_iter()
        .filter(|(case, _)| case.body.len() <= TICK_QUEUE_MESSAGE_BYTES_MAX)
        .collect();
    let stack = Stack::create().await;
    let api = RuntimeApi::start().await;
    let mut env = stack.env();
    // The default log level, and credentials whose values would stand out in a log line (moto
    // accepts any).
    env.remove("LOG_LEVEL");
    let secrets = [
        ("AWS_ACCESS_KEY_ID", marker("access-key-id")),
        ("AWS_SECRET_ACCESS_KEY", marker("secret-access-key")),
        ("AWS_SESSION_TOKEN", marker("session-token")),
    ];
    for (name, value) in &secrets {
        env.insert(name, value.clone());
    }
    let function = Function::start(&api, &env);

    let bodies: Vec<String> = cases.iter().map(|(_, body)| body.clone()).collect();
    stack.send(&bodies).await;
    let messages = stack.receive(bodies.len()).await;
    let case_of_body: HashMap<&str, usize> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    assert_eq!(case_of_body.len(), bodies.len(), "bodies are distinct");

    let mut seen: HashMap<String, Seen> = HashMap::new();
    for batch in messages.chunks(E2E_BATCH_SIZE) {
        let answer = api
            .invoke(stack.event(batch), FUNCTION_TIMEOUT, ANSWER_WAIT)
            .await;
        let failed = failed_ids(&answer);
        for id in &failed {
            seen.insert(
                id.clone(),
                Seen {
                    failed: true,
                    letters: Vec::new(),
                },
            );
        }
        stack.settle(batch, &failed).await;
    }
    let rejected = cases
        .iter()
        .filter(|(c, _)| c.expect != Expect::Accept)
        .count();
    for letter in stack.dead_letters(rejected).await {
        let source = message_attribute(&letter, "source_message_id").expect("source_message_id");
        seen.entry(source)
            .or_insert(Seen {
                failed: false,
                letters: Vec::new(),
            })
            .letters
            .push((
                letter.body().unwrap_or_default().to_owned(),
                message_attribute(&letter, "error_code").unwrap_or_default(),
                message_attribute(&letter, "reason").unwrap_or_default(),
            ));
    }
    let expected: Vec<(&HostileCase, &str, String)> = messages
        .iter()
        .map(|m| {
            let body = m.body().expect("body");
            let index = *case_of_body
                .get(body)
                .expect("SQS returns the bodies unchanged");
            (
                &cases[index].0,
                cases[index].1.as_str(),
                m.message_id().expect("id").to_owned(),
            )
        })
        .collect();
    check_outcomes(&expected, &seen);

    // The logs: JSON lines, none quoting a body (as is, or escaped inside a JSON string) or a
    // credential.
    let lines = function.lines();
    assert!(
        lines.iter().any(|l| l.contains("Tick rejected")),
        "the rejections were logged (at warn): {lines:#?}"
    );
    let mut leaks = Vec::new();
    for line in &lines {
        for (name, value) in &secrets {
            if line.contains(value.as_str()) {
                leaks.push(format!("{name} in {line}"));
            }
        }
        for (case, body) in &cases {
            if body.chars().count() < BODY_CHECKED_CHARS_MIN {
                continue;
            }
            let escaped = serde_json::to_string(body).expect("a string");
            let escaped = &escaped[1..escaped.len() - 1];
            if line.contains(body.as_str()) || line.contains(escaped) {
                leaks.push(format!("the body of {:?} in {line}", case.name));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "logged at the default level:\n{}",
        leaks.join("\n")
    );
}
