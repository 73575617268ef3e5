//! The legacy rule configuration as users write it: a TOML rules file, or JSON overrides (the Lambda `RULES`
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

use super::{Band, BandSet, Mode};
use crate::tick::{PRICE_MAX, Symbol, escape_controls, format_number, quote};

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
    /// Where: a line number, table and key (`line 7 [symbols.AAPL] low`), or a key path.
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

/// A rules file as read: every value with where it was written, so that an error can point at
/// the line of the offending key rather than its table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    default: Option<Spanned<SpecAt>>,
    #[serde(default)]
    symbols: BTreeMap<Spanned<String>, Spanned<SpecAt>>,
}

/// A [`RuleSpec`] with the position of each number (the mode cannot fail once read).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecAt {
    high: Option<Spanned<f64>>,
    low: Option<Spanned<f64>>,
    mode: Option<Mode>,
    hysteresis: Option<Spanned<f64>>,
}

impl SpecAt {
    fn spec(&self) -> RuleSpec {
        RuleSpec {
            high: self.high.as_ref().map(|v| *v.get_ref()),
            low: self.low.as_ref().map(|v| *v.get_ref()),
            mode: self.mode,
            hysteresis: self.hysteresis.as_ref().map(|v| *v.get_ref()),
        }
    }

    /// Where the key an error names was written: that key, or failing that the key it was
    /// compared with (`low` must be below `high`, one of which may be inherited), if written here.
    fn offset_of(&self, field: &str) -> Option<usize> {
        let (high, low, hysteresis) = (&self.high, &self.low, &self.hysteresis);
        let candidates = match field {
            "high" => [high, &None, &None],
            "low" => [low, high, &None],
            "hysteresis" => [hysteresis, high, low],
            _ => [&None, &None, &None],
        };
        candidates
            .into_iter()
            .find_map(|value| value.as_ref().map(|v| v.span().start))
    }
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

/// Checks each number on its own (finite, not negative, below the price bound) so that the error
/// names the key that holds it; `Band::new` then checks how they relate. Numbers are echoed in
/// their short form (`1e300`).
fn check_values(spec: &RuleSpec) -> Result<(), RulesError> {
    let values = [
        ("high", spec.high),
        ("low", spec.low),
        ("hysteresis", spec.hysteresis),
    ];
    for (name, value) in values {
        let Some(value) = value else { continue };
        let reason = if !value.is_finite() {
            "must be a finite number"
        } else if value < 0.0 {
            "must not be negative"
        } else if value >= PRICE_MAX {
            "must be below 1e12"
        } else {
            continue;
        };
        return Err(RulesError::new(
            name,
            format!("{reason}, got {}", format_number(value)),
        ));
    }
    Ok(())
}

/// `spec` over `base`, checked.
fn apply(base: Band, spec: &RuleSpec) -> Result<Band, RulesError> {
    check_values(spec)?;
    base.with_spec(spec)
}

/// How a symbol's table is named in messages: as written when it is a valid symbol, quoted and
/// escaped otherwise (it is input, and may hold anything).
fn symbol_label(name: &str) -> String {
    match Symbol::parse(name) {
        Ok(_) => name.to_owned(),
        Err(_) => quote(name),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl BandSet {
    /// Parses a TOML rules file over `base`. Errors name the line of the offending key.
    ///
    /// ```
    /// use tickwatch_core::{Mode, Band, BandSet, Symbol};
    ///
    /// let base = Band::new(150.0, 50.0, 0.0, Mode::Cross)?;
    /// let rules = BandSet::from_toml(base, "[default]\nhysteresis = 0.5\n\n[symbols.AAPL]\nhigh = 200\nlow = 120\n")?;
    /// let aapl = rules.band_for(&Symbol::parse("AAPL").expect("valid"));
    /// assert_eq!((aapl.high(), aapl.low(), aapl.hysteresis()), (200.0, 120.0, 0.5));
    /// let other = rules.band_for(&Symbol::parse("MSFT").expect("valid"));
    /// assert_eq!((other.high(), other.low()), (150.0, 50.0));
    ///
    /// let refused = BandSet::from_toml(base, "[symbols.AAPL]\nhigh = 100\nlow = 120\n").unwrap_err();
    /// assert_eq!(refused.to_string(), "line 3 [symbols.AAPL] low: (120) must be below high (100)");
    /// # Ok::<(), tickwatch_core::rules::RulesError>(())
    /// ```
    pub fn from_toml(base: Band, text: &str) -> Result<BandSet, RulesError> {
        check_size(text, "rules file")?;
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let location = e.span().map_or_else(
                || "rules file".to_owned(),
                |span| format!("line {}", line_of(text, span.start)),
            );
            // The parser quotes keys and values as written: escape what a terminal would run.
            RulesError::new(location, escape_controls(e.message().trim_end()))
        })?;
        // The rule of one table over `base`; errors at the line of the key they name.
        let table_rule = |base: Band, spec: &Spanned<SpecAt>, table: &str| {
            apply(base, &spec.get_ref().spec()).map_err(|e| {
                let offset = spec
                    .get_ref()
                    .offset_of(&e.location)
                    .unwrap_or(spec.span().start);
                e.within(&format!("line {} [{table}]", line_of(text, offset)))
            })
        };
        let default = match &file.default {
            Some(spec) => table_rule(base, spec, "default")?,
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
        let mut rules = BandSet::uniform(default);
        for (name, spec) in &file.symbols {
            let table = format!("symbols.{}", symbol_label(name.get_ref()));
            let symbol = Symbol::parse(name.get_ref()).map_err(|e| {
                RulesError::new(
                    format!("line {} [{table}]", line_of(text, name.span().start)),
                    e.to_string(),
                )
            })?;
            rules = rules.with_override(symbol, table_rule(default, spec, &table)?);
        }
        Ok(rules)
    }

    /// Parses JSON per-symbol overrides, `{"AAPL": {"high": 200, "low": 120}}`, over `base`.
    /// `what` names the source in errors (e.g. the environment variable).
    pub fn from_json_overrides(base: Band, what: &str, text: &str) -> Result<BandSet, RulesError> {
        check_size(text, what)?;
        let specs: BTreeMap<String, RuleSpec> = serde_json::from_str(text)
            .map_err(|e| RulesError::new(what, escape_controls(&e.to_string())))?;
        if specs.len() > RULE_OVERRIDES_MAX {
            return Err(RulesError::new(
                what,
                format!(
                    "has {} entries; the limit is {RULE_OVERRIDES_MAX}",
                    specs.len()
                ),
            ));
        }
        let mut rules = BandSet::uniform(base);
        for (name, spec) in &specs {
            let location = format!("{what}.{}", symbol_label(name));
            let symbol =
                Symbol::parse(name).map_err(|e| RulesError::new(&location, e.to_string()))?;
            let rule = apply(base, spec).map_err(|e| e.within(&location))?;
            rules = rules.with_override(symbol, rule);
        }
        Ok(rules)
    }
}

/// Most rules one list (an `import` file) may hold.
pub const RULE_LIST_MAX: usize = super::RULES_MAX;

/// Largest rule list accepted, in bytes (the largest list at about 300 bytes a rule).
pub const RULE_LIST_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Parses a JSON array of rules (what `tickwatch rules export` writes). Each error names the
/// rule by its position and id, and the field.
pub fn parse_rule_list(text: &str) -> Result<Vec<super::Rule>, RulesError> {
    if text.len() > RULE_LIST_BYTES_MAX {
        return Err(RulesError::new(
            "rules file",
            format!(
                "is {} bytes; the limit is {RULE_LIST_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| RulesError::new("rules file", escape_controls(&e.to_string())))?;
    if values.len() > RULE_LIST_MAX {
        return Err(RulesError::new(
            "rules file",
            format!("has {} rules; the limit is {RULE_LIST_MAX}", values.len()),
        ));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let name = match value.get("id").and_then(serde_json::Value::as_str) {
                Some(id) => format!("rule {} ({})", index + 1, quote(id)),
                None => format!("rule {}", index + 1),
            };
            serde_path_to_error::deserialize::<_, super::RuleDoc>(value)
                .map_err(|e| super::model::located_error("rule", e))
                .and_then(super::Rule::from_doc)
                .map_err(|e| e.within(&name))
        })
        .collect()
}
