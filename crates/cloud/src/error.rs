//! AWS errors, each classified as terminal, throttled or transient.
//!
//! The class decides what the controller does next (controller-runtime and ACK have the same
//! three): terminal errors set a condition and wait for a change; throttled ones slow the
//! operation's rate-limit bucket; transient ones back off per agent and retry.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying the same request cannot help: validation, access denied, quota, not found.
    Terminal,
    /// AWS asked us to slow down.
    Throttled,
    /// A 5xx, a timeout or a connection error: retry with backoff.
    Transient,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Terminal => "terminal",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
        })
    }
}

/// One failed AWS call, as one line: `ECS RunTask: ThrottlingException: Rate exceeded`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation}: {message}")]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    /// AWS's error code, when the service answered with one.
    pub code: Option<String>,
    pub message: String,
    pub class: ErrorClass,
}

/// How the call failed before any error code is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The SDK could not build the request (a bug or bad configuration).
    Construction,
    /// The call timed out.
    Timeout,
    /// The request could not be sent or the connection failed.
    Dispatch,
    /// A response arrived but could not be parsed.
    Response,
    /// The service answered with an error, with this HTTP status.
    Service(u16),
}

/// Error codes that mean "slow down", whatever the service.
const THROTTLING: [&str; 10] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Error codes of a server-side failure worth retrying.
const TRANSIENT: [&str; 12] = [
    "ServerException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalFailure",
    "InternalServiceError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    // EFS: the file system is still being created or updated.
    "IncorrectFileSystemLifeCycleState",
    // EFS: a mount target or access point operation is still in progress.
    "IncorrectMountTargetState",
];

/// Classifies a failure of `operation`.
///
/// Operation-specific meanings come first, then the code, then the HTTP status: an unknown
/// 4xx is terminal (the request itself is wrong), an unknown 5xx transient.
#[must_use]
pub fn classify(operation: &str, code: Option<&str>, failure: Failure) -> ErrorClass {
    let status = match failure {
        Failure::Construction => return ErrorClass::Terminal,
        Failure::Timeout | Failure::Dispatch | Failure::Response => {
            return ErrorClass::Transient;
        }
        Failure::Service(status) => status,
    };
    match (operation, code) {
        (_, Some(code)) if THROTTLING.contains(&code) => ErrorClass::Throttled,
        (_, Some(code)) if TRANSIENT.contains(&code) => ErrorClass::Transient,
        // Secrets Manager's LimitExceededException is a quota (e.g. versions per secret).
        (_, Some("LimitExceededException")) => ErrorClass::Terminal,
        (_, Some(_)) if status == 429 => ErrorClass::Throttled,
        (_, Some(_)) if status >= 500 => ErrorClass::Transient,
        (_, Some(_)) => ErrorClass::Terminal,
        (_, None) if status == 429 => ErrorClass::Throttled,
        (_, None) if (400..500).contains(&status) => ErrorClass::Terminal,
        (_, None) => ErrorClass::Transient,
    }
}

impl AwsError {
    /// Builds the error of a failed SDK call, classified.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let failure = match err {
            SdkError::ConstructionFailure(_) => Failure::Construction,
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::DispatchFailure(_) => Failure::Dispatch,
            SdkError::ResponseError(_) => Failure::Response,
            SdkError::ServiceError(e) => Failure::Service(e.raw().status().as_u16()),
            _ => Failure::Dispatch,
        };
        let code = err.code().map(str::to_owned);
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {}", one_line(message)),
            (Some(code), None) => code.to_owned(),
            _ => error_chain(err),
        };
        Self {
            service,
            operation,
            class: classify(operation, code.as_deref(), failure),
            code,
            message,
        }
    }

    /// Whether AWS said the resource does not exist, which readers treat as an answer.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            matches!(
                c,
                "ResourceNotFoundException"
                    | "AccessPointNotFound"
                    | "FileSystemNotFound"
                    | "SecretNotFoundException"
            )
        })
    }

    #[must_use]
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// An error and its sources as one line of their `Display`s, never a debug dump.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = one_line(&e.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::{Terminal, Throttled, Transient};
    use super::*;

    /// (operation, code, HTTP status, class): codes real AWS returns, not only moto's.
    const TABLE: &[(&str, &str, u16, ErrorClass)] = &[
        // ECS
        ("RunTask", "ThrottlingException", 400, Throttled),
        ("RunTask", "ClientException", 400, Terminal),
        ("RunTask", "InvalidParameterException", 400, Terminal),
        ("RunTask", "AccessDeniedException", 400, Terminal),
        ("RunTask", "ClusterNotFoundException", 400, Terminal),
        ("RunTask", "PlatformUnknownException", 400, Terminal),
        (
            "RunTask",
            "PlatformTaskDefinitionIncompatibilityException",
            400,
            Terminal,
        ),
        ("RunTask", "UnsupportedFeatureException", 400, Terminal),
        ("RunTask", "BlockedException", 400, Terminal),
        ("RunTask", "ConflictException", 400, Terminal),
        ("RunTask", "ServerException", 500, Transient),
        ("StopTask", "ThrottlingException", 400, Throttled),
        ("StopTask", "ServerException", 500, Transient),
        ("DescribeTasks", "ThrottlingException", 400, Throttled),
        ("DescribeTasks", "ClusterNotFoundException", 400, Terminal),
        ("ListTasks", "ServiceUnavailableException", 503, Transient),
        (
            "RegisterTaskDefinition",
            "ThrottlingException",
            400,
            Throttled,
        ),
        ("RegisterTaskDefinition", "ClientException", 400, Terminal),
        (
            "RegisterTaskDefinition",
            "LimitExceededException",
            400,
            Terminal,
        ),
        (
            "DeregisterTaskDefinition",
            "ThrottlingException",
            400,
            Throttled,
        ),
        ("DescribeTaskDefinition", "ClientException", 400, Terminal),
        ("TagResource", "ResourceNotFoundException", 400, Terminal),
        ("TagResource", "ThrottlingException", 400, Throttled),
        // EFS
        ("CreateAccessPoint", "ThrottlingException", 429, Throttled),
        (
            "CreateAccessPoint",
            "AccessPointLimitExceeded",
            403,
            Terminal,
        ),
        (
            "CreateAccessPoint",
            "AccessPointAlreadyExists",
            409,
            Terminal,
        ),
        ("CreateAccessPoint", "FileSystemNotFound", 404, Terminal),
        (
            "CreateAccessPoint",
            "IncorrectFileSystemLifeCycleState",
            409,
            Transient,
        ),
        ("CreateAccessPoint", "BadRequest", 400, Terminal),
        ("CreateAccessPoint", "InternalServerError", 500, Transient),
        ("DeleteAccessPoint", "AccessPointNotFound", 404, Terminal),
        (
            "DescribeAccessPoints",
            "ThrottlingException",
            429,
            Throttled,
        ),
        ("DescribeAccessPoints", "FileSystemNotFound", 404, Terminal),
        // Secrets Manager
        ("CreateSecret", "ResourceExistsException", 400, Terminal),
        ("CreateSecret", "LimitExceededException", 400, Terminal),
        ("CreateSecret", "InvalidRequestException", 400, Terminal),
        ("CreateSecret", "EncryptionFailure", 400, Terminal),
        ("CreateSecret", "InternalServiceError", 500, Transient),
        ("CreateSecret", "ThrottlingException", 400, Throttled),
        ("DescribeSecret", "ResourceNotFoundException", 400, Terminal),
        ("DeleteSecret", "InvalidParameterException", 400, Terminal),
        ("ListSecrets", "InvalidNextTokenException", 400, Terminal),
        ("UpdateSecret", "AccessDeniedException", 400, Terminal),
        ("PutSecretValue", "ResourceExistsException", 400, Terminal),
        // Generic, any service
        (
            "GetItem",
            "ProvisionedThroughputExceededException",
            400,
            Throttled,
        ),
        ("GetItem", "RequestLimitExceeded", 400, Throttled),
        ("GetItem", "UnrecognizedClientException", 400, Terminal),
        ("GetItem", "InvalidClientTokenId", 403, Terminal),
        ("GetItem", "ExpiredTokenException", 400, Terminal),
        ("GetItem", "SomethingNew", 503, Transient),
        ("GetItem", "SomethingNew", 429, Throttled),
        ("GetItem", "SomethingNew", 400, Terminal),
    ];

    #[test]
    fn every_operation_and_code_maps_to_its_class() {
        for (operation, code, status, class) in TABLE {
            assert_eq!(
                classify(operation, Some(code), Failure::Service(*status)),
                *class,
                "{operation} {code} {status}"
            );
        }
    }

    #[test]
    fn failures_without_a_service_answer_are_classified_by_kind() {
        assert_eq!(classify("RunTask", None, Failure::Timeout), Transient);
        assert_eq!(classify("RunTask", None, Failure::Dispatch), Transient);
        assert_eq!(classify("RunTask", None, Failure::Response), Transient);
        assert_eq!(classify("RunTask", None, Failure::Construction), Terminal);
        assert_eq!(classify("RunTask", None, Failure::Service(502)), Transient);
        assert_eq!(classify("RunTask", None, Failure::Service(429)), Throttled);
        assert_eq!(classify("RunTask", None, Failure::Service(403)), Terminal);
    }
}
