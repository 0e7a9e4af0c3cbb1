//! The resync: one snapshot of the whole fleet with batched reads, a plan per agent from it, and
//! every agent whose plan has work (and every orphan) enqueued. [`fleet_plans`] is the fleet's
//! plans, for `clawfleet plan --all` and `clawfleet reconcile --all`; the controller's resync
//! goes through [`crate::view::TableView`], which finds the same work reading only the items
//! that changed and planning only the agents whose inputs changed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use cloud::{ObserveError, Recorded};
use plan::observed::{AgentResources, Fleet};
use plan::{Context, Plan};
use store::{Agent, SpecItem, StoreError};

use crate::queue::{FOLLOW_UP_HORIZON, Queue};
use crate::reconcile::desired;
use crate::rollout::Rollout;
use crate::runtime::Controller;
use crate::view::{Round, Work};

/// One agent of the fleet, or an orphan (resources whose agent has no items), with its plan.
#[derive(Debug)]
pub struct Entry<'a> {
    pub agent_id: &'a str,
    /// `None` for an orphan.
    pub agent: Option<&'a Agent>,
    pub observed: &'a AgentResources,
    pub plan: Plan,
}

/// The plan for one agent as stored (`None`: no items), given what AWS shows of it.
#[must_use]
pub fn plan_for(
    agent_id: &str,
    agent: Option<&Agent>,
    observed: &AgentResources,
    ctx: &Context<'_>,
) -> Plan {
    let spec_item = agent.and_then(|a| a.spec.as_ref());
    let error = spec_item.and_then(SpecItem::error_text);
    let desired = desired(
        agent_id,
        spec_item,
        error.as_deref(),
        agent.and_then(|a| a.status.as_ref()),
        agent.and_then(Agent::last_activity),
    );
    plan::plan(&desired, observed, ctx)
}

/// Every stored agent, then every orphan that still has resources claimed by this
/// installation, each with its plan. Lazy: at 100,000 agents a collected list of every plan
/// and every agent's resources was gigabytes at each resync, when the resync keeps only the
/// few with work.
pub fn fleet_plans<'a>(
    agents: &'a [Agent],
    fleet: &'a Fleet,
    ctx: &'a Context<'a>,
) -> impl Iterator<Item = Entry<'a>> + 'a {
    let known: HashSet<&str> = agents.iter().map(|a| a.agent_id.as_str()).collect();
    let stored = agents.iter().map(move |agent| {
        let observed = fleet.observed(&agent.agent_id);
        Entry {
            plan: plan_for(&agent.agent_id, Some(agent), observed, ctx),
            agent_id: &agent.agent_id,
            agent: Some(agent),
            observed,
        }
    });
    let orphans = orphans(&known, fleet, ctx)
        .into_iter()
        .map(move |(id, observed)| Entry {
            plan: plan_for(id, None, observed, ctx),
            agent_id: id,
            agent: None,
            observed,
        });
    stored.chain(orphans)
}

/// The resources of agents with no items that this installation claims, by agent id.
fn orphans<'a>(
    known: &HashSet<&str>,
    fleet: &'a Fleet,
    ctx: &Context<'_>,
) -> Vec<(&'a str, &'a AgentResources)> {
    let mut orphans: Vec<(&str, &AgentResources)> = fleet
        .agents
        .iter()
        .filter(|(id, observed)| {
            !known.contains(id.as_str())
                && observed.has_live_resources()
                && observed.claimed_by(&ctx.settings.installation)
        })
        .map(|(id, observed)| (id.as_str(), observed))
        .collect();
    orphans.sort_unstable_by_key(|(id, _)| *id);
    orphans
}

/// What the statuses of `agents` record, for [`cloud::Aws::observe_fleet`].
#[must_use]
pub fn recorded(agents: &[Agent]) -> Recorded {
    Recorded::of(
        agents
            .iter()
            .filter_map(|a| Some((a.agent_id.as_str(), a.status.as_ref()?))),
    )
}

/// A resync's enqueues; returns how many agents. The rollout slots no reconcile carries on
/// go to the agents in line; every agent with work is enqueued with what the full round's
/// snapshot saw of it (its first reconcile starts from it), except one waiting in the
/// rollout's line with its old task running; the agents a light round found `due` are
/// enqueued bare, their reconcile reading them afresh (a listing is all it saw).
pub fn enqueue(
    queue: &Queue,
    rollout: &Rollout,
    snapshots: &Mutex<HashMap<String, AgentResources>>,
    work: Work<'_>,
    due: Vec<String>,
) -> usize {
    let mut snapshots = snapshots.lock().unwrap_or_else(PoisonError::into_inner);
    for admitted in rollout.release_stranded(|id| queue.has(id)) {
        queue.add_follow_up(&admitted);
    }
    let mut n = 0;
    for (agent_id, observed) in work {
        if crate::rollout::held(rollout, &agent_id, observed) {
            continue;
        }
        queue.add(&agent_id);
        n += 1;
        snapshots.insert(agent_id, observed.clone());
    }
    for agent_id in due {
        queue.add(&agent_id);
        n += 1;
    }
    n
}

/// Why a resync failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// A full or a light round ([`crate::view::Round`]). A full one: one snapshot of the whole
    /// fleet with batched reads, and the table's items that changed since the last; every
    /// agent whose plan has work, and every orphan, is enqueued. A light one: the running
    /// tasks' listing; the agents [`crate::view::TableView::due`] names are enqueued (a task
    /// not in the listing, a schedule window or idle deadline come, a stopped agent whose
    /// items say it runs). Returns how many agents were.
    ///
    /// # Errors
    /// A failed read of AWS or of the table.
    pub async fn resync(&self) -> Result<usize, ResyncError> {
        // One at a time: the watch resyncs when stream records are lost, and the loop on time.
        let _one = self.resyncing.lock().await;
        let started = std::time::Instant::now();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (template_arn, template) = self
            .cloud
            .aws
            .template(&self.config.template, &self.settings)
            .await?;
        let round = self
            .view
            .round(&self.settings, &template, self.config.relist_interval);
        let read = self
            .view
            .read(&self.store, &self.settings, now, round, &|id| {
                self.queue.has_within(id, FOLLOW_UP_HORIZON)
            })
            .await?;
        let mut snapshot = None;
        let mut planned = crate::view::Planned::default();
        let mut due = Vec::new();
        match round {
            Round::Full => {
                let fleet = self
                    .cloud
                    .aws
                    .list_fleet(
                        template_arn,
                        template.clone(),
                        &self.settings,
                        &self.view.recorded(),
                    )
                    .await?;
                self.metrics
                    .set_agent_roles(fleet.agents.values().filter(|a| a.role.is_some()).count());
                snapshot = Some(fleet);
            }
            Round::Light => {
                let running: HashSet<String> = self
                    .cloud
                    .aws
                    .ecs
                    .list_running_tasks()
                    .await
                    .map_err(ObserveError::from)?
                    .into_iter()
                    .collect();
                due = self.view.due(&running, now);
            }
        }
        self.expectations.expire();
        self.last_seen.expire();
        *self.template.write().await = Some(template.clone());
        let ctx = Context {
            settings: &self.settings,
            template: &template,
            now,
        };
        let mut work = Vec::new();
        if let Some(fleet) = &snapshot {
            let full = read.full();
            (work, planned) = self.view.work(&self.store, read, fleet, &ctx).await?;
            tracing::debug!(
                full,
                planned = planned.planned,
                unchanged = planned.unchanged,
                "resync planned the agents whose inputs changed"
            );
        }
        self.write_fleet_summary().await;
        let census = self.view.census();
        self.metrics.agents_by_phase(&census.phases);
        self.metrics
            .set_readiness(census.ready, census.desired_running);
        self.metrics.resynced(started.elapsed(), planned);
        let n = enqueue(&self.queue, &self.rollout, &self.snapshots, work, due);
        self.ready.store(true, Ordering::Relaxed);
        Ok(n)
    }

    /// The next resync is a full round, whenever the last was.
    pub fn relist(&self) {
        self.view.relist();
    }
}

impl Controller {
    /// The admin console's one item, from what the resync holds anyway. A failed write
    /// costs only the console's freshness (it shows the time of the last one), never the
    /// resync. Only the leader writes it: a replica whose lease ran out (paused, partitioned)
    /// would otherwise overwrite the leader's with an older snapshot under its own name.
    async fn write_fleet_summary(&self) {
        if !self.is_leader() {
            return;
        }
        let summary = self.view.summary(self.leader_name(), &spec::now_rfc3339());
        if let Err(e) = self.store.put_fleet_summary(&summary).await {
            tracing::warn!(error = %e, "the fleet summary was not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::fixtures::{NOW, access_point, settings, spec, template};
    use spec::render::tag;

    #[test]
    fn an_orphan_is_collected_only_when_this_installation_claims_it() {
        let (settings, template, spec) = (settings(), template(), spec());
        let ctx = Context {
            settings: &settings,
            template: &template,
            now: NOW,
        };
        let orphan = |installation: Option<&str>| {
            let mut ap = access_point(&spec, "fsap-1");
            ap.tags.remove(tag::INSTALLATION);
            if let Some(i) = installation {
                ap.tags.insert(tag::INSTALLATION.into(), i.into());
            }
            let mut fleet = Fleet::default();
            fleet.add_access_points(vec![ap]);
            fleet
        };
        // Ours: torn down.
        let ours = orphan(Some(&settings.installation));
        let entries: Vec<Entry<'_>> = fleet_plans(&[], &ours, &ctx).collect();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].plan.has_work());
        // From before installations were tagged: whose it is cannot be told, so it is left to
        // the installation whose table holds the agent.
        assert!(fleet_plans(&[], &orphan(None), &ctx).next().is_none());
    }
}
