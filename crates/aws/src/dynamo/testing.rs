//! Test support on the stores (feature `testing`): creating the tables on an emulator and reading
//! state directly. The pipeline needs neither (deployments create the tables with Terraform, and a
//! compare-and-set conflict brings the stored state back).

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};
use tickwatch_core::Symbol;
use tickwatch_core::rules::SymbolState;

use super::item::{Key, attr, parse_state};
use super::{DynamoRuleStore, DynamoStore};
use crate::error::AwsError;

/// How long `DynamoStore::create_tables` waits for new tables to become active, in milliseconds.
const TABLE_ACTIVE_WAIT_MS_MAX: u64 = 60_000;

/// Pause between two looks at a table's status while waiting for it, in milliseconds.
const TABLE_POLL_MS: u64 = 200;

impl DynamoStore {
    /// Reads the state of each symbol (`None` if it has none), with consistent reads. The pipeline
    /// never reads ahead on DynamoDB (see [`StateStore::load`]): test support only.
    ///
    /// [`StateStore::load`]: tickwatch_core::ports::StateStore::load
    pub async fn read_states(
        &self,
        symbols: &[Symbol],
    ) -> Vec<Result<Option<SymbolState>, AwsError>> {
        {
            let mut distinct: Vec<Key> = Vec::new();
            let mut seen = HashSet::new();
            for symbol in symbols {
                if seen.insert(*symbol) {
                    distinct.push((symbol.to_string(), None));
                }
            }
            let found = self.batch_get(&self.state_table, &distinct).await;
            symbols
                .iter()
                .map(|symbol| {
                    let answer = found
                        .get(&(symbol.to_string(), None))
                        .cloned()
                        .unwrap_or(Ok(None))?;
                    answer
                        .map(|item| parse_state(&self.state_table, &item))
                        .transpose()
                })
                .collect()
        }
    }

    /// Creates both tables (on-demand billing) and waits until they are active: test support for
    /// the emulator; deployments create them with Terraform.
    pub async fn create_tables(&self) -> Result<(), AwsError> {
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|e| AwsError::build("CreateTable", e))
        };
        let string_attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| AwsError::build("CreateTable", e))
        };
        self.client
            .create_table()
            .table_name(&self.alerts_table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(attr::SYMBOL, KeyType::Hash)?)
            .key_schema(key(attr::TIMESTAMP, KeyType::Range)?)
            .attribute_definitions(string_attribute(attr::SYMBOL)?)
            .attribute_definitions(string_attribute(attr::TIMESTAMP)?)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTable", &e))?;
        self.client
            .create_table()
            .table_name(&self.state_table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(attr::SYMBOL, KeyType::Hash)?)
            .attribute_definitions(string_attribute(attr::SYMBOL)?)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTable", &e))?;
        for table in [&self.alerts_table, &self.state_table] {
            wait_active(&self.client, table).await?;
        }
        Ok(())
    }
}

impl DynamoRuleStore {
    /// Creates the rules table (on-demand billing, hash key `rule_id`) and waits until it is
    /// active: test support for the emulator; deployments create it with Terraform.
    pub async fn create_table(&self) -> Result<(), AwsError> {
        let rule_id = "rule_id";
        self.client()
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(rule_id)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| AwsError::build("CreateTable", e))?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(rule_id)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| AwsError::build("CreateTable", e))?,
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTable", &e))?;
        wait_active(self.client(), self.table()).await
    }
}

async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), AwsError> {
    let polls_max = TABLE_ACTIVE_WAIT_MS_MAX / TABLE_POLL_MS;
    for _ in 0..polls_max {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTable", &e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(TABLE_POLL_MS)).await;
    }
    Err(AwsError::NoAnswer {
        operation: "DescribeTable",
        reason: format!("table {table} not active after {TABLE_ACTIVE_WAIT_MS_MAX} ms"),
    })
}
