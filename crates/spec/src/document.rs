//! The wire shape of a spec: manifest fields and DynamoDB attributes share these names.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A spec as written by a person or a program, before validation.
///
/// Every field is optional here so that a missing required field is reported by validation,
/// with its name, instead of by the deserializer. Unknown fields are rejected so that a typo
/// typed into the console is never silently ignored.
///
/// The JSON Schema of manifests (docs/agent.schema.json) is derived from this type. It leaves
/// out the bookkeeping fields, so that with `deny_unknown_fields` a manifest setting one fails
/// there too, and describes a field a manifest omits rather than sets to `null`. Validation stays
/// the authority: the schema checks the shape of each field, not the rules between fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "clawfleet Agent manifest",
    description = "One Agent spec, as written in a manifest (clawfleet apply, clawfleet sync). Field names are the DynamoDB attribute names; docs/spec.md has every rule.",
    extend("required" = ["agent_id", "client_id"]),
    extend("dependentRequired" = {"cpu": ["memory"], "memory": ["cpu"]})
)]
pub struct AgentDocument {
    /// Absent, or the version of the contract this manifest is written against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", extend("const" = "clawfleet/v1"))]
    pub api_version: Option<String>,
    /// The agent's global id: a lowercase DNS label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        length(min = 1, max = 40),
        regex(pattern = crate::validate::DNS_LABEL_PATTERN)
    )]
    pub agent_id: Option<String>,
    /// The tenant: a lowercase DNS label, immutable once the agent exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        length(min = 1, max = 40),
        regex(pattern = crate::validate::DNS_LABEL_PATTERN)
    )]
    pub client_id: Option<String>,
    /// An OCI image reference with a tag or a digest; absent means the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        regex(pattern = r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")
    )]
    pub image: Option<String>,
    /// Whether the agent has a task; absent means running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", extend("enum" = ["running", "stopped"]))]
    pub desired_state: Option<String>,
    /// small (0.5 vCPU, 1 GiB), medium (1 vCPU, 2 GiB) or large (2 vCPU, 4 GiB); instead of cpu/memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", extend("enum" = ["small", "medium", "large"]))]
    pub plan: Option<String>,
    /// Task CPU units, with memory, instead of a plan: a valid Fargate pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u32", extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    pub cpu: Option<u32>,
    /// Task memory in MiB, with cpu, instead of a plan: a valid Fargate pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u32", range(min = 512, max = 122880))]
    pub memory: Option<u32>,
    /// Skill names, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 128)), extend("uniqueItems" = true))]
    pub skills: Vec<String>,
    /// Plugins fetched by the agent at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginDocument>,
    /// Environment variables; values are not secret (those go in secret_keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = crate::validate::env_names_schema()))]
    pub env: BTreeMap<String, String>,
    /// Names of the keys in the agent's secret, injected as environment variables. Never values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = crate::validate::MAX_SECRET_KEYS),
        extend("items" = crate::validate::secret_key_schema(), "uniqueItems" = true)
    )]
    pub secret_keys: Vec<String>,
    /// Cost tags put on every AWS resource of the agent; no aws: or clawfleet: keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40, "propertyNames" = {"minLength": 1, "maxLength": 128}, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    pub tags: BTreeMap<String, String>,
    /// A new RFC 3339 timestamp replaces the agent's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub restart_requested_at: Option<String>,
    /// When the agent may run: a time zone and weekly windows. Absent: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::ScheduleDocument>,
    /// Stop the agent after this long without activity (at least 5m), until it is woken:
    /// e.g. 30m, 2h, 1h30m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", regex(pattern = crate::lifecycle::DURATION_PATTERN))]
    pub idle_stop_after: Option<String>,
    /// Empty the agent's directory on EFS, with a one-off task, before deleting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "bool")]
    pub purge_data_on_delete: Option<bool>,

    // Bookkeeping: set by writers (API, CLI, GitOps), never by tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub managed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub deletion_requested_at: Option<String>,
    /// SHA-256 of the create request an API `Idempotency-Key` made this agent from, so that
    /// the key reused with another body is refused instead of replaying this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub idempotency_fingerprint: Option<String>,
}

/// One plugin as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    extend("required" = ["name", "source", "version"]),
    transform = without_defaults
)]
pub struct PluginDocument {
    /// Unique among the agent's plugins; no spaces.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^\S+$"))]
    pub name: String,
    /// An https:// or git URL (git://, ssh://, git+https://, git+ssh://, user@host:path).
    #[serde(default)]
    #[schemars(regex(pattern = r"^\S+$"))]
    pub source: String,
    /// No spaces.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^\S+$"))]
    pub version: String,
}

/// The plugin fields default to "" only so that validation, rather than the parser, names a
/// missing one; to an editor the schema says they are required, with no default.
fn without_defaults(schema: &mut schemars::Schema) {
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for property in properties.values_mut() {
            if let Some(property) = property.as_object_mut() {
                property.remove("default");
            }
        }
    }
}

impl AgentDocument {
    /// The JSON Schema (draft 2020-12) of one manifest document: docs/agent.schema.json.
    #[must_use]
    pub fn manifest_schema() -> serde_json::Value {
        schemars::schema_for!(AgentDocument).to_value()
    }

    /// Attribute names a spec item may carry, besides the table's sort key `record`.
    ///
    /// A conditional write asserts that the ones absent when read are still absent.
    pub const ATTRIBUTES: [&'static str; 22] = [
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
        "schedule",
        "idle_stop_after",
        "purge_data_on_delete",
        "generation",
        "managed_by",
        "created_at",
        "deletion_requested_at",
        "idempotency_fingerprint",
    ];

    /// Bookkeeping attributes, which manifests and tenants may not set.
    pub const BOOKKEEPING: [&'static str; 5] = [
        "generation",
        "managed_by",
        "created_at",
        "deletion_requested_at",
        "idempotency_fingerprint",
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
        if self.idempotency_fingerprint.is_some() {
            present.push("idempotency_fingerprint");
        }
        present
    }
}
