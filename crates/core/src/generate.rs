//! Realistic test ticks: a seeded, mean-reverting random walk per symbol whose prices wander
//! across the default thresholds (50 and 150), so both kinds of alert happen.

use std::io::Write;

use crate::retry::Rng;
use crate::tick::{Price, Symbol, Tick, Timestamp, Volume};

/// Most symbols a walk may have (their names and walks are kept in memory).
pub const WALK_SYMBOLS_MAX: usize = 1_000_000;

/// Well-known tickers used for the first symbols, so generated data reads like a market feed.
const TICKERS: [&str; 16] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V", "XOM", "UNH",
    "JNJ", "WMT", "PG", "MA",
];
const EXCHANGES: [&str; 4] = ["XNAS", "XNYS", "ARCX", "BATS"];

/// Log-price mean the walks revert to (price 100: the middle of the default band).
const MEAN_LOG_PRICE: f64 = 4.605_170_185_988_091; // ln(100)
/// Per-tick volatility of the log price.
const VOLATILITY: f64 = 0.03;
/// Per-tick pull back towards the mean (keeps prices in a realistic range).
const REVERSION: f64 = 0.002;
/// Largest gap between consecutive ticks, in milliseconds.
const TICK_GAP_MS_MAX: u64 = 50;

/// One generated tick with the extra fields a real feed carries.
#[derive(Clone, Copy, Debug)]
pub struct GeneratedTick {
    /// The tick, as decoding its NDJSON line gives it (its volume included).
    pub tick: Tick,
    /// Shares traded: `tick.volume` as the integer the NDJSON line spells.
    pub volume: u32,
    /// Market identifier code.
    pub exchange: &'static str,
}

impl GeneratedTick {
    /// Appends the tick as one NDJSON line.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            out,
            r#"{{"symbol":"{}","price":{},"timestamp":"{}","volume":{},"exchange":"{}"}}"#,
            self.tick.symbol, self.tick.price, self.tick.at, self.volume, self.exchange
        );
    }
}

/// An endless, reproducible stream of ticks over `symbols` symbols, in timestamp order.
#[derive(Clone, Debug)]
pub struct RandomWalk {
    rng: Rng,
    symbols: Vec<Symbol>,
    log_prices: Vec<f64>,
    now_ms: i64,
}

impl RandomWalk {
    /// A walk over `symbol_count` symbols (1 to [`WALK_SYMBOLS_MAX`]) starting at `start`.
    pub fn new(symbol_count: usize, seed: u64, start: Timestamp) -> RandomWalk {
        assert!(
            (1..=WALK_SYMBOLS_MAX).contains(&symbol_count),
            "symbol count must be 1..={WALK_SYMBOLS_MAX}"
        );
        let mut rng = Rng::seeded(seed);
        let symbols = (0..symbol_count)
            .map(|i| {
                let name = TICKERS
                    .get(i)
                    .map_or_else(|| format!("SYM{i:06}"), |t| (*t).to_owned());
                Symbol::parse(&name).expect("generated symbol names are valid")
            })
            .collect();
        // Start anywhere in 60..140: inside the band, a few random steps from either threshold.
        let log_prices = (0..symbol_count)
            .map(|_| (60.0 + 80.0 * rng.unit()).ln())
            .collect();
        RandomWalk {
            rng,
            symbols,
            log_prices,
            now_ms: start.epoch_ms(),
        }
    }
}

impl Iterator for RandomWalk {
    type Item = GeneratedTick;

    fn next(&mut self) -> Option<GeneratedTick> {
        self.now_ms += 1 + self.rng.below(TICK_GAP_MS_MAX) as i64;
        let at = Timestamp::from_epoch_ms(self.now_ms).ok()?;
        let i = self.rng.below(self.symbols.len() as u64) as usize;
        let x = &mut self.log_prices[i];
        *x += REVERSION * (MEAN_LOG_PRICE - *x) + VOLATILITY * self.rng.normal();
        let cents = (x.exp() * 100.0).round().max(1.0);
        let price =
            Price::new(cents / 100.0).expect("walk prices stay positive and far below the cap");
        // Drawn before the exchange, in the order the output has always been drawn in: the same
        // seed must keep giving the same bytes.
        let volume = 1 + self.rng.below(1_000) as u32 * 100;
        Some(GeneratedTick {
            tick: Tick {
                symbol: self.symbols[i],
                price,
                at,
                volume: Volume::new(f64::from(volume))
                    .expect("generated volumes are far below the cap"),
            },
            volume,
            exchange: EXCHANGES[self.rng.below(EXCHANGES.len() as u64) as usize],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Timestamp {
        Timestamp::parse_rfc3339("2026-01-02T14:30:00Z").expect("valid")
    }

    #[test]
    fn same_seed_same_ticks() {
        let a: Vec<_> = RandomWalk::new(5, 9, start())
            .take(100)
            .map(|g| g.tick)
            .collect();
        let b: Vec<_> = RandomWalk::new(5, 9, start())
            .take(100)
            .map(|g| g.tick)
            .collect();
        let c: Vec<_> = RandomWalk::new(5, 10, start())
            .take(100)
            .map(|g| g.tick)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn walks_cross_both_thresholds_and_stay_ordered() {
        let ticks: Vec<_> = RandomWalk::new(8, 1, start())
            .take(50_000)
            .map(|g| g.tick)
            .collect();
        assert!(
            ticks.windows(2).all(|w| w[0].at < w[1].at),
            "strictly increasing time"
        );
        assert!(
            ticks.iter().any(|t| t.price.get() > 150.0),
            "some prices above 150"
        );
        assert!(
            ticks.iter().any(|t| t.price.get() < 50.0),
            "some prices below 50"
        );
        assert!(
            ticks.iter().all(|t| t.price.get() < 10_000.0),
            "no runaway prices"
        );
    }

    #[test]
    fn ndjson_lines_decode_back_to_the_same_tick() {
        for generated in RandomWalk::new(20, 3, start()).take(1_000) {
            let mut line = Vec::new();
            generated.write_ndjson(&mut line);
            assert_eq!(line.last(), Some(&b'\n'));
            let decoded = Tick::decode(&line[..line.len() - 1]).expect("generated ticks are valid");
            assert_eq!(decoded, generated.tick);
        }
    }
}
