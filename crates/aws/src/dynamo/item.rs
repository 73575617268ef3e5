//! The DynamoDB item codec: attribute names, keys, and alerts and symbol states to and from
//! items. Malformed items are refused with an error naming the table and the attribute. The key
//! schema and attribute layout are described in the parent module's documentation.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use tickwatch_core::ports::StoredAlert;
use tickwatch_core::rules::{SymbolState, Zone};
use tickwatch_core::{Alert, AlertKind, Mode, Price, Symbol, Timestamp};

use crate::error::AwsError;

/// Attribute names.
pub(super) mod attr {
    pub(crate) const SYMBOL: &str = "symbol";
    pub(crate) const TIMESTAMP: &str = "timestamp";
    pub(crate) const ALERT_ID: &str = "alert_id";
    pub(crate) const KIND: &str = "kind";
    pub(crate) const PRICE: &str = "price";
    pub(crate) const THRESHOLD: &str = "threshold";
    pub(crate) const MODE: &str = "mode";
    pub(crate) const PROCESSED_AT: &str = "processed_at";
    pub(crate) const NOTIFIED: &str = "notified";
    pub(crate) const ZONE: &str = "zone";
    pub(crate) const SINCE: &str = "since";
    pub(crate) const LAST_SEEN: &str = "last_seen";
    pub(crate) const SINCE_AT: &str = "since_at";
    pub(crate) const LAST_SEEN_AT: &str = "last_seen_at";
}

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

pub(super) fn alert_key(symbol: &Symbol, at: Timestamp) -> Key {
    (symbol.to_string(), Some(at.to_string()))
}

pub(super) fn alert_key_item(symbol: &Symbol, at: Timestamp) -> Item {
    key_item(&alert_key(symbol, at))
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
    HashMap::from([
        (
            attr::SYMBOL.to_owned(),
            AttributeValue::S(alert.symbol.to_string()),
        ),
        (
            attr::TIMESTAMP.to_owned(),
            AttributeValue::S(alert.timestamp.to_string()),
        ),
        (
            attr::ALERT_ID.to_owned(),
            AttributeValue::S(alert.alert_id.to_string()),
        ),
        (
            attr::KIND.to_owned(),
            AttributeValue::S(alert.kind.to_string()),
        ),
        (
            attr::PRICE.to_owned(),
            AttributeValue::N(alert.price.to_string()),
        ),
        (
            attr::THRESHOLD.to_owned(),
            AttributeValue::N(alert.threshold.to_string()),
        ),
        (
            attr::MODE.to_owned(),
            AttributeValue::S(alert.mode.to_string()),
        ),
        (
            attr::PROCESSED_AT.to_owned(),
            AttributeValue::S(alert.processed_at.to_string()),
        ),
        (attr::NOTIFIED.to_owned(), AttributeValue::Bool(false)),
    ])
}

pub(super) fn state_item(symbol: &Symbol, state: &SymbolState) -> Item {
    HashMap::from([
        (
            attr::SYMBOL.to_owned(),
            AttributeValue::S(symbol.to_string()),
        ),
        (
            attr::ZONE.to_owned(),
            AttributeValue::S(state.zone.as_str().to_owned()),
        ),
        (
            attr::SINCE.to_owned(),
            AttributeValue::N(state.since.epoch_ms().to_string()),
        ),
        (
            attr::LAST_SEEN.to_owned(),
            AttributeValue::N(state.last_seen.epoch_ms().to_string()),
        ),
        (
            attr::SINCE_AT.to_owned(),
            AttributeValue::S(state.since.to_string()),
        ),
        (
            attr::LAST_SEEN_AT.to_owned(),
            AttributeValue::S(state.last_seen.to_string()),
        ),
    ])
}

/// Reads attributes of one item, naming the table and attribute in every error.
struct Reader<'a> {
    table: &'a str,
    item: &'a Item,
}

impl Reader<'_> {
    fn malformed(&self, attribute: &'static str, reason: impl Into<String>) -> AwsError {
        AwsError::MalformedItem {
            table: self.table.to_owned(),
            attribute,
            reason: reason.into(),
        }
    }

    fn get(&self, attribute: &'static str) -> Result<&AttributeValue, AwsError> {
        self.item
            .get(attribute)
            .ok_or_else(|| self.malformed(attribute, "is missing"))
    }

    fn string(&self, attribute: &'static str) -> Result<&str, AwsError> {
        match self.get(attribute)? {
            AttributeValue::S(text) => Ok(text),
            _ => Err(self.malformed(attribute, "is not a string (S)")),
        }
    }

    fn number(&self, attribute: &'static str) -> Result<&str, AwsError> {
        match self.get(attribute)? {
            AttributeValue::N(text) => Ok(text),
            _ => Err(self.malformed(attribute, "is not a number (N)")),
        }
    }

    fn boolean(&self, attribute: &'static str) -> Result<bool, AwsError> {
        match self.get(attribute)? {
            AttributeValue::Bool(value) => Ok(*value),
            _ => Err(self.malformed(attribute, "is not a boolean (BOOL)")),
        }
    }

    /// Parses a string attribute with `parse`, quoting the value in the error.
    fn parsed<T, E: std::fmt::Display>(
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
    let mode = r.parsed(attr::MODE, r.string(attr::MODE)?, str::parse::<Mode>)?;
    let alert = Alert {
        alert_id,
        symbol,
        kind,
        price,
        threshold: r.float(attr::THRESHOLD)?,
        mode,
        timestamp: r.timestamp_text(attr::TIMESTAMP)?,
        processed_at: r.timestamp_text(attr::PROCESSED_AT)?,
    };
    Ok(StoredAlert {
        alert,
        notified: r.boolean(attr::NOTIFIED)?,
    })
}

pub(super) fn parse_state(table: &str, item: &Item) -> Result<SymbolState, AwsError> {
    let r = Reader { table, item };
    Ok(SymbolState {
        zone: r.parsed(attr::ZONE, r.string(attr::ZONE)?, str::parse::<Zone>)?,
        since: r.timestamp_ms(attr::SINCE)?,
        last_seen: r.timestamp_ms(attr::LAST_SEEN)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwatch_core::AlertKey;

    fn sample_alert() -> Alert {
        let symbol = Symbol::parse("BRK.B").expect("valid");
        let at = Timestamp::from_epoch_ms(1_795_703_400_123).expect("valid");
        let key = AlertKey {
            symbol,
            at,
            kind: AlertKind::High,
        };
        Alert {
            alert_id: key.id(),
            symbol,
            kind: AlertKind::High,
            price: Price::new(151.25).expect("valid"),
            threshold: 150.0,
            mode: Mode::Cross,
            timestamp: at,
            processed_at: Timestamp::from_epoch_ms(1_795_703_401_000).expect("valid"),
        }
    }

    #[test]
    fn alert_items_round_trip() {
        let alert = sample_alert();
        let item = alert_item(&alert);
        assert_eq!(
            item.get("timestamp"),
            Some(&AttributeValue::S("2026-11-26T14:30:00.123Z".into()))
        );
        assert_eq!(item.get("price"), Some(&AttributeValue::N("151.25".into())));
        let stored = parse_alert("alerts", &item).expect("parses");
        assert_eq!(
            stored,
            StoredAlert {
                alert,
                notified: false
            }
        );
    }

    #[test]
    fn state_items_round_trip() {
        let state = SymbolState {
            zone: Zone::High,
            since: Timestamp::from_epoch_ms(1_000).expect("valid"),
            last_seen: Timestamp::from_epoch_ms(2_000).expect("valid"),
        };
        let symbol = Symbol::parse("AAPL").expect("valid");
        let item = state_item(&symbol, &state);
        assert_eq!(
            item.get("last_seen"),
            Some(&AttributeValue::N("2000".into()))
        );
        assert_eq!(
            item.get("since_at"),
            Some(&AttributeValue::S("1970-01-01T00:00:01.000Z".into()))
        );
        assert_eq!(parse_state("state", &item), Ok(state));
    }

    #[test]
    fn malformed_items_name_the_attribute() {
        let good = alert_item(&sample_alert());
        let cases: [(&str, Option<AttributeValue>, &str); 7] = [
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
                "timestamp",
                Some(AttributeValue::S("yesterday".into())),
                "attribute timestamp \"yesterday\" is invalid",
            ),
            (
                "alert_id",
                Some(AttributeValue::S("xyz".into())),
                "attribute alert_id \"xyz\" is invalid",
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
        let mut state = state_item(
            &Symbol::parse("X").expect("valid"),
            &SymbolState {
                zone: Zone::Low,
                since: Timestamp::from_epoch_ms(1).expect("valid"),
                last_seen: Timestamp::from_epoch_ms(1).expect("valid"),
            },
        );
        state.insert("last_seen".into(), AttributeValue::N("-5".into()));
        let error = parse_state("state", &state).expect_err("negative ms");
        assert!(error.to_string().contains("attribute last_seen"), "{error}");
    }

    #[test]
    fn state_condition_is_a_compare_and_set_on_last_seen() {
        let (condition, names, values) = state_condition(None);
        assert_eq!(condition, "attribute_not_exists(#s)");
        assert_eq!(names.get("#s").map(String::as_str), Some("symbol"));
        assert!(values.is_none());
        let at = Timestamp::from_epoch_ms(42).expect("valid");
        let (condition, names, values) = state_condition(Some(at));
        assert_eq!(condition, "#ls = :expected");
        assert_eq!(names.get("#ls").map(String::as_str), Some("last_seen"));
        assert_eq!(
            values.and_then(|v| v.get(":expected").cloned()),
            Some(AttributeValue::N("42".into()))
        );
    }
}
