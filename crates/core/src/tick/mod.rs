//! Ticks: the input contract. Raw JSON (or CSV fields) becomes a validated [`Tick`] here, or a
//! [`TickError`] that names the field, the offending value and what is wrong with it.
//!
//! Parsing goes in two stages. [`RawTick`] is what the bytes literally say (each known field as a
//! loosely typed JSON value, plus structural problems such as duplicate keys); `Tick::try_from`
//! turns it into domain types. CSV rows take [`Tick::from_csv_fields`] instead, which applies the
//! same rules with messages that speak of text fields, not JSON. Everything after this module
//! takes `Tick` and never re-checks.
//!
//! Error messages quote input back to the user, who may read them on a terminal: every quoted
//! piece of input goes through [`quote`] or [`escape_controls`], so bytes such as terminal escape
//! sequences are shown escaped (`\u{1b}`), never raw.

mod fast;
mod price;
mod raw;
mod symbol;
mod text;
mod timestamp;
mod volume;

use std::borrow::Cow;
use std::fmt;

pub use price::{PRICE_MAX, PRICE_MIN, Price};
pub use raw::{JsonValue, RawTick};
pub use symbol::{SYMBOL_LEN_MAX, Symbol};
pub use timestamp::{TIMESTAMP_MS_END, TIMESTAMP_MS_MIN, Timestamp};
pub use volume::{VOLUME_MAX, Volume};

pub(crate) use price::{format_float, format_number};

/// Largest tick body accepted, in bytes (the classic SQS message size limit).
pub const TICK_BODY_BYTES_MAX: usize = 256 * 1024;

/// Most top-level fields a tick object may have. Bounds the work spent on hostile input.
pub const TICK_FIELDS_MAX: usize = 64;

/// Longest excerpt of an offending value quoted back in an error, in characters.
pub const VALUE_ECHO_CHARS_MAX: usize = 64;

/// A validated price observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// The instrument.
    pub symbol: Symbol,
    /// The traded or quoted price.
    pub price: Price,
    /// When the price was observed (from the tick, never from our clock).
    pub at: Timestamp,
    /// The traded volume the tick reports; ticks without the field count as zero volume.
    pub volume: Volume,
}

impl Tick {
    /// Decodes and validates one JSON tick body: the tick contract in one call. A valid tick
    /// comes back typed; anything else is refused with a reason that names the field.
    ///
    /// ```
    /// use tickwatch_core::{Tick, Volume};
    /// use tickwatch_core::tick::Field;
    ///
    /// let tick = Tick::decode(br#"{"symbol":"AAPL","price":151.25,"timestamp":"2026-11-26T14:30:00Z"}"#)?;
    /// assert_eq!(tick.symbol.as_str(), "AAPL");
    /// assert_eq!(tick.price.get(), 151.25);
    /// assert_eq!(tick.at.epoch_ms(), 1_795_703_400_000);
    /// assert_eq!(tick.volume, Volume::ZERO, "no volume field counts as zero volume");
    ///
    /// // Epoch milliseconds work too, and fields the contract does not know are ignored.
    /// let tick = Tick::decode(
    ///     br#"{"symbol":"MSFT","price":20,"timestamp":1795703400000,"volume":300,"venue":"XNAS"}"#,
    /// )?;
    /// assert_eq!(tick.at.epoch_ms(), 1_795_703_400_000);
    /// assert_eq!(tick.volume.get(), 300.0);
    ///
    /// let refused = Tick::decode(br#"{"symbol":"AAPL","price":-1,"timestamp":1795703400000}"#)
    ///     .unwrap_err();
    /// assert_eq!(refused.field(), Some(Field::Price));
    /// assert_eq!(refused.code(), "price.invalid");
    /// assert!(refused.to_string().starts_with("price: "));
    /// # Ok::<(), tickwatch_core::TickError>(())
    /// ```
    pub fn decode(body: &[u8]) -> Result<Tick, TickError> {
        if body.len() > TICK_BODY_BYTES_MAX {
            return Err(TickError::TooLarge { bytes: body.len() });
        }
        // The fast path accepts only ASCII bodies (nearly every tick), UTF-8 by definition.
        if let Some(tick) = fast::decode(body) {
            return Ok(tick);
        }
        // The whole body must be UTF-8, ignored fields included; then the full parser, for exact
        // errors and unusual shapes (escapes, nesting, non-ASCII text, ...).
        let text = std::str::from_utf8(body).map_err(|e| TickError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        Tick::try_from(RawTick::from_json(text)?)
    }
}

/// The fields of the tick contract: `symbol`, `price` and `timestamp`, which a tick must carry,
/// and `volume`, which it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `symbol` (required)
    Symbol,
    /// `price` (required)
    Price,
    /// `timestamp` (required)
    Timestamp,
    /// `volume` (optional: absent means zero volume)
    Volume,
}

impl Field {
    /// The JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Field::Symbol => "symbol",
            Field::Price => "price",
            Field::Timestamp => "timestamp",
            Field::Volume => "volume",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a tick was rejected. Every variant is permanent: the same bytes will always fail the same way.
///
/// The message names the field (or `body` for problems with the whole message), the offending
/// value (quoted, at most [`VALUE_ECHO_CHARS_MAX`] characters) and the rule it broke.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TickError {
    /// The body is larger than [`TICK_BODY_BYTES_MAX`].
    #[error("body: {bytes} bytes is over the limit of {TICK_BODY_BYTES_MAX} bytes")]
    TooLarge {
        /// Size of the body.
        bytes: usize,
    },
    /// The body is not UTF-8.
    #[error("body: not valid UTF-8 (first invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The body is not JSON (syntax error, trailing data, nesting too deep, number out of range).
    #[error("{}: not valid JSON: {detail}", field.map_or("body", Field::name))]
    Malformed {
        /// The field whose value could not be read, if the error was inside one.
        field: Option<Field>,
        /// The parser's description, with line and column (control characters escaped).
        detail: String,
    },
    /// A CSV row cannot be split into the header's fields (wrong field count, an open quote).
    #[error("{detail}")]
    CsvRow {
        /// What is wrong, a whole phrase: `row has 2 fields, the header has 3`.
        detail: String,
    },
    /// The body is valid JSON but not an object.
    #[error("body: must be a JSON object, got {found}")]
    NotAnObject {
        /// What it was instead (`an array`, `a number`, ...).
        found: &'static str,
    },
    /// A key appears twice; which value is meant would be a guess.
    #[error("{field}: key appears more than once")]
    DuplicateField {
        /// The repeated key (quoted excerpt).
        field: String,
    },
    /// More than [`TICK_FIELDS_MAX`] keys.
    #[error("body: more than {TICK_FIELDS_MAX} fields")]
    TooManyFields,
    /// A required field is absent.
    #[error("{field}: missing")]
    Missing {
        /// The absent field.
        field: Field,
    },
    /// `symbol` is not a valid symbol.
    #[error("symbol: {reason}, got {value}")]
    Symbol {
        /// The offending value, rendered.
        value: String,
        /// The rule it broke.
        reason: String,
    },
    /// `price` is not a valid price.
    #[error("price: {reason}, got {value}")]
    Price {
        /// The offending value, rendered.
        value: String,
        /// The rule it broke.
        reason: String,
    },
    /// `timestamp` is not a valid timestamp.
    #[error("timestamp: {reason}, got {value}")]
    Timestamp {
        /// The offending value, rendered.
        value: String,
        /// The rule it broke.
        reason: String,
    },
    /// `volume` is present but not a valid volume.
    #[error("volume: {reason}, got {value}")]
    Volume {
        /// The offending value, rendered.
        value: String,
        /// The rule it broke.
        reason: String,
    },
}

impl TickError {
    /// The field at fault, or `None` when the problem is the body as a whole.
    pub fn field(&self) -> Option<Field> {
        match self {
            TickError::Malformed { field, .. } => *field,
            TickError::Missing { field } => Some(*field),
            TickError::Symbol { .. } => Some(Field::Symbol),
            TickError::Price { .. } => Some(Field::Price),
            TickError::Timestamp { .. } => Some(Field::Timestamp),
            TickError::Volume { .. } => Some(Field::Volume),
            _ => None,
        }
    }

    /// A short stable code for counting rejections by reason, e.g. `price.invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            TickError::TooLarge { .. } => "body.too_large",
            TickError::NotUtf8 { .. } => "body.not_utf8",
            TickError::Malformed { field: None, .. } => "body.malformed",
            TickError::Malformed {
                field: Some(Field::Symbol),
                ..
            } => "symbol.malformed",
            TickError::Malformed {
                field: Some(Field::Price),
                ..
            } => "price.malformed",
            TickError::Malformed {
                field: Some(Field::Timestamp),
                ..
            } => "timestamp.malformed",
            TickError::Malformed {
                field: Some(Field::Volume),
                ..
            } => "volume.malformed",
            TickError::CsvRow { .. } => "row.malformed",
            TickError::NotAnObject { .. } => "body.not_object",
            TickError::DuplicateField { .. } => "body.duplicate_field",
            TickError::TooManyFields => "body.too_many_fields",
            TickError::Missing {
                field: Field::Symbol,
            } => "symbol.missing",
            TickError::Missing {
                field: Field::Price,
            } => "price.missing",
            TickError::Missing {
                field: Field::Timestamp,
            } => "timestamp.missing",
            // Never produced (volume is optional), but every field has its code.
            TickError::Missing {
                field: Field::Volume,
            } => "volume.missing",
            TickError::Symbol { .. } => "symbol.invalid",
            TickError::Price { .. } => "price.invalid",
            TickError::Timestamp { .. } => "timestamp.invalid",
            TickError::Volume { .. } => "volume.invalid",
        }
    }
}

/// Quotes input text for an error message: in double quotes, with control and invisible
/// characters escaped as Rust's `{:?}` does (`"A\u{1b}[31m"`), cut to [`VALUE_ECHO_CHARS_MAX`]
/// characters.
pub fn quote(text: &str) -> String {
    format!("{:?}", excerpt(text))
}

/// Escapes the characters of `text` that a terminal would not show as themselves (controls such
/// as ESC, bidirectional overrides, zero-width characters) the way Rust's `{:?}` does, leaving
/// everything else, quotes and backslashes included, as it is. For messages that embed input
/// without quoting it (a parser's description of a key, say).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let hidden = |c: char| !matches!(c, '\\' | '"' | '\'') && c.escape_debug().len() > 1;
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// At most [`VALUE_ECHO_CHARS_MAX`] characters of `text`, with `…` if it was cut. Not escaped:
/// callers quote it, or know it is harmless (a number's digits).
pub(crate) fn excerpt(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(VALUE_ECHO_CHARS_MAX) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

impl TryFrom<RawTick<'_>> for Tick {
    type Error = TickError;

    fn try_from(raw: RawTick<'_>) -> Result<Tick, TickError> {
        if raw.too_many_fields {
            return Err(TickError::TooManyFields);
        }
        if let Some(field) = raw.duplicate_field {
            return Err(TickError::DuplicateField { field });
        }
        let symbol = match raw.symbol {
            None => {
                return Err(TickError::Missing {
                    field: Field::Symbol,
                });
            }
            Some(JsonValue::Str(text)) => Symbol::parse(&text)?,
            Some(other) => {
                return Err(TickError::Symbol {
                    value: other.describe(),
                    reason: "must be a string".into(),
                });
            }
        };
        let price = match raw.price {
            None => {
                return Err(TickError::Missing {
                    field: Field::Price,
                });
            }
            Some(value) => match value.as_f64() {
                Some(number) => Price::new(number)?,
                None => {
                    return Err(TickError::Price {
                        value: value.describe(),
                        reason: "must be a JSON number".into(),
                    });
                }
            },
        };
        let at = match raw.timestamp {
            None => {
                return Err(TickError::Missing {
                    field: Field::Timestamp,
                });
            }
            Some(JsonValue::Str(text)) => Timestamp::parse_rfc3339(&text)?,
            Some(JsonValue::Int(ms)) => Timestamp::from_epoch_ms(ms)?,
            Some(JsonValue::BigUint(ms)) => {
                return Err(TickError::Timestamp {
                    value: ms.to_string(),
                    reason: timestamp::RANGE_MS_REASON.into(),
                });
            }
            // Refused even when integral (`1767225600000.0`): a producer writing floats may have
            // rounded the milliseconds away, and accepting them would make the same tick's time
            // depend on how a number was spelled. The message shows it was a float.
            Some(JsonValue::Float(ms)) => {
                return Err(TickError::Timestamp {
                    value: format_float(ms),
                    reason: timestamp::NOT_INTEGER_REASON.into(),
                });
            }
            Some(other) => {
                return Err(TickError::Timestamp {
                    value: other.describe(),
                    reason: "must be an RFC 3339 string or an integer of epoch milliseconds within 1970-2100"
                        .into(),
                });
            }
        };
        let volume = match raw.volume {
            None => Volume::ZERO,
            Some(value) => match value.as_f64() {
                Some(number) => Volume::new(number)?,
                None => {
                    return Err(TickError::Volume {
                        value: value.describe(),
                        reason: "must be a JSON number".into(),
                    });
                }
            },
        };
        Ok(Tick {
            symbol,
            price,
            at,
            volume,
        })
    }
}

#[cfg(test)]
mod tests;
