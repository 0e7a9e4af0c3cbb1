//! What the controller reports about an Agent: the `record = "status"` item.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Provisioning,
    Running,
    Stopping,
    Stopped,
    Failed,
    Deleting,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Provisioning,
        Phase::Running,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Failed,
        Phase::Deleting,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Provisioning => "Provisioning",
            Self::Running => "Running",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
        }
    }
}

/// Kubernetes-style condition truth value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The kinds of condition the controller reports, as ACK's `conditions.go` names its own: a
/// closed set, so that code decides on a variant and never on a wording.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ConditionKind {
    /// The spec item validates; False names the field.
    SpecValid,
    /// Every key in `secret_keys` is recorded in the agent's secret.
    SecretsReady,
    /// AWS matches the spec (no action pending).
    Synced,
    /// The agent's task is running.
    Ready,
}

impl ConditionKind {
    /// Every kind, in the order `describe` prints them.
    pub const ALL: [ConditionKind; 4] = [
        ConditionKind::SpecValid,
        ConditionKind::SecretsReady,
        ConditionKind::Synced,
        ConditionKind::Ready,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpecValid => "SpecValid",
            Self::SecretsReady => "SecretsReady",
            Self::Synced => "Synced",
            Self::Ready => "Ready",
        }
    }
}

impl std::fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation about the agent, of one [`ConditionKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionKind,
    pub status: ConditionStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default)]
    pub time: String,
}

/// The status item. Written by the controller only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatus {
    #[serde(default)]
    pub phase: Phase,
    /// The tenant that owns the agent, recorded by the controller at the agent's first
    /// reconcile and never changed after. When present it, not the spec's `client_id` (which a
    /// console edit can change), decides who may see the agent. The status item stores it as
    /// `owner_client_id`, which keeps status items out of the `by-client` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_spec_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// The task role the agent's revision names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// `per-agent` (the agent's own role, which may mount only its own access point) or
    /// `template` (the template's role, shared by every agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_at: Option<String>,
    #[serde(default)]
    pub launch_attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl AgentStatus {
    /// The condition of this type, if reported.
    #[must_use]
    pub fn condition(&self, kind: ConditionKind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Whether two statuses say the same thing, ignoring when they were written.
    #[must_use]
    pub fn same_as(&self, other: &AgentStatus) -> bool {
        let strip = |s: &AgentStatus| AgentStatus {
            updated_at: None,
            ..s.clone()
        };
        strip(self) == strip(other)
    }
}
