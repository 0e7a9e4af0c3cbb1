//! `plan(desired, observed) -> Plan`: a pure function, no I/O, exhaustively table-tested.
//!
//! Order of concerns for a live agent: the access point and the secret first (the task
//! definition names both), then the task definition revision (registered only when its
//! rendered content changes), then the task: exactly one when running, none when stopped,
//! replaced by stop-wait-start so two tasks never write one EFS directory at once. Deletion
//! and garbage collection stop the task first, then remove the rest.

use std::collections::BTreeMap;

use crate::observed::{AgentResources, Task, same_policy};
use spec::lifecycle::{self, Effective};
use spec::render::{self, Settings, TaskDefinition};
use spec::{AgentSpec, AgentStatus, Condition, ConditionKind, ConditionStatus, EventType, Phase};

use crate::action::{Action, Event, Launch, Plan, StopReason, Wait};
use crate::delta::{definition_delta, tag_delta, task_delta};

/// Condition reasons that need the owner's or on-call's attention: their events are Warnings.
const WARNING_REASONS: [&str; 5] = [
    "InvalidSpec",
    "MissingKeys",
    "WaitingForSecrets",
    "CrashBackoff",
    "Unhealthy",
];

/// How long to wait before looking at a task that is starting or stopping again.
pub const POLL_SECS: u64 = 5;
/// Crash restarts back off from this...
pub const RESTART_BACKOFF_MIN_SECS: i64 = 10;
/// ...doubling up to this...
pub const RESTART_BACKOFF_MAX_SECS: i64 = 600;
/// ...and reset after a task ran this long.
pub const RESTART_RESET_AFTER_SECS: i64 = 600;

/// Prefix of every StopTask reason clawfleet gives, so its own stops are never taken for
/// crashes.
pub const STOP_REASON_PREFIX: &str = "clawfleet: ";

/// What the agent should be, as read from the store.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    pub agent_id: &'a str,
    /// `None`: no spec item (an orphan). `Some(Err(..))`: a spec that does not validate, with
    /// the error naming the field.
    pub spec: Option<Result<&'a AgentSpec, &'a str>>,
    /// `deletion_requested_at` is set.
    pub deleting: bool,
    pub status: Option<&'a AgentStatus>,
    /// The latest activity, wake or creation known (seconds since the epoch), from which
    /// idleness counts.
    pub last_activity: Option<i64>,
    /// The stored spec asks for the agent's files to be erased before its access point is
    /// deleted (`purge_data_on_delete`; read from the item, so an invalid spec keeps it).
    pub purge_data: bool,
}

/// What every plan of one pass shares.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub template: &'a TaskDefinition,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// Decides what to do about one agent.
#[must_use]
pub fn plan(desired: &Desired<'_>, observed: &AgentResources, ctx: &Context<'_>) -> Plan {
    match desired.spec {
        None => teardown(desired, observed, ctx, false),
        Some(_) if desired.deleting => teardown(desired, observed, ctx, true),
        Some(Err(error)) => invalid(desired, observed, ctx, error),
        Some(Ok(spec)) => match moved_from(spec, desired.status, observed) {
            Some(owner) => invalid(
                desired,
                observed,
                ctx,
                &format!(
                    "client_id: cannot change once the agent exists (it belongs to \"{owner}\"); \
                     nothing was moved: a tenant move is a separate, explicit operation"
                ),
            ),
            None => converge(desired, spec, observed, ctx),
        },
    }
}

/// The tenant an agent belongs to when its spec names another: the owner recorded in the
/// status at the first reconcile, or the `clawfleet:client-id` tag of any of its live
/// resources. An edit of `client_id` in the console must never hand an agent, its memory or
/// its secret to another tenant.
fn moved_from<'a>(
    spec: &AgentSpec,
    status: Option<&'a AgentStatus>,
    observed: &'a AgentResources,
) -> Option<&'a str> {
    let recorded = status.and_then(|s| s.client_id.as_deref());
    let tags = observed
        .access_points
        .iter()
        .filter(|a| a.is_usable())
        .map(|a| &a.tags)
        .chain(
            observed
                .secret
                .iter()
                .filter(|s| !s.deleted)
                .map(|s| &s.tags),
        )
        .chain(
            observed
                .tasks
                .iter()
                .filter(|t| t.is_live())
                .map(|t| &t.tags),
        )
        .chain(
            observed
                .role
                .iter()
                .filter_map(|r| r.details.as_ref())
                .map(|d| &d.tags),
        )
        .filter_map(|tags| tags.get(render::tag::CLIENT_ID).map(String::as_str));
    recorded
        .into_iter()
        .chain(tags)
        .find(|owner| *owner != spec.client_id)
}

/// The status the plan ends in, built up as the plan is made.
pub(crate) struct StatusDraft {
    pub(crate) status: AgentStatus,
    /// The attempt already recorded in the store.
    previous_attempt: u64,
    /// The conditions as the plan found them, for the transitions it reports as events.
    previous_conditions: Vec<Condition>,
    /// What the plan observed beyond condition transitions.
    events: Vec<Event>,
}

impl StatusDraft {
    fn new(desired: &Desired<'_>, ctx: &Context<'_>) -> Self {
        let previous = desired.status.cloned().unwrap_or_default();
        Self {
            previous_attempt: previous.launch_attempt,
            previous_conditions: previous.conditions.clone(),
            events: Vec::new(),
            status: AgentStatus {
                cluster: Some(ctx.settings.cluster.clone()),
                file_system_id: Some(ctx.settings.file_system_id.clone()),
                message: None,
                ..previous
            },
        }
    }

    pub(crate) fn condition(
        &mut self,
        kind: ConditionKind,
        status: ConditionStatus,
        reason: &str,
        message: String,
        now: i64,
    ) {
        let time = self
            .status
            .condition(kind)
            .filter(|c| c.status == status)
            .map_or_else(|| rfc3339(now), |c| c.time.clone());
        self.status.conditions.retain(|c| c.kind != kind);
        self.status.conditions.push(Condition {
            kind,
            status,
            reason: reason.to_owned(),
            message,
            time,
        });
        self.status.conditions.sort_by_key(|c| c.kind);
    }

    pub(crate) fn observe(&mut self, kind: EventType, reason: &str, message: String) {
        self.events.push(Event {
            kind,
            reason: reason.to_owned(),
            message,
        });
    }

    /// The events of the plan: what it observed, then every condition whose status or reason
    /// changed (Synced aside: it changes with every action and says nothing an action's own
    /// event does not).
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.events);
        for condition in &self.status.conditions {
            if condition.kind == ConditionKind::Synced {
                continue;
            }
            let before = self
                .previous_conditions
                .iter()
                .find(|c| c.kind == condition.kind);
            if before.is_some_and(|b| b.status == condition.status && b.reason == condition.reason)
            {
                continue;
            }
            let warning = condition.status == ConditionStatus::False
                && WARNING_REASONS.contains(&condition.reason.as_str());
            let mut message = format!("{} is {:?}", condition.kind, condition.status);
            if !condition.message.is_empty() {
                message.push_str(": ");
                message.push_str(&condition.message);
            }
            events.push(Event {
                kind: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: condition.reason.clone(),
                message,
            });
        }
        events
    }

    /// Appends the status update when it says something new.
    pub(crate) fn finish(mut self, desired: &Desired<'_>, mut plan: Plan) -> Plan {
        plan.events = self.take_events();
        let changed = desired.status.is_none_or(|s| !s.same_as(&self.status));
        if changed {
            plan.actions.push(Action::UpdateStatus(self.status));
        }
        plan
    }
}

pub(crate) fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(spec::format_rfc3339)
        .unwrap_or_default()
}

fn stop(task: &Task, reason: StopReason) -> Action {
    Action::StopTask {
        task_arn: task.arn.clone(),
        reason,
    }
}

/// A spec that does not validate changes nothing on AWS: a running agent keeps running on its
/// last valid configuration.
fn invalid(
    desired: &Desired<'_>,
    observed: &AgentResources,
    ctx: &Context<'_>,
    error: &str,
) -> Plan {
    let mut draft = StatusDraft::new(desired, ctx);
    draft.condition(
        ConditionKind::SpecValid,
        ConditionStatus::False,
        "InvalidSpec",
        error.to_owned(),
        ctx.now,
    );
    let running = observed.tasks.iter().any(Task::is_live);
    if !running {
        draft.status.phase = Phase::Failed;
    }
    draft.status.message = Some(format!("spec is invalid: {error}"));
    draft.finish(desired, Plan::default())
}

/// Deleting an agent, or collecting an orphan's resources: stop the tasks, and once they are
/// STOPPED delete the access points, the secret and the revisions, then the items.
fn teardown(
    desired: &Desired<'_>,
    observed: &AgentResources,
    ctx: &Context<'_>,
    has_spec: bool,
) -> Plan {
    let mut plan = Plan::default();
    let mut draft = StatusDraft::new(desired, ctx);
    draft.status.phase = Phase::Deleting;
    for task in observed.tasks.iter().filter(|t| t.is_live()) {
        plan.actions.push(stop(task, StopReason::Deleted));
    }
    // A purge task left behind by an agent whose items are gone is collected like the rest.
    if !has_spec {
        for task in observed.purge_tasks.iter().filter(|t| t.is_live()) {
            plan.actions.push(stop(task, StopReason::Deleted));
        }
    }
    let purging_orphan = !has_spec && observed.purge_tasks.iter().any(|t| !t.is_stopped());
    if observed.tasks.iter().any(|t| !t.is_stopped()) || purging_orphan {
        draft.status.message = Some("waiting for the task to stop before deleting".into());
        plan.wait = Some(Wait {
            after_secs: POLL_SECS,
            reason: "task stopping".into(),
        });
        if !has_spec && desired.status.is_none() {
            return plan;
        }
        return draft.finish(desired, plan);
    }
    // The files go before the access point: without it nothing could reach them any more.
    if has_spec && desired.purge_data {
        match crate::purge::step(desired, observed, ctx, &mut draft, &mut plan) {
            crate::purge::Step::Waiting => return draft.finish(desired, plan),
            crate::purge::Step::Done => {
                if desired.status.is_none_or(|s| s.purge != draft.status.purge) {
                    plan.actions
                        .push(Action::UpdateStatus(draft.status.clone()));
                }
                plan.events = draft.take_events();
            }
        }
    }
    for ap in &observed.access_points {
        plan.actions
            .push(Action::DeleteAccessPoint { id: ap.id.clone() });
    }
    if let Some(secret) = observed.secret.as_ref().filter(|s| !s.deleted) {
        plan.actions.push(Action::DeleteSecret {
            arn: secret.arn.clone(),
        });
    }
    if let Some(role) = &observed.role {
        plan.actions.push(Action::DeleteRole {
            name: role.name.clone(),
        });
    }
    let revisions = observed
        .latest_revision
        .iter()
        .map(|r| r.arn.clone())
        .chain(observed.older_revisions.iter().cloned());
    for arn in revisions.chain(observed.purge_revisions.iter().cloned()) {
        plan.actions.push(Action::DeregisterTaskDefinition { arn });
    }
    if has_spec || desired.status.is_some() {
        plan.actions.push(Action::DeleteItems);
    }
    plan
}

/// Exponential crash backoff from the status: `None` when a restart may happen now,
/// otherwise the seconds left.
fn crash_backoff(status: &AgentStatus, last_ran_secs: Option<i64>, now: i64) -> Option<u64> {
    if last_ran_secs.is_some_and(|ran| ran >= RESTART_RESET_AFTER_SECS) || status.restarts == 0 {
        return None;
    }
    let exponent = status.restarts.saturating_sub(1).min(16);
    let delay = (RESTART_BACKOFF_MIN_SECS << exponent).min(RESTART_BACKOFF_MAX_SECS);
    let last = status
        .last_restart_at
        .as_deref()
        .and_then(spec::parse_rfc3339)?;
    let ready_at = last.unix_timestamp() + delay;
    (now < ready_at).then(|| u64::try_from(ready_at - now).unwrap_or(0))
}

/// Whether a stop was ECS's or a person's doing rather than clawfleet's.
fn stopped_on_its_own(task: &Task) -> bool {
    !task
        .stopped_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(STOP_REASON_PREFIX))
}

/// A task clawfleet replaced because it stayed UNHEALTHY: a crash, for restarts and backoff.
fn stopped_unhealthy(task: &Task) -> bool {
    task.stopped_reason.as_deref() == Some(StopReason::Unhealthy.to_string().as_str())
}

/// A stop caused by a secret key the task could not read: the owner must act, not us.
fn failed_on_secrets(task: &Task) -> bool {
    task.stopped_reason.as_deref().is_some_and(|r| {
        r.contains("ResourceInitializationError") && r.to_lowercase().contains("secret")
    })
}

fn converge(
    desired: &Desired<'_>,
    spec: &AgentSpec,
    observed: &AgentResources,
    ctx: &Context<'_>,
) -> Plan {
    let settings = ctx.settings;
    let mut plan = Plan::default();
    let mut draft = StatusDraft::new(desired, ctx);
    draft.condition(
        ConditionKind::SpecValid,
        ConditionStatus::True,
        "Valid",
        String::new(),
        ctx.now,
    );
    draft.status.observed_spec_hash = Some(spec.content_hash());
    // The owner is recorded once; the API serves the agent to it alone from then on.
    draft
        .status
        .client_id
        .get_or_insert_with(|| spec.client_id.clone());

    // Access point: the one rooted where this agent's memory lives; extras are drift.
    let want_ap = render::access_point(spec, settings);
    let mut aps = observed.access_points.iter().filter(|ap| {
        ap.is_usable()
            && ap.file_system_id == want_ap.file_system_id
            && ap.root_path.as_deref() == Some(want_ap.root_path.as_str())
    });
    let access_point = aps.next();
    for extra in aps {
        plan.actions.push(Action::DeleteAccessPoint {
            id: extra.id.clone(),
        });
    }
    match access_point {
        None => plan
            .actions
            .push(Action::CreateAccessPoint(want_ap.clone())),
        Some(ap) => push_tags(&mut plan, &ap.arn, &ap.tags, &want_ap.tags),
    }
    draft.status.access_point_id = access_point.map(|ap| ap.id.clone());
    if access_point.is_some() {
        draft.status.access_point_token = None;
    }

    // Secret: created empty by the controller when missing; values come from their owner.
    let want_secret = render::secret(spec, settings);
    let secret = observed.secret.as_ref().filter(|s| !s.deleted);
    match secret {
        None => plan.actions.push(Action::CreateSecret(want_secret.clone())),
        Some(s) => push_tags(&mut plan, &s.arn, &s.tags, &want_secret.tags),
    }
    draft.status.secret_arn = secret.map(|s| s.arn.clone());
    let recorded = secret.and_then(|s| s.key_names.clone()).unwrap_or_default();
    let missing: Vec<&str> = spec
        .secret_keys
        .iter()
        .filter(|k| !recorded.contains(k))
        .map(String::as_str)
        .collect();
    let secrets_ready = missing.is_empty();
    if secrets_ready {
        draft.condition(
            ConditionKind::SecretsReady,
            ConditionStatus::True,
            "KeysPresent",
            String::new(),
            ctx.now,
        );
    } else {
        draft.condition(
            ConditionKind::SecretsReady,
            ConditionStatus::False,
            "MissingKeys",
            format!(
                "secret keys missing: {} (set them with `clawfleet secrets set {}`)",
                missing.join(", "),
                spec.agent_id
            ),
            ctx.now,
        );
    }

    // Task role: one per agent, allowed to mount only its own access point (it can only be
    // rendered once the access point's ARN is known). A role only listed has no details: its
    // policy is checked when the agent is observed on its own.
    let want_role = access_point.and_then(|ap| render::role(spec, settings, &ap.arn));
    let role_arn = match (&want_role, &observed.role) {
        (Some(want), None) => {
            plan.actions.push(Action::CreateRole(want.clone()));
            None
        }
        (Some(want), Some(have)) => {
            if let Some(details) = &have.details {
                let policy = details
                    .policy
                    .as_deref()
                    .is_none_or(|p| !same_policy(p, &want.policy))
                    .then(|| want.policy.clone());
                let permissions_boundary = (details.permissions_boundary.as_deref()
                    != Some(want.permissions_boundary.as_str()))
                .then(|| want.permissions_boundary.clone());
                if policy.is_some() || permissions_boundary.is_some() {
                    plan.actions.push(Action::UpdateRole {
                        name: want.name.clone(),
                        policy,
                        permissions_boundary,
                    });
                }
                push_tags(&mut plan, &have.arn, &details.tags, &want.tags);
            }
            Some(have.arn.as_str())
        }
        (None, _) => None,
    };
    let per_agent = matches!(settings.task_role, render::TaskRole::PerAgent { .. });
    draft.status.task_role_mode = Some(settings.task_role.as_str().to_owned());
    draft.status.task_role_arn = if per_agent {
        role_arn.map(str::to_owned)
    } else {
        ctx.template.task_role_arn.clone()
    };

    // Task definition revision: registered only when the rendered content changes.
    let mut task_definition_arn = None;
    if let (Some(ap), Some(secret)) = (access_point, secret)
        && (role_arn.is_some() || !per_agent)
        && let Ok(rendered) =
            render::task_definition(spec, ctx.template, settings, &secret.arn, &ap.id, role_arn)
    {
        match &observed.latest_revision {
            Some(latest) if *latest.content == rendered => {
                task_definition_arn = Some(latest.arn.clone());
            }
            latest => {
                let changes = latest
                    .as_ref()
                    .map(|l| definition_delta(&rendered, &l.content))
                    .unwrap_or_default();
                plan.actions.push(Action::RegisterTaskDefinition {
                    definition: rendered,
                    tags: render::revision_tags(spec, settings),
                    changes,
                });
            }
        }
    }
    draft
        .status
        .task_definition_arn
        .clone_from(&task_definition_arn);

    // Old revisions no live task uses trail behind, at the rate limiter's low priority.
    for arn in &observed.older_revisions {
        if !observed
            .tasks
            .iter()
            .any(|t| t.is_live() && &t.task_definition_arn == arn)
        {
            plan.actions
                .push(Action::DeregisterTaskDefinition { arn: arn.clone() });
        }
    }

    let live: Vec<&Task> = observed.tasks.iter().filter(|t| t.is_live()).collect();
    let stopping = observed.tasks.iter().any(Task::is_stopping);

    // Whether to have a task at all: desired_state, then the schedule, then idleness.
    let lead = lifecycle::lead_for(&spec.agent_id, settings.schedule_lead_secs);
    let effective = lifecycle::effective(spec, desired.last_activity, ctx.now, lead);
    plan.revisit_after_secs = effective
        .next_boundary()
        .map(|at| u64::try_from(at - ctx.now).unwrap_or(0).max(1));
    draft.status.next_start_at = None;
    let off = match effective {
        Effective::Run { .. } => None,
        Effective::Stopped => Some((
            StopReason::DesiredStopped,
            Phase::Stopped,
            "Stopped",
            "desired_state is stopped".to_owned(),
        )),
        Effective::Scheduled { next_start, .. } => {
            let at = rfc3339(next_start);
            draft.status.next_start_at = Some(at.clone());
            Some((
                StopReason::OutsideSchedule,
                Phase::Scheduled,
                "OutsideSchedule",
                format!("outside the schedule's windows; the next opens at {at}"),
            ))
        }
        Effective::Idle { since, .. } => Some((
            StopReason::Idle,
            Phase::Idle,
            "Idle",
            format!(
                "idle since {}: no activity for {}; a wake starts it",
                rfc3339(since),
                lifecycle::format_duration(spec.idle_stop_after.unwrap_or_default())
            ),
        )),
    };
    if let Some((reason, phase, why, message)) = off {
        for task in &live {
            plan.actions.push(stop(task, reason.clone()));
        }
        if live.is_empty() && !stopping {
            draft.status.phase = phase;
            draft.status.task_arn = None;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::False,
                why,
                message,
                ctx.now,
            );
        } else {
            draft.status.phase = Phase::Stopping;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::False,
                "Stopping",
                String::new(),
                ctx.now,
            );
            plan.wait = Some(Wait {
                after_secs: POLL_SECS,
                reason: "task stopping".into(),
            });
        }
        return synced(draft, desired, plan, ctx);
    }

    let want_run = task_definition_arn
        .as_deref()
        .map(|arn| render::run_task(spec, settings, arn));

    // Keep one live task: the one clawfleet launched (the status names it) when it needs no
    // replacement, else the newest that needs none, else the newest. Any other is an extra.
    let ours = desired.status.and_then(|st| st.task_arn.as_deref());
    let fits = |t: &&&Task| {
        want_run
            .as_ref()
            .is_some_and(|want| !task_delta(want, t).needs_replacement())
    };
    let keep = live
        .iter()
        .filter(fits)
        .find(|t| Some(t.arn.as_str()) == ours)
        .or_else(|| live.iter().find(fits))
        .or_else(|| live.first())
        .copied();
    for extra in live
        .iter()
        .filter(|t| Some(t.arn.as_str()) != keep.map(|k| k.arn.as_str()))
    {
        plan.actions.push(stop(extra, StopReason::ExtraTask));
    }

    match (keep, &want_run) {
        (Some(task), Some(want)) => {
            let delta = task_delta(want, task);
            draft.status.task_arn = Some(task.arn.clone());
            if delta.needs_replacement() {
                plan.actions.push(stop(
                    task,
                    StopReason::Replacing(
                        delta
                            .replace
                            .paths()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                    ),
                ));
                draft.status.phase = Phase::Provisioning;
                draft.status.message = Some(format!("replacing the task: {}", delta.replace));
                draft.condition(
                    ConditionKind::Ready,
                    ConditionStatus::False,
                    "Replacing",
                    String::new(),
                    ctx.now,
                );
                plan.wait = Some(Wait {
                    after_secs: POLL_SECS,
                    reason: "task stopping for replacement".into(),
                });
            } else {
                if delta.needs_tags() {
                    plan.actions.push(Action::TagResource {
                        arn: task.arn.clone(),
                        add: delta.tags_add.clone(),
                        remove: delta.tags_remove.clone(),
                    });
                }
                running_or_starting(&mut draft, &mut plan, task, ctx);
            }
        }
        (Some(task), None) => {
            // The new revision is not registered yet; the task keeps running meanwhile.
            draft.status.task_arn = Some(task.arn.clone());
            running_or_starting(&mut draft, &mut plan, task, ctx);
            if !plan.actions.is_empty() {
                draft.status.phase = Phase::Provisioning;
            }
        }
        (None, _) if stopping => {
            draft.status.phase = Phase::Provisioning;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::False,
                "TaskStopping",
                "waiting for the old task to stop".into(),
                ctx.now,
            );
            plan.wait = Some(Wait {
                after_secs: POLL_SECS,
                reason: "old task stopping".into(),
            });
        }
        (None, want) => launch(
            &mut draft,
            &mut plan,
            observed,
            want.as_ref(),
            secrets_ready,
            ctx,
        ),
    }
    synced(draft, desired, plan, ctx)
}

fn running_or_starting(draft: &mut StatusDraft, plan: &mut Plan, task: &Task, ctx: &Context<'_>) {
    if task.last_status != "RUNNING" {
        draft.status.phase = Phase::Provisioning;
        draft.status.unhealthy_since = None;
        draft.condition(
            ConditionKind::Ready,
            ConditionStatus::False,
            "TaskStarting",
            format!("task is {}", task.last_status),
            ctx.now,
        );
        plan.wait = Some(Wait {
            after_secs: POLL_SECS,
            reason: "task starting".into(),
        });
        return;
    }
    draft.status.phase = Phase::Running;
    let container = ctx.settings.container.as_str();
    let health_checked = ctx
        .template
        .container_definitions
        .iter()
        .any(|c| c.name == container && c.health_check.is_some());
    if !health_checked {
        draft.status.unhealthy_since = None;
        draft.condition(
            ConditionKind::Ready,
            ConditionStatus::True,
            "TaskRunning",
            "no health check in the template: Ready follows RUNNING".into(),
            ctx.now,
        );
        return;
    }
    match task.container_health.get(container).map(String::as_str) {
        Some("HEALTHY") => {
            draft.status.unhealthy_since = None;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::True,
                "Healthy",
                "the agent container reports HEALTHY".into(),
                ctx.now,
            );
        }
        Some("UNHEALTHY") => {
            let since = draft
                .status
                .unhealthy_since
                .as_deref()
                .and_then(spec::parse_rfc3339)
                .map_or(ctx.now, |t| t.unix_timestamp());
            draft.status.unhealthy_since = Some(rfc3339(since));
            let grace = ctx.settings.unhealthy_grace_secs;
            let unhealthy_for = ctx.now.saturating_sub(since);
            if unhealthy_for >= grace {
                // Replaced like a crash: the relaunch counts as a restart, with its backoff.
                plan.actions.push(stop(task, StopReason::Unhealthy));
                draft.condition(
                    ConditionKind::Ready,
                    ConditionStatus::False,
                    "Unhealthy",
                    format!("UNHEALTHY for {unhealthy_for}s, beyond the {grace}s grace: replacing the task"),
                    ctx.now,
                );
                plan.wait = Some(Wait {
                    after_secs: POLL_SECS,
                    reason: "unhealthy task stopping".into(),
                });
            } else {
                draft.condition(
                    ConditionKind::Ready,
                    ConditionStatus::False,
                    "Unhealthy",
                    format!("UNHEALTHY for {unhealthy_for}s; replaced after {grace}s"),
                    ctx.now,
                );
                plan.wait = Some(Wait {
                    after_secs: u64::try_from(grace - unhealthy_for)
                        .unwrap_or(POLL_SECS)
                        .max(1),
                    reason: "unhealthy task within its grace".into(),
                });
            }
        }
        _ => {
            draft.status.unhealthy_since = None;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::False,
                "HealthUnknown",
                "waiting for the agent container's first health check".into(),
                ctx.now,
            );
            plan.wait = Some(Wait {
                after_secs: POLL_SECS,
                reason: "health not reported yet".into(),
            });
        }
    }
}

/// No live task: start one, unless the owner must act first or a crash backoff runs.
fn launch(
    draft: &mut StatusDraft,
    plan: &mut Plan,
    observed: &AgentResources,
    want: Option<&render::RunTask>,
    secrets_ready: bool,
    ctx: &Context<'_>,
) {
    let last_stopped = observed.tasks.iter().find(|t| t.is_stopped());
    if let Some(reason) = last_stopped.and_then(|t| t.stopped_reason.clone()) {
        draft.status.message = Some(format!("last task stopped: {reason}"));
    }
    if !secrets_ready || last_stopped.is_some_and(|t| failed_on_secrets(t) && !secrets_ready) {
        draft.status.phase = Phase::Pending;
        draft.condition(
            ConditionKind::Ready,
            ConditionStatus::False,
            "WaitingForSecrets",
            "the agent's declared secret keys are not all set".into(),
            ctx.now,
        );
        return;
    }
    let Some(want) = want else {
        draft.status.phase = Phase::Provisioning;
        draft.condition(
            ConditionKind::Ready,
            ConditionStatus::False,
            "Provisioning",
            String::new(),
            ctx.now,
        );
        return;
    };
    let attempt = next_attempt(&draft.status, observed);
    let retrying = attempt == draft.status.launch_attempt;
    let mut cause = Launch::Start;
    // A task that stopped on its own (a crash, or a person's StopTask) is restarted, with
    // backoff when it keeps stopping; a stop for lack of secrets is not a crash. A retry of an
    // attempt whose outcome is unknown is no new restart.
    if let Some(task) = last_stopped.filter(|t| {
        !retrying && (stopped_on_its_own(t) || stopped_unhealthy(t)) && !failed_on_secrets(t)
    }) {
        let ran = task.started_at.zip(task.stopped_at).map(|(a, b)| b - a);
        if let Some(wait) = crash_backoff(&draft.status, ran, ctx.now) {
            draft.status.phase = Phase::Failed;
            draft.condition(
                ConditionKind::Ready,
                ConditionStatus::False,
                "CrashBackoff",
                format!("restarting in {wait}s"),
                ctx.now,
            );
            plan.wait = Some(Wait {
                after_secs: wait,
                reason: "crash backoff".into(),
            });
            return;
        }
        let reset = ran.is_some_and(|r| r >= RESTART_RESET_AFTER_SECS);
        draft.observe(
            EventType::Warning,
            "TaskStopped",
            format!(
                "task {} stopped on its own: {}{}",
                task.arn.rsplit('/').next().unwrap_or(&task.arn),
                task.stopped_reason.as_deref().unwrap_or("no reason given"),
                task.stop_code
                    .as_deref()
                    .map(|c| format!(" (stop code {c})"))
                    .unwrap_or_default()
            ),
        );
        draft.status.restarts = if reset { 1 } else { draft.status.restarts + 1 };
        draft.status.last_restart_at = Some(rfc3339(ctx.now));
        cause = Launch::CrashRestart {
            stopped_at: task.stopped_at,
        };
    }
    draft.status.launch_attempt = attempt;
    draft.status.phase = Phase::Provisioning;
    draft.condition(
        ConditionKind::Ready,
        ConditionStatus::False,
        "TaskStarting",
        String::new(),
        ctx.now,
    );
    // The attempt is recorded before RunTask, so a retry after a lost response reuses the
    // launch token and a deliberate relaunch gets a new one.
    if attempt != draft.previous_attempt {
        plan.actions
            .push(Action::UpdateStatus(draft.status.clone()));
    }
    let mut request = want.clone();
    request
        .tags
        .insert(render::tag::LAUNCH_ATTEMPT.to_owned(), attempt.to_string());
    plan.actions.push(Action::RunTask {
        request,
        attempt,
        cause,
    });
}

/// The attempt a launch uses: the one recorded in the status when no task from it was seen
/// (its RunTask may have been lost, and reusing its token makes ECS replay it), else the next.
fn next_attempt(status: &AgentStatus, observed: &AgentResources) -> u64 {
    let recorded = status.launch_attempt.to_string();
    let seen = observed
        .tasks
        .iter()
        .any(|t| t.tags.get(render::tag::LAUNCH_ATTEMPT) == Some(&recorded));
    if status.launch_attempt == 0 || seen {
        status.launch_attempt + 1
    } else {
        status.launch_attempt
    }
}

fn push_tags(
    plan: &mut Plan,
    arn: &str,
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) {
    let delta = tag_delta(want, have, &[]);
    if !delta.is_empty() {
        plan.actions.push(Action::TagResource {
            arn: arn.to_owned(),
            add: delta.add,
            remove: delta.remove,
        });
    }
}

/// Sets `Synced` from whether AWS work remains, then appends the status update.
fn synced(mut draft: StatusDraft, desired: &Desired<'_>, plan: Plan, ctx: &Context<'_>) -> Plan {
    let pending: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.is_aws())
        .map(ToString::to_string)
        .collect();
    if pending.is_empty() && plan.wait.is_none() {
        draft.condition(
            ConditionKind::Synced,
            ConditionStatus::True,
            "Converged",
            String::new(),
            ctx.now,
        );
    } else {
        let message = pending
            .first()
            .cloned()
            .or_else(|| plan.wait.as_ref().map(|w| w.reason.clone()));
        draft.condition(
            ConditionKind::Synced,
            ConditionStatus::False,
            "Reconciling",
            message.unwrap_or_default(),
            ctx.now,
        );
    }
    // A status update already queued before RunTask carries the launch attempt; the final one
    // repeats it with the conditions.
    let queued = plan.actions.iter().rev().find_map(|a| match a {
        Action::UpdateStatus(s) => Some(s.clone()),
        _ => None,
    });
    let previous = queued.as_ref().or(desired.status);
    let changed = previous.is_none_or(|s| !s.same_as(&draft.status));
    let mut plan = plan;
    plan.events = draft.take_events();
    if changed {
        plan.actions.push(Action::UpdateStatus(draft.status));
    }
    plan
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
