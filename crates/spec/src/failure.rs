//! The vocabulary of failure shared by the AWS and DynamoDB adapters: what a failed call means
//! for its caller ([`ErrorClass`]), decided once from the error code and the HTTP status, and
//! how an error chain becomes one readable line.

use std::fmt;

/// What a failed call means for the caller (controller-runtime and ACK have the same three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retrying the same request cannot help: validation, access denied, quota, not found.
    Terminal,
    /// AWS asked us to slow down.
    Throttled,
    /// A 5xx, a timeout or a connection error: retry with backoff.
    Transient,
}

impl ErrorClass {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// Whether an error code means "slow down".
#[must_use]
pub fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

/// Classifies a failure: the code first, then the HTTP status. An unknown 4xx is terminal (the
/// request itself is wrong), an unknown 5xx transient.
#[must_use]
pub fn classify(code: Option<&str>, failure: Failure) -> ErrorClass {
    let status = match failure {
        Failure::Construction => return ErrorClass::Terminal,
        Failure::Timeout | Failure::Dispatch | Failure::Response => {
            return ErrorClass::Transient;
        }
        Failure::Service(status) => status,
    };
    match code {
        Some(code) if is_throttling(code) => ErrorClass::Throttled,
        Some(code) if TRANSIENT.contains(&code) => ErrorClass::Transient,
        // Secrets Manager's and IAM's LimitExceededException is a quota, not a rate.
        Some("LimitExceededException") => ErrorClass::Terminal,
        _ if status == 429 => ErrorClass::Throttled,
        _ if status >= 500 => ErrorClass::Transient,
        Some(_) => ErrorClass::Terminal,
        None if (400..500).contains(&status) => ErrorClass::Terminal,
        None => ErrorClass::Transient,
    }
}

/// An error and its sources as one line of their `Display`s, never a debug dump.
#[must_use]
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
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

/// Folds white space (a multi-line AWS message) into one line.
#[must_use]
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::{Terminal, Throttled, Transient};
    use super::*;

    /// (operation, code, HTTP status, class): codes real AWS returns, not only moto's. The
    /// operation only documents where each code comes from: the class depends on the code.
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
                classify(Some(code), Failure::Service(*status)),
                *class,
                "{operation} {code} {status}"
            );
        }
    }

    #[test]
    fn failures_without_a_service_answer_are_classified_by_kind() {
        assert_eq!(classify(None, Failure::Timeout), Transient);
        assert_eq!(classify(None, Failure::Dispatch), Transient);
        assert_eq!(classify(None, Failure::Response), Transient);
        assert_eq!(classify(None, Failure::Construction), Terminal);
        assert_eq!(classify(None, Failure::Service(502)), Transient);
        assert_eq!(classify(None, Failure::Service(429)), Throttled);
        assert_eq!(classify(None, Failure::Service(403)), Terminal);
    }
}
