//! The decoder's fast path must never change an outcome: for any body, `Tick::decode` (fast path
//! first) and the full parser give the same tick or the same error.

use proptest::prelude::*;
use tickwatch_core::tick::RawTick;
use tickwatch_core::{Tick, TickError};

fn full_parser(body: &[u8]) -> Result<Tick, TickError> {
    let text = std::str::from_utf8(body).map_err(|e| TickError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Tick::try_from(RawTick::from_json(text)?)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("symbol".to_owned()),
        Just("price".to_owned()),
        Just("timestamp".to_owned()),
        Just("volume".to_owned()),
        Just("s\\u0079mbol".to_owned()),
        Just("v\\u006flume".to_owned()),
        Just("ex change".to_owned()),
        "[a-z]{1,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"AAPL\"".to_owned()),
        Just("\"BRK.B\"".to_owned()),
        Just("\"A\\u0041PL\"".to_owned()),
        Just("\"2026-11-26T14:30:00.123Z\"".to_owned()),
        Just("\"2026-11-26T14:30:00+01:00\"".to_owned()),
        Just("\"2026-11-26T14:30:00\"".to_owned()),
        Just("1795703400123".to_owned()),
        Just("-0".to_owned()),
        Just("0".to_owned()),
        Just("01".to_owned()),
        Just("1e3".to_owned()),
        Just("151.25".to_owned()),
        Just("1.5E+2".to_owned()),
        Just("1e400".to_owned()),
        Just("-151".to_owned()),
        Just("1.".to_owned()),
        Just("-1".to_owned()),
        Just("0.5".to_owned()),
        Just("1e15".to_owned()),
        Just("1000000000000001".to_owned()),
        Just("1e-400".to_owned()),
        Just("\"12\"".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("tru".to_owned()),
        Just("[1,2]".to_owned()),
        Just("{\"a\":1}".to_owned()),
        Just("\"x\\\"y\"".to_owned()),
        Just("\"tab\there\"".to_owned()),
        (1u64..4_102_444_800_000).prop_map(|n| n.to_string()),
        (0.0f64..300.0).prop_map(|p| format!("{p}")),
        "\"[A-Za-z0-9./:_-]{0,40}\"",
    ]
}

/// Volumes spelled every way JSON allows, valid and not (negative, above the cap, out of range).
fn volume_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2_000_000_000_000_000).prop_map(|n| n.to_string()),
        (0.0f64..2e15).prop_map(|v| format!("{v}")),
        (0.0f64..2e15).prop_map(|v| format!("{v:e}")),
        (0.0f64..2e15).prop_map(|v| format!("{v:E}")),
        (-1e6f64..0.0).prop_map(|v| format!("{v}")),
        (0u32..10, -400i32..400).prop_map(|(m, e)| format!("{m}e{e}")),
    ]
}

fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\n\t ".to_owned()),
        Just("\r".to_owned())
    ]
}

fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(), value(), whitespace()), 0..7),
        whitespace(),
        prop_oneof![
            Just(String::new()),
            Just(" x".to_owned()),
            Just("}".to_owned()),
            Just(",".to_owned())
        ],
    )
        .prop_map(|(fields, ws, tail)| {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            format!("{ws}{{{}}}{ws}{tail}", inner.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_agrees_with_the_full_parser(body in body()) {
        prop_assert_eq!(Tick::decode(body.as_bytes()), full_parser(body.as_bytes()), "{}", body);
    }

    #[test]
    fn decode_agrees_on_volumes(volume in volume_text(), first in any::<bool>()) {
        let body = if first {
            format!(r#"{{"volume":{volume},"symbol":"AAPL","price":151.25,"timestamp":1}}"#)
        } else {
            format!(r#"{{"symbol":"AAPL","price":151.25,"timestamp":1,"volume":{volume}}}"#)
        };
        let decoded = Tick::decode(body.as_bytes());
        prop_assert_eq!(&decoded, &full_parser(body.as_bytes()), "{}", body);
        if let Ok(tick) = decoded {
            let exact: f64 = volume.parse().expect("a number");
            prop_assert_eq!(tick.volume.get(), exact, "{}", body);
        }
    }

    #[test]
    fn decode_agrees_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        prop_assert_eq!(Tick::decode(&bytes), full_parser(&bytes));
    }
}

#[test]
fn typical_ticks_agree() {
    let bodies = [
        r#"{"symbol":"AAPL","price":151.25,"timestamp":"2026-11-26T14:30:00.123Z","volume":300,"exchange":"XNAS"}"#,
        r#"{"timestamp":1795703400123,"price":1,"symbol":"a"}"#,
        r#"  {"symbol" : "X" , "price" : 1e2 , "timestamp" : 0 , "flag" : true , "n" : null }  "#,
        r#"{"symbol":"X","price":2,"timestamp":1,"symbol":"Y"}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"v":1,"v":2}"#,
        r#"{"symbol":"X","price":2,"timestamp":-0}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":0}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1.5e3}"#,
        r#"{"volume":12,"symbol":"X","price":2,"timestamp":1}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1e15}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1e16}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":-0}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":-1}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":"12"}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":null}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":[1]}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1e400}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1,"volume":1}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1,"volume":1}"#,
    ];
    for body in bodies {
        assert_eq!(
            Tick::decode(body.as_bytes()),
            full_parser(body.as_bytes()),
            "{body}"
        );
    }
}
