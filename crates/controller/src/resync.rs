//! The resync: one snapshot of the whole fleet with batched reads, a plan per agent from it, and
//! every agent whose plan has work (and every orphan) enqueued. [`fleet_plans`] is the fleet's
//! plans, for `clawfleet plan --all` and `clawfleet reconcile --all`; the controller's resync
//! goes through [`Unchanged::work`], which finds the same work without planning again the
//! agents whose inputs did not change since a plan that found none.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use cloud::{ObserveError, Recorded};
use plan::observed::{AgentResources, Fleet};
use plan::{Context, Plan};
use store::{Agent, SpecItem, StoreError};

use crate::reconcile::desired;
use crate::runtime::Controller;

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

/// The longest a plan that found no work stands for an agent whose inputs have not changed:
/// each agent is planned again at some point within this, spread over the second half of it
/// by agent, so that no resync plans the whole fleet at once. A bound on what a fingerprint
/// cannot see, should a plan ever depend on time in a way its `revisit_after_secs` does not
/// say.
pub const UNCHANGED_MAX_AGE_SECS: i64 = 3600;

/// The agents whose last plan at a resync found no work, each with a fingerprint of everything
/// that plan read: its items (spec, status, activity), what AWS showed of it, the template and
/// the settings. At the next resync an agent whose fingerprint is the same is not planned
/// again, since a plan is a pure function of those and would again find no work, until the
/// time the plan said its effective state changes on its own (a schedule window, the idle
/// deadline) or [`UNCHANGED_MAX_AGE_SECS`]. At 100,000 agents the plans were the largest part
/// of an idle resync's CPU; fingerprints cost a fraction of a plan.
#[derive(Debug, Default)]
pub struct Unchanged {
    by_agent: Mutex<HashMap<String, Memo>>,
}

#[derive(Debug, Clone, Copy)]
struct Memo {
    inputs: u64,
    /// Planned again at or after this time (seconds since the epoch), whatever the inputs.
    until: i64,
}

/// How many agents a resync planned, and how many it left unplanned as unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub planned: usize,
    pub unchanged: usize,
}

/// The resync's work: agents to enqueue, each with what the snapshot saw of it.
pub type Work<'a> = Vec<(&'a str, &'a AgentResources)>;

impl Unchanged {
    /// Every stored agent whose plan has work, and every orphan, as [`fleet_plans`] finds
    /// them, without planning again the agents whose last plan found no work and whose inputs
    /// are the same.
    pub fn work<'a>(
        &self,
        agents: &'a [Agent],
        fleet: &'a Fleet,
        ctx: &Context<'_>,
    ) -> (Work<'a>, Planned) {
        let context = context_fingerprint(ctx);
        let mut previous =
            std::mem::take(&mut *self.by_agent.lock().unwrap_or_else(PoisonError::into_inner));
        let mut next = HashMap::with_capacity(previous.len());
        let mut work = Vec::new();
        let mut counts = Planned::default();
        let known: HashSet<&str> = agents.iter().map(|a| a.agent_id.as_str()).collect();
        for agent in agents {
            let observed = fleet.observed(&agent.agent_id);
            // Hashed only where it is compared or kept: in a cold start every agent has work,
            // and fingerprinting them all at each resync would be wasted.
            let mut inputs = None;
            if let Some((id, memo)) = previous.remove_entry(agent.agent_id.as_str())
                && ctx.now < memo.until
            {
                inputs = fingerprint(context, agent, observed);
                if inputs == Some(memo.inputs) {
                    counts.unchanged += 1;
                    next.insert(id, memo);
                    continue;
                }
            }
            counts.planned += 1;
            let plan = plan_for(&agent.agent_id, Some(agent), observed, ctx);
            if plan.has_work() {
                work.push((agent.agent_id.as_str(), observed));
            } else if let Some(inputs) = inputs.or_else(|| fingerprint(context, agent, observed)) {
                let age = max_age(&agent.agent_id);
                let until = plan
                    .revisit_after_secs
                    .and_then(|secs| i64::try_from(secs).ok())
                    .map_or(age, |secs| secs.min(age));
                next.insert(
                    agent.agent_id.clone(),
                    Memo {
                        inputs,
                        until: ctx.now.saturating_add(until),
                    },
                );
            }
        }
        // Orphans are few and always planned: their plan is their teardown.
        for (id, observed) in orphans(&known, fleet, ctx) {
            counts.planned += 1;
            work.push((id, observed));
        }
        *self.by_agent.lock().unwrap_or_else(PoisonError::into_inner) = next;
        (work, counts)
    }
}

/// Between half of [`UNCHANGED_MAX_AGE_SECS`] and all of it, by agent.
fn max_age(agent_id: &str) -> i64 {
    let mut h = hasher();
    agent_id.hash(&mut h);
    let half = UNCHANGED_MAX_AGE_SECS / 2;
    half + i64::try_from(h.finish() % u64::try_from(half).unwrap_or(1)).unwrap_or(0)
}

/// The template and the settings, the inputs every plan shares: hashed once per resync.
fn context_fingerprint(ctx: &Context<'_>) -> u64 {
    let mut h = hasher();
    // Both are the controller's own: their Debug forms name every field.
    format!("{:?}{:?}", ctx.settings, ctx.template).hash(&mut h);
    h.finish()
}

/// foldhash's quality hasher with a fixed seed: fast on the few KB an agent's inputs are,
/// where SipHash took as long as the plan it was to save.
fn hasher() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x636c_6177_666c_6565).build_hasher()
}

/// Everything the agent's plan reads but the context; `None` for an agent that is not
/// fingerprinted, and so always planned: no spec item, or one that does not validate (its plan
/// reads the item as typed).
fn fingerprint(context: u64, agent: &Agent, observed: &AgentResources) -> Option<u64> {
    let item = agent.spec.as_ref()?;
    let spec = item.spec.as_ref().ok()?;
    let mut h = hasher();
    (context, &agent.agent_id, &item.meta, spec, &agent.status).hash(&mut h);
    (&agent.activity, observed).hash(&mut h);
    Some(h.finish())
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

/// Why a resync failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// One snapshot of the whole fleet with batched reads; every agent whose plan has work,
    /// and every orphan, is enqueued. Returns how many were.
    ///
    /// # Errors
    /// A failed read of AWS or of the table.
    pub async fn resync(&self) -> Result<usize, ResyncError> {
        let started = std::time::Instant::now();
        let agents = self.store.list().await?;
        let fleet = self
            .cloud
            .aws
            .observe_fleet(&self.config.template, &self.settings, &recorded(&agents))
            .await?;
        self.write_fleet_summary(&agents).await;
        self.expectations.expire();
        self.last_seen.expire();
        *self.template.write().await = Some(fleet.template.clone());
        let ctx = Context {
            settings: &self.settings,
            template: &fleet.template,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let mut phases: HashMap<String, i64> = HashMap::new();
        for status in agents.iter().filter_map(|a| a.status.as_ref()) {
            *phases.entry(status.phase.as_str().to_owned()).or_default() += 1;
        }
        self.metrics.agents_by_phase(&phases);
        let ready = agents
            .iter()
            .filter_map(|a| a.status.as_ref())
            .filter(|s| {
                s.condition(spec::ConditionKind::Ready)
                    .is_some_and(|c| c.status == spec::ConditionStatus::True)
            })
            .count();
        // Agents a schedule or idleness stops are not expected to be Ready.
        let desired_running = agents
            .iter()
            .filter(|a| a.spec.as_ref().is_some_and(|item| !item.meta.is_deleting()))
            .filter(|a| {
                a.spec
                    .as_ref()
                    .and_then(|item| item.spec.as_ref().ok())
                    .is_some_and(|s| {
                        let lead = spec::lifecycle::lead_for(
                            &s.agent_id,
                            self.settings.schedule_lead_secs,
                        );
                        spec::lifecycle::effective(s, a.last_activity(), ctx.now, lead).runs()
                    })
            })
            .count();
        self.metrics.set_readiness(ready, desired_running);
        self.metrics
            .set_agent_roles(fleet.agents.values().filter(|a| a.role.is_some()).count());
        *self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            agents.iter().map(|a| a.agent_id.clone()).collect();
        let (work, planned) = self.unchanged.work(&agents, &fleet, &ctx);
        tracing::debug!(
            planned = planned.planned,
            unchanged = planned.unchanged,
            "resync planned the agents whose inputs changed"
        );
        let n = work.len();
        self.metrics.resynced(started.elapsed(), planned);
        {
            let mut snapshots = self
                .snapshots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (agent_id, observed) in work {
                self.queue.add(agent_id);
                snapshots.insert(agent_id.to_owned(), observed.clone());
            }
        }
        self.ready.store(true, Ordering::Relaxed);
        Ok(n)
    }
}

impl Controller {
    /// The admin console's one item, from the snapshot the resync read anyway. A failed write
    /// costs only the console's freshness (it shows the time of the last one), never the
    /// resync. Only the leader writes it: a replica whose lease ran out (paused, partitioned)
    /// would otherwise overwrite the leader's with an older snapshot under its own name.
    async fn write_fleet_summary(&self, agents: &[Agent]) {
        if !self.is_leader() {
            return;
        }
        let summary = store::FleetSummary::of(agents, self.leader_name(), &spec::now_rfc3339());
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

    mod unchanged {
        use super::*;
        use plan::fixtures::{AGENT, converged, document};
        use spec::AgentDocument;
        use store::Activity;

        fn agent(doc: &AgentDocument) -> Agent {
            Agent {
                agent_id: AGENT.into(),
                spec: Some(SpecItem::of_document(AGENT, doc)),
                status: None,
                activity: Activity::default(),
            }
        }

        /// `agent` with the status its plan writes over `fleet`: a converged agent's plan has
        /// no work once its status says what the plan finds.
        fn settled(mut agent: Agent, fleet: &Fleet, ctx: &Context<'_>) -> Agent {
            for _ in 0..3 {
                let plan = plan_for(AGENT, Some(&agent), fleet.observed(AGENT), ctx);
                let written = plan.actions.iter().find_map(|a| match a {
                    plan::Action::UpdateStatus(status) => Some(status.clone()),
                    _ => None,
                });
                match written {
                    Some(status) => agent.status = Some(status),
                    None => break,
                }
            }
            let plan = plan_for(AGENT, Some(&agent), fleet.observed(AGENT), ctx);
            assert!(!plan.has_work(), "settled: {plan:?}");
            agent
        }

        fn fleet_of(observed: AgentResources) -> Fleet {
            let mut fleet = Fleet::default();
            fleet.agents.insert(AGENT.into(), observed);
            fleet
        }

        /// The agents `fleet_plans` finds work for, which `Unchanged::work` must match.
        fn fleet_work(agents: &[Agent], fleet: &Fleet, ctx: &Context<'_>) -> Vec<String> {
            fleet_plans(agents, fleet, ctx)
                .filter(|e| e.agent.is_none() || e.plan.has_work())
                .map(|e| e.agent_id.to_owned())
                .collect()
        }

        fn ids(work: &Work<'_>) -> Vec<String> {
            work.iter().map(|(id, _)| (*id).to_owned()).collect()
        }

        #[test]
        fn an_agent_is_planned_again_only_when_what_its_plan_reads_changed() {
            let (settings, template) = (settings(), template());
            let ctx = Context {
                settings: &settings,
                template: &template,
                now: NOW,
            };
            let fleet = fleet_of(converged(&spec()));
            let agents = [settled(agent(&document()), &fleet, &ctx)];
            let unchanged = Unchanged::default();
            let (work, counts) = unchanged.work(&agents, &fleet, &ctx);
            assert!(work.is_empty());
            assert_eq!(
                counts,
                Planned {
                    planned: 1,
                    unchanged: 0
                },
                "first seen: planned"
            );
            let (work, counts) = unchanged.work(&agents, &fleet, &ctx);
            assert!(work.is_empty());
            assert_eq!(
                counts,
                Planned {
                    planned: 0,
                    unchanged: 1
                },
                "same inputs"
            );

            // AWS changed: the task is gone.
            let mut crashed = converged(&spec());
            crashed.tasks.clear();
            let crashed = fleet_of(crashed);
            let (work, counts) = unchanged.work(&agents, &crashed, &ctx);
            assert_eq!(ids(&work), vec![AGENT.to_owned()]);
            assert_eq!(ids(&work), fleet_work(&agents, &crashed, &ctx));
            assert_eq!(counts.planned, 1);
            // An agent with work is never taken as unchanged.
            let (work, counts) = unchanged.work(&agents, &crashed, &ctx);
            assert_eq!(ids(&work), vec![AGENT.to_owned()]);
            assert_eq!(counts.planned, 1);

            // The spec changed (a new image), with AWS as before.
            let (_, counts) = unchanged.work(&agents, &fleet, &ctx);
            assert_eq!(counts.planned, 1);
            let mut doc = document();
            doc.image = Some("openclaw/openclaw:v9".into());
            let edited = [agent(&doc)];
            let (work, counts) = unchanged.work(&edited, &fleet, &ctx);
            assert_eq!(counts.planned, 1);
            assert_eq!(ids(&work), fleet_work(&edited, &fleet, &ctx));
            assert_eq!(
                ids(&work),
                vec![AGENT.to_owned()],
                "a new revision to register"
            );

            // The status changed, or the activity, or the template.
            let (_, counts) = unchanged.work(&agents, &fleet, &ctx);
            assert_eq!(counts.planned, 1);
            let mut with_status = agents[0].clone();
            if let Some(status) = with_status.status.as_mut() {
                status.restarts += 1;
            }
            let (_, counts) = unchanged.work(std::slice::from_ref(&with_status), &fleet, &ctx);
            assert_eq!(counts.planned, 1, "status");
            let mut active = with_status.clone();
            active.activity.last_activity_at = Some(NOW - 5);
            let (_, counts) = unchanged.work(std::slice::from_ref(&active), &fleet, &ctx);
            assert_eq!(counts.planned, 1, "activity");
            let mut other = template.clone();
            other.family = format!("{}-other", other.family);
            let other_ctx = Context {
                template: &other,
                ..ctx
            };
            let active = settled(active, &fleet, &other_ctx);
            let (_, counts) = unchanged.work(std::slice::from_ref(&active), &fleet, &other_ctx);
            assert_eq!(counts.planned, 1, "template");
            let (_, counts) = unchanged.work(std::slice::from_ref(&active), &fleet, &other_ctx);
            assert_eq!(
                counts,
                Planned {
                    planned: 0,
                    unchanged: 1
                }
            );
        }

        #[test]
        fn an_unchanged_agent_is_planned_again_when_its_plan_said_to_look_again() {
            let (settings, template) = (settings(), template());
            let mut doc = document();
            doc.idle_stop_after = Some("10m".into());
            let mut idle = agent(&doc);
            idle.activity.last_activity_at = Some(NOW);
            let fleet = fleet_of(converged(&spec()));
            let at = |now| Context {
                settings: &settings,
                template: &template,
                now,
            };
            let agents = [settled(idle, &fleet, &at(NOW))];
            let unchanged = Unchanged::default();
            let (work, _) = unchanged.work(&agents, &fleet, &at(NOW));
            assert!(work.is_empty(), "active: keeps running");
            let (work, counts) = unchanged.work(&agents, &fleet, &at(NOW + 599));
            assert!(work.is_empty());
            assert_eq!(counts.unchanged, 1, "before the idle deadline");
            // At the deadline the plan stops the task: planned again, whatever the inputs.
            let (work, counts) = unchanged.work(&agents, &fleet, &at(NOW + 600));
            assert_eq!(counts.planned, 1);
            assert_eq!(ids(&work), vec![AGENT.to_owned()]);
            assert_eq!(ids(&work), fleet_work(&agents, &fleet, &at(NOW + 600)));
        }

        #[test]
        fn every_agent_is_planned_again_within_the_max_age() {
            let (settings, template) = (settings(), template());
            let fleet = fleet_of(converged(&spec()));
            let at = |now| Context {
                settings: &settings,
                template: &template,
                now,
            };
            let agents = [settled(agent(&document()), &fleet, &at(NOW))];
            let unchanged = Unchanged::default();
            let (_, counts) = unchanged.work(&agents, &fleet, &at(NOW));
            assert_eq!(counts.planned, 1);
            let half = UNCHANGED_MAX_AGE_SECS / 2;
            let (_, counts) = unchanged.work(&agents, &fleet, &at(NOW + half - 1));
            assert_eq!(counts.unchanged, 1, "never before half the max age");
            let (_, counts) = unchanged.work(&agents, &fleet, &at(NOW + UNCHANGED_MAX_AGE_SECS));
            assert_eq!(counts.planned, 1, "always by the max age");
            // The age is spread by agent, within the bounds.
            let ages: std::collections::BTreeSet<i64> =
                (0..50).map(|i| max_age(&format!("agent-{i}"))).collect();
            assert!(ages.len() > 25, "spread: {ages:?}");
            assert!(
                ages.iter()
                    .all(|a| (half..UNCHANGED_MAX_AGE_SECS).contains(a))
            );
        }

        #[test]
        fn invalid_specs_deleted_agents_and_orphans_are_always_planned() {
            let (settings, template) = (settings(), template());
            let ctx = Context {
                settings: &settings,
                template: &template,
                now: NOW,
            };
            let mut invalid = document();
            invalid.plan = Some("enormous".into());
            let mut no_items = agent(&document());
            no_items.spec = None;
            let mut fleet = fleet_of(converged(&spec()));
            let ours = fleet.agents.get(AGENT).cloned().unwrap_or_default();
            fleet.agents.insert("gone".into(), ours);
            let unchanged = Unchanged::default();
            for agents in [[agent(&invalid)], [no_items]] {
                for _ in 0..2 {
                    let (work, counts) = unchanged.work(&agents, &fleet, &ctx);
                    assert_eq!(counts.unchanged, 0);
                    let mut want = fleet_work(&agents, &fleet, &ctx);
                    let mut got = ids(&work);
                    want.sort();
                    got.sort();
                    assert_eq!(got, want);
                    assert!(got.contains(&"gone".to_owned()), "the orphan: {got:?}");
                }
            }
        }
    }
}
