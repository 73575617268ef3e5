//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line per batch on stdout, which
//! CloudWatch Logs turns into metrics without any API call from the function.
//!
//! Metrics (namespace [`NAMESPACE`], one dimension `Service`): `TicksProcessed` (messages accepted:
//! evaluated and everything they caused stored and announced), `AlertsRaised`, `TicksRejected`,
//! `DuplicateDeliveries`, `StaleTicks`, `MessagesFailed` (message ids reported back for
//! redelivery) and `BatchDurationMs`.

use serde_json::{Value, json};
use tickwatch_core::{BatchStats, Timestamp};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Tickwatch";

/// The name of the one dimension.
pub const DIMENSION: &str = "Service";

/// What one batch did, as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchMetrics {
    /// The pipeline's counts.
    pub stats: BatchStats,
    /// Message ids reported as failed (pipeline failures, and rejections that could not be
    /// dead-lettered).
    pub messages_failed: u64,
    /// Wall time of the batch, in milliseconds.
    pub duration_ms: u64,
}

/// The EMF document of one batch, at `at`, for `service` (e.g. the function name).
pub fn emf_document(service: &str, at: Timestamp, metrics: &BatchMetrics) -> Value {
    let counts: [(&str, u64, &str); 7] = [
        ("TicksProcessed", metrics.stats.accepted, "Count"),
        ("AlertsRaised", metrics.stats.alerts, "Count"),
        ("TicksRejected", metrics.stats.rejected, "Count"),
        ("DuplicateDeliveries", metrics.stats.duplicates, "Count"),
        ("StaleTicks", metrics.stats.stale, "Count"),
        ("MessagesFailed", metrics.messages_failed, "Count"),
        ("BatchDurationMs", metrics.duration_ms, "Milliseconds"),
    ];
    let definitions: Vec<Value> = counts
        .iter()
        .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": at.epoch_ms(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        },
        DIMENSION: service,
    });
    if let Some(object) = document.as_object_mut() {
        for (name, value, _) in counts {
            object.insert(name.to_owned(), json!(value));
        }
    }
    document
}

/// The EMF line of one batch (no trailing newline).
pub fn emf_line(service: &str, at: Timestamp, metrics: &BatchMetrics) -> String {
    emf_document(service, at, metrics).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwatch_core::FailedSteps;

    #[test]
    fn emf_line_has_the_exact_shape() {
        let metrics = BatchMetrics {
            stats: BatchStats {
                messages: 25,
                accepted: 20,
                rejected: 3,
                failed: 2,
                failed_steps: FailedSteps {
                    advance_state: 1,
                    publish: 1,
                    ..FailedSteps::default()
                },
                alerts: 7,
                unannounced: 0,
                published: 8,
                duplicates: 1,
                stale: 4,
            },
            messages_failed: 2,
            duration_ms: 183,
        };
        let at = Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid");
        let line = emf_line("tickwatch-prod", at, &metrics);
        let expected = concat!(
            r#"{"AlertsRaised":7,"BatchDurationMs":183,"DuplicateDeliveries":1,"MessagesFailed":2,"#,
            r#""Service":"tickwatch-prod","StaleTicks":4,"TicksProcessed":20,"TicksRejected":3,"#,
            r#""_aws":{"CloudWatchMetrics":[{"Dimensions":[["Service"]],"Metrics":["#,
            r#"{"Name":"TicksProcessed","Unit":"Count"},{"Name":"AlertsRaised","Unit":"Count"},"#,
            r#"{"Name":"TicksRejected","Unit":"Count"},{"Name":"DuplicateDeliveries","Unit":"Count"},"#,
            r#"{"Name":"StaleTicks","Unit":"Count"},{"Name":"MessagesFailed","Unit":"Count"},"#,
            r#"{"Name":"BatchDurationMs","Unit":"Milliseconds"}],"Namespace":"Tickwatch"}],"#,
            r#""Timestamp":1795703400000}}"#
        );
        assert_eq!(line, expected);
        assert!(!line.contains('\n'), "one line per batch");
    }
}
