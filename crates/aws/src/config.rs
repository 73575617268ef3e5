//! SDK clients, built once per process with explicit timeouts and *no SDK retries*.
//!
//! The SDK retries nothing ([`RetryConfig::disabled`]): one attempt per call, bounded by
//! [`CONNECT_TIMEOUT_MS`] to connect and [`ATTEMPT_TIMEOUT_MS`] for the whole attempt. Retrying is
//! the core pipeline's job, with its deadline, and redelivery is SQS's; ARCHITECTURE.md ("Who
//! retries what") says how the three layers are arranged so they never multiply.

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use tickwatch_core::retry::RetryPolicy;

/// Longest wait for a TCP (and TLS) connection, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// Longest wait for one attempt of one call (connect, send, answer), in milliseconds. Our calls are
/// small; DynamoDB and SNS answer in tens of milliseconds when healthy.
pub const ATTEMPT_TIMEOUT_MS: u64 = 4_000;

/// The AWS clients tickwatch uses. Cheap to clone (each client is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// DynamoDB: the alerts and state tables.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SNS: the alerts topic.
    pub sns: aws_sdk_sns::Client,
    /// SQS: the tick queue and the dead-letter queue.
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// Builds the clients from `config`, overriding its retry and timeout settings with ours
    /// whatever they were (see the module documentation).
    pub fn new(config: &SdkConfig) -> AwsClients {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .build();
        let sns = aws_sdk_sns::config::Builder::from(config)
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(config)
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sns: aws_sdk_sns::Client::from_conf(sns),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
        }
    }
}

/// Most attempts per pipeline step against AWS (the first included), within the deadline.
pub const PIPELINE_ATTEMPTS_MAX: u32 = 4;
/// Ceiling of the pipeline's first backoff before retrying an AWS call, in milliseconds; it
/// doubles per retry.
pub const PIPELINE_BACKOFF_MS_BASE: u64 = 50;
/// Ceiling of any backoff before retrying an AWS call, in milliseconds.
pub const PIPELINE_BACKOFF_MS_MAX: u64 = 1_000;

/// The core pipeline's retry policy for AWS ports (the Lambda function and the SQS worker).
pub fn pipeline_retry_policy() -> RetryPolicy {
    RetryPolicy::new(
        PIPELINE_ATTEMPTS_MAX,
        PIPELINE_BACKOFF_MS_BASE,
        PIPELINE_BACKOFF_MS_MAX,
    )
    .expect("the AWS retry constants form a valid policy")
}

/// Our retry setting: none (the pipeline and SQS retry, see the module documentation).
pub fn retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// Our timeouts: [`CONNECT_TIMEOUT_MS`] and [`ATTEMPT_TIMEOUT_MS`].
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .operation_attempt_timeout(Duration::from_millis(ATTEMPT_TIMEOUT_MS))
        .build()
}

/// Loads the SDK configuration the standard way (credentials, region and endpoint overrides such as
/// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_DYNAMODB` from the environment and profile), with our
/// retry and timeout settings. Binaries call this once at start-up.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_in(None).await
}

/// [`load_sdk_config`], in `region` when one is given (whatever the environment or profile say),
/// for tools that know where the stack they talk to is deployed.
pub async fn load_sdk_config_in(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}
