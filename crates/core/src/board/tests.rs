//! Table tests of the board: what it follows, what a flush hands over, its bounds, and where a
//! price stands against level rules.

use super::*;
use crate::pipeline::{Failure, Step, build_alert};
use crate::ports::ErrorClass;
use crate::rules::{Rule, RuleDoc};
use crate::tick::TickError;

fn tick(symbol: &str, price: f64, second: i64) -> Tick {
    crate::testing::tick(symbol, price, 1_000_000_000 + second * 1000)
}

fn rule(json: &str) -> Rule {
    Rule::from_doc(RuleDoc::from_json(json).expect("valid JSON rule")).expect("valid rule")
}

fn alert_on(tick: &Tick, rule_json: &str) -> Alert {
    let rule = rule(rule_json);
    let condition = rule.condition();
    build_alert(
        &rule,
        tick,
        condition.kind(),
        condition.threshold().unwrap_or(0.0),
        tick.at.saturating_add_ms(5),
    )
}

fn raised(alert: Alert) -> Outcome {
    Outcome::Accepted(Accepted::Alerts(vec![AlertOutcome::New(Box::new(alert))]))
}

fn rejected(body: &str) -> Outcome {
    let error = Tick::decode(body.as_bytes()).expect_err("invalid tick");
    Outcome::Rejected(Box::new(error))
}

fn prices(view: &SymbolView) -> Vec<f64> {
    view.points.iter().map(|(_, price)| *price).collect()
}

/// A rule that alerts on every tick above 150.
const HIGH_EVERY: &str = r#"{"id":"high","symbols":"*","condition":"above 150","fire":"every"}"#;

#[test]
fn the_price_follows_in_order_ticks_and_late_ticks_only_count() {
    // (ticks as (price, second), the board's price, its points, its tick count)
    let cases: &[(&[(f64, i64)], f64, &[f64], u64)] = &[
        (&[(100.0, 1)], 100.0, &[100.0], 1),
        (&[(100.0, 1), (101.0, 2)], 101.0, &[100.0, 101.0], 2),
        // A late tick is history: counted, not drawn, not the price.
        (&[(100.0, 2), (90.0, 1)], 100.0, &[100.0], 2),
        // A duplicate of the newest tick is not newer either.
        (&[(100.0, 2), (100.0, 2)], 100.0, &[100.0], 2),
    ];
    for (ticks, price, points, count) in cases {
        let mut board = Board::new();
        let ticks: Vec<Tick> = ticks.iter().map(|(p, s)| tick("AAPL", *p, *s)).collect();
        board.observe(&ticks);
        let flush = board.take_flush();
        assert_eq!(flush.symbols.len(), 1, "{ticks:?}");
        let view = &flush.symbols[0];
        assert_eq!(view.price, *price, "{ticks:?}");
        assert_eq!(prices(view), *points, "{ticks:?}");
        assert_eq!(view.ticks, *count, "{ticks:?}");
    }
}

#[test]
fn points_keep_the_newest_and_are_bounded() {
    let mut board = Board::new();
    let ticks: Vec<Tick> = (0..1_000)
        .map(|s| tick("AAPL", 100.0 + s as f64, s))
        .collect();
    board.observe(&ticks);
    let view = &board.take_flush().symbols[0];
    assert_eq!(view.points.len(), BOARD_POINTS_MAX);
    assert_eq!(
        view.points.first().map(|p| p.1),
        Some(1_000.0 - 60.0 + 100.0)
    );
    assert_eq!(view.points.last().map(|p| p.1), Some(1_099.0));
    assert!(view.points.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_flush_hands_over_what_changed_once() {
    let mut board = Board::new();
    assert!(!board.changed());
    board.observe(&[tick("AAPL", 100.0, 1), tick("MSFT", 300.0, 1)]);
    board.record(&[
        (1, Outcome::Accepted(Accepted::Quiet)),
        (2, Outcome::Accepted(Accepted::Quiet)),
    ]);
    assert!(board.changed());
    let first = board.take_flush();
    let symbols: Vec<&str> = first.symbols.iter().map(|v| v.symbol.as_str()).collect();
    assert_eq!(symbols, ["AAPL", "MSFT"]);
    assert!(!board.changed());
    assert!(board.take_flush().is_empty());

    board.observe(&[tick("MSFT", 301.0, 2)]);
    let second = board.take_flush();
    let symbols: Vec<&str> = second.symbols.iter().map(|v| v.symbol.as_str()).collect();
    assert_eq!(symbols, ["MSFT"], "only the symbol that moved");
    assert_eq!(
        second.totals.ticks, 2,
        "totals are the run's, not the flush's"
    );
}

#[test]
fn outcomes_are_counted_by_kind_and_reason() {
    let mut board = Board::new();
    let ticks = [tick("AAPL", 151.0, 1), tick("AAPL", 152.0, 2)];
    board.observe(&ticks);
    let failure = Failure {
        step: Step::Publish,
        class: ErrorClass::Transient,
        reason: "down".into(),
    };
    board.record(&[
        (1, raised(alert_on(&ticks[0], HIGH_EVERY))),
        (2, raised(alert_on(&ticks[1], HIGH_EVERY))),
        (3, Outcome::Accepted(Accepted::Stale)),
        (4, rejected(r#"{"symbol":"AAPL","price":-1,"timestamp":1}"#)),
        (5, rejected(r#"{"symbol":"AAPL","price":-2,"timestamp":1}"#)),
        (6, rejected(r#"{"price":1,"timestamp":1}"#)),
        (7, Outcome::Failed(failure)),
        (8, Outcome::Accepted(Accepted::Rearmed)),
    ]);
    let flush = board.take_flush();
    let totals = &flush.totals;
    assert_eq!(
        (totals.ticks, totals.alerts, totals.stale, totals.failed),
        (8, 2, 1, 1)
    );
    let rejected: Vec<(&str, u64)> = totals
        .rejected
        .iter()
        .map(|(code, n)| (code.as_str(), *n))
        .collect();
    assert_eq!(rejected, [("price.invalid", 2), ("symbol.missing", 1)]);
    assert_eq!(flush.alerts.len(), 2);
    assert!(flush.alerts.iter().all(|a| a.announced));
    let last = flush.symbols[0].last_alert.as_ref().expect("an alert");
    assert_eq!(last.timestamp, ticks[1].at, "the newest alert");
}

#[test]
fn a_late_alert_does_not_replace_a_newer_last_alert() {
    let mut board = Board::new();
    let ticks = [tick("AAPL", 151.0, 5), tick("AAPL", 160.0, 1)];
    board.observe(&ticks);
    board.record(&[
        (1, raised(alert_on(&ticks[0], HIGH_EVERY))),
        (2, raised(alert_on(&ticks[1], HIGH_EVERY))),
    ]);
    let flush = board.take_flush();
    let last = flush.symbols[0].last_alert.as_ref().expect("an alert");
    assert_eq!(last.timestamp, ticks[0].at);
    assert_eq!(flush.alerts.len(), 2, "both are new alerts");
}

#[test]
fn alerts_between_flushes_are_bounded_and_the_rest_counted() {
    let mut board = Board::new();
    let outcomes: Vec<(usize, Outcome)> = (0..BOARD_ALERTS_MAX + 50)
        .map(|i| {
            (
                i,
                raised(alert_on(&tick("AAPL", 151.0, i as i64), HIGH_EVERY)),
            )
        })
        .collect();
    board.record(&outcomes);
    let flush = board.take_flush();
    assert_eq!(flush.alerts.len(), BOARD_ALERTS_MAX);
    assert_eq!(flush.alerts_skipped, 50);
    assert_eq!(
        flush.alerts.first().map(|a| a.alert.timestamp),
        Some(tick("AAPL", 151.0, 50).at),
        "the newest are kept, oldest first"
    );
    assert_eq!(flush.totals.alerts, (BOARD_ALERTS_MAX + 50) as u64);
    let next = board.take_flush();
    assert_eq!((next.alerts.len(), next.alerts_skipped), (0, 0));
}

#[test]
fn symbols_beyond_the_cap_are_counted_not_followed() {
    let mut board = Board::new();
    let names: Vec<String> = (0..BOARD_SYMBOLS_MAX + 3)
        .map(|i| format!("S{i}"))
        .collect();
    let ticks: Vec<Tick> = names.iter().map(|name| tick(name, 1.0, 1)).collect();
    board.observe(&ticks);
    // The untracked ones again: counted once each.
    board.observe(&ticks[BOARD_SYMBOLS_MAX..]);
    let flush = board.take_flush();
    assert_eq!(flush.symbols.len(), BOARD_SYMBOLS_MAX);
    assert_eq!(flush.totals.untracked, 3);
}

#[test]
fn levels_are_the_level_rules_that_apply() {
    let book = RuleBook::new(vec![
        rule(r#"{"id":"high","symbols":"*","condition":"above 150"}"#),
        rule(r#"{"id":"low","symbols":"*","condition":"below 50","paused":true}"#),
        rule(r#"{"id":"btc","symbols":"BTC-*","condition":"above 90000"}"#),
        rule(r#"{"id":"jump","symbols":"*","condition":"rise 5% within 1h"}"#),
        rule(r#"{"id":"not-ibm","symbols":"*","except":["IBM"],"condition":"below 10"}"#),
    ])
    .expect("valid book");
    let ids = |symbol: &str| -> Vec<(String, f64, bool)> {
        levels(&book, &Symbol::parse(symbol).expect("valid"))
            .into_iter()
            .map(|l| (l.rule_id.to_string(), l.level, l.paused))
            .collect()
    };
    let own = |v: &[(&str, f64, bool)]| -> Vec<(String, f64, bool)> {
        v.iter()
            .map(|(i, l, p)| ((*i).to_owned(), *l, *p))
            .collect()
    };
    assert_eq!(
        ids("AAPL"),
        own(&[
            ("high", 150.0, false),
            ("low", 50.0, true),
            ("not-ibm", 10.0, false)
        ])
    );
    assert_eq!(
        ids("IBM"),
        own(&[("high", 150.0, false), ("low", 50.0, true)])
    );
    assert_eq!(
        ids("BTC-USD"),
        own(&[
            ("high", 150.0, false),
            ("low", 50.0, true),
            ("btc", 90000.0, false),
            ("not-ibm", 10.0, false)
        ])
    );
}

#[test]
fn zones_follow_the_satisfied_rules() {
    let book = RuleBook::new(vec![
        rule(r#"{"id":"high","symbols":"*","condition":"above 150"}"#),
        rule(r#"{"id":"higher","symbols":"*","condition":"above 200"}"#),
        rule(r#"{"id":"low","symbols":"*","condition":"below 50"}"#),
        rule(r#"{"id":"odd","symbols":"ODD","condition":"below 300"}"#),
    ])
    .expect("valid book");
    let cases: &[(&str, f64, Zone, &[&str])] = &[
        ("AAPL", 100.0, Zone::Inside, &[]),
        ("AAPL", 150.0, Zone::Inside, &[]), // strict: exactly the threshold is not above
        ("AAPL", 150.01, Zone::Above, &["high"]),
        ("AAPL", 250.0, Zone::Above, &["high", "higher"]),
        ("AAPL", 49.99, Zone::Below, &["low"]),
        ("AAPL", 50.0, Zone::Inside, &[]),
        // Above one rule and below another: neither side wins.
        ("ODD", 250.0, Zone::Inside, &["high", "higher", "odd"]),
    ];
    for (symbol, price, expected, rules) in cases {
        let levels = levels(&book, &Symbol::parse(symbol).expect("valid"));
        let (zone, satisfied) = zone(&levels, *price);
        let satisfied: Vec<String> = satisfied.iter().map(ToString::to_string).collect();
        assert_eq!(
            (zone, satisfied.as_slice()),
            (*expected, rules_owned(rules).as_slice()),
            "{symbol} {price}"
        );
    }
}

fn rules_owned(rules: &[&str]) -> Vec<String> {
    rules.iter().map(|r| (*r).to_owned()).collect()
}

#[test]
fn the_error_of_a_rejected_tick_is_classed_by_code() {
    // The reason codes the board counts are the tick errors' own.
    let error: TickError =
        Tick::decode(br#"{"symbol":"A","price":"x","timestamp":1}"#).expect_err("invalid");
    let mut board = Board::new();
    board.record(&[(1, Outcome::Rejected(Box::new(error.clone())))]);
    assert_eq!(
        board.take_flush().totals.rejected.get(error.code()),
        Some(&1)
    );
}

#[test]
fn changes_fall_due_sooner_on_a_live_feed() {
    let mut board = Board::new();
    assert_eq!(board.flush_due_in_ms(0, true), None, "nothing changed");
    board.observe(&[tick("AAPL", 100.0, 1)]);
    // (ms since the last flush, live, due in ms)
    let cases = [
        (0, false, BOARD_FLUSH_INTERVAL_MS),
        (100, false, BOARD_FLUSH_INTERVAL_MS - 100),
        (BOARD_FLUSH_INTERVAL_MS, false, 0),
        (10_000, false, 0),
        (0, true, BOARD_FLUSH_LIVE_MS),
        (BOARD_FLUSH_LIVE_MS, true, 0),
    ];
    for (since_ms, live, due_ms) in cases {
        assert_eq!(
            board.flush_due_in_ms(since_ms, live),
            Some(due_ms),
            "{since_ms} {live}"
        );
    }
    board.take_flush();
    assert_eq!(board.flush_due_in_ms(10_000, false), None);
}
