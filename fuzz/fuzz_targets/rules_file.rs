//! Any text as a rules file: parsing never panics, and every rule it accepts is usable
//! (finite thresholds, low below high, hysteresis smaller than the band).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwatch_core::{Mode, Rule, RuleSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = Rule::new(150.0, 50.0, 0.0, Mode::Cross).expect("the base rule is valid");
    for parsed in [RuleSet::from_toml(base, text), RuleSet::from_json_overrides(base, "RULES", text)] {
        match parsed {
            Ok(rules) => {
                let mut all = vec![*rules.default_rule()];
                all.extend(rules.overrides().into_iter().map(|(_, rule)| rule));
                for rule in all {
                    assert!(rule.low().is_finite() && rule.high().is_finite() && rule.hysteresis().is_finite());
                    assert!(0.0 <= rule.low() && rule.low() < rule.high(), "{rule:?}");
                    assert!(0.0 <= rule.hysteresis() && rule.hysteresis() < rule.high() - rule.low(), "{rule:?}");
                }
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
});
