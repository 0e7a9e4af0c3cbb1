//! The desired-state store: Agent spec and status items in DynamoDB.
//!
//! Each Agent is two items under one partition key: `record = "spec"`, written by people and
//! programs, and `record = "status"`, written by the controller. Spec writes are conditioned
//! on the whole item as read ([`Snapshot`]), so no writer, the DynamoDB console included, ever
//! loses an update silently.

mod agents;
mod error;
mod item;
pub mod lease;
pub mod stream;
pub mod summary;
mod table;

pub use agents::{Agent, Page, PageKey, SpecError, SpecItem, Store, Write};
pub use error::StoreError;
pub use item::Snapshot;
pub use summary::FleetSummary;
pub use table::{BootstrapOutcome, DEFAULT_TABLE, ID_KEY_ID, ID_KEY_RECORD};

/// The sort key value of spec items.
pub const SPEC_RECORD: &str = "spec";
/// The sort key value of status items.
pub const STATUS_RECORD: &str = "status";
/// The sparse index over spec items by tenant.
pub const BY_CLIENT_INDEX: &str = "by-client";

/// Whether an item is one of an agent's records. Everything else in the table (the leader
/// lease, the id key, the fleet summary, secret locks) is bookkeeping that no listing shows:
/// the one rule every listing applies.
#[must_use]
pub fn is_agent_record(record: Option<&str>) -> bool {
    matches!(record, Some(SPEC_RECORD | STATUS_RECORD))
}
