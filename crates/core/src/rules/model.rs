//! The rule model: what a rule is, validated once, the same for every store and every path.
//!
//! A rule is data: an id, the symbols it watches, a condition, how often it fires, and optional
//! cooldown, expiry, pause and label. Its JSON form ([`RuleDoc`]) is what `tickwatch rules`
//! reads and writes, what the SQLite database and the DynamoDB rules table hold, and what
//! `rules import` / `rules export` exchange.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::RulesError;
use super::window::WindowCondition;
use crate::alert::AlertKind;
use crate::tick::{PRICE_MAX, SYMBOL_LEN_MAX, Symbol, Tick, Timestamp, format_number, quote};

/// Longest rule id, in characters.
pub const RULE_ID_LEN_MAX: usize = 64;

/// Longest label, in bytes of UTF-8.
pub const LABEL_BYTES_MAX: usize = 128;

/// Longest cooldown: one year, in seconds.
pub const COOLDOWN_SECONDS_MAX: u64 = 366 * 24 * 3600;

/// Most symbols a rule may exclude (a legacy rules file excludes every symbol with a band of its
/// own from its default rules).
pub const RULE_EXCEPT_MAX: usize = super::RULE_OVERRIDES_MAX;

/// Text of at most `N` bytes stored inline, so that ids and labels keep alerts `Copy` and
/// allocation-free.
#[derive(Clone, Copy)]
struct Inline<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    /// `text`, which the caller has checked is at most `N` bytes.
    fn new(text: &str) -> Self {
        debug_assert!(text.len() <= N && N <= usize::from(u8::MAX));
        let mut bytes = [0u8; N];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Inline {
            len: text.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        // Built only from a `&str` cut at its length: always UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes, without the UTF-8 check `as_str` makes: what hashing and comparing
    /// use (alert keys are hashed several times per alert).
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A rule's id: 1 to [`RULE_ID_LEN_MAX`] characters of `a-z A-Z 0-9 . _ -`, chosen by the user.
#[derive(Clone, Copy)]
pub struct RuleId(Inline<RULE_ID_LEN_MAX>);

impl RuleId {
    /// Validates `text` as a rule id.
    pub fn parse(text: &str) -> Result<RuleId, RulesError> {
        let invalid = |reason: String| RulesError::new("id", format!("{} {reason}", quote(text)));
        if text.is_empty() {
            return Err(RulesError::new("id", "must not be empty"));
        }
        if let Some((position, ch)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(invalid(format!(
                "has {ch:?} at position {}; allowed are a-z A-Z 0-9 . _ -",
                position + 1
            )));
        }
        if text.len() > RULE_ID_LEN_MAX {
            return Err(invalid(format!(
                "is {} characters long; at most {RULE_ID_LEN_MAX} are allowed",
                text.len()
            )));
        }
        Ok(RuleId(Inline::new(text)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A label an alert carries: up to [`LABEL_BYTES_MAX`] bytes of text without control characters.
#[derive(Clone, Copy)]
pub struct Label(Inline<LABEL_BYTES_MAX>);

impl Label {
    /// Validates `text` as a label.
    pub fn parse(text: &str) -> Result<Label, RulesError> {
        if text.len() > LABEL_BYTES_MAX {
            return Err(RulesError::new(
                "label",
                format!(
                    "is {} bytes long; at most {LABEL_BYTES_MAX} are allowed",
                    text.len()
                ),
            ));
        }
        if let Some(ch) = text.chars().find(|c| c.is_control()) {
            return Err(RulesError::new(
                "label",
                format!("{} has the control character {ch:?}", quote(text)),
            ));
        }
        Ok(Label(Inline::new(text)))
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

macro_rules! text_type {
    ($name:ident) => {
        // On the bytes: the same answers as on the text (`str` compares bytewise), without
        // checking UTF-8 each time.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes() == other.0.as_bytes()
            }
        }
        impl Eq for $name {}
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.as_bytes().hash(state);
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_bytes().cmp(other.0.as_bytes())
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = RulesError;
            fn from_str(text: &str) -> Result<Self, RulesError> {
                $name::parse(text)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_type!(RuleId);
text_type!(Label);

/// Which symbols a rule watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymbolPattern {
    /// `*`: every symbol.
    Any,
    /// `BTC-*`: every symbol that starts with the text before the `*`.
    Prefix(Box<str>),
    /// One symbol.
    Exact(Symbol),
}

impl SymbolPattern {
    /// Whether `symbol` is one of the pattern's.
    pub fn matches(&self, symbol: &Symbol) -> bool {
        match self {
            SymbolPattern::Any => true,
            SymbolPattern::Prefix(prefix) => symbol.as_str().starts_with(&**prefix),
            SymbolPattern::Exact(exact) => exact == symbol,
        }
    }
}

impl FromStr for SymbolPattern {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Self, RulesError> {
        let invalid = |reason: String| RulesError::new("symbols", reason);
        if text == "*" {
            return Ok(SymbolPattern::Any);
        }
        match text.strip_suffix('*') {
            Some(prefix) => {
                if prefix.contains('*') {
                    return Err(invalid(format!(
                        "{} may have one `*`, at the end",
                        quote(text)
                    )));
                }
                // A prefix is the start of a symbol: the same characters, at most one shorter.
                Symbol::parse(prefix)
                    .map_err(|e| invalid(format!("prefix {}", symbol_reason(&e))))?;
                if prefix.len() >= SYMBOL_LEN_MAX {
                    return Err(invalid(format!(
                        "prefix {} leaves no room for a symbol of at most {SYMBOL_LEN_MAX} characters",
                        quote(prefix)
                    )));
                }
                Ok(SymbolPattern::Prefix(prefix.into()))
            }
            None => Symbol::parse(text)
                .map(SymbolPattern::Exact)
                .map_err(|e| invalid(symbol_reason(&e))),
        }
    }
}

/// A symbol error without its own field name (`symbol: has ...` -> `has ...`).
fn symbol_reason(error: &crate::TickError) -> String {
    let text = error.to_string();
    text.strip_prefix("symbol: ").unwrap_or(&text).to_owned()
}

impl fmt::Display for SymbolPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolPattern::Any => f.write_str("*"),
            SymbolPattern::Prefix(prefix) => write!(f, "{prefix}*"),
            SymbolPattern::Exact(symbol) => write!(f, "{symbol}"),
        }
    }
}

/// What a rule looks for in a tick: a price level (strict: a price equal to the threshold does
/// not satisfy it), or a condition over a window of the symbol's recent past
/// ([`WindowCondition`]: `rise`, `fall`, `volume`, `crosses_ma`).
///
/// Conditions only say whether a tick satisfies them ([`Condition::test`],
/// [`WindowCondition::observe`]); how often that turns into an alert is the rule's [`Fire`]
/// policy, which is written once for every condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// `above X`: the price is above X. Raises `HIGH` alerts.
    Above(f64),
    /// `below X`: the price is below X. Raises `LOW` alerts.
    Below(f64),
    /// A condition over a window of time.
    Window(WindowCondition),
}

/// What a condition says of one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// The tick satisfies the condition.
    Holds,
    /// It does not, by at least the hysteresis: a rule that fired on entering re-arms.
    Clear,
    /// It does not, but within the hysteresis of doing so.
    Near,
}

impl Condition {
    /// The alert kind it raises: `HIGH` for above, `LOW` for below (window conditions: see
    /// [`WindowCondition::kind`]).
    pub fn kind(&self) -> AlertKind {
        match self {
            Condition::Above(_) => AlertKind::High,
            Condition::Below(_) => AlertKind::Low,
            Condition::Window(window) => window.kind(),
        }
    }

    /// The fixed threshold of a price level; `None` for a window condition, whose threshold
    /// moves with the window.
    pub fn threshold(&self) -> Option<f64> {
        match self {
            Condition::Above(x) | Condition::Below(x) => Some(*x),
            Condition::Window(_) => None,
        }
    }

    /// The window condition, if it is one.
    pub fn window(&self) -> Option<&WindowCondition> {
        match self {
            Condition::Window(window) => Some(window),
            _ => None,
        }
    }

    /// The level condition an alert stored without its condition (by tickwatch 0.2 or older)
    /// was raised by: `above` its threshold for `HIGH`, `below` for `LOW`.
    pub fn level(kind: AlertKind, threshold: f64) -> Condition {
        match kind {
            AlertKind::High => Condition::Above(threshold),
            AlertKind::Low => Condition::Below(threshold),
        }
    }

    /// What `tick` is to a price level, with `hysteresis` as the margin of [`Test::Clear`]. A
    /// window condition cannot judge a tick alone (see [`WindowCondition::observe`]): `Clear`.
    pub fn test(&self, tick: &Tick, hysteresis: f64) -> Test {
        let price = tick.price.get();
        let (holds, clear) = match *self {
            Condition::Above(x) => (price > x, price <= x - hysteresis),
            Condition::Below(x) => (price < x, price >= x + hysteresis),
            Condition::Window(_) => return Test::Clear,
        };
        if holds {
            Test::Holds
        } else if clear {
            Test::Clear
        } else {
            Test::Near
        }
    }
}

impl FromStr for Condition {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Self, RulesError> {
        let invalid = |reason: String| RulesError::new("condition", reason);
        let mut words = text.split_whitespace();
        if !matches!(words.clone().next(), Some("above" | "below")) {
            return text.parse().map(Condition::Window);
        }
        let (Some(word), Some(number), None) = (words.next(), words.next(), words.next()) else {
            return Err(invalid(format!(
                "must be \"above X\" or \"below X\", got {}",
                quote(text)
            )));
        };
        let value: f64 = number.parse().map_err(|_| {
            invalid(format!(
                "{} is not a number (in {})",
                quote(number),
                quote(text)
            ))
        })?;
        if !value.is_finite() || !(0.0..PRICE_MAX).contains(&value) {
            return Err(invalid(format!(
                "threshold must be at least 0 and below 1e12, got {}",
                format_number(value)
            )));
        }
        match word {
            "above" => Ok(Condition::Above(value)),
            "below" => Ok(Condition::Below(value)),
            _ => Err(invalid(format!(
                "must start with \"above\" or \"below\", got {}",
                quote(word)
            ))),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Above(x) => write!(f, "above {}", format_number(*x)),
            Condition::Below(x) => write!(f, "below {}", format_number(*x)),
            Condition::Window(window) => window.fmt(f),
        }
    }
}

/// How often a rule turns a satisfied condition into an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fire {
    /// Every tick that satisfies the condition (the specification's literal behaviour).
    Every,
    /// When a symbol starts satisfying it; re-arms once it stops, by the hysteresis.
    Enter,
    /// The first time only; then the rule is done for that symbol until it is re-armed.
    Once,
}

impl Fire {
    /// `every`, `enter` or `once`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fire::Every => "every",
            Fire::Enter => "enter",
            Fire::Once => "once",
        }
    }
}

impl fmt::Display for Fire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Fire {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Self, RulesError> {
        match text {
            "every" => Ok(Fire::Every),
            "enter" => Ok(Fire::Enter),
            "once" => Ok(Fire::Once),
            _ => Err(RulesError::new(
                "fire",
                format!(
                    "must be \"every\", \"enter\" or \"once\", got {}",
                    quote(text)
                ),
            )),
        }
    }
}

/// A rule as written (JSON): the form users, files and stores exchange. [`Rule::from_doc`]
/// validates it; every error names the field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// The id.
    pub id: RuleId,
    /// `AAPL`, `BTC-*` or `*`.
    #[serde(with = "as_text")]
    pub symbols: SymbolPattern,
    /// Symbols the pattern matches that the rule leaves alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Symbol>,
    /// `above X`, `below X`, `rise X% within W`, `fall X% within W`, `volume Kx over W` or
    /// `crosses_ma W [up|down|either]`.
    #[serde(with = "as_text")]
    pub condition: Condition,
    /// `every`, `enter` (the default) or `once`.
    #[serde(default = "fire_default")]
    pub fire: Fire,
    /// `enter`: how far the condition must stop holding to re-arm.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hysteresis: f64,
    /// At most one alert per symbol within this many seconds of tick time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_seconds: Option<u64>,
    /// Ticks stamped after this raise nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// A paused rule raises nothing.
    #[serde(default)]
    pub paused: bool,
    /// Carried by the rule's alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Bumped by every change that restarts the rule (an edit, a re-arm); set by the store.
    #[serde(default = "version_first")]
    pub version: u64,
}

fn fire_default() -> Fire {
    Fire::Enter
}

fn version_first() -> u64 {
    1
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Serde through `Display` and `FromStr` (errors name the field already).
pub(crate) mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = super::RulesError>,
        D: Deserializer<'de>,
    {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl RuleDoc {
    /// A rule with every optional field at its default.
    pub fn new(id: RuleId, symbols: SymbolPattern, condition: Condition, fire: Fire) -> RuleDoc {
        RuleDoc {
            id,
            symbols,
            except: Vec::new(),
            condition,
            fire,
            hysteresis: 0.0,
            cooldown_seconds: None,
            expires_at: None,
            paused: false,
            label: None,
            version: 1,
        }
    }

    /// Parses one rule from JSON; errors name the field.
    pub fn from_json(text: &str) -> Result<RuleDoc, RulesError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let doc = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| located_error("rule", e))?;
        deserializer.end().map_err(|e| json_error("rule", &e))?;
        Ok(doc)
    }
}

/// A JSON error as a [`RulesError`]: ours name their field already (`symbols: ...`), serde's
/// name the line and column.
pub(crate) fn json_error(what: &str, error: &serde_json::Error) -> RulesError {
    let message = crate::tick::escape_controls(&error.to_string()).into_owned();
    match message.split_once(": ") {
        Some((field, reason))
            if [
                "id",
                "symbols",
                "condition",
                "fire",
                "label",
                "hysteresis",
                "cooldown_seconds",
                "expires_at",
            ]
            .contains(&field) =>
        {
            RulesError::new(field, reason)
        }
        _ => RulesError::new(what, message),
    }
}

/// A JSON error with the path where it happened: serde's own errors (a wrong type, an unknown
/// `fire`) are put at their field, ours name it already.
pub(crate) fn located_error(
    what: &str,
    error: serde_path_to_error::Error<serde_json::Error>,
) -> RulesError {
    let path = error.path().to_string();
    let named = json_error(what, error.inner());
    // serde_path_to_error writes the document itself as `.`, and `?` where it lost track.
    let field = path.split(['.', '[']).next().unwrap_or_default();
    if named.location != what || field.is_empty() || field == "?" {
        return named;
    }
    RulesError::new(field, named.reason)
}

/// A validated rule. Built only by [`Rule::from_doc`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    doc: RuleDoc,
    cooldown_ms: u64,
}

impl Rule {
    /// Validates a rule as written. Errors name the field.
    pub fn from_doc(mut doc: RuleDoc) -> Result<Rule, RulesError> {
        if !doc.hysteresis.is_finite() || !(0.0..PRICE_MAX).contains(&doc.hysteresis) {
            return Err(RulesError::new(
                "hysteresis",
                format!(
                    "must be at least 0 and below 1e12, got {}",
                    format_number(doc.hysteresis)
                ),
            ));
        }
        if doc.hysteresis > 0.0 && doc.condition.window().is_some() {
            return Err(RulesError::new(
                "hysteresis",
                "applies to above and below conditions only",
            ));
        }
        if doc.hysteresis > 0.0 && doc.fire != Fire::Enter {
            return Err(RulesError::new(
                "hysteresis",
                format!("applies to fire = enter only, not {}", doc.fire),
            ));
        }
        if let Some(seconds) = doc.cooldown_seconds {
            if !(1..=COOLDOWN_SECONDS_MAX).contains(&seconds) {
                return Err(RulesError::new(
                    "cooldown_seconds",
                    format!("must be 1 to {COOLDOWN_SECONDS_MAX} seconds, got {seconds}"),
                ));
            }
            if doc.fire == Fire::Once {
                return Err(RulesError::new(
                    "cooldown_seconds",
                    "applies to fire = every or enter; a once rule fires once",
                ));
            }
        }
        if doc.except.len() > RULE_EXCEPT_MAX {
            return Err(RulesError::new(
                "except",
                format!(
                    "has {} symbols; the limit is {RULE_EXCEPT_MAX}",
                    doc.except.len()
                ),
            ));
        }
        if doc.version == 0 {
            return Err(RulesError::new("version", "must be at least 1"));
        }
        doc.except.sort_unstable();
        doc.except.dedup();
        let cooldown_ms = doc.cooldown_seconds.unwrap_or(0) * 1000;
        Ok(Rule { doc, cooldown_ms })
    }

    /// The rule as written (with `except` sorted).
    pub fn doc(&self) -> &RuleDoc {
        &self.doc
    }

    /// The id.
    pub fn id(&self) -> RuleId {
        self.doc.id
    }

    /// The version: bumped by edits and re-arms.
    pub fn version(&self) -> u64 {
        self.doc.version
    }

    /// The condition.
    pub fn condition(&self) -> Condition {
        self.doc.condition
    }

    /// The firing policy.
    pub fn fire(&self) -> Fire {
        self.doc.fire
    }

    /// The label, if any.
    pub fn label(&self) -> Option<Label> {
        self.doc.label
    }

    /// Whether it is paused.
    pub fn paused(&self) -> bool {
        self.doc.paused
    }

    /// Whether it applies to `symbol`: the pattern matches and the symbol is not excepted.
    pub fn applies_to(&self, symbol: &Symbol) -> bool {
        self.doc.symbols.matches(symbol) && self.doc.except.binary_search(symbol).is_err()
    }

    /// Whether it needs per-symbol state: window conditions, and everything but `every` without
    /// a cooldown.
    pub fn stateful(&self) -> bool {
        self.doc.fire != Fire::Every
            || self.cooldown_ms > 0
            || self.doc.condition.window().is_some()
    }

    /// Whether a tick stamped `at` is past the rule's expiry (at the expiry itself it is not).
    pub fn expired_at(&self, at: Timestamp) -> bool {
        self.doc.expires_at.is_some_and(|end| at > end)
    }

    /// The hysteresis.
    pub fn hysteresis(&self) -> f64 {
        self.doc.hysteresis
    }

    /// The cooldown in milliseconds of tick time (0: none).
    pub fn cooldown_ms(&self) -> u64 {
        self.cooldown_ms
    }

    /// The same rule with another version (stores set it).
    pub fn with_version(&self, version: u64) -> Rule {
        let mut rule = self.clone();
        rule.doc.version = version.max(1);
        rule
    }

    /// Whether `other` differs from this rule in anything that restarts it: everything but the
    /// version, `paused` and `label`. Pausing, resuming and relabelling keep a rule's state.
    pub fn restarts(&self, other: &Rule) -> bool {
        let strip = |rule: &Rule| RuleDoc {
            version: 1,
            paused: false,
            label: None,
            ..rule.doc.clone()
        };
        strip(self) != strip(other)
    }
}

impl fmt::Display for Rule {
    /// `aapl-200: AAPL above 200, fire enter, cooldown 300 s, paused`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doc = &self.doc;
        write!(f, "{}: {} {}", doc.id, doc.symbols, doc.condition)?;
        if !doc.except.is_empty() {
            write!(f, " (except {} symbols)", doc.except.len())?;
        }
        write!(f, ", fire {}", doc.fire)?;
        if doc.hysteresis > 0.0 {
            write!(f, ", hysteresis {}", format_number(doc.hysteresis))?;
        }
        if let Some(seconds) = doc.cooldown_seconds {
            write!(f, ", cooldown {seconds} s")?;
        }
        if let Some(end) = doc.expires_at {
            write!(f, ", expires {end}")?;
        }
        if doc.paused {
            f.write_str(", paused")?;
        }
        Ok(())
    }
}
