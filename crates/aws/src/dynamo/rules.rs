//! The rules table: [`DynamoRuleStore`], the core's [`RuleStore`] over DynamoDB. The Lambda
//! function and `tickwatch sqs-worker` read it ([`crate::refresh::RulesRefresher`]);
//! `tickwatch rules ... --table NAME` writes it.
//!
//! # Table
//!
//! Partition key `rule_id` (S), no sort key. One item per rule: `rule_id`, `definition` (S: the
//! rule as JSON, the core's `RuleDoc`, exactly what `tickwatch rules export` prints) and
//! `version` (N: the rule's version, for people reading the table; the definition's own
//! `version` is the one used). One more item, `rule_id = "#version"` ([`RULES_VERSION_ID`]),
//! holds the table's change counter in `version` (N); `#` cannot occur in a rule id, so it never
//! collides with a rule. A table without that item has never been written: the base rules (the
//! deployment's variables, or the two defaults) are in force, whatever other items it holds.
//!
//! # Reads
//!
//! [`RuleStore::rules_version`] is one strongly consistent `GetItem` of the version item: the
//! cheap read a running function makes once per refresh interval. [`RuleStore::load_rules`]
//! reads the version first, then every item with a strongly consistent, paginated `Scan`. An
//! item that does not parse or validate is listed in [`StoredRules::invalid`] with what is wrong
//! with it, never an error for the whole load: one bad rule must not stop the others. Reading
//! the version first means a change committed during the scan is seen by the next check, never
//! missed.
//!
//! # Writes
//!
//! [`RuleStore::commit_rules`] is a `TransactWriteItems`: a put of the version item, conditional
//! on the version the change was planned from (`attribute_not_exists` for a table never written)
//! and moving it up by one, plus the puts and deletes of the change. A transaction holds at most
//! [`TRANSACT_ITEMS_MAX`] items and 4 MB, so a big change goes out in parts of at most
//! [`RULE_WRITES_PER_TRANSACTION_MAX`] writes (and [`TRANSACT_DEFINITION_BYTES_MAX`] bytes of
//! definitions), each with its own check and bump of the version (`expected`, `expected + 1`,
//! ...). A failed check on the first part means another writer came first: nothing was written
//! and the answer is `Ok(false)`. A failed check on a later part means another writer changed the
//! rules between two parts: [`AwsError::Interrupted`], which says how far it got. Re-running the
//! change is then safe (an import writes only what differs), and until then a reader may see the
//! rules of the parts written.

use std::collections::HashSet;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use tickwatch_core::ports::{InvalidRule, RuleStore, StoredRules};
use tickwatch_core::rules::{RULES_MAX, Rule, RuleDoc, RuleId, RulesError};

use super::TRANSACT_ITEMS_MAX;
use super::item::{Item, Reader};
use crate::error::AwsError;

/// The id of the item holding the table's change counter.
pub const RULES_VERSION_ID: &str = "#version";

/// Most rule puts and deletes in one transaction: the rest of [`TRANSACT_ITEMS_MAX`] after the
/// version item.
pub const RULE_WRITES_PER_TRANSACTION_MAX: usize = TRANSACT_ITEMS_MAX - 1;

/// Most bytes of rule definitions in one transaction (DynamoDB allows 4 MB in all; the rest is
/// room for names, versions and the version item).
pub const TRANSACT_DEFINITION_BYTES_MAX: usize = 3 * 1024 * 1024;

/// Longest rule definition, in bytes: DynamoDB's item size limit (400 KB) less room for the
/// item's other attributes.
pub const RULE_DEFINITION_BYTES_MAX: usize = 400 * 1024 - 1024;

/// Most items one load reads: every rule the core accepts, as many invalid ones again, and the
/// version item. A table with more is refused rather than read without end.
pub const RULE_ITEMS_SCANNED_MAX: usize = 2 * RULES_MAX + 1;

/// Most `Scan` pages one load reads (each holds up to 1 MB; an empty page that still says "more"
/// counts too).
pub const SCAN_PAGES_MAX: usize = 10_000;

/// Attribute names.
mod attr {
    pub(super) const RULE_ID: &str = "rule_id";
    pub(super) const DEFINITION: &str = "definition";
    pub(super) const VERSION: &str = "version";
}

/// The rules of a deployment in a DynamoDB table (see the module documentation for the layout).
///
/// The function and the worker only read it (their role grants `GetItem` and `Scan`); writing is
/// for `tickwatch rules`, which plans a change with `tickwatch_core::rules::plan_edit` and
/// commits it here:
///
/// ```no_run
/// # async fn example(client: aws_sdk_dynamodb::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use tickwatch_aws::DynamoRuleStore;
/// use tickwatch_core::ports::RuleStore;
/// use tickwatch_core::rules::{Rule, RuleDoc};
///
/// let store = DynamoRuleStore::new(client, "tickwatch-rules-prod");
/// let rule = Rule::from_doc(RuleDoc::from_json(
///     r#"{"id":"aapl-200","symbols":"AAPL","condition":"above 200","fire":"once"}"#,
/// )?)?;
/// let version = store.rules_version().await?;
/// if !store.commit_rules(version, &[rule], &[]).await? {
///     println!("someone else changed the rules first; plan again");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DynamoRuleStore {
    client: Client,
    table: String,
}

impl DynamoRuleStore {
    /// A store over the existing table `table`, through `client` (built once per process, see
    /// [`crate::AwsClients`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoRuleStore {
        DynamoRuleStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    #[cfg(feature = "testing")]
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    async fn version(&self) -> Result<Option<u64>, AwsError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                attr::RULE_ID,
                AttributeValue::S(RULES_VERSION_ID.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", &e))?;
        let Some(item) = got.item() else {
            return Ok(None);
        };
        let r = Reader {
            table: &self.table,
            item,
        };
        let text = r.number(attr::VERSION)?;
        r.parsed(attr::VERSION, text, str::parse::<u64>).map(Some)
    }

    async fn load(&self) -> Result<Option<StoredRules>, AwsError> {
        let Some(version) = self.version().await? else {
            return Ok(None);
        };
        let mut rules = Vec::new();
        let mut invalid = Vec::new();
        let mut scanned = 0usize;
        let mut start = None;
        for _ in 0..SCAN_PAGES_MAX {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Scan", &e))?;
            for item in page.items() {
                scanned += 1;
                if scanned > RULE_ITEMS_SCANNED_MAX {
                    return Err(AwsError::Limit {
                        operation: "Scan",
                        reason: format!(
                            "table {} holds more than {RULE_ITEMS_SCANNED_MAX} items; at most {RULES_MAX} rules can be in force",
                            self.table
                        ),
                    });
                }
                match parse_rule(item) {
                    Parsed::Version => {}
                    Parsed::Rule(rule) => rules.push(*rule),
                    Parsed::Invalid(rule) => invalid.push(rule),
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                // A scan returns items in hash order: sort, so every load lists them alike.
                rules.sort_by_key(Rule::id);
                invalid.sort_by(|a: &InvalidRule, b: &InvalidRule| a.id.cmp(&b.id));
                return Ok(Some(StoredRules {
                    version,
                    rules,
                    invalid,
                }));
            }
        }
        Err(AwsError::Limit {
            operation: "Scan",
            reason: format!(
                "table {} still had more after {SCAN_PAGES_MAX} pages",
                self.table
            ),
        })
    }

    async fn commit(
        &self,
        expected: Option<u64>,
        put: &[Rule],
        remove: &[RuleId],
    ) -> Result<bool, AwsError> {
        let parts = self.parts(put, remove)?;
        let base = expected.unwrap_or(0);
        let total = parts.len();
        for (index, writes) in parts.into_iter().enumerate() {
            // Part `index` moves the version from `base + index` to `base + index + 1`; only
            // the first may start from a table never written.
            let from = match (index, expected) {
                (0, None) => None,
                _ => Some(base + index as u64),
            };
            let to = (base + index as u64)
                .checked_add(1)
                .ok_or(AwsError::Limit {
                    operation: "TransactWriteItems",
                    reason: format!(
                        "the version of table {} cannot go past {}",
                        self.table,
                        u64::MAX
                    ),
                })?;
            let mut items = vec![self.version_write(from, to)?];
            items.extend(writes);
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => continue,
                Err(error) => error,
            };
            let version_moved = matches!(
                error.as_service_error(),
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled.cancellation_reasons().first().and_then(|r| r.code())
                        == Some(super::CONDITION_FAILED)
            );
            let error = match (version_moved, index) {
                // Another writer came first; nothing was written.
                (true, 0) => return Ok(false),
                (true, _) => {
                    return Err(AwsError::Interrupted {
                        operation: "TransactWriteItems",
                        reason: format!(
                            "another writer changed the rules in table {} during this change: parts 1-{index} of {total} are written (version {}), the rest is not; re-running the change is safe",
                            self.table,
                            base + index as u64
                        ),
                    });
                }
                (false, _) => cancellation_error(&error),
            };
            return Err(if index == 0 {
                error
            } else {
                after_parts(error, index, total, base + index as u64)
            });
        }
        Ok(true)
    }

    /// The put of the version item: from `from` (`None`: no version item) to `to`.
    fn version_write(&self, from: Option<u64>, to: u64) -> Result<TransactWriteItem, AwsError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item(
                attr::RULE_ID,
                AttributeValue::S(RULES_VERSION_ID.to_owned()),
            )
            .item(attr::VERSION, AttributeValue::N(to.to_string()))
            .expression_attribute_names("#v", attr::VERSION);
        let put = match from {
            None => put.condition_expression("attribute_not_exists(#v)"),
            Some(from) => put
                .condition_expression("#v = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(from.to_string())),
        };
        let put = put
            .build()
            .map_err(|e| AwsError::build("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The writes of a change, split into transactions' worth. Checks every limit before any
    /// part is sent, so a change that cannot be written is refused whole. A change with no
    /// writes still makes one part: it moves the version.
    fn parts(
        &self,
        put: &[Rule],
        remove: &[RuleId],
    ) -> Result<Vec<Vec<TransactWriteItem>>, AwsError> {
        let refuse = |reason: String| AwsError::Limit {
            operation: "TransactWriteItems",
            reason,
        };
        let mut ids = HashSet::new();
        for id in put.iter().map(Rule::id).chain(remove.iter().copied()) {
            // A transaction may not touch an item twice; a change that does is a bug upstream.
            if !ids.insert(id) {
                return Err(refuse(format!(
                    "rule {id} appears twice in one change; each rule is put or removed once"
                )));
            }
        }
        let mut writes: Vec<(TransactWriteItem, usize)> = Vec::with_capacity(ids.len());
        for rule in put {
            let definition = serde_json::to_string(rule.doc())
                .map_err(|e| AwsError::build("TransactWriteItems", e))?;
            if definition.len() > RULE_DEFINITION_BYTES_MAX {
                return Err(refuse(format!(
                    "rule {} is {} bytes as JSON; an item holds at most {RULE_DEFINITION_BYTES_MAX}",
                    rule.id(),
                    definition.len()
                )));
            }
            let bytes = definition.len();
            let put = Put::builder()
                .table_name(&self.table)
                .item(attr::RULE_ID, AttributeValue::S(rule.id().to_string()))
                .item(attr::DEFINITION, AttributeValue::S(definition))
                .item(attr::VERSION, AttributeValue::N(rule.version().to_string()))
                .build()
                .map_err(|e| AwsError::build("TransactWriteItems", e))?;
            writes.push((TransactWriteItem::builder().put(put).build(), bytes));
        }
        for id in remove {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key(attr::RULE_ID, AttributeValue::S(id.to_string()))
                .build()
                .map_err(|e| AwsError::build("TransactWriteItems", e))?;
            writes.push((TransactWriteItem::builder().delete(delete).build(), 0));
        }
        let mut parts: Vec<Vec<TransactWriteItem>> = vec![Vec::new()];
        let mut part_bytes = 0usize;
        for (write, bytes) in writes {
            let current = parts.last().map_or(0, Vec::len);
            if current == RULE_WRITES_PER_TRANSACTION_MAX
                || (current > 0 && part_bytes + bytes > TRANSACT_DEFINITION_BYTES_MAX)
            {
                parts.push(Vec::new());
                part_bytes = 0;
            }
            part_bytes += bytes;
            parts
                .last_mut()
                .expect("parts always has a last part")
                .push(write);
        }
        Ok(parts)
    }
}

/// What one scanned item is.
enum Parsed {
    /// The change counter.
    Version,
    Rule(Box<Rule>),
    Invalid(InvalidRule),
}

/// Reads one item of the rules table. Every problem is the rule's, not the load's.
fn parse_rule(item: &Item) -> Parsed {
    let id = match item.get(attr::RULE_ID) {
        Some(AttributeValue::S(id)) => id.clone(),
        // The table's key schema makes `rule_id` a string; anything else is not ours.
        _ => String::from("(no rule_id)"),
    };
    if id == RULES_VERSION_ID {
        return Parsed::Version;
    }
    let invalid = |location: &str, reason: String| {
        Parsed::Invalid(InvalidRule {
            id: id.clone(),
            error: RulesError {
                location: location.to_owned(),
                reason,
            },
        })
    };
    let definition = match item.get(attr::DEFINITION) {
        Some(AttributeValue::S(text)) => text,
        Some(_) => return invalid(attr::DEFINITION, "is not a string (S)".into()),
        None => return invalid(attr::DEFINITION, "is missing".into()),
    };
    let rule = match RuleDoc::from_json(definition).and_then(Rule::from_doc) {
        Ok(rule) => rule,
        Err(error) => {
            return Parsed::Invalid(InvalidRule { id, error });
        }
    };
    if rule.id().as_str() != id {
        return invalid(
            "id",
            format!(
                "the definition's id {} is not the item's rule_id {id:?}",
                rule.id()
            ),
        );
    }
    Parsed::Rule(Box::new(rule))
}

/// The error of a transaction cancelled for another reason than the version check: the first
/// item's reason that says why (classified by its code), else the call's own error.
fn cancellation_error(error: &crate::error::SdkError<TransactWriteItemsError>) -> AwsError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    {
        let reason = cancelled
            .cancellation_reasons()
            .iter()
            .find(|r| r.code().is_some_and(|code| code != "None"));
        if let Some(reason) = reason {
            let code = reason.code().unwrap_or_default();
            return AwsError::entry(
                "TransactWriteItems",
                code,
                reason.message(),
                !crate::error::is_transient_code(code),
            );
        }
    }
    AwsError::from_sdk("TransactWriteItems", error)
}

/// `error`, failing part `index + 1` of `total`, saying that the parts before it are written.
fn after_parts(error: AwsError, index: usize, total: usize, version: u64) -> AwsError {
    let note = format!(
        "part {} of {total} failed after parts 1-{index} were written (version {version}); re-running the change is safe: ",
        index + 1
    );
    match error {
        AwsError::Call {
            operation,
            class,
            code,
            message,
        } => AwsError::Call {
            operation,
            class,
            code,
            message: format!("{note}{message}"),
        },
        AwsError::Entry {
            operation,
            class,
            code,
            message,
        } => AwsError::Entry {
            operation,
            class,
            code,
            message: format!("{note}{message}"),
        },
        other => other,
    }
}

impl RuleStore for DynamoRuleStore {
    type Error = AwsError;

    fn rules_version(&self) -> impl Future<Output = Result<Option<u64>, AwsError>> + Send {
        self.version()
    }

    fn load_rules(&self) -> impl Future<Output = Result<Option<StoredRules>, AwsError>> + Send {
        self.load()
    }

    fn commit_rules(
        &self,
        expected: Option<u64>,
        put: &[Rule],
        remove: &[RuleId],
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        self.commit(expected, put, remove)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue as V;

    use super::*;

    fn rule(id: &str) -> Rule {
        Rule::from_doc(
            RuleDoc::from_json(&format!(
                r#"{{"id":"{id}","symbols":"AAPL","condition":"above 200"}}"#
            ))
            .expect("valid JSON"),
        )
        .expect("valid rule")
    }

    fn item(pairs: &[(&str, V)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>()
    }

    fn store() -> DynamoRuleStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        DynamoRuleStore::new(Client::from_conf(config), "rules")
    }

    #[test]
    fn items_read_as_rules_the_version_or_invalid_rules_naming_the_field() {
        let definition = serde_json::to_string(rule("aapl-200").doc()).expect("JSON");
        let good = item(&[
            ("rule_id", V::S("aapl-200".into())),
            ("definition", V::S(definition.clone())),
            ("version", V::N("1".into())),
        ]);
        assert!(matches!(parse_rule(&good), Parsed::Rule(r) if *r == rule("aapl-200")));
        let version = item(&[
            ("rule_id", V::S("#version".into())),
            ("version", V::N("7".into())),
        ]);
        assert!(matches!(parse_rule(&version), Parsed::Version));
        let cases: [(Item, &str, &str); 5] = [
            (
                item(&[("rule_id", V::S("x".into()))]),
                "definition",
                "is missing",
            ),
            (
                item(&[
                    ("rule_id", V::S("x".into())),
                    ("definition", V::N("1".into())),
                ]),
                "definition",
                "is not a string",
            ),
            (
                item(&[
                    ("rule_id", V::S("x".into())),
                    ("definition", V::S("{".into())),
                ]),
                "rule",
                "EOF",
            ),
            (
                item(&[
                    ("rule_id", V::S("x".into())),
                    (
                        "definition",
                        V::S(r#"{"id":"x","symbols":"AAPL","condition":"beside 3"}"#.into()),
                    ),
                ]),
                "condition",
                "must be \"above X\", \"below X\"",
            ),
            (
                item(&[
                    ("rule_id", V::S("other".into())),
                    ("definition", V::S(definition)),
                ]),
                "id",
                "is not the item's rule_id",
            ),
        ];
        for (item, location, fragment) in cases {
            let Parsed::Invalid(invalid) = parse_rule(&item) else {
                panic!("{item:?} should be invalid");
            };
            assert_eq!(invalid.error.location, location, "{invalid:?}");
            assert!(
                invalid.error.reason.contains(fragment),
                "{invalid:?} should mention {fragment}"
            );
            assert_eq!(Some(&V::S(invalid.id.clone())), item.get("rule_id"));
        }
    }

    #[test]
    fn changes_split_into_transactions_of_at_most_99_writes() {
        let store = store();
        let count = |put: usize, remove: usize| -> Vec<usize> {
            let rules: Vec<Rule> = (0..put).map(|i| rule(&format!("p{i}"))).collect();
            let ids: Vec<RuleId> = (0..remove)
                .map(|i| RuleId::parse(&format!("r{i}")).expect("valid"))
                .collect();
            store
                .parts(&rules, &ids)
                .expect("valid change")
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(count(0, 0), [0], "an empty change still moves the version");
        assert_eq!(count(99, 0), [99]);
        assert_eq!(count(100, 0), [99, 1]);
        assert_eq!(count(200, 50), [99, 99, 52]);
        assert_eq!(count(3, 2), [5]);
    }

    #[test]
    fn changes_that_cannot_be_written_are_refused_whole() {
        let store = store();
        let twice = store
            .parts(&[rule("a")], &[RuleId::parse("a").expect("valid")])
            .expect_err("put and removed");
        assert!(twice.to_string().contains("appears twice"), "{twice}");
        let big = Rule::from_doc(RuleDoc {
            except: (0..60_000)
                .map(|i| tickwatch_core::Symbol::parse(&format!("S{i}")).expect("valid"))
                .collect(),
            ..rule("big").doc().clone()
        })
        .expect("valid rule");
        let error = store.parts(&[rule("a"), big], &[]).expect_err("too big");
        assert!(error.to_string().contains("rule big is"), "{error}");
        assert_eq!(
            tickwatch_core::ports::Classify::class(&error),
            tickwatch_core::ports::ErrorClass::Permanent
        );
    }

    #[test]
    fn later_part_failures_say_how_far_the_change_got() {
        let error = AwsError::Call {
            operation: "TransactWriteItems",
            class: tickwatch_core::ports::ErrorClass::Transient,
            code: Some("ThrottlingException".into()),
            message: "slow down".into(),
        };
        let text = after_parts(error, 2, 3, 12).to_string();
        assert!(
            text.contains("part 3 of 3 failed after parts 1-2 were written (version 12)"),
            "{text}"
        );
        assert!(text.contains("re-running the change is safe"), "{text}");
    }
}
