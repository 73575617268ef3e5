//! The pipeline's memory of symbol states between batches: a bounded map with CLOCK eviction.
//!
//! A remembered state is only the guess a batch's compare-and-set starts from, so forgetting one
//! is always safe; what eviction decides is how often a guess is missing. CLOCK keeps the
//! symbols used since the hand last passed them (hot symbols stay) at the cost of one bit per
//! entry, where starting over when full forgot the hot ones with the rest.

use foldhash::{HashMap, HashMapExt};

use crate::rules::SymbolState;
use crate::tick::Symbol;

/// One remembered state, and whether it was used since the hand last passed it.
#[derive(Debug)]
struct Slot {
    symbol: Symbol,
    state: SymbolState,
    referenced: bool,
}

/// At most `capacity` symbol states; a new one past that replaces one not used lately.
#[derive(Debug)]
pub(crate) struct StateCache {
    slots: Vec<Slot>,
    index: HashMap<Symbol, usize>,
    hand: usize,
    capacity: usize,
}

impl StateCache {
    /// An empty cache for at most `capacity` states (0: one that remembers nothing).
    pub(crate) fn new(capacity: usize) -> StateCache {
        StateCache {
            slots: Vec::new(),
            index: HashMap::new(),
            hand: 0,
            capacity,
        }
    }

    /// The state remembered for `symbol`, marking it used.
    pub(crate) fn get(&mut self, symbol: &Symbol) -> Option<&SymbolState> {
        let slot = &mut self.slots[*self.index.get(symbol)?];
        slot.referenced = true;
        Some(&slot.state)
    }

    /// Remembers `state` for `symbol`, evicting a state not used since the hand last came by if
    /// the cache is full.
    pub(crate) fn insert(&mut self, symbol: Symbol, state: SymbolState) {
        if self.capacity == 0 {
            return;
        }
        if let Some(&at) = self.index.get(&symbol) {
            self.slots[at].state = state;
            self.slots[at].referenced = true;
            return;
        }
        let slot = Slot {
            symbol,
            state,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            if self.slots.len() == self.slots.capacity() {
                // Doubling, but never past the capacity: a full cache holds no spare slots.
                let more = self
                    .slots
                    .len()
                    .max(16)
                    .min(self.capacity - self.slots.len());
                self.slots.reserve_exact(more);
            }
            self.index.insert(symbol, self.slots.len());
            self.slots.push(slot);
            return;
        }
        // Each pass clears the bits it finds set, so within two turns a slot is free.
        loop {
            self.hand %= self.slots.len();
            let candidate = &mut self.slots[self.hand];
            if !std::mem::replace(&mut candidate.referenced, false) {
                break;
            }
            self.hand += 1;
        }
        let evicted = std::mem::replace(&mut self.slots[self.hand], slot);
        self.index.remove(&evicted.symbol);
        self.index.insert(symbol, self.hand);
        self.hand += 1;
    }

    /// Forgets `symbol`'s state.
    pub(crate) fn remove(&mut self, symbol: &Symbol) {
        let Some(at) = self.index.remove(symbol) else {
            return;
        };
        self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(moved.symbol, at);
        }
    }

    /// How many states are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether `symbol` has a state, without marking it used.
    #[cfg(test)]
    fn contains(&self, symbol: &str) -> bool {
        self.index
            .contains_key(&Symbol::parse(symbol).expect("valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::Timestamp;

    fn sym(text: &str) -> Symbol {
        Symbol::parse(text).expect("valid")
    }

    fn state(ms: i64) -> SymbolState {
        SymbolState {
            last_seen: Timestamp::from_epoch_ms(ms).expect("valid"),
            rules: Vec::new(),
        }
    }

    fn seen(cache: &mut StateCache, symbol: &str) -> Option<i64> {
        cache.get(&sym(symbol)).map(|s| s.last_seen.epoch_ms())
    }

    #[test]
    fn each_step_keeps_what_it_should() {
        // (operation, symbol, then the symbols expected present and absent after it), capacity 3.
        enum Op {
            Put(i64),
            Get,
            Remove,
        }
        let steps: &[(Op, &str, &[&str], &[&str])] = &[
            (Op::Put(1), "A", &["A"], &[]),
            (Op::Put(2), "B", &["A", "B"], &[]),
            (Op::Put(3), "C", &["A", "B", "C"], &[]),
            // Full, nothing used since it was put: the hand evicts where it stands.
            (Op::Put(4), "D", &["B", "C", "D"], &["A"]),
            // B is used now; C is not (the last turn cleared it): C goes, B stays.
            (Op::Get, "B", &["B", "C", "D"], &["A"]),
            (Op::Put(5), "E", &["B", "D", "E"], &["A", "C"]),
            // Replacing a present state evicts nothing.
            (Op::Put(6), "E", &["B", "D", "E"], &["A", "C"]),
            (Op::Remove, "D", &["B", "E"], &["A", "C", "D"]),
            (Op::Put(7), "F", &["B", "E", "F"], &["A", "C", "D"]),
            (Op::Remove, "Z", &["B", "E", "F"], &["A", "C", "D", "Z"]),
        ];
        let mut cache = StateCache::new(3);
        for (i, (op, symbol, present, absent)) in steps.iter().enumerate() {
            match op {
                Op::Put(ms) => cache.insert(sym(symbol), state(*ms)),
                Op::Get => {
                    seen(&mut cache, symbol);
                }
                Op::Remove => cache.remove(&sym(symbol)),
            }
            assert_eq!(cache.len(), present.len(), "step {i}");
            assert_eq!(
                cache.index.len(),
                present.len(),
                "step {i}: the index follows"
            );
            for symbol in *absent {
                assert!(!cache.contains(symbol), "step {i}: {symbol}");
            }
            for symbol in *present {
                assert!(cache.contains(symbol), "step {i}: {symbol}");
            }
        }
        assert_eq!(seen(&mut cache, "E"), Some(6), "the newest state of E");
    }

    #[test]
    fn a_hot_symbol_survives_a_stream_of_cold_ones() {
        let mut cache = StateCache::new(100);
        for n in 0..10_000 {
            cache.insert(sym(&format!("COLD{n}")), state(n));
            assert!(
                seen(&mut cache, "HOT").is_some() || n == 0,
                "evicted at {n}"
            );
            if n == 0 {
                cache.insert(sym("HOT"), state(0));
            }
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.index.len(), 100, "the index follows the slots");
    }

    #[test]
    fn a_cache_of_no_capacity_remembers_nothing() {
        let mut cache = StateCache::new(0);
        cache.insert(sym("AAPL"), state(1));
        cache.insert(sym("AAPL"), state(2));
        assert_eq!((seen(&mut cache, "AAPL"), cache.len()), (None, 0));
        cache.remove(&sym("AAPL"));
    }
}
