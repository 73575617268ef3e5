//! The hostile-tick corpus (`testdata/hostile-ticks.json`): bodies built to break a tick parser,
//! each with the exact outcome it must get. The core, the local mode and the Lambda path all run
//! it, so the three cannot drift apart. This module only reads the corpus format.

use serde::Deserialize;

use crate::tick::TICK_BODY_BYTES_MAX;

/// What a hostile body must lead to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A valid tick.
    Accept,
    /// Rejected with this error code (`TickError::code`), the message containing `contains`.
    Reject {
        /// The error code.
        code: String,
        /// A part of the message.
        contains: String,
    },
}

/// One case of the corpus.
#[derive(Clone, Debug)]
pub struct HostileCase {
    /// What it tries.
    pub name: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The outcome it must get.
    pub expect: Expect,
}

impl HostileCase {
    /// Whether the body can travel as an SQS message: SQS accepts only valid Unicode made of tab,
    /// newline, carriage return and characters from U+0020 up (no other controls, no surrogates).
    pub fn fits_sqs(&self) -> bool {
        std::str::from_utf8(&self.body).is_ok_and(|text| {
            !text.is_empty()
                && text.chars().all(|c| {
                    matches!(c, '\t' | '\n' | '\r')
                        || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
                })
        })
    }

    /// Whether the body fits on one NDJSON line (no line breaks, not blank).
    pub fn fits_one_line(&self) -> bool {
        !self.body.contains(&b'\n') && !self.body.iter().all(u8::is_ascii_whitespace)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[allow(dead_code)]
    about: String,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    body: Option<String>,
    body_hex: Option<String>,
    pad_to_bytes: Option<usize>,
    expect: serde_json::Value,
    #[allow(dead_code)]
    note: Option<String>,
}

/// A corpus file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("hostile corpus: {0}")]
pub struct CorpusError(String);

/// Reads the corpus.
pub fn parse(text: &str) -> Result<Vec<HostileCase>, CorpusError> {
    let corpus: Corpus = serde_json::from_str(text).map_err(|e| CorpusError(e.to_string()))?;
    corpus
        .cases
        .into_iter()
        .map(|raw| {
            let bad = |what: &str| CorpusError(format!("case {:?}: {what}", raw.name));
            let body = match (&raw.body, &raw.body_hex, raw.pad_to_bytes) {
                (Some(text), None, None) => text.clone().into_bytes(),
                (None, Some(hex), None) => {
                    decode_hex(hex).ok_or_else(|| bad("body_hex is not hex"))?
                }
                (None, None, Some(bytes)) => {
                    padded(bytes).ok_or_else(|| bad("pad_to_bytes is too small"))?
                }
                _ => return Err(bad("give exactly one of body, body_hex, pad_to_bytes")),
            };
            let expect = match &raw.expect {
                serde_json::Value::String(s) if s == "accept" => Expect::Accept,
                serde_json::Value::Object(o) => match (o.get("code"), o.get("contains")) {
                    (
                        Some(serde_json::Value::String(code)),
                        Some(serde_json::Value::String(contains)),
                    ) => Expect::Reject {
                        code: code.clone(),
                        contains: contains.clone(),
                    },
                    _ => return Err(bad("expect needs code and contains")),
                },
                _ => return Err(bad("expect must be \"accept\" or {code, contains}")),
            };
            Ok(HostileCase {
                name: raw.name,
                body,
                expect,
            })
        })
        .collect()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A valid tick padded with an ignored field to exactly `bytes` bytes.
fn padded(bytes: usize) -> Option<Vec<u8>> {
    let head = r#"{"symbol":"AAPL","price":151.25,"timestamp":"2026-11-26T14:30:00.123Z","pad":""#;
    let fill = bytes.checked_sub(head.len() + 2)?;
    let mut body = Vec::with_capacity(bytes);
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + fill, b'x');
    body.extend_from_slice(b"\"}");
    debug_assert!(bytes > TICK_BODY_BYTES_MAX - 1 || body.len() == bytes);
    Some(body)
}
