//! The dead-letter tools against the emulator: letters written by the function's own dead-letter
//! sender are listed and filtered by reason, symbol and time, given back untouched, and redriven
//! to the tick queue exactly once, also when a redrive is interrupted between send and delete.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::Message;
use tickwatch_aws::redrive::{DeadLetters, Filter, Journal, REDRIVEN_FROM_ATTRIBUTE};
use tickwatch_aws::testing::{
    Fault, FaultProxy, Moto, Service, create_queue, drain_queue, message_attribute, queue_counts,
    unique_name,
};
use tickwatch_aws::{AwsClients, DeadLetter, DeadLetterQueue, SqsDeadLetterQueue};
use tickwatch_core::{Tick, TickError, Timestamp};

/// A short hold, so letters a test does not give back come back by themselves quickly.
const HOLD_S: i32 = 1;

struct Queues {
    clients: AwsClients,
    dlq: String,
    ticks: String,
}

async fn queues(clients: AwsClients) -> Queues {
    let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
    let ticks = create_queue(&clients.sqs, &unique_name("ticks"), &[]).await;
    Queues {
        clients,
        dlq,
        ticks,
    }
}

/// Dead-letters `bodies` through the function's own sender; returns their rejection codes.
async fn dead_letter(q: &Queues, bodies: &[String]) -> Vec<&'static str> {
    let letters: Vec<DeadLetter> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| DeadLetter {
            source_message_id: format!("source-{i}"),
            body: body.clone(),
            error: rejection(body),
        })
        .collect();
    let sender = SqsDeadLetterQueue::new(q.clients.sqs.clone(), &q.dlq);
    for result in sender.send(&letters).await {
        result.expect("dead-lettered");
    }
    letters.iter().map(|l| l.error.code()).collect()
}

fn rejection(body: &str) -> TickError {
    Tick::decode(body.as_bytes()).expect_err("every test letter is an invalid tick")
}

/// Bad prices for AAPL and MSFT, and a few bodies that are not JSON at all.
fn bodies() -> Vec<String> {
    let mut bodies = Vec::new();
    for i in 0..6 {
        let symbol = if i % 2 == 0 { "AAPL" } else { "MSFT" };
        bodies.push(format!(
            r#"{{"symbol":"{symbol}","price":-{i},"timestamp":1795703400000}}"#
        ));
    }
    for i in 0..3 {
        bodies.push(format!("not json {i}"));
    }
    bodies
}

fn redriven_from(messages: &[Message]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in messages {
        let from = message_attribute(message, REDRIVEN_FROM_ATTRIBUTE).expect("redriven_from");
        *counts.entry(from).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn letters_are_listed_by_reason_symbol_and_time_and_given_back() {
    let q = queues(Moto::shared().clients().await).await;
    let bodies = bodies();
    let codes = dead_letter(&q, &bodies).await;
    let dlq = DeadLetters::new(q.clients.sqs.clone(), &q.dlq).with_hold_s(HOLD_S);

    let all = dlq.collect(&Filter::default(), 100).await.expect("collect");
    assert_eq!(all.letters.len(), bodies.len());
    assert!(!all.more);
    let first = &all.letters[0];
    assert!(first.reason.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(
        first
            .source_message_id
            .as_deref()
            .is_some_and(|s| s.starts_with("source-"))
    );
    assert!(first.sent_at.is_some());
    dlq.release(&all.letters).await.expect("release");
    assert_eq!(
        queue_counts(&q.clients.sqs, &q.dlq).await,
        (bodies.len() as u64, 0),
        "listing gives every letter back at once"
    );

    let price_code = codes[0].to_owned();
    let by_reason = Filter {
        reason: Some(price_code.clone()),
        ..Filter::default()
    };
    let found = dlq.collect(&by_reason, 100).await.expect("collect");
    assert_eq!(found.letters.len(), 6, "{price_code}");
    assert!(
        found
            .letters
            .iter()
            .all(|l| l.error_code.as_deref() == Some(price_code.as_str()))
    );
    dlq.release(&found.letters).await.expect("release");

    let by_symbol = Filter {
        symbol: Some("MSFT".into()),
        ..Filter::default()
    };
    let found = dlq.collect(&by_symbol, 2).await.expect("collect");
    assert_eq!(found.letters.len(), 2, "the limit holds");
    assert!(found.more, "and says more may match");
    assert!(
        found
            .letters
            .iter()
            .all(|l| l.symbol.as_deref() == Some("MSFT"))
    );
    dlq.release(&found.letters).await.expect("release");

    let future = Filter {
        since: Some(Timestamp::from_epoch_ms(4_000_000_000_000).expect("valid")),
        ..Filter::default()
    };
    assert!(
        dlq.collect(&future, 100)
            .await
            .expect("collect")
            .letters
            .is_empty()
    );
    assert_eq!(
        queue_counts(&q.clients.sqs, &q.dlq).await,
        (bodies.len() as u64, 0),
        "nothing was lost or moved by looking"
    );
}

#[tokio::test]
async fn a_filtered_redrive_moves_exactly_the_chosen_letters() {
    let q = queues(Moto::shared().clients().await).await;
    let bodies = bodies();
    dead_letter(&q, &bodies).await;
    let dlq = DeadLetters::new(q.clients.sqs.clone(), &q.dlq).with_hold_s(HOLD_S);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut journal = Journal::open(&dir.path().join("journal")).expect("journal");

    let aapl = Filter {
        symbol: Some("AAPL".into()),
        ..Filter::default()
    };
    let chosen = dlq.collect(&aapl, 100).await.expect("collect");
    let ids: Vec<String> = chosen
        .letters
        .iter()
        .map(|l| l.message_id.clone())
        .collect();
    assert_eq!(ids.len(), 3);
    let report = dlq
        .redrive(&q.ticks, chosen.letters, &mut journal)
        .await
        .expect("redrive");
    assert_eq!(
        (report.moved, report.left, report.sent_delete_pending),
        (3, 0, 0)
    );

    let moved = drain_queue(&q.clients.sqs, &q.ticks, 3, 1).await;
    assert_eq!(moved.len(), 3);
    assert!(
        moved
            .iter()
            .all(|m| m.body().is_some_and(|b| b.contains("AAPL")))
    );
    assert_eq!(
        redriven_from(&moved).into_keys().collect::<Vec<_>>(),
        {
            let mut sorted = ids.clone();
            sorted.sort();
            sorted
        },
        "each moved tick names the letter it came from"
    );
    assert_eq!(
        queue_counts(&q.clients.sqs, &q.dlq).await,
        (bodies.len() as u64 - 3, 0),
        "the other letters stay"
    );
}

#[tokio::test]
async fn an_interrupted_redrive_is_completed_by_the_next_without_sending_twice() {
    let moto = Moto::shared();
    let proxy = FaultProxy::in_front_of(moto).await;
    let q = queues(proxy.clients().await).await;
    let bodies = bodies();
    dead_letter(&q, &bodies).await;
    let dlq = DeadLetters::new(q.clients.sqs.clone(), &q.dlq).with_hold_s(HOLD_S);
    let dir = tempfile::tempdir().expect("temp dir");
    let journal_path = dir.path().join("journal");

    // The first run sends everything, then its first delete fails: as if it died between the two.
    proxy.inject(
        Service::Sqs,
        Some("DeleteMessageBatch"),
        Fault::INTERNAL_ERROR,
        1,
    );
    let mut journal = Journal::open(&journal_path).expect("journal");
    let chosen = dlq.collect(&Filter::default(), 100).await.expect("collect");
    let first = dlq
        .redrive(&q.ticks, chosen.letters, &mut journal)
        .await
        .expect("redrive");
    assert_eq!(proxy.faults_pending(), 0, "the delete fault was used");
    assert_eq!(first.left, 0);
    // Nine letters are one batch, so the one failed delete leaves all of them pending.
    assert_eq!(first.sent_delete_pending, bodies.len(), "{first:?}");
    drop(journal);

    // The undeleted letters come back after the hold; a new run with the same journal deletes
    // them without sending them again.
    tokio::time::sleep(std::time::Duration::from_millis(
        HOLD_S as u64 * 1_000 + 500,
    ))
    .await;
    let mut journal = Journal::open(&journal_path).expect("journal");
    let again = dlq.collect(&Filter::default(), 100).await.expect("collect");
    assert_eq!(again.letters.len(), first.sent_delete_pending);
    let second = dlq
        .redrive(&q.ticks, again.letters, &mut journal)
        .await
        .expect("redrive");
    assert_eq!(
        (second.moved, second.completed_from_journal, second.left),
        (first.sent_delete_pending, first.sent_delete_pending, 0)
    );

    let moved = drain_queue(&q.clients.sqs, &q.ticks, bodies.len(), 1).await;
    let copies = redriven_from(&moved);
    assert_eq!(copies.len(), bodies.len(), "every letter moved");
    assert!(copies.values().all(|&n| n == 1), "none twice: {copies:?}");
    assert_eq!(
        queue_counts(&q.clients.sqs, &q.dlq).await,
        (0, 0),
        "none left"
    );
}

/// The journal's disk is full: the redrive stops, and nothing it sent stays behind in the
/// dead-letter queue (it would be sent again by the next run), nothing unsent is lost.
#[tokio::test]
async fn a_journal_that_cannot_be_written_stops_the_redrive_without_a_double() {
    let q = queues(Moto::shared().clients().await).await;
    let bodies = bodies();
    dead_letter(&q, &bodies).await;
    let dlq = DeadLetters::new(q.clients.sqs.clone(), &q.dlq).with_hold_s(HOLD_S);
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = tickwatch_local::testing::Tmpfs::mount(&dir.path().join("disk"), 64);
    let mut journal = Journal::open(&disk.path().join("journal")).expect("journal");
    // Fill the disk: the journal's first line cannot be written.
    let _ = std::fs::write(disk.path().join("filler"), vec![0u8; 128 * 1024]);

    let chosen = dlq.collect(&Filter::default(), 100).await.expect("collect");
    let error = dlq
        .redrive(&q.ticks, chosen.letters, &mut journal)
        .await
        .expect_err("the journal is full");
    let tickwatch_aws::redrive::RedriveError::Journal { report, .. } = error;
    assert_eq!(report.left, 0, "one batch of nine: all were sent");
    assert_eq!(
        report.moved,
        bodies.len(),
        "what was sent was deleted: {report:?}"
    );
    assert_eq!(queue_counts(&q.clients.sqs, &q.dlq).await, (0, 0));
    let moved = drain_queue(&q.clients.sqs, &q.ticks, bodies.len(), 1).await;
    assert!(redriven_from(&moved).values().all(|&n| n == 1));
    assert_eq!(moved.len(), bodies.len());
}
