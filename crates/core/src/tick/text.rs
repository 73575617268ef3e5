//! Ticks from text fields (a CSV row): the same rules as JSON ticks, with messages that speak of
//! text, not JSON.
//!
//! A CSV field has no type of its own, so the spelling decides: a price or a volume must be spelled
//! as a JSON number would be (so `NaN`, `inf`, `0x10` and `1,5` are refused, exactly as in a JSON
//! tick), and a timestamp that is a plain integer is epoch milliseconds, anything else RFC 3339
//! text. The volume is optional: no column, or an empty cell, is zero volume.

use super::timestamp::{NOT_INTEGER_REASON, RANGE_MS_REASON};
use super::{Price, Symbol, Tick, TickError, Timestamp, Volume, excerpt, quote};

impl Tick {
    /// Validates a tick given as text fields (already unquoted and trimmed). `volume` is `None`
    /// when the input has no volume column; `None` and an empty cell both mean zero volume.
    ///
    /// ```
    /// use tickwatch_core::{Tick, Volume};
    ///
    /// let tick = Tick::from_csv_fields("AAPL", "151.25", "1795703400000", Some("300"))?;
    /// assert_eq!(tick.volume.get(), 300.0);
    /// let tick = Tick::from_csv_fields("AAPL", "151.25", "1795703400000", Some(""))?;
    /// assert_eq!(tick.volume, Volume::ZERO);
    ///
    /// let refused = Tick::from_csv_fields("AAPL", "151.25", "1795703400000", Some("-1"))
    ///     .unwrap_err();
    /// assert_eq!(refused.to_string(), "volume: must be at least 0, got -1");
    /// # Ok::<(), tickwatch_core::TickError>(())
    /// ```
    pub fn from_csv_fields(
        symbol: &str,
        price: &str,
        timestamp: &str,
        volume: Option<&str>,
    ) -> Result<Tick, TickError> {
        let symbol = Symbol::parse(symbol)?;
        let price = csv_price(price)?;
        let at = csv_timestamp(timestamp)?;
        let volume = match volume {
            None | Some("") => Volume::ZERO,
            Some(text) => csv_volume(text)?,
        };
        Ok(Tick {
            symbol,
            price,
            at,
            volume,
        })
    }
}

fn csv_price(text: &str) -> Result<Price, TickError> {
    let Some(number) = number_shape(text) else {
        return Err(TickError::Price {
            value: quote(text),
            reason: "must be a number like 151.25".into(),
        });
    };
    // The grammar allows only ASCII digits, signs, `.` and `e`: safe to echo unquoted.
    let invalid = |reason: &str| TickError::Price {
        value: excerpt(text).into_owned(),
        reason: reason.into(),
    };
    match text.parse::<f64>() {
        // Too large even for a float: the text says more than `inf` would.
        Ok(value) if value.is_infinite() && number.negative => {
            Err(invalid("must be greater than 0"))
        }
        Ok(value) if value.is_infinite() => Err(invalid("must be below 1e12")),
        Ok(value) => Price::new(value),
        Err(_) => Err(invalid("must be a number like 151.25")),
    }
}

fn csv_volume(text: &str) -> Result<Volume, TickError> {
    let Some(number) = number_shape(text) else {
        return Err(TickError::Volume {
            value: quote(text),
            reason: "must be a number like 300".into(),
        });
    };
    // The grammar allows only ASCII digits, signs, `.` and `e`: safe to echo unquoted.
    let invalid = |reason: &str| TickError::Volume {
        value: excerpt(text).into_owned(),
        reason: reason.into(),
    };
    match text.parse::<f64>() {
        // Too large even for a float: the text says more than `inf` would.
        Ok(value) if value.is_infinite() && number.negative => Err(invalid("must be at least 0")),
        Ok(value) if value.is_infinite() => Err(invalid("must be at most 1e15")),
        Ok(value) => Volume::new(value),
        Err(_) => Err(invalid("must be a number like 300")),
    }
}

fn csv_timestamp(text: &str) -> Result<Timestamp, TickError> {
    match number_shape(text) {
        Some(number) if number.integer => match text.parse::<i64>() {
            Ok(ms) => Timestamp::from_epoch_ms(ms),
            Err(_) => Err(TickError::Timestamp {
                value: excerpt(text).into_owned(),
                reason: RANGE_MS_REASON.into(),
            }),
        },
        Some(_) => Err(TickError::Timestamp {
            value: excerpt(text).into_owned(),
            reason: NOT_INTEGER_REASON.into(),
        }),
        // Not a number: RFC 3339 text, or an error that says what shape is expected.
        None => Timestamp::parse_rfc3339(text),
    }
}

/// What [`number_shape`] found.
struct NumberShape {
    negative: bool,
    /// No fraction and no exponent.
    integer: bool,
}

/// Whether `text` follows JSON's number grammar, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_shape(text: &str) -> Option<NumberShape> {
    let bytes = text.as_bytes();
    let negative = bytes.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && bytes[int_start] == b'0') {
        return None;
    }
    let mut integer = true;
    if bytes.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    (i == bytes.len()).then_some(NumberShape { negative, integer })
}
