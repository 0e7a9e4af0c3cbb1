//! What a reconcile that ended waiting on AWS saw of its agent's resources. While a task starts
//! or stops, only the task changes; the agent's next reconcile (its poll, or the task's event)
//! reads the tasks again (ListTasks, DescribeTasks) and takes the rest from here, instead of
//! reading the access point, the secret, the revisions and the role once more. In a rollout of
//! 100 replacements at once those reads (IAM and EFS publish no rates, so their buckets are
//! small) held every poll back.
//!
//! What is taken from here is never trusted for a create: the reconciler reads everything
//! afresh before creating anything, as it does with a resync's snapshot. And it is kept for at
//! most [`TTL`] after it was read in full, so a change made by hand to a waiting agent's other
//! resources is seen within that time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use plan::observed::AgentResources;
use tokio::time::Instant;

/// How long after a full read the resources besides the tasks are used again.
pub const TTL: Duration = Duration::from_secs(60);

/// Per agent: when its resources were last read in full, and what was seen then (its tasks
/// left out: they are always read again).
#[derive(Debug, Default)]
pub struct LastSeen {
    by_agent: Mutex<HashMap<String, (Instant, AgentResources)>>,
}

impl LastSeen {
    fn map(&self) -> MutexGuard<'_, HashMap<String, (Instant, AgentResources)>> {
        self.by_agent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps what `observed` shows besides its tasks, read in full at `read_at`.
    pub fn keep(&self, agent_id: &str, observed: &AgentResources, read_at: Instant) {
        let kept = AgentResources {
            tasks: Vec::new(),
            ..observed.clone()
        };
        self.map().insert(agent_id.to_owned(), (read_at, kept));
    }

    /// What was kept for the agent, with when it was read in full, unless older than [`TTL`];
    /// either way it is no longer kept.
    pub fn take(&self, agent_id: &str) -> Option<(Instant, AgentResources)> {
        let (read_at, kept) = self.map().remove(agent_id)?;
        (read_at.elapsed() <= TTL).then_some((read_at, kept))
    }

    pub fn forget(&self, agent_id: &str) {
        self.map().remove(agent_id);
    }

    /// Drops what is older than [`TTL`]. An agent waiting in a long queue (a cold start of
    /// 100,000 agents) is not reconciled again for many minutes, and until then its entry,
    /// of no use any more, held its whole resources: over 1 KiB an agent, most of the
    /// controller's heap during such a cold start. The resync calls it.
    pub fn expire(&self) {
        self.map()
            .retain(|_, (read_at, _)| read_at.elapsed() <= TTL);
    }

    /// Agents with something kept.
    #[must_use]
    pub fn agents(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::observed::{Secret, Task};

    fn observed() -> AgentResources {
        AgentResources {
            tasks: vec![Task {
                arn: "t1".into(),
                ..Task::default()
            }],
            secret: Some(Secret {
                arn: "s1".into(),
                ..Secret::default()
            }),
            ..AgentResources::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_kept_leaves_the_tasks_out_and_is_taken_once() {
        let seen = LastSeen::default();
        seen.keep("a1", &observed(), Instant::now());
        let (_, kept) = seen.take("a1").unwrap();
        assert!(kept.tasks.is_empty(), "tasks are always read again");
        assert_eq!(kept.secret.map(|s| s.arn).as_deref(), Some("s1"));
        assert!(seen.take("a1").is_none(), "taken once");
        assert!(seen.take("a2").is_none(), "per agent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_read_older_than_the_ttl_is_not_used() {
        let seen = LastSeen::default();
        let read_at = Instant::now();
        seen.keep("a1", &observed(), read_at);
        tokio::time::advance(TTL).await;
        assert!(seen.take("a1").is_some(), "at the TTL: still used");
        // Kept again by a reconcile that did not read in full: the time of the full read stays.
        seen.keep("a1", &observed(), read_at);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(seen.take("a1").is_none(), "past the TTL");
        assert_eq!(seen.agents(), 0, "and no longer kept");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_drops_only_what_is_past_the_ttl() {
        let seen = LastSeen::default();
        seen.keep("old", &observed(), Instant::now());
        tokio::time::advance(Duration::from_secs(30)).await;
        seen.keep("recent", &observed(), Instant::now());
        tokio::time::advance(Duration::from_secs(30)).await;
        seen.expire();
        assert_eq!(seen.agents(), 2, "both at or within the TTL");
        tokio::time::advance(Duration::from_millis(1)).await;
        seen.expire();
        assert_eq!(seen.agents(), 1, "the older one is past it");
        assert!(seen.take("old").is_none());
        assert!(seen.take("recent").is_some());
    }
}
