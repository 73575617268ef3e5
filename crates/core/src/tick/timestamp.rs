//! `Timestamp`: a UTC instant with millisecond precision, between 1970 and 2100.
//!
//! Parsing and formatting are written here rather than pulled from a date crate: the accepted
//! grammar is small (RFC 3339 with an offset, or epoch milliseconds), it sits on the hot path of
//! every tick, and writing it out keeps every rejection reason precise.

use std::fmt;

use super::{TickError, quote};

/// The earliest accepted instant: 1970-01-01T00:00:00.000Z, in epoch milliseconds.
pub const TIMESTAMP_MS_MIN: i64 = 0;
/// The first instant no longer accepted: 2100-01-01T00:00:00.000Z, in epoch milliseconds.
pub const TIMESTAMP_MS_END: i64 = 4_102_444_800_000;

/// Fractional-second digits accepted in RFC 3339 text (nanoseconds); anything past milliseconds is
/// truncated.
const FRACTION_DIGITS_MAX: usize = 9;

const MS_PER_DAY: i64 = 86_400_000;

/// Why epoch milliseconds outside the accepted range are refused.
pub(super) const RANGE_MS_REASON: &str =
    "must be between 1970-01-01 and 2100-01-01 (epoch milliseconds)";

/// Why a number with a fraction or an exponent is refused as epoch milliseconds.
pub(super) const NOT_INTEGER_REASON: &str = "must be an integer of epoch milliseconds, not a float";

/// A UTC instant in milliseconds since the Unix epoch, within
/// [[`TIMESTAMP_MS_MIN`], [`TIMESTAMP_MS_END`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The last valid timestamp: one millisecond before [`TIMESTAMP_MS_END`].
    pub const LAST: Timestamp = Timestamp(TIMESTAMP_MS_END - 1);

    /// Validates epoch milliseconds.
    pub fn from_epoch_ms(ms: i64) -> Result<Self, TickError> {
        if (TIMESTAMP_MS_MIN..TIMESTAMP_MS_END).contains(&ms) {
            Ok(Self(ms))
        } else {
            Err(TickError::Timestamp {
                value: ms.to_string(),
                reason: RANGE_MS_REASON.into(),
            })
        }
    }

    /// Parses RFC 3339 text with an offset (`Z` or `±HH:MM`), e.g. `2026-11-26T14:30:00.123Z`,
    /// normalising it to UTC and truncating it to milliseconds.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TickError> {
        let ms = parse_rfc3339_ms(text.as_bytes()).map_err(|reason| TickError::Timestamp {
            value: quote(text),
            reason: reason.into(),
        })?;
        if !(TIMESTAMP_MS_MIN..TIMESTAMP_MS_END).contains(&ms) {
            return Err(TickError::Timestamp {
                value: quote(text),
                reason: "must be between 1970-01-01 and 2100-01-01".into(),
            });
        }
        Ok(Self(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub fn epoch_ms(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `ms` milliseconds, saturating at the last representable one.
    pub fn saturating_add_ms(self, ms: u64) -> Self {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms).min(TIMESTAMP_MS_END - 1))
    }

    /// Milliseconds from `self` until `later`, zero if `later` is not after `self`.
    pub fn ms_until(self, later: Timestamp) -> u64 {
        u64::try_from(later.0 - self.0).unwrap_or(0)
    }
}

/// Parses the RFC 3339 `date-time` production into epoch milliseconds; the error is a reason.
fn parse_rfc3339_ms(s: &[u8]) -> Result<i64, &'static str> {
    const SHAPE: &str = "must be RFC 3339 like 2026-11-26T14:30:00.123Z, or epoch milliseconds";
    if s.len() < 19 {
        return Err(SHAPE);
    }
    let digits = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        s[range].iter().try_fold(0i64, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(SHAPE)
            }
        })
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return Err(SHAPE);
    }
    if s[13] != b':' || s[16] != b':' {
        return Err(SHAPE);
    }
    if !(1..=12).contains(&month) {
        return Err("has a month outside 01-12");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("has a day that does not exist in that month");
    }
    if hour > 23 || minute > 59 {
        return Err("has an hour or minute out of range");
    }
    if second == 60 {
        return Err("is a leap second (:60), which UTC milliseconds cannot represent");
    }
    if second > 59 {
        return Err("has seconds out of range");
    }

    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some((&b'.', fraction)) = rest.split_first() {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 {
            return Err("has a '.' without fractional digits");
        }
        if len > FRACTION_DIGITS_MAX {
            return Err("has more than 9 fractional digits");
        }
        for (i, &b) in fraction[..len.min(3)].iter().enumerate() {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[len..];
    }

    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Result<i64, &'static str> {
                if a.is_ascii_digit() && b.is_ascii_digit() {
                    Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
                } else {
                    Err("has a malformed UTC offset; use Z or ±HH:MM")
                }
            };
            let (oh, om) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if oh > 23 || om > 59 {
                return Err("has a UTC offset out of range");
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        [] => return Err("has no UTC offset; add Z or ±HH:MM"),
        _ => return Err("has a malformed UTC offset; use Z or ±HH:MM"),
    };

    let days = days_from_civil(year, month, day);
    let local_ms = days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    Ok(local_ms - offset_minutes * 60_000)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// The RFC 3339 form as fixed-width ASCII bytes (see the `Display` impl).
    pub fn to_rfc3339_bytes(self) -> [u8; 24] {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let (hour, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
        let (minute, rest) = (rest / 60_000, rest % 60_000);
        let (second, millis) = (rest / 1000, rest % 1000);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (0..width).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, hour);
        put(14, 2, minute);
        put(17, 2, second);
        put(20, 3, millis);
        out
    }
}

/// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-11-26T14:30:00.123Z`.
/// Fixed width, so the text sorts in time order (the DynamoDB sort key relies on it).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_rfc3339_bytes();
        // Only ASCII digits and separators are written above.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl TryFrom<&str> for Timestamp {
    type Error = TickError;
    fn try_from(text: &str) -> Result<Self, TickError> {
        Self::parse_rfc3339(text)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // One string, not `collect_str`'s formatting machinery: every notification carries two.
        let bytes = self.to_rfc3339_bytes();
        serializer.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}
