//! Table-driven tests of the tick contract: every validation rule, accepted and rejected.

use super::*;

fn ok(body: &str) -> Tick {
    Tick::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body} should be valid, got: {e}"))
}

fn err(body: &[u8]) -> TickError {
    match Tick::decode(body) {
        Ok(tick) => {
            let excerpt: String = String::from_utf8_lossy(body).chars().take(120).collect();
            panic!("{excerpt:?} should be rejected, got {tick:?}")
        }
        Err(e) => e,
    }
}

fn ms(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).expect("valid").epoch_ms()
}

#[test]
fn accepts_valid_ticks() {
    // (body, symbol, price, epoch ms)
    let cases: &[(&str, &str, f64, i64)] = &[
        (
            r#"{"symbol":"AAPL","price":151.25,"timestamp":"2026-11-26T14:30:00.123Z"}"#,
            "AAPL",
            151.25,
            1_795_703_400_123,
        ),
        (
            r#"{"symbol":"AAPL","price":151,"timestamp":1795703400123}"#,
            "AAPL",
            151.0,
            1_795_703_400_123,
        ),
        (
            r#"{"timestamp":0,"price":1e-4,"symbol":"a"}"#,
            "a",
            0.0001,
            0,
        ),
        (
            r#" { "symbol" : "BRK.B" , "price" : 1.5E2 , "timestamp" : "2026-11-26T15:30:00+01:00" } "#,
            "BRK.B",
            150.0,
            1_795_703_400_000,
        ),
        (
            r#"{"symbol":"EUR/USD:FX_1-x","price":1.0842,"timestamp":"2026-11-26t14:30:00z"}"#,
            "EUR/USD:FX_1-x",
            1.0842,
            1_795_703_400_000,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26 14:30:00.1Z"}"#,
            "X",
            2.0,
            1_795_703_400_100,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00.123456789Z"}"#,
            "X",
            2.0,
            1_795_703_400_123,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T09:00:00-05:30"}"#,
            "X",
            2.0,
            1_795_703_400_000,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2099-12-31T23:59:59.999Z"}"#,
            "X",
            2.0,
            4_102_444_799_999,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"1970-01-01T00:00:00Z"}"#,
            "X",
            2.0,
            0,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2024-02-29T00:00:00Z"}"#,
            "X",
            2.0,
            1_709_164_800_000,
        ),
        (
            r#"{"symbol":"X","price":999999999999.99,"timestamp":1}"#,
            "X",
            999_999_999_999.99,
            1,
        ),
        (
            r#"{"symbol":"\u0041BC","price":2,"timestamp":1}"#,
            "ABC",
            2.0,
            1,
        ),
        (
            r#"{"symbol":"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345","price":2,"timestamp":1}"#,
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
            2.0,
            1,
        ),
        // Fields the contract does not know, even odd ones, are ignored.
        (
            r#"{"symbol":"X","price":2,"timestamp":1,"volume":300,"exchange":"XNAS","meta":{"a":[1,{"b":null}]}}"#,
            "X",
            2.0,
            1,
        ),
        // Non-ASCII text (valid UTF-8) in an ignored field: the full parser's, same tick.
        (
            r#"{"symbol":"X","price":2,"timestamp":1,"venue":"Börse Frankfurt €"}"#,
            "X",
            2.0,
            1,
        ),
    ];
    for &(body, symbol, price, at) in cases {
        let tick = ok(body);
        assert_eq!(tick.symbol.as_str(), symbol, "{body}");
        assert_eq!(tick.price.get(), price, "{body}");
        assert_eq!(tick.at.epoch_ms(), at, "{body}");
    }
}

#[test]
fn rejects_invalid_ticks_naming_the_field() {
    // (body, error code, text the message must contain)
    let cases: &[(&str, &str, &str)] = &[
        // structure
        ("", "body.malformed", "EOF"),
        ("{", "body.malformed", "body: not valid JSON"),
        (
            "[1,2]",
            "body.not_object",
            "must be a JSON object, got an array",
        ),
        ("42", "body.not_object", "got a number"),
        (r#""AAPL""#, "body.not_object", "got a string"),
        ("null", "body.not_object", "got null"),
        (
            r#"{"symbol":"X","price":2,"timestamp":1} x"#,
            "body.malformed",
            "trailing characters",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1}{}"#,
            "body.malformed",
            "trailing characters",
        ),
        (
            r#"{"symbol":"X","symbol":"Y","price":2,"timestamp":1}"#,
            "body.duplicate_field",
            "symbol: key appears more than once",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1,"v":1,"v":2}"#,
            "body.duplicate_field",
            "\"v\": key appears more than once",
        ),
        (
            "\u{feff}{\"symbol\":\"X\",\"price\":2,\"timestamp\":1}",
            "body.malformed",
            "body: not valid JSON",
        ),
        // missing
        (
            r#"{"price":2,"timestamp":1}"#,
            "symbol.missing",
            "symbol: missing",
        ),
        (
            r#"{"symbol":"X","timestamp":1}"#,
            "price.missing",
            "price: missing",
        ),
        (
            r#"{"symbol":"X","price":2}"#,
            "timestamp.missing",
            "timestamp: missing",
        ),
        (r#"{}"#, "symbol.missing", "symbol: missing"),
        // symbol
        (
            r#"{"symbol":"","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "symbol: must not be empty",
        ),
        (
            r#"{"symbol":"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "33 characters long",
        ),
        (
            r#"{"symbol":"AB$","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "has '$' at position 3",
        ),
        (
            r#"{"symbol":"AB C","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "U+0020 at position 3",
        ),
        (
            r#"{"symbol":"AB\u0000","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "U+0000",
        ),
        (
            r#"{"symbol":"AB\u202e","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "U+202E",
        ),
        (
            r#"{"symbol":"ÄPL","price":2,"timestamp":1}"#,
            "symbol.invalid",
            "U+00C4 at position 1",
        ),
        (
            r#"{"symbol":7,"price":2,"timestamp":1}"#,
            "symbol.invalid",
            "symbol: must be a string, got 7",
        ),
        (
            r#"{"symbol":null,"price":2,"timestamp":1}"#,
            "symbol.invalid",
            "got null",
        ),
        (
            r#"{"symbol":["X"],"price":2,"timestamp":1}"#,
            "symbol.invalid",
            "got an array",
        ),
        // price
        (
            r#"{"symbol":"X","price":"151.25","timestamp":1}"#,
            "price.invalid",
            r#"price: must be a JSON number, got string "151.25""#,
        ),
        (
            r#"{"symbol":"X","price":"NaN","timestamp":1}"#,
            "price.invalid",
            "must be a JSON number",
        ),
        (
            r#"{"symbol":"X","price":NaN,"timestamp":1}"#,
            "price.malformed",
            "price: not valid JSON",
        ),
        (
            r#"{"symbol":"X","price":Infinity,"timestamp":1}"#,
            "price.malformed",
            "price: not valid JSON",
        ),
        (
            r#"{"symbol":"X","price":1e400,"timestamp":1}"#,
            "price.malformed",
            "price: not valid JSON",
        ),
        (
            r#"{"symbol":"X","price":0,"timestamp":1}"#,
            "price.invalid",
            "must be greater than 0, got 0",
        ),
        (
            r#"{"symbol":"X","price":-0,"timestamp":1}"#,
            "price.invalid",
            "must be greater than 0",
        ),
        (
            r#"{"symbol":"X","price":-0.0,"timestamp":1}"#,
            "price.invalid",
            "must be greater than 0",
        ),
        (
            r#"{"symbol":"X","price":-3.5,"timestamp":1}"#,
            "price.invalid",
            "got -3.5",
        ),
        (
            r#"{"symbol":"X","price":1e12,"timestamp":1}"#,
            "price.invalid",
            "must be below 1e12",
        ),
        (
            r#"{"symbol":"X","price":18446744073709551616,"timestamp":1}"#,
            "price.invalid",
            "must be below 1e12",
        ),
        (
            r#"{"symbol":"X","price":true,"timestamp":1}"#,
            "price.invalid",
            "got true",
        ),
        (
            r#"{"symbol":"X","price":null,"timestamp":1}"#,
            "price.invalid",
            "got null",
        ),
        (
            r#"{"symbol":"X","price":{"v":1},"timestamp":1}"#,
            "price.invalid",
            "got an object",
        ),
        // timestamp
        (
            r#"{"symbol":"X","price":2,"timestamp":-1}"#,
            "timestamp.invalid",
            "between 1970-01-01 and 2100-01-01",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":4102444800000}"#,
            "timestamp.invalid",
            "got 4102444800000",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":18446744073709551615}"#,
            "timestamp.invalid",
            "timestamp: must be between 1970-01-01 and 2100-01-01 (epoch milliseconds), got 18446744073709551615",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1.5}"#,
            "timestamp.invalid",
            "timestamp: must be an integer of epoch milliseconds, not a float, got 1.5",
        ),
        // A float is refused even when integral, and the message shows it was one.
        (
            r#"{"symbol":"X","price":2,"timestamp":1767225600000.0}"#,
            "timestamp.invalid",
            "timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.0",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1e3}"#,
            "timestamp.invalid",
            "must be an integer of epoch milliseconds, not a float, got 1000.0",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":-0.0}"#,
            "timestamp.invalid",
            "not a float, got -0.0",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1e300}"#,
            "timestamp.invalid",
            "not a float, got 1e300",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":true}"#,
            "timestamp.invalid",
            "must be an RFC 3339 string or an integer of epoch milliseconds within 1970-2100, got true",
        ),
        (
            r#"{"symbol":1.0,"price":2,"timestamp":1}"#,
            "symbol.invalid",
            "symbol: must be a string, got 1.0",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"1795703400123"}"#,
            "timestamp.invalid",
            "must be RFC 3339",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00"}"#,
            "timestamp.invalid",
            "no UTC offset",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26"}"#,
            "timestamp.invalid",
            "must be RFC 3339",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-13-01T00:00:00Z"}"#,
            "timestamp.invalid",
            "month outside",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-02-29T00:00:00Z"}"#,
            "timestamp.invalid",
            "day that does not exist",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-04-31T00:00:00Z"}"#,
            "timestamp.invalid",
            "day that does not exist",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T24:00:00Z"}"#,
            "timestamp.invalid",
            "hour or minute",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-12-31T23:59:60Z"}"#,
            "timestamp.invalid",
            "leap second",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00.Z"}"#,
            "timestamp.invalid",
            "without fractional digits",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00.1234567891Z"}"#,
            "timestamp.invalid",
            "more than 9",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00+0100"}"#,
            "timestamp.invalid",
            "malformed UTC offset",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026-11-26T14:30:00+24:00"}"#,
            "timestamp.invalid",
            "offset out of range",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2100-01-01T00:00:00Z"}"#,
            "timestamp.invalid",
            "between 1970-01-01 and 2100-01-01",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"1970-01-01T00:00:00+00:01"}"#,
            "timestamp.invalid",
            "between 1970",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"1969-12-31T23:59:59Z"}"#,
            "timestamp.invalid",
            "between 1970",
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":null}"#,
            "timestamp.invalid",
            "got null",
        ),
    ];
    for &(body, code, needle) in cases {
        let error = err(body.as_bytes());
        let message = error.to_string();
        assert_eq!(error.code(), code, "{body}: {message}");
        assert!(
            message.contains(needle),
            "{body}: {message:?} should contain {needle:?}"
        );
    }
}

#[test]
fn rejects_bodies_by_size_and_encoding() {
    let padding = "x".repeat(TICK_BODY_BYTES_MAX);
    let huge = format!(r#"{{"symbol":"X","price":2,"timestamp":1,"pad":"{padding}"}}"#);
    assert_eq!(
        err(huge.as_bytes()),
        TickError::TooLarge { bytes: huge.len() }
    );

    let exactly = {
        let base = r#"{"symbol":"X","price":2,"timestamp":1,"pad":""}"#;
        let fill = "y".repeat(TICK_BODY_BYTES_MAX - base.len());
        format!(r#"{{"symbol":"X","price":2,"timestamp":1,"pad":"{fill}"}}"#)
    };
    assert_eq!(exactly.len(), TICK_BODY_BYTES_MAX);
    assert!(
        Tick::decode(exactly.as_bytes()).is_ok(),
        "a body of exactly the limit is accepted"
    );

    assert_eq!(
        err(b"{\"symbol\":\"X\xff\"}"),
        TickError::NotUtf8 { offset: 12 }
    );
    // Invalid UTF-8 in an ignored field, after a complete tick in the common shape: still refused.
    assert_eq!(
        err(b"{\"symbol\":\"X\",\"price\":2,\"timestamp\":1,\"note\":\"\xc3\x28\"}"),
        TickError::NotUtf8 { offset: 46 }
    );

    // Deep nesting is skipped without recursion: harmless in an ignored field, rejected by type in
    // a known one, and never a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let ignored = format!(r#"{{"symbol":"X","price":2,"timestamp":1,"d":{deep}}}"#);
    assert!(Tick::decode(ignored.as_bytes()).is_ok());
    let in_price = format!(r#"{{"symbol":"X","price":{deep},"timestamp":1}}"#);
    assert_eq!(err(in_price.as_bytes()).code(), "price.invalid");
    assert_eq!(err(deep.as_bytes()).code(), "body.not_object");

    let many: String = (0..=TICK_FIELDS_MAX)
        .map(|i| format!(r#""f{i}":0,"#))
        .collect();
    let body = format!(r#"{{{many}"symbol":"X","price":2,"timestamp":1}}"#);
    assert_eq!(err(body.as_bytes()), TickError::TooManyFields);
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "Z".repeat(10_000);
    let message =
        err(format!(r#"{{"symbol":"{long}","price":2,"timestamp":1}}"#).as_bytes()).to_string();
    assert!(message.len() < 300, "{message}");
    assert!(message.contains('…'));
}

#[test]
fn numbers_in_messages_are_compact() {
    // (body, the whole message)
    let cases: &[(&str, &str)] = &[
        (
            r#"{"symbol":"X","price":1e300,"timestamp":1}"#,
            "price: must be below 1e12, got 1e300",
        ),
        (
            r#"{"symbol":"X","price":1e-300,"timestamp":1}"#,
            "price: must be at least 1e-12, got 1e-300",
        ),
        (
            r#"{"symbol":"X","price":2.5e-13,"timestamp":1}"#,
            "price: must be at least 1e-12, got 2.5e-13",
        ),
        (
            r#"{"symbol":"X","price":-1.7976931348623157e308,"timestamp":1}"#,
            "price: must be greater than 0, got -1.7976931348623157e308",
        ),
        (
            r#"{"symbol":"X","price":1234567890123456,"timestamp":1}"#,
            "price: must be below 1e12, got 1234567890123456",
        ),
        (
            r#"{"symbol":"X","price":-0.000001,"timestamp":1}"#,
            "price: must be greater than 0, got -0.000001",
        ),
    ];
    for &(body, expected) in cases {
        assert_eq!(err(body.as_bytes()).to_string(), expected, "{body}");
    }
}

#[test]
fn input_is_quoted_with_control_characters_escaped() {
    // JSON cannot carry a raw ESC inside a string, only the `\u001b` escape: once decoded, the
    // character must come back escaped, never raw. (body, text the message must contain)
    let cases: &[(&str, &str)] = &[
        (
            r#"{"symbol":"A\u001b[31mX","price":2,"timestamp":1}"#,
            r#"symbol: has U+001B at position 2; allowed are A-Z a-z 0-9 . _ - : /, got "A\u{1b}[31mX""#,
        ),
        (
            r#"{"symbol":"X","price":"1\u001b[0m","timestamp":1}"#,
            r#"price: must be a JSON number, got string "1\u{1b}[0m""#,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":"2026\u001b]0;pwned\u0007"}"#,
            r#"got "2026\u{1b}]0;pwned\u{7}""#,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1,"k\u001b":1,"k\u001b":2}"#,
            r#""k\u{1b}": key appears more than once"#,
        ),
        (
            r#"{"symbol":"X","price":2,"timestamp":1,"k\u009b":1,"k\u009b":2}"#,
            r#""k\u{9b}": key appears more than once"#,
        ),
        (
            r#"{"symbol":"AAPL\u202e","price":2,"timestamp":1}"#,
            r#"got "AAPL\u{202e}""#,
        ),
        // Raw control characters are a JSON syntax error, reported without echoing them.
        (
            "{\"symbol\":\"A\u{1b}[31m\",\"price\":2,\"timestamp\":1}",
            "symbol: not valid JSON: control character",
        ),
    ];
    for &(body, needle) in cases {
        let message = err(body.as_bytes()).to_string();
        assert!(
            message.contains(needle),
            "{body}: {message:?} should contain {needle:?}"
        );
        assert!(
            !message.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{body}: {message:?} has a raw control character"
        );
    }
}

#[test]
fn escaping_helpers() {
    let cases: &[(&str, &str)] = &[
        (
            "plain text, \"quotes\" and \\ stay",
            "plain text, \"quotes\" and \\ stay",
        ),
        ("Börse €", "Börse €"),
        ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
        ("tab\there\nnewline", "tab\\there\\nnewline"),
        ("\u{9b}31m", "\\u{9b}31m"),
        ("rtl\u{202e}x\u{200b}", "rtl\\u{202e}x\\u{200b}"),
        ("\u{feff}bom", "\\u{feff}bom"),
    ];
    for &(text, expected) in cases {
        assert_eq!(escape_controls(text), expected, "{text:?}");
    }
    assert_eq!(quote("a\u{1b}b"), r#""a\u{1b}b""#);
    let long = "é".repeat(VALUE_ECHO_CHARS_MAX + 1);
    assert_eq!(
        quote(&long),
        format!("\"{}…\"", "é".repeat(VALUE_ECHO_CHARS_MAX))
    );
    assert_eq!(
        quote(&long[2..]),
        format!("{:?}", &long[2..]),
        "exactly the limit is not cut"
    );
}

#[test]
fn csv_fields_follow_the_same_rules() {
    let cases: &[(&str, &str, &str, Result<(f64, i64), &str>)] = &[
        (
            "AAPL",
            "151.25",
            "2026-11-26T14:30:00.123Z",
            Ok((151.25, 1_795_703_400_123)),
        ),
        (
            "AAPL",
            "151",
            "1795703400123",
            Ok((151.0, 1_795_703_400_123)),
        ),
        ("AAPL", "1.5e2", "0", Ok((150.0, 0))),
        ("AAPL", "NaN", "1", Err("price.invalid")),
        ("AAPL", "inf", "1", Err("price.invalid")),
        ("AAPL", "-inf", "1", Err("price.invalid")),
        ("AAPL", "0x10", "1", Err("price.invalid")),
        ("AAPL", "01", "1", Err("price.invalid")),
        ("AAPL", "1.", "1", Err("price.invalid")),
        ("AAPL", ".5", "1", Err("price.invalid")),
        ("AAPL", "1e400", "1", Err("price.invalid")),
        ("AAPL", "", "1", Err("price.invalid")),
        ("AAPL", "-2", "1", Err("price.invalid")),
        ("", "2", "1", Err("symbol.invalid")),
        ("A B", "2", "1", Err("symbol.invalid")),
        ("AAPL", "2", "", Err("timestamp.invalid")),
        ("AAPL", "2", "-5", Err("timestamp.invalid")),
        ("AAPL", "2", "007", Err("timestamp.invalid")),
        ("AAPL", "2", "yesterday", Err("timestamp.invalid")),
        ("AAPL", "2", "1767225600000.0", Err("timestamp.invalid")),
        ("AAPL", "2", "1e3", Err("timestamp.invalid")),
        ("AAPL", "2", "-0", Ok((2.0, 0))),
        ("AAPL", "18446744073709551616", "1", Err("price.invalid")),
        ("AAPL", "1e-400", "1", Err("price.invalid")),
        ("AAPL", "-1e400", "1", Err("price.invalid")),
    ];
    for (symbol, price, timestamp, expected) in cases {
        let result = Tick::from_csv_fields(symbol, price, timestamp, None);
        match (result, expected) {
            (Ok(tick), Ok((p, at))) => {
                assert_eq!(
                    (tick.price.get(), tick.at.epoch_ms()),
                    (*p, *at),
                    "{symbol},{price},{timestamp}"
                );
            }
            (Err(e), Err(code)) => assert_eq!(e.code(), *code, "{symbol},{price},{timestamp}: {e}"),
            (got, want) => panic!("{symbol},{price},{timestamp}: got {got:?}, want {want:?}"),
        }
    }
}

/// The full parser alone, without the fast path.
fn full_parser(body: &str) -> Result<Tick, TickError> {
    Tick::try_from(RawTick::from_json(body)?)
}

#[test]
fn accepts_volumes_on_both_paths() {
    // (the fields after `"symbol":"X","price":2,"timestamp":1`, the volume, whether the fast path
    // takes the tick itself rather than leaving it to the full parser)
    let cases: &[(&str, f64, bool)] = &[
        ("", 0.0, true),
        (r#","volume":0"#, 0.0, true),
        (r#","volume":12"#, 12.0, true),
        (r#","volume":1.5e3"#, 1500.0, true),
        (r#","volume":0.25"#, 0.25, true),
        (r#","volume":1E+2"#, 100.0, true),
        (r#","volume":1e15"#, 1e15, true),
        (r#","volume":1000000000000000"#, 1e15, true),
        (r#","volume":1e-400"#, 0.0, true),
        (r#" , "volume" : 300 , "exchange":"XNAS""#, 300.0, true),
        // Negative zero is zero; the fast path leaves every `-` to the full parser.
        (r#","volume":-0"#, 0.0, false),
        (r#","volume":-0.0"#, 0.0, false),
        // An escaped key is the same key.
        (r#","v\u006flume":7"#, 7.0, false),
    ];
    for &(rest, volume, fast) in cases {
        let body = format!(r#"{{"symbol":"X","price":2,"timestamp":1{rest}}}"#);
        let tick = ok(&body);
        assert_eq!(tick.volume.get().to_bits(), volume.to_bits(), "{body}");
        assert_eq!(
            full_parser(&body),
            Ok(tick),
            "{body}: the full parser agrees"
        );
        assert_eq!(
            fast::decode(body.as_bytes()),
            fast.then_some(tick),
            "{body}: fast path"
        );
    }
    // The volume may come first, too.
    let body = r#"{"volume":5,"symbol":"X","price":2,"timestamp":1}"#;
    assert_eq!(ok(body).volume.get(), 5.0);
    assert_eq!(fast::decode(body.as_bytes()), Some(ok(body)));
}

#[test]
fn rejects_volumes_naming_the_field() {
    // (the volume value, error code, the whole message)
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""12""#,
            "volume.invalid",
            r#"volume: must be a JSON number, got string "12""#,
        ),
        (
            r#""""#,
            "volume.invalid",
            r#"volume: must be a JSON number, got string """#,
        ),
        (
            "null",
            "volume.invalid",
            "volume: must be a JSON number, got null",
        ),
        (
            "true",
            "volume.invalid",
            "volume: must be a JSON number, got true",
        ),
        (
            "false",
            "volume.invalid",
            "volume: must be a JSON number, got false",
        ),
        (
            "[300]",
            "volume.invalid",
            "volume: must be a JSON number, got an array",
        ),
        (
            r#"{"n":300}"#,
            "volume.invalid",
            "volume: must be a JSON number, got an object",
        ),
        ("-1", "volume.invalid", "volume: must be at least 0, got -1"),
        (
            "-0.5",
            "volume.invalid",
            "volume: must be at least 0, got -0.5",
        ),
        (
            "-1e300",
            "volume.invalid",
            "volume: must be at least 0, got -1e300",
        ),
        (
            "1000000000000001",
            "volume.invalid",
            "volume: must be at most 1e15, got 1000000000000001",
        ),
        (
            "1e16",
            "volume.invalid",
            "volume: must be at most 1e15, got 1e16",
        ),
        (
            "18446744073709551616",
            "volume.invalid",
            "volume: must be at most 1e15, got 1.8446744073709552e19",
        ),
        (
            "1e400",
            "volume.malformed",
            "volume: not valid JSON: number out of range at line 1 column 52",
        ),
        (
            "NaN",
            "volume.malformed",
            "volume: not valid JSON: expected value at line 1 column 48",
        ),
        (
            "Infinity",
            "volume.malformed",
            "volume: not valid JSON: expected value at line 1 column 48",
        ),
    ];
    for &(value, code, message) in cases {
        let body = format!(r#"{{"symbol":"X","price":2,"timestamp":1,"volume":{value}}}"#);
        let error = err(body.as_bytes());
        assert_eq!(error.code(), code, "{body}: {error}");
        assert_eq!(error.to_string(), message, "{body}");
        assert_eq!(error.field(), Some(Field::Volume), "{body}");
        assert_eq!(
            full_parser(&body),
            Err(error),
            "{body}: the full parser agrees"
        );
        assert_eq!(fast::decode(body.as_bytes()), None, "{body}: fast path");
    }
    // Duplicates are refused like any other repeated key, on both paths.
    for body in [
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1,"volume":1}"#,
        r#"{"symbol":"X","price":2,"timestamp":1,"volume":1,"v\u006flume":2}"#,
    ] {
        let error = err(body.as_bytes());
        assert_eq!(error.code(), "body.duplicate_field", "{body}");
        assert_eq!(error.to_string(), "volume: key appears more than once");
        assert_eq!(fast::decode(body.as_bytes()), None, "{body}: fast path");
    }
    // The required fields come first: a bad volume does not hide a missing price.
    let error = err(br#"{"symbol":"X","timestamp":1,"volume":"12"}"#);
    assert_eq!(error.code(), "price.missing");
}

#[test]
fn volume_values_directly() {
    // (number, the result: the volume, or the whole message)
    let cases: &[(f64, Result<f64, &str>)] = &[
        (0.0, Ok(0.0)),
        (-0.0, Ok(0.0)),
        (12.0, Ok(12.0)),
        (VOLUME_MAX, Ok(1e15)),
        (f64::NAN, Err("volume: must be a finite number, got NaN")),
        (
            f64::INFINITY,
            Err("volume: must be a finite number, got inf"),
        ),
        (
            -f64::MIN_POSITIVE,
            Err("volume: must be at least 0, got -2.2250738585072014e-308"),
        ),
        (
            1e15 + 0.125,
            Err("volume: must be at most 1e15, got 1000000000000000.1"),
        ),
    ];
    for &(number, expected) in cases {
        match (Volume::new(number), expected) {
            (Ok(volume), Ok(want)) => {
                assert_eq!(volume.get().to_bits(), want.to_bits(), "{number}");
                assert_eq!(Volume::try_from(number), Ok(volume));
            }
            (Err(e), Err(message)) => {
                assert_eq!(e.to_string(), message, "{number}");
                assert_eq!(e.code(), "volume.invalid");
            }
            (got, want) => panic!("{number}: got {got:?}, want {want:?}"),
        }
    }
    assert_eq!(Volume::ZERO.get(), 0.0);
    let volume = Volume::new(1500.0).expect("valid");
    assert_eq!(volume.to_string(), "1500");
    assert_eq!(format!("{volume:?}"), "Volume(1500)");
    assert_eq!(Volume::new(-0.0).expect("valid").to_string(), "0");
    assert_eq!(
        serde_json::to_string(&volume).expect("serialises"),
        "1500.0"
    );
    assert_eq!(
        serde_json::from_str::<Volume>("-3")
            .expect_err("refused")
            .to_string(),
        "volume: must be at least 0, got -3"
    );
    assert_eq!(Field::Volume.name(), "volume");
    assert_eq!(Field::Volume.to_string(), "volume");
}

#[test]
fn csv_volume_cells() {
    // (the volume cell, `None` without a volume column; the volume, or the whole message)
    let cases: &[(Option<&str>, Result<f64, &str>)] = &[
        (None, Ok(0.0)),
        (Some(""), Ok(0.0)),
        (Some("0"), Ok(0.0)),
        (Some("-0"), Ok(0.0)),
        (Some("12"), Ok(12.0)),
        (Some("1.5e3"), Ok(1500.0)),
        (Some("1e15"), Ok(1e15)),
        (Some("1e-400"), Ok(0.0)),
        (
            Some("abc"),
            Err(r#"volume: must be a number like 300, got "abc""#),
        ),
        (
            Some("NaN"),
            Err(r#"volume: must be a number like 300, got "NaN""#),
        ),
        (
            Some("inf"),
            Err(r#"volume: must be a number like 300, got "inf""#),
        ),
        (
            Some("0x10"),
            Err(r#"volume: must be a number like 300, got "0x10""#),
        ),
        (
            Some("1,5"),
            Err(r#"volume: must be a number like 300, got "1,5""#),
        ),
        (
            Some("012"),
            Err(r#"volume: must be a number like 300, got "012""#),
        ),
        (
            Some("1\u{1b}[0m"),
            Err(r#"volume: must be a number like 300, got "1\u{1b}[0m""#),
        ),
        (Some("-1"), Err("volume: must be at least 0, got -1")),
        (
            Some("-1e400"),
            Err("volume: must be at least 0, got -1e400"),
        ),
        (Some("1e16"), Err("volume: must be at most 1e15, got 1e16")),
        (
            Some("1e400"),
            Err("volume: must be at most 1e15, got 1e400"),
        ),
    ];
    for &(cell, expected) in cases {
        let result = Tick::from_csv_fields("AAPL", "151.25", "1", cell);
        match (result, expected) {
            (Ok(tick), Ok(volume)) => {
                assert_eq!(tick.volume.get().to_bits(), volume.to_bits(), "{cell:?}");
            }
            (Err(e), Err(message)) => {
                assert_eq!(e.to_string(), message, "{cell:?}");
                assert_eq!(e.code(), "volume.invalid", "{cell:?}");
                assert_eq!(e.field(), Some(Field::Volume), "{cell:?}");
            }
            (got, want) => panic!("{cell:?}: got {got:?}, want {want:?}"),
        }
    }
    // The fields are checked in order: a bad volume does not hide a bad price.
    let error = Tick::from_csv_fields("AAPL", "0", "1", Some("-1")).expect_err("refused");
    assert_eq!(error.code(), "price.invalid");
}

#[test]
fn timestamps_format_as_fixed_width_utc() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_795_703_400_123, "2026-11-26T14:30:00.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ];
    for (epoch_ms, text) in cases {
        let at = Timestamp::from_epoch_ms(epoch_ms).expect("in range");
        assert_eq!(at.to_string(), text);
        assert_eq!(ms(text), epoch_ms, "round trip of {text}");
    }
}

#[test]
fn every_day_of_the_range_round_trips() {
    // One instant per day across 1970-2099 exercises the calendar arithmetic, leap years included.
    let day_ms = 86_400_000;
    let mut epoch_ms = 12 * 3_600_000 + 34 * 60_000 + 56_789;
    while epoch_ms < TIMESTAMP_MS_END {
        let at = Timestamp::from_epoch_ms(epoch_ms).expect("in range");
        assert_eq!(ms(&at.to_string()), epoch_ms);
        epoch_ms += day_ms;
    }
}

#[test]
fn symbols_round_trip_and_compare_as_text() {
    let a = Symbol::parse("AAPL").expect("valid");
    let b = Symbol::parse("AAPL").expect("valid");
    assert_eq!(a, b);
    assert_eq!(a.as_str(), "AAPL");
    assert_eq!(format!("{a}"), "AAPL");
    assert!(Symbol::parse("AAA").expect("valid") < a);
}

#[test]
fn numbers_parse_correctly_rounded_and_prices_round_trip() {
    // Regression (fuzz: tick_decode): without serde_json's float_roundtrip feature, 1e-34 parsed
    // one unit in the last place away from the correctly rounded value, so a decoded tick did not
    // survive re-encoding. The workspace enables the feature; this pins it.
    for text in [
        "1e-34",
        "0.1",
        "123456789.123456789",
        "2.2250738585072014e-308",
        "9007199254740993",
    ] {
        let parsed: f64 = serde_json::from_str(text).expect("a number");
        let exact: f64 = text.parse().expect("a float");
        assert_eq!(parsed.to_bits(), exact.to_bits(), "{text}");
    }
    for text in [
        "151.25",
        "0.1",
        "123456789.123456789",
        "1.0000000000000001e-10",
        "999999999999.99",
    ] {
        let tick = ok(&format!(
            r#"{{"symbol":"AAPL","price":{text},"timestamp":1}}"#
        ));
        let exact: f64 = text.parse().expect("a float");
        assert_eq!(tick.price.get().to_bits(), exact.to_bits(), "{text}");
        let encoded = serde_json::to_string(&tick.price).expect("serialises");
        let again = ok(&format!(
            r#"{{"symbol":"AAPL","price":{encoded},"timestamp":1}}"#
        ));
        assert_eq!(
            again.price.get().to_bits(),
            exact.to_bits(),
            "{text} -> {encoded}"
        );
    }
}

#[test]
fn symbols_order_as_their_text() {
    let long = "A".repeat(SYMBOL_LEN_MAX);
    let long_but_one = format!("{}B", "A".repeat(SYMBOL_LEN_MAX - 1));
    let sixteen = "ABCDEFGHIJKLMNOP";
    let texts = [
        "A",
        "AA",
        "AAPL",
        "AB",
        "a",
        "SYM000001",
        "SYM00001",
        "SYM1",
        "BRK.A",
        "BRK-B",
        "BRK/B",
        "BRK:B",
        "BRK_B",
        "0",
        "9",
        sixteen,
        "ABCDEFGHIJKLMNOPQ",
        "ABCDEFGHIJKLMNOO",
        long.as_str(),
        long_but_one.as_str(),
        &long[..SYMBOL_LEN_MAX - 1],
        &long[..17],
    ];
    for a in texts {
        for b in texts {
            let (x, y) = (
                Symbol::parse(a).expect("valid"),
                Symbol::parse(b).expect("valid"),
            );
            assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
        }
    }
}
