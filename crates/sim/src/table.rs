//! The simulated DynamoDB table: agents' spec and status items in memory, the
//! [`StatusStore`] port the reconciler writes through, the resync's Scan, a latency per
//! request, and a count of requests. Items are parsed as the table's are
//! ([`SpecItem::of_document`]). It lives on the fake's side of the heap count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use controller::status::StatusStore;
use spec::{AgentSpec, AgentStatus, Meta, Phase};
use store::{Agent, Snapshot, SpecItem, StoreError};

use crate::heap::outside;

/// Items a Scan page holds: 1 MB of items of about 1 KB.
const SCAN_PAGE: usize = 1000;

#[derive(Debug)]
pub struct Table {
    agents: Mutex<HashMap<String, Agent>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Agents whose items changed since the last [`Table::take_changes`]: what the table's
    /// stream shows the controller's watch.
    changes: Mutex<HashSet<String>>,
    /// When the last agent turned Running on its spec: the exact end of a convergence, which
    /// the sampled curve only brackets.
    last_turned_running: Mutex<Option<tokio::time::Instant>>,
    /// One request's latency.
    latency: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    #[must_use]
    pub fn new(latency: Duration) -> Self {
        Self {
            agents: Mutex::default(),
            last_turned_running: Mutex::default(),
            counts: Mutex::default(),
            changes: Mutex::default(),
            latency,
        }
    }

    async fn request(&self, operation: &'static str, n: u64) {
        outside(|| *lock(&self.counts).entry(operation).or_default() += n);
        tokio::time::sleep(self.latency * u32::try_from(n).unwrap_or(u32::MAX)).await;
    }

    /// Requests by operation.
    #[must_use]
    pub fn call_counts(&self) -> BTreeMap<&'static str, u64> {
        outside(|| lock(&self.counts).clone())
    }

    pub fn reset_calls(&self) {
        outside(|| lock(&self.counts).clear());
    }

    /// The agents whose items changed since the last call, as the stream showed them.
    pub fn take_changes(&self) -> HashSet<String> {
        outside(|| std::mem::take(&mut *lock(&self.changes)))
    }

    fn changed(&self, agent_id: &str) {
        outside(|| lock(&self.changes).insert(agent_id.to_owned()));
    }

    /// Writes `spec` as a writer would: a new generation of the spec item, the status kept.
    pub fn apply(&self, spec: &AgentSpec) {
        self.changed(&spec.agent_id);
        outside(|| {
            let mut agents = lock(&self.agents);
            let agent = agents
                .entry(spec.agent_id.clone())
                .or_insert_with(|| Agent::absent(&spec.agent_id));
            let meta = match &agent.spec {
                Some(current) => Meta {
                    generation: current.meta.generation + 1,
                    ..current.meta.clone()
                },
                None => Meta {
                    generation: 1,
                    managed_by: Some("cli".to_owned()),
                    ..Meta::default()
                },
            };
            agent.spec = Some(SpecItem::of_document(
                &spec.agent_id,
                &spec.to_document(&meta),
            ));
        });
    }

    /// Agents that are Running on their current spec, and how many there are.
    #[must_use]
    pub fn running(&self) -> (usize, usize) {
        outside(|| {
            let agents = lock(&self.agents);
            let running = agents.values().filter(|a| runs_its_spec(a)).count();
            (running, agents.len())
        })
    }

    /// When the last agent turned Running on its spec.
    #[must_use]
    pub fn last_turned_running(&self) -> Option<tokio::time::Instant> {
        *lock(&self.last_turned_running)
    }

    /// One agent not Running yet, with its status message, to show why.
    #[must_use]
    pub fn one_waiting(&self) -> Option<String> {
        outside(|| {
            let agents = lock(&self.agents);
            agents
                .values()
                .filter_map(|a| Some((a, a.status.as_ref()?)))
                .find(|(_, s)| s.phase != Phase::Running)
                .map(|(a, s)| {
                    format!(
                        "{} {}: {}",
                        a.agent_id,
                        s.phase.as_str(),
                        s.message.clone().unwrap_or_default()
                    )
                })
        })
    }

    /// Agents by phase.
    #[must_use]
    pub fn phases(&self) -> BTreeMap<String, usize> {
        outside(|| {
            let mut out = BTreeMap::new();
            for agent in lock(&self.agents).values() {
                let phase = agent
                    .status
                    .as_ref()
                    .map_or("none", |s| s.phase.as_str())
                    .to_owned();
                *out.entry(phase).or_default() += 1;
            }
            out
        })
    }

    /// The stored status of one agent.
    #[must_use]
    pub fn status(&self, agent_id: &str) -> Option<AgentStatus> {
        let read = outside(|| {
            lock(&self.agents)
                .get(agent_id)
                .and_then(|a| a.status.clone())
        });
        let copy = read.clone();
        outside(|| drop(read));
        copy
    }
}

/// Whether the agent's status says Running on its current spec.
fn runs_its_spec(agent: &Agent) -> bool {
    let (Some(status), Some(Ok(spec))) = (&agent.status, agent.spec.as_ref().map(|s| &s.spec))
    else {
        return false;
    };
    status.phase == Phase::Running
        && status.observed_spec_hash.as_deref() == Some(spec.content_hash().as_str())
}

impl StatusStore for Table {
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.request("Query", 1).await;
        let read = outside(|| lock(&self.agents).get(agent_id).cloned());
        let copy = read.clone();
        outside(|| drop(read));
        Ok(copy)
    }

    /// The resync's Scan of every item, page by page.
    async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        // Read straight into the controller's memory, as the SDK deserializes the pages.
        let items = lock(&self.agents).values().cloned().collect::<Vec<_>>();
        let pages = (2 * items.len()).div_ceil(SCAN_PAGE).max(1) as u64;
        self.request("Scan", pages).await;
        Ok(items)
    }

    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        _previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError> {
        self.request("PutItem", 1).await;
        self.changed(agent_id);
        outside(|| {
            let mut agents = lock(&self.agents);
            let agent = agents
                .entry(agent_id.to_owned())
                .or_insert_with(|| Agent::absent(agent_id));
            let was = runs_its_spec(agent);
            agent.status = Some(status.clone());
            if !was && runs_its_spec(agent) {
                *lock(&self.last_turned_running) = Some(tokio::time::Instant::now());
            }
        });
        Ok(())
    }

    async fn delete_items(&self, agent_id: &str, _spec: &Snapshot) -> Result<(), StoreError> {
        self.request("DeleteItem", 2).await;
        self.changed(agent_id);
        outside(|| lock(&self.agents).remove(agent_id));
        Ok(())
    }

    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        self.request("DeleteItem", 1).await;
        self.changed(agent_id);
        outside(|| lock(&self.agents).remove(agent_id));
        Ok(())
    }
}
