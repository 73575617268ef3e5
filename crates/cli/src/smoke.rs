//! `tickwatch smoke`: the deployed-stack test. It reads `cfn-outputs/flat-outputs.json`, sends
//! high, low, normal and malformed ticks to the deployment's queue and checks, through the AWS APIs,
//! the alerts table, the topic (through a temporary subscribed queue) and the dead-letter queue.
//! The same command runs against a real deployment and, with `--consume`, against an emulator.

use std::time::Duration;

use anyhow::Context as _;
use tickwatch_aws::AwsClients;
use tickwatch_aws::config::load_sdk_config_in;
use tickwatch_aws::worker::{MESSAGES_PER_RECEIVE_MAX, RunUntil, WorkerOptions};
use tickwatch_clock::SystemClock;
use tickwatch_core::ports::Clock;

use crate::Completion;
use crate::args::{AwsResources, SmokeArgs};
use crate::{config, worker};

mod checks;

use checks::Deployment;

/// Visibility timeout of the in-process worker's receives, in seconds.
const CONSUME_VISIBILITY_TIMEOUT_S: u32 = 30;
/// Long-poll wait of the in-process worker, in seconds: long enough for the sent ticks to show.
const CONSUME_WAIT_S: u32 = 2;

pub(crate) fn smoke(args: SmokeArgs) -> anyhow::Result<Completion> {
    let text = std::fs::read_to_string(&args.outputs).with_context(|| {
        format!(
            "reading {} (write it with scripts/flat-outputs)",
            args.outputs.display()
        )
    })?;
    let deployment =
        Deployment::from_flat_outputs(&text).with_context(|| args.outputs.display().to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        // The deployment's own region, not the environment's default: a stack in eu-west-1 is
        // not found by asking us-east-1.
        let clients = AwsClients::new(&load_sdk_config_in(deployment.aws_region.as_deref()).await);
        let now = SystemClock.now();
        let run_id = format!(
            "{:x}",
            now.epoch_ms() ^ (u64::from(std::process::id()) as i64)
        );
        let consume = async {
            if !args.consume {
                return Ok(());
            }
            let resources = AwsResources {
                alerts_table: deployment.alerts_table_name.clone(),
                state_table: deployment.state_table_name.clone(),
                topic_arn: deployment.alerts_topic_arn.clone(),
                dead_letter_queue_url: deployment.dead_letter_queue_url.clone(),
            };
            let options = WorkerOptions {
                queue_url: deployment.queue_url.clone(),
                wait_time_s: CONSUME_WAIT_S,
                messages_per_receive: MESSAGES_PER_RECEIVE_MAX,
                visibility_timeout_s: CONSUME_VISIBILITY_TIMEOUT_S,
                run_until: RunUntil::QueueEmpty,
                metrics_service: None,
            };
            // The rule variables of the environment, read as the worker reads them.
            let rules = config::worker_rules(None, None, |name| std::env::var(name).ok())
                .map_err(|e| format!("{e:#}"))?;
            worker::consume(
                &clients,
                &resources,
                rules,
                &options,
                std::future::pending(),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
        };
        checks::run(
            &clients,
            &deployment,
            &run_id,
            now,
            Duration::from_secs(args.timeout_seconds),
            consume,
        )
        .await
    })?;
    for check in &report.checks {
        println!(
            "{}  {}: {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
    }
    let (passed, total) = (
        report.checks.iter().filter(|c| c.passed).count(),
        report.checks.len(),
    );
    println!("{passed} passed, {} failed", total - passed);
    if report.passed() {
        Ok(Completion::Clean)
    } else {
        anyhow::bail!("the deployment failed {} of {total} checks", total - passed)
    }
}
