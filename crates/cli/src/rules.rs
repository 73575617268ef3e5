//! `tickwatch rules`: list and change the alert rules, in the local database or a deployment's
//! rules table. What a change writes is decided by the core
//! ([`tickwatch_core::rules::plan_edit`]) and committed with a compare-and-set on the store's
//! version by [`apply_edit`] (a conflicting writer makes it plan again from what is stored now);
//! this module reads arguments and prints.

use std::io::{self, Read as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use tickwatch_core::ports::{RuleStore, StoredRules};
use tickwatch_core::rules::{
    BandSet, Label, Rule, RuleDoc, RuleEdit, RuleId, RulesError, SymbolPattern, apply_edit,
    parse_rule_list,
};
use tickwatch_core::{Band, Mode, RuleBook, Symbol};
use tickwatch_local::SqliteStore;

use crate::Completion;
use crate::args::{OutputFormat, RuleFields, RulesArgs, RulesCommand};
use crate::config::parse_time;

pub(crate) fn rules(args: RulesArgs) -> anyhow::Result<Completion> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.table.is_some() || args.outputs.is_some() {
        let (store, base) = runtime.block_on(crate::config::aws_rule_store(
            args.table.as_deref(),
            args.outputs.as_deref(),
        ))?;
        return runtime.block_on(execute(&store, &base, args.command, args.format));
    }
    let reads_only = matches!(
        args.command,
        RulesCommand::List | RulesCommand::Show { .. } | RulesCommand::Export
    );
    let store = if reads_only && !args.db.exists() {
        // Nothing written yet: the base rules, without creating a database to say so.
        SqliteStore::in_memory()?
    } else {
        SqliteStore::open(&args.db)
            .with_context(|| format!("opening database {}", args.db.display()))?
    };
    let base = RuleBook::defaults()
        .rules()
        .iter()
        .map(|rule| (**rule).clone())
        .collect::<Vec<_>>();
    runtime.block_on(execute(&store, &base, args.command, args.format))
}

/// Runs one `rules` command against `store`, whose base rules (in force until it is first
/// written) are `base`.
pub(crate) async fn execute<S: RuleStore>(
    store: &S,
    base: &[Rule],
    command: RulesCommand,
    format: OutputFormat,
) -> anyhow::Result<Completion>
where
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let edit = match command {
        RulesCommand::List => {
            let stored = store.load_rules().await.context("reading the rules")?;
            print_list(stored.as_ref(), base, format)?;
            return Ok(Completion::Clean);
        }
        RulesCommand::Export => {
            let stored = store.load_rules().await.context("reading the rules")?;
            let rules = in_force(stored.as_ref(), base);
            let docs: Vec<&RuleDoc> = rules.iter().map(Rule::doc).collect();
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &docs)?;
            writeln!(out)?;
            return Ok(Completion::Clean);
        }
        RulesCommand::Show { id } => {
            let id = RuleId::parse(&id)?;
            let stored = store.load_rules().await.context("reading the rules")?;
            let rules = in_force(stored.as_ref(), base);
            let Some(rule) = rules.iter().find(|rule| rule.id() == id) else {
                bail!("no rule has the id {id}");
            };
            print_rules(std::slice::from_ref(rule), format)?;
            return Ok(Completion::Clean);
        }
        RulesCommand::Add(fields) => RuleEdit::Add(Rule::from_doc(new_doc(&fields)?)?),
        RulesCommand::Edit(fields) => {
            let id = RuleId::parse(&fields.id)?;
            let stored = store.load_rules().await.context("reading the rules")?;
            let rules = in_force(stored.as_ref(), base);
            let Some(old) = rules.iter().find(|rule| rule.id() == id) else {
                bail!("id: no rule has the id {id}");
            };
            RuleEdit::Replace(Rule::from_doc(edited_doc(old.doc().clone(), &fields)?)?)
        }
        RulesCommand::Pause { id } => RuleEdit::Pause(RuleId::parse(&id)?),
        RulesCommand::Resume { id } => RuleEdit::Resume(RuleId::parse(&id)?),
        RulesCommand::Rearm { id } => RuleEdit::Rearm(RuleId::parse(&id)?),
        RulesCommand::Rm { id } => RuleEdit::Remove(RuleId::parse(&id)?),
        RulesCommand::Import { file, replace } => RuleEdit::Import {
            rules: read_rule_file(&file)?,
            replace,
        },
    };
    let summary = describe(&edit);
    let plan = commit(store, base, edit).await?;
    if plan.seeded {
        eprintln!(
            "tickwatch rules: the store had no rules yet; the base rules in force ({}) were copied into it with this change",
            base.iter()
                .map(|rule| rule.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("{summary}");
    Ok(Completion::Clean)
}

/// Plans `edit` over what the store holds and commits it (see [`apply_edit`]).
async fn commit<S: RuleStore>(
    store: &S,
    base: &[Rule],
    edit: RuleEdit,
) -> anyhow::Result<tickwatch_core::rules::RulePlan>
where
    S::Error: std::error::Error + Send + Sync + 'static,
{
    Ok(apply_edit(store, base, edit).await?)
}

/// The rules in force: the store's once written, else the base rules.
fn in_force(stored: Option<&StoredRules>, base: &[Rule]) -> Vec<Rule> {
    match stored {
        Some(stored) => stored.rules.clone(),
        None => base.to_vec(),
    }
}

fn describe(edit: &RuleEdit) -> String {
    match edit {
        RuleEdit::Add(rule) => format!("added {rule}"),
        RuleEdit::Replace(rule) => format!("changed {rule}"),
        RuleEdit::Pause(id) => format!("paused {id}"),
        RuleEdit::Resume(id) => format!("resumed {id}"),
        RuleEdit::Rearm(id) => format!("re-armed {id} for every symbol"),
        RuleEdit::Remove(id) => format!("removed {id}"),
        RuleEdit::Import { rules, replace } => format!(
            "imported {} rules{}",
            rules.len(),
            if *replace {
                ", removing the others"
            } else {
                ""
            }
        ),
    }
}

/// The document of a new rule from its flags; `--symbols` and `--when` are required.
fn new_doc(fields: &RuleFields) -> anyhow::Result<RuleDoc> {
    let id = RuleId::parse(&fields.id)?;
    let Some(symbols) = &fields.symbols else {
        bail!("symbols: required (--symbols AAPL, --symbols 'BTC-*' or --symbols '*')");
    };
    let Some(when) = &fields.when else {
        bail!("condition: required (--when \"above 200\" or --when \"below 50\")");
    };
    let doc = RuleDoc::new(
        id,
        symbols.parse()?,
        when.parse()?,
        tickwatch_core::rules::Fire::Enter,
    );
    edited_doc(doc, fields)
}

/// `doc` with the fields given on the command line changed.
fn edited_doc(mut doc: RuleDoc, fields: &RuleFields) -> anyhow::Result<RuleDoc> {
    if let Some(symbols) = &fields.symbols {
        doc.symbols = symbols.parse::<SymbolPattern>()?;
    }
    if let Some(when) = &fields.when {
        doc.condition = when.parse()?;
    }
    if let Some(fire) = &fields.fire {
        doc.fire = fire.parse()?;
    }
    if let Some(hysteresis) = fields.hysteresis {
        doc.hysteresis = hysteresis;
    }
    if let Some(cooldown) = &fields.cooldown {
        doc.cooldown_seconds = match cooldown.as_str() {
            "none" => None,
            seconds => Some(seconds.parse().map_err(|_| RulesError {
                location: "cooldown_seconds".into(),
                reason: format!("{seconds:?} is not a whole number of seconds"),
            })?),
        };
    }
    if let Some(expires) = &fields.expires_at {
        doc.expires_at = match expires.as_str() {
            "none" => None,
            text => Some(parse_time("expires_at", text)?),
        };
    }
    if let Some(label) = &fields.label {
        doc.label = match label.as_str() {
            "none" => None,
            text => Some(Label::parse(text)?),
        };
    }
    if !fields.except.is_empty() {
        doc.except = fields
            .except
            .iter()
            .map(|s| Symbol::parse(s).map_err(|e| anyhow::anyhow!("except: {e}")))
            .collect::<anyhow::Result<_>>()?;
    }
    if fields.paused {
        doc.paused = true;
    }
    Ok(doc)
}

/// A rules file: a JSON array of rules, or a TOML file of bands (translated).
fn read_rule_file(path: &Path) -> anyhow::Result<Vec<Rule>> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let is_toml = path.extension().is_some_and(|ext| ext == "toml");
    let parsed = if is_toml {
        let base = Band::new(
            tickwatch_core::rules::HIGH_THRESHOLD_DEFAULT,
            tickwatch_core::rules::LOW_THRESHOLD_DEFAULT,
            0.0,
            Mode::Cross,
        )?;
        BandSet::from_toml(base, &text).map(|bands| bands.to_rules())
    } else {
        parse_rule_list(&text)
    };
    parsed.with_context(|| format!("rules file {}", path.display()))
}

fn print_list(
    stored: Option<&StoredRules>,
    base: &[Rule],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let rules = in_force(stored, base);
    print_rules(&rules, format)?;
    if format == OutputFormat::Table {
        match stored {
            None => eprintln!(
                "({} base rules: nothing has been written to this store yet)",
                rules.len()
            ),
            Some(stored) => {
                for invalid in &stored.invalid {
                    eprintln!(
                        "invalid rule {:?} (skipped by the pipeline): {}",
                        invalid.id, invalid.error
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_rules(rules: &[Rule], format: OutputFormat) -> anyhow::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match format {
        OutputFormat::Json => {
            for rule in rules {
                serde_json::to_writer(&mut out, rule.doc())?;
                writeln!(out)?;
            }
        }
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<20}  {:<12}  {:<14}  {:<5}  {:>8}  {:<24}  {:<6}  {:>7}  LABEL",
                "ID", "SYMBOLS", "CONDITION", "FIRE", "COOLDOWN", "EXPIRES", "STATE", "VERSION"
            )?;
            for rule in rules {
                let doc = rule.doc();
                let symbols = if doc.except.is_empty() {
                    doc.symbols.to_string()
                } else {
                    format!("{} -{}", doc.symbols, doc.except.len())
                };
                writeln!(
                    out,
                    "{:<20}  {:<12}  {:<14}  {:<5}  {:>8}  {:<24}  {:<6}  {:>7}  {}",
                    doc.id.as_str(),
                    symbols,
                    doc.condition.to_string(),
                    doc.fire.as_str(),
                    doc.cooldown_seconds
                        .map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
                    doc.expires_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                    if doc.paused { "paused" } else { "active" },
                    doc.version,
                    // A label is user text: printed with its control characters escaped.
                    doc.label.map_or_else(String::new, |l| {
                        tickwatch_core::tick::escape_controls(l.as_str()).into_owned()
                    }),
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
