//! # tickwatch-aws
//!
//! The AWS side of tickwatch: the core's ports over DynamoDB ([`dynamo::DynamoStore`], and the
//! rules table [`dynamo::DynamoRuleStore`]) and SNS ([`sns::SnsNotifier`]), keeping a running
//! pipeline's rules current with the rules table ([`refresh::RulesRefresher`]), the dead-letter
//! queue for rejected ticks ([`dead_letter`]), the SQS batch
//! runner shared by the Lambda function and the worker ([`batch::run_batch`]), the long-polling
//! SQS worker ([`worker::run`]), metrics in CloudWatch Embedded Metric Format ([`metrics`]), SDK
//! clients with explicit retry and timeout settings ([`config`], which also says who retries
//! what), the one place AWS errors are classified ([`error`]), and the wiring both binaries
//! start from ([`deploy`]: resources and rules from the deployment's variables, adapters and
//! pipeline built and checked by [`deploy::Deployment::connect`]).
//!
//! With the `testing` feature (test builds only), `testing` starts the moto AWS emulator, puts
//! latency and fault proxies in front of it, creates emulator resources, and offers an in-memory
//! dead-letter queue.

pub mod batch;
pub mod config;
pub mod dead_letter;
pub mod deploy;
pub mod dynamo;
pub mod error;
pub mod metrics;
pub mod redrive;
pub mod refresh;
pub mod sns;
pub mod worker;

#[cfg(feature = "testing")]
pub mod testing;

pub use batch::{BatchResult, SqsMessage, run_batch};
pub use config::AwsClients;
pub use dead_letter::{DeadLetter, DeadLetterQueue, SqsDeadLetterQueue};
pub use deploy::{
    ConnectError, Deployment, Resources, RuleSettings, RulesTable, SettingError, StartupPolicy,
    TransientCheckFailure,
};
pub use dynamo::{DynamoRuleStore, DynamoStore};
pub use error::AwsError;
pub use refresh::{FixedRules, RulesRefresher, RulesSource};
pub use sns::SnsNotifier;
pub use worker::{RunUntil, WorkerError, WorkerOptions, WorkerReport};
