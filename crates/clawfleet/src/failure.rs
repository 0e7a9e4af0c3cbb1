//! How a command fails, and the exit code each failure maps to.
//!
//! 0 success; 1 the input or the state is not as it should be (validation, conflict, pending
//! changes); 2 usage errors and failures talking to AWS.

use store::StoreError;

/// The exit code of a command that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success = 0,
    NotAsItShouldBe = 1,
    Failed = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// A failure that ends the command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The input is invalid or the state conflicts with the request.
    #[error("{0}")]
    Invalid(String),
    /// A usage error the argument parser could not catch, or an unreadable file.
    #[error("{0}")]
    Usage(String),
    /// AWS answered with an error or could not be reached.
    #[error("{0}")]
    Aws(String),
}

impl Failure {
    pub fn exit_code(&self) -> Exit {
        match self {
            Self::Invalid(_) => Exit::NotAsItShouldBe,
            Self::Usage(_) | Self::Aws(_) => Exit::Failed,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Aws { .. }
            | StoreError::TableShape { .. }
            | StoreError::Incomplete { .. } => Self::Aws(e.to_string()),
            StoreError::Conflict { .. }
            | StoreError::Deleting { .. }
            | StoreError::ClientIdChanged { .. } => Self::Invalid(e.to_string()),
        }
    }
}
