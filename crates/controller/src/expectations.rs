//! Expectations, as in Kubernetes controllers: every create is remembered until a listing
//! shows it or it times out, because listings lag behind writes and a create that a lagging
//! listing does not show yet must not be made twice.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use plan::observed::{AccessPoint, AgentResources, Role, Secret, Task, TaskDefinitionRevision};
use tokio::time::Instant;

/// How long a create is trusted without being observed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
enum Created {
    AccessPoint(AccessPoint),
    Secret(Secret),
    Revision(TaskDefinitionRevision),
    Task(Task),
    Role(Role),
}

#[derive(Debug)]
struct Expected {
    created: Created,
    until: Instant,
}

/// Creates not yet observed, per agent.
#[derive(Debug)]
pub struct Expectations {
    ttl: Duration,
    by_agent: Mutex<HashMap<String, Vec<Expected>>>,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl Expectations {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_agent: Mutex::new(HashMap::new()),
        }
    }

    /// The map, recovered from a poisoned lock: every update leaves it consistent, and a lost
    /// expectation would mean a duplicate create.
    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<Expected>>> {
        self.by_agent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, agent_id: &str, created: Created) {
        self.map()
            .entry(agent_id.to_owned())
            .or_default()
            .push(Expected {
                created,
                until: Instant::now() + self.ttl,
            });
    }

    pub fn access_point(&self, agent_id: &str, ap: &AccessPoint) {
        self.add(agent_id, Created::AccessPoint(ap.clone()));
    }
    pub fn secret(&self, agent_id: &str, secret: &Secret) {
        self.add(agent_id, Created::Secret(secret.clone()));
    }
    pub fn revision(&self, agent_id: &str, revision: &TaskDefinitionRevision) {
        self.add(agent_id, Created::Revision(revision.clone()));
    }
    pub fn task(&self, agent_id: &str, task: &Task) {
        self.add(agent_id, Created::Task(task.clone()));
    }
    pub fn role(&self, agent_id: &str, role: &Role) {
        self.add(agent_id, Created::Role(role.clone()));
    }

    /// Adds to `observed` what was created and is not listed yet; forgets what is listed now
    /// or has expired.
    pub fn merge(&self, agent_id: &str, observed: &mut AgentResources) {
        let mut map = self.map();
        let Some(expected) = map.get_mut(agent_id) else {
            return;
        };
        let now = Instant::now();
        expected.retain(|e| {
            if e.until <= now {
                return false;
            }
            match &e.created {
                Created::AccessPoint(ap) => {
                    if observed.access_points.iter().any(|o| o.id == ap.id) {
                        return false;
                    }
                    observed.access_points.push(ap.clone());
                }
                Created::Secret(s) => {
                    if observed.secret.as_ref().is_some_and(|o| o.arn == s.arn) {
                        return false;
                    }
                    if observed.secret.as_ref().is_none_or(|o| o.deleted) {
                        observed.secret = Some(s.clone());
                    }
                }
                Created::Revision(r) => {
                    let latest = observed.latest_revision.as_ref();
                    if latest.is_some_and(|l| l.revision >= r.revision) {
                        return false;
                    }
                    if let Some(old) = observed.latest_revision.replace(r.clone()) {
                        observed.older_revisions.push(old.arn);
                    }
                }
                Created::Role(r) => {
                    if observed.role.as_ref().is_some_and(|o| o.name == r.name) {
                        return false;
                    }
                    observed.role = Some(r.clone());
                }
                Created::Task(t) => {
                    if observed.tasks.iter().any(|o| o.arn == t.arn) {
                        return false;
                    }
                    observed.tasks.insert(0, t.clone());
                }
            }
            true
        });
        if expected.is_empty() {
            map.remove(agent_id);
        }
    }

    /// Forgets an agent (deleted).
    pub fn forget(&self, agent_id: &str) {
        self.map().remove(agent_id);
    }

    /// Drops every expired expectation. [`Expectations::merge`] drops them only for the agent
    /// it reconciles, and a converged agent may not be reconciled again for months: without
    /// this, each one kept copies of its five creates (a revision's whole content among them).
    /// The resync calls it.
    pub fn expire(&self) {
        let now = Instant::now();
        self.map().retain(|_, expected| {
            expected.retain(|e| e.until > now);
            !expected.is_empty()
        });
    }

    /// Agents with creates not yet observed.
    #[must_use]
    pub fn agents(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(arn: &str) -> Task {
        Task {
            arn: arn.into(),
            last_status: "PROVISIONING".into(),
            desired_status: "RUNNING".into(),
            ..Task::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_not_yet_listed_is_added_to_the_observation() {
        let e = Expectations::new(Duration::from_secs(60));
        e.task("a1", &task("t1"));
        let mut observed = AgentResources::default();
        e.merge("a1", &mut observed);
        assert_eq!(observed.tasks.len(), 1);
        let mut other = AgentResources::default();
        e.merge("a2", &mut other);
        assert!(other.tasks.is_empty(), "expectations are per agent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_listed_create_is_forgotten() {
        let e = Expectations::new(Duration::from_secs(60));
        e.task("a1", &task("t1"));
        let mut observed = AgentResources {
            tasks: vec![task("t1")],
            ..AgentResources::default()
        };
        e.merge("a1", &mut observed);
        assert_eq!(observed.tasks.len(), 1, "not added twice");
        let mut later = AgentResources::default();
        e.merge("a1", &mut later);
        assert!(later.tasks.is_empty(), "forgotten once observed");
    }

    #[tokio::test(start_paused = true)]
    async fn expire_drops_what_expired_for_every_agent_and_keeps_the_rest() {
        let e = Expectations::new(Duration::from_secs(60));
        e.task("a1", &task("t1"));
        e.task("a2", &task("t2"));
        tokio::time::advance(Duration::from_secs(30)).await;
        e.task("a2", &task("t3"));
        e.expire();
        assert_eq!(e.agents(), 2, "nothing expired yet");
        tokio::time::advance(Duration::from_secs(31)).await;
        e.expire();
        assert_eq!(e.agents(), 1, "a1's only create expired");
        let mut observed = AgentResources::default();
        e.merge("a2", &mut observed);
        let arns: Vec<&str> = observed.tasks.iter().map(|t| t.arn.as_str()).collect();
        assert_eq!(arns, ["t3"], "a2 keeps its unexpired create");
        tokio::time::advance(Duration::from_secs(30)).await;
        e.expire();
        assert_eq!(e.agents(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expectation_expires() {
        let e = Expectations::new(Duration::from_secs(60));
        e.task("a1", &task("t1"));
        tokio::time::advance(Duration::from_secs(61)).await;
        let mut observed = AgentResources::default();
        e.merge("a1", &mut observed);
        assert!(observed.tasks.is_empty());
    }
}
