//! What clawfleet sees on AWS, as plain data: the input of `plan`.

use std::collections::{BTreeMap, HashMap};

use spec::render::{self, Overrides, TaskDefinition, tag};

/// One ECS task, from DescribeTasks (with tags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Task {
    pub arn: String,
    pub task_definition_arn: String,
    /// PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING,
    /// STOPPED.
    pub last_status: String,
    pub desired_status: String,
    pub started_by: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub overrides: Option<Overrides>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    /// Seconds since the epoch.
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    /// Each container's `healthStatus` (HEALTHY, UNHEALTHY, UNKNOWN), by name.
    pub container_health: BTreeMap<String, String>,
    /// Each stopped container's `exitCode`, by name; absent when it never ran (an image that
    /// could not be pulled) or has not stopped.
    pub exit_codes: BTreeMap<String, i32>,
}

impl Task {
    #[must_use]
    pub fn agent_id(&self) -> Option<&str> {
        managed_agent(&self.tags)
    }

    /// A data purge's task (`startedBy` `purge/{agent_id}`), never the agent's own.
    #[must_use]
    pub fn is_purge(&self) -> bool {
        self.started_by
            .as_deref()
            .and_then(spec::purge::agent_of_started_by)
            .is_some()
    }

    /// Stopped, or on its way there: it will not run the agent again.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.last_status == "STOPPED"
    }

    /// Asked to stop (by us, by ECS or by a person) but not yet STOPPED.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        !self.is_stopped() && self.desired_status == "STOPPED"
    }

    /// Running or on its way to running.
    #[must_use]
    pub fn is_live(&self) -> bool {
        !self.is_stopped() && self.desired_status != "STOPPED"
    }
}

/// One revision of an agent's task definition family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinitionRevision {
    pub arn: String,
    pub revision: i32,
    /// Shared, because a revision's content (a few KB) is held at once by the revision cache,
    /// the resync's fleet snapshot, the snapshots of queued agents and the expectations: one
    /// copy per agent instead of four.
    pub content: std::sync::Arc<TaskDefinition>,
}

/// By its ARN alone: ECS never changes a registered revision, so the ARN names the content
/// (and hashing the content, a few KB, for every agent at every resync is what the resync's
/// fingerprints exist to avoid).
impl std::hash::Hash for TaskDefinitionRevision {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.arn.hash(state);
        self.revision.hash(state);
    }
}

/// One EFS access point, from DescribeAccessPoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AccessPoint {
    pub id: String,
    pub arn: String,
    pub file_system_id: String,
    pub root_path: Option<String>,
    pub posix_uid: Option<i64>,
    pub posix_gid: Option<i64>,
    pub tags: BTreeMap<String, String>,
    /// creating, available, updating, deleting, deleted, error.
    pub life_cycle_state: String,
}

impl AccessPoint {
    #[must_use]
    pub fn agent_id(&self) -> Option<&str> {
        managed_agent(&self.tags)
    }

    #[must_use]
    pub fn is_usable(&self) -> bool {
        matches!(
            self.life_cycle_state.as_str(),
            "available" | "creating" | "updating"
        )
    }
}

/// One Secrets Manager secret, from DescribeSecret or ListSecrets. Never its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret {
    pub arn: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// The key names the writer recorded in the Description; `None` when none were recorded.
    pub key_names: Option<Vec<String>>,
    /// Set while the secret waits out its recovery window.
    pub deleted: bool,
}

impl Secret {
    #[must_use]
    pub fn agent_id(&self) -> Option<&str> {
        managed_agent(&self.tags)
    }
}

/// An agent's IAM task role. ListRoles returns neither the permissions boundary nor inline
/// policies, so a role seen in a listing has no [`RoleDetails`]; GetRole and GetRolePolicy
/// fill them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Role {
    pub name: String,
    pub arn: String,
    pub path: String,
    /// `None` when the role was only listed.
    pub details: Option<RoleDetails>,
}

/// What only GetRole and GetRolePolicy tell about a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RoleDetails {
    pub permissions_boundary: Option<String>,
    /// The agent's inline policy, as JSON, when it exists.
    pub policy: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Role {
    /// The agent this role belongs to, by its tags; `None` when only listed (a listed role is
    /// filed by its name under the installation's path) or not clawfleet's.
    #[must_use]
    pub fn agent_id(&self) -> Option<&str> {
        managed_agent(&self.details.as_ref()?.tags)
    }
}

/// Whether two policy documents say the same thing, whatever their key order and spacing.
#[must_use]
pub fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The agent a resource belongs to, when clawfleet manages it. Resources without the
/// managed-by tag are never considered anyone's.
fn managed_agent(tags: &BTreeMap<String, String>) -> Option<&str> {
    (tags.get(tag::MANAGED_BY).map(String::as_str) == Some(tag::MANAGER))
        .then(|| tags.get(tag::AGENT_ID).map(String::as_str))
        .flatten()
}

/// Everything observed for one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AgentResources {
    /// Live and recently stopped tasks, newest first.
    pub tasks: Vec<Task>,
    pub access_points: Vec<AccessPoint>,
    pub secret: Option<Secret>,
    /// The newest ACTIVE revision of the agent's family, with its content.
    pub latest_revision: Option<TaskDefinitionRevision>,
    /// ARNs of the family's other ACTIVE revisions.
    pub older_revisions: Vec<String>,
    /// The agent's task role, under the installation's path.
    pub role: Option<Role>,
    /// Data purge tasks (`startedBy` `purge/{agent_id}`), newest first: kept apart so that
    /// neither drift correction nor a crash restart ever takes one for the agent's task.
    pub purge_tasks: Vec<Task>,
    /// ARNs of the ACTIVE revisions of the agent's purge family, newest first.
    pub purge_revisions: Vec<String>,
}

impl AgentResources {
    /// Whether anything is left that a teardown would remove: a task not yet STOPPED, an
    /// access point, a revision, or a secret not already scheduled for deletion.
    #[must_use]
    pub fn has_live_resources(&self) -> bool {
        self.tasks.iter().any(|t| !t.is_stopped())
            || !self.access_points.is_empty()
            || self.secret.as_ref().is_some_and(|s| !s.deleted)
            || self.latest_revision.is_some()
            || !self.older_revisions.is_empty()
            || self.role.is_some()
            || self.purge_tasks.iter().any(|t| !t.is_stopped())
            || !self.purge_revisions.is_empty()
    }

    /// Whether anything of the agent is tagged with `installation`, or is a role under its
    /// path: only then may an agent whose table holds no spec be collected as an orphan.
    /// Resources of no installation (made before installations were tagged) are adopted by the
    /// installation whose table holds their agent, and never collected by another.
    #[must_use]
    pub fn claimed_by(&self, installation: &str) -> bool {
        let tagged = |tags: &BTreeMap<String, String>| {
            tags.get(tag::INSTALLATION).map(String::as_str) == Some(installation)
        };
        self.role.is_some()
            || self.tasks.iter().any(|t| tagged(&t.tags))
            || self.purge_tasks.iter().any(|t| tagged(&t.tags))
            || self.access_points.iter().any(|a| tagged(&a.tags))
            || self.secret.as_ref().is_some_and(|x| tagged(&x.tags))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.access_points.is_empty()
            && self.secret.is_none()
            && self.latest_revision.is_none()
            && self.older_revisions.is_empty()
            && self.role.is_none()
    }
}

/// `(family, revision)` of a task definition ARN (`...:task-definition/FAMILY:REV`).
#[must_use]
pub fn family_revision(arn: &str) -> Option<(&str, i32)> {
    let tail = arn.rsplit_once("task-definition/").map_or(arn, |(_, t)| t);
    let (family, revision) = tail.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

/// One snapshot of the fleet: the template and every managed resource, by agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub template_arn: String,
    pub template: TaskDefinition,
    /// By agent id. A hash map: at 100,000 agents a B-tree's lookups (string compares down
    /// cold nodes) and its inserts (shifting resources of several hundred bytes within a node)
    /// took a quarter of the snapshot's CPU (2.3 s, 1.8 s with a hash map). Where the order
    /// shows, sort.
    pub agents: HashMap<String, AgentResources>,
}

/// What is observed of an agent AWS shows nothing of.
static NOTHING: AgentResources = AgentResources {
    tasks: Vec::new(),
    access_points: Vec::new(),
    secret: None,
    latest_revision: None,
    older_revisions: Vec::new(),
    role: None,
    purge_tasks: Vec::new(),
    purge_revisions: Vec::new(),
};

impl Fleet {
    /// What was observed for `agent_id` (empty when nothing).
    #[must_use]
    pub fn agent(&self, agent_id: &str) -> AgentResources {
        self.observed(agent_id).clone()
    }

    /// What was observed for `agent_id`, borrowed: a resync plans every agent from it and copies
    /// only what it enqueues.
    #[must_use]
    pub fn observed(&self, agent_id: &str) -> &AgentResources {
        self.agents.get(agent_id).unwrap_or(&NOTHING)
    }

    /// Files observed resources under their agents; unmanaged ones are dropped.
    pub fn add_tasks(&mut self, tasks: Vec<Task>) {
        for task in tasks {
            if let Some(agent) = task.agent_id().map(str::to_owned) {
                let resources = self.agents.entry(agent).or_default();
                if task.is_purge() {
                    resources.purge_tasks.push(task);
                } else {
                    resources.tasks.push(task);
                }
            }
        }
        for resources in self.agents.values_mut() {
            for tasks in [&mut resources.tasks, &mut resources.purge_tasks] {
                tasks.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.arn.cmp(&b.arn)));
            }
        }
    }

    pub fn add_access_points(&mut self, access_points: Vec<AccessPoint>) {
        for ap in access_points {
            if let Some(agent) = ap.agent_id().map(str::to_owned) {
                self.agents.entry(agent).or_default().access_points.push(ap);
            }
        }
    }

    pub fn add_secrets(&mut self, secrets: Vec<Secret>) {
        for secret in secrets {
            if let Some(agent) = secret.agent_id().map(str::to_owned) {
                let slot = &mut self.agents.entry(agent).or_default().secret;
                // A live secret wins over one waiting out its recovery window.
                if slot.as_ref().is_none_or(|s| s.deleted) {
                    *slot = Some(secret);
                }
            }
        }
    }

    /// Files the roles listed under the installation's path by their names.
    pub fn add_roles(&mut self, settings: &render::Settings, roles: Vec<Role>) {
        for role in roles {
            if let Some(agent) = render::agent_of_role(settings, &role.name) {
                let agent = agent.to_owned();
                self.agents.entry(agent).or_default().role = Some(role);
            }
        }
    }

    /// Files the ACTIVE revisions of agent families: the newest with its content, the rest by
    /// ARN.
    pub fn add_revisions(
        &mut self,
        settings: &render::Settings,
        latest: Vec<TaskDefinitionRevision>,
        all_arns: &[String],
    ) {
        for rev in latest {
            if let Some(agent) = render::agent_of_family(settings, &rev.content.family) {
                let agent = agent.to_owned();
                self.agents.entry(agent).or_default().latest_revision = Some(rev);
            }
        }
        for arn in all_arns {
            let Some((family, _)) = family_revision(arn) else {
                continue;
            };
            if let Some(agent) = spec::purge::agent_of_family(settings, family) {
                let resources = self.agents.entry(agent.to_owned()).or_default();
                if !resources.purge_revisions.contains(arn) {
                    resources.purge_revisions.push(arn.clone());
                }
                continue;
            }
            let Some(agent) = render::agent_of_family(settings, family) else {
                continue;
            };
            let resources = self.agents.entry(agent.to_owned()).or_default();
            if resources
                .latest_revision
                .as_ref()
                .is_none_or(|l| &l.arn != arn)
            {
                resources.older_revisions.push(arn.clone());
            }
        }
        for resources in self.agents.values_mut() {
            resources
                .purge_revisions
                .sort_by_key(|arn| std::cmp::Reverse(family_revision(arn).map_or(0, |(_, r)| r)));
        }
    }
}
