//! Start-up: JSON logs, the deployment (adapters over clients built once, the pipeline, and a
//! check of every AWS resource at init, which also warms the connections so the first message
//! does not pay for the first handshake), and reporting init errors to the Lambda Runtime API.
//!
//! The deployment is built by [`tickwatch_aws::Deployment::connect`], the path `tickwatch
//! sqs-worker` takes too; what is the function's own is its [`startup_policy`]. With a rules
//! table (`RULES_TABLE`), init loads its rules (that read is the table's check, and it must
//! succeed: a failure fails init naming `RULES_TABLE`), and the handler checks the table again at
//! most once every `RULES_REFRESH_SECONDS` before a batch. A resource that
//! answers with a permanent error (no such table, topic or queue; access denied) fails init with a
//! message naming the variable. A transient one (a timeout, throttling) only logs a warning: the
//! function may still work, and each message's own retries and SQS redelivery cover it, while a
//! failed init would cost a cold start per retry.

use lambda_runtime::Diagnostic;
use tickwatch_aws::config::{SdkConfig, pipeline_retry_policy};
use tickwatch_aws::{
    AwsClients, AwsError, ConnectError, Deployment, DynamoRuleStore, DynamoStore, RulesRefresher,
    SnsNotifier, SqsDeadLetterQueue, StartupPolicy, TransientCheckFailure,
};
use tickwatch_clock::SystemClock;
use tracing::level_filters::LevelFilter;

use crate::config::FunctionConfig;
use crate::handler::Handler;

/// The path of the Runtime API's init error endpoint.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// The handler as deployed (the rules refresher is `None` without a rules table).
pub type LambdaHandler = Handler<
    DynamoStore,
    SnsNotifier,
    SystemClock,
    SqsDeadLetterQueue,
    Option<RulesRefresher<DynamoRuleStore>>,
>;

/// Why the function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configured resource cannot be used.
    #[error("{variable}: {resource} cannot be used: {error}")]
    Resource {
        /// The variable that names it.
        variable: &'static str,
        /// The resource (`table alerts-dev`, ...).
        resource: String,
        /// What AWS said.
        error: Box<AwsError>,
    },
}

impl StartupError {
    /// The `errorType` reported to the Runtime API.
    pub fn error_type(&self) -> &'static str {
        match self {
            StartupError::Resource { .. } => "Runtime.ResourceUnavailable",
        }
    }
}

impl From<ConnectError> for StartupError {
    fn from(error: ConnectError) -> StartupError {
        match error {
            ConnectError::Resource {
                variable,
                resource,
                error,
            } => StartupError::Resource {
                variable,
                resource,
                error,
            },
        }
    }
}

/// Installs the JSON log subscriber on stdout: our crates at `level`, dependencies at `warn`.
/// Every line carries the spans it is in (the request id, the SQS message id).
pub fn init_logging(level: LevelFilter) {
    let filter = tracing_subscriber::EnvFilter::builder().parse_lossy(format!(
        "warn,tickwatch_core={level},tickwatch_aws={level},tickwatch_lambda={level},bootstrap={level}"
    ));
    // A second call (only possible in tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// How the function starts: a transient resource check failure is logged, not fatal; the AWS
/// retry policy; `jitter_seed` for its backoff.
pub fn startup_policy(jitter_seed: u64) -> StartupPolicy {
    StartupPolicy {
        transient_check_failure: TransientCheckFailure::Warn,
        retry: pipeline_retry_policy(),
        jitter_seed,
    }
}

/// Builds the handler from `sdk` (clients built here, once) and checks every resource.
pub async fn build(
    config: &FunctionConfig,
    sdk: &SdkConfig,
    jitter_seed: u64,
) -> Result<LambdaHandler, StartupError> {
    let clients = AwsClients::new(sdk);
    let Deployment {
        pipeline,
        dead_letters,
        rules,
    } = Deployment::connect(
        &clients,
        &config.resources,
        &config.rules,
        &startup_policy(jitter_seed),
        SystemClock,
    )
    .await?;
    Ok(Handler::new(pipeline, dead_letters, &config.service).with_rules(rules))
}

/// Reports an init error to the Runtime API at `runtime_api` (`host:port`), as the Lambda service
/// expects from a custom runtime that cannot start.
pub async fn report_init_error(
    runtime_api: &str,
    error_type: &str,
    message: &str,
) -> Result<(), String> {
    let base: http::Uri = format!("http://{runtime_api}")
        .parse()
        .map_err(|e| format!("bad AWS_LAMBDA_RUNTIME_API {runtime_api:?}: {e}"))?;
    let client = lambda_runtime_api_client::Client::builder()
        .with_endpoint(base)
        .build()
        .map_err(|e| e.to_string())?;
    let diagnostic = Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message.to_owned(),
    };
    let body = serde_json::to_vec(&diagnostic).map_err(|e| e.to_string())?;
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri(INIT_ERROR_PATH)
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_runtime_api_client::body::Body::from(body))
        .map_err(|e| e.to_string())?;
    let response = client.call(request).await.map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{INIT_ERROR_PATH} answered {}", response.status()))
    }
}
