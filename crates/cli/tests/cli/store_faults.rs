//! `tickwatch run` when the store itself fails: the database on a full disk. The run must not
//! claim the alerts are stored: it stops, exits 4 and says to run the input again, and running
//! it again once there is room stores and announces every alert exactly as a clean run would.
//!
//! The disk is a small tmpfs, so these tests need root (as CI has); without it they fail.

use std::collections::BTreeSet;

use tickwatch_local::testing::Tmpfs;

use crate::support::{Dir, tick};

fn alert_ids(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .map(|line| {
            let alert: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            alert["alert_id"].as_str().expect("alert_id").to_owned()
        })
        .collect()
}

#[test]
fn a_full_disk_under_the_database_stops_the_run_with_exit_4_and_a_rerun_completes_it() {
    const TICKS: usize = 20_000;
    let dir = Dir::new();
    // Every tick alerts in level mode: far more alerts than fit on the disk.
    let input: String = (0..TICKS)
        .map(|i| {
            tick(
                &format!("S{}", i % 50),
                151.0 + (i % 7) as f64,
                &i.to_string(),
            ) + "\n"
        })
        .collect();
    dir.write("ticks.ndjson", &input);
    let disk = Tmpfs::mount(&dir.path("disk"), 512);
    let db = disk.path().join("alerts.db");
    let db = db.to_str().expect("utf-8 path");
    let input_path = dir.path("ticks.ndjson");
    let input_path = input_path.to_str().expect("utf-8 path");
    let args = ["run", "--mode", "level", "--input", input_path, "--db", db];

    let full = dir.tickwatch(&args);
    full.assert_exit(4);
    assert!(
        full.stderr.contains("NOT stored") && full.stderr.contains("run the same input again"),
        "the run says the alerts are not stored: {}",
        full.stderr
    );
    assert!(
        !full.stderr.contains("tickwatch notify"),
        "nothing suggests that announcing later would complete it: {}",
        full.stderr
    );
    // Whatever was announced is stored (store -> announce), never the other way round.
    let first_announced: BTreeSet<String> = alert_ids(&full.stdout).into_iter().collect();
    assert!(first_announced.len() < TICKS, "the disk filled up");

    disk.resize(64 * 1024);
    let again = dir.tickwatch(&args);
    again.assert_exit(0);
    let second_announced = alert_ids(&again.stdout);
    let stored = dir.tickwatch(&[
        "alerts", "--db", db, "--limit", "100000", "--format", "json",
    ]);
    stored.assert_exit(0);
    let stored: Vec<String> = alert_ids(&stored.stdout);
    let stored_set: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), TICKS, "every alert stored");
    assert_eq!(stored_set.len(), TICKS, "each alert stored once");
    let announced: BTreeSet<String> = first_announced
        .iter()
        .cloned()
        .chain(second_announced.iter().cloned())
        .collect();
    assert_eq!(announced, stored_set, "every stored alert announced");
    assert!(
        first_announced.is_subset(&stored_set),
        "nothing announced that is not stored"
    );
    assert_eq!(
        first_announced.len() + second_announced.len(),
        TICKS,
        "nothing announced twice across the two runs"
    );
}
