//! The legacy configuration: one band (`high`, `low`, `mode`, `hysteresis`) per symbol, from a
//! TOML rules file, the `--mode` option or the function's `HIGH_THRESHOLD`, `LOW_THRESHOLD`,
//! `ALERT_MODE`, `HYSTERESIS` and `RULES` variables. It is translated into rules
//! ([`BandSet::to_rules`]):
//!
//! * the default band becomes `high` (`* above HIGH`) and `low` (`* below LOW`), except the
//!   symbols that have a band of their own;
//! * the band of symbol `S` becomes `high.S` and `low.S` (`S above ...`, `S below ...`; a `:` or
//!   `/` in `S` is written `_` in the id);
//! * `mode = "cross"` fires on `enter` with the band's hysteresis, `mode = "level"` on `every`.
//!
//! So the alerts are the ones the band raised: a symbol enters the high or the low zone once, and
//! re-arms when it comes back inside the band by the hysteresis.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{Condition, Fire, Rule, RuleDoc, RuleId, SymbolPattern};
use super::{RuleSpec, RulesError};
use crate::alert::AlertKind;
use crate::tick::{PRICE_MAX, Symbol, format_number};

/// The spec's default high threshold.
pub const HIGH_THRESHOLD_DEFAULT: f64 = 150.0;
/// The spec's default low threshold.
pub const LOW_THRESHOLD_DEFAULT: f64 = 50.0;

/// How a rule turns prices into alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every tick beyond a threshold alerts.
    Level,
    /// Only entering a zone alerts; re-arms inside the band.
    Cross,
}

impl Mode {
    /// `level` or `cross`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Level => "level",
            Mode::Cross => "cross",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Self, RulesError> {
        match text {
            "level" => Ok(Mode::Level),
            "cross" => Ok(Mode::Cross),
            _ => Err(RulesError::new(
                "mode",
                format!("must be \"cross\" or \"level\", got {text:?}"),
            )),
        }
    }
}

/// A band of the legacy configuration, validated: `0 <= low < high < 1e12`,
/// `0 <= hysteresis < high - low`. It becomes two rules (see [`BandSet::to_rules`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    high: f64,
    low: f64,
    hysteresis: f64,
    mode: Mode,
}

impl Band {
    /// Validates a rule.
    pub fn new(high: f64, low: f64, hysteresis: f64, mode: Mode) -> Result<Band, RulesError> {
        for (name, value) in [("high", high), ("low", low), ("hysteresis", hysteresis)] {
            if !value.is_finite() {
                return Err(RulesError::new(
                    name,
                    format!("must be a finite number, got {}", format_number(value)),
                ));
            }
            if value < 0.0 {
                return Err(RulesError::new(
                    name,
                    format!("must not be negative, got {}", format_number(value)),
                ));
            }
        }
        if high >= PRICE_MAX {
            return Err(RulesError::new(
                "high",
                format!("must be below 1e12, got {}", format_number(high)),
            ));
        }
        if low >= high {
            return Err(RulesError::new(
                "low",
                format!(
                    "({}) must be below high ({})",
                    format_number(low),
                    format_number(high)
                ),
            ));
        }
        if hysteresis >= high - low {
            return Err(RulesError::new(
                "hysteresis",
                format!(
                    "({}) must be smaller than high - low ({})",
                    format_number(hysteresis),
                    format_number(high - low)
                ),
            ));
        }
        Ok(Band {
            high,
            low,
            hysteresis,
            mode,
        })
    }

    /// The high threshold.
    pub fn high(&self) -> f64 {
        self.high
    }

    /// The low threshold.
    pub fn low(&self) -> f64 {
        self.low
    }

    /// How far back inside the band a price must come to re-arm (cross mode).
    pub fn hysteresis(&self) -> f64 {
        self.hysteresis
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The threshold of an alert kind.
    pub fn threshold(&self, kind: AlertKind) -> f64 {
        match kind {
            AlertKind::High => self.high,
            AlertKind::Low => self.low,
        }
    }

    /// Which threshold `price` is strictly beyond, if any (no hysteresis).
    pub fn beyond(&self, price: f64) -> Option<AlertKind> {
        if price > self.high {
            Some(AlertKind::High)
        } else if price < self.low {
            Some(AlertKind::Low)
        } else {
            None
        }
    }

    pub(super) fn with_spec(self, spec: &RuleSpec) -> Result<Band, RulesError> {
        Band::new(
            spec.high.unwrap_or(self.high),
            spec.low.unwrap_or(self.low),
            spec.hysteresis.unwrap_or(self.hysteresis),
            spec.mode.unwrap_or(self.mode),
        )
    }
}

/// The legacy configuration: a default band plus per-symbol overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct BandSet {
    default: Band,
    overrides: HashMap<Symbol, Band>,
}

impl BandSet {
    /// One band for every symbol.
    pub fn uniform(default: Band) -> BandSet {
        BandSet {
            default,
            overrides: HashMap::new(),
        }
    }

    /// Adds or replaces the band of one symbol.
    pub fn with_override(mut self, symbol: Symbol, band: Band) -> BandSet {
        self.overrides.insert(symbol, band);
        self
    }

    /// The band that applies to `symbol`.
    pub fn band_for(&self, symbol: &Symbol) -> &Band {
        self.overrides.get(symbol).unwrap_or(&self.default)
    }

    /// The default band.
    pub fn default_band(&self) -> &Band {
        &self.default
    }

    /// The per-symbol overrides, sorted by symbol.
    pub fn overrides(&self) -> Vec<(Symbol, Band)> {
        let mut list: Vec<_> = self.overrides.iter().map(|(s, r)| (*s, *r)).collect();
        list.sort_by_key(|(s, _)| *s);
        list
    }
}

impl Band {
    /// The two rules of this band, `high{suffix}` and `low{suffix}`, for `symbols`.
    fn rules(&self, suffix: &str, symbols: SymbolPattern, except: &[Symbol]) -> [Rule; 2] {
        let fire = match self.mode {
            Mode::Cross => Fire::Enter,
            Mode::Level => Fire::Every,
        };
        let rule = |side: &str, condition: Condition| {
            let id = RuleId::parse(&format!("{side}{suffix}"))
                .expect("band rule ids are built from valid parts");
            Rule::from_doc(RuleDoc {
                except: except.to_vec(),
                // Level alerts have nothing to re-arm.
                hysteresis: if fire == Fire::Enter {
                    self.hysteresis
                } else {
                    0.0
                },
                ..RuleDoc::new(id, symbols.clone(), condition, fire)
            })
            .expect("a valid band makes valid rules")
        };
        [
            rule("high", Condition::Above(self.high)),
            rule("low", Condition::Below(self.low)),
        ]
    }
}

impl BandSet {
    /// The rules this configuration means (see the module documentation): `high` and `low` for
    /// every symbol without a band of its own, then `high.S` and `low.S` for each symbol `S` that
    /// has one.
    pub fn to_rules(&self) -> Vec<Rule> {
        let overrides = self.overrides();
        let except: Vec<Symbol> = overrides.iter().map(|(symbol, _)| *symbol).collect();
        let mut rules = Vec::with_capacity(2 + 2 * overrides.len());
        rules.extend(self.default.rules("", SymbolPattern::Any, &except));
        for (symbol, band) in &overrides {
            let suffix = format!(".{}", band_id_part(symbol));
            rules.extend(band.rules(&suffix, SymbolPattern::Exact(*symbol), &[]));
        }
        rules
    }
}

/// A symbol as part of a rule id: its characters, with the two a rule id cannot hold (`:` and
/// `/`) written `_`.
fn band_id_part(symbol: &Symbol) -> String {
    symbol
        .as_str()
        .chars()
        .map(|c| if matches!(c, ':' | '/') { '_' } else { c })
        .collect()
}
