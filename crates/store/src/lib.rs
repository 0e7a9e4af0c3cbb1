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

pub use agents::{Activity, Agent, Page, PageKey, SpecError, SpecItem, Store, Write};
pub use error::StoreError;
pub use item::Snapshot;
pub use summary::FleetSummary;
pub use table::{BootstrapOutcome, DEFAULT_TABLE, ID_KEY_ID, ID_KEY_RECORD};

/// The sort key value of spec items.
pub const SPEC_RECORD: &str = "spec";
/// The sort key value of status items.
pub const STATUS_RECORD: &str = "status";
/// The sort key value of an agent's activity item: `last_activity_at`, written at most once a
/// minute, apart from the spec so that activity never bumps `generation` or looks like a spec
/// change.
pub const ACTIVITY_RECORD: &str = "activity";
/// The sort key value of an agent's wake item: `requested_at` of the last wake, which the
/// stream watch turns into a reconcile.
pub const WAKE_RECORD: &str = "wake";

/// What an item of the table is, by its sort key. The one place that says which items make an
/// agent (listings show only agents with a spec or a status; activity and wakes ride along)
/// and which changes wake the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Spec,
    Status,
    Activity,
    Wake,
    /// The lock a writer of the agent's secret values holds while it writes them: not part of
    /// the agent, but its change says the values (and their key names) are being written
    /// (`stream::Event::SecretsWritten`).
    SecretLock,
    /// Anything else (the leader lease, a fleet summary): never an agent.
    Other,
}

impl Record {
    #[must_use]
    pub fn of(sort_key: &str) -> Self {
        match sort_key {
            SPEC_RECORD => Self::Spec,
            STATUS_RECORD => Self::Status,
            ACTIVITY_RECORD => Self::Activity,
            WAKE_RECORD => Self::Wake,
            lease::SECRET_LOCK_RECORD => Self::SecretLock,
            _ => Self::Other,
        }
    }

    /// Whether a change of this item enqueues its agent: a spec change or a wake. Status
    /// writes (the controller's own) and activity (cheap, frequent) never do.
    #[must_use]
    pub fn enqueues(self) -> bool {
        matches!(self, Self::Spec | Self::Wake)
    }

    /// Whether the item is part of an agent, which listings show.
    #[must_use]
    pub fn of_agent(self) -> bool {
        !matches!(self, Self::SecretLock | Self::Other)
    }
}

/// The sparse index over spec items by tenant.
pub const BY_CLIENT_INDEX: &str = "by-client";
