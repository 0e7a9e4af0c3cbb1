//! Store errors: one line each, naming the DynamoDB operation or the agent.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

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
    pub(crate) fn aws<E, R>(operation: &'static str, table: &str, err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let code = err.code().map(str::to_owned);
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

/// An error and its sources as one line of their `Display`s, never a debug dump.
#[must_use]
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
