//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line per batch on stdout, which
//! CloudWatch Logs turns into metrics without any API call from the function.
//!
//! Metrics (namespace [`NAMESPACE`], one dimension `Service`): `TicksProcessed` (messages accepted:
//! evaluated and everything they caused stored and announced), `AlertsRaised`, `TicksRejected`,
//! `DuplicateDeliveries`, `StaleTicks`, `MessagesFailed` (message ids reported back for
//! redelivery) and `BatchDurationMs`. A batch with rejected ticks adds one line per rejection
//! reason: `TicksRejectedByReason` with the dimensions `Service` and `Reason` (the error code,
//! such as `price.invalid`), which the dashboard breaks down.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tickwatch_core::{BatchStats, Timestamp};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Tickwatch";

/// The name of the dimension every metric has.
pub const DIMENSION: &str = "Service";

/// The second dimension of `TicksRejectedByReason`.
pub const REASON_DIMENSION: &str = "Reason";

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
    /// Rejected messages by reason code.
    pub rejected_by_code: BTreeMap<&'static str, u64>,
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

/// The EMF lines of one batch (no trailing newlines): the batch's counts, then one line per
/// rejection reason.
pub fn emf_lines(service: &str, at: Timestamp, metrics: &BatchMetrics) -> Vec<String> {
    let mut lines = vec![emf_document(service, at, metrics).to_string()];
    for (reason, count) in &metrics.rejected_by_code {
        let document = json!({
            "_aws": {
                "Timestamp": at.epoch_ms(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION, REASON_DIMENSION]],
                    "Metrics": [{ "Name": "TicksRejectedByReason", "Unit": "Count" }],
                }],
            },
            DIMENSION: service,
            REASON_DIMENSION: reason,
            "TicksRejectedByReason": count,
        });
        lines.push(document.to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwatch_core::FailedSteps;

    #[test]
    fn emf_lines_have_the_exact_shape() {
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
            rejected_by_code: BTreeMap::from([("price.invalid", 2), ("symbol.missing", 1)]),
        };
        let at = Timestamp::from_epoch_ms(1_795_703_400_000).expect("valid");
        let lines = emf_lines("tickwatch-prod", at, &metrics);
        let line = &lines[0];
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
        let by_reason = |reason: &str, count: u64| {
            format!(
                concat!(
                    r#"{{"Reason":"{}","Service":"tickwatch-prod","TicksRejectedByReason":{},"#,
                    r#""_aws":{{"CloudWatchMetrics":[{{"Dimensions":[["Service","Reason"]],"#,
                    r#""Metrics":[{{"Name":"TicksRejectedByReason","Unit":"Count"}}],"#,
                    r#""Namespace":"Tickwatch"}}],"Timestamp":1795703400000}}}}"#
                ),
                reason, count
            )
        };
        assert_eq!(
            lines[1..],
            [
                by_reason("price.invalid", 2),
                by_reason("symbol.missing", 1)
            ]
        );
        assert!(lines.iter().all(|l| !l.contains('\n')), "one line each");
        let quiet = BatchMetrics {
            rejected_by_code: BTreeMap::new(),
            ..metrics
        };
        assert_eq!(
            emf_lines("tickwatch-prod", at, &quiet).len(),
            1,
            "no rejections, one line"
        );
    }
}
