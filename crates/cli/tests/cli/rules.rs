//! `tickwatch rules` against the local database, and a running `tickwatch run` picking changes up.

use serde_json::Value;

use crate::support::{Dir, LiveRun, tick};

/// The rules listed as JSON lines.
fn listed(dir: &Dir) -> Vec<Value> {
    let run = dir.tickwatch(&["rules", "list", "--format", "json"]);
    run.assert_exit(0);
    run.stdout_json_lines()
}

fn ids(rules: &[Value]) -> Vec<String> {
    rules
        .iter()
        .map(|rule| rule["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_new_database_lists_the_two_default_rules_and_the_first_change_keeps_them() {
    let dir = Dir::new();
    let defaults = listed(&dir);
    assert_eq!(ids(&defaults), ["high", "low"]);
    assert!(
        !dir.path("tickwatch.db").exists(),
        "listing creates no database"
    );
    assert_eq!(defaults[0]["condition"], "above 150");
    assert_eq!(defaults[1]["condition"], "below 50");
    assert_eq!(defaults[0]["fire"], "enter");

    let added = dir.tickwatch(&[
        "rules",
        "add",
        "aapl-200",
        "--symbols",
        "AAPL",
        "--when",
        "above 200",
        "--cooldown",
        "300",
        "--label",
        "AAPL breakout",
    ]);
    added.assert_exit(0);
    assert!(
        added
            .stdout
            .contains("added aapl-200: AAPL above 200, fire enter, cooldown 300 s"),
        "{}",
        added.stdout
    );
    assert!(
        added
            .stderr
            .contains("base rules in force (high, low) were copied"),
        "{}",
        added.stderr
    );
    let rules = listed(&dir);
    assert_eq!(ids(&rules), ["aapl-200", "high", "low"]);
    assert_eq!(rules[0]["label"], "AAPL breakout");
    assert_eq!(rules[0]["cooldown_seconds"], 300);
}

#[test]
fn every_command_validates_and_names_the_field() {
    let dir = Dir::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "rules",
                "add",
                "bad id",
                "--symbols",
                "*",
                "--when",
                "above 1",
            ],
            "id: \"bad id\" has ' '",
        ),
        (
            &["rules", "add", "a", "--when", "above 1"],
            "symbols: required",
        ),
        (
            &["rules", "add", "a", "--symbols", "*"],
            "condition: required",
        ),
        (
            &["rules", "add", "a", "--symbols", "*", "--when", "above ten"],
            "condition: \"ten\" is not a number",
        ),
        (
            &[
                "rules",
                "add",
                "a",
                "--symbols",
                "<img>",
                "--when",
                "above 1",
            ],
            "symbols: has '<'",
        ),
        (
            &[
                "rules",
                "add",
                "a",
                "--symbols",
                "*",
                "--when",
                "above 1",
                "--fire",
                "twice",
            ],
            "fire: must be",
        ),
        (
            &[
                "rules",
                "add",
                "a",
                "--symbols",
                "*",
                "--when",
                "above 1",
                "--fire",
                "once",
                "--cooldown",
                "5",
            ],
            "cooldown_seconds: applies to fire = every or enter",
        ),
        (
            &[
                "rules",
                "add",
                "a",
                "--symbols",
                "*",
                "--when",
                "above 1",
                "--cooldown",
                "soon",
            ],
            "cooldown_seconds: \"soon\" is not a whole number",
        ),
        (
            &[
                "rules",
                "add",
                "high",
                "--symbols",
                "*",
                "--when",
                "above 1",
            ],
            "id: high is taken",
        ),
        (&["rules", "pause", "nope"], "id: no rule has the id nope"),
        (
            &["rules", "edit", "nope", "--when", "above 3"],
            "id: no rule has the id nope",
        ),
    ];
    for (args, expected) in cases {
        let run = dir.tickwatch(args);
        run.assert_exit(1);
        assert!(
            run.stderr.contains(expected),
            "{args:?}: {:?} should contain {expected:?}",
            run.stderr
        );
    }
    assert_eq!(
        ids(&listed(&dir)),
        ["high", "low"],
        "nothing refused was written (and the store is still unwritten)"
    );
    assert!(
        dir.tickwatch(&["rules", "list"])
            .stderr
            .contains("nothing has been written"),
        "still the base rules"
    );
}

#[test]
fn edit_pause_resume_rearm_rm_export_and_import() {
    let dir = Dir::new();
    dir.tickwatch(&[
        "rules",
        "add",
        "once-aapl",
        "--symbols",
        "AAPL",
        "--when",
        "above 200",
        "--fire",
        "once",
    ])
    .assert_exit(0);
    let version = |dir: &Dir| {
        listed(dir)
            .into_iter()
            .find(|rule| rule["id"] == "once-aapl")
            .map(|rule| rule["version"].as_u64().unwrap_or(0))
            .expect("listed")
    };
    let v1 = version(&dir);
    dir.tickwatch(&["rules", "pause", "once-aapl"])
        .assert_exit(0);
    dir.tickwatch(&["rules", "resume", "once-aapl"])
        .assert_exit(0);
    dir.tickwatch(&["rules", "edit", "once-aapl", "--label", "desk 3"])
        .assert_exit(0);
    assert_eq!(
        version(&dir),
        v1,
        "pause, resume and a label keep the rule's state"
    );
    dir.tickwatch(&["rules", "rearm", "once-aapl"])
        .assert_exit(0);
    let v2 = version(&dir);
    assert!(v2 > v1, "a re-arm is a new version");
    dir.tickwatch(&["rules", "edit", "once-aapl", "--when", "above 210"])
        .assert_exit(0);
    assert!(version(&dir) > v2, "a changed condition is a new version");

    let show = dir.tickwatch(&["rules", "show", "once-aapl", "--format", "json"]);
    show.assert_exit(0);
    let shown = &show.stdout_json_lines()[0];
    assert_eq!(
        (shown["condition"].as_str(), shown["label"].as_str()),
        (Some("above 210"), Some("desk 3"))
    );

    let export = dir.tickwatch(&["rules", "export"]);
    export.assert_exit(0);
    dir.write("rules.json", &export.stdout);
    dir.tickwatch(&["rules", "rm", "once-aapl"]).assert_exit(0);
    dir.tickwatch(&["rules", "rm", "high"]).assert_exit(0);
    assert_eq!(ids(&listed(&dir)), ["low"]);

    let other = Dir::new();
    other.write("rules.json", &export.stdout);
    other
        .tickwatch(&[
            "rules",
            "import",
            other.path("rules.json").to_str().expect("utf-8"),
        ])
        .assert_exit(0);
    assert_eq!(ids(&listed(&other)), ["high", "low", "once-aapl"]);
    dir.tickwatch(&[
        "rules",
        "import",
        "--replace",
        dir.path("rules.json").to_str().expect("utf-8"),
    ])
    .assert_exit(0);
    assert_eq!(ids(&listed(&dir)), ["high", "low", "once-aapl"]);

    dir.write(
        "bands.toml",
        "[default]\nhigh = 300\nlow = 10\n\n[symbols.AAPL]\nhigh = 250\n",
    );
    dir.tickwatch(&[
        "rules",
        "import",
        "--replace",
        dir.path("bands.toml").to_str().expect("utf-8"),
    ])
    .assert_exit(0);
    let rules = listed(&dir);
    assert_eq!(ids(&rules), ["high", "high.AAPL", "low", "low.AAPL"]);
    assert_eq!(rules[0]["except"], serde_json::json!(["AAPL"]));
}

/// The acceptance test of the issue: a rule added while `tickwatch run` reads a live pipe alerts
/// on the next tick that matches it, and a paused rule stops alerting. The timeouts only bound a
/// hang.
#[test]
fn a_rule_changed_while_run_reads_a_live_feed_takes_effect_on_the_next_tick() {
    let dir = Dir::new();
    let mut live = LiveRun::start(&dir);

    // The default rule alerts; the run is now past its start.
    live.send(&tick("AAPL", 160.0, "1"));
    assert_eq!(live.next_alert()["rule_id"], "high");

    dir.tickwatch(&[
        "rules",
        "add",
        "aapl-170",
        "--symbols",
        "AAPL",
        "--when",
        "above 170",
        "--label",
        "desk",
    ])
    .assert_exit(0);
    live.send(&tick("AAPL", 171.0, "2"));
    let added = live.next_alert();
    assert_eq!(
        (
            added["rule_id"].as_str(),
            added["label"].as_str(),
            added["price"].as_f64()
        ),
        (Some("aapl-170"), Some("desk"), Some(171.0)),
        "the rule added while running fired on the next matching tick"
    );

    dir.tickwatch(&["rules", "pause", "low"]).assert_exit(0);
    live.send(&tick("MSFT", 10.0, "3"));
    live.send(&tick("MSFT", 160.0, "4"));
    let after_pause = live.next_alert();
    assert_eq!(
        (
            after_pause["symbol"].as_str(),
            after_pause["rule_id"].as_str()
        ),
        (Some("MSFT"), Some("high")),
        "the paused rule raised nothing for the tick at 10; the next alert is the high one"
    );

    live.finish().assert_exit(0);
    assert_eq!(
        dir.listed_alerts(&["--rule", "aapl-170"]).len(),
        1,
        "stored with its rule"
    );
}

#[test]
fn run_with_rules_flags_uses_them_and_says_the_database_rules_wait() {
    let dir = Dir::new();
    dir.tickwatch(&[
        "rules",
        "add",
        "x",
        "--symbols",
        "*",
        "--when",
        "above 1000",
    ])
    .assert_exit(0);
    dir.write_ticks(
        "t.ndjson",
        &[tick("AAPL", 160.0, "1"), tick("AAPL", 170.0, "2")],
    );
    let run = dir.tickwatch(&["run", "--input", "t.ndjson", "--mode", "level"]);
    run.assert_exit(0);
    assert_eq!(
        run.stdout_json_lines().len(),
        2,
        "level: every tick above 150"
    );
    assert!(
        run.stderr.contains("--rules/--mode take their place"),
        "{}",
        run.stderr
    );
}

/// `tickwatch rules` against a deployment's rules table on the emulator: the first change copies
/// the base rules of the function's variables (read from this environment) into the table with
/// it, and what the CLI wrote is what the function's reader loads.
#[test]
fn rules_manage_a_deployments_table_named_directly_or_by_its_outputs() {
    use tickwatch_aws::testing::{Moto, fresh_rule_store};
    use tickwatch_core::ports::RuleStore as _;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let moto = Moto::shared();
    let store = runtime.block_on(async { fresh_rule_store(&moto.clients().await.dynamodb).await });
    let table = store.table().to_owned();
    let dir = Dir::new();
    let env = |extra: &[(&'static str, &'static str)]| {
        let mut env: Vec<(&str, String)> = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    };
    let run = |args: &[&str], extra: &[(&'static str, &'static str)]| {
        let env = env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        dir.tickwatch_env_stdin(args, &env, "")
    };

    // A bad rule variable is refused before anything is written, naming it.
    let refused = run(
        &[
            "rules",
            "add",
            "a",
            "--symbols",
            "*",
            "--when",
            "above 1",
            "--table",
            &table,
        ],
        &[("HIGH_THRESHOLD", "abc")],
    );
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("HIGH_THRESHOLD"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        runtime.block_on(store.rules_version()).expect("reads"),
        None
    );

    let added = run(
        &[
            "rules",
            "add",
            "aapl-200",
            "--symbols",
            "AAPL",
            "--when",
            "above 200",
            "--table",
            &table,
        ],
        &[("HIGH_THRESHOLD", "120"), ("ALERT_MODE", "level")],
    );
    added.assert_exit(0);
    assert!(added.stderr.contains("copied"), "{}", added.stderr);

    dir.write(
        "flat-outputs.json",
        &format!(r#"{{"rules_table_name":"{table}","aws_region":"us-east-1"}}"#),
    );
    let outputs = dir.path("flat-outputs.json");
    let outputs = outputs.to_str().expect("utf-8");
    run(&["rules", "pause", "aapl-200", "--outputs", outputs], &[]).assert_exit(0);
    let listed = run(
        &["rules", "list", "--format", "json", "--outputs", outputs],
        &[],
    );
    listed.assert_exit(0);
    let rules = listed.stdout_json_lines();
    let summary: Vec<(String, String, String, bool)> = rules
        .iter()
        .map(|rule| {
            (
                rule["id"].as_str().unwrap_or_default().to_owned(),
                rule["condition"].as_str().unwrap_or_default().to_owned(),
                rule["fire"].as_str().unwrap_or_default().to_owned(),
                rule["paused"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("aapl-200".into(), "above 200".into(), "enter".into(), true),
            ("high".into(), "above 120".into(), "every".into(), false),
            ("low".into(), "below 50".into(), "every".into(), false),
        ],
        "the variables' base rules were copied in with the first change"
    );

    // The function's reader sees exactly that.
    let loaded = runtime
        .block_on(store.load_rules())
        .expect("reads")
        .expect("written");
    assert_eq!(loaded.version, 2);
    assert!(loaded.invalid.is_empty());
    assert_eq!(loaded.rules.len(), 3);
}
