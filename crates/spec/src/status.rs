//! What the controller reports about an Agent: the `record = "status"` item.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Provisioning,
    Running,
    Stopping,
    Stopped,
    Failed,
    Deleting,
    // Stopped because the schedule says so (reason `OutsideSchedule`); `next_start_at` says
    // when it runs again. (Plain comments: doc comments would split the schema's enum.)
    Scheduled,
    // Stopped after `idle_stop_after` without activity, until a wake or activity.
    Idle,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::Provisioning,
        Phase::Running,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Failed,
        Phase::Deleting,
        Phase::Scheduled,
        Phase::Idle,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Provisioning => "Provisioning",
            Self::Running => "Running",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
            Self::Scheduled => "Scheduled",
            Self::Idle => "Idle",
        }
    }
}

/// Kubernetes-style condition truth value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The kinds of condition the controller reports, as ACK's `conditions.go` names its own: a
/// closed set, so that code decides on a variant and never on a wording.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ConditionKind {
    /// The spec item validates; False names the field.
    SpecValid,
    /// Every key in `secret_keys` is recorded in the agent's secret.
    SecretsReady,
    /// AWS matches the spec (no action pending).
    Synced,
    /// The agent's task is running.
    Ready,
}

impl ConditionKind {
    /// Every kind, in the order `describe` prints them.
    pub const ALL: [ConditionKind; 4] = [
        ConditionKind::SpecValid,
        ConditionKind::SecretsReady,
        ConditionKind::Synced,
        ConditionKind::Ready,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpecValid => "SpecValid",
            Self::SecretsReady => "SecretsReady",
            Self::Synced => "Synced",
            Self::Ready => "Ready",
        }
    }
}

impl std::fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation about the agent, of one [`ConditionKind`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionKind,
    pub status: ConditionStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default)]
    pub time: String,
}

/// Whether an event is routine or needs someone's attention, as Kubernetes Events say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    Normal,
    Warning,
}

/// How many events the status keeps, newest last: the item stays far below DynamoDB's 400 KB.
pub const MAX_EVENTS: usize = 20;
/// Characters of an event message kept (longer ones end in `...`).
pub const MAX_EVENT_MESSAGE: usize = 256;

/// Something that happened to the agent, like a Kubernetes Event: repeats are folded into one
/// entry whose `count` grows and whose `last_time` moves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AgentEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub count: u32,
    /// When it first happened (RFC 3339).
    pub first_time: String,
    /// When it last happened (RFC 3339).
    pub last_time: String,
}

/// The status item. Written by the controller only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatus {
    #[serde(default)]
    pub phase: Phase,
    /// The tenant that owns the agent, recorded by the controller at the agent's first
    /// reconcile and never changed after. When present it, not the spec's `client_id` (which a
    /// console edit can change), decides who may see the agent. The status item stores it as
    /// `owner_client_id`, which keeps status items out of the `by-client` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_spec_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// The task role the agent's revision names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// `per-agent` (the agent's own role, which may mount only its own access point) or
    /// `template` (the template's role, shared by every agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    /// The `ClientToken` of a CreateAccessPoint whose answer was not seen, stored before the
    /// call as the launch attempt is before RunTask: the retry sends it again, so EFS answers
    /// with the access point the first call made. Cleared once the access point is seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_at: Option<String>,
    #[serde(default)]
    pub launch_attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Since when the agent container has reported UNHEALTHY (RFC 3339), while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<String>,
    /// When the agent's next schedule window opens (RFC 3339), while it is `Scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<String>,
    /// The data purge of a deletion with `purge_data_on_delete`, kept here so a controller
    /// restart mid-purge finds its task again and counts its timeout from the real start.
    #[serde(default, skip_serializing_if = "Purge::is_empty")]
    pub purge: Purge,
    /// What happened to the agent, oldest first, at most [`MAX_EVENTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AgentEvent>,
}

/// Where a deletion's data purge stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Purge {
    /// The purge launch attempt, recorded before its RunTask: its launch token derives from it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u64,
    /// The purge task of the current attempt, once seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// When the current attempt was launched (RFC 3339): `--purge-timeout` counts from here,
    /// also while the image is still being pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Failed attempts in a row; the retry backs off with them.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub failures: u32,
    /// When the last attempt failed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    /// The `--purge-image` the newest purge revision was registered with: a new image gets a
    /// new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When the purge task exited 0 (RFC 3339): from then on the access point may go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl Purge {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl AgentStatus {
    /// Records an event at `now`: the same reason and message as the newest event folds into
    /// it; the oldest go beyond [`MAX_EVENTS`].
    pub fn record(&mut self, kind: EventType, reason: &str, message: &str, now: &str) {
        let message = if message.chars().count() > MAX_EVENT_MESSAGE {
            let cut: String = message.chars().take(MAX_EVENT_MESSAGE - 3).collect();
            format!("{cut}...")
        } else {
            message.to_owned()
        };
        if let Some(last) = self.events.last_mut()
            && last.kind == kind
            && last.reason == reason
            && last.message == message
        {
            last.count = last.count.saturating_add(1);
            now.clone_into(&mut last.last_time);
            return;
        }
        self.events.push(AgentEvent {
            kind,
            reason: reason.to_owned(),
            message,
            count: 1,
            first_time: now.to_owned(),
            last_time: now.to_owned(),
        });
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }

    /// The condition of this type, if reported.
    #[must_use]
    pub fn condition(&self, kind: ConditionKind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Whether two statuses say the same thing, ignoring when they were written.
    #[must_use]
    pub fn same_as(&self, other: &AgentStatus) -> bool {
        // Field by field, not on stripped copies: the planner asks this of every agent at every
        // resync, and two copies of each status were a twentieth of the resync's CPU. The
        // pattern names every field, so a new one cannot be left out of the comparison.
        let AgentStatus {
            phase,
            client_id,
            observed_spec_hash,
            cluster,
            file_system_id,
            task_arn,
            task_definition_arn,
            task_role_arn,
            task_role_mode,
            access_point_id,
            access_point_token,
            secret_arn,
            conditions,
            message,
            restarts,
            last_restart_at,
            launch_attempt,
            updated_at: _,
            unhealthy_since,
            next_start_at,
            purge,
            events,
        } = self;
        *phase == other.phase
            && *client_id == other.client_id
            && *observed_spec_hash == other.observed_spec_hash
            && *cluster == other.cluster
            && *file_system_id == other.file_system_id
            && *task_arn == other.task_arn
            && *task_definition_arn == other.task_definition_arn
            && *task_role_arn == other.task_role_arn
            && *task_role_mode == other.task_role_mode
            && *access_point_id == other.access_point_id
            && *access_point_token == other.access_point_token
            && *secret_arn == other.secret_arn
            && *conditions == other.conditions
            && *message == other.message
            && *restarts == other.restarts
            && *last_restart_at == other.last_restart_at
            && *launch_attempt == other.launch_attempt
            && *unhealthy_since == other.unhealthy_since
            && *next_start_at == other.next_start_at
            && *purge == other.purge
            && *events == other.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_ignores_only_when_a_status_was_written() {
        let base = AgentStatus {
            phase: Phase::Running,
            task_arn: Some("t1".into()),
            updated_at: Some("2026-01-01T00:00:00Z".into()),
            ..AgentStatus::default()
        };
        let rewritten = AgentStatus {
            updated_at: Some("2026-01-02T00:00:00Z".into()),
            ..base.clone()
        };
        assert!(base.same_as(&rewritten));
        let mut evented = base.clone();
        evented.record(EventType::Normal, "TaskLaunched", "task 2", "t4");
        let changes = [
            AgentStatus {
                phase: Phase::Provisioning,
                ..base.clone()
            },
            AgentStatus {
                task_arn: Some("t2".into()),
                ..base.clone()
            },
            AgentStatus {
                launch_attempt: 1,
                ..base.clone()
            },
            AgentStatus {
                next_start_at: Some("2026-01-03T00:00:00Z".into()),
                ..base.clone()
            },
            evented,
        ];
        for changed in changes {
            assert!(!base.same_as(&changed), "{changed:?}");
            assert!(!changed.same_as(&base), "{changed:?}");
        }
    }

    #[test]
    fn a_repeated_event_folds_and_counts_up() {
        let mut status = AgentStatus::default();
        status.record(EventType::Warning, "Throttled", "ECS RunTask", "t1");
        status.record(EventType::Warning, "Throttled", "ECS RunTask", "t2");
        status.record(EventType::Warning, "Throttled", "ECS RunTask", "t3");
        assert_eq!(status.events.len(), 1);
        let event = &status.events[0];
        assert_eq!(
            (
                event.count,
                event.first_time.as_str(),
                event.last_time.as_str()
            ),
            (3, "t1", "t3")
        );
        // Another event in between starts a new entry.
        status.record(EventType::Normal, "TaskLaunched", "task 2", "t4");
        status.record(EventType::Warning, "Throttled", "ECS RunTask", "t5");
        assert_eq!(status.events.len(), 3);
    }

    #[test]
    fn a_long_history_keeps_the_newest_events_and_bounded_messages() {
        let mut status = AgentStatus::default();
        for i in 0..(MAX_EVENTS + 15) {
            status.record(EventType::Normal, "TaskLaunched", &format!("task {i}"), "t");
        }
        assert_eq!(status.events.len(), MAX_EVENTS);
        assert_eq!(status.events[0].message, "task 15", "the oldest went first");
        status.record(EventType::Warning, "TaskStopped", &"x".repeat(5000), "t");
        let last = status.events.last().map(|e| e.message.chars().count());
        assert_eq!(last, Some(MAX_EVENT_MESSAGE));
    }
}
