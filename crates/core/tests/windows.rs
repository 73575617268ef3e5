//! Window conditions at volume: a symbol's window state stays bounded whatever the tick rate,
//! and it survives every store's codec on the way.

use tickwatch_core::rules::{
    Cursor, RuleBook, RuleDoc, SymbolState, WINDOW_INTERVALS, decode_rule_states,
    encode_rule_states,
};
use tickwatch_core::{Price, Rule, Symbol, Tick, Timestamp, Volume};

/// Ticks fed in the bounded-size test.
const TICKS: u64 = 1_000_000;

fn rule(json: &str) -> Rule {
    Rule::from_doc(RuleDoc::from_json(json).expect("valid JSON")).expect("valid rule")
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn window_state_stays_bounded_over_a_million_ticks() {
    let rules = vec![
        rule(r#"{"id":"rise-5","symbols":"*","condition":"rise 5% within 1h","fire":"enter"}"#),
        rule(
            r#"{"id":"volume-3","symbols":"*","condition":"volume 3x over 15m","fire":"every","cooldown_seconds":60}"#,
        ),
        rule(r#"{"id":"ma-4h","symbols":"*","condition":"crosses_ma 4h","fire":"every"}"#),
    ];
    // Per rule: 19 bytes of firing state (the window tag included) plus its id, 22 of window
    // header and at most one f64 per interval.
    let bound: usize = 3 + rules
        .iter()
        .map(|r| 19 + r.id().as_str().len() + 22 + 8 * WINDOW_INTERVALS)
        .sum::<usize>();
    let book = RuleBook::new(rules).expect("valid book");
    let symbol = Symbol::parse("BUSY").expect("valid");
    let symbol_rules = book.for_symbol(&symbol);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state: Option<SymbolState> = None;
    let mut at_ms: i64 = 1_795_700_000_000;
    let mut price = 100.0f64;
    let (mut largest, mut alerts, mut stale) = (0usize, 0u64, 0u64);
    let mut fed = 0;
    while fed < TICKS {
        // One "batch" of up to 500 ticks against the stored state, as the pipeline does.
        let mut cursor = Cursor::new(&symbol_rules, state.as_ref());
        for _ in 0..500 {
            let r = rng.next();
            // Mostly under 200 ms apart (hundreds of ticks per interval, 28 hours in all), 1 % late,
            // 1 % duplicated, and twice or so a gap of hours.
            let tick_ms = match r % 1_000_000 {
                0..=9_999 => at_ms - ((r >> 20) % 5000) as i64,
                10_000..=19_999 => at_ms,
                20_000..=20_001 => {
                    at_ms += 3 * 3_600_000;
                    at_ms
                }
                _ => {
                    at_ms += ((r >> 10) % 200) as i64;
                    at_ms
                }
            };
            price = (price * (1.0 + ((r >> 30) % 2001) as f64 / 1e5 - 0.01)).clamp(1.0, 1e6);
            let tick = Tick {
                symbol,
                price: Price::new((price * 100.0).round() / 100.0).expect("valid"),
                at: Timestamp::from_epoch_ms(tick_ms).expect("valid"),
                volume: Volume::new(((r >> 40) % 500) as f64).expect("valid"),
            };
            let evaluation = cursor.step(&tick);
            alerts += evaluation.fired.len() as u64;
            stale += u64::from(evaluation.stale);
            fed += 1;
        }
        if let Some(next) = cursor.finish() {
            let bytes = encode_rule_states(&next.rules);
            largest = largest.max(bytes.len());
            assert!(
                bytes.len() <= bound,
                "{} bytes after {fed} ticks; the bound is {bound}",
                bytes.len()
            );
            let rules = decode_rule_states(&bytes).expect("decodes");
            assert_eq!(rules, next.rules, "the codec keeps the windows exactly");
            state = Some(SymbolState {
                last_seen: next.last_seen,
                rules,
            });
        }
    }
    println!("largest state {largest} bytes (bound {bound}); {alerts} alerts, {stale} stale ticks");
    assert!(alerts > 0, "the rules fired");
    assert!(stale > 0, "late and duplicated ticks were fed");
    assert_eq!(
        largest, bound,
        "every interval of every window filled at times"
    );
}
