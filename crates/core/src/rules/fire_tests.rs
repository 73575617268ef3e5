//! Table tests of rules as data: firing policies, cooldowns, expiry, pausing, matching, edits,
//! validation and the state codec.

use std::collections::HashMap;

use super::*;
use crate::tick::{Price, Symbol, Tick, Timestamp};

fn rule(json: &str) -> Rule {
    Rule::from_doc(RuleDoc::from_json(json).expect("valid JSON rule")).expect("valid rule")
}

fn book(rules: &[&str]) -> RuleBook {
    RuleBook::new(rules.iter().map(|json| rule(json)).collect()).expect("valid book")
}

fn tick(symbol: &str, price: f64, second: i64) -> Tick {
    Tick {
        symbol: Symbol::parse(symbol).expect("valid"),
        price: Price::new(price).expect("valid"),
        at: Timestamp::from_epoch_ms(1_000_000_000 + second * 1000).expect("valid"),
        volume: crate::tick::Volume::ZERO,
    }
}

/// Feeds ticks `(symbol, price, second)` through `book`, one symbol state each, and returns what
/// each tick did: the ids of the rules that fired joined by `+`, `r` a re-arm, `s` stale, `.`
/// nothing.
struct Run<'a> {
    book: &'a RuleBook,
    states: HashMap<Symbol, SymbolState>,
}

impl<'a> Run<'a> {
    fn new(book: &'a RuleBook) -> Run<'a> {
        Run {
            book,
            states: HashMap::new(),
        }
    }

    fn feed(&mut self, ticks: &[(&str, f64, i64)]) -> Vec<String> {
        ticks
            .iter()
            .map(|&(symbol, price, second)| {
                let t = tick(symbol, price, second);
                let rules = self.book.for_symbol(&t.symbol);
                let mut cursor = Cursor::new(&rules, self.states.get(&t.symbol));
                let evaluation = cursor.step(&t);
                if let Some(next) = cursor.finish() {
                    self.states.insert(t.symbol, next);
                }
                let fired: Vec<String> = evaluation
                    .fired
                    .iter()
                    .map(|fired| rules.rules()[fired.rule].id().to_string())
                    .collect();
                if !fired.is_empty() {
                    fired.join("+")
                } else if evaluation.stale {
                    "s".into()
                } else if evaluation.rearmed {
                    "r".into()
                } else {
                    ".".into()
                }
            })
            .collect()
    }
}

fn trace(rules: &[&str], ticks: &[(&str, f64, i64)]) -> Vec<String> {
    Run::new(&book(rules)).feed(ticks)
}

#[test]
fn firing_policies() {
    let cases: &[(&str, &str, &[(&str, f64, i64)], &[&str])] = &[
        (
            "every fires on each tick that holds, and only strictly above",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every"}"#,
            &[
                ("X", 101.0, 1),
                ("X", 102.0, 2),
                ("X", 100.0, 3),
                ("X", 101.0, 4),
            ],
            &["a", "a", ".", "a"],
        ),
        (
            "enter fires on entering, re-arms when it clears",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"enter"}"#,
            &[
                ("X", 101.0, 1),
                ("X", 102.0, 2),
                ("X", 100.0, 3),
                ("X", 101.0, 4),
            ],
            &["a", ".", "r", "a"],
        ),
        (
            "enter with hysteresis re-arms only far enough back",
            r#"{"id":"a","symbols":"*","condition":"below 50","hysteresis":5}"#,
            &[
                ("X", 49.0, 1),
                ("X", 54.0, 2),
                ("X", 49.0, 3),
                ("X", 55.0, 4),
                ("X", 49.0, 5),
            ],
            &["a", ".", ".", "r", "a"],
        ),
        (
            "once fires the first time only",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"once"}"#,
            &[
                ("X", 101.0, 1),
                ("X", 90.0, 2),
                ("X", 101.0, 3),
                ("Y", 101.0, 4),
            ],
            &["a", ".", ".", "a"],
        ),
        (
            "every with a cooldown: a tick exactly at the boundary fires",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every","cooldown_seconds":10}"#,
            &[
                ("X", 101.0, 1),
                ("X", 101.0, 2),
                ("X", 101.0, 10),
                ("X", 101.0, 11),
                ("X", 101.0, 12),
            ],
            &["a", ".", ".", "a", "."],
        ),
        (
            "enter with a cooldown: an entry within it is swallowed, the next one after it fires",
            r#"{"id":"a","symbols":"*","condition":"above 100","cooldown_seconds":10}"#,
            &[
                ("X", 101.0, 1),
                ("X", 99.0, 2),
                ("X", 101.0, 3),
                ("X", 99.0, 4),
                ("X", 101.0, 11),
                ("X", 99.0, 12),
                ("X", 101.0, 13),
            ],
            &["a", "r", ".", "r", "a", "r", "."],
        ),
        (
            "the cooldown is per symbol",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every","cooldown_seconds":60}"#,
            &[("X", 101.0, 1), ("Y", 101.0, 2), ("X", 101.0, 3)],
            &["a", "a", "."],
        ),
        (
            "expires_at equal to the tick time still fires; after it nothing does",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every","expires_at":"1970-01-12T13:46:43Z"}"#,
            &[("X", 101.0, 2), ("X", 101.0, 3), ("X", 101.0, 4)],
            &["a", "a", "."],
        ),
        (
            "a stateful rule ignores stale ticks",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every","cooldown_seconds":1}"#,
            &[
                ("X", 101.0, 5),
                ("X", 101.0, 5),
                ("X", 101.0, 4),
                ("X", 101.0, 6),
            ],
            &["a", "s", "s", "a"],
        ),
        (
            "a stateless rule sees stale ticks (the specification's level alerts)",
            r#"{"id":"a","symbols":"*","condition":"above 100","fire":"every"}"#,
            &[("X", 101.0, 5), ("X", 101.0, 4)],
            &["a", "a"],
        ),
    ];
    for (name, json, ticks, expected) in cases {
        assert_eq!(trace(&[json], ticks), *expected, "{name}");
    }
}

#[test]
fn matching_exact_prefix_any_and_except() {
    let rules = [
        r#"{"id":"exact","symbols":"BTC-USD","condition":"above 10","fire":"every"}"#,
        r#"{"id":"prefix","symbols":"BTC-*","condition":"above 10","fire":"every"}"#,
        r#"{"id":"short","symbols":"B*","condition":"above 10","fire":"every"}"#,
        r#"{"id":"all","symbols":"*","condition":"above 10","fire":"every","except":["ETH-USD"]}"#,
    ];
    let cases: &[(&str, &str)] = &[
        ("BTC-USD", "exact+prefix+short+all"),
        ("BTC-EUR", "prefix+short+all"),
        ("BTC-", "prefix+short+all"),
        ("BTC", "short+all"),
        ("ETH-USD", "."),
        ("ETH-EUR", "all"),
        ("btc-usd", "all"),
    ];
    let book = book(&rules);
    for (symbol, expected) in cases {
        assert_eq!(
            Run::new(&book).feed(&[(symbol, 11.0, 1)]),
            [*expected],
            "{symbol}"
        );
    }
}

#[test]
fn two_overlapping_rules_both_fire_on_one_tick() {
    let rules = [
        r#"{"id":"wide","symbols":"*","condition":"above 100"}"#,
        r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","label":"AAPL breakout"}"#,
    ];
    assert_eq!(
        trace(
            &rules,
            &[("AAPL", 150.0, 1), ("AAPL", 250.0, 2), ("MSFT", 250.0, 3)]
        ),
        ["wide", "aapl-200", "wide"]
    );
    assert_eq!(
        trace(&rules, &[("AAPL", 250.0, 1)]),
        ["wide+aapl-200"],
        "both fire on the same tick, in book order"
    );
}

#[test]
fn pause_resume_rearm_and_edit() {
    let once = r#"{"id":"a","symbols":"*","condition":"above 100","fire":"once"}"#;
    let book_of = |rule: Rule| RuleBook::new(vec![rule]).expect("valid");
    let original = rule(once);
    let original_book = book_of(original.clone());
    let mut run = Run::new(&original_book);
    assert_eq!(run.feed(&[("X", 101.0, 1), ("X", 101.0, 2)]), ["a", "."]);
    let states = run.states;

    // Paused: nothing fires (not even for a new symbol); the state is kept.
    let mut doc = original.doc().clone();
    doc.paused = true;
    let paused = Rule::from_doc(doc.clone()).expect("valid");
    assert!(!original.restarts(&paused), "pausing keeps the state");
    let paused_book = book_of(paused);
    let mut run = Run {
        book: &paused_book,
        states: states.clone(),
    };
    assert_eq!(run.feed(&[("X", 101.0, 3), ("Y", 101.0, 3)]), [".", "."]);

    // Resumed (same version): X is still done, Y fires.
    let resumed_book = book_of(original.clone());
    let mut run = Run {
        book: &resumed_book,
        states: states.clone(),
    };
    assert_eq!(run.feed(&[("X", 101.0, 4), ("Y", 101.0, 4)]), [".", "a"]);

    // Re-armed: a new version starts armed.
    let rearmed_book = book_of(original.with_version(2));
    let mut run = Run {
        book: &rearmed_book,
        states: states.clone(),
    };
    assert_eq!(run.feed(&[("X", 101.0, 5), ("X", 101.0, 6)]), ["a", "."]);

    // Edited: a changed condition restarts the rule; its store gives it a new version.
    doc.paused = false;
    doc.condition = Condition::Above(200.0);
    let edited = Rule::from_doc(doc).expect("valid");
    assert!(original.restarts(&edited));
    let edited_book = book_of(edited.with_version(3));
    let mut run = Run {
        book: &edited_book,
        states,
    };
    assert_eq!(run.feed(&[("X", 150.0, 7), ("X", 201.0, 8)]), [".", "a"]);
    assert_eq!(
        run.states[&Symbol::parse("X").expect("valid")].rules.len(),
        1,
        "the old version's state is dropped when the state is written"
    );
}

#[test]
fn a_legacy_band_file_translates_into_rules_that_leave_overridden_symbols_alone() {
    let base = Band::new(150.0, 50.0, 0.0, Mode::Cross).expect("valid");
    let bands = BandSet::from_toml(
        base,
        "[default]\nhysteresis = 1\n\n[symbols.AAPL]\nhigh = 200\nlow = 120\nmode = \"level\"\n\n[symbols.\"EUR/USD\"]\nhigh = 3\nlow = 1\n",
    )
    .expect("valid");
    let book = RuleBook::try_from(&bands).expect("valid");
    let listed: Vec<String> = book.rules().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        listed,
        [
            "high: * above 150 (except 2 symbols), fire enter, hysteresis 1",
            "low: * below 50 (except 2 symbols), fire enter, hysteresis 1",
            "high.AAPL: AAPL above 200, fire every",
            "low.AAPL: AAPL below 120, fire every",
            "high.EUR_USD: EUR/USD above 3, fire enter, hysteresis 1",
            "low.EUR_USD: EUR/USD below 1, fire enter, hysteresis 1",
        ]
    );
    assert_eq!(
        Run::new(&book).feed(&[("AAPL", 160.0, 1), ("AAPL", 201.0, 2), ("MSFT", 160.0, 3)]),
        [".", "high.AAPL", "high"]
    );
}

#[test]
fn rule_documents_are_validated_and_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"id":"","symbols":"*","condition":"above 1"}"#,
            "id: must not be empty",
        ),
        (
            r#"{"id":"a b","symbols":"*","condition":"above 1"}"#,
            "id: \"a b\" has ' ' at position 2",
        ),
        (
            &format!(
                r#"{{"id":"{}","symbols":"*","condition":"above 1"}}"#,
                "a".repeat(65)
            ),
            "at most 64 are allowed",
        ),
        (
            r#"{"id":"a","symbols":"BT*C","condition":"above 1"}"#,
            "symbols: has '*' at position 3",
        ),
        (
            r#"{"id":"a","symbols":"B**","condition":"above 1"}"#,
            "symbols: \"B**\" may have one `*`, at the end",
        ),
        (
            r#"{"id":"a","symbols":"<img>","condition":"above 1"}"#,
            "symbols: has '<' at position 1; allowed are A-Z a-z 0-9 . _ - : /, got \"<img>\"",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"over 1"}"#,
            "condition: must be \"above X\", \"below X\", \"rise X% within W\"",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above"}"#,
            "condition: must be \"above X\" or \"below X\"",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above x"}"#,
            "condition: \"x\" is not a number",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above -1"}"#,
            "condition: threshold must be at least 0",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1e12"}"#,
            "condition: threshold must be at least 0 and below 1e12, got 1000000000000",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","fire":"twice"}"#,
            "fire: unknown variant `twice`",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","cooldown_seconds":-1}"#,
            "cooldown_seconds: invalid value: integer `-1`",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","paused":"yes"}"#,
            "paused: invalid type: string \"yes\"",
        ),
        (
            r#"{"id":"a","symbols":"*","except":["A",7],"condition":"above 1"}"#,
            "except: invalid type: integer `7`",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","fire":"once","cooldown_seconds":5}"#,
            "cooldown_seconds: applies to fire = every or enter",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","cooldown_seconds":0}"#,
            "cooldown_seconds: must be 1 to",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","hysteresis":-1}"#,
            "hysteresis: must be at least 0",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","fire":"every","hysteresis":1}"#,
            "hysteresis: applies to fire = enter only",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","label":"a\u0007b"}"#,
            "label: \"a\\u{7}b\" has the control character",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","expires_at":"tomorrow"}"#,
            "expires_at: ",
        ),
        (
            r#"{"id":"a","symbols":"*","condition":"above 1","colour":"red"}"#,
            "unknown field `colour`",
        ),
        (r#"{"id":"a","symbols":"*"}"#, "missing field `condition`"),
    ];
    for (json, expected) in cases {
        let error = RuleDoc::from_json(json)
            .and_then(Rule::from_doc)
            .expect_err(json)
            .to_string();
        assert!(
            error.contains(expected),
            "{json}: {error:?} should contain {expected:?}"
        );
    }
    let refused = RuleBook::new(vec![
        rule(r#"{"id":"a","symbols":"*","condition":"above 1"}"#),
        rule(r#"{"id":"a","symbols":"X","condition":"below 1"}"#),
    ])
    .expect_err("duplicate id");
    assert_eq!(refused.to_string(), "id: a is used by two rules");
}

#[test]
fn rule_lists_name_the_rule_and_field_of_an_error() {
    let text = r#"[
        {"id":"ok","symbols":"*","condition":"above 1"},
        {"id":"bad","symbols":"*","condition":"above 1","fire":"once","cooldown_seconds":3}
    ]"#;
    assert_eq!(
        parse_rule_list(text).expect_err("refused").to_string(),
        "rule 2 (\"bad\") cooldown_seconds: applies to fire = every or enter; a once rule fires once"
    );
    let text = r#"[{"id":"ok","symbols":"*","condition":"above 1","fire":"maybe"}]"#;
    let error = parse_rule_list(text).expect_err("refused").to_string();
    assert!(
        error.starts_with("rule 1 (\"ok\") fire: unknown variant `maybe`"),
        "{error}"
    );
    let rules =
        parse_rule_list(r#"[{"id":"ok","symbols":"*","condition":"above 1"}]"#).expect("valid");
    assert_eq!(rules[0].fire(), Fire::Enter, "enter is the default");
}

#[test]
fn a_rule_document_round_trips_through_json() {
    let json = r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"enter","hysteresis":0.5,"cooldown_seconds":300,"expires_at":"2026-11-30T21:00:00.000Z","paused":true,"label":"AAPL <b>breakout</b>","version":4}"#;
    let doc = RuleDoc::from_json(json).expect("valid");
    assert_eq!(serde_json::to_string(&doc).expect("serializes"), json);
}

#[test]
fn rule_states_round_trip_and_bad_bytes_are_refused() {
    let states = vec![
        RuleState {
            rule: RuleId::parse("high").expect("valid"),
            version: 3,
            phase: Phase::Fired,
            last_alert: Some(Timestamp::from_epoch_ms(1_795_000_000_000).expect("valid")),
            window: None,
        },
        RuleState {
            rule: RuleId::parse(&"z".repeat(RULE_ID_LEN_MAX)).expect("valid"),
            version: u64::MAX,
            phase: Phase::Done,
            last_alert: None,
            window: None,
        },
    ];
    let bytes = encode_rule_states(&states);
    assert_eq!(bytes.len(), 3 + (19 + 4) + (19 + 64), "the documented size");
    assert_eq!(decode_rule_states(&bytes).expect("decodes"), states);
    assert_eq!(decode_rule_states(&encode_rule_states(&[])), Ok(vec![]));
    for cut in 0..bytes.len() {
        assert!(decode_rule_states(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_rule_states(&longer).is_err());
    let mut bad_phase = bytes;
    bad_phase[3 + 1 + 4 + 8] = 9;
    assert!(decode_rule_states(&bad_phase).is_err());
}

#[test]
fn a_zone_stored_by_the_band_release_becomes_the_state_of_its_rules() {
    let book = RuleBook::defaults();
    let symbol = Symbol::parse("AAPL").expect("valid");
    let at = Timestamp::from_epoch_ms(1_000_000_000).expect("valid");
    let mut run = Run::new(&book);
    run.states
        .insert(symbol, SymbolState::from_zone("high", &symbol, at));
    assert_eq!(
        run.feed(&[("AAPL", 160.0, 1), ("AAPL", 100.0, 2), ("AAPL", 160.0, 3)]),
        [".", "r", "high"],
        "still in the high zone: no new alert until it re-arms"
    );
}
