//! Rendering of the per-agent AWS shapes that depend only on the spec.

use serde_json::{Value, json};

use crate::AgentSpec;

/// ECS rejects RunTask overrides whose JSON exceeds this many characters.
pub const OVERRIDES_LIMIT: usize = 8192;

/// The agent container's name in the template unless configured otherwise.
pub const DEFAULT_CONTAINER: &str = "agent";

/// `PLUGIN_MANIFEST`: the plugins and skills the agent loads at start, as compact JSON.
#[must_use]
pub fn plugin_manifest(spec: &AgentSpec) -> String {
    let plugins: Vec<Value> = spec
        .plugins
        .iter()
        .map(|p| json!({"name": p.name, "source": p.source, "version": p.version}))
        .collect();
    json!({"plugins": plugins, "skills": spec.skills}).to_string()
}

/// The environment clawfleet sets on the agent container, in a stable order: reserved names
/// first, then the user's in name order.
#[must_use]
pub fn environment(spec: &AgentSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("AGENT_ID".to_owned(), spec.agent_id.clone()),
        ("WORKSPACE_ID".to_owned(), spec.client_id.clone()),
        ("PLUGIN_MANIFEST".to_owned(), plugin_manifest(spec)),
    ];
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// RunTask `overrides` in the JSON shape of the ECS API: cpu and memory at task level and for
/// the agent container (so the container may use the whole plan), plus the environment.
#[must_use]
pub fn task_overrides(spec: &AgentSpec, container: &str) -> Value {
    let resources = spec.resources();
    let environment: Vec<Value> = environment(spec)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({
        "containerOverrides": [{
            "name": container,
            "environment": environment,
            "cpu": resources.cpu,
            "memory": resources.memory,
        }],
        "cpu": resources.cpu.to_string(),
        "memory": resources.memory.to_string(),
    })
}

/// Length in characters of the overrides as ECS counts them (compact JSON).
#[must_use]
pub fn task_overrides_len(spec: &AgentSpec, container: &str) -> usize {
    task_overrides(spec, container).to_string().chars().count()
}
