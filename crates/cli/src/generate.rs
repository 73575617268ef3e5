//! `tickwatch generate`: reproducible random-walk ticks as NDJSON, for demos, tests and benchmarks.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::Context as _;
use tickwatch_core::Timestamp;
use tickwatch_core::generate::{RandomWalk, WALK_SYMBOLS_MAX};

use crate::Completion;
use crate::args::GenerateArgs;

/// Bytes buffered before each write.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;

pub(crate) fn generate(args: GenerateArgs) -> anyhow::Result<Completion> {
    if !(1..=WALK_SYMBOLS_MAX).contains(&args.symbols) {
        anyhow::bail!(
            "--symbols must be between 1 and {WALK_SYMBOLS_MAX}, got {}",
            args.symbols
        );
    }
    let start = Timestamp::parse_rfc3339(&args.start).context("--start")?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, out);
    let mut line = Vec::with_capacity(160);
    let mut written = 0u64;
    for tick in RandomWalk::new(args.symbols, args.seed, start).take(args.ticks as usize) {
        line.clear();
        tick.write_ndjson(&mut line);
        out.write_all(&line)?;
        written += 1;
    }
    out.flush()?;
    if written < args.ticks {
        anyhow::bail!(
            "the walk reached the year 2100 after {written} ticks; use an earlier --start"
        );
    }
    Ok(Completion::Clean)
}
