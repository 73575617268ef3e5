//! Alert rules and their evaluation: a pure function of (rule, prior symbol state, tick).
//!
//! A price *above* `high` is in the high zone and *below* `low` in the low zone; a price equal to
//! a threshold is inside the band and raises nothing.
//!
//! * [`Mode::Level`]: every tick beyond a threshold raises an alert; no state is kept.
//! * [`Mode::Cross`]: an alert is raised only when a symbol *enters* the high or low zone (the first
//!   tick seen for a symbol counts as entering). The symbol re-arms when the price comes back
//!   inside the band by at least `hysteresis`. A tick not newer than the newest tick already seen
//!   for its symbol is stale: it changes nothing and raises nothing. That is what makes
//!   redelivery safe: a tick evaluated once can never be evaluated again into a different answer.

mod config;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use config::{RULE_OVERRIDES_MAX, RULES_TEXT_BYTES_MAX, RuleSpec, RulesError};

use crate::alert::AlertKind;
use crate::tick::{PRICE_MAX, Symbol, Tick, Timestamp, format_number};

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

/// Where a price sits relative to a rule's band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// Below the low threshold.
    Low,
    /// Inside the band (or not yet re-armed out of it, see hysteresis).
    Normal,
    /// Above the high threshold.
    High,
}

impl Zone {
    /// `low`, `normal` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Low => "low",
            Zone::Normal => "normal",
            Zone::High => "high",
        }
    }
}

impl std::str::FromStr for Zone {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Self, RulesError> {
        match text {
            "low" => Ok(Zone::Low),
            "normal" => Ok(Zone::Normal),
            "high" => Ok(Zone::High),
            _ => Err(RulesError::new("zone", format!("unknown zone {text:?}"))),
        }
    }
}

/// A validated rule: `0 <= low < high < 1e12`, `0 <= hysteresis < high - low`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    high: f64,
    low: f64,
    hysteresis: f64,
    mode: Mode,
}

impl Rule {
    /// Validates a rule.
    pub fn new(high: f64, low: f64, hysteresis: f64, mode: Mode) -> Result<Rule, RulesError> {
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
        Ok(Rule {
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

    /// The zone of `price` for a symbol currently in `current`, applying hysteresis.
    fn zone_after(&self, current: Zone, price: f64) -> Zone {
        match (self.beyond(price), current) {
            (Some(AlertKind::High), _) => Zone::High,
            (Some(AlertKind::Low), _) => Zone::Low,
            (None, Zone::High) if price > self.high - self.hysteresis => Zone::High,
            (None, Zone::Low) if price < self.low + self.hysteresis => Zone::Low,
            (None, _) => Zone::Normal,
        }
    }

    fn with_spec(self, spec: &RuleSpec) -> Result<Rule, RulesError> {
        Rule::new(
            spec.high.unwrap_or(self.high),
            spec.low.unwrap_or(self.low),
            spec.hysteresis.unwrap_or(self.hysteresis),
            spec.mode.unwrap_or(self.mode),
        )
    }
}

/// The rules in force: a default plus per-symbol overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    default: Rule,
    overrides: HashMap<Symbol, Rule>,
}

impl RuleSet {
    /// One rule for every symbol.
    pub fn uniform(default: Rule) -> RuleSet {
        RuleSet {
            default,
            overrides: HashMap::new(),
        }
    }

    /// Adds or replaces the rule of one symbol.
    pub fn with_override(mut self, symbol: Symbol, rule: Rule) -> RuleSet {
        self.overrides.insert(symbol, rule);
        self
    }

    /// The rule that applies to `symbol`.
    pub fn rule_for(&self, symbol: &Symbol) -> &Rule {
        self.overrides.get(symbol).unwrap_or(&self.default)
    }

    /// The default rule.
    pub fn default_rule(&self) -> &Rule {
        &self.default
    }

    /// The per-symbol overrides, sorted by symbol.
    pub fn overrides(&self) -> Vec<(Symbol, Rule)> {
        let mut list: Vec<_> = self.overrides.iter().map(|(s, r)| (*s, *r)).collect();
        list.sort_by_key(|(s, _)| *s);
        list
    }
}

/// What cross mode remembers about a symbol: its zone, since when, and the newest tick seen.
///
/// `last_seen` doubles as the compare-and-set version: every change moves it strictly forward, so
/// a writer that read an older state can never overwrite a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolState {
    /// The zone the symbol is in.
    pub zone: Zone,
    /// The timestamp of the tick that moved it into `zone` (or first showed it there).
    pub since: Timestamp,
    /// The timestamp of the newest tick evaluated for this symbol.
    pub last_seen: Timestamp,
}

/// What one tick does to its symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The tick raises an alert of this kind.
    Alert(AlertKind),
    /// Cross mode: the symbol came back inside the band and is armed again.
    Rearm,
    /// Nothing to do.
    Quiet,
    /// Cross mode: the tick is not newer than the newest tick already seen for its symbol.
    Stale,
}

/// Evaluates one tick. Returns the verdict and, in cross mode, the symbol's new state unless the
/// tick is stale. Pure: the same inputs always give the same answer.
///
/// ```
/// use tickwatch_core::rules::{Verdict, Zone, evaluate};
/// use tickwatch_core::{AlertKind, Mode, Rule, Tick};
///
/// let rule = Rule::new(150.0, 50.0, 0.0, Mode::Cross)?;
/// let tick = |price: f64, second: i64| {
///     let body = format!(r#"{{"symbol":"AAPL","price":{price},"timestamp":{}}}"#, 1_795_703_400_000 + second * 1000);
///     Tick::decode(body.as_bytes()).expect("valid tick")
/// };
///
/// // Entering the high zone alerts once...
/// let (verdict, state) = evaluate(&rule, None, &tick(151.0, 1));
/// assert_eq!(verdict, Verdict::Alert(AlertKind::High));
/// assert_eq!(state.map(|s| s.zone), Some(Zone::High));
/// // ...staying there does not...
/// let (verdict, state) = evaluate(&rule, state, &tick(160.0, 2));
/// assert_eq!(verdict, Verdict::Quiet);
/// // ...and a tick older than one already seen changes nothing.
/// let (verdict, next) = evaluate(&rule, state, &tick(40.0, 1));
/// assert_eq!((verdict, next), (Verdict::Stale, None));
/// # Ok::<(), tickwatch_core::rules::RulesError>(())
/// ```
pub fn evaluate(
    rule: &Rule,
    prior: Option<SymbolState>,
    tick: &Tick,
) -> (Verdict, Option<SymbolState>) {
    let price = tick.price.get();
    match rule.mode {
        Mode::Level => match rule.beyond(price) {
            Some(kind) => (Verdict::Alert(kind), None),
            None => (Verdict::Quiet, None),
        },
        Mode::Cross => {
            if prior.is_some_and(|state| tick.at <= state.last_seen) {
                return (Verdict::Stale, None);
            }
            let current = prior.map_or(Zone::Normal, |state| state.zone);
            let next = rule.zone_after(current, price);
            let (verdict, since) = match (prior, next == current) {
                (Some(state), true) => (Verdict::Quiet, state.since),
                (None, true) => (Verdict::Quiet, tick.at),
                (_, false) => match next {
                    Zone::High => (Verdict::Alert(AlertKind::High), tick.at),
                    Zone::Low => (Verdict::Alert(AlertKind::Low), tick.at),
                    Zone::Normal => (Verdict::Rearm, tick.at),
                },
            };
            let state = SymbolState {
                zone: next,
                since,
                last_seen: tick.at,
            };
            (verdict, Some(state))
        }
    }
}

#[cfg(test)]
mod tests;
