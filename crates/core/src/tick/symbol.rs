//! `Symbol`: a validated instrument identifier, stored inline so a tick needs no allocation.

use std::fmt;

use super::{TickError, quote};

/// Longest symbol accepted, in bytes (every allowed character is one byte).
pub const SYMBOL_LEN_MAX: usize = 32;

/// An instrument identifier: 1 to [`SYMBOL_LEN_MAX`] characters of `A-Z a-z 0-9 . _ - : /`.
///
/// It is `Copy` and compares as text; the bytes live inline, so building one never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    len: u8,
    bytes: [u8; SYMBOL_LEN_MAX],
}

impl Symbol {
    /// Validates `text` as a symbol.
    pub fn parse(text: &str) -> Result<Self, TickError> {
        // Fast path (nearly every tick): short, and every byte allowed.
        let bytes = text.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= SYMBOL_LEN_MAX
            && bytes.iter().all(|&b| SYMBOL_BYTES[usize::from(b)])
        {
            let mut inline = [0u8; SYMBOL_LEN_MAX];
            inline[..bytes.len()].copy_from_slice(bytes);
            return Ok(Self {
                len: bytes.len() as u8,
                bytes: inline,
            });
        }
        Self::parse_slow(text)
    }

    /// The slow path: finds what is wrong, for the error message.
    fn parse_slow(text: &str) -> Result<Self, TickError> {
        let invalid = |reason: String| TickError::Symbol {
            value: quote(text),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        let char_count = text.chars().count();
        if char_count > SYMBOL_LEN_MAX {
            return Err(invalid(format!(
                "is {char_count} characters long; at most {SYMBOL_LEN_MAX} are allowed"
            )));
        }
        if let Some((position, ch)) = text.chars().enumerate().find(|(_, c)| !is_symbol_char(*c)) {
            return Err(invalid(format!(
                "has {} at position {}; allowed are A-Z a-z 0-9 . _ - : /",
                describe_char(ch),
                position + 1
            )));
        }
        // Every allowed character is ASCII, so the length in bytes is the length in characters.
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self {
            len: text.len() as u8,
            bytes,
        })
    }

    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `parse`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Which bytes a symbol may contain (all of them ASCII).
const SYMBOL_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_symbol_char(b as u8 as char);
        b += 1;
    }
    table
};

const fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

/// Names a character so that invisible ones (controls, bidi marks, spaces) are still readable.
fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

// Hash only the bytes in use (the rest are always zero, so this agrees with `Eq`): batches are
// grouped by symbol through a hash map, and hashing 5 bytes instead of 41 is most of that cost.
// By whole words: both constructors zero the bytes past `len` (which the derived `Eq` relies on
// too), so the length and the words holding the text identify a symbol. Every tick hashes its
// symbol at least once; a few word writes are cheaper than a slice of any length.
impl std::hash::Hash for Symbol {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.len);
        let words = usize::from(self.len).div_ceil(8);
        for word in self.bytes.chunks_exact(8).take(words) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            state.write_u64(u64::from_le_bytes(bytes));
        }
    }
}

// The order of the text (`str` compares bytewise), by two 16-byte words instead of a call to
// `memcmp`: the bytes past `len` are zero and no symbol byte is, so a symbol that is a prefix of
// another compares less at the first byte where it has run out. Stores sort every batch's symbols
// to walk their B-trees in order; at a million symbols that sort was a tenth of the run.
impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let half = |symbol: &Symbol, at: usize| {
            let mut word = [0u8; 16];
            word.copy_from_slice(&symbol.bytes[at..at + 16]);
            u128::from_be_bytes(word)
        };
        half(self, 0)
            .cmp(&half(other, 0))
            .then_with(|| half(self, 16).cmp(&half(other, 16)))
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({:?})", self.as_str())
    }
}

impl TryFrom<&str> for Symbol {
    type Error = TickError;
    fn try_from(text: &str) -> Result<Self, TickError> {
        Self::parse(text)
    }
}

impl serde::Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Symbol::parse(&text).map_err(serde::de::Error::custom)
    }
}
