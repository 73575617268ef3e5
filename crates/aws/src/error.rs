//! One place that decides whether an AWS failure is worth retrying.
//!
//! Every adapter turns what the SDK (or a batch API's per-entry answer) reports into an [`AwsError`],
//! and [`AwsError::class`] is the only thing the pipeline looks at. The rules, after the AWS SDKs'
//! own retry classifiers:
//!
//! * transient: timeouts, dispatch and I/O failures (connection refused or reset), responses that
//!   could not be read, HTTP 5xx and 429, and the throttling and conflict codes in
//!   [`TRANSIENT_CODES`];
//! * permanent: requests that could not be built, any other 4xx (missing table or topic, access
//!   denied, validation), items we cannot read back, and limits we refuse to exceed.

use std::fmt;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tickwatch_core::ports::{Classify, ErrorClass};

/// The SDK's error type. Every AWS SDK crate re-exports this same type; naming it through one of them
/// spares a direct dependency on `aws-smithy-runtime-api`.
pub(crate) type SdkError<E> = aws_sdk_dynamodb::error::SdkError<E>;

/// Error codes that mean "slow down or try again", whatever the HTTP status.
pub const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "SlowDown",
    // Cancellation reason codes of a DynamoDB transaction.
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// Longest error message we keep, in characters (SDK error chains can quote whole responses).
pub const ERROR_MESSAGE_CHARS_MAX: usize = 512;

/// Whether an error code alone marks a failure as transient.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// A failed AWS operation, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// An SDK call failed as a whole.
    #[error("{operation} failed ({}){}: {message}", class, code_suffix(code.as_deref()))]
    Call {
        /// The API operation, e.g. `PutItem`.
        operation: &'static str,
        /// Whether retrying can help.
        class: ErrorClass,
        /// The service's error code, if it answered with one.
        code: Option<String>,
        /// What the SDK reported, with its causes.
        message: String,
    },
    /// One entry of a batch call (`PublishBatch`, `SendMessageBatch`, `DeleteMessageBatch`, a
    /// transaction item) failed while the call as a whole succeeded.
    #[error(
        "{operation} entry failed ({}){}: {message}",
        class,
        code_suffix(Some(code))
    )]
    Entry {
        /// The API operation.
        operation: &'static str,
        /// Whether retrying can help (`SenderFault` entries are permanent).
        class: ErrorClass,
        /// The entry's error code.
        code: String,
        /// The entry's message.
        message: String,
    },
    /// A stored item could not be turned back into a domain value. Permanent: fix the item.
    #[error("item in table {table} is malformed: attribute {attribute} {reason}")]
    MalformedItem {
        /// The table.
        table: String,
        /// The attribute at fault.
        attribute: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A change that had to be split over several writes (a big rules import) found, after some
    /// parts were written, that another writer had changed the data in between. Permanent:
    /// sending the same part again cannot succeed; re-running the whole change is safe.
    #[error("{operation}: {reason}")]
    Interrupted {
        /// The API operation.
        operation: &'static str,
        /// What was written, what was not, and what to do.
        reason: String,
    },
    /// A request would break a limit of the API; we refuse to send it. Permanent.
    #[error("{operation}: {reason}")]
    Limit {
        /// The API operation.
        operation: &'static str,
        /// Which limit, and by how much.
        reason: String,
    },
    /// The service did not answer for an item (unprocessed keys after our bounded retries, an entry
    /// missing from a batch answer, a deadline). Transient.
    #[error("{operation}: {reason}")]
    NoAnswer {
        /// The API operation.
        operation: &'static str,
        /// What happened.
        reason: String,
    },
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}

impl Classify for AwsError {
    fn class(&self) -> ErrorClass {
        match self {
            AwsError::Call { class, .. } | AwsError::Entry { class, .. } => *class,
            AwsError::MalformedItem { .. }
            | AwsError::Interrupted { .. }
            | AwsError::Limit { .. } => ErrorClass::Permanent,
            AwsError::NoAnswer { .. } => ErrorClass::Transient,
        }
    }
}

impl AwsError {
    /// Classifies an SDK error of `operation`.
    pub fn from_sdk<E>(operation: &'static str, error: &SdkError<E>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (class, code) = match error {
            SdkError::ConstructionFailure(_) => (ErrorClass::Permanent, None),
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => (ErrorClass::Transient, None),
            // A "user" dispatch failure is a mistake on our side (e.g. an invalid endpoint URL);
            // everything else (refused, reset, DNS, TLS, timeouts) may clear up.
            SdkError::DispatchFailure(failure) if failure.is_user() => {
                (ErrorClass::Permanent, None)
            }
            SdkError::DispatchFailure(_) => (ErrorClass::Transient, None),
            SdkError::ServiceError(service) => {
                let code = service.err().code().map(str::to_owned);
                let status = service.raw().status().as_u16();
                (classify_response(status, code.as_deref()), code)
            }
            // `SdkError` is non-exhaustive: an unknown kind of failure is retried, and SQS
            // redelivery bounds how often.
            _ => (ErrorClass::Transient, None),
        };
        AwsError::Call {
            operation,
            class,
            code,
            message: truncate(&error_chain(error), ERROR_MESSAGE_CHARS_MAX),
        }
    }

    /// A per-entry failure of a batch API.
    pub fn entry(
        operation: &'static str,
        code: &str,
        message: Option<&str>,
        sender_fault: bool,
    ) -> AwsError {
        // The sender's fault means the entry itself is bad: sending it again cannot help. Throttling
        // codes are transient even if a service were to flag them as the sender's fault.
        let class = if sender_fault && !is_transient_code(code) {
            ErrorClass::Permanent
        } else {
            ErrorClass::Transient
        };
        AwsError::Entry {
            operation,
            class,
            code: code.to_owned(),
            message: truncate(message.unwrap_or("no message"), ERROR_MESSAGE_CHARS_MAX),
        }
    }

    /// A request that could not be built (a required field missing). Permanent: it is a bug here.
    pub fn build(operation: &'static str, error: impl fmt::Display) -> AwsError {
        AwsError::Call {
            operation,
            class: ErrorClass::Permanent,
            code: None,
            message: format!("could not build the request: {error}"),
        }
    }

    /// The service's error code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            AwsError::Entry { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The error and its causes, `outer: inner: innermost`, each said once (the SDK's own display
/// helper appends a debug dump that repeats everything).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        // Wrappers often repeat their source's text; keep each piece once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// Classifies a service's answer by status and code.
pub fn classify_response(status: u16, code: Option<&str>) -> ErrorClass {
    if status >= 500 || status == 429 || code.is_some_and(is_transient_code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

/// Cuts `text` to at most `chars_max` characters, marking the cut with `…`.
pub fn truncate(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut cut: String = text[..end]
                .chars()
                .take(chars_max.saturating_sub(1))
                .collect();
            cut.push('…');
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_classified_by_status_and_code() {
        use ErrorClass::{Permanent, Transient};
        let cases = [
            (400, Some("ValidationException"), Permanent),
            (400, Some("ResourceNotFoundException"), Permanent),
            (400, Some("ConditionalCheckFailedException"), Permanent),
            (403, Some("AccessDeniedException"), Permanent),
            (404, Some("NotFound"), Permanent),
            (400, None, Permanent),
            (400, Some("ThrottlingException"), Transient),
            (
                400,
                Some("ProvisionedThroughputExceededException"),
                Transient,
            ),
            (400, Some("RequestLimitExceeded"), Transient),
            (400, Some("TransactionConflictException"), Transient),
            (400, Some("Throttling"), Transient),
            (429, None, Transient),
            (500, Some("InternalServerError"), Transient),
            (503, Some("ServiceUnavailable"), Transient),
            (502, None, Transient),
        ];
        for (status, code, expected) in cases {
            assert_eq!(
                classify_response(status, code),
                expected,
                "{status} {code:?}"
            );
        }
    }

    #[test]
    fn entries_blame_the_sender_only_for_non_throttling_codes() {
        let cases = [
            ("InvalidParameter", true, ErrorClass::Permanent),
            ("InternalError", false, ErrorClass::Transient),
            ("Throttling", true, ErrorClass::Transient),
            ("KMSThrottling", false, ErrorClass::Transient),
        ];
        for (code, sender_fault, expected) in cases {
            let error = AwsError::entry("PublishBatch", code, Some("m"), sender_fault);
            assert_eq!(error.class(), expected, "{code} {sender_fault}");
            assert_eq!(error.code(), Some(code));
        }
    }

    #[test]
    fn truncate_keeps_short_text_and_marks_cuts() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4), "ééé…");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn messages_name_operation_class_and_code() {
        let error = AwsError::Call {
            operation: "PutItem",
            class: ErrorClass::Transient,
            code: Some("ThrottlingException".into()),
            message: "slow down".into(),
        };
        assert_eq!(
            error.to_string(),
            "PutItem failed (transient) ThrottlingException: slow down"
        );
        let malformed = AwsError::MalformedItem {
            table: "alerts".into(),
            attribute: "price",
            reason: "is missing".into(),
        };
        assert_eq!(malformed.class(), ErrorClass::Permanent);
        assert!(malformed.to_string().contains("attribute price is missing"));
    }
}
