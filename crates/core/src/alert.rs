//! Alerts: what a tick beyond a threshold produces, with an id that any replay derives again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rules::{Condition, Fire, Label, RuleId};
use crate::tick::{Price, Symbol, Timestamp};

/// Which way an alert points: a price above a threshold, a rise, a volume spike, an upward
/// crossing (`HIGH`), or a price below a threshold, a fall, a downward crossing (`LOW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlertKind {
    /// The price went above the high threshold.
    High,
    /// The price went below the low threshold.
    Low,
}

impl AlertKind {
    /// `HIGH` or `LOW`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::High => "HIGH",
            AlertKind::Low => "LOW",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertKind {
    type Err = UnknownAlertKind;
    fn from_str(text: &str) -> Result<Self, UnknownAlertKind> {
        match text {
            "HIGH" | "high" => Ok(AlertKind::High),
            "LOW" | "low" => Ok(AlertKind::Low),
            _ => Err(UnknownAlertKind(text.into())),
        }
    }
}

/// A string that is neither `HIGH` nor `LOW`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("alert kind must be HIGH or LOW, got {0:?}")]
pub struct UnknownAlertKind(String);

/// Identifies an alert: the rule that raised it and the tick it raised it on (symbol and tick
/// time).
///
/// Two deliveries of the same tick always produce the same key, which is what makes storing an
/// alert idempotent; two rules firing on one tick make two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    /// The instrument.
    pub symbol: Symbol,
    /// The tick's timestamp.
    pub at: Timestamp,
    /// The rule.
    pub rule: RuleId,
}

impl AlertKey {
    /// The alert id of this key.
    pub fn id(&self) -> AlertId {
        AlertId::derive(self)
    }
}

/// A stable, opaque alert id: 128 bits of SHA-256 over the alert key, shown as 32 hex digits.
///
/// Subscribers de-duplicate on it; it never changes for a given (rule, symbol, tick time).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId([u8; 16]);

impl AlertId {
    /// Version tag hashed in front of the key, so a future change of derivation cannot collide.
    /// (v1 hashed the alert kind where v2 hashes the rule id.)
    const DOMAIN: &'static [u8] = b"tickwatch.alert.v2\0";

    /// Derives the id of `key`: `sha256("tickwatch.alert.v2\0" + rule id + "\0" + symbol + "\0" +
    /// tick time as i64 big-endian milliseconds)`, first 16 bytes.
    pub fn derive(key: &AlertKey) -> AlertId {
        let mut hasher = Sha256::new();
        hasher.update(Self::DOMAIN);
        hasher.update(key.rule.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(key.symbol.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(key.at.epoch_ms().to_be_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        AlertId(id)
    }

    /// The id's 16 bytes (what the embedded store keeps).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The id with these 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> AlertId {
        AlertId(bytes)
    }
}

impl AlertId {
    /// The 32 lowercase hex digits, as ASCII bytes.
    fn to_hex(self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            text[2 * i] = HEX[usize::from(b >> 4)];
            text[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        text
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlertId({self})")
    }
}

/// Text that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("alert id must be 32 lowercase hex digits, got {0:?}")]
pub struct InvalidAlertId(String);

impl FromStr for AlertId {
    type Err = InvalidAlertId;
    fn from_str(text: &str) -> Result<Self, InvalidAlertId> {
        let bad = || InvalidAlertId(text.chars().take(40).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(bad());
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            id[i] = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
        }
        Ok(AlertId(id))
    }
}

impl Serialize for AlertId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // One string, not `collect_str`'s formatting machinery: every notification carries one.
        let text = self.to_hex();
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for AlertId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A raised alert, as stored and as announced (its JSON form is the notification body).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Stable id, derived from (rule id, symbol, timestamp).
    pub alert_id: AlertId,
    /// The rule that raised it.
    pub rule_id: RuleId,
    /// The rule's label, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// The instrument.
    pub symbol: Symbol,
    /// `HIGH` for `above`, `rise`, `volume` and upward crossings; `LOW` for `below`, `fall` and
    /// downward crossings.
    pub kind: AlertKind,
    /// The rule's condition, as the rule stood when the alert was raised (`above 150`,
    /// `rise 10% within 1h`, ...).
    #[serde(with = "crate::rules::as_text")]
    pub condition: Condition,
    /// The tick's price.
    pub price: Price,
    /// What the tick was compared with: the threshold of `above`/`below`; for `rise`/`fall` the
    /// price that is X % from the window's low/high; for `crosses_ma` the moving average; for
    /// `volume` K times the average interval volume (a volume, not a price).
    pub threshold: f64,
    /// The rule's firing policy.
    pub fire: Fire,
    /// The tick's timestamp.
    pub timestamp: Timestamp,
    /// When tickwatch raised it (from the injected clock).
    pub processed_at: Timestamp,
}

impl Alert {
    /// The key this alert is stored under.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            symbol: self.symbol,
            at: self.timestamp,
            rule: self.rule_id,
        }
    }

    /// A one-line human summary, e.g. `AAPL HIGH 151.25 > 150 at 2026-11-26T14:30:00.123Z`, or
    /// `AAPL HIGH 112 rise 10% within 1h at 2026-11-26T14:30:00.123Z` for a window condition.
    /// At most 100 characters (it is used as the SNS subject).
    pub fn subject(&self) -> String {
        if let Condition::Window(window) = &self.condition {
            return format!(
                "{} {} {} {window} at {}",
                self.symbol, self.kind, self.price, self.timestamp
            );
        }
        let relation = match self.kind {
            AlertKind::High => '>',
            AlertKind::Low => '<',
        };
        format!(
            "{} {} {} {relation} {} at {}",
            self.symbol, self.kind, self.price, self.threshold, self.timestamp
        )
    }
}

/// Longest integral magnitude [`Alert::write_json`] writes as plain digits itself; beyond, and
/// for fractions, it formats the number as [`Condition`]'s text does.
const INTEGRAL_DIGITS_FAST_MAX: f64 = 1e15;

impl Alert {
    /// Appends this alert's JSON form, its notification body, to `out`: byte for byte what
    /// serializing it with `serde_json` gives (a table test holds the two together), written
    /// directly, because every notification is one. Field order as declared; no newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"alert_id\":\"");
        out.extend_from_slice(&self.alert_id.to_hex());
        // Rule ids and symbols are of characters JSON needs no escape for.
        out.extend_from_slice(b"\",\"rule_id\":\"");
        out.extend_from_slice(self.rule_id.as_str().as_bytes());
        out.push(b'"');
        if let Some(label) = &self.label {
            out.extend_from_slice(b",\"label\":");
            write_json_string(out, label.as_str());
        }
        out.extend_from_slice(b",\"symbol\":\"");
        out.extend_from_slice(self.symbol.as_str().as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"condition\":");
        write_condition(out, &self.condition);
        out.extend_from_slice(b",\"price\":");
        write_json_f64(out, self.price.get());
        out.extend_from_slice(b",\"threshold\":");
        write_json_f64(out, self.threshold);
        out.extend_from_slice(b",\"fire\":\"");
        out.extend_from_slice(self.fire.as_str().as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":\"");
        out.extend_from_slice(&self.timestamp.to_rfc3339_bytes());
        out.extend_from_slice(b"\",\"processed_at\":\"");
        out.extend_from_slice(&self.processed_at.to_rfc3339_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// A condition as its JSON string: `above 150` without formatting machinery when the threshold
/// is a whole number (nearly always), through its `Display` otherwise.
fn write_condition(out: &mut Vec<u8>, condition: &Condition) {
    let (word, threshold) = match condition {
        Condition::Above(x) => ("above ", *x),
        Condition::Below(x) => ("below ", *x),
        Condition::Window(_) => return write_json_string(out, &condition.to_string()),
    };
    // Zero is left to `Display` (which keeps the sign of `-0`).
    if threshold != 0.0 && threshold.fract() == 0.0 && threshold.abs() < INTEGRAL_DIGITS_FAST_MAX {
        out.push(b'"');
        out.extend_from_slice(word.as_bytes());
        // Exact: a whole number below 1e15 is an i64 with the same digits.
        out.extend_from_slice(itoa::Buffer::new().format(threshold as i64).as_bytes());
        out.push(b'"');
    } else {
        write_json_string(out, &condition.to_string());
    }
}

/// A JSON string, escaped as `serde_json` escapes it.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing to a `Vec` cannot fail, and neither can escaping a `str`.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A JSON number as `serde_json` writes an `f64` (`null` if it is not finite).
fn write_json_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rule: &str, symbol: &str, ms: i64) -> AlertKey {
        AlertKey {
            symbol: Symbol::parse(symbol).expect("valid symbol"),
            at: Timestamp::from_epoch_ms(ms).expect("valid timestamp"),
            rule: RuleId::parse(rule).expect("valid rule id"),
        }
    }

    #[test]
    fn alert_json_written_directly_is_what_serde_json_writes() {
        let labels = [
            None,
            Some("plain"),
            Some("quote \" backslash \\ slash /"),
            Some("é 株 🚀 and U+2028 \u{2028}"),
        ];
        // Through the parser (what rules hold), and built directly, past what it accepts.
        let mut conditions: Vec<Condition> = [
            "above 150",
            "below 50",
            "above 150.5",
            "below 0",
            "above 0.000001",
            "above 0.0000001",
            "above 999999999999",
            "rise 10% within 1h",
            "fall 2.5% within 90m",
            "volume 3x over 1h",
            "crosses_ma 1h up",
        ]
        .iter()
        .map(|text| text.parse().expect("valid condition"))
        .collect();
        conditions.extend([
            Condition::Above(999_999_999_999_999.0),
            Condition::Above(1e15),
            Condition::Above(1e20),
            Condition::Below(-0.0),
            Condition::Below(-3.0),
            Condition::Above(f64::NAN),
        ]);
        let prices = [
            150.0,
            0.1 + 0.2,
            1e-7,
            1e-12,
            123_456.789,
            999_999_999_999.9,
        ];
        let thresholds = [150.0, -0.0, 0.5, 1e16, f64::NAN, f64::INFINITY];
        let symbols = ["AAPL", "BRK.B", "a_b-c:d/e", "X"];
        let rules = ["high", "r.1_x-y", "Z"];
        let times = [0, 1_767_225_600_123, 4_102_444_799_999];
        let mut case = 0usize;
        for (i, label) in labels.iter().enumerate() {
            for (j, condition) in conditions.iter().enumerate() {
                for (k, price) in prices.iter().enumerate() {
                    case += 1;
                    let symbol = symbols[(i + j + k) % symbols.len()];
                    let rule = rules[(j + k) % rules.len()];
                    let at = times[(i + k) % times.len()];
                    let key = key(rule, symbol, at);
                    let alert = Alert {
                        alert_id: AlertId::derive(&key),
                        rule_id: key.rule,
                        label: label.map(|text| Label::parse(text).expect("valid label")),
                        symbol: key.symbol,
                        kind: [AlertKind::High, AlertKind::Low][case % 2],
                        condition: *condition,
                        price: Price::new(*price).expect("valid price"),
                        threshold: thresholds[case % thresholds.len()],
                        fire: [Fire::Every, Fire::Enter, Fire::Once][case % 3],
                        timestamp: key.at,
                        processed_at: Timestamp::from_epoch_ms(times[case % times.len()])
                            .expect("valid timestamp"),
                    };
                    let mut direct = Vec::new();
                    alert.write_json(&mut direct);
                    let reference = serde_json::to_vec(&alert).expect("serializes");
                    assert_eq!(
                        String::from_utf8_lossy(&direct),
                        String::from_utf8_lossy(&reference),
                        "{alert:?}"
                    );
                }
            }
        }
        assert_eq!(case, labels.len() * conditions.len() * prices.len());
    }

    #[test]
    fn alert_ids_are_stable_across_releases() {
        // Pinned values, computed independently (Python hashlib) from the documented derivation:
        // sha256("tickwatch.alert.v2\0" + rule + "\0" + symbol + "\0" + i64 big-endian ms)[..16].
        // Changing the derivation would let a redelivered tick store a second alert.
        let cases = [
            (
                key("high", "AAPL", 1_795_703_400_123),
                "6074c6158ce5b408bb8e1b6bca4f9134",
            ),
            (
                key("low", "AAPL", 1_795_703_400_123),
                "b298e129d7e7af24cc8f03bdb1766c7e",
            ),
            (key("low", "BRK.B", 0), "5eba1b49805ef38fe5d5ae89aed03e63"),
            (
                key("aapl-200", "AAPL", 1_795_703_400_123),
                "68ea4512cc1bfe3d8a04334f5edd8bc1",
            ),
        ];
        for (key, expected) in cases {
            let id = key.id();
            assert_eq!(id.to_string(), expected, "{key:?}");
            assert_eq!(expected.parse::<AlertId>(), Ok(id));
        }
    }

    #[test]
    fn alert_ids_differ_by_every_key_part() {
        let base = key("high", "AAPL", 1000);
        let others = [
            key("high", "AAPM", 1000),
            key("high", "AAPL", 1001),
            key("low", "AAPL", 1000),
            // The separators keep the parts apart: "a" + "bC" is not "ab" + "C".
            key("highA", "APL", 1000),
        ];
        for other in others {
            assert_ne!(base.id(), other.id(), "{other:?}");
        }
    }

    #[test]
    fn alert_id_parse_rejects_bad_text() {
        for text in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert!(text.parse::<AlertId>().is_err(), "{text:?}");
        }
    }
}
