//! The DynamoDB side of a reconcile, as a port beside [`crate::aws::Cloud`]: reading an agent's
//! items and writing its status, so that reconciler tests can run against a fake without moto.

use spec::AgentStatus;
use store::{Agent, Snapshot, Store, StoreError};

/// The store operations a reconcile makes.
#[allow(async_fn_in_trait)]
pub trait StatusStore: Sync {
    /// DynamoDB Query (consistent) of the agent's spec and status items.
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError>;
    /// DynamoDB Scan (consistent) of every agent's items: the resync's read of the whole table.
    async fn list(&self) -> Result<Vec<Agent>, StoreError>;
    /// DynamoDB PutItem of the status item, unless it says what `previous` says.
    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError>;
    /// DynamoDB DeleteItem of both items, conditioned on the spec item as read.
    async fn delete_items(&self, agent_id: &str, spec: &Snapshot) -> Result<(), StoreError>;
    /// DynamoDB DeleteItem of an orphan's status item.
    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError>;
}

impl StatusStore for Store {
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        Store::get(self, agent_id).await
    }
    async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        Store::list_consistent(self).await
    }
    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError> {
        Store::put_status(self, agent_id, status, previous)
            .await
            .map(|_| ())
    }
    async fn delete_items(&self, agent_id: &str, spec: &Snapshot) -> Result<(), StoreError> {
        Store::delete_items(self, agent_id, spec).await
    }
    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        Store::delete_status(self, agent_id).await
    }
}
