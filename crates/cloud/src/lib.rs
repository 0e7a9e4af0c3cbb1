//! Observed AWS state and actions, one module per service, each function named after the AWS
//! operation it calls. Errors are classified once, here ([`ErrorClass`]); listings follow every
//! page ([`pages`]).

pub mod calls;
mod ecs;
mod efs;
mod error;
pub mod gate;
mod observe;
pub mod observed;
mod pages;
mod secrets;

pub use calls::Calls;
pub use ecs::{DESCRIBE_TASKS_BATCH, Ecs};
pub use efs::Efs;
pub use error::{AwsError, ErrorClass, Failure, classify};
pub use gate::{Gate, SharedGate};
pub use observe::{Aws, ObserveError};
pub use pages::all_pages;
pub use secrets::Secrets;
