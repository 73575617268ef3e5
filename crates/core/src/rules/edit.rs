//! Changing rules: what each `tickwatch rules` command writes, decided here once for every store.
//!
//! A store that was never written has the base rules in force (the configuration's, or the two
//! defaults). Its first change copies them in ("seeds" it) together with the change, so that
//! adding a rule never silently drops the rules that were in force.
//!
//! Versions: a rule's version is the store version that last restarted it. Adding a rule,
//! editing what it watches or how it fires, and re-arming it restart it (a new version, armed for
//! every symbol); pausing, resuming and relabelling keep its version, so its state survives.

use super::{Rule, RuleDoc, RuleId, RulesError};
use crate::ports::RuleStore;

/// One change to the rules.
#[derive(Clone, Debug)]
pub enum RuleEdit {
    /// A new rule; its id must be free.
    Add(Rule),
    /// A rule replaced by a new definition (its id must exist).
    Replace(Rule),
    /// Pause a rule.
    Pause(RuleId),
    /// Resume a paused rule.
    Resume(RuleId),
    /// Re-arm a rule for every symbol (`once` rules that are done fire again).
    Rearm(RuleId),
    /// Delete a rule.
    Remove(RuleId),
    /// Put every rule of a list; with `replace`, delete the rules the list does not have.
    Import {
        /// The rules.
        rules: Vec<Rule>,
        /// Whether rules missing from the list are deleted.
        replace: bool,
    },
}

impl RuleEdit {
    /// The rule the change needs to be in force: every change but adding and importing names one.
    pub fn target(&self) -> Option<RuleId> {
        match self {
            RuleEdit::Replace(rule) => Some(rule.id()),
            RuleEdit::Pause(id)
            | RuleEdit::Resume(id)
            | RuleEdit::Rearm(id)
            | RuleEdit::Remove(id) => Some(*id),
            RuleEdit::Add(_) | RuleEdit::Import { .. } => None,
        }
    }
}

/// What a change writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulePlan {
    /// Rules to store, versions set.
    pub put: Vec<Rule>,
    /// Rules to delete.
    pub remove: Vec<RuleId>,
    /// Whether the store was never written and `put` includes the base rules.
    pub seeded: bool,
}

/// How many times [`apply_edit`] plans a change again after another writer changed the rules
/// first.
pub const COMMIT_ATTEMPTS_MAX: u32 = 5;

/// Why [`apply_edit`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum EditError<E> {
    /// The change is not valid (the field named in the error).
    #[error(transparent)]
    Invalid(#[from] RulesError),
    /// The change names a rule that is not in force.
    #[error("id: no rule has the id {0}")]
    Missing(RuleId),
    /// The store failed.
    #[error("the rule store failed: {0}")]
    Store(#[source] E),
    /// Other writers changed the rules every time this change was planned.
    #[error(
        "the rules kept changing under this change ({COMMIT_ATTEMPTS_MAX} attempts); try again"
    )]
    Contended,
}

/// Plans `edit` over what `store` holds (base rules `base` while it was never written) and
/// commits it with a compare-and-set on the store's version; plans again when another writer
/// changed the rules in between. Every writer of rules (the CLI, the board) goes through here.
pub async fn apply_edit<S: RuleStore>(
    store: &S,
    base: &[Rule],
    edit: RuleEdit,
) -> Result<RulePlan, EditError<S::Error>> {
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let stored = store.load_rules().await.map_err(EditError::Store)?;
        let expected = stored.as_ref().map(|s| s.version);
        let current = stored.as_ref().map(|s| s.rules.as_slice());
        if let Some(id) = edit.target()
            && !current.unwrap_or(base).iter().any(|rule| rule.id() == id)
        {
            return Err(EditError::Missing(id));
        }
        let plan = plan_edit(current, base, edit.clone(), expected.unwrap_or(0) + 1)?;
        if store
            .commit_rules(expected, &plan.put, &plan.remove)
            .await
            .map_err(EditError::Store)?
        {
            return Ok(plan);
        }
    }
    Err(EditError::Contended)
}

/// Plans `edit` over the rules `current` in the store (`None`: never written, `base` in force),
/// for a store whose version will become `next_version` when the plan is committed.
pub fn plan_edit(
    current: Option<&[Rule]>,
    base: &[Rule],
    edit: RuleEdit,
    next_version: u64,
) -> Result<RulePlan, RulesError> {
    let seeded = current.is_none();
    let rules: &[Rule] = current.unwrap_or(base);
    let find = |id: &RuleId| rules.iter().find(|rule| rule.id() == *id);
    let missing = |id: &RuleId| RulesError::new("id", format!("no rule has the id {id}"));
    let changed = |doc: RuleDoc| Rule::from_doc(doc);
    let mut plan = RulePlan {
        seeded,
        ..RulePlan::default()
    };
    match edit {
        RuleEdit::Add(rule) => {
            if find(&rule.id()).is_some() {
                return Err(RulesError::new(
                    "id",
                    format!(
                        "{} is taken; `rules edit` changes a rule, `rules rm` deletes it",
                        rule.id()
                    ),
                ));
            }
            plan.put.push(rule.with_version(next_version));
        }
        RuleEdit::Replace(rule) => {
            let old = find(&rule.id()).ok_or_else(|| missing(&rule.id()))?;
            let version = if old.restarts(&rule) {
                next_version
            } else {
                old.version()
            };
            plan.put.push(rule.with_version(version));
        }
        RuleEdit::Pause(id) | RuleEdit::Resume(id) if find(&id).is_none() => {
            return Err(missing(&id));
        }
        RuleEdit::Pause(id) => {
            let old = find(&id).ok_or_else(|| missing(&id))?;
            plan.put.push(changed(RuleDoc {
                paused: true,
                ..old.doc().clone()
            })?);
        }
        RuleEdit::Resume(id) => {
            let old = find(&id).ok_or_else(|| missing(&id))?;
            plan.put.push(changed(RuleDoc {
                paused: false,
                ..old.doc().clone()
            })?);
        }
        RuleEdit::Rearm(id) => {
            let old = find(&id).ok_or_else(|| missing(&id))?;
            plan.put.push(old.with_version(next_version));
        }
        RuleEdit::Remove(id) => {
            find(&id).ok_or_else(|| missing(&id))?;
            plan.remove.push(id);
        }
        RuleEdit::Import {
            rules: list,
            replace,
        } => {
            let mut seen = std::collections::HashSet::new();
            for rule in &list {
                if !seen.insert(rule.id()) {
                    return Err(RulesError::new(
                        "id",
                        format!("{} is used by two rules of the list", rule.id()),
                    ));
                }
            }
            for rule in list {
                match find(&rule.id()) {
                    // Unchanged: not written again, so its version and state stay.
                    Some(old)
                        if !old.restarts(&rule)
                            && old.doc().paused == rule.doc().paused
                            && old.doc().label == rule.doc().label => {}
                    Some(old) if !old.restarts(&rule) => {
                        plan.put.push(rule.with_version(old.version()));
                    }
                    _ => plan.put.push(rule.with_version(next_version)),
                }
            }
            if replace {
                plan.remove = rules
                    .iter()
                    .map(Rule::id)
                    .filter(|id| !seen.contains(id))
                    .collect();
            }
        }
    }
    if seeded {
        // Copy the base rules in, except those the change replaces or removes.
        let touched: std::collections::HashSet<RuleId> = plan
            .put
            .iter()
            .map(Rule::id)
            .chain(plan.remove.iter().copied())
            .collect();
        let mut put: Vec<Rule> = base
            .iter()
            .filter(|rule| !touched.contains(&rule.id()))
            .cloned()
            .collect();
        put.append(&mut plan.put);
        plan.put = put;
        // Nothing stored yet: a removal just leaves the rule out.
        plan.remove.clear();
    }
    Ok(plan)
}
