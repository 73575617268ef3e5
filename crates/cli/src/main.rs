//! `tickwatch`: the command line. It parses arguments, picks adapters and wires them to the core
//! pipeline; everything it does is in a subcommand module of its own.
//!
//! Exit codes (README "Exit codes" says the same):
//! * 0: done; every alert raised is stored and announced.
//! * 1: an error: bad arguments or configuration, unreadable input, a rejected line with
//!   `--strict`, an interrupted run.
//! * 2: usage error (from clap).
//! * 3: every tick is processed and every alert is stored, but some alerts are not announced yet:
//!   `tickwatch notify` (local) or the queue's redelivery (`sqs-worker`) announces them.
//! * 4: some ticks were not stored, or not completely (the store failed): `run` stops at the
//!   first such batch and names the line to re-run the input from; `sqs-worker` left them on
//!   the queue for redelivery.

mod alerts;
mod args;
mod board;
mod config;
mod dlq;
mod generate;
mod interrupt;
mod notify;
mod rules;
mod run;
mod serve;
mod smoke;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Exit code of a run that stored alerts it could not announce.
const EXIT_UNANNOUNCED: u8 = 3;
/// Exit code of a run that could not store some ticks' results.
const EXIT_UNSTORED: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Alerts(args) => alerts::alerts(args),
        Command::Notify(args) => notify::notify(args),
        Command::Generate(args) => generate::generate(args),
        Command::SqsWorker(args) => worker::sqs_worker(args),
        Command::Smoke(args) => smoke::smoke(args),
        Command::Dlq(command) => dlq::dlq(command),
        Command::Rules(args) => rules::rules(args),
        Command::Serve(args) => serve::serve(args),
    };
    match result {
        Ok(Completion::Clean) => ExitCode::SUCCESS,
        Ok(Completion::Unannounced) => ExitCode::from(EXIT_UNANNOUNCED),
        Ok(Completion::Unstored) => ExitCode::from(EXIT_UNSTORED),
        Err(error) => {
            eprintln!("tickwatch: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a subcommand that did not fail ended.
enum Completion {
    /// Everything done.
    Clean,
    /// Done, but some alerts are stored and not yet announced.
    Unannounced,
    /// Some ticks' results are not (completely) stored: their input must be processed again.
    Unstored,
}

/// Logs go to stderr: warnings by default, more with `-v`; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
