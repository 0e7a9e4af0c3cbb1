//! The closed vocabulary of what a reconcile may do.

use std::collections::BTreeMap;
use std::fmt;

use spec::AgentStatus;
use spec::render;

use crate::delta::Delta;

/// One step of a plan. Steps run in order; each mutating step names the AWS call it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// EFS CreateAccessPoint.
    CreateAccessPoint(render::AccessPoint),
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
    /// ECS RunTask.
    RunTask(render::RunTask),
    /// ECS StopTask.
    StopTask { task_arn: String, reason: String },
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
            Self::RunTask(r) => write!(
                f,
                "run task {} cpu {} memory {} in {}",
                r.task_definition, r.overrides.cpu, r.overrides.memory, r.cluster
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
    pub reason: String,
}

/// What to do about one agent now, and whether to look again soon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// `Some` when progress depends on AWS finishing something (a task stopping, a crash
    /// backoff); `None` means wait for a change.
    pub wait: Option<Wait>,
}

impl Plan {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}
