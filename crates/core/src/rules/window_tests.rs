//! Table tests of the window conditions: `rise`, `fall`, `volume` and `crosses_ma`, their
//! windows to the millisecond, stale and duplicated ticks, firing policies, edits and the state
//! codec.

use std::collections::HashMap;

use super::*;
use crate::tick::{Price, Symbol, Tick, Timestamp, Volume};

/// A day boundary, so that every interval of the windows used here starts on it.
const BASE_MS: i64 = 20_000 * 86_400_000;

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;

fn rule(json: &str) -> Rule {
    Rule::from_doc(RuleDoc::from_json(json).expect("valid JSON rule")).expect("valid rule")
}

/// `{"id":"w","symbols":"*","condition":<condition>,"fire":<fire>}`.
fn window_rule(condition: &str, fire: &str) -> Rule {
    rule(&format!(
        r#"{{"id":"w","symbols":"*","condition":"{condition}","fire":"{fire}"}}"#
    ))
}

/// A tick of `X`: price, ms after [`BASE_MS`], volume.
fn tick(price: f64, ms: i64, volume: f64) -> Tick {
    Tick {
        symbol: Symbol::parse("X").expect("valid"),
        price: Price::new(price).expect("valid"),
        at: Timestamp::from_epoch_ms(BASE_MS + ms).expect("valid"),
        volume: Volume::new(volume).expect("valid"),
    }
}

/// Feeds ticks through one rule, storing the state after each (as a batch of one would), and
/// says what each did: `F` fired (with the threshold in `thresholds`), `r` re-armed, `s` stale,
/// `.` nothing.
struct Run {
    book: RuleBook,
    state: Option<SymbolState>,
    thresholds: Vec<f64>,
}

impl Run {
    fn new(rules: Vec<Rule>) -> Run {
        Run {
            book: RuleBook::new(rules).expect("valid book"),
            state: None,
            thresholds: Vec::new(),
        }
    }

    fn feed(&mut self, ticks: &[(f64, i64, f64)]) -> String {
        let mut trace = String::new();
        for &(price, ms, volume) in ticks {
            let t = tick(price, ms, volume);
            let rules = self.book.for_symbol(&t.symbol);
            let mut cursor = Cursor::new(&rules, self.state.as_ref());
            let evaluation = cursor.step(&t);
            if let Some(next) = cursor.finish() {
                // Through the codec, as every store does.
                let bytes = encode_rule_states(&next.rules);
                let rules = decode_rule_states(&bytes).expect("decodes");
                assert_eq!(rules, next.rules, "the state survives its codec");
                self.state = Some(SymbolState {
                    last_seen: next.last_seen,
                    rules,
                });
            }
            trace.push(if !evaluation.fired.is_empty() {
                self.thresholds.push(evaluation.fired[0].threshold);
                'F'
            } else if evaluation.stale {
                's'
            } else if evaluation.rearmed {
                'r'
            } else {
                '.'
            });
        }
        trace
    }
}

fn trace(condition: &str, fire: &str, ticks: &[(f64, i64, f64)]) -> String {
    Run::new(vec![window_rule(condition, fire)]).feed(ticks)
}

#[test]
fn rise_and_fall() {
    let s = SECOND_MS;
    let cases: &[(&str, &str, &[(f64, i64, f64)], &str)] = &[
        (
            "exactly 10 % above the low counts",
            "rise 10% within 1h",
            &[(100.0, 0, 0.0), (110.0, s, 0.0)],
            ".F",
        ),
        (
            "just under 10 % does not",
            "rise 10% within 1h",
            &[(100.0, 0, 0.0), (109.99, s, 0.0)],
            "..",
        ),
        (
            "decimal prices: 1.1 to 1.21 is exactly 10 %",
            "rise 10% within 1h",
            &[(1.1, 0, 0.0), (1.21, s, 0.0)],
            ".F",
        ),
        (
            "from the lowest price of the window, not the first",
            "rise 10% within 1h",
            &[(100.0, 0, 0.0), (95.0, s, 0.0), (104.5, 2 * s, 0.0)],
            "..F",
        ),
        (
            "exactly 10 % below the high counts",
            "fall 10% within 1h",
            &[(100.0, 0, 0.0), (90.0, s, 0.0)],
            ".F",
        ),
        (
            "just over 90 % of the high does not",
            "fall 10% within 1h",
            &[(100.0, 0, 0.0), (90.01, s, 0.0)],
            "..",
        ),
        (
            "decimal prices: 1.21 to 1.089 is exactly 10 %",
            "fall 10% within 1h",
            &[(1.21, 0, 0.0), (1.089, s, 0.0)],
            ".F",
        ),
        (
            "a fall from the highest price of the window",
            "fall 10% within 1h",
            &[(100.0, 0, 0.0), (120.0, s, 0.0), (108.0, 2 * s, 0.0)],
            "..F",
        ),
        (
            "enter fires once while the rise holds, re-arms when it stops",
            "rise 10% within 1h",
            &[
                (100.0, 0, 0.0),
                (111.0, s, 0.0),
                (112.0, 2 * s, 0.0),
                (105.0, 3 * s, 0.0),
                (111.0, 4 * s, 0.0),
            ],
            ".F.rF",
        ),
    ];
    for (name, condition, ticks, expected) in cases {
        assert_eq!(trace(condition, "enter", ticks), *expected, "{name}");
    }
    let mut run = Run::new(vec![window_rule("rise 10% within 1h", "every")]);
    assert_eq!(run.feed(&[(100.0, 0, 0.0), (111.0, s, 0.0)]), ".F");
    assert_eq!(
        run.thresholds,
        [110.0],
        "the threshold is the low plus 10 %"
    );
}

#[test]
fn window_boundaries_to_the_millisecond() {
    // A 1-minute window is 60 intervals of one second: at a tick in second 60 the window is
    // seconds 1..=60, so a low at 999 ms has left it and a low at 1000 ms has not.
    let cases: &[(&str, &[(f64, i64, f64)], &str)] = &[
        (
            "the low 59.001 s earlier, in the oldest interval of the window",
            &[(100.0, 1000, 0.0), (110.0, 60_001, 0.0)],
            ".F",
        ),
        (
            "the low at the first millisecond of the oldest interval",
            &[(100.0, 1000, 0.0), (110.0, 60_999, 0.0)],
            ".F",
        ),
        (
            "the low one millisecond before the window",
            &[(100.0, 999, 0.0), (110.0, 60_000, 0.0)],
            "..",
        ),
        (
            "the same ticks one millisecond later are in",
            &[(100.0, 1000, 0.0), (110.0, 60_000, 0.0)],
            ".F",
        ),
        (
            "a gap longer than the window forgets the low",
            &[(100.0, 0, 0.0), (110.0, 61 * SECOND_MS, 0.0)],
            "..",
        ),
        (
            "a gap of hours forgets it too",
            &[(100.0, 0, 0.0), (110.0, 5 * HOUR_MS, 0.0)],
            "..",
        ),
    ];
    for (name, ticks, expected) in cases {
        assert_eq!(
            trace("rise 10% within 1m", "every", ticks),
            *expected,
            "{name}"
        );
    }
    // An hour's window has 1-minute intervals: 59 whole minutes back plus the current one.
    let hour: &[(f64, i64, f64)] = &[(100.0, 0, 0.0), (110.0, 59 * MINUTE_MS + 59_999, 0.0)];
    assert_eq!(trace("rise 10% within 1h", "every", hour), ".F");
    let hour: &[(f64, i64, f64)] = &[(100.0, 0, 0.0), (110.0, HOUR_MS, 0.0)];
    assert_eq!(trace("rise 10% within 1h", "every", hour), "..");
}

#[test]
fn volume_spikes() {
    let m = MINUTE_MS;
    let cases: &[(&str, &[(f64, i64, f64)], &str)] = &[
        (
            "an empty window has no average: no alert, whatever the volume",
            &[(100.0, 0, 1e9), (100.0, 1, 1e9)],
            "..",
        ),
        (
            "exactly 3x the average of the earlier intervals counts",
            &[(100.0, 0, 100.0), (100.0, m, 200.0), (100.0, 2 * m, 450.0)],
            "..F",
        ),
        (
            "just under does not",
            &[(100.0, 0, 100.0), (100.0, m, 200.0), (100.0, 2 * m, 449.0)],
            "...",
        ),
        (
            "the interval's volume adds up over its ticks",
            &[
                (100.0, 0, 100.0),
                (100.0, m, 200.0),
                (100.0, m + 1, 50.0),
                (100.0, m + 2, 50.0),
            ],
            "...F",
        ),
        (
            "intervals without ticks do not lower the average",
            &[
                (100.0, 0, 100.0),
                (100.0, 30 * m, 299.0),
                (100.0, 30 * m + 1, 1.0),
            ],
            "..F",
        ),
        (
            "ticks without volume count as zero",
            &[(100.0, 0, 100.0), (100.0, m, 0.0), (100.0, 2 * m, 150.0)],
            "..F",
        ),
        (
            "an interval of zero volume after zero-volume ones is no spike",
            &[(100.0, 0, 0.0), (100.0, m, 0.0)],
            "..",
        ),
        (
            "any volume over an average of zero is a spike",
            &[(100.0, 0, 0.0), (100.0, m, 1.0)],
            ".F",
        ),
        (
            "the window forgets old intervals: a gap empties it",
            &[(100.0, 0, 100.0), (100.0, 2 * HOUR_MS, 1000.0)],
            "..",
        ),
    ];
    for (name, ticks, expected) in cases {
        assert_eq!(
            trace("volume 3x over 1h", "every", ticks),
            *expected,
            "{name}"
        );
    }
    let mut run = Run::new(vec![window_rule("volume 3x over 1h", "every")]);
    run.feed(&[(100.0, 0, 100.0), (100.0, m, 200.0), (100.0, 2 * m, 450.0)]);
    assert_eq!(run.thresholds, [450.0], "3 x the average of 150");
}

#[test]
fn moving_average_crosses() {
    let m = MINUTE_MS;
    // Closes 100, 100, then the price moves around their average.
    let up: &[(f64, i64, f64)] = &[
        (100.0, 0, 0.0),
        (90.0, m, 0.0),
        (110.0, 2 * m, 0.0),
        (120.0, 2 * m + 1, 0.0),
        (80.0, 3 * m, 0.0),
    ];
    let cases: &[(&str, &str, &[(f64, i64, f64)], &str)] = &[
        ("up: below then above", "crosses_ma 1h up", up, "..F.."),
        ("down: above then below", "crosses_ma 1h down", up, "....F"),
        ("either: both", "crosses_ma 1h", up, "..F.F"),
        (
            "no cross before the price has been on one side",
            "crosses_ma 1h",
            &[(100.0, 0, 0.0), (110.0, m, 0.0)],
            "..",
        ),
        (
            "touching the average is no cross",
            "crosses_ma 1h",
            &[
                (100.0, 0, 0.0),
                (90.0, m, 0.0),
                (95.0, 2 * m, 0.0),
                (90.0, 3 * m, 0.0),
            ],
            "....",
        ),
    ];
    for (name, condition, ticks, expected) in cases {
        assert_eq!(trace(condition, "every", ticks), *expected, "{name}");
    }
    let mut run = Run::new(vec![window_rule("crosses_ma 1h up", "every")]);
    run.feed(up);
    assert_eq!(run.thresholds, [100.0], "the average of 100, 90 and 110");
    let book = RuleBook::new(vec![window_rule("crosses_ma 1h", "every")]).expect("valid");
    let rules = book.for_symbol(&tick(1.0, 0, 0.0).symbol);
    let mut cursor = Cursor::new(&rules, None);
    let kinds: Vec<_> = up
        .iter()
        .flat_map(|&(p, ms, v)| cursor.step(&tick(p, ms, v)).fired)
        .map(|fired| fired.kind)
        .collect();
    assert_eq!(kinds, [crate::AlertKind::High, crate::AlertKind::Low]);
}

#[test]
fn late_and_duplicated_ticks_change_nothing() {
    let s = SECOND_MS;
    let cases: &[(&str, &str, &[(f64, i64, f64)], &str)] = &[
        (
            "a late low does not enter the window",
            "rise 10% within 1h",
            &[
                (100.0, 0, 0.0),
                (101.0, 10 * s, 0.0),
                (80.0, 5 * s, 0.0),
                (95.0, 11 * s, 0.0),
            ],
            "..s.",
        ),
        (
            "a duplicated tick does not count its volume twice",
            "volume 2x over 1h",
            &[
                (100.0, 0, 100.0),
                (100.0, MINUTE_MS, 150.0),
                (100.0, MINUTE_MS, 150.0),
                (100.0, MINUTE_MS + 1, 49.0),
            ],
            "..s.",
        ),
        (
            "a late tick cannot make a cross",
            "crosses_ma 1h",
            &[
                (100.0, 0, 0.0),
                (90.0, MINUTE_MS, 0.0),
                (200.0, 30 * s, 0.0),
                (92.0, MINUTE_MS + 1, 0.0),
            ],
            "..s.",
        ),
    ];
    for (name, condition, ticks, expected) in cases {
        assert_eq!(trace(condition, "every", ticks), *expected, "{name}");
    }
}

#[test]
fn firing_policies_and_cooldowns_apply_to_window_rules() {
    let m = MINUTE_MS;
    let rising: &[(f64, i64, f64)] = &[
        (100.0, 0, 0.0),
        (111.0, m, 0.0),
        (112.0, 2 * m, 0.0),
        (113.0, 3 * m, 0.0),
        (100.0, 4 * m, 0.0),
        (114.0, 10 * m, 0.0),
    ];
    assert_eq!(trace("rise 10% within 1h", "every", rising), ".FFF.F");
    assert_eq!(trace("rise 10% within 1h", "enter", rising), ".F..rF");
    assert_eq!(trace("rise 10% within 1h", "once", rising), ".F....");
    let cooled = rule(
        r#"{"id":"w","symbols":"*","condition":"rise 10% within 1h","fire":"every","cooldown_seconds":120}"#,
    );
    assert_eq!(Run::new(vec![cooled]).feed(rising), ".F.F.F");
}

#[test]
fn paused_window_rules_follow_their_window() {
    let paused = rule(
        r#"{"id":"w","symbols":"*","condition":"rise 10% within 1h","fire":"every","paused":true}"#,
    );
    let mut run = Run::new(vec![paused.clone()]);
    assert_eq!(run.feed(&[(100.0, 0, 0.0), (111.0, MINUTE_MS, 0.0)]), "..");
    // Resumed: the low it saw while paused still counts.
    let resumed = RuleDoc {
        paused: false,
        ..paused.doc().clone()
    };
    run.book = RuleBook::new(vec![Rule::from_doc(resumed).expect("valid")]).expect("valid");
    assert_eq!(run.feed(&[(112.0, 2 * MINUTE_MS, 0.0)]), "F");
}

#[test]
fn an_edit_keeps_the_window_when_its_statistic_and_span_stay() {
    let first = window_rule("rise 10% within 1h", "every");
    let mut run = Run::new(vec![first.clone()]);
    run.feed(&[(100.0, 0, 0.0), (105.0, MINUTE_MS, 0.0)]);
    let edit = |condition: &str| {
        let mut doc = first.doc().clone();
        doc.condition = condition.parse().expect("valid condition");
        doc.version = 2;
        RuleBook::new(vec![Rule::from_doc(doc).expect("valid")]).expect("valid")
    };
    let before = run.state.clone();
    // A lower percentage over the same window keeps the low of 100.
    run.book = edit("rise 5% within 1h");
    assert_eq!(run.feed(&[(105.0, 2 * MINUTE_MS, 0.0)]), "F");
    // Another span starts an empty window.
    run.state = before;
    run.book = edit("rise 5% within 2h");
    assert_eq!(run.feed(&[(105.0, 2 * MINUTE_MS, 0.0)]), ".");
}

#[test]
fn window_state_is_bounded_and_round_trips() {
    let rules = vec![
        rule(r#"{"id":"r","symbols":"*","condition":"rise 10% within 1h","fire":"every"}"#),
        rule(r#"{"id":"v","symbols":"*","condition":"volume 3x over 1h","fire":"every"}"#),
        rule(r#"{"id":"m","symbols":"*","condition":"crosses_ma 1h","fire":"every"}"#),
    ];
    let mut run = Run::new(rules);
    // Ticks every 10 s for three hours: every interval of every window holds a value.
    let ticks: Vec<(f64, i64, f64)> = (0..1080)
        .map(|i| (100.0 + (i % 17) as f64, i * 10 * SECOND_MS, 10.0))
        .collect();
    run.feed(&ticks);
    let state = run.state.expect("state");
    let bytes = encode_rule_states(&state.rules);
    // 3 + per rule: 1 + 1 id byte + 8 + 1 + 8 + 1 (window) + 22 + 60 x 8.
    assert_eq!(bytes.len(), 3 + 3 * (1 + 1 + 8 + 1 + 8 + 1 + 22 + 480));
    assert_eq!(decode_rule_states(&bytes).expect("decodes"), state.rules);
}

#[test]
fn bad_window_bytes_are_refused_and_format_1_still_reads() {
    let mut series = window_rule("rise 10% within 1h", "every")
        .condition()
        .window()
        .expect("window")
        .series();
    let condition = *window_rule("rise 10% within 1h", "every")
        .condition()
        .window()
        .expect("window");
    condition.observe(&mut series, &tick(100.0, 0, 0.0));
    let state = RuleState {
        window: Some(Box::new(series)),
        ..RuleState::armed(RuleId::parse("w").expect("valid"), 1)
    };
    let bytes = encode_rule_states(std::slice::from_ref(&state));
    for cut in 1..bytes.len() {
        assert!(decode_rule_states(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let window_at = 3 + 1 + 1 + 8 + 1 + 8;
    let mut bad_tag = bytes.clone();
    bad_tag[window_at] = 7;
    assert!(decode_rule_states(&bad_tag).is_err());
    let mut bad_stat = bytes.clone();
    bad_stat[window_at + 1] = 9;
    assert!(decode_rule_states(&bad_stat).is_err());
    let mut nan = bytes.clone();
    let value_at = bytes.len() - 8;
    nan[value_at..].copy_from_slice(&f64::NAN.to_be_bytes());
    assert!(decode_rule_states(&nan).is_err());
    // Format 1: the same without the window byte.
    let mut v1 = bytes[..window_at].to_vec();
    v1[0] = 1;
    let read = decode_rule_states(&v1).expect("format 1 reads");
    assert_eq!(
        read,
        [RuleState::armed(RuleId::parse("w").expect("valid"), 1)]
    );
}

#[test]
fn window_conditions_parse_print_and_name_their_field() {
    for text in [
        "rise 10% within 1h",
        "fall 2.5% within 30m",
        "volume 3x over 1d",
        "crosses_ma 4h",
        "crosses_ma 90m up",
        "crosses_ma 1h down",
        "rise 10% within 5d",
    ] {
        let condition: Condition = text.parse().expect(text);
        assert_eq!(condition.to_string(), text);
    }
    let same: &[(&str, &str)] = &[
        ("volume 3× over 60m", "volume 3x over 1h"),
        ("crosses_ma 1440m either", "crosses_ma 1d"),
        ("rise  10%  within  120m", "rise 10% within 2h"),
    ];
    for (text, canonical) in same {
        let condition: Condition = text.parse().expect(text);
        assert_eq!(condition.to_string(), *canonical);
    }
    let bad: &[(&str, &str)] = &[
        ("rise 10 within 1h", "the percentage must end in '%'"),
        ("rise -5% within 1h", "must be above 0"),
        ("rise 0% within 1h", "must be above 0"),
        ("fall 100% within 1h", "a fall must be below 100%"),
        ("rise 10% within 1s", "window must be a whole number"),
        ("rise 10% within 0m", "window must be 1m to 31d"),
        ("rise 10% within 32d", "window must be 1m to 31d"),
        ("rise 10% within h", "window must be a whole number"),
        ("volume 3 over 1h", "the factor must end in 'x'"),
        ("crosses_ma 1h sideways", "up, down or either"),
        ("sideways 1h", "must be \"above X\""),
    ];
    for (text, reason) in bad {
        let error = text.parse::<Condition>().expect_err(text).to_string();
        assert!(error.starts_with("condition: "), "{text}: {error}");
        assert!(error.contains(reason), "{text}: {error}");
    }
    let hysteresis = RuleDoc::from_json(
        r#"{"id":"w","symbols":"*","condition":"rise 10% within 1h","hysteresis":1}"#,
    )
    .expect("valid JSON");
    let error = Rule::from_doc(hysteresis).expect_err("refused").to_string();
    assert!(error.starts_with("hysteresis: "), "{error}");
}

#[test]
fn many_symbols_keep_their_own_windows() {
    let book = RuleBook::new(vec![window_rule("rise 10% within 1h", "every")]).expect("valid");
    let mut states: HashMap<Symbol, SymbolState> = HashMap::new();
    let mut fired = Vec::new();
    for (symbol, price, ms) in [
        ("A", 100.0, 0),
        ("B", 50.0, 1),
        ("A", 110.0, 2),
        ("B", 54.0, 3),
    ] {
        let mut t = tick(price, ms, 0.0);
        t.symbol = Symbol::parse(symbol).expect("valid");
        let rules = book.for_symbol(&t.symbol);
        let mut cursor = Cursor::new(&rules, states.get(&t.symbol));
        if !cursor.step(&t).fired.is_empty() {
            fired.push(symbol);
        }
        if let Some(next) = cursor.finish() {
            states.insert(t.symbol, next);
        }
    }
    assert_eq!(fired, ["A"]);
}
