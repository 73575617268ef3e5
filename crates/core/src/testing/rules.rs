//! Rules for tests and benchmarks: one from its JSON form, a book of them, and a reproducible mix
//! of many rules over many symbols (the scale issue 11 is measured at).

use std::sync::Arc;

use crate::retry::Rng;
use crate::rules::{Condition, Fire, Label, Rule, RuleBook, RuleDoc, RuleId, SymbolPattern};
use crate::tick::Symbol;

/// A rule from its JSON form, e.g. `{"id":"a","symbols":"*","condition":"above 100"}`.
///
/// # Panics
/// If the JSON is not a valid rule: tests write their rules by hand.
pub fn rule(json: &str) -> Rule {
    let doc = RuleDoc::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    Rule::from_doc(doc).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A book of rules in their JSON form (see [`rule`]).
///
/// # Panics
/// If a rule is invalid or two share an id.
pub fn rule_book(jsons: &[&str]) -> Arc<RuleBook> {
    let rules = jsons.iter().map(|json| rule(json)).collect();
    Arc::new(RuleBook::new(rules).expect("the test rules have distinct ids"))
}

/// `count` reproducible rules over `symbols`, mixed as a busy desk would have them:
///
/// * the two default rules, `high` (`* above 150`) and `low` (`* below 50`), firing on `enter`;
/// * a tenth of the rest watch a prefix: a symbol of `symbols` without its last character (a
///   tenth of those, without its last two), so a prefix rule applies to about 10 (100) symbols
///   of a feed named like [`crate::generate::RandomWalk`]'s;
/// * the others watch one symbol of `symbols` each.
///
/// Each rule is `above` a threshold drawn from 150 to 250 or `below` one drawn from 10 to 50
/// (outside the default band, as alerts on a move are set; the walk's prices start between 60 and
/// 140) and fires on `enter` (60 %), `once` (20 %) or `every` with a cooldown of 1 to 10 minutes
/// (20 %); one in five has a label.
///
/// # Panics
/// If `count` is below 2 or `symbols` is empty.
pub fn rule_mix(symbols: &[Symbol], count: usize, seed: u64) -> Vec<Rule> {
    assert!(count >= 2, "the mix starts with the two default rules");
    assert!(!symbols.is_empty(), "rules need symbols to watch");
    let mut rng = Rng::seeded(seed);
    let mut rules: Vec<Rule> = RuleBook::defaults()
        .rules()
        .iter()
        .map(|rule| (**rule).clone())
        .collect();
    for n in rules.len()..count {
        let symbol = symbols[rng.below(symbols.len() as u64) as usize].as_str();
        let pattern = if rng.below(10) == 0 {
            let cut = if rng.below(10) == 0 { 2 } else { 1 };
            let prefix = &symbol[..symbol.len().saturating_sub(cut).max(1)];
            format!("{prefix}*")
        } else {
            symbol.to_owned()
        };
        let condition = if rng.below(2) == 0 {
            Condition::Above((150.0 + 100.0 * rng.unit()).round())
        } else {
            Condition::Below((10.0 + 40.0 * rng.unit()).round())
        };
        let fire = match rng.below(10) {
            0..=5 => Fire::Enter,
            6 | 7 => Fire::Once,
            _ => Fire::Every,
        };
        let id = RuleId::parse(&format!("r{n:05}")).expect("generated ids are valid");
        let doc = RuleDoc {
            cooldown_seconds: (fire == Fire::Every).then(|| 60 * (1 + rng.below(10))),
            label: (rng.below(5) == 0)
                .then(|| Label::parse(&format!("rule {n}")).expect("generated labels are valid")),
            ..RuleDoc::new(
                id,
                pattern
                    .parse::<SymbolPattern>()
                    .expect("generated patterns are valid"),
                condition,
                fire,
            )
        };
        rules.push(Rule::from_doc(doc).expect("generated rules are valid"));
    }
    rules
}
