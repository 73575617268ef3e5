//! Any bytes: decoding never panics, errors stay short, and a decoded tick survives a round trip
//! through its canonical JSON form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwatch_core::Tick;

fuzz_target!(|data: &[u8]| {
    match Tick::decode(data) {
        Ok(tick) => {
            let canonical = format!(
                r#"{{"symbol":{},"price":{},"timestamp":"{}"}}"#,
                serde_json::to_string(tick.symbol.as_str()).expect("a symbol serialises"),
                serde_json::to_string(&tick.price).expect("a price serialises"),
                tick.at
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
