//! The fast path of tick decoding: a single forward scan for the shape nearly every tick has
//! (a flat object of plain strings, numbers and literals, no escapes, no nesting).
//!
//! It only ever *accepts*: anything outside that shape, and anything invalid, returns `None` and
//! the caller runs the full parser, which then produces the exact error. So the fast path cannot
//! change what is rejected or why; the `tick_decode` fuzz target and the tests check that every
//! tick it accepts is the one the full parser returns.

use super::{Price, Symbol, Tick, Timestamp, Volume};

/// Extra fields the fast path tracks (for duplicate detection); a tick with more takes the full
/// parser, which allows up to `TICK_FIELDS_MAX` in all.
const OTHER_FIELDS_MAX: usize = 8;

/// Most digits of an integer read without the float parser: any integer of up to 15 digits is
/// below 2^53, so it converts to `f64` exactly, as the correctly rounded parse would give it.
const EXACT_INTEGER_DIGITS_MAX: usize = 15;

/// Decodes `body` if it has the common shape and is valid; `None` otherwise.
pub(super) fn decode(body: &[u8]) -> Option<Tick> {
    let mut scan = Scan { body, at: 0 };
    scan.skip_ws();
    scan.expect(b'{')?;
    let (mut symbol, mut price, mut timestamp, mut volume) = (None, None, None, None);
    let mut others: [&[u8]; OTHER_FIELDS_MAX] = [&[]; OTHER_FIELDS_MAX];
    let mut other_count = 0;
    scan.skip_ws();
    if scan.peek()? == b'}' {
        return None; // No fields: missing ones are the full parser's to report.
    }
    loop {
        scan.skip_ws();
        let key = scan.plain_string()?;
        scan.skip_ws();
        scan.expect(b':')?;
        scan.skip_ws();
        let value = scan.value()?;
        match key {
            b"symbol" => put_once(&mut symbol, value)?,
            b"price" => put_once(&mut price, value)?,
            b"timestamp" => put_once(&mut timestamp, value)?,
            b"volume" => put_once(&mut volume, value)?,
            _ => {
                if other_count == OTHER_FIELDS_MAX || others[..other_count].contains(&key) {
                    return None;
                }
                others[other_count] = key;
                other_count += 1;
            }
        }
        scan.skip_ws();
        match scan.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    scan.skip_ws();
    if scan.at != body.len() {
        return None;
    }
    let symbol = match symbol? {
        Value::Str(text) => Symbol::parse(std::str::from_utf8(text).ok()?).ok()?,
        _ => return None,
    };
    let price = match price? {
        Value::Number { text, .. } => {
            Price::new(std::str::from_utf8(text).ok()?.parse().ok()?).ok()?
        }
        _ => return None,
    };
    let at = match timestamp? {
        Value::Str(text) => Timestamp::parse_rfc3339(std::str::from_utf8(text).ok()?).ok()?,
        Value::Number {
            text,
            integer: true,
        } => Timestamp::from_epoch_ms(std::str::from_utf8(text).ok()?.parse().ok()?).ok()?,
        _ => return None,
    };
    let volume = match volume {
        None => Volume::ZERO,
        Some(Value::Number { text, integer }) => Volume::new(number(text, integer)?).ok()?,
        _ => return None,
    };
    Some(Tick {
        symbol,
        price,
        at,
        volume,
    })
}

/// The value of a number the scan found. Volumes are nearly always integers (share counts), and
/// reading those digit by digit is several times faster than the general float parser.
fn number(text: &[u8], integer: bool) -> Option<f64> {
    if integer && text.len() <= EXACT_INTEGER_DIGITS_MAX {
        let value = text
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
        // Exact: below 2^53 (see EXACT_INTEGER_DIGITS_MAX).
        return Some(value as f64);
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn put_once<'a>(slot: &mut Option<Value<'a>>, value: Value<'a>) -> Option<()> {
    // A repeated key is the full parser's to report.
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a [u8]),
    Number { text: &'a [u8], integer: bool },
    Literal,
}

struct Scan<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string with no escapes and no control characters; its bytes without the quotes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        let len = find_special(&self.body[start..])?;
        if self.body[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        Some(&self.body[start..start + len])
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.plain_string().map(Value::Str),
            b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<Value<'a>> {
        if self.body[self.at..].starts_with(word) {
            self.at += word.len();
            Some(Value::Literal)
        } else {
            None
        }
    }

    /// A non-negative number in JSON's grammar: `(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    /// Negative numbers are never valid prices, timestamps or volumes, and serde_json reads `-0`
    /// as a float where it reads `0` as an integer: they are left to the full parser.
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.at;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        Some(Value::Number {
            text: &self.body[start..self.at],
            integer,
        })
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        self.digits();
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

/// The index of the first `"`, `\\`, control character or non-ASCII byte in `bytes`, eight bytes
/// at a time. Stopping at non-ASCII bytes keeps the fast path to ASCII bodies, which are UTF-8 by
/// definition, so the caller need not check UTF-8 first; other text takes the full parser.
///
/// Classic SWAR: for each byte b, `(b - 1) & !b & 0x80` is set when b is zero, and
/// `(b - 0x20) & !b & 0x80` when b is below 0x20; `b & 0x80` when b is 0x80 or above. A borrow can
/// flag bytes after the first real match, never before it, so the lowest flag is the answer.
fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = zero_in(x ^ (ONES * u64::from(b'"')));
        let backslash = zero_in(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let found = (quote | backslash | control | x) & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20 || !b.is_ascii())
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::{find_special, number};

    #[test]
    fn numbers_read_as_the_float_parser_reads_them() {
        // (text, whether the scan marks it an integer)
        let cases = [
            ("0", true),
            ("7", true),
            ("300", true),
            ("999999999999999", true),
            ("1000000000000000", true),
            ("9007199254740993", true),
            ("18446744073709551616", true),
            ("1.5e3", false),
            ("0.1", false),
            ("1e400", false),
        ];
        for (text, integer) in cases {
            let exact: f64 = text.parse().expect("a number");
            let read = number(text.as_bytes(), integer).expect("a number");
            assert_eq!(read.to_bits(), exact.to_bits(), "{text}");
        }
    }

    #[test]
    fn finds_the_first_special_byte_in_any_position() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n', 0x80, 0xc3, 0xff] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    // Later specials must not confuse it.
                    if at + 1 < len {
                        bytes[at + 1] = 0x00;
                    }
                    if at + 2 < len {
                        bytes[at + 2] = 0xe9;
                    }
                    assert_eq!(
                        find_special(&bytes),
                        Some(at),
                        "len {len} special {special:#x} at {at}"
                    );
                }
                assert_eq!(
                    find_special(&vec![b'~'; len]),
                    None,
                    "printable ASCII is not special"
                );
            }
        }
        assert_eq!(find_special(b"AAPL\"rest"), Some(4));
        assert_eq!(find_special(b"no specials here at all!"), None);
        assert_eq!(find_special(b" !#~\x7f"), None, "space and DEL are allowed");
    }
}
