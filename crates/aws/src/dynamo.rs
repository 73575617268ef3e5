//! DynamoDB: the alerts table ([`AlertStore`]), the state table ([`StateStore`]), behaving
//! exactly like the core's reference `MemoryStore`, and the rules table ([`DynamoRuleStore`]).
//!
//! # Tables
//!
//! **Alerts**: partition key `symbol` (S), sort key `timestamp` (S): the tick time as RFC 3339 UTC
//! with exactly three fractional digits, then `#`, then the id of the rule that raised the alert
//! (`2026-11-26T14:30:00.123Z#aapl-200`, [`alert_sort_key`]). The time is fixed width and comes
//! first, so a symbol's alerts sort by tick time and a time range is one `Query` (`BETWEEN
//! "<from>" AND "<to>#~"`, or `begins_with` on a prefix of the time); the rule makes room for
//! every rule that fires on one tick. Attributes `tick_time` (S, the RFC 3339 tick time alone),
//! `rule_id` (S), `label` (S, only when the rule has one), `fire` (S: `every`, `enter`, `once`),
//! `alert_id` (S), `kind` (S, `HIGH`/`LOW`), `price` (N), `threshold` (N), `processed_at` (S) and
//! `notified` (BOOL).
//!
//! **State**: partition key `symbol` (S); attributes `last_seen` (N, epoch milliseconds: the
//! compare-and-set version), `last_seen_at` (S, RFC 3339, for people reading the table) and
//! `rules` (B: the firing state of each rule, `tickwatch_core::rules::encode_rule_states`).
//!
//! **Rules**: see [`rules`].
//!
//! Items written by tickwatch 0.1 are read, not refused: an alert item whose sort key is the tick
//! time alone, with `mode` and no `rule_id`, reads as raised by rule `high` or `low` (by its kind),
//! firing on `enter` (`cross`) or `every` tick (`level`), and the alert of a `high` or `low` rule
//! is looked up (and marked notified) there too when the new key holds nothing; a state item with
//! `zone` and no `rules` reads through `SymbolState::from_zone`, and its next write replaces it.
//!
//! # Writes
//!
//! Alert inserts are conditional puts (`attribute_not_exists`), so a redelivered tick can never
//! store a second item; the condition failure returns the old item, which says whether it was
//! already announced. A state change is a put conditional on `last_seen` (or on no state at all).
//! State changes with alerts share transactions: one `TransactWriteItems` of up to
//! [`TRANSACT_ITEMS_MAX`] items writes several symbols' states and alerts, each symbol atomically
//! with its alerts; a cancelled transaction's reasons, item by item, give each symbol its own
//! answer and the symbols merely caught in the cancellation go again without the others (see
//! `DynamoStore::advance_together`). A state change alone stays a plain conditional put (a
//! transactional write costs twice the write units). Marking alerts notified is one transaction
//! of conditional updates per 100 alerts. Calls go out concurrently, at most
//! [`CALLS_IN_FLIGHT_MAX`] at a time.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use futures_util::stream::{self, StreamExt};
use tickwatch_core::ports::{Advance, Advanced, AlertStore, Inserted, StateStore, StoredAlert};
use tickwatch_core::rules::SymbolState;
use tickwatch_core::{Alert, AlertKey, Symbol};

use crate::error::AwsError;

// Visible to the crate so `testing` can re-export the item-size rule for the benches.
pub(crate) mod item;
pub mod rules;
#[cfg(feature = "testing")]
mod testing;

pub use item::{SORT_KEY_SEPARATOR, alert_sort_key};
pub use rules::DynamoRuleStore;

use item::{
    Item, Key, alert_item, alert_key, alert_key_item, attr, key_item, key_of, legacy_alert_key,
    legacy_kind, parse_alert, parse_state, state_condition, state_item,
};

/// Most keys in one `BatchGetItem` request (the API's limit).
pub const BATCH_GET_KEYS_MAX: usize = 100;

/// How many times one `BatchGetItem` chunk is sent in all, re-requesting the keys DynamoDB left
/// unprocessed; keys still unprocessed then fail transiently and the pipeline's backoff takes over.
pub const BATCH_GET_ROUNDS_MAX: u32 = 3;

/// Most DynamoDB calls one port call keeps in flight. A Lambda batch holds at most 25 messages, so
/// every item of a batch goes out at once.
pub const CALLS_IN_FLIGHT_MAX: usize = 25;

/// Most items in one `TransactWriteItems` (the API's limit): the state plus 99 alerts.
pub const TRANSACT_ITEMS_MAX: usize = 100;

/// How many times one state change is sent in all, dropping each time the alerts that turned out
/// to exist already.
pub const TRANSACT_ROUNDS_MAX: u32 = 3;

/// The DynamoDB reason code of a failed condition inside a cancelled transaction.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// The alerts and state tables.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    alerts_table: String,
    state_table: String,
}

impl DynamoStore {
    /// A store over two existing tables.
    pub fn new(
        client: Client,
        alerts_table: impl Into<String>,
        state_table: impl Into<String>,
    ) -> DynamoStore {
        DynamoStore {
            client,
            alerts_table: alerts_table.into(),
            state_table: state_table.into(),
        }
    }

    /// The alerts table's name.
    pub fn alerts_table(&self) -> &str {
        &self.alerts_table
    }

    /// The state table's name.
    pub fn state_table(&self) -> &str {
        &self.state_table
    }

    /// The state in an item returned by a failed condition (`None`: there was no item).
    fn stored_state(&self, item: Option<&Item>) -> Result<Option<SymbolState>, AwsError> {
        item.map(|item| parse_state(&self.state_table, item))
            .transpose()
    }

    /// Deletes an alert. Removing alerts is no part of the pipeline; operator tools use it to
    /// clean up after themselves (`tickwatch smoke` removes its probe alerts).
    pub async fn delete_alert(&self, key: &AlertKey) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.alerts_table)
            .set_key(Some(alert_key_item(key)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteItem", &e))
    }

    /// Deletes a symbol's state, so its next tick counts as the first one seen. For operator
    /// tools, like [`DynamoStore::delete_alert`].
    pub async fn delete_state(&self, symbol: &Symbol) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(key_item(&(symbol.to_string(), None))))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteItem", &e))
    }

    /// Checks that both tables exist (and opens a connection doing so). For start-up.
    pub async fn check_tables(&self) -> Result<(), AwsError> {
        self.check_alerts_table().await?;
        self.check_state_table().await
    }

    /// Checks that the alerts table exists.
    pub async fn check_alerts_table(&self) -> Result<(), AwsError> {
        self.describe(&self.alerts_table).await
    }

    /// Checks that the state table exists.
    pub async fn check_state_table(&self) -> Result<(), AwsError> {
        self.describe(&self.state_table).await
    }

    async fn describe(&self, table: &str) -> Result<(), AwsError> {
        self.client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTable", &e))?;
        Ok(())
    }

    async fn insert_one(&self, alert: &Alert) -> Result<Inserted, AwsError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.alerts_table)
            .set_item(Some(alert_item(alert)))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", attr::SYMBOL)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Inserted::New),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let existing = match failed.item() {
                        Some(item) => Some(item.clone()),
                        // Older emulators do not return the old item: read it.
                        None => self.get_alert_item(&alert.key()).await?,
                    };
                    match existing {
                        Some(item) => self.already_there(&item),
                        // Deleted in between: the next attempt will store it.
                        None => Err(AwsError::NoAnswer {
                            operation: "PutItem",
                            reason: format!(
                                "alert {} existed and then vanished; try again",
                                alert.alert_id
                            ),
                        }),
                    }
                }
                _ => Err(AwsError::from_sdk("PutItem", &error)),
            },
        }
    }

    async fn get_alert_item(&self, key: &AlertKey) -> Result<Option<Item>, AwsError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.alerts_table)
            .set_key(Some(alert_key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", &e))?;
        Ok(got.item().cloned())
    }

    /// What an existing item under an alert's key means for inserting it: the key holds the rule,
    /// the symbol and the tick time, so the item is that alert, stored before.
    fn already_there(&self, item: &Item) -> Result<Inserted, AwsError> {
        let stored = parse_alert(&self.alerts_table, item)?;
        Ok(Inserted::AlreadyThere {
            notified: stored.notified,
        })
    }

    async fn mark_one(&self, key: &AlertKey) -> Result<(), AwsError> {
        if self.mark_item(&alert_key(key), None).await? {
            return Ok(());
        }
        // A `high` or `low` alert stored by tickwatch 0.1 sits under the tick time alone, with
        // the kind telling which band side raised it.
        if let (Some(legacy), Some(kind)) = (legacy_alert_key(key), legacy_kind(&key.rule))
            && self.mark_item(&legacy, Some(kind.as_str())).await?
        {
            return Ok(());
        }
        // Like the reference store: marking an alert that is not stored changes nothing.
        tracing::warn!(symbol = %key.symbol, timestamp = %key.at, rule_id = %key.rule,
            "Alert to mark as notified is not stored.");
        Ok(())
    }

    /// Marks `keys` (at most [`TRANSACT_ITEMS_MAX`], distinct or not) notified in one
    /// `TransactWriteItems` of conditional updates: one call for a batch's marks instead of one
    /// per alert. An alert the transaction does not find under its key (stored by tickwatch 0.1,
    /// or not at all) is marked on its own by [`DynamoStore::mark_one`]; an update refused for a
    /// reason of its own fails only its key; the rest go again. Answers in the order of `keys`.
    async fn mark_together(&self, keys: &[AlertKey]) -> Vec<Result<(), AwsError>> {
        let mut answers: Vec<Option<Result<(), AwsError>>> = vec![None; keys.len()];
        // A transaction may not touch an item twice: repeated keys share the first one's answer.
        let mut first: HashMap<AlertKey, usize> = HashMap::new();
        let mut pending: Vec<usize> = (0..keys.len())
            .filter(|&i| *first.entry(keys[i]).or_insert(i) == i)
            .collect();
        let mut alone: Vec<usize> = Vec::new();
        for _ in 0..TRANSACT_ROUNDS_MAX {
            if pending.is_empty() {
                break;
            }
            let items = pending
                .iter()
                .map(|&i| {
                    let update = Update::builder()
                        .table_name(&self.alerts_table)
                        .set_key(Some(key_item(&alert_key(&keys[i]))))
                        .update_expression("SET #n = :true")
                        .condition_expression("attribute_exists(#s)")
                        .expression_attribute_names("#n", attr::NOTIFIED)
                        .expression_attribute_names("#s", attr::SYMBOL)
                        .expression_attribute_values(":true", AttributeValue::Bool(true))
                        .build()
                        .map_err(|e| AwsError::build("TransactWriteItems", e))?;
                    Ok(TransactWriteItem::builder().update(update).build())
                })
                .collect::<Result<Vec<_>, AwsError>>();
            let items = match items {
                Ok(items) => items,
                Err(error) => {
                    for i in pending.drain(..) {
                        answers[i] = Some(Err(error.clone()));
                    }
                    break;
                }
            };
            let (reasons, error) = match self.transact_items(items).await {
                Transaction::Committed => {
                    for i in pending.drain(..) {
                        answers[i] = Some(Ok(()));
                    }
                    break;
                }
                Transaction::Failed(error) => {
                    for i in pending.drain(..) {
                        answers[i] = Some(Err(error.clone()));
                    }
                    break;
                }
                Transaction::Cancelled { reasons, error } => (reasons, error),
            };
            let mut explained = false;
            for (n, &i) in pending.iter().enumerate() {
                match reasons.get(n).and_then(|r| r.code()).unwrap_or("None") {
                    "None" => {}
                    CONDITION_FAILED => {
                        explained = true;
                        alone.push(i);
                    }
                    other => {
                        explained = true;
                        answers[i] = Some(Err(refused(&reasons[n], other)));
                    }
                }
            }
            if !explained {
                for i in pending.drain(..) {
                    answers[i] = Some(Err(error.clone()));
                }
                break;
            }
            pending.retain(|i| answers[*i].is_none() && !alone.contains(i));
        }
        for i in pending {
            answers[i] = Some(Err(AwsError::NoAnswer {
                operation: "TransactWriteItems",
                reason: format!(
                    "marking alerts notified still cancelled after {TRANSACT_ROUNDS_MAX} rounds"
                ),
            }));
        }
        let singles = bounded(alone.iter().map(|&i| self.mark_one(&keys[i])).collect()).await;
        for (&i, answer) in alone.iter().zip(singles) {
            answers[i] = Some(answer);
        }
        (0..keys.len())
            .map(|i| {
                answers[first[&keys[i]]]
                    .clone()
                    .expect("every key is answered")
            })
            .collect()
    }

    /// Marks the item under `key` notified if it exists (and, with `kind`, is of that kind);
    /// returns whether it did.
    async fn mark_item(&self, key: &Key, kind: Option<&str>) -> Result<bool, AwsError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.alerts_table)
            .set_key(Some(key_item(key)))
            .update_expression("SET #n = :true")
            .expression_attribute_names("#n", attr::NOTIFIED)
            .expression_attribute_names("#s", attr::SYMBOL)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        // Never create a partial item.
        update = match kind {
            None => update.condition_expression("attribute_exists(#s)"),
            Some(kind) => update
                .condition_expression("attribute_exists(#s) AND #k = :kind")
                .expression_attribute_names("#k", attr::KIND)
                .expression_attribute_values(":kind", AttributeValue::S(kind.to_owned())),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(AwsError::from_sdk("UpdateItem", &error)),
        }
    }

    /// A state change without alerts: one conditional put.
    async fn put_state(&self, change: &Advance) -> Result<Advanced, AwsError> {
        let (condition, names, values) = state_condition(change.expected_last_seen);
        let put = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .set_item(Some(state_item(&change.symbol, &change.next)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            // A conflict brings back the stored state, so the caller needs no separate read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Advanced::Applied),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Advanced::Conflict(self.stored_state(failed.item())?))
                }
                _ => Err(AwsError::from_sdk("PutItem", &error)),
            },
        }
    }

    /// The conditional put of a symbol's state, as a transaction item.
    fn state_put(&self, change: &Advance) -> Result<TransactWriteItem, AwsError> {
        let (condition, names, values) = state_condition(change.expected_last_seen);
        let put = Put::builder()
            .table_name(&self.state_table)
            .set_item(Some(state_item(&change.symbol, &change.next)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AwsError::build("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The insert of an alert that must not exist, as a transaction item.
    fn alert_put(&self, alert: &Alert) -> Result<TransactWriteItem, AwsError> {
        let put = Put::builder()
            .table_name(&self.alerts_table)
            .set_item(Some(alert_item(alert)))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", attr::SYMBOL)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AwsError::build("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// State changes with alerts, several symbols to a transaction: one `TransactWriteItems` of
    /// every symbol's state put and alert inserts, so a batch's writes are one call, not one per
    /// symbol. A cancelled transaction says, item by item, why: a symbol whose state changed
    /// under it gets its conflict, alerts that exist already are done, a symbol whose item was
    /// throttled or otherwise refused gets that error; the other symbols were only caught in the
    /// cancellation and go again, in a transaction without them. So one symbol's failure fails
    /// only that symbol. Answers in the order of `changes`.
    async fn advance_together(&self, changes: &[&Advance]) -> Vec<Result<Advanced, AwsError>> {
        let mut answers: Vec<Option<Result<Advanced, AwsError>>> = vec![None; changes.len()];
        // The alerts still to insert per pending change; one item per key (a transaction may not
        // touch an item twice).
        let mut pending: Vec<(usize, Vec<&Alert>)> = changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                let mut seen = HashSet::new();
                let alerts = change
                    .alerts
                    .iter()
                    .filter(|a| seen.insert(a.key()))
                    .collect();
                (i, alerts)
            })
            .collect();
        for _ in 0..TRANSACT_ROUNDS_MAX {
            if pending.is_empty() {
                break;
            }
            let mut items = Vec::new();
            for (i, alerts) in &pending {
                let built = std::iter::once(self.state_put(changes[*i]))
                    .chain(alerts.iter().map(|alert| self.alert_put(alert)))
                    .collect::<Result<Vec<_>, _>>();
                match built {
                    Ok(built) => items.extend(built),
                    Err(error) => answers[*i] = Some(Err(error)),
                }
            }
            pending.retain(|(i, _)| answers[*i].is_none());
            if pending.is_empty() {
                break;
            }
            let (reasons, error) = match self.transact_items(items).await {
                Transaction::Committed => {
                    for (i, _) in pending.drain(..) {
                        answers[i] = Some(Ok(Advanced::Applied));
                    }
                    break;
                }
                // The call failed as a whole: every symbol in it failed alike.
                Transaction::Failed(error) => {
                    for (i, _) in pending.drain(..) {
                        answers[i] = Some(Err(error.clone()));
                    }
                    break;
                }
                // Reasons come in item order: each symbol's state, then its alerts.
                Transaction::Cancelled { reasons, error } => (reasons, error),
            };
            let mut explained = false;
            let mut at = 0;
            for (i, alerts) in &mut pending {
                let (state, rest) = (at, at + 1);
                at = rest + alerts.len();
                match self
                    .settle(&reasons[state.min(reasons.len())..], alerts)
                    .await
                {
                    Settled::Again => {}
                    Settled::AlertsExist(existing) => {
                        explained = true;
                        let mut index = 0;
                        alerts.retain(|_| {
                            index += 1;
                            !existing.contains(&(index - 1))
                        });
                    }
                    Settled::Done(answer) => {
                        explained = true;
                        answers[*i] = Some(answer);
                    }
                }
            }
            if !explained {
                // Cancelled, but no item says why: let the class of the error decide.
                for (i, _) in pending.drain(..) {
                    answers[i] = Some(Err(error.clone()));
                }
                break;
            }
            pending.retain(|(i, _)| answers[*i].is_none());
        }
        for (i, _) in pending {
            answers[i] = Some(Err(AwsError::NoAnswer {
                operation: "TransactWriteItems",
                reason: format!(
                    "state change of {} still cancelled after {TRANSACT_ROUNDS_MAX} rounds",
                    changes[i].symbol
                ),
            }));
        }
        answers
            .into_iter()
            .map(|answer| answer.expect("every change is answered"))
            .collect()
    }

    /// Sends one `TransactWriteItems` of `items`.
    async fn transact_items(&self, items: Vec<TransactWriteItem>) -> Transaction {
        let error = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Transaction::Committed,
            Err(error) => error,
        };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => return Transaction::Failed(AwsError::from_sdk("TransactWriteItems", &error)),
        };
        Transaction::Cancelled {
            reasons,
            error: AwsError::from_sdk("TransactWriteItems", &error),
        }
    }

    /// What the cancellation `reasons` of one symbol's items (its state, then `alerts`, in
    /// order) say about it.
    async fn settle(&self, reasons: &[CancellationReason], alerts: &[&Alert]) -> Settled {
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        if code(0) == CONDITION_FAILED {
            return Settled::Done(self.stored_state(reasons[0].item()).map(Advanced::Conflict));
        }
        if code(0) != "None" {
            return Settled::Done(Err(refused(&reasons[0], code(0))));
        }
        let mut existing = Vec::new();
        for (n, alert) in alerts.iter().enumerate() {
            match code(n + 1) {
                "None" => {}
                CONDITION_FAILED => {
                    let item = match reasons[n + 1].item() {
                        Some(item) => Ok(Some(item.clone())),
                        // No old item returned: check it ourselves.
                        None => self.get_alert_item(&alert.key()).await,
                    };
                    let checked = match item {
                        Ok(Some(item)) => self.already_there(&item).map(|_| ()),
                        Ok(None) => Err(AwsError::NoAnswer {
                            operation: "TransactWriteItems",
                            reason: format!(
                                "alert {} existed and then vanished; try again",
                                alert.alert_id
                            ),
                        }),
                        Err(error) => Err(error),
                    };
                    if let Err(error) = checked {
                        return Settled::Done(Err(error));
                    }
                    existing.push(n);
                }
                other => return Settled::Done(Err(refused(&reasons[n + 1], other))),
            }
        }
        if existing.is_empty() {
            Settled::Again
        } else {
            Settled::AlertsExist(existing)
        }
    }

    /// Reads items by key, consistently, in chunks of [`BATCH_GET_KEYS_MAX`], re-requesting
    /// unprocessed keys up to [`BATCH_GET_ROUNDS_MAX`] rounds. One answer per distinct key.
    async fn batch_get(
        &self,
        table: &str,
        keys: &[Key],
    ) -> HashMap<Key, Result<Option<Item>, AwsError>> {
        let chunks: Vec<Vec<Key>> = keys
            .chunks(BATCH_GET_KEYS_MAX)
            .map(<[Key]>::to_vec)
            .collect();
        let answers = bounded(
            chunks
                .into_iter()
                .map(|chunk| self.batch_get_chunk(table, chunk))
                .collect(),
        )
        .await;
        answers.into_iter().flatten().collect()
    }

    async fn batch_get_chunk(
        &self,
        table: &str,
        chunk: Vec<Key>,
    ) -> HashMap<Key, Result<Option<Item>, AwsError>> {
        let mut answers = HashMap::new();
        let mut pending: Vec<Key> = chunk;
        for _ in 0..BATCH_GET_ROUNDS_MAX {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending.iter().map(key_item).collect()))
                .consistent_read(true)
                .build()
                .map_err(|e| AwsError::build("BatchGetItem", e));
            let request = match request {
                Ok(request) => request,
                Err(error) => {
                    answers.extend(pending.drain(..).map(|k| (k, Err(error.clone()))));
                    break;
                }
            };
            let output = match self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
            {
                Ok(output) => output,
                Err(error) => {
                    let error = AwsError::from_sdk("BatchGetItem", &error);
                    answers.extend(pending.drain(..).map(|k| (k, Err(error.clone()))));
                    break;
                }
            };
            let mut found: HashMap<Key, Item> = HashMap::new();
            for item in output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(key) = key_of(item) {
                    found.insert(key, item.clone());
                }
            }
            let unprocessed: HashSet<Key> = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map(|k| k.keys().iter().filter_map(key_of).collect())
                .unwrap_or_default();
            let mut still = Vec::new();
            for key in pending.drain(..) {
                if unprocessed.contains(&key) {
                    still.push(key);
                } else {
                    let item = found.remove(&key);
                    answers.insert(key, Ok(item));
                }
            }
            pending = still;
        }
        for key in pending {
            answers.insert(
                key,
                Err(AwsError::NoAnswer {
                    operation: "BatchGetItem",
                    reason: format!(
                        "key still unprocessed after {BATCH_GET_ROUNDS_MAX} rounds (throttled)"
                    ),
                }),
            );
        }
        answers
    }
}

/// How one `TransactWriteItems` call ended.
enum Transaction {
    /// Every item was written.
    Committed,
    /// The call failed as a whole (throttled, unreachable, refused).
    Failed(AwsError),
    /// Cancelled: nothing was written; a reason per item, in item order, and the error as a whole
    /// (for when no reason says why).
    Cancelled {
        reasons: Vec<CancellationReason>,
        error: AwsError,
    },
}

/// What a cancelled transaction says about one symbol's items.
enum Settled {
    /// Its answer: applied, a conflict or an error of its own.
    Done(Result<Advanced, AwsError>),
    /// These of its alerts (indices into its alerts) exist already: storing them is done,
    /// idempotently; the rest go again.
    AlertsExist(Vec<usize>),
    /// Nothing of its own: it was caught in another symbol's cancellation and goes again.
    Again,
}

/// An item refused for a reason of its own (`ThrottlingError`, `ValidationError`, ...).
fn refused(reason: &CancellationReason, code: &str) -> AwsError {
    AwsError::entry(
        "TransactWriteItems",
        code,
        reason.message(),
        !crate::error::is_transient_code(code),
    )
}

/// Packs changes into transactions of at most [`TRANSACT_ITEMS_MAX`] items (each change's state
/// and its alerts stay together) that touch no item twice (two changes of one symbol, or one
/// alert in two changes, go to different transactions); returns the indices of each
/// transaction's changes.
fn pack(changes: &[&Advance]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut room = 0;
    let mut symbols: HashSet<Symbol> = HashSet::new();
    let mut alerts: HashSet<AlertKey> = HashSet::new();
    for (i, change) in changes.iter().enumerate() {
        let keys: HashSet<AlertKey> = change.alerts.iter().map(Alert::key).collect();
        let items = 1 + keys.len();
        let clash = symbols.contains(&change.symbol) || keys.iter().any(|key| alerts.contains(key));
        if groups.is_empty() || items > room || clash {
            groups.push(Vec::new());
            room = TRANSACT_ITEMS_MAX;
            symbols.clear();
            alerts.clear();
        }
        groups.last_mut().expect("a group").push(i);
        room = room.saturating_sub(items);
        symbols.insert(change.symbol);
        alerts.extend(keys);
    }
    groups
}

/// Awaits `calls`, at most [`CALLS_IN_FLIGHT_MAX`] at a time; answers in input order.
///
/// The futures are built before they go into the stream (rather than mapped inside it) so that
/// the stream's type holds no closure: that keeps the returned future `Send` without fighting
/// the compiler's higher-ranked lifetime checks.
async fn bounded<F: Future>(calls: Vec<F>) -> Vec<F::Output> {
    stream::iter(calls)
        .buffered(CALLS_IN_FLIGHT_MAX)
        .collect()
        .await
}

impl AlertStore for DynamoStore {
    type Error = AwsError;

    fn insert<A: Borrow<Alert> + Sync>(
        &self,
        alerts: &[A],
    ) -> impl Future<Output = Vec<Result<Inserted, AwsError>>> + Send {
        bounded(
            alerts
                .iter()
                .map(|alert| self.insert_one(alert.borrow()))
                .collect(),
        )
    }

    async fn fetch(&self, keys: &[AlertKey]) -> Vec<Result<Option<StoredAlert>, AwsError>> {
        {
            // Each key, and where tickwatch 0.1 would have stored it (`high` and `low` only).
            let mut distinct: Vec<Key> = Vec::new();
            let mut seen = HashSet::new();
            for key in keys {
                for k in [Some(alert_key(key)), legacy_alert_key(key)]
                    .into_iter()
                    .flatten()
                {
                    if seen.insert(k.clone()) {
                        distinct.push(k);
                    }
                }
            }
            let found = self.batch_get(&self.alerts_table, &distinct).await;
            let answer = |k: &Key| found.get(k).cloned().unwrap_or(Ok(None));
            keys.iter()
                .map(|key| {
                    if let Some(item) = answer(&alert_key(key))? {
                        return parse_alert(&self.alerts_table, &item).map(Some);
                    }
                    let Some(legacy) = legacy_alert_key(key) else {
                        return Ok(None);
                    };
                    match answer(&legacy)? {
                        None => Ok(None),
                        Some(item) => {
                            let stored = parse_alert(&self.alerts_table, &item)?;
                            // The other band side's alert of that tick is not the one asked for.
                            Ok((stored.alert.rule_id == key.rule).then_some(stored))
                        }
                    }
                })
                .collect()
        }
    }

    async fn mark_notified(&self, keys: &[AlertKey]) -> Vec<Result<(), AwsError>> {
        // One transaction of updates per 100 keys; chunks go out concurrently.
        let chunks: Vec<&[AlertKey]> = keys.chunks(TRANSACT_ITEMS_MAX).collect();
        bounded(
            chunks
                .into_iter()
                .map(|chunk| self.mark_together(chunk))
                .collect(),
        )
        .await
        .into_iter()
        .flatten()
        .collect()
    }
}

impl StateStore for DynamoStore {
    type Error = AwsError;

    async fn advance(&self, changes: &[Advance]) -> Vec<Result<Advanced, AwsError>> {
        let mut answers: Vec<Option<Result<Advanced, AwsError>>> = vec![None; changes.len()];
        // A change with alerts goes into a shared transaction, unless it is too big for one.
        let mut together: Vec<usize> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let alerts: HashSet<AlertKey> = change.alerts.iter().map(Alert::key).collect();
            if alerts.len() + 1 > TRANSACT_ITEMS_MAX {
                answers[i] = Some(Err(AwsError::Limit {
                    operation: "TransactWriteItems",
                    reason: format!(
                        "{} alerts for {} in one batch; at most {} fit in one transaction with the state (lower the batch size)",
                        alerts.len(),
                        change.symbol,
                        TRANSACT_ITEMS_MAX - 1
                    ),
                }));
            } else if alerts.is_empty() {
                // A state change alone is a plain conditional put: half the write units of a
                // transactional one.
                alone.push(i);
            } else {
                together.push(i);
            }
        }
        let shared: Vec<&Advance> = together.iter().map(|&i| &changes[i]).collect();
        let groups = pack(&shared);
        let (puts, transactions) = futures_util::join!(
            bounded(alone.iter().map(|&i| self.put_state(&changes[i])).collect()),
            bounded(
                groups
                    .iter()
                    .map(|group| {
                        let members: Vec<&Advance> = group.iter().map(|&g| shared[g]).collect();
                        async move { self.advance_together(&members).await }
                    })
                    .collect()
            ),
        );
        for (&i, answer) in alone.iter().zip(puts) {
            answers[i] = Some(answer);
        }
        for (group, group_answers) in groups.iter().zip(transactions) {
            for (&g, answer) in group.iter().zip(group_answers) {
                answers[together[g]] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.expect("every change is answered"))
            .collect()
    }
}
