//! What a symbol remembers between ticks, and its compact binary form.
//!
//! A symbol's state is one row (SQLite) or one item (DynamoDB): the newest tick time seen, which
//! is also the compare-and-set version, and the firing state of each stateful rule that applies
//! to it. Only rules whose state differs from "armed, never fired" are written, so a symbol that
//! is quiet under every rule stores no rule states at all.
//!
//! The binary form of the rule states ([`encode_rule_states`]):
//!
//! ```text
//! format   u8        = 2
//! count    u16 BE
//! count x  id_len u8, id bytes, version u64 BE, phase u8 (0 armed, 1 fired, 2 done),
//!          last_alert i64 BE ms (-1: never),
//!          window u8 (0 none, 1 one follows), window:
//!            stat u8 (0 low, 1 high, 2 volume, 3 close), interval u32 BE ms, head i64 BE
//!            (interval index of the newest tick, -1 none), side i8, slots u64 BE (bit i: slot
//!            i holds a value), one f64 BE per set bit in slot order
//! ```
//!
//! so a rule state costs 19 bytes plus its id, and a window rule's 22 more plus 8 per interval
//! of its window that saw ticks: at most 60, so at most 521 bytes plus the id, whatever the tick
//! rate. Format 1 (tickwatch 0.2, without the window byte) is still read.

use super::model::RuleId;
use super::window::Series;
use crate::tick::Timestamp;

/// The version byte in front of encoded rule states.
const RULE_STATES_FORMAT: u8 = 2;

/// The format tickwatch 0.2 wrote: no windows.
const RULE_STATES_FORMAT_NO_WINDOWS: u8 = 1;

/// Most rule states one symbol's state may hold when decoded (a bound on hostile input; a symbol
/// has one per stateful rule that applies to it).
pub const RULE_STATES_MAX: usize = u16::MAX as usize;

/// Where a rule stands for one symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// It fires when its condition holds.
    Armed,
    /// `enter`: it fired (or entered during its cooldown) and waits for the condition to clear.
    Fired,
    /// `once`: it fired; nothing more until the rule is re-armed.
    Done,
}

impl Phase {
    /// `armed`, `fired` or `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Armed => "armed",
            Phase::Fired => "fired",
            Phase::Done => "done",
        }
    }
}

/// The firing state of one rule for one symbol. Keyed by the rule's id *and* version: a rule that
/// is edited or re-armed gets a new version, and its old states no longer apply (it starts armed;
/// a window rule keeps its window if the edit left the window's statistic and span alone).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleState {
    /// The rule.
    pub rule: RuleId,
    /// The rule's version this state belongs to.
    pub version: u64,
    /// Armed, fired or done.
    pub phase: Phase,
    /// Tick time of the rule's last alert for this symbol (the cooldown counts from it).
    pub last_alert: Option<Timestamp>,
    /// A window rule's recent past for this symbol.
    pub window: Option<Box<Series>>,
}

impl RuleState {
    /// A rule's state before anything happened: armed, never fired.
    pub fn armed(rule: RuleId, version: u64) -> RuleState {
        RuleState {
            rule,
            version,
            phase: Phase::Armed,
            last_alert: None,
            window: None,
        }
    }

    /// Whether this is the state a rule starts in (not worth storing).
    pub fn is_initial(&self) -> bool {
        self.phase == Phase::Armed && self.last_alert.is_none() && self.window.is_none()
    }
}

/// What a symbol remembers: the newest tick evaluated and its rules' firing states.
///
/// `last_seen` doubles as the compare-and-set version: every change moves it strictly forward, so
/// a writer that read an older state can never overwrite a newer one.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolState {
    /// The timestamp of the newest tick evaluated for this symbol.
    pub last_seen: Timestamp,
    /// The firing states that are not [`RuleState::is_initial`], in rule order.
    pub rules: Vec<RuleState>,
}

impl SymbolState {
    /// The state a store written by tickwatch 0.1 (one band per symbol, a zone) means now: in the
    /// `high` or `low` zone, the rules that band became (`high`/`low`, or `high.S`/`low.S` for a
    /// symbol with a band of its own) have fired; in the normal zone everything is armed.
    pub fn from_zone(zone: &str, symbol: &crate::Symbol, last_seen: Timestamp) -> SymbolState {
        let side = match zone {
            "high" => Some("high"),
            "low" => Some("low"),
            _ => None,
        };
        let rules = side
            .into_iter()
            .flat_map(|side| {
                let own = format!("{side}.{}", symbol.as_str().replace([':', '/'], "_"));
                [side.to_owned(), own]
            })
            .filter_map(|id| RuleId::parse(&id).ok())
            .map(|rule| RuleState {
                rule,
                version: 1,
                phase: Phase::Fired,
                last_alert: None,
                window: None,
            })
            .collect();
        SymbolState { last_seen, rules }
    }
}

/// Rule states that cannot be decoded (written by something else, or corrupt).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule states are invalid: {0}")]
pub struct RuleStatesError(String);

/// The binary form of `states` (see the module documentation).
pub fn encode_rule_states(states: &[RuleState]) -> Vec<u8> {
    let count = states.len().min(RULE_STATES_MAX);
    let mut bytes = Vec::with_capacity(3 + count * 40);
    bytes.push(RULE_STATES_FORMAT);
    bytes.extend_from_slice(&(count as u16).to_be_bytes());
    for state in &states[..count] {
        let id = state.rule.as_str().as_bytes();
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&state.version.to_be_bytes());
        bytes.push(match state.phase {
            Phase::Armed => 0,
            Phase::Fired => 1,
            Phase::Done => 2,
        });
        let last = state.last_alert.map_or(-1, Timestamp::epoch_ms);
        bytes.extend_from_slice(&last.to_be_bytes());
        match &state.window {
            None => bytes.push(0),
            Some(series) => {
                bytes.push(1);
                series.encode(&mut bytes);
            }
        }
    }
    bytes
}

/// Reads what [`encode_rule_states`] wrote.
pub fn decode_rule_states(bytes: &[u8]) -> Result<Vec<RuleState>, RuleStatesError> {
    let bad = |what: &str| RuleStatesError(what.to_owned());
    let mut rest = bytes;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], RuleStatesError> {
        let bytes: &'a [u8] = rest;
        if bytes.len() < n {
            return Err(RuleStatesError("cut short".to_owned()));
        }
        let (head, tail) = bytes.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let format = take(&mut rest, 1)?[0];
    if format != RULE_STATES_FORMAT && format != RULE_STATES_FORMAT_NO_WINDOWS {
        return Err(bad("unknown format"));
    }
    let count = u16::from_be_bytes(take(&mut rest, 2)?.try_into().map_err(|_| bad("count"))?);
    let mut states = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let id_len = usize::from(take(&mut rest, 1)?[0]);
        let id =
            std::str::from_utf8(take(&mut rest, id_len)?).map_err(|_| bad("id is not UTF-8"))?;
        let rule = RuleId::parse(id).map_err(|e| RuleStatesError(e.to_string()))?;
        let version =
            u64::from_be_bytes(take(&mut rest, 8)?.try_into().map_err(|_| bad("version"))?);
        let phase = match take(&mut rest, 1)?[0] {
            0 => Phase::Armed,
            1 => Phase::Fired,
            2 => Phase::Done,
            _ => return Err(bad("unknown phase")),
        };
        let last = i64::from_be_bytes(
            take(&mut rest, 8)?
                .try_into()
                .map_err(|_| bad("last alert"))?,
        );
        let last_alert = match last {
            -1 => None,
            ms => Some(Timestamp::from_epoch_ms(ms).map_err(|_| bad("last alert time"))?),
        };
        let window = match format {
            RULE_STATES_FORMAT_NO_WINDOWS => None,
            _ => match take(&mut rest, 1)?[0] {
                0 => None,
                1 => Some(Box::new(Series::decode(&mut rest).map_err(bad)?)),
                _ => return Err(bad("unknown window tag")),
            },
        };
        states.push(RuleState {
            rule,
            version,
            phase,
            last_alert,
            window,
        });
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(states)
}
