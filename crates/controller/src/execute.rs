//! The executor: carries out one [`Action`] of a plan, decided on the action's data alone, and
//! files what AWS answered into the observed state, as the listing will show it once it catches
//! up. Creates register an expectation first-hand, so a lagging listing never causes a second.

use std::collections::BTreeMap;

use plan::observed::{AccessPoint, AgentResources, Role, Secret, TaskDefinitionRevision};
use plan::{Action, Launch, Wait};
use spec::AgentStatus;
use spec::failure::ErrorClass;
use spec::render::{self, tag};
use store::Agent;
use tracing::{info, warn};

use crate::aws::Cloud;

/// How many times one RegisterTaskDefinition action calls AWS before failing to the queue.
pub const REGISTER_TRIES: u32 = 3;

/// The pause before the second try of a RegisterTaskDefinition, and twice it before the third:
/// short, since a lost answer or a 500 says nothing about the next call.
const REGISTER_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
use crate::reconcile::{Outcome, ROLLOUT_RETRY_SECS, ReconcileError, Reconciler, record};
use crate::status::StatusStore;
use crate::token;
use spec::EventType::{Normal, Warning};

impl<C: Cloud, S: StatusStore> Reconciler<'_, C, S> {
    /// Carries out one action and files its result into `observed`, as the listing will show
    /// it once it catches up.
    pub(crate) async fn execute(
        &self,
        agent: &Agent,
        status: &mut Option<AgentStatus>,
        written: &mut Option<AgentStatus>,
        observed: &mut AgentResources,
        action: Action,
    ) -> Result<Option<Outcome>, ReconcileError> {
        let agent_id = agent.agent_id.as_str();
        info!(agent_id, action = %action, "acting");
        match action {
            Action::CreateAccessPoint(request) => {
                let ap = self
                    .create_access_point(agent, status, written, &request)
                    .await?;
                self.expectations.access_point(agent_id, &ap);
                record(
                    agent,
                    status,
                    Normal,
                    "AccessPointCreated",
                    &format!("access point {} at {}", ap.id, request.root_path),
                );
                observed.access_points.push(ap);
            }
            Action::CreateRole(request) => {
                let role = self.create_role(agent, &request).await?;
                self.expectations.role(agent_id, &role);
                record(
                    agent,
                    status,
                    Normal,
                    "TaskRoleCreated",
                    &format!(
                        "task role {} may mount only its own access point",
                        role.name
                    ),
                );
                observed.role = Some(role);
            }
            Action::UpdateRole {
                name,
                policy,
                permissions_boundary,
            } => {
                self.drift("task_role");
                record(
                    agent,
                    status,
                    Warning,
                    "TaskRoleRestored",
                    &format!("task role {name} was changed behind clawfleet's back; put back"),
                );
                if let Some(policy) = &policy {
                    self.cloud.put_role_policy(&name, policy).await?;
                }
                if let Some(boundary) = &permissions_boundary {
                    self.cloud
                        .put_role_permissions_boundary(&name, boundary)
                        .await?;
                }
                if let Some(details) = observed.role.as_mut().and_then(|r| r.details.as_mut()) {
                    if policy.is_some() {
                        details.policy = policy;
                    }
                    if permissions_boundary.is_some() {
                        details.permissions_boundary = permissions_boundary;
                    }
                }
            }
            Action::DeleteRole { name } => {
                // A listed role carries no tags: confirm it is this agent's before deleting,
                // so a role someone else put under the installation's path is never touched.
                match self.cloud.get_role(&name).await? {
                    Some(role) if role.agent_id() == Some(agent_id) => {
                        self.cloud.delete_role(&name).await?;
                    }
                    Some(_) => warn!(
                        agent_id,
                        role = %name,
                        "role under clawfleet's path is not tagged as this agent's; left alone"
                    ),
                    None => {}
                }
                observed.role = None;
            }
            Action::CreateSecret(request) => {
                if status.as_ref().is_some_and(|s| s.secret_arn.is_some()) {
                    self.drift("secret");
                }
                let secret = self.create_secret(agent_id, &request).await?;
                self.expectations.secret(agent_id, &secret);
                record(
                    agent,
                    status,
                    Normal,
                    "SecretCreated",
                    &format!("secret {}", request.name),
                );
                observed.secret = Some(secret);
            }
            Action::RegisterTaskDefinition {
                definition, tags, ..
            } => {
                let revision = self.register_task_definition(&definition, &tags).await?;
                self.expectations.revision(agent_id, &revision);
                record(
                    agent,
                    status,
                    Normal,
                    "RevisionRegistered",
                    &format!("task definition {}", revision.arn),
                );
                if let Some(old) = observed.latest_revision.replace(revision) {
                    observed.older_revisions.push(old.arn);
                }
            }
            Action::RunTask {
                request,
                attempt,
                cause,
            } => {
                let token = token::launch_token(agent_id, attempt, &request);
                if let Launch::CrashRestart { stopped_at } = cause {
                    self.drift("task");
                    if let (Some(metrics), Some(stopped_at)) = (self.metrics, stopped_at) {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        metrics.task_relaunched(now.saturating_sub(stopped_at));
                    }
                }
                self.flush(agent_id, status.as_ref(), written).await?;
                match self.cloud.run_task(&request, &token).await {
                    Ok(task) => {
                        self.expectations.task(agent_id, &task);
                        record(
                            agent,
                            status,
                            Normal,
                            "TaskLaunched",
                            &format!("task {} (launch attempt {attempt})", task.arn),
                        );
                        observed.tasks.insert(0, task);
                    }
                    // The token was used with other parameters (a spec change while the
                    // outcome of this attempt was unknown): the next launch takes a new one.
                    Err(e) if e.has_code("ConflictException") => {
                        warn!(
                            agent_id,
                            "launch token reused with other parameters; moving to the next attempt"
                        );
                        // Stored when the reconcile ends, like every other status change.
                        let mut next = status.clone().unwrap_or_default();
                        next.launch_attempt = attempt + 1;
                        *status = Some(next);
                        return Ok(Some(Outcome::Waiting(Wait {
                            after_secs: 1,
                            reason: "launch token conflict".into(),
                        })));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Action::RegisterPurgeTaskDefinition { definition, tags } => {
                // No token: re-read the family first, as for the agent's revision.
                let current = self
                    .cloud
                    .describe_task_definition(&definition.family)
                    .await?;
                let revision = match current {
                    Some(rev) if *rev.content == definition => rev,
                    _ => {
                        self.cloud
                            .register_purge_task_definition(&definition, &tags)
                            .await?
                    }
                };
                record(
                    agent,
                    status,
                    Normal,
                    "PurgeRevisionRegistered",
                    &format!("purge task definition {}", revision.arn),
                );
                observed.purge_revisions.retain(|a| a != &revision.arn);
                observed.purge_revisions.insert(0, revision.arn);
            }
            Action::RunPurgeTask { request, attempt } => {
                // Its own token space: the purge's startedBy is in no agent launch.
                let token = token::launch_token(&request.started_by, attempt, &request);
                self.flush(agent_id, status.as_ref(), written).await?;
                let task = self.cloud.run_task(&request, &token).await?;
                record(
                    agent,
                    status,
                    Normal,
                    "PurgeLaunched",
                    &format!(
                        "purge task {} (attempt {attempt}) erases the agent's files",
                        task.arn
                    ),
                );
                observed.purge_tasks.retain(|t| t.arn != task.arn);
                observed.purge_tasks.insert(0, task);
            }
            Action::StopTask { task_arn, reason } => {
                if let Some(rollout) = self.rollout.filter(|_| reason.is_replacement())
                    && !rollout.begin(agent_id)
                {
                    return Ok(Some(Outcome::Waiting(Wait {
                        after_secs: ROLLOUT_RETRY_SECS,
                        reason: format!(
                            "rollout paced: {} replacements in progress",
                            rollout.in_progress()
                        ),
                    })));
                }
                if reason.is_drift() {
                    self.drift("task");
                }
                let reason = reason.to_string();
                self.cloud.stop_task(&task_arn, &reason).await?;
                record(
                    agent,
                    status,
                    Normal,
                    "TaskStopping",
                    &format!("task {task_arn}: {reason}"),
                );
                for t in observed
                    .tasks
                    .iter_mut()
                    .chain(observed.purge_tasks.iter_mut())
                    .filter(|t| t.arn == task_arn)
                {
                    t.desired_status = "STOPPED".into();
                    t.stopped_reason = Some(reason.clone());
                }
            }
            Action::TagResource { arn, add, remove } => {
                self.cloud.tag_resource(&arn, &add, &remove).await?;
                let retag = |tags: &mut BTreeMap<String, String>| {
                    tags.extend(add.clone());
                    for k in &remove {
                        tags.remove(k);
                    }
                };
                for t in observed.tasks.iter_mut().filter(|t| t.arn == arn) {
                    retag(&mut t.tags);
                }
                for ap in observed.access_points.iter_mut().filter(|a| a.arn == arn) {
                    retag(&mut ap.tags);
                }
                if let Some(details) = observed
                    .role
                    .as_mut()
                    .filter(|r| r.arn == arn)
                    .and_then(|r| r.details.as_mut())
                {
                    retag(&mut details.tags);
                }
                if let Some(s) = observed.secret.as_mut().filter(|s| s.arn == arn) {
                    retag(&mut s.tags);
                }
            }
            Action::DeregisterTaskDefinition { arn } => {
                // A live agent's old revision trails: while registrations that agents wait
                // for keep the shared bucket busy (a bulk onboarding, a fleet-wide change), it
                // is left to a later pass, the next revision listing's, instead of holding a
                // worker in the bucket's low-priority line.
                let trailing = agent.spec.as_ref().is_some_and(|s| !s.meta.is_deleting())
                    && observed.older_revisions.contains(&arn);
                if trailing && !self.cloud.deregistration_has_room() {
                    info!(agent_id, revision = %arn, "deregistration deferred: registrations come first");
                    observed.older_revisions.retain(|a| a != &arn);
                    return Ok(None);
                }
                self.cloud.deregister_task_definition(&arn).await?;
                observed.older_revisions.retain(|a| a != &arn);
                observed.purge_revisions.retain(|a| a != &arn);
                if observed
                    .latest_revision
                    .as_ref()
                    .is_some_and(|l| l.arn == arn)
                {
                    observed.latest_revision = None;
                }
            }
            Action::DeleteAccessPoint { id } => {
                self.cloud.delete_access_point(&id).await?;
                observed.access_points.retain(|a| a.id != id);
            }
            Action::DeleteSecret { arn } => {
                self.cloud.delete_secret(&arn, self.recovery_days).await?;
                if let Some(s) = observed.secret.as_mut() {
                    s.deleted = true;
                }
            }
            Action::DeleteItems => {
                match &agent.spec {
                    Some(item) => self.store.delete_items(agent_id, &item.snapshot).await?,
                    None => self.store.delete_status(agent_id).await?,
                }
                self.expectations.forget(agent_id);
                return Ok(Some(Outcome::Deleted));
            }
            Action::UpdateStatus(mut next) => {
                next.updated_at = Some(spec::now_rfc3339());
                // The history is the executor's: keep what this reconcile recorded so far.
                if let Some(current) = status.as_ref() {
                    next.events.clone_from(&current.events);
                }
                if let (Some(metrics), Some(hash)) =
                    (self.metrics, next.observed_spec_hash.as_deref())
                    && next.phase == spec::Phase::Running
                {
                    metrics.running_on(agent_id, hash);
                    metrics.running_after_wake(agent_id);
                }
                *status = Some(next);
            }
        }
        Ok(None)
    }

    /// RegisterTaskDefinition, which has no token: the family is re-read first, so a retry
    /// after a lost answer adopts the revision instead of registering it twice. The SDK does
    /// not retry it (`cloud::Ecs::register_task_definition`); a transient failure is retried
    /// here, re-reading first, up to [`REGISTER_TRIES`] times, so one lost answer neither
    /// doubles the revision nor fails the reconcile into the queue's backoff.
    async fn register_task_definition(
        &self,
        definition: &render::TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, ReconcileError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let current = self
                .cloud
                .describe_task_definition(&definition.family)
                .await?;
            if let Some(rev) = current.filter(|r| *r.content == *definition) {
                return Ok(rev);
            }
            match self.cloud.register_task_definition(definition, tags).await {
                Ok(rev) => return Ok(rev),
                Err(e) if e.class != ErrorClass::Terminal && tries < REGISTER_TRIES => {
                    warn!(family = %definition.family, "{e}; re-reading before registering again");
                    // The gate waits for the bucket's token, slowed if AWS throttled.
                    tokio::time::sleep(REGISTER_RETRY_PAUSE * tries).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// CreateAccessPoint without listing the file system. Creates are made fresh (the reconcile
    /// re-reads before creating), so the access point the status names, described by id, is
    /// gone: a new one gets a token of its own, so EFS does not hand back the deleted one.
    ///
    /// The token is stored in the status before the call, as the launch attempt is before
    /// RunTask. A token found there means an earlier call's answer was lost: one listing of
    /// the file system settles whether it took effect (adopted, no call), and otherwise the
    /// call is sent again with the same token, so EFS answers with what the first made even
    /// when the listing lags. The listing is paid once per lost answer, never per agent, and
    /// keeps idempotency from resting on the token alone (emulators ignore tokens).
    async fn create_access_point(
        &self,
        agent: &Agent,
        status: &mut Option<AgentStatus>,
        written: &mut Option<AgentStatus>,
        request: &render::AccessPoint,
    ) -> Result<AccessPoint, ReconcileError> {
        let agent_id = agent.agent_id.as_str();
        let current = status.clone().unwrap_or_default();
        let token = match current.access_point_token.clone() {
            Some(token) => {
                let made = self
                    .cloud
                    .describe_access_points()
                    .await?
                    .into_iter()
                    .find(|a| {
                        a.agent_id() == Some(agent_id)
                            && a.is_usable()
                            && a.file_system_id == request.file_system_id
                            && a.root_path.as_deref() == Some(request.root_path.as_str())
                    });
                if let Some(ap) = made {
                    info!(agent_id, access_point = %ap.id, "adopting the access point a lost answer made");
                    let mut next = current;
                    next.access_point_id = Some(ap.id.clone());
                    next.access_point_token = None;
                    *status = Some(next);
                    return Ok(ap);
                }
                token
            }
            None => {
                let replaces = current.access_point_id.as_deref();
                if replaces.is_some() {
                    self.drift("access_point");
                }
                let incarnation = agent
                    .spec
                    .as_ref()
                    .and_then(|s| s.meta.created_at.as_deref())
                    .unwrap_or_default();
                let token = token::access_point_token(agent_id, incarnation, request, replaces);
                let mut next = current;
                next.access_point_token = Some(token.clone());
                *status = Some(next);
                self.flush(agent_id, status.as_ref(), written).await?;
                token
            }
        };
        match self.cloud.create_access_point(request, &token).await {
            Ok(ap) => {
                if let Some(s) = status.as_mut() {
                    s.access_point_id = Some(ap.id.clone());
                    s.access_point_token = None;
                }
                Ok(ap)
            }
            // The token was used with other parameters (the settings changed while the answer
            // was unknown): the next try derives a new one.
            Err(e) if e.has_code("IdempotentParameterMismatch") => {
                if let Some(s) = status.as_mut() {
                    s.access_point_token = None;
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// CreateSecret; a name already taken is adopted when it is this agent's (a lagging
    /// listing), restored when it is this tenant's secret waiting out its recovery window, and
    /// refused otherwise: a secret never passes between tenants.
    async fn create_secret(
        &self,
        agent_id: &str,
        request: &render::Secret,
    ) -> Result<Secret, ReconcileError> {
        let description = render::secret_description(&[]);
        let err = match self.cloud.create_secret(request, &description, "{}").await {
            Ok(secret) => return Ok(secret),
            Err(e)
                if e.has_code("ResourceExistsException")
                    || e.has_code("InvalidRequestException") =>
            {
                e
            }
            Err(e) => return Err(e.into()),
        };
        let Some(existing) = self.cloud.describe_secret(&request.name).await? else {
            return Err(err.into());
        };
        let client = request.tags.get(tag::CLIENT_ID);
        let ours = existing.agent_id() == Some(agent_id);
        let same_tenant = ours && existing.tags.get(tag::CLIENT_ID) == client;
        if !same_tenant {
            return Err(ReconcileError::Refused(format!(
                "secret {}: exists and is not this agent's (it carries another agent's or tenant's tags, or none); clawfleet never reuses it",
                request.name
            )));
        }
        if existing.deleted {
            info!(agent_id, secret = %request.name, "restoring the tenant's own secret from its recovery window");
            self.cloud.restore_secret(&existing.arn).await?;
            self.cloud
                .tag_resource(&existing.arn, &request.tags, &[])
                .await?;
        }
        Ok(Secret {
            deleted: false,
            tags: request.tags.clone(),
            ..existing
        })
    }

    /// CreateRole; a name already taken is adopted when it is this agent's own role of this
    /// tenant (a lost response, or a listing that lags), and refused otherwise. At the account's
    /// role quota the agent waits with a message that says what to do; no other agent is
    /// harmed.
    async fn create_role(
        &self,
        agent: &Agent,
        request: &render::Role,
    ) -> Result<Role, ReconcileError> {
        let err = match self.cloud.create_role(request).await {
            Ok(role) => return Ok(role),
            Err(e) if e.has_code("LimitExceeded") || e.has_code("LimitExceededException") => {
                return Err(ReconcileError::Refused(
                    "iam: role quota reached; raise it or move agents to another account".into(),
                ));
            }
            Err(e)
                if e.has_code("EntityAlreadyExists")
                    || e.has_code("EntityAlreadyExistsException") =>
            {
                e
            }
            Err(e) => return Err(e.into()),
        };
        let Some(existing) = self.cloud.get_role(&request.name).await? else {
            return Err(err.into());
        };
        let client = request.tags.get(tag::CLIENT_ID);
        let ours = existing.agent_id() == Some(agent.agent_id.as_str())
            && existing
                .details
                .as_ref()
                .is_some_and(|d| d.tags.get(tag::CLIENT_ID) == client);
        if !ours {
            return Err(ReconcileError::Refused(format!(
                "iam: role {} exists and is not this agent's (another agent's or tenant's tags, or none); clawfleet never reuses it",
                request.name
            )));
        }
        // Finish what the lost call may not have: the policy.
        self.cloud
            .put_role_policy(&request.name, &request.policy)
            .await?;
        Ok(existing)
    }
}
