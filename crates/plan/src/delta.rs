//! Typed deltas (ACK-style): `(path, desired, observed)` triples that decide whether a running
//! task must be replaced, whether only its tags change, and why a new task definition revision
//! is needed. The same delta prints for a dry run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::observed::Task;
use spec::render::{self, Container, NameValue, RunTask, TaskDefinition, tag};

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub desired: String,
    pub observed: String,
}

/// A value as a person reads it: strings bare, absent as `(none)`, the rest as JSON.
fn show(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) => "(none)".to_owned(),
        Ok(v) => v.to_string(),
        Err(e) => format!("(unprintable: {e})"),
    }
}

/// Every field that differs, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta(pub Vec<Difference>);

impl Delta {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The paths that differ.
    #[must_use]
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|d| d.path.as_str()).collect()
    }

    fn compare(
        &mut self,
        path: impl Into<String>,
        desired: impl Serialize,
        observed: impl Serialize,
    ) {
        let (desired, observed) = (show(&desired), show(&observed));
        if desired != observed {
            self.0.push(Difference {
                path: path.into(),
                desired,
                observed,
            });
        }
    }
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            // Values can be long (PLUGIN_MANIFEST): the path says what changed.
            if d.desired.len() + d.observed.len() > 120 {
                write!(f, "{} changed", d.path)?;
            } else {
                write!(f, "{}: {} -> {}", d.path, d.observed, d.desired)?;
            }
        }
        Ok(())
    }
}

/// How a live task differs from the one the spec asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDelta {
    /// Differences that only a new task can apply (ECS cannot change a running task).
    pub replace: Delta,
    /// Tags to set in place.
    pub tags_add: BTreeMap<String, String>,
    /// Tag keys to remove in place.
    pub tags_remove: Vec<String>,
}

impl TaskDelta {
    #[must_use]
    pub fn needs_replacement(&self) -> bool {
        !self.replace.is_empty()
    }

    #[must_use]
    pub fn needs_tags(&self) -> bool {
        !self.tags_add.is_empty() || !self.tags_remove.is_empty()
    }
}

fn env_map(env: &[NameValue]) -> BTreeMap<&str, &str> {
    env.iter()
        .map(|e| (e.name.as_str(), e.value.as_str()))
        .collect()
}

/// Compares the RunTask the spec asks for with a task DescribeTasks reports.
///
/// The task definition (image, secrets, access point, template), cpu and memory, every
/// environment variable (plugins and skills travel in `PLUGIN_MANIFEST`) and a new
/// `restart_requested_at` need a new task; tags are changed in place.
#[must_use]
pub fn task_delta(desired: &RunTask, task: &Task) -> TaskDelta {
    let mut replace = Delta::default();
    replace.compare(
        "task_definition",
        &desired.task_definition,
        &task.task_definition_arn,
    );
    let observed = task.overrides.clone();
    replace.compare(
        "cpu",
        &desired.overrides.cpu,
        observed.as_ref().map_or("", |o| o.cpu.as_str()),
    );
    replace.compare(
        "memory",
        &desired.overrides.memory,
        observed.as_ref().map_or("", |o| o.memory.as_str()),
    );
    for want in &desired.overrides.container_overrides {
        let have = observed
            .as_ref()
            .and_then(|o| o.container_overrides.iter().find(|c| c.name == want.name));
        let prefix = format!("containers.{}", want.name);
        replace.compare(format!("{prefix}.cpu"), want.cpu, have.and_then(|h| h.cpu));
        replace.compare(
            format!("{prefix}.memory"),
            want.memory,
            have.and_then(|h| h.memory),
        );
        let want_env = env_map(&want.environment);
        let have_env = have.map(|h| env_map(&h.environment)).unwrap_or_default();
        let names: BTreeSet<&str> = want_env.keys().chain(have_env.keys()).copied().collect();
        for name in names {
            replace.compare(
                format!("environment.{name}"),
                want_env.get(name),
                have_env.get(name),
            );
        }
    }
    // Only a new value asks for a restart; clearing the field leaves the task alone.
    if let Some(wanted) = desired.tags.get(tag::RESTART) {
        replace.compare("restart_requested_at", wanted, task.tags.get(tag::RESTART));
    }

    let tags = tag_delta(
        &desired.tags,
        &task.tags,
        &[tag::RESTART, tag::LAUNCH_ATTEMPT],
    );
    let (tags_add, tags_remove) = (tags.add, tags.remove);
    TaskDelta {
        replace,
        tags_add,
        tags_remove,
    }
}

/// The tag changes that bring `have` to `want`, applied in place (TagResource/UntagResource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagDelta {
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl TagDelta {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The one rule for tags on every resource: clawfleet sets what it wants and removes the rest,
/// except AWS's own (`aws:`, which cannot be removed) and `Name`, which people set in the
/// console to find things. Keys in `skip` are neither set nor removed here (they have another
/// meaning, such as the launch attempt).
#[must_use]
pub fn tag_delta(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
    skip: &[&str],
) -> TagDelta {
    let skipped = |k: &str| skip.contains(&k);
    let add = want
        .iter()
        .filter(|(k, v)| !skipped(k) && have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| {
            !skipped(k)
                && !want.contains_key(*k)
                && !k.to_lowercase().starts_with("aws:")
                && k.as_str() != "Name"
        })
        .cloned()
        .collect();
    TagDelta { add, remove }
}

/// Compares a rendered task definition with a registered revision, field by field, so that
/// `plan` can say why it registers a new one.
#[must_use]
pub fn definition_delta(desired: &TaskDefinition, observed: &TaskDefinition) -> Delta {
    let mut delta = Delta::default();
    delta.compare(
        "taskRoleArn",
        &desired.task_role_arn,
        &observed.task_role_arn,
    );
    delta.compare(
        "executionRoleArn",
        &desired.execution_role_arn,
        &observed.execution_role_arn,
    );
    delta.compare("networkMode", &desired.network_mode, &observed.network_mode);
    delta.compare(
        "requiresCompatibilities",
        &desired.requires_compatibilities,
        &observed.requires_compatibilities,
    );
    delta.compare("cpu", &desired.cpu, &observed.cpu);
    delta.compare("memory", &desired.memory, &observed.memory);
    delta.compare(
        "runtimePlatform",
        &desired.runtime_platform,
        &observed.runtime_platform,
    );
    delta.compare(
        "ephemeralStorage",
        desired.ephemeral_storage_gib,
        observed.ephemeral_storage_gib,
    );
    let containers = |td: &TaskDefinition| -> BTreeMap<String, Container> {
        td.container_definitions
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect()
    };
    let (want, have) = (containers(desired), containers(observed));
    let names: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
    for name in names {
        match (want.get(name), have.get(name)) {
            (Some(w), Some(h)) => {
                let p = format!("containers.{name}");
                delta.compare(format!("{p}.image"), &w.image, &h.image);
                delta.compare(format!("{p}.secrets"), &w.secrets, &h.secrets);
                delta.compare(format!("{p}.mountPoints"), &w.mount_points, &h.mount_points);
                delta.compare(format!("{p}.environment"), &w.environment, &h.environment);
                let strip = |c: &Container| Container {
                    image: String::new(),
                    secrets: Vec::new(),
                    mount_points: Vec::new(),
                    environment: Vec::new(),
                    ..c.clone()
                };
                delta.compare(format!("{p}.other"), strip(w), strip(h));
            }
            (w, h) => delta.compare(format!("containers.{name}"), w.is_some(), h.is_some()),
        }
    }
    let volumes = |td: &TaskDefinition| -> BTreeMap<String, render::Volume> {
        td.volumes
            .iter()
            .map(|v| (v.name.clone(), v.clone()))
            .collect()
    };
    let (want, have) = (volumes(desired), volumes(observed));
    let names: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
    for name in names {
        delta.compare(
            format!("volumes.{name}"),
            want.get(name)
                .and_then(|v| v.efs_volume_configuration.as_ref()),
            have.get(name)
                .and_then(|v| v.efs_volume_configuration.as_ref()),
        );
    }
    delta
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
