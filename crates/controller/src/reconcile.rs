//! Reconciling one agent: read it (the store consistently, AWS freshly), plan, carry the plan
//! out in order, and plan again on what the actions returned, until nothing is left to do or
//! progress depends on AWS.

use std::time::Duration;

use cloud::observed::AgentResources;
use cloud::{AwsError, ErrorClass};
use spec::render::{self, Settings, TaskDefinition, tag};
use spec::{AgentStatus, Condition, ConditionStatus};
use store::{Agent, Store, StoreError};
use tracing::{info, warn};

use crate::act::Cloud;
use crate::action::{Action, Wait};
use crate::expectations::Expectations;
use crate::plan::{Context, Desired, STOP_REASON_PREFIX, plan};
use crate::token;

/// Plans carried out in one reconcile before it yields; each needs new information from AWS
/// (an id, an ARN), so a handful always suffices.
const MAX_ROUNDS: usize = 8;

/// How long a replacement held back by rollout pacing waits before asking again.
pub const ROLLOUT_RETRY_SECS: u64 = 10;

/// Default recovery window of deleted secrets.
pub const DEFAULT_RECOVERY_DAYS: i64 = 7;

/// What a reconcile ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to do.
    Converged,
    /// Progress depends on AWS; look again after the wait.
    Waiting(Wait),
    /// Nothing clawfleet can do until the agent's owner acts (missing secret keys, an
    /// invalid spec); not a failure.
    WaitingOnOwner(String),
    /// The agent's resources and items are gone.
    Deleted,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A resource clawfleet would create exists and is not this agent's.
    #[error("{0}")]
    Refused(String),
}

impl ReconcileError {
    /// Terminal errors wait for a change; the others are retried with backoff.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Aws(e) => e.class,
            Self::Store(StoreError::Conflict { .. }) => ErrorClass::Transient,
            Self::Store(StoreError::Aws { .. }) => ErrorClass::Transient,
            Self::Store(_) | Self::Refused(_) => ErrorClass::Terminal,
        }
    }
}

/// Caps how many running agents are being replaced at once, so a fleet-wide change (a new
/// template, a new default image, a wave of restarts) rolls in waves instead of taking every
/// tenant down together. New agents are not held back: only replacements take a slot.
#[derive(Debug)]
pub struct Rollout {
    cap: usize,
    replacing: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Rollout {
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            replacing: std::sync::Mutex::default(),
        }
    }

    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.replacing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for `agent_id` (or confirms it holds one); false when all are taken.
    pub fn begin(&self, agent_id: &str) -> bool {
        let mut set = self.set();
        if set.contains(agent_id) {
            return true;
        }
        if set.len() >= self.cap {
            return false;
        }
        set.insert(agent_id.to_owned())
    }

    pub fn end(&self, agent_id: &str) {
        self.set().remove(agent_id);
    }

    /// Replacements in progress.
    #[must_use]
    pub fn in_progress(&self) -> usize {
        self.set().len()
    }
}

/// Everything one reconcile needs.
pub struct Reconciler<'a, C: Cloud> {
    pub cloud: &'a C,
    pub store: &'a Store,
    pub settings: &'a Settings,
    pub template: &'a TaskDefinition,
    pub expectations: &'a Expectations,
    pub recovery_days: i64,
    /// Rollout pacing; `None` for one-shot commands.
    pub rollout: Option<&'a Rollout>,
    /// Drift corrections and spec-to-Running latency; `None` for one-shot commands.
    pub metrics: Option<&'a crate::metrics::Metrics>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl<C: Cloud> Reconciler<'_, C> {
    /// Reconciles one agent. `snapshot` is what a fleet-wide read saw; without it, the agent
    /// is observed now. Either way, resources are re-read right before anything is created.
    ///
    /// # Errors
    /// The first failed AWS call or store write; the status records it when it can.
    pub async fn reconcile(
        &self,
        agent_id: &str,
        snapshot: Option<AgentResources>,
    ) -> Result<Outcome, ReconcileError> {
        // A consistent read: an orphan is torn down only when the spec is really gone.
        let agent = self.store.get(agent_id).await?.unwrap_or(Agent {
            agent_id: agent_id.to_owned(),
            spec: None,
            status: None,
        });
        let mut status = agent.status.clone();
        let mut fresh = snapshot.is_none();
        let mut observed = match snapshot {
            Some(o) => o,
            None => {
                let task = status.as_ref().and_then(|s| s.task_arn.as_deref());
                self.cloud.observe_agent(agent_id, task).await?
            }
        };
        self.expectations.merge(agent_id, &mut observed);
        if let (Some(metrics), Some(Ok(spec))) =
            (self.metrics, agent.spec.as_ref().map(|s| &s.spec))
        {
            metrics.spec_seen(agent_id, &spec.content_hash());
        }
        // The status as stored; writes are batched to the end of the reconcile, except the
        // launch attempt, which must be stored before RunTask.
        let mut written = agent.status.clone();
        let mut result = self
            .rounds(&agent, &mut status, &mut written, &mut observed, &mut fresh)
            .await;
        if matches!(result, Ok(ref o) if *o != Outcome::Deleted)
            && let Err(e) = self.flush(agent_id, status.as_ref(), &mut written).await
        {
            result = Err(e.into());
        }
        if let (
            Some(rollout),
            Ok(Outcome::Converged | Outcome::Deleted | Outcome::WaitingOnOwner(_)),
        ) = (self.rollout, &result)
        {
            rollout.end(agent_id);
        }
        if let Err(e) = &result {
            self.record_error(&agent, status.as_ref(), e).await;
        }
        result
    }

    async fn rounds(
        &self,
        agent: &Agent,
        status: &mut Option<AgentStatus>,
        written: &mut Option<AgentStatus>,
        observed: &mut AgentResources,
        fresh: &mut bool,
    ) -> Result<Outcome, ReconcileError> {
        let agent_id = agent.agent_id.as_str();
        let error = agent.spec.as_ref().and_then(store::SpecItem::error_text);
        let ctx = Context {
            settings: self.settings,
            template: self.template,
            now: now(),
        };
        for _ in 0..MAX_ROUNDS {
            let desired = Desired::of(
                agent_id,
                agent.spec.as_ref(),
                error.as_deref(),
                status.as_ref(),
            );
            let plan = plan(&desired, observed, &ctx);
            let creates = plan.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::CreateAccessPoint(_)
                        | Action::CreateSecret(_)
                        | Action::RegisterTaskDefinition { .. }
                        | Action::RunTask(_)
                )
            });
            if creates && !*fresh {
                // Re-read right before creating: a snapshot may be a minute old.
                let task = status.as_ref().and_then(|s| s.task_arn.as_deref());
                *observed = self.cloud.observe_agent(agent_id, task).await?;
                self.expectations.merge(agent_id, observed);
                *fresh = true;
                continue;
            }
            if plan.actions.is_empty() {
                return Ok(settle(plan.wait, status.as_ref()));
            }
            let had_aws = plan.actions.iter().any(Action::is_aws);
            for action in plan.actions {
                if let Some(done) = self.act(agent, status, written, observed, action).await? {
                    return Ok(done);
                }
            }
            if let Some(wait) = plan.wait {
                return Ok(Outcome::Waiting(wait));
            }
            if !had_aws {
                return Ok(settle(None, status.as_ref()));
            }
        }
        Ok(Outcome::Waiting(Wait {
            after_secs: 1,
            reason: "more to do".into(),
        }))
    }

    /// Carries out one action and files its result into `observed`, as the listing will show
    /// it once it catches up.
    async fn act(
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
                // The status names the access point last seen. Not listed now means a lagging
                // listing (adopt it) or a deletion behind our back (create a new one, with a
                // token of its own so EFS does not hand back the deleted one).
                let known = status.as_ref().and_then(|s| s.access_point_id.clone());
                if let Some(id) = &known
                    && let Some(ap) = self.cloud.describe_access_point(id).await?
                    && ap.is_usable()
                    && ap.root_path.as_deref() == Some(request.root_path.as_str())
                {
                    observed.access_points.push(ap);
                    return Ok(None);
                }
                let incarnation = agent
                    .spec
                    .as_ref()
                    .and_then(|s| s.meta.created_at.as_deref())
                    .unwrap_or_default();
                if known.is_some() {
                    self.drift("access_point");
                }
                let token =
                    token::access_point_token(agent_id, incarnation, &request, known.as_deref());
                let ap = self.cloud.create_access_point(&request, &token).await?;
                self.expectations.access_point(agent_id, &ap);
                observed.access_points.push(ap);
            }
            Action::CreateSecret(request) => {
                if status.as_ref().is_some_and(|s| s.secret_arn.is_some()) {
                    self.drift("secret");
                }
                let secret = self.create_secret(agent_id, &request).await?;
                self.expectations.secret(agent_id, &secret);
                observed.secret = Some(secret);
            }
            Action::RegisterTaskDefinition {
                definition, tags, ..
            } => {
                // RegisterTaskDefinition has no token: re-read the family first, so a retry
                // after a lost response adopts the revision instead of registering it twice.
                let current = self
                    .cloud
                    .describe_task_definition(&definition.family)
                    .await?;
                let revision = match current {
                    Some(rev) if rev.content == definition => rev,
                    _ => {
                        self.cloud
                            .register_task_definition(&definition, &tags)
                            .await?
                    }
                };
                self.expectations.revision(agent_id, &revision);
                if let Some(old) = observed.latest_revision.replace(revision) {
                    observed.older_revisions.push(old.arn);
                }
            }
            Action::RunTask(request) => {
                let attempt = request
                    .tags
                    .get(tag::LAUNCH_ATTEMPT)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                let token = token::launch_token(agent_id, attempt, &request);
                let known = status.as_ref().and_then(|s| s.task_arn.as_deref());
                let crashed = observed.tasks.iter().any(|t| {
                    Some(t.arn.as_str()) == known
                        && t.is_stopped()
                        && !t
                            .stopped_reason
                            .as_deref()
                            .is_some_and(|r| r.starts_with(STOP_REASON_PREFIX))
                });
                if crashed {
                    self.drift("task");
                }
                self.flush(agent_id, status.as_ref(), written).await?;
                match self.cloud.run_task(&request, &token).await {
                    Ok(task) => {
                        self.expectations.task(agent_id, &task);
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
            Action::StopTask { task_arn, reason } => {
                let replacing = reason.starts_with(&format!("{STOP_REASON_PREFIX}replacing"));
                if let Some(rollout) = self.rollout.filter(|_| replacing)
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
                if reason.contains("more than one task") {
                    self.drift("task");
                }
                self.cloud.stop_task(&task_arn, &reason).await?;
                for t in observed.tasks.iter_mut().filter(|t| t.arn == task_arn) {
                    t.desired_status = "STOPPED".into();
                    t.stopped_reason = Some(reason.clone());
                }
            }
            Action::TagResource { arn, add, remove } => {
                self.cloud.tag_resource(&arn, &add, &remove).await?;
                let retag = |tags: &mut std::collections::BTreeMap<String, String>| {
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
                if let Some(s) = observed.secret.as_mut().filter(|s| s.arn == arn) {
                    retag(&mut s.tags);
                }
            }
            Action::DeregisterTaskDefinition { arn } => {
                self.cloud.deregister_task_definition(&arn).await?;
                observed.older_revisions.retain(|a| a != &arn);
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
                if let (Some(metrics), Some(hash)) =
                    (self.metrics, next.observed_spec_hash.as_deref())
                    && next.phase == spec::Phase::Running
                {
                    metrics.running_on(agent_id, hash);
                }
                *status = Some(next);
            }
        }
        Ok(None)
    }

    /// Stores the status when it says something the stored one does not.
    async fn flush(
        &self,
        agent_id: &str,
        status: Option<&AgentStatus>,
        written: &mut Option<AgentStatus>,
    ) -> Result<(), StoreError> {
        let Some(status) = status else {
            return Ok(());
        };
        if written.as_ref().is_some_and(|w| w.same_as(status)) {
            return Ok(());
        }
        self.store.put_status(agent_id, status, None).await?;
        *written = Some(status.clone());
        Ok(())
    }

    fn drift(&self, resource: &str) {
        if let Some(metrics) = self.metrics {
            metrics.drift_corrected(resource);
        }
    }

    /// CreateSecret; a name already taken is adopted when it is this agent's (a lagging
    /// listing), restored when it is this tenant's secret waiting out its recovery window, and
    /// refused otherwise: a secret never passes between tenants.
    async fn create_secret(
        &self,
        agent_id: &str,
        request: &render::Secret,
    ) -> Result<cloud::observed::Secret, ReconcileError> {
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
        Ok(cloud::observed::Secret {
            deleted: false,
            tags: request.tags.clone(),
            ..existing
        })
    }

    /// Records a failure in the status, so `describe` shows it: `Synced=False` with the
    /// error's class and its one-line message.
    async fn record_error(
        &self,
        agent: &Agent,
        status: Option<&AgentStatus>,
        error: &ReconcileError,
    ) {
        if agent.spec.is_none() {
            return;
        }
        let mut next = status.cloned().unwrap_or_default();
        let reason = match error.class() {
            ErrorClass::Terminal => "TerminalError",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::Transient => "TransientError",
        };
        next.message = Some(error.to_string());
        next.conditions.retain(|c| c.kind != "Synced");
        next.conditions.push(Condition {
            kind: "Synced".into(),
            status: ConditionStatus::False,
            reason: reason.into(),
            message: error.to_string(),
            time: spec::now_rfc3339(),
        });
        next.updated_at = Some(spec::now_rfc3339());
        if let Err(e) = self.store.put_status(&agent.agent_id, &next, status).await {
            warn!(agent_id = %agent.agent_id, "could not record the error in the status: {e}");
        }
    }
}

/// The outcome of a plan with nothing left to do.
fn settle(wait: Option<Wait>, status: Option<&AgentStatus>) -> Outcome {
    if let Some(wait) = wait {
        return Outcome::Waiting(wait);
    }
    let waiting_on_owner = status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| {
                matches!(c.kind.as_str(), "SpecValid" | "SecretsReady")
                    && c.status == ConditionStatus::False
            })
            .map(|c| c.message.clone())
    });
    match waiting_on_owner {
        Some(message) => Outcome::WaitingOnOwner(message),
        None => Outcome::Converged,
    }
}

/// How long to wait before a reconcile that ended in `outcome` should run again on its own.
#[must_use]
pub fn requeue_after(outcome: &Outcome) -> Option<Duration> {
    match outcome {
        Outcome::Waiting(w) => Some(Duration::from_secs(w.after_secs.max(1))),
        _ => None,
    }
}
