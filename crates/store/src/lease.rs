//! Leader election: one lease item in the table, taken and renewed with conditional writes.
//!
//! - The item (`agent_id = "_leader"`, which no agent can be called, `record = "lease"`) holds
//!   the holder, the expiry (wall clock, milliseconds) and a term that grows with every change of
//!   leader: the fencing token.
//! - A replica takes the lease when it is absent or expired, and renews it only while it still
//!   holds it in the same term. A replica that cannot renew stops acting on its own clock: its
//!   local deadline is measured on the monotonic clock from *before* the write that granted it,
//!   so a paused replica never believes in a lease longer than the table does.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::time::Instant;

use crate::{Store, StoreError};

/// The lease item's partition key: not a DNS label, so never an agent's id.
pub const LEASE_KEY: &str = "_leader";
const LEASE_RECORD: &str = "lease";

/// A lease this replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The fencing token: greater than every earlier leader's.
    pub term: u64,
    /// When this replica must stop acting, on its monotonic clock.
    pub deadline: Instant,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl Store {
    fn lease_update(
        &self,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("agent_id", s(LEASE_KEY))
            .key("record", s(LEASE_RECORD))
    }

    /// Takes the lease for `holder` if it is free or expired (UpdateItem, conditional), with a
    /// new term. `None` when another replica holds it.
    ///
    /// # Errors
    /// A failed UpdateItem.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
    ) -> Result<Option<Held>, StoreError> {
        let asked = Instant::now();
        let now = now_ms();
        let expires = now + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let result = self
            .lease_update()
            .update_expression("SET holder = :me, expires_at = :exp ADD term :one")
            .condition_expression("attribute_not_exists(agent_id) OR expires_at < :now")
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let term = out
                    .attributes
                    .and_then(|a| {
                        a.get("term")
                            .and_then(|t| t.as_n().ok())
                            .and_then(|t| t.parse().ok())
                    })
                    .unwrap_or(0);
                Ok(Some(Held {
                    term,
                    deadline: asked + duration,
                }))
            }
            Err(e) if StoreError::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }

    /// Renews a held lease (UpdateItem, conditioned on the same holder and term). `None` when
    /// it was lost.
    ///
    /// # Errors
    /// A failed UpdateItem.
    pub async fn renew_lease(
        &self,
        holder: &str,
        held: &Held,
        duration: Duration,
    ) -> Result<Option<Held>, StoreError> {
        let asked = Instant::now();
        let expires = now_ms() + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let result = self
            .lease_update()
            .update_expression("SET expires_at = :exp")
            .condition_expression("holder = :me AND term = :term")
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":term", n(held.term))
            .expression_attribute_values(":exp", n(expires))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(Held {
                term: held.term,
                deadline: asked + duration,
            })),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }

    /// Gives the lease up (expires it now), so a standby takes over at once.
    ///
    /// # Errors
    /// A failed UpdateItem; losing the lease meanwhile is no error.
    pub async fn release_lease(&self, holder: &str, held: &Held) -> Result<(), StoreError> {
        let result = self
            .lease_update()
            .update_expression("SET expires_at = :zero")
            .condition_expression("holder = :me AND term = :term")
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":term", n(held.term))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }
}

/// The sort key of an agent's secret-writer lock item (beside its spec and status).
pub(crate) const SECRET_LOCK_RECORD: &str = "secret-lock";

impl Store {
    /// Takes the lock that writers of an agent's secret values hold while they read, merge and
    /// write the value (PutItem, on condition that it is free or expired). Secrets Manager has
    /// no conditional write, so without it two writers merging from the same read would leave
    /// only the later one's keys. `false` when another writer holds it.
    ///
    /// # Errors
    /// A failed PutItem.
    pub async fn lock_secret(
        &self,
        agent_id: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let expires = now + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("agent_id", s(agent_id))
            .item("record", s(SECRET_LOCK_RECORD))
            .item("holder", s(holder))
            .item("expires_at", n(expires))
            .condition_expression("attribute_not_exists(agent_id) OR expires_at < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("PutItem", &self.table, &e)),
        }
    }

    /// Gives the lock up (DeleteItem, only if `holder` still holds it), so that no item is
    /// left behind.
    ///
    /// # Errors
    /// A failed DeleteItem.
    pub async fn unlock_secret(&self, agent_id: &str, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("agent_id", s(agent_id))
            .key("record", s(SECRET_LOCK_RECORD))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("DeleteItem", &self.table, &e)),
        }
    }
}
