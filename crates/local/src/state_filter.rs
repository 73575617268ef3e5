//! Which symbols may have a stored state: a Bloom filter over the `symbol_state` table, so that
//! reading states ahead ([`crate::SqliteStore`]'s `StateStore::load`) skips the symbols the table
//! cannot hold. On a fresh database that is every symbol's first tick: with a million symbols,
//! 865,000 of the 2,000,000 reads of the benchmark found nothing.
//!
//! It never says "absent" of a symbol it was built from or was told of since. A symbol another
//! process stores afterwards may be missed; then the pipeline guesses "no state" and the
//! compare-and-set corrects it, as it would without the read ahead. So the filter can only cost
//! a read or a round, never an answer.

use std::hash::BuildHasher;

use tickwatch_core::Symbol;

/// Bits a filter has at least (1 MiB): about a 3 % chance of a futile read at a million symbols.
pub(crate) const STATE_FILTER_BITS_MIN: usize = 1 << 23;

/// Bits per symbol the table held when the filter was built.
const BITS_PER_SYMBOL: usize = 8;

/// Bits set per symbol.
const PROBES: u64 = 3;

/// A Bloom filter of symbols.
#[derive(Debug)]
pub(crate) struct StateFilter {
    words: Vec<u64>,
    /// `bits - 1`, the number of bits being a power of two.
    mask: u64,
    hasher: foldhash::fast::FixedState,
}

impl StateFilter {
    /// An empty filter sized for `symbols` (and room to grow: at least [`STATE_FILTER_BITS_MIN`]).
    pub(crate) fn with_capacity(symbols: usize) -> StateFilter {
        let bits = symbols
            .saturating_mul(BITS_PER_SYMBOL)
            .max(STATE_FILTER_BITS_MIN)
            .next_power_of_two();
        StateFilter {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
            hasher: foldhash::fast::FixedState::with_seed(0x7469_636b_7761_7463),
        }
    }

    /// Notes that `symbol` has a stored state.
    pub(crate) fn insert(&mut self, symbol: &Symbol) {
        for bit in self.bits(symbol) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether `symbol` may have a stored state; `false` only if it was never inserted.
    pub(crate) fn may_contain(&self, symbol: &Symbol) -> bool {
        self.bits(symbol)
            .into_iter()
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// The bits of `symbol`: double hashing from one 64-bit hash.
    fn bits(&self, symbol: &Symbol) -> [u64; PROBES as usize] {
        let hash = self.hasher.hash_one(symbol);
        let (first, step) = (hash, (hash >> 32) | 1);
        std::array::from_fn(|i| first.wrapping_add(step.wrapping_mul(i as u64)) & self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(n: usize) -> Symbol {
        Symbol::parse(&format!("SYM{n:06}")).expect("valid")
    }

    #[test]
    fn never_forgets_a_symbol_and_rarely_imagines_one() {
        // (symbols inserted, largest share of other symbols it may claim)
        let cases = [(0, 0.0), (1, 0.001), (100_000, 0.01), (1_000_000, 0.05)];
        for (inserted, false_share_max) in cases {
            let mut filter = StateFilter::with_capacity(inserted);
            for n in 0..inserted {
                filter.insert(&symbol(n));
            }
            assert!(
                (0..inserted).all(|n| filter.may_contain(&symbol(n))),
                "{inserted}: an inserted symbol is always there"
            );
            let others = 100_000;
            let imagined = (0..others)
                .filter(|n| filter.may_contain(&symbol(inserted + n)))
                .count();
            assert!(
                imagined as f64 <= false_share_max * others as f64,
                "{inserted}: {imagined} of {others} symbols never inserted seem present"
            );
        }
    }

    #[test]
    fn sized_for_the_table_it_is_built_from() {
        assert_eq!(
            StateFilter::with_capacity(0).words.len() * 64,
            STATE_FILTER_BITS_MIN
        );
        assert_eq!(
            StateFilter::with_capacity(10_000_000).words.len() * 64,
            (10_000_000 * BITS_PER_SYMBOL).next_power_of_two()
        );
    }
}
