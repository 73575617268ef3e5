//! `tickwatch run`: the local mode. Ticks from a file or stdin, in batches, through the core
//! pipeline into SQLite, alerts announced on stdout, a file or a webhook.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tickwatch_aws::{RulesRefresher, RulesSource};
use tickwatch_core::ports::{Clock as _, RuleStore as _};
use tickwatch_core::{BatchStats, Outcome, RuleBook, TickError};
use tickwatch_local::SqliteStore;
use tickwatch_local::board::WriterState;
use tickwatch_local::{DecodeAhead, Format, Next, TickReader};

use crate::Completion;
use crate::args::{InputFormat, RunArgs};
use crate::board::RunBoard;
use crate::config;
use crate::interrupt::Interrupt;
use crate::serve::{self, Serving};

/// Rejected lines reported one by one on stderr; past this only the counts are kept.
const REJECTIONS_PRINTED_MAX: u64 = 1_000;
/// Delivery failures reported one by one on stderr.
const FAILURES_PRINTED_MAX: u64 = 20;
/// How often a run waiting on a quiet input looks for Ctrl-C.
const INTERRUPT_POLL_MS: u64 = 100;

pub(crate) fn run(args: RunArgs) -> anyhow::Result<Completion> {
    let fixed = config::static_rules(args.rules.as_deref(), args.mode)?;
    let (input, input_len) = open_input(&args)?;
    // One announcer per database: a second run or a notify on it fails here, before touching it.
    let _announcing = tickwatch_local::AnnounceLock::acquire(&args.db)?;
    let defaults = Arc::new(RuleBook::defaults());
    let pipeline = Arc::new(config::local_pipeline(
        &args.db,
        &args.notify,
        fixed.clone().unwrap_or_else(|| defaults.clone()),
    )?);
    // This thread settles batches; one worker thread finishes the batch before, meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let watcher = match fixed {
        None => {
            // The database's rules, checked before every batch (one read of their change
            // counter; read again only when it moved), by the refresher the function and the
            // worker use. A second connection: the pipeline owns the first.
            let store = SqliteStore::open(&args.db)
                .with_context(|| format!("opening database {}", args.db.display()))?;
            let refresher = RulesRefresher::every_batch(store, defaults);
            // At start a database whose rules cannot be read is an error, not a warning.
            let book = runtime
                .block_on(refresher.load(pipeline.clock().now()))
                .context("reading the database's rules")?;
            pipeline.set_rules(book);
            Some(refresher)
        }
        Some(_) => {
            if let Some(version) = runtime
                .block_on(pipeline.store().rules_version())
                .context("reading the database's rules")?
            {
                eprintln!(
                    "tickwatch run: the database holds rules (version {version}); --rules/--mode take their place for this run, and changes to them are not picked up"
                );
            }
            None
        }
    };
    let mut interrupt = Interrupt::watch(&runtime)?;
    // The board server, if asked for: bound now, so a taken port fails before any tick is read.
    let serving = match args.serve {
        Some(addr) => {
            let board = serve::bind(addr, &args.db, &args.token, fixed.clone())?;
            serve::announce(
                "tickwatch run",
                &board,
                &args.db,
                args.token.token.is_some(),
            );
            Some(Serving::start(board)?)
        }
        None => None,
    };

    let started = Instant::now();
    let mut board = RunBoard::new(pipeline.clock().now(), !args.no_board);
    // Read on one thread, decoded on another, settled here, finished on the runtime's worker:
    // the next batch is decoded while this one is settled, and settled while the one before is
    // finished.
    let reader = TickReader::new(input, input_format(&args))
        .and_then(TickReader::decode_ahead)
        .context("starting the input reader")?;
    let mut tally = Tally::new(progress_bar(input_len, args.quiet));
    let batches = Batches {
        runtime: &runtime,
        pipeline: &pipeline,
        tally: &mut tally,
        board: &mut board,
    };
    let stop = process_input(reader, &args, batches, &interrupt, &watcher);
    board.flush(
        pipeline.store(),
        pipeline.clock().now(),
        WriterState::Stopped,
    );
    let stop = stop?;
    if let Some(bar) = tally.progress.take() {
        bar.finish_and_clear();
    }
    pipeline
        .notifier()
        .close()
        .context("flushing announced alerts")?;
    if !args.quiet {
        print_summary(
            &tally.totals,
            &tally.rejected_by_code,
            started.elapsed(),
            &args,
            matches!(stop, Stop::Interrupted),
        );
    }
    if let Some(serving) = serving {
        if matches!(stop, Stop::EndOfInput) {
            eprintln!("tickwatch run: the input ended; the board stays up until Ctrl-C");
            runtime.block_on(interrupt.come());
        }
        serving.stop()?;
    }
    completion(stop, &tally.totals)
}

/// Why reading stopped.
enum Stop {
    /// The input ended.
    EndOfInput,
    /// `--strict` met an invalid tick (the line and its reason).
    Strict(String),
    /// Ctrl-C.
    Interrupted,
    /// The store could not (completely) keep a batch that began at this line.
    Unstored { from_line: u64 },
}

/// `--format`, or the input's extension: `.csv` is CSV, everything else NDJSON.
fn input_format(args: &RunArgs) -> Format {
    match args.format {
        Some(InputFormat::Csv) => Format::Csv,
        Some(InputFormat::Ndjson) => Format::Ndjson,
        None if args.input.to_ascii_lowercase().ends_with(".csv") => Format::Csv,
        None => Format::Ndjson,
    }
}

/// The input and, for a file, its length (for the progress bar).
fn open_input(args: &RunArgs) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if args.input == "-" {
        if io::stdin().is_terminal() && !args.quiet {
            // Otherwise a newcomer who forgot --input sees a command that seems to hang.
            eprintln!(
                "tickwatch run: reading ticks from the terminal, one JSON tick per line; Ctrl-D ends. (--input FILE reads a file.)"
            );
        }
        return Ok((Box::new(io::stdin()), None));
    }
    let file = File::open(&args.input).with_context(|| format!("opening input {}", args.input))?;
    let len = file.metadata().map(|m| m.len()).ok();
    Ok((Box::new(file), len))
}

/// A progress bar for a file read on a terminal.
fn progress_bar(input_len: Option<u64>, quiet: bool) -> Option<ProgressBar> {
    let len = input_len.filter(|_| !quiet && io::stderr().is_terminal())?;
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Reads batches and puts each through the pipeline until the input ends or something stops it.
///
/// A full batch (a file read at speed) is settled here (evaluated, its symbols' states committed)
/// and finished on the runtime's worker thread (its other alerts stored, everything announced)
/// while the next one is settled; batches are finished in the order they came. A batch that
/// ended with what had arrived (a live feed) is finished before waiting for more, so its alerts
/// are counted and shown at once.
fn process_input(
    mut reader: DecodeAhead,
    args: &RunArgs,
    mut batches: Batches<'_>,
    interrupt: &Interrupt,
    rules: &impl RulesSource,
) -> anyhow::Result<Stop> {
    let (runtime, pipeline) = (batches.runtime, batches.pipeline);
    let mut finishing: Option<Finishing> = None;
    let stop = loop {
        if interrupt.is_set() {
            break Stop::Interrupted;
        }
        let next = next_batch(&mut reader, batches.board, pipeline, interrupt);
        if next.is_err()
            && let Some(previous) = finishing.take()
        {
            // The input failed: the batch before is still finished, counted and shown.
            previous.join(runtime)?.account(&mut batches);
        }
        let mut batch = match next? {
            Fetched::Batch(batch) => batch,
            Fetched::End => break Stop::EndOfInput,
            Fetched::Interrupted => break Stop::Interrupted,
        };
        // A change made with `tickwatch rules` applies from this batch; a failed check is
        // logged and leaves the rules in force.
        runtime.block_on(rules.before_batch(pipeline.as_ref()));
        let mut strict_stop = None;
        if args.strict
            && let Some(bad) = batch.iter().position(|(_, tick)| tick.is_err())
        {
            // Process what came before the bad line, then stop.
            batch.truncate(bad + 1);
            if let Some((line, Err(error))) = batch.pop() {
                batches.tally.strict_rejection(&error);
                strict_stop = Some(format!("line {line}: {error}"));
            }
        }
        let first_line = batch.first().map_or(1, |(line, _)| *line);
        let full = batch.len() == tickwatch_local::source::BATCH_TICKS_MAX;
        batches.board.observe(&batch);
        let settled = runtime.block_on(pipeline.settle_ticks(batch, None));
        // Stop after a batch whose results are not all stored: a later batch would move symbol
        // state past the ticks that were not stored, and re-running the input would then find
        // them stale and raise nothing for them. So a batch is settled only while the one before
        // may yet fail, and is then finished before the run stops.
        // The worker goes on with this batch before the one before is counted: counting it is
        // this thread's work, and the worker is the busier of the two.
        let previous = finishing.take().map(|p| p.join(runtime)).transpose()?;
        let unsettled = settled.failed_unstored();
        let current = Finishing::start(runtime, pipeline, settled, first_line);
        let previous_stop = previous.and_then(|done| done.account(&mut batches));
        let mut unstored = None;
        if full && !unsettled && previous_stop.is_none() && strict_stop.is_none() {
            finishing = Some(current);
        } else {
            let current_stop = current.finish(&mut batches)?;
            unstored = previous_stop.or(current_stop);
        }
        if let Some(bar) = &batches.tally.progress {
            bar.set_position(reader.bytes_read());
        }
        if let Some(reason) = strict_stop {
            break Stop::Strict(reason);
        }
        if let Some(unstored) = unstored {
            break unstored;
        }
    };
    match finishing {
        Some(last) => Ok(last.finish(&mut batches)?.unwrap_or(stop)),
        None => Ok(stop),
    }
}

/// What a run's batches go through: the runtime and pipeline, and where their results are
/// counted and shown.
struct Batches<'a> {
    runtime: &'a tokio::runtime::Runtime,
    pipeline: &'a Arc<config::LocalPipeline>,
    tally: &'a mut Tally,
    board: &'a mut RunBoard,
}

/// A settled batch being finished on the runtime's worker thread.
struct Finishing {
    task: tokio::task::JoinHandle<tickwatch_core::FinishedBatch<u64>>,
    first_line: u64,
}

impl Finishing {
    fn start(
        runtime: &tokio::runtime::Runtime,
        pipeline: &Arc<config::LocalPipeline>,
        settled: tickwatch_core::SettledBatch<u64>,
        first_line: u64,
    ) -> Finishing {
        let pipeline = pipeline.clone();
        let task = runtime.spawn(async move { pipeline.finish_batch(settled, None).await });
        Finishing { task, first_line }
    }

    /// Waits for the batch, then counts it and shows it on the board. `Stop::Unstored` if the
    /// results of some of its ticks are not (completely) stored.
    fn finish(self, batches: &mut Batches<'_>) -> anyhow::Result<Option<Stop>> {
        Ok(self.join(batches.runtime)?.account(batches))
    }

    /// Waits for the batch to be finished.
    fn join(self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Finished> {
        let batch = runtime
            .block_on(self.task)
            .context("finishing a batch (the task failed)")?;
        Ok(Finished {
            batch,
            first_line: self.first_line,
        })
    }
}

/// A batch the worker has finished, not yet counted.
struct Finished {
    batch: tickwatch_core::FinishedBatch<u64>,
    first_line: u64,
}

impl Finished {
    /// Counts the batch and shows it on the board. `Stop::Unstored` if the results of some of
    /// its ticks are not (completely) stored.
    fn account(self, batches: &mut Batches<'_>) -> Option<Stop> {
        // The report is made here: the worker has the larger share of a batch's work already.
        let report = self.batch.into_report();
        batches.tally.add(&report.outcomes, &report.stats);
        batches.board.record(&report.outcomes);
        let pipeline = batches.pipeline;
        batches
            .board
            .flush_if_due(pipeline.store(), pipeline.clock().now());
        (report.stats.failed_unstored() > 0).then_some(Stop::Unstored {
            from_line: self.first_line,
        })
    }
}

/// What [`next_batch`] found.
enum Fetched {
    Batch(Vec<tickwatch_local::source::NumberedTick>),
    End,
    /// Ctrl-C came while the input was quiet.
    Interrupted,
}

/// The next batch; while the input is quiet, the board is written when due and Ctrl-C is
/// watched for (a quiet feed that is not ended by the same Ctrl-C, a FIFO say, must not keep the
/// run waiting).
fn next_batch(
    reader: &mut DecodeAhead,
    board: &mut RunBoard,
    pipeline: &config::LocalPipeline,
    interrupt: &Interrupt,
) -> anyhow::Result<Fetched> {
    let interrupt_poll = Duration::from_millis(INTERRUPT_POLL_MS);
    loop {
        let wait = board
            .due_in()
            .map_or(interrupt_poll, |due| due.min(interrupt_poll));
        match reader.next_batch_within(wait)? {
            Next::Batch(batch) => return Ok(Fetched::Batch(batch)),
            Next::End => return Ok(Fetched::End),
            Next::Waiting if interrupt.is_set() => return Ok(Fetched::Interrupted),
            Next::Waiting => board.flush_if_due(pipeline.store(), pipeline.clock().now()),
        }
    }
}

/// The exit of a run that got as far as its summary.
fn completion(stop: Stop, totals: &BatchStats) -> anyhow::Result<Completion> {
    match stop {
        Stop::Strict(reason) => bail!("--strict: stopped at the first invalid tick: {reason}"),
        Stop::Interrupted => bail!("interrupted; the ticks read so far are processed and stored"),
        Stop::Unstored { from_line } => {
            eprintln!(
                "tickwatch run: stopped: the results of some ticks from line {from_line} on are NOT stored (see the errors above). Fix the cause, then run the same input again: what was stored is recognised and not repeated."
            );
            Ok(Completion::Unstored)
        }
        Stop::EndOfInput if totals.failed > 0 => Ok(Completion::Unannounced),
        Stop::EndOfInput => Ok(Completion::Clean),
    }
}

/// What the run has done so far, and what it has printed of it.
struct Tally {
    totals: BatchStats,
    rejected_by_code: BTreeMap<&'static str, u64>,
    rejections_printed: u64,
    failures_printed: u64,
    progress: Option<ProgressBar>,
}

impl Tally {
    fn new(progress: Option<ProgressBar>) -> Tally {
        Tally {
            totals: BatchStats::default(),
            rejected_by_code: BTreeMap::new(),
            rejections_printed: 0,
            failures_printed: 0,
            progress,
        }
    }

    /// The invalid tick `--strict` stopped at (never given to the pipeline).
    fn strict_rejection(&mut self, error: &TickError) {
        *self.rejected_by_code.entry(error.code()).or_default() += 1;
        self.totals.rejected += 1;
        self.totals.messages += 1;
    }

    /// Counts a batch and reports its rejected and failed lines on stderr (within limits).
    fn add(&mut self, outcomes: &[(u64, Outcome)], stats: &BatchStats) {
        for (line, outcome) in outcomes {
            match outcome {
                Outcome::Rejected(error) => {
                    *self.rejected_by_code.entry(error.code()).or_default() += 1;
                    self.rejections_printed += 1;
                    if self.rejections_printed <= REJECTIONS_PRINTED_MAX {
                        print_above(&self.progress, &format!("line {line}: {error}"));
                    } else if self.rejections_printed == REJECTIONS_PRINTED_MAX + 1 {
                        print_above(
                            &self.progress,
                            "(more rejected lines: counted in the summary, not shown)",
                        );
                    }
                }
                Outcome::Failed(failure) => {
                    self.failures_printed += 1;
                    if self.failures_printed <= FAILURES_PRINTED_MAX {
                        print_above(
                            &self.progress,
                            &format!("line {line}: not completed: {failure}"),
                        );
                    }
                }
                _ => {}
            }
        }
        self.totals.add(stats);
    }
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
