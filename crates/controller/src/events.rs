//! ECS task-state events, delivered by EventBridge to an SQS queue: a task that stops on its own
//! is noticed within seconds instead of at the next resync. Each event enqueues its agent; the
//! reconcile then reads AWS as always, so an event only says *when* to look, never *what* to do.
//!
//! EventBridge delivers at least once and out of order: events older than the newest seen for
//! their task (`detail.version`) are dropped as stale. Malformed and foreign events (another
//! cluster, a task clawfleet did not start) are deleted, counted and logged in one line; they
//! never stop the loop. If the queue cannot be read, the resync still converges everything;
//! `/readyz` names the failure and `clawfleet_task_events_queue_errors_total` counts it.
//! Only the leader consumes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use spec::render::{self, Settings};
use tracing::{info, warn};

use crate::runtime::Controller;

/// The `source` and `detail-type` of the events the rule forwards.
pub const SOURCE: &str = "aws.ecs";
pub const DETAIL_TYPE: &str = "ECS Task State Change";

/// Tasks whose newest version is remembered; beyond it the oldest are forgotten (a late
/// duplicate of a forgotten task costs one needless reconcile, nothing more).
const REMEMBERED_TASKS: usize = 100_000;

#[derive(Debug, Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Detail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    task_arn: String,
    cluster_arn: String,
    last_status: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    started_by: Option<String>,
    #[serde(default)]
    stopped_reason: Option<String>,
    version: u64,
}

/// One task-state event, as clawfleet uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    pub agent_id: String,
    pub task_arn: String,
    pub last_status: String,
    pub stopped_reason: Option<String>,
    pub version: u64,
}

/// Why an event was dropped (the `reason` label of `clawfleet_task_events_dropped_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Not the JSON of a task state change.
    Malformed(String),
    /// Another cluster's task, or a task clawfleet did not start.
    Foreign,
    /// Not newer than an event already handled for its task (a duplicate, or out of order).
    Stale,
}

impl Dropped {
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Foreign => "foreign",
            Self::Stale => "stale",
        }
    }
}

/// The newest `detail.version` seen per task.
#[derive(Debug, Default)]
pub struct Versions {
    newest: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl Versions {
    /// Records `version` for `task`; false when it is not newer than the one recorded.
    fn advance(&mut self, task: &str, version: u64) -> bool {
        match self.newest.get_mut(task) {
            Some(seen) if *seen >= version => false,
            Some(seen) => {
                *seen = version;
                true
            }
            None => {
                self.newest.insert(task.to_owned(), version);
                self.order.push_back(task.to_owned());
                while self.order.len() > REMEMBERED_TASKS {
                    if let Some(oldest) = self.order.pop_front() {
                        self.newest.remove(&oldest);
                    }
                }
                true
            }
        }
    }
}

/// The agent a task belongs to: from `startedBy` (`clawfleet/AGENT`), else from its group
/// (`family:clawfleet_{cluster}_{agent}`).
fn agent_of(detail: &Detail, settings: &Settings) -> Option<String> {
    // A purge task's stop wakes its agent's teardown at once; the event only enqueues, and
    // the reconcile reads the purge task apart from the agent's (never as its task).
    let by_started = detail
        .started_by
        .as_deref()
        .and_then(|s| {
            s.strip_prefix("clawfleet/")
                .or_else(|| spec::purge::agent_of_started_by(s))
        })
        .filter(|a| spec::is_label(a));
    let by_group = || {
        detail
            .group
            .as_deref()
            .and_then(|g| g.strip_prefix("family:"))
            .and_then(|f| render::agent_of_family(settings, f))
    };
    by_started.or_else(by_group).map(str::to_owned)
}

/// Reads one message body: the event, or why it is dropped.
///
/// # Errors
/// [`Dropped`] with its reason.
pub fn read(
    body: &str,
    settings: &Settings,
    versions: &mut Versions,
) -> Result<TaskEvent, Dropped> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|e| Dropped::Malformed(e.to_string()))?;
    if envelope.source != SOURCE || envelope.detail_type != DETAIL_TYPE {
        return Err(Dropped::Foreign);
    }
    let detail = envelope.detail;
    let cluster = detail.cluster_arn.rsplit('/').next().unwrap_or_default();
    if cluster != settings.cluster_name() && detail.cluster_arn != settings.cluster {
        return Err(Dropped::Foreign);
    }
    let agent_id = agent_of(&detail, settings).ok_or(Dropped::Foreign)?;
    if !versions.advance(&detail.task_arn, detail.version) {
        return Err(Dropped::Stale);
    }
    Ok(TaskEvent {
        agent_id,
        task_arn: detail.task_arn,
        last_status: detail.last_status,
        stopped_reason: detail.stopped_reason,
        version: detail.version,
    })
}

impl Controller {
    /// Consumes the task-events queue until the task is dropped: each event enqueues its agent,
    /// and every message is deleted once handled.
    pub async fn consume_task_events(self: Arc<Self>, queue: cloud::sqs::Queue) {
        let queue = queue.with_gate(Arc::clone(&self.gate));
        let mut versions = Versions::default();
        let mut failures: u32 = 0;
        loop {
            if !self.is_leader() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let messages = match queue.receive(cloud::sqs::LONG_POLL_SECS).await {
                Ok(messages) => {
                    failures = 0;
                    self.set_task_events_problem(None);
                    messages
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.metrics.task_events_queue_error();
                    self.set_task_events_problem(Some(e.to_string()));
                    let wait = Duration::from_secs(1 << failures.min(6));
                    warn!(error = %e, retry_in = ?wait, "task-events queue unreadable; the resync still converges everything");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let mut handled = Vec::with_capacity(messages.len());
            for message in messages {
                match read(&message.body, &self.settings, &mut versions) {
                    Ok(event) => {
                        info!(
                            agent_id = %event.agent_id,
                            task = %event.task_arn,
                            last_status = %event.last_status,
                            version = event.version,
                            "task event"
                        );
                        self.metrics.task_event(&event.last_status);
                        // The next step of the agent's work (its task started or stopped),
                        // ahead of fresh specs.
                        self.queue.add_follow_up(&event.agent_id);
                    }
                    Err(dropped) => {
                        self.metrics.task_event_dropped(dropped.reason());
                        if let Dropped::Malformed(why) = &dropped {
                            warn!(reason = "malformed", "task event dropped: {why}");
                        }
                    }
                }
                handled.push(message.receipt_handle);
            }
            if let Err(e) = queue.delete(&handled).await {
                warn!(error = %e, "task events not deleted; they come back and are handled again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    const SAMPLE: &str = include_str!("../fixtures/ecs-task-state-change.json");

    fn settings() -> Settings {
        plan::fixtures::settings()
    }

    /// The documented sample, as one of this installation's agents' tasks.
    fn ours(version: u64, last_status: &str) -> String {
        let mut event: serde_json::Value = serde_json::from_str(SAMPLE).expect("the sample");
        let detail = &mut event["detail"];
        detail["clusterArn"] = "arn:aws:ecs:us-east-1:123456789012:cluster/dev".into();
        detail["taskArn"] = "arn:aws:ecs:us-east-1:123456789012:task/dev/1111".into();
        detail["startedBy"] = "clawfleet/acme-support".into();
        detail["lastStatus"] = last_status.into();
        detail["version"] = version.into();
        event.to_string()
    }

    #[test]
    fn the_documented_sample_parses_and_is_foreign_to_another_cluster() {
        let mut versions = Versions::default();
        assert_eq!(
            read(SAMPLE, &settings(), &mut versions),
            Err(Dropped::Foreign)
        );
    }

    #[test]
    fn an_event_of_an_agents_task_names_the_agent() {
        let mut versions = Versions::default();
        let event = read(&ours(4, "STOPPED"), &settings(), &mut versions).expect("ours");
        assert_eq!(event.agent_id, "acme-support");
        assert_eq!(event.last_status, "STOPPED");
    }

    #[test]
    fn a_purge_tasks_event_wakes_its_agent() {
        let mut event: serde_json::Value = serde_json::from_str(&ours(1, "STOPPED")).unwrap();
        event["detail"]["startedBy"] = "purge/acme-support".into();
        let read = read(&event.to_string(), &settings(), &mut Versions::default()).unwrap();
        assert_eq!(read.agent_id, "acme-support");
    }

    #[test]
    fn the_group_names_the_agent_when_started_by_does_not() {
        let mut event: serde_json::Value = serde_json::from_str(&ours(1, "RUNNING")).expect("json");
        event["detail"]["startedBy"] = serde_json::Value::Null;
        event["detail"]["group"] = "family:clawfleet_dev_acme-support".into();
        let mut versions = Versions::default();
        let read = read(&event.to_string(), &settings(), &mut versions).expect("ours");
        assert_eq!(read.agent_id, "acme-support");
    }

    #[test]
    fn duplicates_and_older_versions_are_stale() {
        let mut versions = Versions::default();
        assert!(read(&ours(5, "RUNNING"), &settings(), &mut versions).is_ok());
        assert_eq!(
            read(&ours(5, "RUNNING"), &settings(), &mut versions),
            Err(Dropped::Stale)
        );
        assert_eq!(
            read(&ours(3, "PENDING"), &settings(), &mut versions),
            Err(Dropped::Stale)
        );
        assert!(read(&ours(6, "STOPPED"), &settings(), &mut versions).is_ok());
    }

    #[test]
    fn malformed_and_foreign_bodies_are_dropped_with_their_reason() {
        let mut versions = Versions::default();
        let cases = [
            ("not json", "malformed"),
            (r#"{"source":"aws.ecs"}"#, "malformed"),
            (
                &ours(1, "RUNNING").replace(
                    "ECS Task State Change",
                    "ECS Container Instance State Change",
                ),
                "foreign",
            ),
            (
                &ours(1, "RUNNING").replace("clawfleet/acme-support", "someone-else"),
                "foreign",
            ),
        ];
        for (body, reason) in cases {
            let dropped = read(body, &settings(), &mut versions).expect_err(body);
            assert_eq!(dropped.reason(), reason, "{body}");
        }
    }
}
