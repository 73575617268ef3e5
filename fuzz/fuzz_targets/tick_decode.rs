//! Any bytes: decoding never panics, its fast path agrees with the full parser, errors stay short,
//! and a decoded tick survives a round trip through its canonical JSON form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwatch_core::tick::RawTick;
use tickwatch_core::{Tick, TickError};

fn full_parser(body: &[u8]) -> Result<Tick, TickError> {
    if body.len() > tickwatch_core::tick::TICK_BODY_BYTES_MAX {
        return Err(TickError::TooLarge { bytes: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| TickError::NotUtf8 { offset: e.valid_up_to() })?;
    Tick::try_from(RawTick::from_json(text)?)
}

fuzz_target!(|data: &[u8]| {
    let decoded = Tick::decode(data);
    assert_eq!(decoded, full_parser(data), "the fast path changed an outcome");
    match decoded {
        Ok(tick) => {
            let canonical = format!(
                r#"{{"symbol":{},"price":{},"timestamp":"{}","volume":{}}}"#,
                serde_json::to_string(tick.symbol.as_str()).expect("a symbol serialises"),
                serde_json::to_string(&tick.price).expect("a price serialises"),
                tick.at,
                serde_json::to_string(&tick.volume).expect("a volume serialises")
            );
            let again = Tick::decode(canonical.as_bytes()).expect("a canonical tick decodes");
            assert_eq!(again, tick, "round trip of {canonical}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.len() < 600, "error message too long ({} bytes)", message.len());
            assert!(!error.code().is_empty());
        }
    }
});
