//! The AWS adapters: one module per service, each function named after the AWS operation it
//! calls (reads and writes; CloudWatch Logs only reads, for `clawfleet logs`; EC2 only for the
//! audit's one read), filling the planner's observed types ([`plan::observed`]). Every call
//! passes one [`Gate`] (rate limits in [`ratelimit`], error classes in [`ErrorClass`]) and is
//! counted by [`Calls`] (exported by [`metrics`]); listings follow every page ([`pages`]).

pub mod calls;
mod ec2;
mod ecs;
mod efs;
mod error;
pub mod gate;
mod iam;
pub mod logs;
pub mod metrics;
mod observe;
mod pages;
pub mod ratelimit;
mod secrets;
pub mod sqs;

pub use calls::Calls;
pub use ec2::{Ec2, Ec2Error};
pub use ecs::{DESCRIBE_TASKS_BATCH, Ecs};
pub use efs::Efs;
pub use error::{AwsError, ErrorClass, Failure, classify};
pub use gate::{Gate, SharedGate};
pub use iam::Iam;
pub use logs::Logs;
pub use observe::{Aws, ObserveError, Recorded};
pub use pages::all_pages;
pub use ratelimit::Limits;
pub use secrets::Secrets;
