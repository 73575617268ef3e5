//! `tickwatch run`: the local mode. Ticks from a file or stdin, in batches, through the core
//! pipeline into SQLite, alerts announced on stdout, a file or a webhook.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tickwatch_core::{BatchStats, Outcome};
use tickwatch_local::{Format, TickReader};

use crate::Completion;
use crate::args::{InputFormat, RunArgs};
use crate::config;

/// Rejected lines reported one by one on stderr; past this only the counts are kept.
const REJECTIONS_PRINTED_MAX: u64 = 1_000;
/// Delivery failures reported one by one on stderr.
const FAILURES_PRINTED_MAX: u64 = 20;

pub(crate) fn run(args: RunArgs) -> anyhow::Result<Completion> {
    let rules = config::rules(args.rules.as_deref(), args.mode)?;
    let format = match args.format {
        Some(InputFormat::Csv) => Format::Csv,
        Some(InputFormat::Ndjson) => Format::Ndjson,
        None if args.input.to_ascii_lowercase().ends_with(".csv") => Format::Csv,
        None => Format::Ndjson,
    };
    let (input, input_len): (Box<dyn Read + Send>, Option<u64>) = if args.input == "-" {
        if io::stdin().is_terminal() && !args.quiet {
            // Otherwise a newcomer who forgot --input sees a command that seems to hang.
            eprintln!(
                "tickwatch run: reading ticks from the terminal, one JSON tick per line; Ctrl-D ends. (--input FILE reads a file.)"
            );
        }
        (Box::new(io::stdin()), None)
    } else {
        let file =
            File::open(&args.input).with_context(|| format!("opening input {}", args.input))?;
        let len = file.metadata().map(|m| m.len()).ok();
        (Box::new(file), len)
    };
    // One announcer per database: a second run or a notify on it fails here, before touching it.
    let _announcing = tickwatch_local::AnnounceLock::acquire(&args.db)?;
    let pipeline = config::local_pipeline(&args.db, &args.notify, rules)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    runtime.spawn({
        let interrupted = interrupted.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
            }
        }
    });

    let progress = match input_len {
        Some(len) if !args.quiet && io::stderr().is_terminal() => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Some(bar)
        }
        _ => None,
    };

    let started = Instant::now();
    let mut reader = TickReader::new(input, format).context("starting the input reader")?;
    let mut totals = BatchStats::default();
    let mut rejected_by_code: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut strict_stop = None;
    // The first line of the batch whose results the store could not (completely) keep.
    let mut unstored_from: Option<u64> = None;
    let (mut rejections_printed, mut failures_printed) = (0u64, 0u64);
    while !interrupted.load(Ordering::SeqCst) {
        let Some(mut batch) = reader.next_batch()? else {
            break;
        };
        if args.strict
            && let Some(bad) = batch.iter().position(|(_, tick)| tick.is_err())
        {
            // Process what came before the bad line, then stop.
            batch.truncate(bad + 1);
            if let Some((line, Err(error))) = batch.pop() {
                *rejected_by_code.entry(error.code()).or_default() += 1;
                totals.rejected += 1;
                totals.messages += 1;
                strict_stop = Some(format!("line {line}: {error}"));
            }
        }
        let first_line = batch.first().map(|(line, _)| *line);
        let report = runtime.block_on(pipeline.process_ticks(batch, None));
        for (line, outcome) in &report.outcomes {
            match outcome {
                Outcome::Rejected(error) => {
                    *rejected_by_code.entry(error.code()).or_default() += 1;
                    rejections_printed += 1;
                    if rejections_printed <= REJECTIONS_PRINTED_MAX {
                        print_above(&progress, &format!("line {line}: {error}"));
                    } else if rejections_printed == REJECTIONS_PRINTED_MAX + 1 {
                        print_above(
                            &progress,
                            "(more rejected lines: counted in the summary, not shown)",
                        );
                    }
                }
                Outcome::Failed(failure) => {
                    failures_printed += 1;
                    if failures_printed <= FAILURES_PRINTED_MAX {
                        print_above(&progress, &format!("line {line}: not completed: {failure}"));
                    }
                }
                _ => {}
            }
        }
        totals.add(&report.stats);
        if let Some(bar) = &progress {
            bar.set_position(reader.bytes_read());
        }
        if strict_stop.is_some() {
            break;
        }
        if report.stats.failed_unstored() > 0 {
            // Stop: a later batch would move symbol state past the ticks that were not stored,
            // and re-running the input would then find them stale and raise nothing for them.
            unstored_from = first_line;
            break;
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    pipeline
        .notifier()
        .close()
        .context("flushing announced alerts")?;
    let elapsed = started.elapsed();
    if !args.quiet {
        print_summary(
            &totals,
            &rejected_by_code,
            elapsed,
            &args,
            interrupted.load(Ordering::SeqCst),
        );
    }
    if let Some(reason) = strict_stop {
        bail!("--strict: stopped at the first invalid tick: {reason}");
    }
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted; the ticks read so far are processed and stored");
    }
    if let Some(line) = unstored_from {
        eprintln!(
            "tickwatch run: stopped: the results of some ticks from line {line} on are NOT stored (see the errors above). Fix the cause, then run the same input again: what was stored is recognised and not repeated."
        );
        return Ok(Completion::Unstored);
    }
    Ok(if totals.failed > 0 {
        Completion::Unannounced
    } else {
        Completion::Clean
    })
}

fn print_above(progress: &Option<ProgressBar>, line: &str) {
    match progress {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

fn print_summary(
    totals: &BatchStats,
    rejected_by_code: &BTreeMap<&'static str, u64>,
    elapsed: std::time::Duration,
    args: &RunArgs,
    interrupted: bool,
) {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        totals.messages as f64 / seconds
    } else {
        0.0
    };
    let rejected = if rejected_by_code.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = rejected_by_code
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    eprintln!(
        "tickwatch run: {} ticks in {seconds:.2} s ({rate:.0} ticks/s){}",
        totals.messages,
        if interrupted { ", interrupted" } else { "" }
    );
    eprintln!(
        "  alerts     {} new and announced, {} new and stored but not announced, {} announced in all",
        totals.alerts, totals.unannounced, totals.published
    );
    eprintln!(
        "  repeated   {} ticks whose alert was already stored (the same tick seen again)",
        totals.duplicates
    );
    eprintln!(
        "  stale      {} (not newer than a tick already seen for their symbol: they change nothing)",
        totals.stale
    );
    eprintln!("  rejected   {}{rejected}", totals.rejected);
    eprintln!("  failed     {}", totals.failed);
    eprintln!("  database   {}", args.db.display());
    let unannounced_ticks = totals.failed - totals.failed_unstored();
    if unannounced_ticks > 0 {
        eprintln!(
            "  {unannounced_ticks} ticks have their alerts stored but not announced; `tickwatch notify --db {}` (or the next run) announces them",
            args.db.display()
        );
    }
    if totals.failed_unstored() > 0 {
        eprintln!(
            "  {} ticks were NOT (completely) stored: run the same input again",
            totals.failed_unstored()
        );
    }
}
