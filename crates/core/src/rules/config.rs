//! Rule configuration as users write it: a TOML rules file, or JSON overrides (the Lambda `RULES`
//! variable). Both overlay onto a base rule, field by field: base, then `[default]`, then
//! `[symbols.X]`.
//!
//! ```toml
//! [default]
//! high = 150
//! low = 50
//! mode = "cross"      # or "level"
//! hysteresis = 0.5    # cross mode: how far back inside the band re-arms
//!
//! [symbols.AAPL]
//! high = 200
//! low = 120
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Mode, Rule, RuleSet};
use crate::tick::Symbol;

/// Largest rules file or `RULES` value accepted, in bytes.
pub const RULES_TEXT_BYTES_MAX: usize = 1024 * 1024;

/// Most per-symbol overrides accepted.
pub const RULE_OVERRIDES_MAX: usize = 100_000;

/// One rule as written: every field optional, missing ones inherited.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// High threshold: prices above it alert `HIGH`.
    pub high: Option<f64>,
    /// Low threshold: prices below it alert `LOW`.
    pub low: Option<f64>,
    /// `cross` or `level`.
    pub mode: Option<Mode>,
    /// Cross mode: re-arm only once the price is back inside the band by this much.
    pub hysteresis: Option<f64>,
}

/// A rules file or `RULES` value that cannot be used. Always permanent: fix the configuration.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct RulesError {
    /// Where: a line number and table (`line 7 [symbols.AAPL]`), or a key path.
    pub location: String,
    /// What is wrong.
    pub reason: String,
}

impl RulesError {
    pub(crate) fn new(location: impl Into<String>, reason: impl Into<String>) -> RulesError {
        RulesError {
            location: location.into(),
            reason: reason.into(),
        }
    }

    fn within(self, outer: &str) -> RulesError {
        RulesError::new(format!("{outer} {}", self.location), self.reason)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    default: Option<Spanned<RuleSpec>>,
    #[serde(default)]
    symbols: BTreeMap<Spanned<String>, Spanned<RuleSpec>>,
}

fn check_size(text: &str, what: &str) -> Result<(), RulesError> {
    if text.len() > RULES_TEXT_BYTES_MAX {
        return Err(RulesError::new(
            what,
            format!(
                "is {} bytes; the limit is {RULES_TEXT_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl RuleSet {
    /// Parses a TOML rules file over `base`. Errors name the line.
    pub fn from_toml(base: Rule, text: &str) -> Result<RuleSet, RulesError> {
        check_size(text, "rules file")?;
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let location = e.span().map_or_else(
                || "rules file".to_owned(),
                |span| format!("line {}", line_of(text, span.start)),
            );
            RulesError::new(location, e.message().trim_end())
        })?;
        let default = match &file.default {
            Some(spec) => base.with_spec(spec.get_ref()).map_err(|e| {
                e.within(&format!(
                    "line {} [default]",
                    line_of(text, spec.span().start)
                ))
            })?,
            None => base,
        };
        if file.symbols.len() > RULE_OVERRIDES_MAX {
            return Err(RulesError::new(
                "[symbols]",
                format!(
                    "has {} entries; the limit is {RULE_OVERRIDES_MAX}",
                    file.symbols.len()
                ),
            ));
        }
        let mut rules = RuleSet::uniform(default);
        for (name, spec) in &file.symbols {
            let location = format!(
                "line {} [symbols.{}]",
                line_of(text, name.span().start),
                name.get_ref()
            );
            let symbol = Symbol::parse(name.get_ref())
                .map_err(|e| RulesError::new(&location, e.to_string()))?;
            let rule = default
                .with_spec(spec.get_ref())
                .map_err(|e| e.within(&location))?;
            rules = rules.with_override(symbol, rule);
        }
        Ok(rules)
    }

    /// Parses JSON per-symbol overrides, `{"AAPL": {"high": 200, "low": 120}}`, over `base`.
    /// `what` names the source in errors (e.g. the environment variable).
    pub fn from_json_overrides(base: Rule, what: &str, text: &str) -> Result<RuleSet, RulesError> {
        check_size(text, what)?;
        let specs: BTreeMap<String, RuleSpec> =
            serde_json::from_str(text).map_err(|e| RulesError::new(what, e.to_string()))?;
        if specs.len() > RULE_OVERRIDES_MAX {
            return Err(RulesError::new(
                what,
                format!(
                    "has {} entries; the limit is {RULE_OVERRIDES_MAX}",
                    specs.len()
                ),
            ));
        }
        let mut rules = RuleSet::uniform(base);
        for (name, spec) in &specs {
            let location = format!("{what}.{name}");
            let symbol =
                Symbol::parse(name).map_err(|e| RulesError::new(&location, e.to_string()))?;
            let rule = base.with_spec(spec).map_err(|e| e.within(&location))?;
            rules = rules.with_override(symbol, rule);
        }
        Ok(rules)
    }
}
