//! Alert rules as data, and their evaluation.
//!
//! A [`Rule`] watches some symbols (one, a prefix pattern `BTC-*`, or `*`) for a [`Condition`]
//! (`above X`, `below X`; strict) and turns a satisfied condition into alerts by its [`Fire`]
//! policy: on `every` tick, on `enter`ing (re-arming once the condition clears by the
//! hysteresis), or `once`. A cooldown, an expiry, a pause and a label complete it. Rules are
//! validated here, once, whoever writes them ([`Rule::from_doc`]).
//!
//! The rules in force are a [`RuleBook`]; [`RuleBook::for_symbol`] picks a symbol's rules, and a
//! [`Cursor`] evaluates its ticks in arrival order against its [`SymbolState`]: the newest tick
//! seen and the firing state of each stateful rule. A tick not newer than the newest tick seen is
//! stale: it fires no stateful rule and changes nothing. That is what makes redelivery safe: a
//! tick evaluated once can never be evaluated again into a different answer. Rules that need no
//! state (`every` without a cooldown) look at every tick, stale or not, as the specification's
//! level alerts do; their alerts are stored idempotently.
//!
//! The legacy configuration (one band per symbol: a TOML rules file, the function's
//! `HIGH_THRESHOLD`/`LOW_THRESHOLD`/`ALERT_MODE`/`HYSTERESIS`/`RULES` variables) is read into a
//! [`BandSet`] and translated into rules ([`BandSet::to_rules`]).

mod band;
mod book;
mod config;
mod edit;
mod model;
mod state;
mod window;

pub(crate) use model::as_text;

pub use band::{Band, BandSet, HIGH_THRESHOLD_DEFAULT, LOW_THRESHOLD_DEFAULT, Mode};
pub use book::{
    COMPILED_SYMBOLS_MAX, Cursor, Evaluation, Fired, Firing, RULES_MAX, RuleBook, SymbolRules, fire,
};
pub use config::{
    RULE_LIST_BYTES_MAX, RULE_LIST_MAX, RULE_OVERRIDES_MAX, RULES_TEXT_BYTES_MAX, RuleSpec,
    RulesError, parse_rule_list,
};
pub use edit::{COMMIT_ATTEMPTS_MAX, EditError, RuleEdit, RulePlan, apply_edit, plan_edit};
pub use model::{
    COOLDOWN_SECONDS_MAX, Condition, Fire, LABEL_BYTES_MAX, Label, RULE_EXCEPT_MAX,
    RULE_ID_LEN_MAX, Rule, RuleDoc, RuleId, SymbolPattern, Test,
};
pub use state::{
    Phase, RULE_STATES_MAX, RuleState, RuleStatesError, SymbolState, decode_rule_states,
    encode_rule_states,
};
pub use window::{
    Direction, RATIO_TOLERANCE, RISE_PERCENT_MAX, Series, Signal, Stat, VOLUME_FACTOR_MAX,
    WINDOW_INTERVALS, WINDOW_MINUTES_MAX, WINDOW_MINUTES_MIN, Window, WindowCondition,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
