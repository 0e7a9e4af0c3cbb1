//! AWS errors: one line naming the service and the operation, with its [`ErrorClass`].
//!
//! The class decides what the controller does next: terminal errors set a condition and wait
//! for a change; throttled ones slow the operation's rate-limit bucket; transient ones back off
//! per agent and retry. The classification itself is shared with the DynamoDB store
//! ([`spec::failure`]).

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
pub use spec::failure::{ErrorClass, Failure, classify};
use spec::failure::{error_chain, one_line};

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

/// How an SDK error failed, before any code is considered.
pub(crate) fn failure_of<E, R>(err: &SdkError<E, R>, status: impl Fn(&R) -> u16) -> Failure {
    match err {
        SdkError::ConstructionFailure(_) => Failure::Construction,
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(_) => Failure::Dispatch,
        SdkError::ResponseError(_) => Failure::Response,
        SdkError::ServiceError(e) => Failure::Service(status(e.raw())),
        _ => Failure::Dispatch,
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
        let failure = failure_of(err, |raw| raw.status().as_u16());
        let code = err.code().map(str::to_owned);
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {}", one_line(message)),
            (Some(code), None) => code.to_owned(),
            _ => error_chain(err),
        };
        let class = match classify(code.as_deref(), failure) {
            // IAM is eventually consistent: a role created a moment ago may not be assumable
            // by ECS yet. It will be; retry with backoff instead of failing the agent.
            ErrorClass::Terminal if operation == "RunTask" && assume_role_failed(&message) => {
                ErrorClass::Transient
            }
            class => class,
        };
        Self {
            service,
            operation,
            class,
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

/// ECS's RunTask answer while a brand-new task role has not propagated through IAM.
fn assume_role_failed(message: &str) -> bool {
    message.contains("unable to assume the role")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use aws_sdk_ecs::operation::run_task::RunTaskError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn run_task_error(code: &str, message: &str) -> AwsError {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let err = SdkError::service_error(
            RunTaskError::generic(meta),
            HttpResponse::new(
                StatusCode::try_from(400).expect("a status"),
                SdkBody::empty(),
            ),
        );
        AwsError::from_sdk("ECS", "RunTask", &err)
    }

    #[test]
    fn a_role_ecs_cannot_assume_yet_is_transient_and_other_invalid_parameters_terminal() {
        let propagating = run_task_error(
            "InvalidParameterException",
            "ECS was unable to assume the role 'arn:aws:iam::1:role/x' that was provided for this task.",
        );
        assert_eq!(propagating.class, ErrorClass::Transient);
        let wrong = run_task_error("InvalidParameterException", "subnets can not be empty.");
        assert_eq!(wrong.class, ErrorClass::Terminal);
    }
}
