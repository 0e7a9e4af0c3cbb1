//! Deciding what to do about one agent, as pure functions of what it should be and what AWS
//! shows: no I/O and no AWS SDK, so every rule is table-tested in milliseconds.
//!
//! - [`observed`]: what clawfleet sees on AWS, as plain data (the adapters in `cloud` fill it).
//! - [`delta`]: the typed difference (ACK-style) that decides replacements and registrations.
//! - [`plan()`]: `plan(desired, observed) -> Plan`, the ordered [`Action`]s and the [`Wait`].
//! - [`gitops`]: what a sync of one source's manifests does for each Agent.
//! - [`audit`]: the isolation audit's rules over what AWS shows (`clawfleet audit`).
//! - `purge`: the data purge a deletion may ask for, before the access point goes.
//! - [`action`]: the closed vocabulary the executor carries out, with everything it needs as
//!   data, so it never reads back a message or a tag.

pub mod action;
pub mod audit;
pub mod delta;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gitops;
pub mod observed;
mod plan;
mod purge;

pub use action::{Action, Event, Launch, Plan, StopReason, Wait};
pub use plan::{
    Context, Desired, POLL_SECS, RESTART_BACKOFF_MAX_SECS, RESTART_BACKOFF_MIN_SECS,
    RESTART_RESET_AFTER_SECS, STOP_REASON_PREFIX, plan,
};
pub use purge::{PURGE_BACKOFF_MAX_SECS, PURGE_BACKOFF_MIN_SECS, PURGE_POLL_SECS};
