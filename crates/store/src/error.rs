//! Store errors: one line each, naming the DynamoDB operation or the agent.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use spec::failure::{ErrorClass, Failure, classify, error_chain};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A DynamoDB call failed; `code` is AWS's error code when the service answered.
    #[error("DynamoDB {operation} on table {table}: {message}")]
    Aws {
        operation: &'static str,
        table: String,
        code: Option<String>,
        message: String,
        /// Classified as AWS errors are: throttling and 5xx are worth a retry, AccessDenied
        /// and validation errors are not.
        class: ErrorClass,
    },
    /// The item changed since it was read, or exists though it was expected absent.
    #[error("agent {agent_id}: conflict: the item changed since it was read; re-read and retry")]
    Conflict { agent_id: String },
    /// The agent is being deleted; writing its spec would silently undelete it.
    #[error("agent {agent_id}: conflict: the agent is being deleted")]
    Deleting { agent_id: String },
    /// `client_id` is immutable once the agent exists.
    #[error(
        "agent {agent_id}: client_id: cannot change once the agent exists (it is \"{existing}\")"
    )]
    ClientIdChanged { agent_id: String, existing: String },
    /// DynamoDB kept leaving keys unprocessed (throttling) after every retry; the answer would
    /// have been partial.
    #[error(
        "DynamoDB {operation} on table {table}: {missing} keys still unprocessed after retries"
    )]
    Incomplete {
        operation: &'static str,
        table: String,
        missing: usize,
    },
    /// The table exists but has a shape clawfleet cannot use.
    #[error("table {table}: {problem}")]
    TableShape { table: String, problem: String },
}

impl StoreError {
    pub(crate) fn aws<E>(
        operation: &'static str,
        table: &str,
        err: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let failure = match err {
            SdkError::ConstructionFailure(_) => Failure::Construction,
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::ResponseError(_) => Failure::Response,
            SdkError::ServiceError(e) => Failure::Service(e.raw().status().as_u16()),
            _ => Failure::Dispatch,
        };
        let code = err.code().map(str::to_owned);
        let class = classify(code.as_deref(), failure);
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => error_chain(err),
        };
        Self::Aws {
            operation,
            table: table.to_owned(),
            code,
            message,
            class,
        }
    }

    /// What the failure means for a retry. Only DynamoDB's own answers can be retried with
    /// hope; a conflict is retried at once by re-reading, and the rest are the caller's input
    /// or the table's shape, which no retry fixes.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Aws { class, .. } => *class,
            Self::Conflict { .. } => ErrorClass::Transient,
            // Keys left unprocessed are DynamoDB shedding load: retry later, as throttling.
            Self::Incomplete { .. } => ErrorClass::Throttled,
            Self::Deleting { .. } | Self::ClientIdChanged { .. } | Self::TableShape { .. } => {
                ErrorClass::Terminal
            }
        }
    }

    /// Whether DynamoDB refused a write because its condition no longer held.
    pub(crate) fn is_condition_failure<E, R>(err: &SdkError<E, R>) -> bool
    where
        E: ProvideErrorMetadata,
    {
        matches!(
            err.code(),
            Some("ConditionalCheckFailedException" | "TransactionCanceledException")
        )
    }
}
