//! `Price`: a finite, positive price below a sanity bound.

use std::fmt;

use super::TickError;

/// Prices must be strictly below this bound. No listed instrument trades near it, so anything at or
/// above it is a unit or encoding mistake upstream.
pub const PRICE_MAX: f64 = 1e12;

/// Prices must be at least this. The smallest-priced tokens trade around 1e-10; far below that is
/// an encoding mistake, and numbers under DynamoDB's smallest (1e-130) could not even be stored.
pub const PRICE_MIN: f64 = 1e-12;

/// A price: finite, at least [`PRICE_MIN`] and below [`PRICE_MAX`].
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Price(f64);

impl Price {
    /// Validates a number as a price.
    pub fn new(value: f64) -> Result<Self, TickError> {
        let invalid = |reason: &str| TickError::Price {
            value: format_number(value),
            reason: reason.into(),
        };
        if !value.is_finite() {
            return Err(invalid("must be a finite number"));
        }
        if value <= 0.0 {
            return Err(invalid("must be greater than 0"));
        }
        if value < PRICE_MIN {
            return Err(invalid("must be at least 1e-12"));
        }
        if value >= PRICE_MAX {
            return Err(invalid("must be below 1e12"));
        }
        Ok(Self(value))
    }

    /// The price as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Magnitudes written out in plain digits; outside this range numbers take the exponent form, so
/// that `1e300` is not echoed back as 301 digits (nor `1e-300` as 300 zeros).
const PLAIN_DIGITS_RANGE: std::ops::Range<f64> = 1e-6..1e16;

/// Formats a number the way it would appear in JSON: the shortest form that reads back the same,
/// in plain digits (`151.25`, `0`) unless very large or small (`1e300`, `2.5e-9`).
pub(crate) fn format_number(value: f64) -> String {
    if !value.is_finite() {
        format!("{value:?}")
    } else if value == 0.0 || PLAIN_DIGITS_RANGE.contains(&value.abs()) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Like [`format_number`], but a float with an integral value keeps a `.0` (`1767225600000.0`),
/// for messages where being a float is the problem.
pub(crate) fn format_float(value: f64) -> String {
    let mut text = format_number(value);
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        text.push_str(".0");
    }
    text
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Price({})", self.0)
    }
}

impl TryFrom<f64> for Price {
    type Error = TickError;
    fn try_from(value: f64) -> Result<Self, TickError> {
        Self::new(value)
    }
}

impl serde::Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Price::new(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}
