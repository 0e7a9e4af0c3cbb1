//! Validation: the only way from an [`AgentDocument`] to an [`AgentSpec`].
//!
//! Every rule reports the field path and the rule it broke (`plugins[2].source: must be an
//! https:// or git URL`). All broken rules are collected, so one round trip fixes a manifest.
//! docs/spec.md lists every rule; keep the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::agent::{AgentSpec, DesiredState, Plan, Plugin, Resources, Size};
use crate::document::AgentDocument;
use crate::render::{DEFAULT_CONTAINER, OVERRIDES_LIMIT, task_overrides_len};
use crate::{API_VERSION, MAX_USER_TAGS, RESERVED_ENV, TAG_PREFIX};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `plugins[2].source`.
    pub field: String,
    /// The rule, phrased as what the value must be.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every rule a document broke, in field order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// The first broken rule, for a status condition that has room for one.
    #[must_use]
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }

    /// Whether some error names exactly this field.
    #[must_use]
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            rule: rule.into(),
        });
    }
}

/// The grammar of every agent and client id: a lowercase DNS label (1 to 40 characters, see
/// [`is_label`]), so that `/agents/{client_id}/{agent_id}` stays within EFS's 100.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

/// The grammar of environment variable names, in `env` and in `secret_keys`.
pub const ENV_NAME_PATTERN: &str = r"^[A-Z_][A-Z0-9_]*$";

/// The longest secret key name: with [`MAX_SECRET_KEYS`] of them, the names fit the secret's
/// Description (see [`crate::render::SECRET_DESCRIPTION_LIMIT`]), where writers record them.
pub const MAX_SECRET_KEY_LEN: usize = 64;

/// The most keys one agent's secret may hold, derived from the Description's budget as
/// [`MAX_SECRET_KEY_LEN`] is.
pub const MAX_SECRET_KEYS: usize = 30;

/// Names the platform sets in every task, or that change how the process loads: a user value
/// would hijack the task role's credentials, the metadata endpoint or the dynamic linker.
pub const PLATFORM_ENV: [&str; 6] = [
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EXECUTION_ENV",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];

/// The JSON Schema of a user-settable environment name, for docs/agent.schema.json.
#[must_use]
pub(crate) fn env_names_schema() -> serde_json::Value {
    let mut reserved: Vec<&str> = RESERVED_ENV.to_vec();
    reserved.extend(PLATFORM_ENV);
    let prefixes = RESERVED_ENV_PREFIXES.join("|");
    serde_json::json!({
        "pattern": ENV_NAME_PATTERN,
        "not": {"anyOf": [{"enum": reserved}, {"pattern": format!("^({prefixes})")}]}
    })
}

/// The JSON Schema of a secret key name, for docs/agent.schema.json.
#[must_use]
pub(crate) fn secret_key_schema() -> serde_json::Value {
    let mut schema = env_names_schema();
    schema["type"] = "string".into();
    schema["maxLength"] = MAX_SECRET_KEY_LEN.into();
    schema
}

/// Prefixes ECS and its agent own (`ECS_CONTAINER_METADATA_URI_V4`, ...), reserved whole so
/// that a name the platform adds later is reserved already.
pub const RESERVED_ENV_PREFIXES: [&str; 2] = ["ECS_", "AWS_CONTAINER_"];

// The patterns are constants of this file, so they compile (a test checks it). Were one not to,
// it would match nothing: a refused value, never a panic in a long-running process.
static DNS_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(DNS_LABEL_PATTERN).ok());
static ENV_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(ENV_NAME_PATTERN).ok());
// The OCI distribution reference grammar: [domain[:port]/]path[:tag][@sha256:digest].
static IMAGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let host = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)";
    let domain = format!(r"(?:{host}(?:\.{host})*(?::[0-9]+)?/)");
    let component = r"(?:[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)";
    let pattern = format!(
        r"^(?P<name>{domain}?{component}(?:/{component})*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}))?(?:@(?P<digest>sha256:[a-f0-9]{{64}}))?$"
    );
    Regex::new(&pattern).ok()
});

/// Fargate's valid (cpu, memory) pairs above 256 CPU units: memory from `min` to `max` in
/// `step` MiB. 256 units take 512, 1024 or 2048, which is no arithmetic series.
const FARGATE: [(u32, u32, u32, u32); 6] = [
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// Whether (cpu, memory) is a task size Fargate accepts.
#[must_use]
pub fn is_fargate_pair(cpu: u32, memory: u32) -> bool {
    if cpu == 256 {
        return matches!(memory, 512 | 1024 | 2048);
    }
    FARGATE.iter().any(|&(c, min, max, step)| {
        c == cpu && (min..=max).contains(&memory) && (memory - min).is_multiple_of(step)
    })
}

/// Whether `text` is a lowercase DNS label of 1 to 40 characters: every agent and client id.
#[must_use]
pub fn is_label(text: &str) -> bool {
    (1..=40).contains(&text.len()) && DNS_LABEL.as_ref().is_some_and(|r| r.is_match(text))
}

/// What [`is_label`] asks, as a rule for an error message.
pub const LABEL_RULE: &str = "must be a lowercase DNS label of 1 to 40 characters (a-z, 0-9, '-', not starting or ending with '-')";

/// Why `name` cannot be an environment variable a user sets (in `env`, or as a key of the
/// agent's secret), or `None` when it can.
#[must_use]
pub fn env_name_problem(name: &str) -> Option<String> {
    if !ENV_NAME.as_ref().is_some_and(|r| r.is_match(name)) {
        return Some(format!("must match {ENV_NAME_PATTERN}"));
    }
    if RESERVED_ENV.contains(&name) {
        return Some("is reserved: clawfleet sets it".to_owned());
    }
    if PLATFORM_ENV.contains(&name) {
        return Some(
            "is reserved: the platform sets it or it changes how the process loads".to_owned(),
        );
    }
    if let Some(prefix) = RESERVED_ENV_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Some(format!(
            "is reserved: names starting with {prefix} belong to ECS"
        ));
    }
    None
}

/// Why `key` cannot be a key of an agent's secret, or `None` when it can: an environment
/// variable name a user may set, of at most [`MAX_SECRET_KEY_LEN`] characters.
#[must_use]
pub fn secret_key_problem(key: &str) -> Option<String> {
    if key.len() > MAX_SECRET_KEY_LEN {
        return Some(format!("must be at most {MAX_SECRET_KEY_LEN} characters"));
    }
    env_name_problem(key)
}

fn check_label(errors: &mut Errors, field: &str, value: Option<&str>) -> Option<String> {
    match value {
        None => errors.push(field, "is required"),
        Some(v) if !is_label(v) => errors.push(field, LABEL_RULE),
        Some(v) => return Some(v.to_owned()),
    }
    None
}

fn check_image(errors: &mut Errors, image: &str) {
    // As in Docker, a first segment is a registry only if it looks like a host; otherwise it
    // is a repository path component and must be lowercase.
    let first = image.split('/').next().unwrap_or_default();
    let registry_like =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let valid = (registry_like || !first.chars().any(|c| c.is_ascii_uppercase()))
        && IMAGE
            .as_ref()
            .and_then(|r| r.captures(image))
            .is_some_and(|c| {
                (c.name("tag").is_some() || c.name("digest").is_some())
                    && c.name("name").is_some_and(|n| n.as_str().len() <= 255)
            });
    if !valid {
        errors.push(
            "image",
            "must be an OCI reference with a tag or digest, e.g. registry/repo:tag or registry/repo@sha256:<64 hex>",
        );
    }
}

fn is_git_or_https_url(source: &str) -> bool {
    if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let has_host = |rest: &str| {
        rest.split(['/', '?', '#'])
            .next()
            .is_some_and(|host| !host.is_empty() && !host.starts_with(':'))
    };
    for scheme in ["https://", "git://", "ssh://", "git+https://", "git+ssh://"] {
        if let Some(rest) = source.strip_prefix(scheme) {
            return has_host(rest);
        }
    }
    // scp-like git syntax: user@host:path
    if let Some((user_host, path)) = source.split_once(':')
        && let Some((user, host)) = user_host.split_once('@')
    {
        return !user.is_empty() && !host.is_empty() && !path.is_empty() && !host.contains('/');
    }
    false
}

fn is_tag_text(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

fn check_name_list(errors: &mut Errors, field: &str, names: &[String], max_len: usize) {
    let mut seen = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.len() > max_len || name.chars().any(char::is_control) {
            errors.push(
                format!("{field}[{i}]"),
                format!("must be 1 to {max_len} characters without control characters"),
            );
        } else if !seen.insert(name.as_str()) {
            errors.push(
                format!("{field}[{i}]"),
                format!("duplicate name \"{name}\""),
            );
        }
    }
}

impl AgentDocument {
    /// Checks every rule and returns the validated spec.
    ///
    /// Bookkeeping fields are not checked here: they are the writers' business and are read
    /// with [`crate::Meta::of`] even when the spec is invalid.
    ///
    /// # Errors
    /// Every broken rule, each naming its field.
    pub fn validate(&self) -> Result<AgentSpec, ValidationErrors> {
        let mut errors = Errors::default();

        if let Some(v) = &self.api_version
            && v != API_VERSION
        {
            errors.push(
                "api_version",
                format!("must be \"{API_VERSION}\" or absent"),
            );
        }
        let agent_id = check_label(&mut errors, "agent_id", self.agent_id.as_deref());
        let client_id = check_label(&mut errors, "client_id", self.client_id.as_deref());

        if let Some(image) = &self.image {
            check_image(&mut errors, image);
        }

        let desired_state = match self.desired_state.as_deref() {
            None | Some("running") => DesiredState::Running,
            Some("stopped") => DesiredState::Stopped,
            Some(_) => {
                errors.push("desired_state", "must be \"running\" or \"stopped\"");
                DesiredState::Running
            }
        };

        let size = self.check_size(&mut errors);

        check_name_list(&mut errors, "skills", &self.skills, 128);
        let plugins = self.check_plugins(&mut errors);
        self.check_env_and_secret_keys(&mut errors);
        check_tags(&mut errors, &self.tags);
        self.check_bookkeeping(&mut errors);

        if let Some(at) = &self.restart_requested_at
            && crate::parse_rfc3339(at).is_none()
        {
            errors.push(
                "restart_requested_at",
                "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z",
            );
        }

        let schedule = match self
            .schedule
            .as_ref()
            .map(crate::schedule::ScheduleDocument::validate)
        {
            None => None,
            Some(Ok(schedule)) => Some(schedule),
            Some(Err(problems)) => {
                for (field, rule) in problems {
                    errors.push(field, rule);
                }
                None
            }
        };
        let idle_stop_after =
            self.idle_stop_after.as_deref().and_then(
                |text| match crate::lifecycle::parse_duration(text) {
                    Some(secs) if secs >= crate::lifecycle::MIN_IDLE_STOP_AFTER_SECS => Some(secs),
                    Some(_) => {
                        errors.push(
                        "idle_stop_after",
                        "must be at least 5m: a stop and a start cost more than a few idle minutes",
                    );
                        None
                    }
                    None => {
                        errors.push(
                        "idle_stop_after",
                        "must be a duration of hours, minutes and seconds, e.g. 30m, 2h or 1h30m",
                    );
                        None
                    }
                },
            );

        let (Some(agent_id), Some(client_id)) = (agent_id, client_id) else {
            return Err(ValidationErrors(errors.0));
        };
        let spec = AgentSpec {
            agent_id,
            client_id,
            api_version: self.api_version.clone(),
            image: self.image.clone(),
            desired_state,
            size,
            skills: self.skills.clone(),
            plugins,
            env: self.env.clone(),
            secret_keys: self.secret_keys.clone(),
            tags: self.tags.clone(),
            restart_requested_at: self.restart_requested_at.clone(),
            schedule,
            idle_stop_after,
            purge_data_on_delete: self.purge_data_on_delete.unwrap_or(false),
        };
        if errors.0.is_empty() {
            let len = task_overrides_len(&spec, DEFAULT_CONTAINER);
            if len > OVERRIDES_LIMIT {
                errors.push(
                    "env",
                    format!(
                        "the RunTask overrides (env, plugins, skills) would be {len} characters; ECS allows {OVERRIDES_LIMIT}"
                    ),
                );
            }
        }
        if errors.0.is_empty() {
            Ok(spec)
        } else {
            Err(ValidationErrors(errors.0))
        }
    }

    fn check_size(&self, errors: &mut Errors) -> Option<Size> {
        match (&self.plan, self.cpu, self.memory) {
            (None, None, None) => None,
            (Some(plan), None, None) => match plan.as_str() {
                "small" => Some(Size::Plan(Plan::Small)),
                "medium" => Some(Size::Plan(Plan::Medium)),
                "large" => Some(Size::Plan(Plan::Large)),
                _ => {
                    errors.push("plan", "must be \"small\", \"medium\" or \"large\"");
                    None
                }
            },
            (Some(_), _, _) => {
                errors.push("plan", "give either plan or cpu/memory, not both");
                None
            }
            (None, Some(cpu), Some(memory)) => {
                if is_fargate_pair(cpu, memory) {
                    Some(Size::Explicit(Resources { cpu, memory }))
                } else {
                    errors.push(
                        "memory",
                        format!("{memory} MiB is not a valid Fargate memory size for cpu {cpu} (see docs/spec.md for the table)"),
                    );
                    None
                }
            }
            (None, Some(_), None) => {
                errors.push("memory", "is required when cpu is given");
                None
            }
            (None, None, Some(_)) => {
                errors.push("cpu", "is required when memory is given");
                None
            }
        }
    }

    fn check_plugins(&self, errors: &mut Errors) -> Vec<Plugin> {
        let mut seen = BTreeSet::new();
        for (i, p) in self.plugins.iter().enumerate() {
            if p.name.is_empty()
                || p.name.len() > 128
                || p.name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errors.push(
                    format!("plugins[{i}].name"),
                    "must be 1 to 128 characters without spaces or control characters",
                );
            } else if !seen.insert(p.name.as_str()) {
                errors.push(
                    format!("plugins[{i}].name"),
                    format!("duplicate plugin \"{}\"", p.name),
                );
            }
            if !is_git_or_https_url(&p.source) {
                errors.push(
                    format!("plugins[{i}].source"),
                    "must be an https:// or git URL",
                );
            }
            if p.version.is_empty()
                || p.version.len() > 64
                || p.version
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                errors.push(
                    format!("plugins[{i}].version"),
                    "must be 1 to 64 characters without spaces or control characters",
                );
            }
        }
        self.plugins
            .iter()
            .map(|p| Plugin {
                name: p.name.clone(),
                source: p.source.clone(),
                version: p.version.clone(),
            })
            .collect()
    }

    fn check_env_and_secret_keys(&self, errors: &mut Errors) {
        for name in self.env.keys() {
            let field = format!("env.{name}");
            if let Some(problem) = env_name_problem(name) {
                errors.push(field, problem);
            } else if self.secret_keys.contains(name) {
                errors.push(
                    field,
                    "is also in secret_keys; a name comes from one or the other",
                );
            }
        }
        if self.secret_keys.len() > MAX_SECRET_KEYS {
            errors.push(
                "secret_keys",
                format!(
                    "at most {MAX_SECRET_KEYS} keys (has {}): their names must fit the secret's Description",
                    self.secret_keys.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, key) in self.secret_keys.iter().enumerate() {
            let field = format!("secret_keys[{i}]");
            if let Some(problem) = secret_key_problem(key) {
                errors.push(field, problem);
            } else if !seen.insert(key.as_str()) {
                errors.push(field, format!("duplicate key \"{key}\""));
            }
        }
    }

    /// The bookkeeping writers set: refused when it does not parse, so that a console edit
    /// cannot make it say something no writer would.
    fn check_bookkeeping(&self, errors: &mut Errors) {
        if let Some(by) = &self.managed_by
            && !is_writer(by)
        {
            errors.push(
                "managed_by",
                "must be \"api\", \"cli\" or \"gitops:NAME\" (NAME: 1 to 63 of a-z, 0-9, '-', '_', '.')",
            );
        }
        if let Some(at) = &self.created_at
            && crate::parse_rfc3339(at).is_none()
        {
            errors.push("created_at", "must be an RFC 3339 timestamp");
        }
        if let Some(fingerprint) = &self.idempotency_fingerprint
            && !(fingerprint.len() == 64
                && fingerprint
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            errors.push(
                "idempotency_fingerprint",
                "must be a SHA-256 as 64 lowercase hex digits",
            );
        }
    }
}

/// Whether `by` names a writer: `api`, `cli` or `gitops:NAME`.
fn is_writer(by: &str) -> bool {
    match by.strip_prefix("gitops:") {
        Some(name) => {
            (1..=63).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        }
        None => by == "api" || by == "cli",
    }
}

fn check_tags(errors: &mut Errors, tags: &BTreeMap<String, String>) {
    if tags.len() > MAX_USER_TAGS {
        errors.push(
            "tags",
            format!("at most {MAX_USER_TAGS} tags (has {})", tags.len()),
        );
    }
    for (key, value) in tags {
        let field = format!("tags.{key}");
        let lower = key.to_lowercase();
        if key.is_empty() || key.chars().count() > 128 {
            errors.push(field, "key must be 1 to 128 characters");
        } else if !is_tag_text(key) {
            errors.push(
                field,
                "key may contain only letters, digits, spaces and _ . : / = + - @",
            );
        } else if lower.starts_with("aws:") {
            errors.push(field, "key may not start with \"aws:\"");
        } else if lower.starts_with(TAG_PREFIX) {
            errors.push(
                field,
                "key may not start with \"clawfleet:\": clawfleet sets those",
            );
        } else if value.chars().count() > 256 {
            errors.push(field, "value must be at most 256 characters");
        } else if !is_tag_text(value) {
            errors.push(
                field,
                "value may contain only letters, digits, spaces and _ . : / = + - @",
            );
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
