//! `tickwatch sqs-worker`: the Lambda function's pipeline, fed by long-polling an SQS queue, for
//! containers and VMs (and for driving a deployment on an emulator, where no function runs).

use anyhow::Context as _;
use tickwatch_aws::config::{load_sdk_config, pipeline_retry_policy};
use tickwatch_aws::worker::{self, RunUntil, WorkerOptions, WorkerReport};
use tickwatch_aws::{AwsClients, DynamoStore, SnsNotifier, SqsDeadLetterQueue};
use tickwatch_clock::SystemClock;
use tickwatch_core::{Pipeline, PipelineConfig, RuleSet};

use crate::Completion;
use crate::args::{AwsResources, WorkerArgs};
use crate::config;

/// Messages per receive (SQS's maximum).
const MESSAGES_PER_RECEIVE: u32 = 10;

pub(crate) fn sqs_worker(args: WorkerArgs) -> anyhow::Result<Completion> {
    let rules = config::rules(args.rules.as_deref(), args.mode)?;
    let options = WorkerOptions {
        queue_url: args.queue_url,
        wait_time_s: args.wait_seconds,
        messages_per_receive: MESSAGES_PER_RECEIVE,
        visibility_timeout_s: args.visibility_timeout_seconds,
        run_until: if args.drain {
            RunUntil::QueueEmpty
        } else {
            RunUntil::Shutdown
        },
        metrics_service: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let clients = AwsClients::new(&load_sdk_config().await);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        consume(&clients, &args.resources, rules, &options, shutdown).await
    })?;
    eprintln!(
        "tickwatch sqs-worker: {} batches, {} messages received, {} deleted ({} dead-lettered), {} left for redelivery; {} alerts raised, {} announced",
        report.batches,
        report.received,
        report.deleted,
        report.dead_lettered,
        report.left_for_redelivery,
        report.stats.alerts,
        report.stats.published
    );
    Ok(if report.left_for_redelivery > 0 {
        Completion::Unannounced
    } else {
        Completion::Clean
    })
}

/// Builds the adapters and the pipeline, checks the resources, and runs the worker until
/// `options.run_until` or `shutdown`.
pub(crate) async fn consume(
    clients: &AwsClients,
    resources: &AwsResources,
    rules: RuleSet,
    options: &WorkerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<WorkerReport> {
    let store = DynamoStore::new(
        clients.dynamodb.clone(),
        &resources.alerts_table,
        &resources.state_table,
    );
    let notifier = SnsNotifier::new(clients.sns.clone(), &resources.topic_arn);
    let dead_letters =
        SqsDeadLetterQueue::new(clients.sqs.clone(), &resources.dead_letter_queue_url);
    store
        .check_tables()
        .await
        .context("--alerts-table / --state-table")?;
    notifier.check_topic().await.context("--topic-arn")?;
    dead_letters
        .check_queue()
        .await
        .context("--dead-letter-queue-url")?;
    let pipeline = Pipeline::new(
        PipelineConfig {
            rules,
            retry: pipeline_retry_policy(),
            jitter_seed: config::jitter_seed(),
        },
        store,
        notifier,
        SystemClock,
    );
    worker::run(
        &clients.sqs,
        options,
        &pipeline,
        &dead_letters,
        &SystemClock,
        shutdown,
    )
    .await
    .context("the SQS worker stopped")
}
