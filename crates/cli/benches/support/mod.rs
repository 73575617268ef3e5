//! What the end-to-end benches of `tickwatch` share (a module, not a bench target of its own).

/// Whether this is a measurement (`cargo bench` passes `--bench`; `cargo test` runs the bench
/// binary without it, for one quick pass), and the number of ticks to use: `TICKWATCH_BENCH_TICKS`
/// if set, else `measured` when measuring and `smoke` for the quick pass.
pub(crate) fn ticks(measured: u64, smoke: u64) -> (bool, u64) {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let ticks = match std::env::var("TICKWATCH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(ticks) => ticks,
        None if benchmarking => measured,
        None => smoke,
    };
    (benchmarking, ticks)
}
