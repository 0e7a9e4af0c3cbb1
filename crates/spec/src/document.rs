//! The wire shape of a spec: manifest fields and DynamoDB attributes share these names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A spec as written by a person or a program, before validation.
///
/// Every field is optional here so that a missing required field is reported by validation,
/// with its name, instead of by the deserializer. Unknown fields are rejected so that a typo
/// typed into the console is never silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginDocument>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_requested_at: Option<String>,

    // Bookkeeping: set by writers (API, CLI, GitOps), never by tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_requested_at: Option<String>,
}

/// One plugin as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDocument {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub version: String,
}

impl AgentDocument {
    /// Attribute names a spec item may carry, besides the table's sort key `record`.
    ///
    /// A conditional write asserts that the ones absent when read are still absent.
    pub const ATTRIBUTES: [&'static str; 18] = [
        "api_version",
        "agent_id",
        "client_id",
        "image",
        "desired_state",
        "plan",
        "cpu",
        "memory",
        "skills",
        "plugins",
        "env",
        "secret_keys",
        "tags",
        "restart_requested_at",
        "generation",
        "managed_by",
        "created_at",
        "deletion_requested_at",
    ];

    /// Bookkeeping attributes, which manifests and tenants may not set.
    pub const BOOKKEEPING: [&'static str; 4] = [
        "generation",
        "managed_by",
        "created_at",
        "deletion_requested_at",
    ];

    /// The bookkeeping fields this document sets, by name.
    #[must_use]
    pub fn bookkeeping_present(&self) -> Vec<&'static str> {
        let mut present = Vec::new();
        if self.generation.is_some() {
            present.push("generation");
        }
        if self.managed_by.is_some() {
            present.push("managed_by");
        }
        if self.created_at.is_some() {
            present.push("created_at");
        }
        if self.deletion_requested_at.is_some() {
            present.push("deletion_requested_at");
        }
        present
    }
}
