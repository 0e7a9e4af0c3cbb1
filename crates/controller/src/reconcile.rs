//! Reconciling one agent: read it (the store consistently, AWS freshly), plan, carry the plan
//! out in order ([`crate::execute`]), and plan again on what the actions returned, until nothing
//! is left to do or progress depends on AWS.

use cloud::AwsError;
use plan::observed::AgentResources;
use plan::{Action, Context, Desired, Wait, plan};
use spec::failure::ErrorClass;
use spec::render::{Settings, TaskDefinition};
use spec::{AgentStatus, Condition, ConditionKind, ConditionStatus};
use store::{Agent, SpecItem, StoreError};
use tokio::time::Instant;
use tracing::warn;

use crate::aws::Cloud;
use crate::expectations::Expectations;
use crate::last_seen::LastSeen;
use crate::rollout::Rollout;
use crate::status::StatusStore;

/// Plans carried out in one reconcile before it yields; each needs new information from AWS
/// (an id, an ARN), so a handful always suffices.
const MAX_ROUNDS: usize = 8;

/// How long a replacement held back by rollout pacing waits at most before asking again. It is
/// enqueued as soon as a slot frees ([`Rollout::admit`]), and each resync frees the slots no
/// reconcile carries on ([`Rollout::release_stranded`]) while leaving the agents in line alone
/// ([`crate::rollout::held`]); this is only the fallback. At 5 minutes, 5,000 held-back agents re-read AWS 17 times a second,
/// three times what IAM's and EFS's buckets give, and the replacements in progress waited
/// behind them.
pub const ROLLOUT_RETRY_SECS: u64 = 3600;

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
    /// Nothing left to do until the agent's effective state changes on its own (a schedule
    /// window opening or closing, an idle deadline), this many seconds from now.
    Revisit(u64),
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
    /// Classified as every AWS and DynamoDB error is ([`spec::failure`]); what the queue does
    /// with each class is [`crate::policy::decide`].
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Aws(e) => e.class,
            Self::Store(e) => e.class(),
            Self::Refused(_) => ErrorClass::Terminal,
        }
    }

    /// Whether DynamoDB failed (so the status could not record it either).
    #[must_use]
    pub fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// What a stored agent asks for, as the planner takes it. `error_text` is the spec item's
/// [`SpecItem::error_text`], held by the caller for the borrow.
#[must_use]
pub fn desired<'a>(
    agent_id: &'a str,
    spec_item: Option<&'a SpecItem>,
    error_text: Option<&'a str>,
    status: Option<&'a AgentStatus>,
    last_activity: Option<i64>,
) -> Desired<'a> {
    Desired {
        agent_id,
        spec: spec_item.map(|s| match &s.spec {
            Ok(spec) => Ok(spec),
            Err(_) => Err(error_text.unwrap_or_default()),
        }),
        deleting: spec_item.is_some_and(|s| s.meta.is_deleting()),
        status,
        last_activity,
        purge_data: spec_item.is_some_and(purges),
    }
}

/// Whether the stored spec item asks for a data purge on deletion: from the item as typed, so a
/// spec that does not validate still gets the purge its owner asked for.
fn purges(item: &SpecItem) -> bool {
    match &item.spec {
        Ok(spec) => spec.purge_data_on_delete,
        Err(_) => item
            .document
            .as_ref()
            .is_some_and(|d| d.purge_data_on_delete == Some(true)),
    }
}

/// Everything one reconcile needs.
pub struct Reconciler<'a, C: Cloud, S: StatusStore> {
    pub cloud: &'a C,
    pub store: &'a S,
    pub settings: &'a Settings,
    pub template: &'a TaskDefinition,
    pub expectations: &'a Expectations,
    pub recovery_days: i64,
    /// Rollout pacing; `None` for one-shot commands.
    pub rollout: Option<&'a Rollout>,
    /// What reconciles that ended waiting saw; `None` for one-shot commands (which read all).
    pub last_seen: Option<&'a LastSeen>,
    /// Drift corrections and spec-to-Running latency; `None` for one-shot commands.
    pub metrics: Option<&'a crate::metrics::Metrics>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl<C: Cloud, S: StatusStore> Reconciler<'_, C, S> {
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
        let agent = self
            .store
            .get(agent_id)
            .await?
            .unwrap_or_else(|| Agent::absent(agent_id));
        let mut status = agent.status.clone();
        let teardown = agent.spec.as_ref().is_none_or(|s| s.meta.is_deleting());
        // After a reconcile that ended waiting on AWS, only the tasks are read again.
        let kept = match (&snapshot, self.last_seen) {
            (None, Some(last_seen)) if !teardown => last_seen.take(agent_id),
            _ => None,
        };
        let mut fresh = snapshot.is_none() && kept.is_none();
        let kept_at = kept.as_ref().map(|(at, _)| *at);
        let mut observed = match (snapshot, kept) {
            (Some(mut o), _) => {
                // A fleet snapshot may be a minute old by the time its agent's turn comes (a
                // resync's reads take that long at scale), and tasks move: planned from an old
                // one, an agent whose task started since was set back to TaskStarting. The
                // tasks are read again, as after a wait; the rest changes only by this
                // controller's creates, which re-read first.
                let task = status.as_ref().and_then(|s| s.task_arn.as_deref());
                if task.is_some() || !o.tasks.is_empty() {
                    o.tasks = self.cloud.observe_tasks(agent_id, task).await?;
                }
                o
            }
            (None, Some((_, mut o))) => {
                let task = status.as_ref().and_then(|s| s.task_arn.as_deref());
                o.tasks = self.cloud.observe_tasks(agent_id, task).await?;
                o
            }
            (None, None) => self.observe(&agent, status.as_ref()).await?,
        };
        self.expectations.merge(agent_id, &mut observed);
        if let (Some(metrics), Some(Ok(spec))) =
            (self.metrics, agent.spec.as_ref().map(|s| &s.spec))
        {
            metrics.spec_seen(agent_id, &spec.content_hash());
        }
        if let (Some(metrics), Some(at)) = (self.metrics, agent.activity.wake_requested_ms) {
            let running = status
                .as_ref()
                .is_some_and(|s| s.phase == spec::Phase::Running);
            metrics.wake_seen(agent_id, at, running);
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
        if let Some(last_seen) = self.last_seen {
            match &result {
                Ok(Outcome::Waiting(_)) if !teardown => {
                    // Read in full now, unless all but the tasks came from the last reconcile.
                    let read_at = if fresh { None } else { kept_at };
                    last_seen.keep(agent_id, &observed, read_at.unwrap_or_else(Instant::now));
                }
                _ => last_seen.forget(agent_id),
            }
        }
        // A slot is held only while a replacement waits on AWS; any other end, failures
        // included, releases it, so a broken agent never holds up the rollout of the rest.
        if let Some(rollout) = self.rollout
            && !matches!(result, Ok(Outcome::Waiting(_)))
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
        let error = agent.spec.as_ref().and_then(SpecItem::error_text);
        let ctx = Context {
            settings: self.settings,
            template: self.template,
            now: now(),
        };
        for _ in 0..MAX_ROUNDS {
            let desired = desired(
                agent_id,
                agent.spec.as_ref(),
                error.as_deref(),
                status.as_ref(),
                agent.last_activity(),
            );
            let plan = plan(&desired, observed, &ctx);
            let creates = plan.actions.iter().any(Action::is_create);
            if creates && !*fresh {
                // Re-read right before creating: a snapshot may be a minute old.
                *observed = self.observe(agent, status.as_ref()).await?;
                self.expectations.merge(agent_id, observed);
                *fresh = true;
                continue;
            }
            if plan.actions.is_empty() {
                return Ok(settle(plan.wait, plan.revisit_after_secs, status.as_ref()));
            }
            let had_aws = plan.actions.iter().any(Action::is_aws);
            for action in plan.actions {
                // Boxed: the executor's future (one state per action's calls) would otherwise
                // make every reconcile's future too large for a test thread's stack.
                if let Some(done) =
                    Box::pin(self.execute(agent, status, written, observed, action)).await?
                {
                    return Ok(done);
                }
            }
            for event in plan.events {
                record(agent, status, event.kind, &event.reason, &event.message);
            }
            if let Some(wait) = plan.wait {
                return Ok(Outcome::Waiting(wait));
            }
            if !had_aws {
                return Ok(settle(None, plan.revisit_after_secs, status.as_ref()));
            }
        }
        Ok(Outcome::Waiting(Wait {
            after_secs: 1,
            reason: "more to do".into(),
        }))
    }

    /// Reads the agent's resources from AWS, by the ids its status knows where it knows them.
    /// A teardown whose status names no access point (an orphan whose items were deleted by
    /// hand) lists the file system instead: nothing may be left behind, and orphans are rare.
    async fn observe(
        &self,
        agent: &Agent,
        status: Option<&AgentStatus>,
    ) -> Result<AgentResources, AwsError> {
        let agent_id = agent.agent_id.as_str();
        let task = status.and_then(|s| s.task_arn.as_deref());
        let access_point = status.and_then(|s| s.access_point_id.as_deref());
        let mut observed = self
            .cloud
            .observe_agent(agent_id, task, access_point)
            .await?;
        let teardown = agent.spec.as_ref().is_none_or(|s| s.meta.is_deleting());
        // A purge task is never the agent's: read apart, and only while a purge may run (a
        // deletion asking for one) or may be left behind (an orphan).
        if teardown && agent.spec.as_ref().is_none_or(purges) {
            let known = status.and_then(|s| s.purge.task_arn.as_deref());
            (observed.purge_tasks, observed.purge_revisions) =
                self.cloud.observe_purge(agent_id, known).await?;
        }
        if teardown && access_point.is_none() {
            observed.access_points = self
                .cloud
                .describe_access_points()
                .await?
                .into_iter()
                .filter(|a| a.agent_id() == Some(agent_id))
                .collect();
        }
        Ok(observed)
    }

    /// Stores the status when it says something the stored one does not.
    pub(crate) async fn flush(
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

    pub(crate) fn drift(&self, resource: &str) {
        if let Some(metrics) = self.metrics {
            metrics.drift_corrected(resource);
        }
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
        next.record(
            spec::EventType::Warning,
            reason,
            &error.to_string(),
            &spec::now_rfc3339(),
        );
        next.conditions.retain(|c| c.kind != ConditionKind::Synced);
        next.conditions.push(Condition {
            kind: ConditionKind::Synced,
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

/// Records an event in the agent's status history; an orphan (no spec) keeps no history.
pub(crate) fn record(
    agent: &Agent,
    status: &mut Option<AgentStatus>,
    kind: spec::EventType,
    reason: &str,
    message: &str,
) {
    if agent.spec.is_none() {
        return;
    }
    status.get_or_insert_with(AgentStatus::default).record(
        kind,
        reason,
        message,
        &spec::now_rfc3339(),
    );
}

/// The outcome of a plan with nothing left to do.
fn settle(wait: Option<Wait>, revisit: Option<u64>, status: Option<&AgentStatus>) -> Outcome {
    if let Some(wait) = wait {
        return Outcome::Waiting(wait);
    }
    let waiting_on_owner = status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| {
                matches!(
                    c.kind,
                    ConditionKind::SpecValid | ConditionKind::SecretsReady
                ) && c.status == ConditionStatus::False
            })
            .map(|c| c.message.clone())
    });
    match (waiting_on_owner, revisit) {
        (Some(message), _) => Outcome::WaitingOnOwner(message),
        (None, Some(after)) => Outcome::Revisit(after),
        (None, None) => Outcome::Converged,
    }
}
