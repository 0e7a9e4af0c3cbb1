//! An in-memory [`StatusStore`] for reconciler tests that need no DynamoDB: items are parsed
//! exactly as the table's ([`SpecItem::of_document`]), writes are unconditional, and the next
//! call can be made to fail.
#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use spec::{AgentDocument, AgentSpec, AgentStatus, Meta};
use store::{Agent, Snapshot, SpecItem, StoreError};

use crate::status::StatusStore;

/// The table, as a map from agent id to its items.
#[derive(Debug, Default)]
pub struct FakeStore {
    agents: Mutex<BTreeMap<String, Agent>>,
    fail_next: Mutex<Option<StoreError>>,
}

impl FakeStore {
    fn agents(&self) -> MutexGuard<'_, BTreeMap<String, Agent>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failure(&self) -> Result<(), StoreError> {
        match self
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: StoreError) {
        *self
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// Writes `spec` as `writer` would (a new incarnation when there was none), keeping the
    /// status, as `Store::apply` does.
    pub fn apply(&self, spec: &AgentSpec, writer: &str) {
        let mut agents = self.agents();
        let agent = agents
            .entry(spec.agent_id.clone())
            .or_insert_with(|| Agent::absent(&spec.agent_id));
        let meta = match &agent.spec {
            Some(current) => Meta {
                generation: current.meta.generation + 1,
                ..current.meta.clone()
            },
            None => Meta {
                generation: 1,
                managed_by: Some(writer.to_owned()),
                created_at: Some(spec::now_rfc3339_millis()),
                ..Meta::default()
            },
        };
        agent.spec = Some(SpecItem::of_document(
            &spec.agent_id,
            &spec.to_document(&meta),
        ));
    }

    /// Edits the stored document as a person in the console would: no new generation.
    pub fn edit(&self, agent_id: &str, change: impl FnOnce(&mut AgentDocument)) {
        if let Some(item) = self
            .agents()
            .get_mut(agent_id)
            .and_then(|a| a.spec.as_mut())
            && let Some(document) = &item.document
        {
            let mut document = document.clone();
            change(&mut document);
            *item = SpecItem::of_document(agent_id, &document);
        }
    }

    /// Sets `deletion_requested_at`, as `Store::request_deletion` does.
    pub fn request_deletion(&self, agent_id: &str) {
        self.edit(agent_id, |d| {
            d.deletion_requested_at = Some(spec::now_rfc3339());
        });
    }

    /// Sets `restart_requested_at`, as `Store::request_restart` does.
    pub fn request_restart(&self, agent_id: &str, at: &str) {
        self.edit(agent_id, |d| d.restart_requested_at = Some(at.to_owned()));
    }

    /// The stored status.
    #[must_use]
    pub fn status(&self, agent_id: &str) -> Option<AgentStatus> {
        self.agents().get(agent_id).and_then(|a| a.status.clone())
    }
}

impl StatusStore for FakeStore {
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.failure()?;
        Ok(self.agents().get(agent_id).cloned())
    }

    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        _previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError> {
        self.failure()?;
        let mut agents = self.agents();
        let agent = agents
            .entry(agent_id.to_owned())
            .or_insert_with(|| Agent::absent(agent_id));
        agent.status = Some(status.clone());
        Ok(())
    }

    async fn delete_items(&self, agent_id: &str, _spec: &Snapshot) -> Result<(), StoreError> {
        self.failure()?;
        self.agents().remove(agent_id);
        Ok(())
    }

    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        self.failure()?;
        self.agents().remove(agent_id);
        Ok(())
    }
}
