//! `tickwatch dlq` against the emulator, as an operator runs it: letters the function's own
//! dead-letter sender wrote are listed with their reason, filtered, shown, and redriven only when
//! confirmed.

use tickwatch_aws::testing::{Moto, create_queue, queue_counts, unique_name};
use tickwatch_aws::{DeadLetter, DeadLetterQueue, SqsDeadLetterQueue};
use tickwatch_core::Tick;

use crate::support::Dir;

struct Stack {
    moto: &'static Moto,
    dlq: String,
    ticks: String,
    runtime: tokio::runtime::Runtime,
}

impl Stack {
    /// A dead-letter queue holding two bad AAPL prices and one malformed body, and a tick queue.
    fn new() -> Stack {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let moto = Moto::shared();
        let (dlq, ticks) = runtime.block_on(async {
            let clients = moto.clients().await;
            let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
            let ticks = create_queue(&clients.sqs, &unique_name("ticks"), &[]).await;
            let bodies = [
                r#"{"symbol":"AAPL","price":-1,"timestamp":1795703400000}"#,
                r#"{"symbol":"AAPL","price":-2,"timestamp":1795703401000}"#,
                "\u{1b}[31mnot json",
            ];
            let letters: Vec<DeadLetter> = bodies
                .iter()
                .enumerate()
                .map(|(i, body)| DeadLetter {
                    source_message_id: format!("m{i}"),
                    body: (*body).to_owned(),
                    error: Tick::decode(body.as_bytes()).expect_err("invalid"),
                })
                .collect();
            let sender = SqsDeadLetterQueue::new(clients.sqs.clone(), &dlq);
            for sent in sender.send(&letters).await {
                sent.expect("dead-lettered");
            }
            (dlq, ticks)
        });
        Stack {
            moto,
            dlq,
            ticks,
            runtime,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto.endpoint().to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("DEAD_LETTER_QUEUE_URL", self.dlq.clone()),
            ("TICKS_QUEUE_URL", self.ticks.clone()),
        ]
    }

    fn counts(&self, queue: &str) -> (u64, u64) {
        self.runtime
            .block_on(async { queue_counts(&self.moto.clients().await.sqs, queue).await })
    }
}

fn run(dir: &Dir, stack: &Stack, args: &[&str]) -> crate::support::Run {
    let env = stack.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dir.tickwatch_env_stdin(args, &env, "")
}

#[test]
fn dead_letters_are_listed_shown_and_redriven_only_when_confirmed() {
    let dir = Dir::new();
    let stack = Stack::new();

    let listed = run(&dir, &stack, &["dlq", "list", "--format", "json"]);
    listed.assert_exit(0);
    let letters = listed.stdout_json_lines();
    assert_eq!(letters.len(), 3, "{}", listed.stderr);
    assert!(
        letters
            .iter()
            .all(|l| l["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    let table = run(&dir, &stack, &["dlq", "list"]);
    table.assert_exit(0);
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(
        !table.stdout.contains('\u{1b}'),
        "a hostile body's escape sequence is not printed raw"
    );

    let aapl = run(
        &dir,
        &stack,
        &["dlq", "list", "--symbol", "AAPL", "--format", "json"],
    );
    aapl.assert_exit(0);
    let aapl = aapl.stdout_json_lines();
    assert_eq!(aapl.len(), 2);
    let id = aapl[0]["id"].as_str().expect("id").to_owned();
    let shown = run(&dir, &stack, &["dlq", "show", &id]);
    shown.assert_exit(0);
    assert!(
        shown.stdout.contains(r#""source_message_id""#),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("AAPL"), "{}", shown.stdout);

    // Not confirmed (no terminal, no --yes): refused, nothing moves. A dry run moves nothing.
    let refused = run(&dir, &stack, &["dlq", "redrive", "--symbol", "AAPL"]);
    refused.assert_exit(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let dry = run(
        &dir,
        &stack,
        &["dlq", "redrive", "--symbol", "AAPL", "--dry-run"],
    );
    dry.assert_exit(0);
    assert_eq!(stack.counts(&stack.ticks), (0, 0));
    assert_eq!(
        stack.counts(&stack.dlq),
        (3, 0),
        "looking gives every letter back"
    );

    let moved = run(
        &dir,
        &stack,
        &["dlq", "redrive", "--symbol", "AAPL", "--yes"],
    );
    moved.assert_exit(0);
    assert!(moved.stderr.contains("2 moved"), "{}", moved.stderr);
    assert_eq!(stack.counts(&stack.ticks), (2, 0));
    assert_eq!(stack.counts(&stack.dlq), (1, 0), "the malformed one stays");
}
