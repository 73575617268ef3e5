//! The rules in force, compiled for fast matching, and the evaluation of a symbol's ticks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::RulesError;
use super::model::{Fire, Rule, RuleId, Test};
use super::state::{Phase, RuleState, SymbolState};
use crate::alert::AlertKind;
use crate::tick::{Symbol, Tick, Timestamp};

/// Most rules in force at once (a legacy rules file with every override it may hold makes two
/// per symbol).
pub const RULES_MAX: usize = 2 * super::RULE_OVERRIDES_MAX + 2;

/// Most symbols whose rule lists a [`RuleBook`] keeps compiled; past it the cache starts over
/// (compiling again is always correct, just slower).
pub const COMPILED_SYMBOLS_MAX: usize = 100_000;

/// The rules in force, indexed so that finding a symbol's rules costs a few hash lookups however
/// many rules there are: one for its exact rules, one per distinct prefix length for its prefix
/// rules, and the `*` rules. Each symbol's list is compiled once and kept. Paused rules are in
/// the lists (their state must survive the pause) but never fire.
#[derive(Debug)]
pub struct RuleBook {
    rules: Vec<Arc<Rule>>,
    exact: HashMap<Symbol, Vec<u32>>,
    prefix: HashMap<Box<str>, Vec<u32>>,
    /// The distinct lengths of the prefixes in `prefix`, ascending.
    prefix_lens: Vec<usize>,
    any: Vec<u32>,
    /// The rules of a symbol that only `*` rules apply to, shared by every such symbol.
    any_only: Arc<SymbolRules>,
    /// Whether `any_only` may be shared: no `*` rule excepts a symbol.
    any_shared: bool,
    /// Compiled rule lists of the symbols seen, within [`COMPILED_SYMBOLS_MAX`].
    compiled: std::sync::Mutex<HashMap<Symbol, Arc<SymbolRules>>>,
}

impl RuleBook {
    /// Compiles `rules`. Ids must be unique.
    pub fn new(rules: Vec<Rule>) -> Result<RuleBook, RulesError> {
        if rules.len() > RULES_MAX {
            return Err(RulesError::new(
                "rules",
                format!("{} rules; the limit is {RULES_MAX}", rules.len()),
            ));
        }
        let mut ids = HashSet::with_capacity(rules.len());
        for rule in &rules {
            if !ids.insert(rule.id()) {
                return Err(RulesError::new(
                    "id",
                    format!("{} is used by two rules", rule.id()),
                ));
            }
        }
        let mut book = RuleBook {
            rules: rules.into_iter().map(Arc::new).collect(),
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            any: Vec::new(),
            any_only: Arc::new(SymbolRules::default()),
            any_shared: false,
            compiled: std::sync::Mutex::new(HashMap::new()),
        };
        for (index, rule) in book.rules.iter().enumerate() {
            let index = index as u32;
            match &rule.doc().symbols {
                super::SymbolPattern::Any => book.any.push(index),
                super::SymbolPattern::Prefix(prefix) => {
                    book.prefix.entry(prefix.clone()).or_default().push(index);
                }
                super::SymbolPattern::Exact(symbol) => {
                    book.exact.entry(*symbol).or_default().push(index)
                }
            }
        }
        book.prefix_lens = {
            let mut lens: Vec<usize> = book.prefix.keys().map(|p| p.len()).collect();
            lens.sort_unstable();
            lens.dedup();
            lens
        };
        // A `*` rule with exceptions cannot be shared: it is matched per symbol.
        book.any_shared = book
            .any
            .iter()
            .all(|&i| book.rules[i as usize].doc().except.is_empty());
        if book.any_shared {
            book.any_only = Arc::new(SymbolRules::of(
                book.any.iter().map(|&i| book.rules[i as usize].clone()),
            ));
        }
        Ok(book)
    }

    /// The two rules that hold when none are configured: `high` (`* above 150`) and `low`
    /// (`* below 50`), firing on `enter`.
    pub fn defaults() -> RuleBook {
        let band = super::Band::new(
            super::HIGH_THRESHOLD_DEFAULT,
            super::LOW_THRESHOLD_DEFAULT,
            0.0,
            super::Mode::Cross,
        )
        .expect("the default band is valid");
        RuleBook::from(band)
    }

    /// The rules in force given what a rule store holds: its valid rules once it has been
    /// written (`stored` is `Some`), else `base`.
    pub fn in_force(
        stored: Option<crate::ports::StoredRules>,
        base: &Arc<RuleBook>,
    ) -> Result<Arc<RuleBook>, RulesError> {
        match stored {
            Some(stored) => RuleBook::new(stored.rules).map(Arc::new),
            None => Ok(base.clone()),
        }
    }

    /// Every rule, paused ones included, in the order given.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &RuleId) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|rule| rule.id() == *id)
    }

    /// The rules that apply to `symbol`, in book order (stateful ones first, see
    /// [`SymbolRules::rules`]).
    pub fn for_symbol(&self, symbol: &Symbol) -> Arc<SymbolRules> {
        if self.exact.is_empty() && self.prefix.is_empty() && self.any_shared {
            // The same rules for every symbol (the defaults, `--mode`, bands without
            // exceptions): nothing to look up or remember.
            return self.any_only.clone();
        }
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(rules) = compiled.get(symbol) {
            return rules.clone();
        }
        if compiled.len() >= COMPILED_SYMBOLS_MAX {
            compiled.clear();
        }
        let rules = self.compile(symbol);
        compiled.insert(*symbol, rules.clone());
        rules
    }

    fn compile(&self, symbol: &Symbol) -> Arc<SymbolRules> {
        let text = symbol.as_str();
        let mut picked: Vec<u32> = Vec::new();
        if let Some(exact) = self.exact.get(symbol) {
            picked.extend(exact);
        }
        for &len in &self.prefix_lens {
            if len > text.len() {
                break;
            }
            if let Some(found) = self.prefix.get(&text[..len]) {
                picked.extend(found);
            }
        }
        if picked.is_empty() && self.any_shared {
            return self.any_only.clone();
        }
        picked.extend(&self.any);
        picked.sort_unstable();
        let rules = picked
            .into_iter()
            .map(|i| &self.rules[i as usize])
            .filter(|rule| rule.applies_to(symbol))
            .cloned();
        Arc::new(SymbolRules::of(rules))
    }
}

impl From<super::Band> for RuleBook {
    /// The two rules of one band for every symbol.
    fn from(band: super::Band) -> RuleBook {
        RuleBook::new(super::BandSet::uniform(band).to_rules())
            .expect("one band makes two distinct rules")
    }
}

impl TryFrom<&super::BandSet> for RuleBook {
    type Error = RulesError;
    fn try_from(bands: &super::BandSet) -> Result<RuleBook, RulesError> {
        RuleBook::new(bands.to_rules())
    }
}

/// The rules that apply to one symbol, split by whether they need state.
#[derive(Debug, Default)]
pub struct SymbolRules {
    rules: Vec<Arc<Rule>>,
    stateful: usize,
}

impl SymbolRules {
    /// Stateful rules first (their index is their state slot), then the stateless ones.
    fn of(rules: impl Iterator<Item = Arc<Rule>>) -> SymbolRules {
        let (mut stateful, stateless): (Vec<_>, Vec<_>) = rules.partition(|r| r.stateful());
        let count = stateful.len();
        stateful.extend(stateless);
        SymbolRules {
            rules: stateful,
            stateful: count,
        }
    }

    /// The rules, stateful ones first.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Whether any of them needs state (then ticks are judged against the symbol's state, and
    /// stale ticks fire none of the stateful rules).
    pub fn stateful(&self) -> bool {
        self.stateful > 0
    }

    /// Whether the rule at `index` (into [`SymbolRules::rules`]) keeps state: its alerts are
    /// stored with the state.
    pub fn keeps_state(&self, index: usize) -> bool {
        index < self.stateful
    }

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A rule that fired on a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fired {
    /// Its index into [`SymbolRules::rules`].
    pub rule: usize,
    /// The alert's kind.
    pub kind: AlertKind,
    /// The level the tick was compared with: the rule's threshold, or what its window made of it.
    pub threshold: f64,
}

/// What one tick did under a symbol's rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// The rules that fired, in rule order.
    pub fired: Vec<Fired>,
    /// Whether a rule re-armed.
    pub rearmed: bool,
    /// Whether the tick was stale (not newer than the newest seen): no stateful rule looked at it.
    pub stale: bool,
    /// Stale ticks only: the stateful rules whose condition the tick satisfies, and every window
    /// rule (a stale tick cannot be judged against a window that has moved on). Such a tick may
    /// be the redelivery of one that fired them, so their alerts are looked up.
    pub maybe_fired: Vec<usize>,
}

/// Evaluates a symbol's ticks in order, from its stored state, and gives the state to store.
///
/// ```
/// use tickwatch_core::rules::{Cursor, RuleBook};
/// use tickwatch_core::Tick;
///
/// let book = RuleBook::defaults(); // `high`: * above 150, `low`: * below 50, fire on enter
/// let tick = |price: f64, second: i64| {
///     let body = format!(r#"{{"symbol":"AAPL","price":{price},"timestamp":{}}}"#, 1_795_703_400_000 + second * 1000);
///     Tick::decode(body.as_bytes()).expect("valid tick")
/// };
/// let rules = book.for_symbol(&tick(1.0, 0).symbol);
/// let mut cursor = Cursor::new(&rules, None);
/// // Entering the high zone fires `high`; staying there does not.
/// let fired = cursor.step(&tick(151.0, 1)).fired;
/// assert_eq!(rules.rules()[fired[0].rule].id().as_str(), "high");
/// assert!(cursor.step(&tick(160.0, 2)).fired.is_empty());
/// // A tick older than one already seen changes nothing.
/// assert!(cursor.step(&tick(40.0, 1)).stale);
/// let state = cursor.finish().expect("the state moved");
/// assert_eq!(state.last_seen, tick(1.0, 2).at);
/// ```
pub struct Cursor<'a> {
    rules: &'a SymbolRules,
    last_seen: Option<Timestamp>,
    /// One per stateful rule, in rule order.
    slots: Vec<RuleState>,
    moved: bool,
}

impl<'a> Cursor<'a> {
    /// Starts from `prior` (`None`: the symbol has no state yet). States of rules that no longer
    /// apply, or of an older version of a rule, are dropped: such a rule starts armed. A window
    /// rule's window survives an edit that keeps its statistic and span.
    pub fn new(rules: &'a SymbolRules, prior: Option<&SymbolState>) -> Cursor<'a> {
        let prior_states = prior.map_or(&[][..], |state| &state.rules[..]);
        let slots = rules.rules[..rules.stateful]
            .iter()
            .map(|rule| {
                let same_rule = prior_states.iter().filter(|s| s.rule == rule.id());
                if let Some(state) = same_rule.clone().find(|s| s.version == rule.version()) {
                    return state.clone();
                }
                let mut state = RuleState::armed(rule.id(), rule.version());
                if let Some(window) = rule.condition().window() {
                    state.window = same_rule
                        .filter_map(|s| s.window.as_ref())
                        .find(|series| series.fits(window))
                        .cloned();
                }
                state
            })
            .collect();
        Cursor {
            rules,
            last_seen: prior.map(|state| state.last_seen),
            slots,
            moved: false,
        }
    }

    /// Evaluates the next tick of the symbol.
    pub fn step(&mut self, tick: &Tick) -> Evaluation {
        let mut evaluation = Evaluation::default();
        self.step_into(tick, &mut evaluation);
        evaluation
    }

    /// [`Cursor::step`] into a reused `evaluation` (cleared first), allocation-free once its
    /// lists have grown: what the pipeline calls for every tick.
    pub fn step_into(&mut self, tick: &Tick, evaluation: &mut Evaluation) {
        evaluation.fired.clear();
        evaluation.maybe_fired.clear();
        evaluation.rearmed = false;
        evaluation.stale = false;
        let stateful = self.rules.stateful > 0;
        let stale = stateful && self.last_seen.is_some_and(|seen| tick.at <= seen);
        for (index, rule) in self.rules.rules.iter().enumerate() {
            if rule.expired_at(tick.at) {
                continue;
            }
            let condition = rule.condition();
            if let Some(window) = condition.window() {
                // Window rules are stateful. A paused one keeps following its window, so that it
                // resumes with the recent past, but fires nothing.
                if stale {
                    if !rule.paused() {
                        evaluation.maybe_fired.push(index);
                    }
                    continue;
                }
                let slot = &mut self.slots[index];
                let series = slot.window.get_or_insert_with(|| Box::new(window.series()));
                let signal = window.observe(series, tick);
                if !rule.paused() {
                    let fired = Fired {
                        rule: index,
                        kind: signal.kind,
                        threshold: signal.threshold,
                    };
                    record(evaluation, fire(rule, slot, signal.test, tick.at), fired);
                }
                continue;
            }
            if rule.paused() {
                // Its state (a slot, if it keeps one) is carried over untouched.
                continue;
            }
            let test = condition.test(tick, rule.hysteresis());
            let fired = Fired {
                rule: index,
                kind: condition.kind(),
                threshold: condition.threshold().unwrap_or_default(),
            };
            if index >= self.rules.stateful {
                if test == Test::Holds {
                    evaluation.fired.push(fired);
                }
            } else if stale {
                if test == Test::Holds {
                    evaluation.maybe_fired.push(index);
                }
            } else {
                record(
                    evaluation,
                    fire(rule, &mut self.slots[index], test, tick.at),
                    fired,
                );
            }
        }
        if stale {
            evaluation.stale = true;
        } else if stateful {
            self.last_seen = Some(tick.at);
            self.moved = true;
        }
    }

    /// The state to store, if any tick moved it (`None`: nothing to write).
    pub fn finish(self) -> Option<SymbolState> {
        let last_seen = self.last_seen.filter(|_| self.moved)?;
        let mut rules: Vec<RuleState> = self
            .slots
            .into_iter()
            .filter(|state| !state.is_initial())
            .collect();
        // The filter reuses the slots' allocation; a state is kept (remembered between batches),
        // so it keeps only what it holds: nothing at all for a symbol whose rules are all armed.
        rules.shrink_to_fit();
        Some(SymbolState { last_seen, rules })
    }
}

/// Notes what [`fire`] decided in `evaluation`.
fn record(evaluation: &mut Evaluation, firing: Firing, fired: Fired) {
    match firing {
        Firing::Fired => evaluation.fired.push(fired),
        Firing::Rearmed => evaluation.rearmed = true,
        Firing::Quiet => {}
    }
}

/// What a stateful rule does with one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firing {
    /// It raises an alert.
    Fired,
    /// `enter`: the condition cleared; it can fire again.
    Rearmed,
    /// Nothing.
    Quiet,
}

/// The firing policy, written once for every condition: moves `state` by one tick whose
/// condition test is `test`.
///
/// * `every` fires on each tick that satisfies the condition;
/// * `enter` fires when armed, then waits for the condition to clear (by the hysteresis);
/// * `once` fires when armed and is then done;
/// * a cooldown suppresses an alert within `cooldown` of tick time after the last one (a tick
///   exactly `cooldown` later fires). An `enter` rule that enters during its cooldown counts as
///   entered without an alert: it fires again only after clearing and entering anew.
pub fn fire(rule: &Rule, state: &mut RuleState, test: Test, at: Timestamp) -> Firing {
    let cooled = state
        .last_alert
        .is_none_or(|last| last.ms_until(at) >= rule.cooldown_ms());
    let alert = |state: &mut RuleState| {
        if cooled {
            // Only a cooldown needs the time of the last alert: without one, not storing it keeps
            // the state of a re-armed rule empty.
            if rule.cooldown_ms() > 0 {
                state.last_alert = Some(at);
            }
            Firing::Fired
        } else {
            Firing::Quiet
        }
    };
    match (rule.fire(), state.phase, test) {
        (Fire::Every, _, Test::Holds) => alert(state),
        (Fire::Enter, Phase::Armed, Test::Holds) => {
            state.phase = Phase::Fired;
            alert(state)
        }
        (Fire::Enter, Phase::Fired | Phase::Done, Test::Clear) => {
            state.phase = Phase::Armed;
            Firing::Rearmed
        }
        (Fire::Once, Phase::Armed, Test::Holds) => {
            state.phase = Phase::Done;
            Firing::Fired
        }
        _ => Firing::Quiet,
    }
}
