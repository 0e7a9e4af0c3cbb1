//! The closed vocabulary of what a reconcile may do. Each action carries, as data, everything
//! the executor needs to decide how to carry it out: the executor never reads back a message,
//! a reason or a tag that `plan` wrote.

use std::collections::BTreeMap;
use std::fmt;

use spec::AgentStatus;
use spec::render;

use crate::delta::Delta;

/// Why clawfleet stops a task. ECS shows [`StopReason`]'s text as the task's `stoppedReason`,
/// always behind [`crate::STOP_REASON_PREFIX`], so that clawfleet's own stops are never taken
/// for crashes when the task is observed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `desired_state` is `stopped`.
    DesiredStopped,
    /// The schedule's windows are closed.
    OutsideSchedule,
    /// No activity for `idle_stop_after`.
    Idle,
    /// The agent is being deleted, or its spec is gone (garbage collection).
    Deleted,
    /// More than one live task for one agent: drift, the extras go.
    ExtraTask,
    /// The running task no longer matches the spec; these fields differ. Takes a rollout slot.
    Replacing(Vec<String>),
    /// The agent container stayed UNHEALTHY beyond its grace period: replaced like a crash.
    Unhealthy,
    /// A data purge task ran beyond `--purge-timeout`: it counts as failed.
    PurgeTimeout,
}

impl StopReason {
    /// Whether this stop is a replacement, which rollout pacing limits.
    #[must_use]
    pub fn is_replacement(&self) -> bool {
        matches!(self, Self::Replacing(_))
    }

    /// Whether this stop corrects drift (something happened behind clawfleet's back).
    #[must_use]
    pub fn is_drift(&self) -> bool {
        matches!(self, Self::ExtraTask)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::STOP_REASON_PREFIX)?;
        match self {
            Self::DesiredStopped => f.write_str("desired_state is stopped"),
            Self::OutsideSchedule => f.write_str("outside the schedule's windows"),
            Self::Idle => f.write_str("idle"),
            Self::Deleted => f.write_str("agent deleted"),
            Self::ExtraTask => f.write_str("more than one task for this agent"),
            Self::Replacing(paths) => write!(f, "replacing: {}", paths.join(", ")),
            Self::Unhealthy => f.write_str("unhealthy beyond its grace period"),
            Self::PurgeTimeout => f.write_str("data purge beyond its timeout"),
        }
    }
}

/// Why a task is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// No task ran for this spec yet, or the last one was stopped by clawfleet (a replacement).
    Start,
    /// The last task stopped on its own (a crash, or a person's StopTask): a drift correction,
    /// counted in `restarts`. `stopped_at` (seconds since the epoch) times the relaunch.
    CrashRestart { stopped_at: Option<i64> },
}

/// One step of a plan. Steps run in order; each mutating step names the AWS call it makes.
// A plan holds a handful of actions for one agent: the status carried by value costs a few
// hundred bytes per step, while a box would add an indirection to every rule and test.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// EFS CreateAccessPoint.
    CreateAccessPoint(render::AccessPoint),
    /// IAM CreateRole with the permissions boundary, then PutRolePolicy of its one inline
    /// policy.
    CreateRole(render::Role),
    /// IAM PutRolePolicy and/or PutRolePermissionsBoundary of a role changed behind
    /// clawfleet's back (each `Some` is put back).
    UpdateRole {
        name: String,
        policy: Option<String>,
        permissions_boundary: Option<String>,
    },
    /// IAM DeleteRolePolicy, then DeleteRole.
    DeleteRole { name: String },
    /// Secrets Manager CreateSecret (no value), or RestoreSecret of the same tenant's secret
    /// still in its recovery window.
    CreateSecret(render::Secret),
    /// ECS RegisterTaskDefinition, because the rendered content differs from the newest
    /// revision (`changes` says how).
    RegisterTaskDefinition {
        definition: render::TaskDefinition,
        tags: BTreeMap<String, String>,
        changes: Delta,
    },
    /// ECS RunTask. `attempt` is the launch attempt, already recorded in the status by an
    /// earlier [`Action::UpdateStatus`] of the same plan; the launch token derives from it.
    RunTask {
        request: render::RunTask,
        attempt: u64,
        cause: Launch,
    },
    /// ECS RegisterTaskDefinition of the agent's purge revision, at low priority in the
    /// shared bucket so that it yields to the revisions new agents wait for.
    RegisterPurgeTaskDefinition {
        definition: render::TaskDefinition,
        tags: BTreeMap<String, String>,
    },
    /// ECS RunTask of the purge revision. `attempt` is the purge attempt, already recorded in
    /// the status by an earlier [`Action::UpdateStatus`] of the same plan; the launch token
    /// derives from it.
    RunPurgeTask {
        request: render::RunTask,
        attempt: u64,
    },
    /// ECS StopTask.
    StopTask {
        task_arn: String,
        reason: StopReason,
    },
    /// TagResource / UntagResource on an ECS task, EFS access point or secret, in place.
    TagResource {
        arn: String,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// ECS DeregisterTaskDefinition of a revision no task uses.
    DeregisterTaskDefinition { arn: String },
    /// EFS DeleteAccessPoint; the files under it stay.
    DeleteAccessPoint { id: String },
    /// Secrets Manager DeleteSecret with a recovery window.
    DeleteSecret { arn: String },
    /// DynamoDB DeleteItem of the agent's spec and status items.
    DeleteItems,
    /// DynamoDB PutItem of the status item.
    UpdateStatus(AgentStatus),
}

impl Action {
    /// Whether the step changes AWS (as opposed to the status).
    #[must_use]
    pub fn is_aws(&self) -> bool {
        !matches!(self, Self::UpdateStatus(_) | Self::DeleteItems)
    }

    /// Whether the step creates something, which calls for a fresh read of the agent first.
    #[must_use]
    pub fn is_create(&self) -> bool {
        matches!(
            self,
            Self::CreateAccessPoint(_)
                | Self::CreateRole(_)
                | Self::CreateSecret(_)
                | Self::RegisterTaskDefinition { .. }
                | Self::RunTask { .. }
                | Self::RegisterPurgeTaskDefinition { .. }
                | Self::RunPurgeTask { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateAccessPoint(ap) => write!(
                f,
                "create access point {} on {} (uid {}, gid {})",
                ap.root_path, ap.file_system_id, ap.posix_uid, ap.posix_gid
            ),
            Self::CreateSecret(s) => write!(f, "create secret {}", s.name),
            Self::CreateRole(r) => write!(
                f,
                "create task role {}{} (boundary {}) allowed to mount only its own access point",
                r.path, r.name, r.permissions_boundary
            ),
            Self::UpdateRole {
                name,
                policy,
                permissions_boundary,
            } => {
                let mut what = Vec::new();
                if policy.is_some() {
                    what.push("its policy");
                }
                if permissions_boundary.is_some() {
                    what.push("its permissions boundary");
                }
                write!(f, "put back task role {name}'s {}", what.join(" and "))
            }
            Self::DeleteRole { name } => write!(f, "delete task role {name} and its policy"),
            Self::RegisterTaskDefinition {
                definition,
                changes,
                ..
            } => {
                if changes.is_empty() {
                    write!(
                        f,
                        "register task definition {} (first revision)",
                        definition.family
                    )
                } else {
                    write!(
                        f,
                        "register task definition {} ({changes})",
                        definition.family
                    )
                }
            }
            Self::RunTask { request, .. } => write!(
                f,
                "run task {} cpu {} memory {} in {}",
                request.task_definition,
                request.overrides.cpu,
                request.overrides.memory,
                request.cluster
            ),
            Self::RegisterPurgeTaskDefinition { definition, .. } => write!(
                f,
                "register purge task definition {} (low priority)",
                definition.family
            ),
            Self::RunPurgeTask { request, attempt } => write!(
                f,
                "run purge task {} (attempt {attempt}) to erase the agent's files",
                request.task_definition
            ),
            Self::StopTask { task_arn, reason } => write!(f, "stop task {task_arn} ({reason})"),
            Self::TagResource { arn, add, remove } => {
                let add: Vec<String> = add.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "tag {arn}")?;
                if !add.is_empty() {
                    write!(f, " set {}", add.join(","))?;
                }
                if !remove.is_empty() {
                    write!(f, " remove {}", remove.join(","))?;
                }
                Ok(())
            }
            Self::DeregisterTaskDefinition { arn } => write!(f, "deregister task definition {arn}"),
            Self::DeleteAccessPoint { id } => {
                write!(
                    f,
                    "delete access point {id} (its files stay on the file system)"
                )
            }
            Self::DeleteSecret { arn } => write!(f, "delete secret {arn} (with recovery window)"),
            Self::DeleteItems => f.write_str("delete the spec and status items"),
            Self::UpdateStatus(s) => {
                write!(f, "update status: phase {}", s.phase.as_str())?;
                if let Some(m) = &s.message {
                    write!(f, ", {m}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why and how long to wait before looking again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub after_secs: u64,
    /// For people (logs, `plan`); nothing decides on it.
    pub reason: String,
}

/// Something the plan saw happen, for the agent's event history (`describe`'s Events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: spec::EventType,
    pub reason: String,
    pub message: String,
}

/// What to do about one agent now, and whether to look again soon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Transitions of the agent's conditions and what the plan observed (a task that stopped on
    /// its own), recorded in the status's event history when the plan is carried out.
    pub events: Vec<Event>,
    /// `Some` when progress depends on AWS finishing something (a task stopping, a crash
    /// backoff); `None` means wait for a change.
    pub wait: Option<Wait>,
    /// Seconds until the agent's effective state changes on its own (a schedule window
    /// opening or closing, the idle deadline): look again then. Not work: a full resync round
    /// does not enqueue for it (the controller's view keeps the time, and a light round
    /// enqueues the agent when it comes).
    pub revisit_after_secs: Option<u64>,
}

impl Plan {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Whether the plan asks to look again, now or later: the resync enqueues such agents.
    #[must_use]
    pub fn has_work(&self) -> bool {
        !self.actions.is_empty() || self.wait.is_some()
    }
}
