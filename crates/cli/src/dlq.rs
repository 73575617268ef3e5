//! `tickwatch dlq list | show | redrive`: what is in the dead-letter queue and why, and sending
//! it back once the cause is fixed. The work (collecting without losing, moving exactly once) is
//! `tickwatch_aws::redrive`; this module asks, prints and counts.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tickwatch_aws::AwsClients;
use tickwatch_aws::config::load_sdk_config;
use tickwatch_aws::deploy::{queue_url, variables};
use tickwatch_aws::redrive::{DeadLetters, Filter, Journal, Letter};
use tickwatch_core::tick::escape_controls;

use crate::Completion;
use crate::args::{DlqCommand, DlqSelection, OutputFormat};
use crate::config::parse_time;
use crate::worker::setting_error;

pub(crate) fn dlq(command: DlqCommand) -> anyhow::Result<Completion> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let clients = AwsClients::new(&load_sdk_config().await);
        match command {
            DlqCommand::List(args) => list(&clients, &args.selection, args.format).await,
            DlqCommand::Show(args) => show(&clients, &args.dead_letter_queue_url, &args.id).await,
            DlqCommand::Redrive(args) => {
                redrive(
                    &clients,
                    &args.selection,
                    &args.queue_url,
                    args.dry_run,
                    args.yes,
                    args.journal,
                )
                .await
            }
        }
    })
}

fn filter(selection: &DlqSelection) -> anyhow::Result<Filter> {
    Ok(Filter {
        reason: selection.reason.clone(),
        since: selection
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?,
        symbol: selection.symbol.clone(),
    })
}

fn dead_letters(clients: &AwsClients, url: &str) -> anyhow::Result<DeadLetters> {
    let url = queue_url(variables::DEAD_LETTER_QUEUE_URL, url).map_err(setting_error)?;
    Ok(DeadLetters::new(clients.sqs.clone(), &url))
}

async fn list(
    clients: &AwsClients,
    selection: &DlqSelection,
    format: OutputFormat,
) -> anyhow::Result<Completion> {
    let dlq = dead_letters(clients, &selection.dead_letter_queue_url)?;
    let collected = dlq
        .collect(&filter(selection)?, selection.limit as usize)
        .await
        .context("reading the dead-letter queue")?;
    let released = dlq.release(&collected.letters).await;
    let mut out = io::stdout().lock();
    match format {
        OutputFormat::Json => {
            for letter in &collected.letters {
                writeln!(out, "{}", letter_json(letter))?;
            }
        }
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<36}  {:<24}  {:<20}  {:<10}  REASON",
                "ID", "DEAD-LETTERED", "CODE", "SYMBOL"
            )?;
            for l in &collected.letters {
                writeln!(
                    out,
                    "{:<36}  {:<24}  {:<20}  {:<10}  {}",
                    l.message_id,
                    l.sent_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    // Attributes and the body's symbol are input: never print them raw.
                    escape_controls(l.error_code.as_deref().unwrap_or("-")),
                    escape_controls(l.symbol.as_deref().unwrap_or("-")),
                    escape_controls(
                        l.reason
                            .as_deref()
                            .unwrap_or("(no reason: moved by the redrive policy)")
                    ),
                )?;
            }
        }
    }
    eprintln!(
        "tickwatch dlq: {} letters shown, {} looked at{}",
        collected.letters.len(),
        collected.scanned,
        if collected.more {
            "; more may match (raise --limit)"
        } else {
            ""
        }
    );
    released.context("giving the letters back")?;
    Ok(Completion::Clean)
}

async fn show(clients: &AwsClients, url: &str, id: &str) -> anyhow::Result<Completion> {
    let dlq = dead_letters(clients, url)?;
    let collected = dlq
        .collect(&Filter::default(), tickwatch_aws::redrive::SCAN_LETTERS_MAX)
        .await
        .context("reading the dead-letter queue")?;
    let released = dlq.release(&collected.letters).await;
    let found = collected.letters.iter().find(|l| l.message_id == id);
    match found {
        Some(letter) => {
            let pretty = serde_json::to_string_pretty(&letter_json(letter))?;
            println!("{pretty}");
        }
        None => bail!(
            "no letter {id:?} among the {} in the dead-letter queue (a letter held by another reader is not seen)",
            collected.scanned
        ),
    }
    released.context("giving the letters back")?;
    Ok(Completion::Clean)
}

async fn redrive(
    clients: &AwsClients,
    selection: &DlqSelection,
    to: &str,
    dry_run: bool,
    yes: bool,
    journal: Option<PathBuf>,
) -> anyhow::Result<Completion> {
    let to = queue_url(variables::TICKS_QUEUE_URL, to).map_err(setting_error)?;
    let dlq = dead_letters(clients, &selection.dead_letter_queue_url)?;
    let journal_path = journal.unwrap_or_else(|| {
        let name = selection
            .dead_letter_queue_url
            .rsplit('/')
            .next()
            .unwrap_or("dlq");
        PathBuf::from(format!("tickwatch-redrive-{name}.journal"))
    });
    let mut journal = Journal::open(&journal_path)
        .with_context(|| format!("opening the redrive journal {}", journal_path.display()))?;
    let collected = dlq
        .collect(&filter(selection)?, selection.limit as usize)
        .await
        .context("reading the dead-letter queue")?;
    let count = collected.letters.len();
    if count == 0 || dry_run {
        dlq.release(&collected.letters)
            .await
            .context("giving the letters back")?;
        eprintln!(
            "tickwatch dlq redrive: {count} letters match{}{}",
            if dry_run {
                "; --dry-run: nothing moved"
            } else {
                ""
            },
            if collected.more {
                " (more may match: raise --limit)"
            } else {
                ""
            }
        );
        for letter in &collected.letters {
            println!("{}", letter_json(letter));
        }
        return Ok(Completion::Clean);
    }
    let confirmed = if yes { Ok(true) } else { confirm(count, &to) };
    if !matches!(confirmed, Ok(true)) {
        // Refused or unanswerable: the letters go back at once, not after the hold.
        dlq.release(&collected.letters)
            .await
            .context("giving the letters back")?;
        confirmed?;
        eprintln!("tickwatch dlq redrive: nothing moved");
        return Ok(Completion::Clean);
    }
    let report = match dlq.redrive(&to, collected.letters, &mut journal).await {
        Ok(report) => report,
        Err(error) => bail!("{error}"),
    };
    eprintln!(
        "tickwatch dlq redrive: {} moved ({} completed from the journal of an interrupted run), {} sent but not yet deleted, {} left in place{}",
        report.moved,
        report.completed_from_journal,
        report.sent_delete_pending,
        report.left,
        if collected.more {
            "; more may match (run again)"
        } else {
            ""
        }
    );
    if report.sent_delete_pending > 0 || report.left > 0 {
        eprintln!(
            "  run the same command again with the journal {} to finish: sent letters are only deleted, never sent twice",
            journal_path.display()
        );
        return Ok(Completion::Unannounced);
    }
    Ok(Completion::Clean)
}

/// Asks on the terminal; refuses (with how to proceed) when there is none.
fn confirm(count: usize, to: &str) -> anyhow::Result<bool> {
    if !io::stdin().is_terminal() {
        bail!(
            "{count} letters would move to {to}: confirm with --yes (stdin is not a terminal), or look first with --dry-run"
        );
    }
    eprint!("Move {count} dead letters to {to}? [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn letter_json(letter: &Letter) -> serde_json::Value {
    serde_json::json!({
        "id": letter.message_id,
        "dead_lettered_at": letter.sent_at.map(|t| t.to_string()),
        "error_code": letter.error_code,
        "reason": letter.reason,
        "symbol": letter.symbol,
        "source_message_id": letter.source_message_id,
        "receive_count": letter.receive_count,
        "body": letter.body,
    })
}
