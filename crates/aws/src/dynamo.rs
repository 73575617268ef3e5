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
//! already announced. A state change is a put conditional on `last_seen` (or on no state at all);
//! with alerts, one `TransactWriteItems` per symbol writes the state and its alerts atomically.
//! Items and symbols go out concurrently, at most [`CALLS_IN_FLIGHT_MAX`] calls at a time.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use futures_util::stream::{self, StreamExt};
use tickwatch_core::ports::{Advance, Advanced, AlertStore, Inserted, StateStore, StoredAlert};
use tickwatch_core::rules::SymbolState;
use tickwatch_core::{Alert, AlertKey, Symbol};

use crate::error::AwsError;

mod item;
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

    async fn advance_one(&self, change: &Advance) -> Result<Advanced, AwsError> {
        if change.alerts.is_empty() {
            return self.put_state(change).await;
        }
        // One item per key: a transaction may not touch an item twice.
        let mut seen = HashSet::new();
        let mut alerts: Vec<&Alert> = change
            .alerts
            .iter()
            .filter(|a| seen.insert(a.key()))
            .collect();
        if alerts.len() + 1 > TRANSACT_ITEMS_MAX {
            return Err(AwsError::Limit {
                operation: "TransactWriteItems",
                reason: format!(
                    "{} alerts for {} in one batch; at most {} fit in one transaction with the state (lower the batch size)",
                    alerts.len(),
                    change.symbol,
                    TRANSACT_ITEMS_MAX - 1
                ),
            });
        }
        for _ in 0..TRANSACT_ROUNDS_MAX {
            match self.transact(change, &alerts).await? {
                Transacted::Done(advanced) => return Ok(advanced),
                Transacted::AlertsExist(existing) => {
                    // Those alerts are stored already: storing them is done, idempotently.
                    alerts = alerts
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !existing.contains(i))
                        .map(|(_, alert)| alert)
                        .collect();
                }
            }
        }
        Err(AwsError::NoAnswer {
            operation: "TransactWriteItems",
            reason: format!(
                "state change of {} still cancelled after {TRANSACT_ROUNDS_MAX} rounds",
                change.symbol
            ),
        })
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

    /// One transaction: the state change plus `alerts`.
    async fn transact(&self, change: &Advance, alerts: &[&Alert]) -> Result<Transacted, AwsError> {
        let (condition, names, values) = state_condition(change.expected_last_seen);
        let state_put = Put::builder()
            .table_name(&self.state_table)
            .set_item(Some(state_item(&change.symbol, &change.next)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| AwsError::build("TransactWriteItems", e))?;
        let mut items = vec![TransactWriteItem::builder().put(state_put).build()];
        for alert in alerts {
            let put = Put::builder()
                .table_name(&self.alerts_table)
                .set_item(Some(alert_item(alert)))
                .condition_expression("attribute_not_exists(#s)")
                .expression_attribute_names("#s", attr::SYMBOL)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| AwsError::build("TransactWriteItems", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let error = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(Transacted::Done(Advanced::Applied)),
            Err(error) => error,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        else {
            return Err(AwsError::from_sdk("TransactWriteItems", &error));
        };
        // Reasons come in item order: the state first, then the alerts.
        let reasons = cancelled.cancellation_reasons();
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        if code(0) == CONDITION_FAILED {
            let current = self.stored_state(reasons[0].item())?;
            return Ok(Transacted::Done(Advanced::Conflict(current)));
        }
        let mut existing = Vec::new();
        for i in 0..=alerts.len() {
            match code(i) {
                "None" => {}
                CONDITION_FAILED => {
                    let alert = alerts[i - 1];
                    match reasons[i].item() {
                        Some(item) => {
                            self.already_there(item)?;
                        }
                        // No old item returned: check it ourselves.
                        None => match self.get_alert_item(&alert.key()).await? {
                            Some(item) => {
                                self.already_there(&item)?;
                            }
                            None => {
                                return Err(AwsError::NoAnswer {
                                    operation: "TransactWriteItems",
                                    reason: format!(
                                        "alert {} existed and then vanished; try again",
                                        alert.alert_id
                                    ),
                                });
                            }
                        },
                    }
                    existing.push(i - 1);
                }
                other => {
                    let message = reasons[i].message();
                    return Err(AwsError::entry(
                        "TransactWriteItems",
                        other,
                        message,
                        !crate::error::is_transient_code(other),
                    ));
                }
            }
        }
        if existing.is_empty() {
            // Cancelled, but no item says why: let the class of the error decide.
            return Err(AwsError::from_sdk("TransactWriteItems", &error));
        }
        Ok(Transacted::AlertsExist(existing))
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

/// The answer to one transaction round.
enum Transacted {
    Done(Advanced),
    /// These alerts (indices into the round's alerts) exist already.
    AlertsExist(Vec<usize>),
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

    fn insert(
        &self,
        alerts: &[Alert],
    ) -> impl Future<Output = Vec<Result<Inserted, AwsError>>> + Send {
        bounded(alerts.iter().map(|alert| self.insert_one(alert)).collect())
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

    fn mark_notified(
        &self,
        keys: &[AlertKey],
    ) -> impl Future<Output = Vec<Result<(), AwsError>>> + Send {
        bounded(keys.iter().map(|key| self.mark_one(key)).collect())
    }
}

impl StateStore for DynamoStore {
    type Error = AwsError;

    fn advance(
        &self,
        changes: &[Advance],
    ) -> impl Future<Output = Vec<Result<Advanced, AwsError>>> + Send {
        bounded(
            changes
                .iter()
                .map(|change| self.advance_one(change))
                .collect(),
        )
    }
}
