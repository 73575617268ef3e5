//! Table-driven tests of the legacy band configuration and its translation into rules.

use super::*;
use crate::tick::{Price, Symbol, Tick, Timestamp};

fn rule(mode: Mode, hysteresis: f64) -> Band {
    Band::new(150.0, 50.0, hysteresis, mode).expect("valid band")
}

fn tick(price: f64, at_ms: i64) -> Tick {
    Tick {
        symbol: Symbol::parse("AAPL").expect("valid"),
        price: Price::new(price).expect("valid"),
        at: Timestamp::from_epoch_ms(at_ms).expect("valid"),
        volume: crate::tick::Volume::ZERO,
    }
}

/// Runs a sequence of (price, time) ticks through the rules a band translates into, threading
/// the state, and returns a compact trace: `H`/`L` the `high`/`low` rule fired, `r` re-arm, `.`
/// quiet, `s` stale.
fn trace(band: &Band, ticks: &[(f64, i64)]) -> String {
    let book = RuleBook::from(*band);
    let rules = book.for_symbol(&tick(1.0, 1).symbol);
    let mut cursor = Cursor::new(&rules, None);
    ticks
        .iter()
        .map(|&(price, at)| {
            let evaluation = cursor.step(&tick(price, at));
            let fired: String = evaluation
                .fired
                .iter()
                .map(|fired| match rules.rules()[fired.rule].id().as_str() {
                    "high" => 'H',
                    "low" => 'L',
                    other => panic!("unexpected rule {other}"),
                })
                .collect();
            match (fired.as_str(), evaluation.rearmed, evaluation.stale) {
                ("", _, true) => "s".to_owned(),
                ("", true, _) => "r".to_owned(),
                ("", false, _) => ".".to_owned(),
                (fired, _, _) => fired.to_owned(),
            }
        })
        .collect()
}

/// Ticks at times 1, 2, 3, ... with the given prices.
fn seq(prices: &[f64]) -> Vec<(f64, i64)> {
    prices
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i as i64 + 1))
        .collect()
}

#[test]
fn cross_mode_edges() {
    let cross = rule(Mode::Cross, 0.0);
    let cases: &[(&str, Vec<(f64, i64)>, &str)] = &[
        ("inside the band", seq(&[100.0, 120.0, 60.0]), "..."),
        (
            "exactly at the thresholds raises nothing",
            seq(&[150.0, 50.0, 150.0]),
            "...",
        ),
        ("just beyond", seq(&[150.01, 49.99]), "HL"),
        (
            "first tick already high counts as entering",
            seq(&[151.0]),
            "H",
        ),
        (
            "first tick already low counts as entering",
            seq(&[10.0]),
            "L",
        ),
        (
            "staying high alerts once",
            seq(&[160.0, 170.0, 155.0, 151.0]),
            "H...",
        ),
        (
            "re-arms inside the band, alerts again",
            seq(&[160.0, 100.0, 160.0]),
            "HrH",
        ),
        (
            "back exactly to the threshold re-arms",
            seq(&[160.0, 150.0, 160.0]),
            "HrH",
        ),
        (
            "gapping over both thresholds",
            seq(&[160.0, 40.0, 160.0]),
            "HLH",
        ),
        ("low then back", seq(&[40.0, 45.0, 50.0, 49.0]), "L.rL"),
        (
            "out of order: older tick is stale",
            vec![(160.0, 10), (40.0, 5), (100.0, 11)],
            "Hsr",
        ),
        (
            "same timestamp twice (duplicate)",
            vec![(160.0, 10), (160.0, 10)],
            "Hs",
        ),
        (
            "equal time after a change is stale",
            vec![(160.0, 10), (100.0, 10)],
            "Hs",
        ),
        (
            "quiet ticks move the stale horizon too",
            vec![(160.0, 10), (170.0, 20), (100.0, 15)],
            "H.s",
        ),
        (
            "a late tick cannot re-arm behind newer ones",
            vec![(160.0, 0), (158.0, 19), (50.0, 1), (158.0, 20)],
            "H.s.",
        ),
    ];
    for (name, ticks, expected) in cases {
        assert_eq!(trace(&cross, ticks), *expected, "{name}");
    }
}

#[test]
fn hysteresis_delays_rearming() {
    let cross = rule(Mode::Cross, 5.0);
    let cases: &[(&str, &[f64], &str)] = &[
        (
            "dips inside but not far enough",
            &[160.0, 149.0, 160.0],
            "H..",
        ),
        (
            "exactly high - hysteresis re-arms",
            &[160.0, 145.0, 160.0],
            "HrH",
        ),
        ("far enough re-arms", &[160.0, 140.0, 151.0], "HrH"),
        ("low side mirrors", &[40.0, 52.0, 40.0, 55.0, 49.0], "L..rL"),
        (
            "gap to the other zone ignores hysteresis",
            &[160.0, 40.0],
            "HL",
        ),
        ("first tick inside the band is quiet", &[148.0, 151.0], ".H"),
    ];
    for (name, prices, expected) in cases {
        assert_eq!(trace(&cross, &seq(prices)), *expected, "{name}");
    }
}

#[test]
fn level_mode_alerts_on_every_tick_beyond() {
    let level = rule(Mode::Level, 0.0);
    let cases: &[(&str, Vec<(f64, i64)>, &str)] = &[
        (
            "every tick beyond alerts",
            seq(&[160.0, 170.0, 40.0, 100.0, 151.0]),
            "HHL.H",
        ),
        ("thresholds themselves are quiet", seq(&[150.0, 50.0]), ".."),
        ("order does not matter", vec![(160.0, 10), (160.0, 5)], "HH"),
    ];
    for (name, ticks, expected) in cases {
        assert_eq!(trace(&level, ticks), *expected, "{name}");
    }
}

#[test]
fn the_cursor_gives_the_state_to_store_unless_every_tick_was_stale() {
    let book = RuleBook::from(rule(Mode::Cross, 0.0));
    let rules = book.for_symbol(&tick(1.0, 1).symbol);
    let at = |ms| Timestamp::from_epoch_ms(ms).expect("valid");
    let high = RuleState {
        rule: RuleId::parse("high").expect("valid"),
        version: 1,
        phase: Phase::Fired,
        last_alert: None,
        window: None,
    };

    let mut cursor = Cursor::new(&rules, None);
    cursor.step(&tick(160.0, 1));
    let state = cursor.finish().expect("moved");
    assert_eq!(
        state,
        SymbolState {
            last_seen: at(1),
            rules: vec![high]
        }
    );

    // Quiet ticks still move last_seen; a re-armed rule is back in its initial state, not stored.
    let mut cursor = Cursor::new(&rules, Some(&state));
    assert!(cursor.step(&tick(100.0, 3)).rearmed);
    assert_eq!(
        cursor.finish(),
        Some(SymbolState {
            last_seen: at(3),
            rules: vec![]
        })
    );

    // Only stale ticks: nothing to write.
    let mut cursor = Cursor::new(&rules, Some(&state));
    assert!(cursor.step(&tick(100.0, 1)).stale);
    assert_eq!(cursor.finish(), None);

    // Stateless rules (level) keep no state and see every tick.
    let level = RuleBook::from(rule(Mode::Level, 0.0));
    let level_rules = level.for_symbol(&tick(1.0, 1).symbol);
    let mut cursor = Cursor::new(&level_rules, Some(&state));
    assert_eq!(cursor.step(&tick(170.0, 0)).fired.len(), 1);
    assert_eq!(cursor.finish(), None);
}

#[test]
fn rule_validation() {
    let cases: &[((f64, f64, f64), Option<&str>)] = &[
        ((150.0, 50.0, 0.0), None),
        ((150.0, 0.0, 0.0), None),
        ((150.0, 50.0, 99.0), None),
        (
            (150.0, 150.0, 0.0),
            Some("low: (150) must be below high (150)"),
        ),
        (
            (100.0, 120.0, 0.0),
            Some("low: (120) must be below high (100)"),
        ),
        (
            (f64::NAN, 50.0, 0.0),
            Some("high: must be a finite number, got NaN"),
        ),
        (
            (f64::INFINITY, 50.0, 0.0),
            Some("high: must be a finite number, got inf"),
        ),
        ((150.0, -1.0, 0.0), Some("low: must not be negative")),
        (
            (150.0, 50.0, -1.0),
            Some("hysteresis: must not be negative"),
        ),
        (
            (150.0, 50.0, 100.0),
            Some("hysteresis: (100) must be smaller than high - low (100)"),
        ),
        ((1e12, 50.0, 0.0), Some("high: must be below 1e12")),
    ];
    for &((high, low, hysteresis), expected) in cases {
        let result = Band::new(high, low, hysteresis, Mode::Cross);
        match expected {
            None => assert!(result.is_ok(), "{high} {low} {hysteresis}: {result:?}"),
            Some(message) => {
                let error = result.expect_err("should be refused").to_string();
                assert!(
                    error.contains(message),
                    "{error:?} should contain {message:?}"
                );
            }
        }
    }
}

fn base() -> Band {
    Band::new(
        HIGH_THRESHOLD_DEFAULT,
        LOW_THRESHOLD_DEFAULT,
        0.0,
        Mode::Cross,
    )
    .expect("valid")
}

fn sym(text: &str) -> Symbol {
    Symbol::parse(text).expect("valid")
}

#[test]
fn rules_file_overlays_default_then_symbol() {
    let text = r#"
# tickwatch rules
[default]
high = 160
mode = "level"

[symbols.AAPL]
high = 200
low = 120

[symbols."BRK.B"]
mode = "cross"
hysteresis = 2.5
"#;
    let rules = BandSet::from_toml(base(), text).expect("valid file");
    let default = rules.default_band();
    assert_eq!(
        (default.high(), default.low(), default.mode()),
        (160.0, 50.0, Mode::Level)
    );
    let aapl = rules.band_for(&sym("AAPL"));
    assert_eq!(
        (aapl.high(), aapl.low(), aapl.mode()),
        (200.0, 120.0, Mode::Level)
    );
    let brk = rules.band_for(&sym("BRK.B"));
    assert_eq!(
        (brk.high(), brk.mode(), brk.hysteresis()),
        (160.0, Mode::Cross, 2.5)
    );
    assert_eq!(rules.band_for(&sym("MSFT")), default);
    assert_eq!(
        BandSet::from_toml(base(), "")
            .expect("empty file is fine")
            .default_band(),
        &base()
    );
}

#[test]
fn rules_file_errors_name_the_line_of_the_key() {
    // (file, the whole message)
    let cases: &[(&str, &str)] = &[
        (
            "[default]\nhigh = 150\nlow = 150\n",
            "line 3 [default] low: (150) must be below high (150)",
        ),
        (
            "[default]\nhigh = nan\n",
            "line 2 [default] high: must be a finite number, got NaN",
        ),
        (
            "[default]\nhigh = inf\n",
            "line 2 [default] high: must be a finite number, got inf",
        ),
        (
            "[default]\nlow = -inf\n",
            "line 2 [default] low: must be a finite number, got -inf",
        ),
        (
            "[default]\nmode = \"level\"\n\nhigh = 1e300\n",
            "line 4 [default] high: must be below 1e12, got 1e300",
        ),
        (
            "[default]\nhigh = 100\nlow = 1e300\n",
            "line 3 [default] low: must be below 1e12, got 1e300",
        ),
        (
            "[default]\nhysteresis = -1e-300\n",
            "line 2 [default] hysteresis: must not be negative, got -1e-300",
        ),
        (
            "[default]\nhysteresis = 1e20\n",
            "line 2 [default] hysteresis: must be below 1e12, got 1e20",
        ),
        (
            "[default]\nhgih = 150\n",
            "line 2: unknown field `hgih`, expected one of `high`, `low`, `mode`, `hysteresis`",
        ),
        (
            "[defaults]\nhigh = 150\n",
            "line 1: unknown field `defaults`, expected `default` or `symbols`",
        ),
        (
            "[default]\nmode = \"edge\"\n",
            "line 2: unknown variant `edge`, expected `level` or `cross`",
        ),
        (
            "[default]\nhigh = \"150\"\n",
            "line 2: invalid type: string \"150\", expected f64",
        ),
        (
            "\n\n[symbols.AAPL]\nhigh = 100\nlow = 120\n",
            "line 5 [symbols.AAPL] low: (120) must be below high (100)",
        ),
        // `low` is inherited: the key it was compared with is the one to fix.
        (
            "[default]\nlow = 120\n\n[symbols.AAPL]\nmode = \"level\"\nhigh = 100\n",
            "line 6 [symbols.AAPL] low: (120) must be below high (100)",
        ),
        // Neither is written in the table: its header line.
        (
            "[symbols.AAPL]\nmode = \"level\"\n\n[default]\nhigh = 40\n",
            "line 5 [default] low: (50) must be below high (40)",
        ),
        (
            "[symbols]\nAAPL = { mode = \"level\",\n  hysteresis = 200 }\n",
            "line 3 [symbols.AAPL] hysteresis: (200) must be smaller than high - low (100)",
        ),
        (
            "[symbols.\"A$\"]\nhigh = 200\n",
            "line 1 [symbols.\"A$\"]: symbol: has '$' at position 2",
        ),
        (
            "[symbols.AAPL]\nhigh = 200\nfoo = 1\n",
            "line 3: unknown field `foo`",
        ),
        ("[default\n", "line 1"),
        // Input is echoed with control characters escaped.
        (
            "[symbols.\"A\\u001b[31m\"]\nhigh = 200\n",
            "line 1 [symbols.\"A\\u{1b}[31m\"]: symbol: has U+001B at position 2",
        ),
        (
            "[default]\n\"h\\u001bigh\" = 100\n",
            "line 2: unknown field `h\\u{1b}igh`",
        ),
        (
            "[default]\nmode = \"x\\u009by\"\n",
            "line 2: unknown variant `x\\u{9b}y`",
        ),
    ];
    for (text, expected) in cases {
        let error = BandSet::from_toml(base(), text)
            .expect_err("should be refused")
            .to_string();
        assert!(
            error.starts_with(expected),
            "{text:?}: {error:?} should start with {expected:?}"
        );
        assert!(
            !error.chars().any(char::is_control),
            "{text:?}: {error:?} has a raw control character"
        );
        assert!(error.len() < 200, "{text:?}: {error:?} is long");
    }
}

#[test]
fn json_overrides_for_the_lambda() {
    let rules = BandSet::from_json_overrides(
        base(),
        "RULES",
        r#"{"AAPL":{"high":200,"low":120},"X":{"mode":"level"}}"#,
    )
    .expect("valid");
    assert_eq!(rules.band_for(&sym("AAPL")).high(), 200.0);
    assert_eq!(rules.band_for(&sym("X")).mode(), Mode::Level);
    assert_eq!(rules.band_for(&sym("Y")), &base());

    let cases: &[(&str, &str)] = &[
        (
            r#"{"AAPL":{"high":100,"low":120}}"#,
            "RULES.AAPL low: (120) must be below high (100)",
        ),
        (r#"{"AAPL":{"hi":100}}"#, "RULES: unknown field `hi`"),
        (r#"{"A A":{"high":200}}"#, r#"RULES."A A": symbol:"#),
        (r#"["AAPL"]"#, "RULES: invalid type"),
        (r#"{"AAPL":{"high":1e999}}"#, "RULES:"),
        (
            r#"{"AAPL":{"high":1e300}}"#,
            "RULES.AAPL high: must be below 1e12, got 1e300",
        ),
        (
            r#"{"AAPL":{"low":-1e-300}}"#,
            "RULES.AAPL low: must not be negative, got -1e-300",
        ),
        (
            r#"{"A\u001b":{"high":200}}"#,
            r#"RULES."A\u{1b}": symbol: has U+001B"#,
        ),
        (
            r#"{"AAPL":{"h\u001b":1}}"#,
            r#"RULES: unknown field `h\u{1b}`"#,
        ),
    ];
    for (text, expected) in cases {
        let error = BandSet::from_json_overrides(base(), "RULES", text)
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains(expected),
            "{text}: {error:?} should contain {expected:?}"
        );
        assert!(
            !error.chars().any(char::is_control),
            "{text}: {error:?} has a raw control character"
        );
    }
}

#[path = "fire_tests.rs"]
mod fire_tests;
