//! Alerts: what a tick beyond a threshold produces, with an id that any replay derives again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rules::Mode;
use crate::tick::{Price, Symbol, Timestamp};

/// Which threshold a price went beyond.
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

/// Identifies an alert: the tick that raised it (symbol and tick time) and its kind.
///
/// Two deliveries of the same tick always produce the same key, which is what makes storing an
/// alert idempotent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    /// The instrument.
    pub symbol: Symbol,
    /// The tick's timestamp.
    pub at: Timestamp,
    /// Which threshold.
    pub kind: AlertKind,
}

impl AlertKey {
    /// The alert id of this key.
    pub fn id(&self) -> AlertId {
        AlertId::derive(self)
    }
}

/// A stable, opaque alert id: 128 bits of SHA-256 over the alert key, shown as 32 hex digits.
///
/// Subscribers de-duplicate on it; it never changes for a given (symbol, tick time, kind).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId([u8; 16]);

impl AlertId {
    /// Version tag hashed in front of the key, so a future change of derivation cannot collide.
    const DOMAIN: &'static [u8] = b"tickwatch.alert.v1\0";

    /// Derives the id of `key`.
    pub fn derive(key: &AlertKey) -> AlertId {
        let mut hasher = Sha256::new();
        hasher.update(Self::DOMAIN);
        hasher.update(key.symbol.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(key.at.epoch_ms().to_be_bytes());
        hasher.update(key.kind.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        AlertId(id)
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            text[2 * i] = HEX[usize::from(b >> 4)];
            text[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
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
        serializer.collect_str(self)
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
    /// Stable id, derived from (symbol, timestamp, kind).
    pub alert_id: AlertId,
    /// The instrument.
    pub symbol: Symbol,
    /// Which threshold was crossed.
    pub kind: AlertKind,
    /// The tick's price.
    pub price: Price,
    /// The threshold that was crossed (the rule in force when the alert was raised).
    pub threshold: f64,
    /// The rule mode that raised it.
    pub mode: Mode,
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
            kind: self.kind,
        }
    }

    /// A one-line human summary, e.g. `AAPL HIGH 151.25 > 150 at 2026-11-26T14:30:00.123Z`.
    /// At most 100 characters (it is used as the SNS subject).
    pub fn subject(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(symbol: &str, ms: i64, kind: AlertKind) -> AlertKey {
        AlertKey {
            symbol: Symbol::parse(symbol).expect("valid symbol"),
            at: Timestamp::from_epoch_ms(ms).expect("valid timestamp"),
            kind,
        }
    }

    #[test]
    fn alert_ids_are_stable_across_releases() {
        // Pinned values, computed independently (Python hashlib) from the documented derivation:
        // sha256("tickwatch.alert.v1\0" + symbol + "\0" + i64 big-endian ms + kind)[..16].
        // Changing the derivation would let a redelivered tick store a second alert.
        let cases = [
            (
                key("AAPL", 1_795_703_400_123, AlertKind::High),
                "c646ed7184a02dc26212544c8b713409",
            ),
            (
                key("AAPL", 1_795_703_400_123, AlertKind::Low),
                "caf7c80c38a8478ae941e3c884d945da",
            ),
            (
                key("BRK.B", 0, AlertKind::Low),
                "4d1d6ec9664060cf7d335162d0ff609f",
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
        let base = key("AAPL", 1000, AlertKind::High);
        let others = [
            key("AAPM", 1000, AlertKind::High),
            key("AAPL", 1001, AlertKind::High),
            key("AAPL", 1000, AlertKind::Low),
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
