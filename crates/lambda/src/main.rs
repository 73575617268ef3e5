//! `bootstrap`: the tickwatch Lambda function (runtime `provided.al2023`).
//!
//! Init reads and validates the configuration (the environment is read here and nowhere else),
//! builds the SDK clients once and checks every AWS resource, through the same
//! [`tickwatch_aws::deploy`] path as `tickwatch sqs-worker`; any failure is reported to the
//! Runtime API's `/init/error` (naming the variable) and ends the process. Then `lambda_runtime`
//! feeds SQS events to the handler.

use anyhow::anyhow;
use lambda_runtime::{LambdaEvent, service_fn};
use tickwatch_lambda::FunctionConfig;
use tickwatch_lambda::startup::{self, report_init_error};
use tracing::level_filters::LevelFilter;

/// The environment variable holding the Runtime API's `host:port`.
const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

// One thread: a batch is I/O-bound, and a single-threaded runtime starts faster and uses less
// memory than a pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = match FunctionConfig::from_lookup(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            startup::init_logging(LevelFilter::INFO);
            return Err(fail_init("Runtime.InvalidConfiguration", &error.to_string()).await);
        }
    };
    startup::init_logging(config.log_level);
    let sdk = tickwatch_aws::config::load_sdk_config().await;
    let handler = match startup::build(&config, &sdk, jitter_seed()).await {
        Ok(handler) => handler,
        Err(error) => return Err(fail_init(error.error_type(), &error.to_string()).await),
    };
    tracing::info!(
        service = %config.service,
        alerts_table = config.resources.alerts_table(),
        state_table = config.resources.state_table(),
        rules_table = config.rules.table().map(|t| t.name()),
        rules_refresh_seconds = config.rules.table().map(|t| t.refresh_seconds()),
        "Function initialised."
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler
            .handle(event)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
    .map_err(|e| anyhow!(e))
}

/// Logs an init error, reports it to the Runtime API, and returns it for `main` to exit with.
async fn fail_init(error_type: &str, message: &str) -> anyhow::Error {
    tracing::error!(error_type, error = message, "Init failed.");
    match std::env::var(RUNTIME_API_ENV) {
        Ok(api) => {
            if let Err(report) = report_init_error(&api, error_type, message).await {
                tracing::error!(error = %report, "Could not report the init error to the Runtime API.");
            }
        }
        Err(_) => tracing::error!("{RUNTIME_API_ENV} is not set; init error not reported."),
    }
    anyhow!("{message}")
}

/// Seed of the retry jitter: different in every execution environment, so concurrent functions
/// retrying the same throttled table spread out.
fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
