//! Start-up: JSON logs, the adapters over clients built once, a check of every AWS resource at
//! init (which also warms the connections, so the first message does not pay for the first
//! handshake), and reporting init errors to the Lambda Runtime API.
//!
//! A resource that answers with a permanent error (no such table, topic or queue; access denied)
//! fails init with a message naming the variable. A transient one (a timeout, throttling) only
//! logs a warning: the function may still work, and each message's own retries and SQS
//! redelivery cover it.

use lambda_runtime::Diagnostic;
use tickwatch_aws::config::SdkConfig;
use tickwatch_aws::{AwsClients, AwsError, DynamoStore, SnsNotifier, SqsDeadLetterQueue};
use tickwatch_clock::SystemClock;
use tickwatch_core::ports::{Classify, ErrorClass};
use tickwatch_core::{Pipeline, PipelineConfig};
use tracing::level_filters::LevelFilter;

use crate::config::FunctionConfig;
use crate::handler::Handler;

/// The path of the Runtime API's init error endpoint.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// The handler as deployed.
pub type LambdaHandler = Handler<DynamoStore, SnsNotifier, SystemClock, SqsDeadLetterQueue>;

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

/// The pipeline configuration for `config`.
pub fn pipeline_config(config: &FunctionConfig, jitter_seed: u64) -> PipelineConfig {
    PipelineConfig {
        rules: config.rules.clone(),
        retry: tickwatch_aws::config::pipeline_retry_policy(),
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
    let store = DynamoStore::new(
        clients.dynamodb.clone(),
        &config.alerts_table,
        &config.state_table,
    );
    let notifier = SnsNotifier::new(clients.sns.clone(), &config.topic_arn);
    let dead_letters = SqsDeadLetterQueue::new(clients.sqs.clone(), &config.dead_letter_queue_url);
    check_resources(config, &store, &notifier, &dead_letters).await?;
    let pipeline = Pipeline::new(
        pipeline_config(config, jitter_seed),
        store,
        notifier,
        SystemClock,
    );
    Ok(Handler::new(
        pipeline,
        dead_letters,
        SystemClock,
        &config.service,
    ))
}

/// Checks the tables, the topic and the dead-letter queue, side by side.
pub async fn check_resources(
    config: &FunctionConfig,
    store: &DynamoStore,
    notifier: &SnsNotifier,
    dead_letters: &SqsDeadLetterQueue,
) -> Result<(), StartupError> {
    let (alerts, state, topic, queue) = tokio::join!(
        store.check_alerts_table(),
        store.check_state_table(),
        notifier.check_topic(),
        dead_letters.check_queue()
    );
    let checks = [
        (
            "ALERTS_TABLE_NAME",
            format!("table {}", config.alerts_table),
            alerts,
        ),
        (
            "STATE_TABLE_NAME",
            format!("table {}", config.state_table),
            state,
        ),
        (
            "ALERTS_TOPIC_ARN",
            format!("topic {}", config.topic_arn),
            topic,
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            format!("queue {}", config.dead_letter_queue_url),
            queue,
        ),
    ];
    for (variable, resource, result) in checks {
        match result {
            Ok(()) => tracing::debug!(variable, %resource, "Resource checked."),
            Err(error) if error.class() == ErrorClass::Transient => {
                tracing::warn!(variable, %resource, %error, "Resource check failed transiently; starting anyway.");
            }
            Err(error) => {
                return Err(StartupError::Resource {
                    variable,
                    resource,
                    error: Box::new(error),
                });
            }
        }
    }
    Ok(())
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
