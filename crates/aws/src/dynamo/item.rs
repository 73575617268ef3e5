//! The DynamoDB item codec: attribute names, keys, and alerts and symbol states to and from
//! items. Malformed items are refused with an error naming the table and the attribute. The key
//! schema and attribute layout are described in the parent module's documentation.
//!
//! Items written by tickwatch 0.1 (one band per symbol) are read, not refused: an alert without
//! `rule_id` came from the band's `high` or `low` rule (by its kind) and fired on `enter` (mode
//! `cross`) or `every` tick (mode `level`); a state with a `zone` and no `rules` is read through
//! [`SymbolState::from_zone`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use tickwatch_core::ports::StoredAlert;
use tickwatch_core::rules::{
    Condition, Fire, Label, RuleId, SymbolState, decode_rule_states, encode_rule_states,
};
use tickwatch_core::{Alert, AlertKey, AlertKind, Mode, Price, Symbol, Timestamp};

use crate::error::AwsError;

/// Attribute names.
pub(super) mod attr {
    pub(crate) const SYMBOL: &str = "symbol";
    /// The alerts table's sort key: `<tick time>#<rule id>`.
    pub(crate) const TIMESTAMP: &str = "timestamp";
    pub(crate) const TICK_TIME: &str = "tick_time";
    pub(crate) const RULE_ID: &str = "rule_id";
    pub(crate) const LABEL: &str = "label";
    pub(crate) const FIRE: &str = "fire";
    pub(crate) const ALERT_ID: &str = "alert_id";
    pub(crate) const KIND: &str = "kind";
    /// The rule's condition (absent on alerts of tickwatch 0.2 and older: the level of kind and
    /// threshold).
    pub(crate) const CONDITION: &str = "condition";
    pub(crate) const PRICE: &str = "price";
    pub(crate) const THRESHOLD: &str = "threshold";
    pub(crate) const PROCESSED_AT: &str = "processed_at";
    pub(crate) const NOTIFIED: &str = "notified";
    pub(crate) const LAST_SEEN: &str = "last_seen";
    pub(crate) const LAST_SEEN_AT: &str = "last_seen_at";
    pub(crate) const RULES: &str = "rules";
    /// tickwatch 0.1's alerts: `cross` or `level` where `fire` is now.
    pub(crate) const MODE: &str = "mode";
    /// tickwatch 0.1's states: `low`, `normal` or `high` where `rules` is now.
    pub(crate) const ZONE: &str = "zone";
}

/// What separates the tick time from the rule id in an alert's sort key. It cannot occur in
/// either: RFC 3339 times are digits and `-:.TZ`, rule ids `a-z A-Z 0-9 . _ -`.
pub const SORT_KEY_SEPARATOR: char = '#';

pub(super) type Item = HashMap<String, AttributeValue>;

/// A table key: partition key value, and sort key value if the table has one.
pub(super) type Key = (String, Option<String>);

/// The condition that makes a state put a compare-and-set on `last_seen`.
pub(super) fn state_condition(
    expected_last_seen: Option<Timestamp>,
) -> (&'static str, HashMap<String, String>, Option<Item>) {
    match expected_last_seen {
        None => (
            "attribute_not_exists(#s)",
            HashMap::from([("#s".to_owned(), attr::SYMBOL.to_owned())]),
            None,
        ),
        Some(last_seen) => (
            "#ls = :expected",
            HashMap::from([("#ls".to_owned(), attr::LAST_SEEN.to_owned())]),
            Some(HashMap::from([(
                ":expected".to_owned(),
                AttributeValue::N(last_seen.epoch_ms().to_string()),
            )])),
        ),
    }
}

/// The sort key of the alert `rule` raised on a tick at `at`: `2026-11-26T14:30:00.123Z#aapl-200`.
/// Fixed-width times first, so the keys of a symbol sort by tick time and a time range is a
/// `BETWEEN` (or a `begins_with` on a prefix of the time).
pub fn alert_sort_key(at: Timestamp, rule: &RuleId) -> String {
    format!("{at}{SORT_KEY_SEPARATOR}{rule}")
}

pub(super) fn alert_key(key: &AlertKey) -> Key {
    (
        key.symbol.to_string(),
        Some(alert_sort_key(key.at, &key.rule)),
    )
}

pub(super) fn alert_key_item(key: &AlertKey) -> Item {
    key_item(&alert_key(key))
}

/// The rule a tickwatch 0.1 alert of `kind` came from: the band's `high` or `low` rule.
pub(super) fn legacy_rule(kind: AlertKind) -> RuleId {
    RuleId::parse(match kind {
        AlertKind::High => "high",
        AlertKind::Low => "low",
    })
    .expect("high and low are valid rule ids")
}

/// The kind of the tickwatch 0.1 alerts that read as raised by `rule`, if any (`high`, `low`).
pub(super) fn legacy_kind(rule: &RuleId) -> Option<AlertKind> {
    match rule.as_str() {
        "high" => Some(AlertKind::High),
        "low" => Some(AlertKind::Low),
        _ => None,
    }
}

/// Where tickwatch 0.1 stored the alert of `key` (its sort key was the tick time alone), if the
/// key's rule is one such an alert reads as.
pub(super) fn legacy_alert_key(key: &AlertKey) -> Option<Key> {
    legacy_kind(&key.rule).map(|_| (key.symbol.to_string(), Some(key.at.to_string())))
}

pub(super) fn key_item((partition, sort): &Key) -> Item {
    let mut item = HashMap::from([(
        attr::SYMBOL.to_owned(),
        AttributeValue::S(partition.clone()),
    )]);
    if let Some(sort) = sort {
        item.insert(attr::TIMESTAMP.to_owned(), AttributeValue::S(sort.clone()));
    }
    item
}

/// The key of a returned item (both tables: the sort key is there only in the alerts table).
pub(super) fn key_of(item: &Item) -> Option<Key> {
    let partition = item.get(attr::SYMBOL)?.as_s().ok()?.clone();
    let sort = item
        .get(attr::TIMESTAMP)
        .and_then(|v| v.as_s().ok())
        .cloned();
    Some((partition, sort))
}

/// A new alert as an item (not yet notified).
pub(super) fn alert_item(alert: &Alert) -> Item {
    let s = |text: String| AttributeValue::S(text);
    let mut item = HashMap::from([
        (attr::SYMBOL.to_owned(), s(alert.symbol.to_string())),
        (
            attr::TIMESTAMP.to_owned(),
            s(alert_sort_key(alert.timestamp, &alert.rule_id)),
        ),
        (attr::TICK_TIME.to_owned(), s(alert.timestamp.to_string())),
        (attr::RULE_ID.to_owned(), s(alert.rule_id.to_string())),
        (attr::FIRE.to_owned(), s(alert.fire.as_str().to_owned())),
        (attr::ALERT_ID.to_owned(), s(alert.alert_id.to_string())),
        (attr::KIND.to_owned(), s(alert.kind.to_string())),
        (attr::CONDITION.to_owned(), s(alert.condition.to_string())),
        (
            attr::PRICE.to_owned(),
            AttributeValue::N(alert.price.to_string()),
        ),
        (
            attr::THRESHOLD.to_owned(),
            AttributeValue::N(alert.threshold.to_string()),
        ),
        (
            attr::PROCESSED_AT.to_owned(),
            s(alert.processed_at.to_string()),
        ),
        (attr::NOTIFIED.to_owned(), AttributeValue::Bool(false)),
    ]);
    if let Some(label) = alert.label {
        item.insert(attr::LABEL.to_owned(), s(label.to_string()));
    }
    item
}

pub(super) fn state_item(symbol: &Symbol, state: &SymbolState) -> Item {
    HashMap::from([
        (
            attr::SYMBOL.to_owned(),
            AttributeValue::S(symbol.to_string()),
        ),
        (
            attr::LAST_SEEN.to_owned(),
            AttributeValue::N(state.last_seen.epoch_ms().to_string()),
        ),
        (
            attr::LAST_SEEN_AT.to_owned(),
            AttributeValue::S(state.last_seen.to_string()),
        ),
        // Always written, even empty: its presence is what tells this layout from 0.1's `zone`.
        (
            attr::RULES.to_owned(),
            AttributeValue::B(Blob::new(encode_rule_states(&state.rules))),
        ),
    ])
}

/// Bytes in one write unit: a write costs one unit per started KB of the item.
#[cfg(any(test, feature = "testing"))]
const WRITE_UNIT_BYTES: usize = 1_024;

/// The size DynamoDB bills `item` by, in bytes: for each attribute, the UTF-8 bytes of its name
/// plus the size of its value (see [`value_size_bytes`]).
///
/// The rule is the one documented in "DynamoDB item sizes and formats",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>.
/// It measures what writes cost (BENCHMARKS.md: a state write; the Lambda bench's cost model), so
/// it is compiled for tests and test support only (`testing::item_size_bytes`).
#[cfg(any(test, feature = "testing"))]
pub fn item_size_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size_bytes(value))
        .sum()
}

/// The size of one attribute value, without its name, by the documented rule: a string its UTF-8
/// bytes, a binary its raw bytes (not its base64 form), a number 1 byte per two significant
/// digits plus 1 (leading and trailing zeros trimmed; the documentation calls this approximate),
/// a boolean or null 1, a list or map 3 plus 1 per element plus the elements (a map's element
/// counts its key too). Sets are not described there; they count as the sum of their elements.
#[cfg(any(test, feature = "testing"))]
fn value_size_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size_bytes(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(values) => {
            3 + values
                .iter()
                .map(|v| 1 + value_size_bytes(v))
                .sum::<usize>()
        }
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(key, v)| 1 + key.len() + value_size_bytes(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size_bytes(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        // A type this SDK does not know: nothing tickwatch writes.
        _ => panic!("unknown attribute value type: {value:?}"),
    }
}

/// `(significant digits + 1) / 2 + 1`: the digits of the mantissa without sign, point, exponent,
/// and leading or trailing zeros (`-0.00150` has two: `15`).
#[cfg(any(test, feature = "testing"))]
fn number_size_bytes(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Write units one write of an item of `size_bytes` costs: one per started KB, at least one. A
/// write inside `TransactWriteItems` costs twice that. (A put that replaces an item is billed on
/// the larger of the old and the new item.)
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>
#[cfg(any(test, feature = "testing"))]
pub fn write_units(size_bytes: usize) -> u64 {
    size_bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as u64
}

/// Reads attributes of one item, naming the table and attribute in every error.
pub(super) struct Reader<'a> {
    pub(super) table: &'a str,
    pub(super) item: &'a Item,
}

impl Reader<'_> {
    pub(super) fn malformed(&self, attribute: &'static str, reason: impl Into<String>) -> AwsError {
        AwsError::MalformedItem {
            table: self.table.to_owned(),
            attribute,
            reason: reason.into(),
        }
    }

    fn has(&self, attribute: &str) -> bool {
        self.item.contains_key(attribute)
    }

    fn get(&self, attribute: &'static str) -> Result<&AttributeValue, AwsError> {
        self.item
            .get(attribute)
            .ok_or_else(|| self.malformed(attribute, "is missing"))
    }

    pub(super) fn string(&self, attribute: &'static str) -> Result<&str, AwsError> {
        match self.get(attribute)? {
            AttributeValue::S(text) => Ok(text),
            _ => Err(self.malformed(attribute, "is not a string (S)")),
        }
    }

    pub(super) fn number(&self, attribute: &'static str) -> Result<&str, AwsError> {
        match self.get(attribute)? {
            AttributeValue::N(text) => Ok(text),
            _ => Err(self.malformed(attribute, "is not a number (N)")),
        }
    }

    fn binary(&self, attribute: &'static str) -> Result<&[u8], AwsError> {
        match self.get(attribute)? {
            AttributeValue::B(blob) => Ok(blob.as_ref()),
            _ => Err(self.malformed(attribute, "is not binary (B)")),
        }
    }

    fn boolean(&self, attribute: &'static str) -> Result<bool, AwsError> {
        match self.get(attribute)? {
            AttributeValue::Bool(value) => Ok(*value),
            _ => Err(self.malformed(attribute, "is not a boolean (BOOL)")),
        }
    }

    /// Parses a string attribute with `parse`, quoting the value in the error.
    pub(super) fn parsed<T, E: std::fmt::Display>(
        &self,
        attribute: &'static str,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, AwsError> {
        parse(text).map_err(|e| self.malformed(attribute, format!("{text:?} is invalid: {e}")))
    }

    fn float(&self, attribute: &'static str) -> Result<f64, AwsError> {
        let text = self.number(attribute)?;
        self.parsed(attribute, text, str::parse::<f64>)
    }

    fn timestamp_ms(&self, attribute: &'static str) -> Result<Timestamp, AwsError> {
        let text = self.number(attribute)?;
        let ms = self.parsed(attribute, text, str::parse::<i64>)?;
        self.parsed(attribute, text, |_| Timestamp::from_epoch_ms(ms))
    }

    fn timestamp_text(&self, attribute: &'static str) -> Result<Timestamp, AwsError> {
        let text = self.string(attribute)?;
        self.parsed(attribute, text, Timestamp::parse_rfc3339)
    }
}

pub(super) fn parse_alert(table: &str, item: &Item) -> Result<StoredAlert, AwsError> {
    let r = Reader { table, item };
    let symbol = r.parsed(attr::SYMBOL, r.string(attr::SYMBOL)?, Symbol::parse)?;
    let alert_id = r.parsed(attr::ALERT_ID, r.string(attr::ALERT_ID)?, str::parse)?;
    let kind = r.parsed(attr::KIND, r.string(attr::KIND)?, str::parse::<AlertKind>)?;
    let price = r.float(attr::PRICE)?;
    let price = r.parsed(attr::PRICE, r.number(attr::PRICE)?, |_| Price::new(price))?;
    let legacy = !r.has(attr::RULE_ID);
    let (rule_id, fire, timestamp) = if legacy {
        // tickwatch 0.1: the sort key is the tick time, the mode says how the band fired.
        let mode = r.parsed(attr::MODE, r.string(attr::MODE)?, str::parse::<Mode>)?;
        let fire = match mode {
            Mode::Cross => Fire::Enter,
            Mode::Level => Fire::Every,
        };
        (legacy_rule(kind), fire, r.timestamp_text(attr::TIMESTAMP)?)
    } else {
        (
            r.parsed(attr::RULE_ID, r.string(attr::RULE_ID)?, RuleId::parse)?,
            r.parsed(attr::FIRE, r.string(attr::FIRE)?, str::parse::<Fire>)?,
            r.timestamp_text(attr::TICK_TIME)?,
        )
    };
    let label = if r.has(attr::LABEL) {
        Some(r.parsed(attr::LABEL, r.string(attr::LABEL)?, Label::parse)?)
    } else {
        None
    };
    let threshold = r.float(attr::THRESHOLD)?;
    let condition = if r.has(attr::CONDITION) {
        r.parsed(
            attr::CONDITION,
            r.string(attr::CONDITION)?,
            str::parse::<Condition>,
        )?
    } else {
        Condition::level(kind, threshold)
    };
    let alert = Alert {
        alert_id,
        rule_id,
        label,
        symbol,
        kind,
        condition,
        price,
        threshold,
        fire,
        timestamp,
        processed_at: r.timestamp_text(attr::PROCESSED_AT)?,
    };
    Ok(StoredAlert {
        alert,
        notified: r.boolean(attr::NOTIFIED)?,
    })
}

pub(super) fn parse_state(table: &str, item: &Item) -> Result<SymbolState, AwsError> {
    let r = Reader { table, item };
    let last_seen = r.timestamp_ms(attr::LAST_SEEN)?;
    if !r.has(attr::RULES) && r.has(attr::ZONE) {
        // tickwatch 0.1: a zone instead of rule states. Its next write replaces the item.
        let symbol = r.parsed(attr::SYMBOL, r.string(attr::SYMBOL)?, Symbol::parse)?;
        let zone = r.string(attr::ZONE)?;
        if !matches!(zone, "low" | "normal" | "high") {
            return Err(r.malformed(
                attr::ZONE,
                format!("{zone:?} is invalid: must be low, normal or high"),
            ));
        }
        return Ok(SymbolState::from_zone(zone, &symbol, last_seen));
    }
    let rules = decode_rule_states(r.binary(attr::RULES)?)
        .map_err(|e| r.malformed(attr::RULES, e.to_string()))?;
    Ok(SymbolState { last_seen, rules })
}

#[cfg(test)]
mod tests {
    use tickwatch_core::rules::{Phase, RuleState};

    use super::*;

    fn rule(id: &str) -> RuleId {
        RuleId::parse(id).expect("valid rule id")
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_epoch_ms(ms).expect("valid")
    }

    fn sample_alert() -> Alert {
        let symbol = Symbol::parse("BRK.B").expect("valid");
        let at = ts(1_795_703_400_123);
        let key = AlertKey {
            symbol,
            at,
            rule: rule("brk-150"),
        };
        Alert {
            alert_id: key.id(),
            rule_id: key.rule,
            label: Some(Label::parse("Berkshire over 150").expect("valid")),
            symbol,
            kind: AlertKind::High,
            condition: Condition::Above(150.0),
            price: Price::new(151.25).expect("valid"),
            threshold: 150.0,
            fire: Fire::Enter,
            timestamp: at,
            processed_at: ts(1_795_703_401_000),
        }
    }

    #[test]
    fn alert_items_round_trip() {
        let alert = sample_alert();
        let item = alert_item(&alert);
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        assert_eq!(
            text("timestamp").as_deref(),
            Some("2026-11-26T14:30:00.123Z#brk-150")
        );
        assert_eq!(
            text("tick_time").as_deref(),
            Some("2026-11-26T14:30:00.123Z")
        );
        assert_eq!(text("rule_id").as_deref(), Some("brk-150"));
        assert_eq!(text("label").as_deref(), Some("Berkshire over 150"));
        assert_eq!(text("fire").as_deref(), Some("enter"));
        assert_eq!(item.get("price"), Some(&AttributeValue::N("151.25".into())));
        assert!(!item.contains_key("mode"), "0.1's mode is not written");
        let stored = parse_alert("alerts", &item).expect("parses");
        assert_eq!(
            stored,
            StoredAlert {
                alert,
                notified: false
            }
        );
        // Without a label, no label attribute (DynamoDB refuses empty strings in keys, and an
        // absent label is not an empty one).
        let unlabelled = Alert {
            label: None,
            ..alert
        };
        let item = alert_item(&unlabelled);
        assert!(!item.contains_key("label"));
        assert_eq!(
            parse_alert("alerts", &item).map(|s| s.alert),
            Ok(unlabelled)
        );
    }

    #[test]
    fn sort_keys_sort_by_tick_time_then_rule_and_make_time_ranges() {
        let keys = [
            alert_sort_key(ts(999), &rule("z")),
            alert_sort_key(ts(1_000), &rule("A")),
            alert_sort_key(ts(1_000), &rule("a-1")),
            alert_sort_key(ts(1_000), &rule("high")),
            alert_sort_key(ts(1_001), &rule("0")),
            alert_sort_key(ts(60_000), &rule("low")),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "string order is time order, then rule order");
        // A time range is a BETWEEN from the first time to the last time followed by a
        // character above every rule id character.
        let (from, to) = (ts(1_000).to_string(), format!("{}#~", ts(1_001)));
        let inside: Vec<&String> = keys
            .iter()
            .filter(|k| k.as_str() >= from.as_str() && k.as_str() <= to.as_str())
            .collect();
        assert_eq!(inside, keys[1..5].iter().collect::<Vec<_>>());
        assert!(keys[1].starts_with("1970-01-01T00:00:01.000Z#"));
        // 0.1's keys (the time alone) sort right before the same time's new keys.
        assert!(ts(1_000).to_string() < keys[1] && ts(1_000).to_string() > keys[0]);
    }

    /// An alerts item exactly as tickwatch 0.1 wrote it.
    fn legacy_alert_item(kind: &str, mode: &str) -> Item {
        let s = |text: &str| AttributeValue::S(text.to_owned());
        HashMap::from([
            ("symbol".to_owned(), s("AAPL")),
            ("timestamp".to_owned(), s("2026-11-26T14:30:00.123Z")),
            ("alert_id".to_owned(), s("0123456789abcdef0123456789abcdef")),
            ("kind".to_owned(), s(kind)),
            ("price".to_owned(), AttributeValue::N("151.25".into())),
            ("threshold".to_owned(), AttributeValue::N("150".into())),
            ("mode".to_owned(), s(mode)),
            ("processed_at".to_owned(), s("2026-11-26T14:30:01.000Z")),
            ("notified".to_owned(), AttributeValue::Bool(true)),
        ])
    }

    #[test]
    fn alert_items_of_the_previous_release_are_read() {
        let cases = [
            ("HIGH", "cross", "high", Fire::Enter),
            ("HIGH", "level", "high", Fire::Every),
            ("LOW", "cross", "low", Fire::Enter),
            ("LOW", "level", "low", Fire::Every),
        ];
        for (kind, mode, rule_id, fire) in cases {
            let stored = parse_alert("alerts", &legacy_alert_item(kind, mode))
                .unwrap_or_else(|e| panic!("{kind} {mode}: {e}"));
            let alert = stored.alert;
            assert_eq!(alert.rule_id.as_str(), rule_id, "{kind} {mode}");
            assert_eq!(alert.fire, fire, "{kind} {mode}");
            assert_eq!(alert.label, None);
            assert_eq!(alert.timestamp, ts(1_795_703_400_123));
            assert_eq!(
                alert.alert_id.to_string(),
                "0123456789abcdef0123456789abcdef",
                "the id it was announced with is kept"
            );
            assert!(stored.notified);
        }
        let mut bad = legacy_alert_item("HIGH", "sideways");
        let error = parse_alert("alerts", &bad).expect_err("bad mode");
        assert!(error.to_string().contains("attribute mode"), "{error}");
        bad.remove("mode");
        let error = parse_alert("alerts", &bad).expect_err("no mode");
        assert!(
            error.to_string().contains("attribute mode is missing"),
            "{error}"
        );
    }

    #[test]
    fn legacy_keys_exist_only_for_the_band_rules() {
        let key = |id: &str| AlertKey {
            symbol: Symbol::parse("AAPL").expect("valid"),
            at: ts(1_795_703_400_123),
            rule: rule(id),
        };
        assert_eq!(
            legacy_alert_key(&key("high")),
            Some(("AAPL".into(), Some("2026-11-26T14:30:00.123Z".into())))
        );
        assert!(legacy_alert_key(&key("low")).is_some());
        assert_eq!(legacy_alert_key(&key("high.AAPL")), None);
        assert_eq!(legacy_alert_key(&key("aapl-200")), None);
        assert_eq!(
            alert_key(&key("high")).1.as_deref(),
            Some("2026-11-26T14:30:00.123Z#high")
        );
    }

    fn sample_state() -> SymbolState {
        SymbolState {
            last_seen: ts(2_000),
            rules: vec![
                RuleState {
                    rule: rule("high"),
                    version: 3,
                    phase: Phase::Fired,
                    last_alert: Some(ts(1_000)),
                    window: None,
                },
                RuleState {
                    rule: rule("once-1"),
                    version: 1,
                    phase: Phase::Done,
                    last_alert: None,
                    window: None,
                },
            ],
        }
    }

    #[test]
    fn state_items_round_trip() {
        let symbol = Symbol::parse("AAPL").expect("valid");
        for state in [
            sample_state(),
            SymbolState {
                last_seen: ts(5),
                rules: Vec::new(),
            },
        ] {
            let item = state_item(&symbol, &state);
            assert_eq!(
                item.get("last_seen"),
                Some(&AttributeValue::N(state.last_seen.epoch_ms().to_string()))
            );
            assert_eq!(
                item.get("last_seen_at"),
                Some(&AttributeValue::S(state.last_seen.to_string()))
            );
            assert_eq!(
                item.get("rules"),
                Some(&AttributeValue::B(Blob::new(encode_rule_states(
                    &state.rules
                ))))
            );
            for gone in ["zone", "since", "since_at"] {
                assert!(!item.contains_key(gone), "{gone} is no longer written");
            }
            assert_eq!(parse_state("state", &item), Ok(state));
        }
    }

    #[test]
    fn state_items_of_the_previous_release_are_read_through_their_zone() {
        let legacy = |zone: &str| -> Item {
            HashMap::from([
                ("symbol".to_owned(), AttributeValue::S("AAPL".into())),
                ("zone".to_owned(), AttributeValue::S(zone.into())),
                ("since".to_owned(), AttributeValue::N("1000".into())),
                ("last_seen".to_owned(), AttributeValue::N("2000".into())),
                (
                    "since_at".to_owned(),
                    AttributeValue::S("1970-01-01T00:00:01.000Z".into()),
                ),
                (
                    "last_seen_at".to_owned(),
                    AttributeValue::S("1970-01-01T00:00:02.000Z".into()),
                ),
            ])
        };
        let symbol = Symbol::parse("AAPL").expect("valid");
        for zone in ["high", "low", "normal"] {
            assert_eq!(
                parse_state("state", &legacy(zone)),
                Ok(SymbolState::from_zone(zone, &symbol, ts(2_000))),
                "{zone}"
            );
        }
        let high = parse_state("state", &legacy("high")).expect("parses");
        assert!(
            high.rules
                .iter()
                .any(|s| s.rule.as_str() == "high" && s.phase == Phase::Fired),
            "{high:?}"
        );
        let error = parse_state("state", &legacy("sideways")).expect_err("bad zone");
        assert!(error.to_string().contains("attribute zone"), "{error}");
    }

    #[test]
    fn malformed_items_name_the_attribute() {
        let good = alert_item(&sample_alert());
        let cases: [(&str, Option<AttributeValue>, &str); 10] = [
            ("price", None, "attribute price is missing"),
            (
                "price",
                Some(AttributeValue::S("1".into())),
                "attribute price is not a number",
            ),
            (
                "price",
                Some(AttributeValue::N("-1".into())),
                "attribute price \"-1\" is invalid",
            ),
            (
                "kind",
                Some(AttributeValue::S("SIDEWAYS".into())),
                "attribute kind \"SIDEWAYS\" is invalid",
            ),
            (
                "notified",
                Some(AttributeValue::S("yes".into())),
                "attribute notified is not a boolean",
            ),
            (
                "tick_time",
                Some(AttributeValue::S("yesterday".into())),
                "attribute tick_time \"yesterday\" is invalid",
            ),
            ("tick_time", None, "attribute tick_time is missing"),
            (
                "alert_id",
                Some(AttributeValue::S("xyz".into())),
                "attribute alert_id \"xyz\" is invalid",
            ),
            (
                "rule_id",
                Some(AttributeValue::S("a b".into())),
                "attribute rule_id \"a b\" is invalid",
            ),
            (
                "fire",
                Some(AttributeValue::S("twice".into())),
                "attribute fire \"twice\" is invalid",
            ),
        ];
        for (attribute, value, expected) in cases {
            let mut item = good.clone();
            match value {
                Some(value) => item.insert(attribute.to_owned(), value),
                None => item.remove(attribute),
            };
            let error = parse_alert("alerts", &item).expect_err(attribute);
            assert!(
                error.to_string().contains(expected),
                "{error} should contain {expected}"
            );
            assert_eq!(
                tickwatch_core::ports::Classify::class(&error),
                tickwatch_core::ports::ErrorClass::Permanent
            );
        }
        let symbol = Symbol::parse("X").expect("valid");
        let mut state = state_item(&symbol, &sample_state());
        state.insert("last_seen".into(), AttributeValue::N("-5".into()));
        let error = parse_state("state", &state).expect_err("negative ms");
        assert!(error.to_string().contains("attribute last_seen"), "{error}");
        let mut state = state_item(&symbol, &sample_state());
        state.insert("rules".into(), AttributeValue::B(Blob::new(vec![1, 0])));
        let error = parse_state("state", &state).expect_err("cut short");
        assert!(error.to_string().contains("attribute rules"), "{error}");
        state.insert("rules".into(), AttributeValue::S("high".into()));
        let error = parse_state("state", &state).expect_err("not binary");
        assert!(
            error.to_string().contains("attribute rules is not binary"),
            "{error}"
        );
        state.remove("rules");
        let error = parse_state("state", &state).expect_err("missing");
        assert!(
            error.to_string().contains("attribute rules is missing"),
            "{error}"
        );
    }

    #[test]
    fn state_condition_is_a_compare_and_set_on_last_seen() {
        let (condition, names, values) = state_condition(None);
        assert_eq!(condition, "attribute_not_exists(#s)");
        assert_eq!(names.get("#s").map(String::as_str), Some("symbol"));
        assert!(values.is_none());
        let at = ts(42);
        let (condition, names, values) = state_condition(Some(at));
        assert_eq!(condition, "#ls = :expected");
        assert_eq!(names.get("#ls").map(String::as_str), Some("last_seen"));
        assert_eq!(
            values.and_then(|v| v.get(":expected").cloned()),
            Some(AttributeValue::N("42".into()))
        );
    }

    #[test]
    fn item_sizes_follow_the_documented_rule() {
        let s = |text: &str| AttributeValue::S(text.to_owned());
        let n = |text: &str| AttributeValue::N(text.to_owned());
        let one = |name: &str, value: AttributeValue| Item::from([(name.to_owned(), value)]);
        // Each size worked out by hand: name bytes + value bytes.
        let cases: [(&str, Item, usize); 15] = [
            ("no attributes", Item::new(), 0),
            ("string", one("symbol", s("AAPL")), 6 + 4),
            ("UTF-8 bytes, not characters", one("é", s("ü€")), 2 + 2 + 3),
            ("empty string", one("label", s("")), 5),
            ("5 significant digits", one("price", n("123.45")), 5 + 3 + 1),
            ("zeros trimmed", one("x", n("-0.00100")), 1 + 1 + 1),
            (
                "trailing zeros of an integer",
                one("x", n("1500")),
                1 + 1 + 1,
            ),
            ("epoch ms", one("last_seen", n("1795703400123")), 9 + 7 + 1),
            ("zero", one("x", n("0")), 1 + 1),
            (
                "binary: raw bytes",
                one("rules", AttributeValue::B(Blob::new(vec![7; 26]))),
                5 + 26,
            ),
            (
                "boolean",
                one("notified", AttributeValue::Bool(false)),
                8 + 1,
            ),
            ("null", one("x", AttributeValue::Null(true)), 1 + 1),
            (
                "list: 3, and 1 per element",
                one("l", AttributeValue::L(vec![s("ab"), n("7")])),
                1 + 3 + (1 + 2) + (1 + 1 + 1),
            ),
            (
                "map: elements count their names",
                one(
                    "m",
                    AttributeValue::M(HashMap::from([("k".to_owned(), s("v"))])),
                ),
                1 + 3 + (1 + 1 + 1),
            ),
            (
                "attributes add up",
                Item::from([
                    ("symbol".to_owned(), s("AAPL")),
                    ("price".to_owned(), n("151.25")),
                    ("notified".to_owned(), AttributeValue::Bool(true)),
                ]),
                (6 + 4) + (5 + 3 + 1) + (8 + 1),
            ),
        ];
        for (case, item, expected) in cases {
            assert_eq!(item_size_bytes(&item), expected, "{case}");
        }
    }

    #[test]
    fn a_write_costs_one_unit_per_started_kilobyte() {
        for (size, expected) in [
            (0, 1),
            (1, 1),
            (1_024, 1),
            (1_025, 2),
            (2_048, 2),
            (2_049, 3),
            (400 * 1_024, 400),
        ] {
            assert_eq!(write_units(size), expected, "{size} bytes");
        }
    }

    /// One state item's size and write units, and of its `rules` attribute.
    fn state_write(symbol: &Symbol, state: &SymbolState) -> (usize, usize, u64, u64) {
        let item = state_item(symbol, state);
        let Some(AttributeValue::B(rules)) = item.get(attr::RULES) else {
            panic!("no rules attribute: {item:?}");
        };
        let size = item_size_bytes(&item);
        (
            rules.as_ref().len(),
            size,
            write_units(size),
            2 * write_units(size),
        )
    }

    /// What one state write costs, for BENCHMARKS.md (`cargo test -p tickwatch-aws --lib
    /// state_write_units -- --nocapture` prints it). The numbers are pinned, worked out by hand
    /// from the format in `tickwatch_core::rules` (state.rs), so a format that grows fails here.
    #[test]
    fn state_write_units_of_a_busy_window_symbol_and_of_a_default_symbol() {
        use tickwatch_core::Tick;
        use tickwatch_core::rules::{Cursor, Rule, RuleBook, RuleDoc};

        const T0_MS: i64 = 1_795_703_400_123; // 2026-11-26T14:30:00.123Z
        let tick = |price: f64, volume: u32, at_ms: i64| {
            let body = format!(
                r#"{{"symbol":"AAPL","price":{price},"timestamp":{at_ms},"volume":{volume}}}"#
            );
            Tick::decode(body.as_bytes()).expect("valid tick")
        };
        let symbol = Symbol::parse("AAPL").expect("valid");

        // A busy symbol under three window rules: two hours of ticks, one every 10 s, fill every
        // one of the 60 one-minute intervals of each rule's hour.
        let book = RuleBook::new(
            [
                r#"{"id":"aapl-rise-10","symbols":"AAPL","condition":"rise 10% within 1h"}"#,
                r#"{"id":"aapl-volume-3x","symbols":"AAPL","condition":"volume 3x over 1h"}"#,
                r#"{"id":"aapl-ma-1h","symbols":"AAPL","condition":"crosses_ma 1h"}"#,
            ]
            .iter()
            .map(|json| {
                Rule::from_doc(RuleDoc::from_json(json).expect("valid JSON")).expect("valid rule")
            })
            .collect(),
        )
        .expect("distinct ids");
        let rules = book.for_symbol(&symbol);
        let mut cursor = Cursor::new(&rules, None);
        for i in 0..720 {
            // Prices wander within 100 ..= 110, volumes within 100 ..= 250.
            let price = 100.0 + ((i * 37) % 41) as f64 / 4.0;
            let volume = 100 + (i % 7) * 25;
            cursor.step(&tick(price, volume, T0_MS + i64::from(i) * 10_000));
        }
        let busy = cursor.finish().expect("the state moved");
        assert_eq!(busy.rules.len(), 3);
        for state in &busy.rules {
            let window = state.window.as_ref().expect("a window");
            assert_eq!(window.intervals_with_ticks(), 60, "{} is full", state.rule);
        }
        let (rules_bytes, item_bytes, units, transact_units) = state_write(&symbol, &busy);
        println!(
            "busy symbol, 3 full 1h windows: rules {rules_bytes} B, item {item_bytes} B, \
             {units} write units per put, {transact_units} in a transaction"
        );
        // rules: format 1 + count 2, then per rule 1 + id + version 8 + phase 1 + last alert 8
        // + window tag 1 + window (stat 1, interval 4, head 8, side 1, bitmap 8, 60 × 8) =
        // 521 + id; the ids are 12, 14 and 10 bytes.
        assert_eq!(rules_bytes, 3 + 3 * 521 + 12 + 14 + 10);
        assert_eq!(rules_bytes, 1_602);
        // item: symbol 6 + 4, last_seen 9 + (13 significant digits: 7 + 1), last_seen_at
        // 12 + 24 (2026-11-26T16:29:50.123Z), rules 5 + 1602.
        assert_eq!(item_bytes, (6 + 4) + (9 + 8) + (12 + 24) + (5 + 1_602));
        assert_eq!(item_bytes, 1_670);
        assert_eq!((units, transact_units), (2, 4));

        // A symbol under the two default rules after one alert: `high` stands fired.
        let defaults = RuleBook::defaults();
        let rules = defaults.for_symbol(&symbol);
        let mut cursor = Cursor::new(&rules, None);
        assert_eq!(cursor.step(&tick(151.25, 100, T0_MS)).fired.len(), 1);
        let quiet = cursor.finish().expect("the state moved");
        let (rules_bytes, item_bytes, units, transact_units) = state_write(&symbol, &quiet);
        println!(
            "default rules after one alert: rules {rules_bytes} B, item {item_bytes} B, \
             {units} write units per put, {transact_units} in a transaction"
        );
        // rules: 3, then `high`: 1 + 4 + 8 + 1 + 8 + 1 (no window).
        assert_eq!(rules_bytes, 3 + 23);
        // item: 10, last_seen 9 + 8, last_seen_at 12 + 24 (2026-11-26T14:30:00.123Z), rules 5 + 26.
        assert_eq!(item_bytes, 10 + 17 + 36 + 31);
        assert_eq!(item_bytes, 94);
        assert_eq!((units, transact_units), (1, 2));
    }
}
