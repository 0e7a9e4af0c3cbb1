//! The Agent contract: what users write, what the controller reports, and the rules between them.
//!
//! Pure: no I/O and no AWS SDK, so every rule is unit-tested in milliseconds. Every write path
//! (CLI, HTTP API, GitOps, the DynamoDB console) ends in [`AgentDocument::validate`], which is
//! the only way to obtain an [`AgentSpec`].

mod agent;
mod document;
pub mod failure;
pub mod lifecycle;
pub mod manifest;
pub mod purge;
pub mod render;
pub mod schedule;
pub mod status;
mod validate;

pub use agent::{AgentSpec, DesiredState, Meta, Plan, Plugin, Resources, Size};
pub use document::{AgentDocument, PluginDocument};
pub use status::{
    AgentEvent, AgentStatus, Condition, ConditionKind, ConditionStatus, EventType, Phase, Purge,
};
pub use validate::{
    DNS_LABEL_PATTERN, ENV_NAME_PATTERN, FieldError, LABEL_RULE, MAX_SECRET_KEY_LEN,
    MAX_SECRET_KEYS, PLATFORM_ENV, RESERVED_ENV_PREFIXES, ValidationErrors, env_name_problem,
    is_label, secret_key_problem,
};

/// The `api_version` this build understands.
pub const API_VERSION: &str = "clawfleet/v1";

/// Environment names clawfleet sets itself on every agent container.
pub const RESERVED_ENV: [&str; 3] = ["AGENT_ID", "WORKSPACE_ID", "PLUGIN_MANIFEST"];

/// ECS allows 50 tags per resource; clawfleet keeps 10 for its own.
pub const MAX_USER_TAGS: usize = 40;

/// Prefix of the tags clawfleet owns; users may not write under it.
pub const TAG_PREFIX: &str = "clawfleet:";

/// Current time as RFC 3339, the format of every timestamp in the contract.
#[must_use]
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// Current time as RFC 3339 with milliseconds: for `created_at`, which tells incarnations of one
/// agent id apart (a deleted agent re-created within the same second must not look the same).
#[must_use]
pub fn now_rfc3339_millis() -> String {
    let now = time::OffsetDateTime::now_utc();
    let millis = now.millisecond();
    let whole = format_rfc3339(now);
    match whole.strip_suffix('Z') {
        Some(base) => format!("{base}.{millis:03}Z"),
        None => whole,
    }
}

/// Formats a time as RFC 3339 in UTC with second precision.
#[must_use]
pub fn format_rfc3339(at: time::OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}
