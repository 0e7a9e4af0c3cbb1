//! The validated Agent spec and the bookkeeping that travels with it.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::document::{AgentDocument, PluginDocument};
use crate::schedule::Schedule;

/// A validated Agent spec. Obtain one through [`AgentDocument::validate`].
///
/// Fields the user left out stay absent (`image`, `size`) so that a default changed in
/// configuration reaches every agent that relies on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AgentSpec {
    pub agent_id: String,
    pub client_id: String,
    pub api_version: Option<String>,
    pub image: Option<String>,
    pub desired_state: DesiredState,
    pub size: Option<Size>,
    pub skills: Vec<String>,
    pub plugins: Vec<Plugin>,
    pub env: BTreeMap<String, String>,
    pub secret_keys: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub restart_requested_at: Option<String>,
    /// When the agent may run; absent: always. Left out of the hash when absent, so that specs
    /// written before schedules existed keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Seconds without activity after which the agent is stopped until woken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_stop_after: Option<u64>,
    /// Empty the agent's directory on EFS before its access point is deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub purge_data_on_delete: bool,
}

/// Whether the agent should have a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    #[default]
    Running,
    Stopped,
}

impl DesiredState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }
}

/// A named customer plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Small,
    Medium,
    Large,
}

impl Plan {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }

    #[must_use]
    pub fn resources(self) -> Resources {
        match self {
            Self::Small => Resources {
                cpu: 512,
                memory: 1024,
            },
            Self::Medium => Resources {
                cpu: 1024,
                memory: 2048,
            },
            Self::Large => Resources {
                cpu: 2048,
                memory: 4096,
            },
        }
    }
}

/// How big the task is: a plan, or an explicit Fargate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Plan(Plan),
    Explicit(Resources),
}

/// Task-level CPU units and memory in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Resources {
    pub cpu: u32,
    pub memory: u32,
}

/// A plugin fetched by the agent at start (`PLUGIN_MANIFEST`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Plugin {
    pub name: String,
    pub source: String,
    pub version: String,
}

/// Bookkeeping set by writers, never by tenants. Parsed even when the spec is invalid, because
/// deletion needs only the agent id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Meta {
    pub generation: u64,
    pub managed_by: Option<String>,
    pub created_at: Option<String>,
    pub deletion_requested_at: Option<String>,
    /// SHA-256 of the API create request that made the agent under an `Idempotency-Key`.
    pub idempotency_fingerprint: Option<String>,
}

impl Meta {
    /// Taken from a document; any value of `deletion_requested_at` counts as a request.
    #[must_use]
    pub fn of(document: &AgentDocument) -> Self {
        Self {
            generation: document.generation.unwrap_or(0),
            managed_by: document.managed_by.clone(),
            created_at: document.created_at.clone(),
            deletion_requested_at: document.deletion_requested_at.clone(),
            idempotency_fingerprint: document.idempotency_fingerprint.clone(),
        }
    }

    #[must_use]
    pub fn is_deleting(&self) -> bool {
        self.deletion_requested_at.is_some()
    }
}

impl AgentSpec {
    /// The plan the agent runs on; `small` when the spec says nothing.
    #[must_use]
    pub fn resources(&self) -> Resources {
        match self.size {
            Some(Size::Plan(plan)) => plan.resources(),
            Some(Size::Explicit(resources)) => resources,
            None => Plan::Small.resources(),
        }
    }

    /// A canonical content hash of the spec (bookkeeping excluded), as lowercase hex SHA-256.
    ///
    /// Two specs that validate to the same value hash the same however they were written.
    #[must_use]
    pub fn content_hash(&self) -> String {
        // Serializing a struct with BTreeMaps is deterministic; this cannot fail for these types.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// The wire shape of this spec together with its bookkeeping.
    #[must_use]
    pub fn to_document(&self, meta: &Meta) -> AgentDocument {
        let (plan, cpu, memory) = match self.size {
            Some(Size::Plan(plan)) => (Some(plan.as_str().to_owned()), None, None),
            Some(Size::Explicit(r)) => (None, Some(r.cpu), Some(r.memory)),
            None => (None, None, None),
        };
        AgentDocument {
            api_version: self.api_version.clone(),
            agent_id: Some(self.agent_id.clone()),
            client_id: Some(self.client_id.clone()),
            image: self.image.clone(),
            desired_state: Some(self.desired_state.as_str().to_owned()),
            plan,
            cpu,
            memory,
            skills: self.skills.clone(),
            plugins: self
                .plugins
                .iter()
                .map(|p| PluginDocument {
                    name: p.name.clone(),
                    source: p.source.clone(),
                    version: p.version.clone(),
                })
                .collect(),
            env: self.env.clone(),
            secret_keys: self.secret_keys.clone(),
            tags: self.tags.clone(),
            restart_requested_at: self.restart_requested_at.clone(),
            schedule: self.schedule.as_ref().map(Schedule::to_document),
            idle_stop_after: self.idle_stop_after.map(crate::lifecycle::format_duration),
            purge_data_on_delete: self.purge_data_on_delete.then_some(true),
            generation: (meta.generation > 0).then_some(meta.generation),
            managed_by: meta.managed_by.clone(),
            created_at: meta.created_at.clone(),
            deletion_requested_at: meta.deletion_requested_at.clone(),
            idempotency_fingerprint: meta.idempotency_fingerprint.clone(),
        }
    }
}
