//! Building the observed state, for one agent or the whole fleet, from batched reads.

use std::collections::BTreeMap;

use spec::render::{self, Settings, TaskDefinition, TemplateError};

use crate::error::AwsError;
use crate::{Ecs, Efs, Iam, Secrets};
use plan::observed::{AgentResources, Fleet, TaskDefinitionRevision, family_revision};

/// Why observing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The configured template does not exist.
    #[error("template task definition {0}: not found (set --template-task-definition)")]
    TemplateMissing(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// How often a resync lists every task definition revision (ListTaskDefinitions, ⌈R/100⌉
/// pages). Between listings each agent's revision is the one its status records, read from the
/// cache of immutable revisions; the listing finds what changed behind clawfleet's back and the
/// old revisions to deregister, neither of which is urgent.
pub const REVISION_LISTING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// What the table records of the fleet, so that a resync reads from AWS only what it must.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Each agent's task ARN, from its status: described when the RUNNING listing lacks it (it
    /// stopped), so the cluster's stopped tasks are never listed.
    pub tasks: Vec<String>,
    /// Each agent's revision ARN, from its status: its latest revision between listings.
    pub revisions: BTreeMap<String, String>,
}

impl Recorded {
    /// From the statuses of the stored agents.
    pub fn of<'a>(statuses: impl IntoIterator<Item = (&'a str, &'a spec::AgentStatus)>) -> Self {
        let mut recorded = Self::default();
        for (agent_id, status) in statuses {
            recorded.tasks.extend(status.task_arn.clone());
            recorded.tasks.extend(status.purge.task_arn.clone());
            if let Some(arn) = &status.task_definition_arn {
                recorded.revisions.insert(agent_id.to_owned(), arn.clone());
            }
        }
        recorded
    }
}

/// The AWS services clawfleet reads, configured for one cluster and file system.
#[derive(Debug, Clone)]
pub struct Aws {
    pub ecs: Ecs,
    pub efs: Efs,
    pub secrets: Secrets,
    pub iam: Iam,
    /// Described task definition revisions by ARN. Revisions are immutable, so a long-running
    /// controller describes each once, and a steady-state resync describes none.
    revisions:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, TaskDefinitionRevision>>>,
    /// When [`Aws::observe_fleet`] last listed every revision.
    revisions_listed_at: std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Aws {
    /// The same clients, every call passing `gate` (rate limits, throttling feedback).
    #[must_use]
    pub fn with_gate(self, gate: &crate::SharedGate) -> Self {
        Self {
            ecs: self.ecs.with_gate(gate.clone()),
            efs: self.efs.with_gate(gate.clone()),
            secrets: self.secrets.with_gate(gate.clone()),
            iam: self.iam.with_gate(gate.clone()),
            revisions: self.revisions,
            revisions_listed_at: self.revisions_listed_at,
        }
    }

    /// Clients for the three services from one SDK configuration.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig, settings: &Settings) -> Self {
        Self::counted(config, settings, &crate::Calls::default())
    }

    /// As [`Aws::new`], counting every call in `calls`.
    #[must_use]
    pub fn counted(
        config: &aws_config::SdkConfig,
        settings: &Settings,
        calls: &crate::Calls,
    ) -> Self {
        let ecs = aws_sdk_ecs::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        let efs = aws_sdk_efs::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        let secrets = aws_sdk_secretsmanager::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        let iam = aws_sdk_iam::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        Self {
            ecs: Ecs::new(aws_sdk_ecs::Client::from_conf(ecs), &settings.cluster),
            efs: Efs::new(
                aws_sdk_efs::Client::from_conf(efs),
                &settings.file_system_id,
            ),
            secrets: Secrets::new(aws_sdk_secretsmanager::Client::from_conf(secrets)),
            iam: Iam::new(aws_sdk_iam::Client::from_conf(iam)),
            revisions: std::sync::Arc::default(),
            revisions_listed_at: std::sync::Arc::default(),
        }
    }

    /// The template (DescribeTaskDefinition), checked for use.
    ///
    /// # Errors
    /// A missing or unusable template, or a failed call.
    pub async fn template(
        &self,
        name: &str,
        settings: &Settings,
    ) -> Result<(String, TaskDefinition), ObserveError> {
        let revision = self
            .ecs
            .describe_task_definition(name)
            .await?
            .ok_or_else(|| ObserveError::TemplateMissing(name.to_owned()))?;
        revision.content.check_template(settings)?;
        Ok((
            revision.arn,
            std::sync::Arc::unwrap_or_clone(revision.content),
        ))
    }

    /// The whole fleet in one snapshot, of this installation only: resources tagged with
    /// another installation are dropped here, before anything is filed. AWS calls of an idle
    /// resync, for N agents with one task each, A access points on the file system and R roles
    /// under the installation's path: 1 DescribeTaskDefinition (template) + ⌈N/100⌉ ListTasks
    /// (RUNNING) + ⌈N/100⌉ DescribeTasks (the running ones, and the recorded tasks that are not
    /// running any more) + ⌈A/100⌉ DescribeAccessPoints + ⌈N/100⌉ ListSecrets + ⌈R/1000⌉
    /// ListRoles, i.e. 3·⌈N/100⌉ + ⌈A/100⌉ + ⌈R/1000⌉ + 1. Every
    /// [`REVISION_LISTING_INTERVAL`] (and on the first call) it also lists every revision
    /// (ListTaskDefinitions) and describes each agent's newest once (revisions are immutable
    /// and cached); in between, an agent's revision is the one `recorded` names. No IAM drift
    /// read (GetRolePolicy) is made here: that is the per-agent drift pass.
    ///
    /// # Errors
    /// The first failed read.
    pub async fn observe_fleet(
        &self,
        template: &str,
        settings: &Settings,
        recorded: &Recorded,
    ) -> Result<Fleet, ObserveError> {
        let (template_arn, template) = self.template(template, settings).await?;
        self.list_fleet(template_arn, template, settings, recorded)
            .await
    }

    /// [`Aws::observe_fleet`] with the template already described.
    ///
    /// # Errors
    /// The first failed read.
    pub async fn list_fleet(
        &self,
        template_arn: String,
        template: TaskDefinition,
        settings: &Settings,
        recorded: &Recorded,
    ) -> Result<Fleet, ObserveError> {
        let mut fleet = Fleet {
            template_arn,
            template,
            agents: std::collections::HashMap::new(),
        };
        let mut arns = self.ecs.list_running_tasks().await?;
        let running: std::collections::HashSet<&String> = arns.iter().collect();
        let vanished: Vec<String> = recorded
            .tasks
            .iter()
            .filter(|t| !running.contains(t))
            .cloned()
            .collect();
        arns.extend(vanished);
        let ours = |tags: &BTreeMap<String, String>| render::of_installation(tags, settings);
        let mut tasks = self.ecs.describe_tasks(&arns).await?;
        tasks.retain(|t| ours(&t.tags));
        fleet.add_tasks(tasks);
        let mut access_points = self.efs.describe_access_points().await?;
        access_points.retain(|a| ours(&a.tags));
        fleet.add_access_points(access_points);
        let mut secrets = self.secrets.list_secrets(&settings.secret_prefix).await?;
        secrets.retain(|x| ours(&x.tags));
        fleet.add_secrets(secrets);

        let now = tokio::time::Instant::now();
        let list_revisions = self
            .revisions_listed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| now.saturating_duration_since(at) >= REVISION_LISTING_INTERVAL);
        if list_revisions {
            let all = self.ecs.list_task_definitions(None).await?;
            let mut newest: BTreeMap<&str, (i32, &String)> = BTreeMap::new();
            for arn in &all {
                if let Some((family, rev)) = family_revision(arn)
                    && render::agent_of_family(settings, family).is_some()
                    && newest.get(family).is_none_or(|(r, _)| rev > *r)
                {
                    newest.insert(family, (rev, arn));
                }
            }
            let mut latest = Vec::new();
            for (_, arn) in newest.values() {
                latest.extend(self.revision(arn).await?);
            }
            fleet.add_revisions(settings, latest, &all);
            *self
                .revisions_listed_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
        } else {
            let mut latest = Vec::new();
            for arn in recorded.revisions.values() {
                latest.extend(self.revision(arn).await?);
            }
            fleet.add_revisions(settings, latest, &[]);
        }
        fleet.add_roles(
            settings,
            self.iam.list_roles(&render::role_path(settings)).await?,
        );
        Ok(fleet)
    }

    /// The revision cache, recovered from a poisoned lock like every lock in clawfleet: each
    /// update leaves it consistent.
    fn cache(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, TaskDefinitionRevision>> {
        self.revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a revision this process registered, so no resync describes it again.
    pub fn remember(&self, revision: &TaskDefinitionRevision) {
        self.cache().insert(revision.arn.clone(), revision.clone());
    }

    /// One revision's content: from the cache, or DescribeTaskDefinition.
    async fn revision(&self, arn: &str) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        let cached = self.cache().get(arn).cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let described = self.ecs.describe_task_definition(arn).await?;
        if let Some(rev) = &described {
            self.cache().insert(arn.to_owned(), rev.clone());
        }
        Ok(described)
    }

    /// The agent's data purge: its tasks (ListTasks by `startedBy` `purge/{agent_id}`, the
    /// running ones, plus `known_task` from the status, which finds a stopped one;
    /// DescribeTasks) and the ARNs of its purge family's ACTIVE revisions
    /// (ListTaskDefinitions: `familyPrefix` is a whole family, so the agent's own listing never
    /// shows them), both newest first. Only a deletion with a purge, or an orphan's, asks, so
    /// an agent's usual reads do not grow.
    ///
    /// # Errors
    /// The first failed read.
    pub async fn observe_purge(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        settings: &Settings,
    ) -> Result<(Vec<plan::observed::Task>, Vec<String>), AwsError> {
        let mut arns = self
            .ecs
            .list_tasks_started_by(&spec::purge::started_by(agent_id))
            .await?;
        arns.extend(known_task.map(str::to_owned));
        let mut tasks = if arns.is_empty() {
            Vec::new()
        } else {
            self.ecs.describe_tasks(&arns).await?
        };
        tasks.retain(|t| {
            t.is_purge()
                && t.agent_id() == Some(agent_id)
                && render::of_installation(&t.tags, settings)
        });
        tasks.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.arn.cmp(&b.arn)));
        let mut revisions = self
            .ecs
            .list_task_definitions(Some(&spec::purge::family(settings, agent_id)))
            .await?;
        revisions.sort_by_key(|arn| std::cmp::Reverse(family_revision(arn).map_or(0, |(_, r)| r)));
        Ok((tasks, revisions))
    }

    /// The agent's tasks alone, as [`Aws::observe_agent`] reads them (ListTasks by `startedBy`,
    /// DescribeTasks of those and of `known_task`), newest first: what a reconcile waiting on a
    /// task's change of state needs to read again.
    ///
    /// # Errors
    /// The first failed read.
    pub async fn observe_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        settings: &Settings,
    ) -> Result<Vec<plan::observed::Task>, AwsError> {
        let mut fleet = Fleet::default();
        fleet.add_tasks(self.agent_tasks(agent_id, known_task, settings).await?);
        Ok(fleet
            .agents
            .remove(agent_id)
            .map(|r| r.tasks)
            .unwrap_or_default())
    }

    async fn agent_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        settings: &Settings,
    ) -> Result<Vec<plan::observed::Task>, AwsError> {
        let mut arns = self
            .ecs
            .list_tasks_started_by(&render::started_by(agent_id))
            .await?;
        arns.extend(known_task.map(str::to_owned));
        let mut tasks = self.ecs.describe_tasks(&arns).await?;
        tasks.retain(|t| render::of_installation(&t.tags, settings));
        Ok(tasks)
    }

    /// One agent: its tasks (ListTasks by startedBy, plus `known_task` from the status, which
    /// finds a stopped one), DescribeTasks, its access point (DescribeAccessPoints of
    /// `known_access_point`, the id in the status), DescribeSecret, its family's revisions, and
    /// its task role with its boundary and policy (GetRole, GetRolePolicy): this is where a role
    /// changed behind clawfleet's back is seen.
    ///
    /// No read lists what other agents share (the file system's access points): one agent's
    /// cost never grows with the fleet. An access point the status does not name (an orphan,
    /// a duplicate) is found by the resync's fleet listing ([`Aws::observe_fleet`]).
    ///
    /// # Errors
    /// The first failed read.
    pub async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        known_access_point: Option<&str>,
        settings: &Settings,
    ) -> Result<AgentResources, AwsError> {
        let mut fleet = Fleet::default();
        let ours = |tags: &BTreeMap<String, String>| render::of_installation(tags, settings);
        fleet.add_tasks(self.agent_tasks(agent_id, known_task, settings).await?);
        if let Some(id) = known_access_point {
            let access_point = self.efs.describe_access_point(id).await?;
            fleet.add_access_points(access_point.into_iter().filter(|a| ours(&a.tags)).collect());
        }
        let secret = self
            .secrets
            .describe_secret(&render::secret_name(settings, agent_id))
            .await?;
        fleet.add_secrets(secret.into_iter().filter(|x| ours(&x.tags)).collect());
        let family = render::family(settings, agent_id);
        let all = self.ecs.list_task_definitions(Some(&family)).await?;
        let newest = all
            .iter()
            .filter_map(|a| family_revision(a).map(|(_, r)| (r, a)))
            .max_by_key(|(r, _)| *r);
        let mut latest = Vec::new();
        if let Some((_, arn)) = newest {
            latest.extend(self.revision(arn).await?);
        }
        fleet.add_revisions(settings, latest, &all);
        let mut resources = fleet.agent(agent_id);
        resources.role = self
            .iam
            .get_role(&render::role_name(settings, agent_id))
            .await?;
        Ok(resources)
    }
}
