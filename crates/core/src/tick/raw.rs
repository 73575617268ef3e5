//! `RawTick`: what a tick body literally says, before any domain rule is applied.
//!
//! The JSON is read with a hand-written serde visitor instead of `#[derive(Deserialize)]` for three
//! reasons: a wrongly typed field must come out as a reason naming that field (derive would stop at
//! the first type error with a generic message), duplicate keys must be caught even for fields we
//! ignore, and the known keys and string values are borrowed from the input, not copied.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Field, TICK_FIELDS_MAX, TickError, escape_controls, format_float, quote};

/// One JSON value as far as tick validation cares: scalars are kept, containers only noted.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonValue<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    BigUint(u64),
    /// Any other number.
    Float(f64),
    /// A string, borrowed from the input when it has no escapes.
    Str(Cow<'a, str>),
    /// An array (its contents are skipped).
    Array,
    /// An object (its contents are skipped).
    Object,
}

impl JsonValue<'_> {
    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            JsonValue::Int(n) => Some(n as f64),
            JsonValue::BigUint(n) => Some(n as f64),
            JsonValue::Float(n) => Some(n),
            _ => None,
        }
    }

    /// Renders the value for an error message: `string "abc"`, `null`, `an array`, `12.5`.
    pub fn describe(&self) -> String {
        match self {
            JsonValue::Null => "null".into(),
            JsonValue::Bool(b) => b.to_string(),
            JsonValue::Int(n) => n.to_string(),
            JsonValue::BigUint(n) => n.to_string(),
            JsonValue::Float(n) => format_float(*n),
            JsonValue::Str(s) => format!("string {}", quote(s)),
            JsonValue::Array => "an array".into(),
            JsonValue::Object => "an object".into(),
        }
    }
}

/// A tick body as read, before validation. Convert it with `Tick::try_from`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawTick<'a> {
    /// The `symbol` value, if present.
    pub symbol: Option<JsonValue<'a>>,
    /// The `price` value, if present.
    pub price: Option<JsonValue<'a>>,
    /// The `timestamp` value, if present.
    pub timestamp: Option<JsonValue<'a>>,
    /// The `volume` value, if present.
    pub volume: Option<JsonValue<'a>>,
    /// The first key that appeared twice (quoted), if any.
    pub duplicate_field: Option<String>,
    /// Set when the object has more than [`TICK_FIELDS_MAX`] keys.
    pub too_many_fields: bool,
}

impl<'a> RawTick<'a> {
    /// Reads a JSON object. Fails only on problems with the body as a whole (syntax, trailing
    /// data, not an object); problems with individual fields are left for `Tick::try_from`.
    pub fn from_json(text: &'a str) -> Result<RawTick<'a>, TickError> {
        let failed_in = Cell::new(None);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let body = deserializer
            .deserialize_any(BodyVisitor {
                failed_in: &failed_in,
            })
            .and_then(|body| deserializer.end().map(|()| body))
            .map_err(|e| TickError::Malformed {
                field: failed_in.get(),
                detail: escape_controls(&e.to_string()).into_owned(),
            })?;
        match body {
            Body::Object(raw) => Ok(raw),
            Body::Other(found) => Err(TickError::NotAnObject { found }),
        }
    }
}

enum Body<'a> {
    Object(RawTick<'a>),
    Other(&'static str),
}

/// Reads the top-level value. `failed_in` records which known field was being read when the
/// parser failed, so that an unreadable value (say a number out of range) is blamed on its field.
struct BodyVisitor<'c> {
    failed_in: &'c Cell<Option<Field>>,
}

impl<'de> Visitor<'de> for BodyVisitor<'_> {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
        let mut raw = RawTick::default();
        let mut other_keys: Vec<Cow<'de, str>> = Vec::new();
        let mut key_count = 0usize;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            key_count += 1;
            if key_count > TICK_FIELDS_MAX {
                raw.too_many_fields = true;
            }
            let (slot, field) = match key {
                Key::Known(Field::Symbol) => (&mut raw.symbol, Field::Symbol),
                Key::Known(Field::Price) => (&mut raw.price, Field::Price),
                Key::Known(Field::Timestamp) => (&mut raw.timestamp, Field::Timestamp),
                Key::Known(Field::Volume) => (&mut raw.volume, Field::Volume),
                Key::Other(name) => {
                    // Past the field limit the tick is rejected anyway; stop tracking keys so a
                    // hostile body cannot make duplicate detection quadratic.
                    if !raw.too_many_fields {
                        if other_keys.contains(&name) {
                            raw.duplicate_field.get_or_insert_with(|| quote(&name));
                        } else {
                            other_keys.push(name);
                        }
                    }
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            self.failed_in.set(Some(field));
            let value = map.next_value_seed(ValueSeed)?;
            // Errors after the value (`"price":0x10` fails at the `x`, after reading `0`) cannot be
            // told from errors in the next key, so they are the body's, with line and column.
            self.failed_in.set(None);
            if slot.is_some() {
                raw.duplicate_field
                    .get_or_insert_with(|| field.name().into());
            } else {
                *slot = Some(value);
            }
        }
        Ok(Body::Object(raw))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::Other("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Body<'de>, E> {
        Ok(Body::Other("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Body<'de>, E> {
        Ok(Body::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Body<'de>, E> {
        Ok(Body::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Body<'de>, E> {
        Ok(Body::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Body<'de>, E> {
        Ok(Body::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Body<'de>, E> {
        Ok(Body::Other("null"))
    }
}

/// An object key: one of ours (no allocation) or any other, borrowed when possible.
enum Key<'de> {
    Known(Field),
    Other(Cow<'de, str>),
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

fn known_key(name: &str) -> Option<Field> {
    match name {
        "symbol" => Some(Field::Symbol),
        "price" => Some(Field::Price),
        "timestamp" => Some(Field::Timestamp),
        "volume" => Some(Field::Volume),
        _ => None,
    }
}

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(known_key(v).map_or(Key::Other(Cow::Borrowed(v)), Key::Known))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(known_key(v).map_or_else(|| Key::Other(Cow::Owned(v.to_owned())), Key::Known))
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = JsonValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(JsonValue::BigUint(v), JsonValue::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonValue::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Object)
    }
}
