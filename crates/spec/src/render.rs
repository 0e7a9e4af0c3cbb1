//! Rendering of the per-agent AWS shapes: pure functions of one spec, the template task
//! definition and the controller's settings.
//!
//! The shapes are clawfleet's own serde types in the JSON shape of the AWS APIs (camelCase), so
//! they can be golden-tested and compared field by field; the `cloud` crate converts them to
//! and from SDK types. ECS RunTask overrides cannot carry `secrets` or `volumes`, so the image,
//! the secrets and the EFS access point live in a per-agent task definition revision; cpu,
//! memory and the environment go in the overrides.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AgentSpec;

/// ECS rejects RunTask overrides whose JSON exceeds this many characters.
pub const OVERRIDES_LIMIT: usize = 8192;

/// The agent container's name in the template unless configured otherwise.
pub const DEFAULT_CONTAINER: &str = "agent";

/// Where the agent's EFS "brain" is mounted unless configured otherwise.
pub const DEFAULT_MOUNT_PATH: &str = "/home/openclaw/workspace";

/// Secret names start with this unless configured otherwise.
pub const DEFAULT_SECRET_PREFIX: &str = "/openclaw/agents/";

/// The volume clawfleet adds to every agent revision.
pub const WORKSPACE_VOLUME: &str = "clawfleet-workspace";

/// Per-agent task definition families are `clawfleet_{cluster}_{agent_id}`: scoped by
/// cluster, because ListTaskDefinitions is account-wide and two installations must never
/// take each other's revisions for orphans. Agent ids have no '_', so the last '_' splits.
pub const FAMILY_PREFIX: &str = "clawfleet_";

/// Tag keys clawfleet owns on every resource it creates.
pub mod tag {
    pub const MANAGED_BY: &str = "clawfleet:managed-by";
    pub const AGENT_ID: &str = "clawfleet:agent-id";
    pub const CLIENT_ID: &str = "clawfleet:client-id";
    /// On tasks only: the `restart_requested_at` the task was launched for.
    pub const RESTART: &str = "clawfleet:restart-requested-at";
    /// On tasks only: the launch attempt that started it, which tells whether the attempt
    /// recorded in the status reached ECS.
    pub const LAUNCH_ATTEMPT: &str = "clawfleet:launch-attempt";
    /// The installation that manages the resource: two installations in one account (staging
    /// and production, say) list, correct and collect only their own.
    pub const INSTALLATION: &str = "clawfleet:installation";
    /// The value of [`MANAGED_BY`].
    pub const MANAGER: &str = "clawfleet";
}

/// The controller's configuration that rendering depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub cluster: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub file_system_id: String,
    /// The template's agent container.
    pub container: String,
    pub mount_path: String,
    pub posix_uid: u32,
    pub posix_gid: u32,
    pub secret_prefix: String,
    /// The image for specs that name none; `None` keeps the template's.
    pub default_image: Option<String>,
    /// The installation's name: IAM is account-global, so role names and paths carry it.
    pub installation: String,
    /// Which task role an agent's revision names.
    pub task_role: TaskRole,
    /// How long an agent's task may stay UNHEALTHY before it is replaced, in seconds.
    pub unhealthy_grace_secs: i64,
    /// How long before a schedule window opens its agent starts (`--schedule-lead`), in
    /// seconds; each agent takes a share of up to half of it off ([`crate::lifecycle::lead_for`]).
    pub schedule_lead_secs: i64,
    /// The image of the one-off task that erases a deleted agent's files (`--purge-image`,
    /// pinned by digest); `None`: a purge asked for cannot run, and the access point is kept.
    pub purge_image: Option<String>,
    /// How long a purge task may take before it is stopped and counted failed, in seconds.
    pub purge_timeout_secs: i64,
}

/// Which IAM task role agents run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRole {
    /// One role per agent, allowed only to mount its own access point, created under this
    /// permissions boundary. The task role's credentials are visible inside the container, so
    /// only a role of its own isolates one agent's memory from another's.
    PerAgent { permissions_boundary: String },
    /// The template's task role, shared by every agent: for operators who knowingly accept that
    /// any agent may mount any access point that role may mount.
    Template,
}

impl TaskRole {
    /// As `clawfleet describe` and the flag spell it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PerAgent { .. } => "per-agent",
            Self::Template => "template",
        }
    }
}

/// `--schedule-lead`'s default: two minutes, about what a Fargate task takes to be RUNNING.
pub const DEFAULT_SCHEDULE_LEAD_SECS: i64 = 120;

impl Settings {
    /// The cluster's name, also when it is configured as an ARN (`...:cluster/NAME`), which
    /// may not appear in a task definition family.
    #[must_use]
    pub fn cluster_name(&self) -> &str {
        self.cluster
            .rsplit_once("cluster/")
            .map_or(self.cluster.as_str(), |(_, n)| n)
    }

    /// Settings with the documented defaults around the required values.
    #[must_use]
    pub fn new(cluster: &str, file_system_id: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            file_system_id: file_system_id.to_owned(),
            container: DEFAULT_CONTAINER.to_owned(),
            mount_path: DEFAULT_MOUNT_PATH.to_owned(),
            posix_uid: 1000,
            posix_gid: 1000,
            secret_prefix: DEFAULT_SECRET_PREFIX.to_owned(),
            default_image: None,
            installation: DEFAULT_INSTALLATION.to_owned(),
            task_role: TaskRole::Template,
            unhealthy_grace_secs: DEFAULT_UNHEALTHY_GRACE_SECS,
            schedule_lead_secs: DEFAULT_SCHEDULE_LEAD_SECS,
            purge_image: None,
            purge_timeout_secs: crate::purge::DEFAULT_TIMEOUT_SECS,
        }
    }
}

/// A task definition's content: the fields clawfleet carries from the template into each
/// agent's revision, and compares to decide whether a new revision is needed. Fields of the
/// template outside this set are not carried over (docs/rendering.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_compatibilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_gib: Option<i32>,
    pub container_definitions: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<NameValue>,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    /// The container's health check: with one, Ready waits for ECS to report HEALTHY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// `linuxParameters.initProcessEnabled`: an init process reaps the agent's zombies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
}

/// A container health check, as the task definition carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<EfsVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EfsVolume {
    pub file_system_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    /// `authorizationConfig.iam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<String>,
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "template task definition {family}: has no container named \"{container}\" (set --container-name)"
    )]
    NoAgentContainer { family: String, container: String },
    #[error(
        "template task definition {family}: its family starts with \"{FAMILY_PREFIX}\", which clawfleet reserves for agent revisions"
    )]
    ReservedFamily { family: String },
    #[error(
        "template task definition {family}: needs a taskRoleArn, because EFS IAM authorization uses the task role"
    )]
    NoTaskRole { family: String },
}

impl TaskDefinition {
    /// Puts lists whose order carries no meaning into a canonical order, so that equality
    /// means "same content" however AWS or a person ordered them.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        for c in &mut self.container_definitions {
            c.environment.sort();
            c.secrets.sort();
        }
        self.requires_compatibilities.sort();
        self
    }

    /// Checks the template can produce agent revisions.
    ///
    /// # Errors
    /// The first reason it cannot.
    pub fn check_template(&self, settings: &Settings) -> Result<(), TemplateError> {
        if agent_of_family(settings, &self.family).is_some() {
            return Err(TemplateError::ReservedFamily {
                family: self.family.clone(),
            });
        }
        if self.task_role_arn.is_none() {
            return Err(TemplateError::NoTaskRole {
                family: self.family.clone(),
            });
        }
        if !self
            .container_definitions
            .iter()
            .any(|c| c.name == settings.container)
        {
            return Err(TemplateError::NoAgentContainer {
                family: self.family.clone(),
                container: settings.container.clone(),
            });
        }
        Ok(())
    }
}

/// The per-agent task definition family.
#[must_use]
pub fn family(settings: &Settings, agent_id: &str) -> String {
    format!("{FAMILY_PREFIX}{}_{agent_id}", settings.cluster_name())
}

/// The agent whose revisions a family holds, in this installation's cluster.
#[must_use]
pub fn agent_of_family<'a>(settings: &Settings, family: &'a str) -> Option<&'a str> {
    let agent = family
        .strip_prefix(FAMILY_PREFIX)?
        .strip_prefix(settings.cluster_name())?
        .strip_prefix('_')?;
    (!agent.is_empty() && !agent.contains('_')).then_some(agent)
}

/// The ECS `startedBy` of the agent's tasks: letters, digits, '-', '_' and '/' only.
#[must_use]
pub fn started_by(agent_id: &str) -> String {
    format!("clawfleet/{agent_id}")
}

/// The agent's secret name, e.g. `/openclaw/agents/acme-support/secrets`.
#[must_use]
pub fn secret_name(settings: &Settings, agent_id: &str) -> String {
    secret_name_under(&settings.secret_prefix, agent_id)
}

/// [`secret_name`] for writers that know only the prefix (the API, `clawfleet secrets`).
#[must_use]
pub fn secret_name_under(prefix: &str, agent_id: &str) -> String {
    format!("{prefix}{agent_id}/secrets")
}

/// The access point's root directory. DNS-label ids keep it within EFS's 100 characters.
#[must_use]
pub fn access_point_root(spec: &AgentSpec) -> String {
    format!("/agents/{}/{}", spec.client_id, spec.agent_id)
}

/// clawfleet's identity tags.
#[must_use]
pub fn identity_tags(agent_id: &str, client_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (tag::MANAGED_BY.to_owned(), tag::MANAGER.to_owned()),
        (tag::AGENT_ID.to_owned(), agent_id.to_owned()),
        (tag::CLIENT_ID.to_owned(), client_id.to_owned()),
    ])
}

/// Identity tags plus the user's cost tags: what the access point and secret carry.
#[must_use]
pub fn resource_tags(spec: &AgentSpec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.extend(identity_tags(&spec.agent_id, &spec.client_id));
    tags
}

/// What everything the controller creates for an agent carries: [`resource_tags`] plus the
/// installation.
#[must_use]
pub fn owned_tags(spec: &AgentSpec, settings: &Settings) -> BTreeMap<String, String> {
    let mut tags = resource_tags(spec);
    tags.insert(tag::INSTALLATION.to_owned(), settings.installation.clone());
    tags
}

/// What a revision carries: the identity tags and the installation (no cost tags, which
/// change without changing the revision).
#[must_use]
pub fn revision_tags(spec: &AgentSpec, settings: &Settings) -> BTreeMap<String, String> {
    let mut tags = identity_tags(&spec.agent_id, &spec.client_id);
    tags.insert(tag::INSTALLATION.to_owned(), settings.installation.clone());
    tags
}

/// Whether a resource with these tags may be this installation's: it carries its
/// installation, or none (created before installations were tagged; adopted by the
/// installation whose table holds its agent, and never collected as an orphan).
#[must_use]
pub fn of_installation(tags: &BTreeMap<String, String>, settings: &Settings) -> bool {
    tags.get(tag::INSTALLATION)
        .is_none_or(|i| *i == settings.installation)
}

/// What a task carries: [`owned_tags`] plus the restart marker it was launched for.
#[must_use]
pub fn task_tags(spec: &AgentSpec, settings: &Settings) -> BTreeMap<String, String> {
    let mut tags = owned_tags(spec, settings);
    if let Some(at) = &spec.restart_requested_at {
        tags.insert(tag::RESTART.to_owned(), at.clone());
    }
    tags
}

/// The agent's task definition revision: the template with the agent's image, its secrets as
/// `valueFrom = <secret-arn>:<KEY>::`, and its EFS access point mounted at the configured
/// path with transit encryption and IAM authorization. The agent container keeps no hard
/// memory limit of its own: the overrides give it the whole plan.
///
/// # Errors
/// A template that cannot produce agent revisions.
pub fn task_definition(
    spec: &AgentSpec,
    template: &TaskDefinition,
    settings: &Settings,
    secret_arn: &str,
    access_point_id: &str,
    task_role_arn: Option<&str>,
) -> Result<TaskDefinition, TemplateError> {
    template.check_template(settings)?;
    let mut rendered = template.clone();
    rendered.family = family(settings, &spec.agent_id);
    if let Some(arn) = task_role_arn {
        rendered.task_role_arn = Some(arn.to_owned());
    }
    rendered.volumes.retain(|v| v.name != WORKSPACE_VOLUME);
    rendered.volumes.push(Volume {
        name: WORKSPACE_VOLUME.to_owned(),
        efs_volume_configuration: Some(EfsVolume {
            file_system_id: settings.file_system_id.clone(),
            root_directory: None,
            transit_encryption: Some("ENABLED".to_owned()),
            access_point_id: Some(access_point_id.to_owned()),
            iam: Some("ENABLED".to_owned()),
        }),
    });
    for container in &mut rendered.container_definitions {
        if container.name != settings.container {
            continue;
        }
        if let Some(image) = spec.image.as_ref().or(settings.default_image.as_ref()) {
            container.image.clone_from(image);
        }
        // A hard limit below the task size would cap the plan; a soft reservation does not.
        container.memory = None;
        container
            .secrets
            .retain(|s| !spec.secret_keys.contains(&s.name));
        container
            .secrets
            .extend(spec.secret_keys.iter().map(|key| SecretRef {
                name: key.clone(),
                value_from: format!("{secret_arn}:{key}::"),
            }));
        container.mount_points.retain(|m| {
            m.container_path != settings.mount_path && m.source_volume != WORKSPACE_VOLUME
        });
        container.mount_points.push(MountPoint {
            source_volume: WORKSPACE_VOLUME.to_owned(),
            container_path: settings.mount_path.clone(),
            read_only: false,
        });
    }
    Ok(rendered.normalized())
}

/// RunTask `overrides`: cpu and memory at task level and for the agent container (so the
/// container may use the whole plan), and the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    pub cpu: String,
    pub memory: String,
    pub container_overrides: Vec<ContainerOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    /// In [`environment`] order.
    #[serde(default)]
    pub environment: Vec<NameValue>,
}

/// The RunTask request for one agent, without the launch token (the executor derives it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTask {
    pub cluster: String,
    pub task_definition: String,
    pub launch_type: String,
    pub started_by: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: String,
    pub overrides: Overrides,
    pub tags: BTreeMap<String, String>,
}

/// The EFS CreateAccessPoint request, without the client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPoint {
    pub file_system_id: String,
    pub root_path: String,
    pub posix_uid: u32,
    pub posix_gid: u32,
    /// Mode of the root directory EFS creates on first use.
    pub creation_permissions: String,
    pub tags: BTreeMap<String, String>,
}

/// Days a deleted agent's secret stays restorable unless configured otherwise (Secrets
/// Manager allows 7 to 30).
pub const DEFAULT_SECRET_RECOVERY_DAYS: i64 = 7;

/// How long a task may stay UNHEALTHY before it is replaced, unless configured otherwise.
pub const DEFAULT_UNHEALTHY_GRACE_SECS: i64 = 300;

/// The installation name when none is configured.
pub const DEFAULT_INSTALLATION: &str = "default";

/// The installation name derived from a table: stable, short, and different for two tables.
#[must_use]
pub fn default_installation(table: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(table.as_bytes());
    format!("i{}", &hex::encode(digest)[..8])
}

/// The name of the one inline policy of an agent's task role.
pub const ROLE_POLICY_NAME: &str = "clawfleet-own-access-point";

/// The IAM path every agent role of an installation lives under; listing and garbage
/// collection read only this path.
#[must_use]
pub fn role_path(settings: &Settings) -> String {
    format!("/clawfleet/{}/", settings.installation)
}

/// An agent's task role name: `cf-{installation}-{agent_id}`, within IAM's 64 characters
/// (the installation is at most 16 characters, an agent id at most 40).
#[must_use]
pub fn role_name(settings: &Settings, agent_id: &str) -> String {
    format!("cf-{}-{agent_id}", settings.installation)
}

/// The agent whose role this is, for a role listed under [`role_path`].
#[must_use]
pub fn agent_of_role<'a>(settings: &Settings, role_name: &'a str) -> Option<&'a str> {
    role_name
        .strip_prefix("cf-")?
        .strip_prefix(settings.installation.as_str())?
        .strip_prefix('-')
}

/// The IAM CreateRole request of an agent's task role, with its one inline policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub path: String,
    /// The trust policy (JSON).
    pub trust_policy: String,
    pub permissions_boundary: String,
    /// The inline policy (JSON): mount and write its own access point, nothing else.
    pub policy: String,
    pub tags: BTreeMap<String, String>,
}

/// The agent role's trust policy and inline policy: the same files the CloudFormation template
/// and the development stack are made from (deploy/policies), so the three cannot drift apart.
const AGENT_TRUST_POLICY: &str =
    include_str!("../../../deploy/policies/ecs-tasks-trust-policy.json");
const AGENT_ROLE_POLICY: &str =
    include_str!("../../../deploy/policies/agent-task-role-policy.json");

/// The policy documents as compact JSON, made once: the planner renders an agent's role at
/// every resync, and parsing the files again each time was a tenth of a resync's CPU.
static AGENT_TRUST_POLICY_COMPACT: LazyLock<Option<String>> =
    LazyLock::new(|| compact(AGENT_TRUST_POLICY));
static AGENT_ROLE_POLICY_COMPACT: LazyLock<Option<String>> =
    LazyLock::new(|| compact(AGENT_ROLE_POLICY));

fn compact(document: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .map(|v| v.to_string())
}

/// A compact policy document with its `${Name}` placeholders filled; `None` when a value would
/// not stay a plain JSON string (a quote, a backslash, a control character) or a placeholder is
/// left. The placeholders are in string values only, so the result is compact JSON as well.
fn fill(document: &str, values: &[(&str, &str)]) -> Option<String> {
    let mut text = document.to_owned();
    for (name, value) in values {
        if value.contains(['"', '\\']) || value.chars().any(char::is_control) {
            return None;
        }
        text = text.replace(&format!("${{{name}}}"), value);
    }
    (!text.contains("${")).then_some(text)
}

/// `(region, account)` of an ARN (`arn:aws:SERVICE:REGION:ACCOUNT:...`).
fn region_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, _, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (!region.is_empty() && !account.is_empty()).then_some((region, account))
}

/// The task role an agent needs, given its access point's ARN; `None` when the agents share
/// the template's role, or when the ARN names no region and account.
///
/// The trust policy lets only ECS tasks of this account assume it (`aws:SourceAccount` and
/// `aws:SourceArn` against the confused deputy). The inline policy allows
/// `elasticfilesystem:ClientMount` and `ClientWrite` on the file system only through the
/// agent's own access point: no root access, no Secrets Manager (ECS injects secrets with the
/// execution role, whose credentials the container never sees), no List or Describe.
#[must_use]
pub fn role(spec: &AgentSpec, settings: &Settings, access_point_arn: &str) -> Option<Role> {
    let TaskRole::PerAgent {
        permissions_boundary,
    } = &settings.task_role
    else {
        return None;
    };
    let (region, account) = region_account(access_point_arn)?;
    let partition = access_point_arn.split(':').nth(1).unwrap_or("aws");
    let file_system_arn = format!(
        "arn:{partition}:elasticfilesystem:{region}:{account}:file-system/{}",
        settings.file_system_id
    );
    let values = [
        ("Partition", partition),
        ("Region", region),
        ("AccountId", account),
        ("FileSystemArn", file_system_arn.as_str()),
        ("AccessPointArn", access_point_arn),
    ];
    let trust = fill(AGENT_TRUST_POLICY_COMPACT.as_deref()?, &values)?;
    let policy = fill(AGENT_ROLE_POLICY_COMPACT.as_deref()?, &values)?;
    Some(Role {
        name: role_name(settings, &spec.agent_id),
        path: role_path(settings),
        trust_policy: trust.to_string(),
        permissions_boundary: permissions_boundary.clone(),
        policy: policy.to_string(),
        tags: owned_tags(spec, settings),
    })
}

/// The Secrets Manager CreateSecret request, without a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

/// The Description of an agent's secret records its key names (never values), so the
/// controller can check `secret_keys` without reading the secret.
#[must_use]
pub fn secret_description(keys: &[String]) -> String {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    format!("{SECRET_KEYS_MARKER}{}", keys.join(","))
}

/// The key names a writer recorded in a secret's Description; `None` when it recorded none.
#[must_use]
pub fn secret_keys_in(description: &str) -> Option<Vec<String>> {
    let keys = description.strip_prefix(SECRET_KEYS_MARKER)?;
    Some(
        keys.split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

const SECRET_KEYS_MARKER: &str = "clawfleet keys: ";

/// Secrets Manager's limit on a Description, which records the key names: the budget that
/// [`crate::MAX_SECRET_KEYS`] and [`crate::MAX_SECRET_KEY_LEN`] are derived from.
pub const SECRET_DESCRIPTION_LIMIT: usize = 2_048;

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
pub fn environment(spec: &AgentSpec) -> Vec<NameValue> {
    let mut env = vec![
        NameValue {
            name: "AGENT_ID".to_owned(),
            value: spec.agent_id.clone(),
        },
        NameValue {
            name: "WORKSPACE_ID".to_owned(),
            value: spec.client_id.clone(),
        },
        NameValue {
            name: "PLUGIN_MANIFEST".to_owned(),
            value: plugin_manifest(spec),
        },
    ];
    env.extend(spec.env.iter().map(|(k, v)| NameValue {
        name: k.clone(),
        value: v.clone(),
    }));
    env
}

/// The RunTask overrides for the agent container.
#[must_use]
pub fn overrides(spec: &AgentSpec, container: &str) -> Overrides {
    let r = spec.resources();
    Overrides {
        cpu: r.cpu.to_string(),
        memory: r.memory.to_string(),
        container_overrides: vec![ContainerOverride {
            name: container.to_owned(),
            cpu: i32::try_from(r.cpu).ok(),
            memory: i32::try_from(r.memory).ok(),
            environment: environment(spec),
        }],
    }
}

/// Length in characters of the overrides as ECS counts them (compact JSON).
#[must_use]
pub fn task_overrides_len(spec: &AgentSpec, container: &str) -> usize {
    serde_json::to_string(&overrides(spec, container))
        .map(|s| s.chars().count())
        .unwrap_or(usize::MAX)
}

/// The RunTask request for the agent on `task_definition_arn`.
#[must_use]
pub fn run_task(spec: &AgentSpec, settings: &Settings, task_definition_arn: &str) -> RunTask {
    RunTask {
        cluster: settings.cluster.clone(),
        task_definition: task_definition_arn.to_owned(),
        launch_type: "FARGATE".to_owned(),
        started_by: started_by(&spec.agent_id),
        subnets: settings.subnets.clone(),
        security_groups: settings.security_groups.clone(),
        assign_public_ip: "DISABLED".to_owned(),
        overrides: overrides(spec, &settings.container),
        tags: task_tags(spec, settings),
    }
}

/// The agent's access point: rooted at `/agents/{client_id}/{agent_id}`, with the configured
/// POSIX user forced on every request and owning the directory EFS creates.
#[must_use]
pub fn access_point(spec: &AgentSpec, settings: &Settings) -> AccessPoint {
    AccessPoint {
        file_system_id: settings.file_system_id.clone(),
        root_path: access_point_root(spec),
        posix_uid: settings.posix_uid,
        posix_gid: settings.posix_gid,
        creation_permissions: "0750".to_owned(),
        tags: owned_tags(spec, settings),
    }
}

/// The agent's secret.
#[must_use]
pub fn secret(spec: &AgentSpec, settings: &Settings) -> Secret {
    Secret {
        name: secret_name(settings, &spec.agent_id),
        tags: owned_tags(spec, settings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [(&str, &str); 5] = [
        ("Partition", "aws"),
        ("Region", "eu-west-1"),
        ("AccountId", "123456789012"),
        (
            "FileSystemArn",
            "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1",
        ),
        (
            "AccessPointArn",
            "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1",
        ),
    ];

    /// The file with its placeholders replaced, parsed: what the compact rendering must equal.
    fn expected(document: &str) -> serde_json::Value {
        let mut text = document.to_owned();
        for (name, value) in VALUES {
            text = text.replace(&format!("${{{name}}}"), value);
        }
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn filled_policies_are_the_files_with_the_values_in_as_compact_json() {
        for (file, compact) in [
            (AGENT_TRUST_POLICY, &AGENT_TRUST_POLICY_COMPACT),
            (AGENT_ROLE_POLICY, &AGENT_ROLE_POLICY_COMPACT),
        ] {
            let filled = fill(compact.as_deref().unwrap(), &VALUES).unwrap();
            assert!(!filled.contains(['\n', ' ']), "compact: {filled}");
            let parsed: serde_json::Value = serde_json::from_str(&filled).unwrap();
            assert_eq!(parsed, expected(file));
        }
    }

    #[test]
    fn a_value_that_would_not_stay_a_json_string_or_a_placeholder_left_renders_nothing() {
        let compact = AGENT_ROLE_POLICY_COMPACT.as_deref().unwrap();
        for bad in ["fs\"-1", "fs\\-1", "fs\n1", "fs\u{7}1"] {
            let mut values = VALUES;
            values[3].1 = bad;
            assert_eq!(fill(compact, &values), None, "{bad:?}");
        }
        assert_eq!(fill(compact, &VALUES[..4]), None, "AccessPointArn left");
    }
}
