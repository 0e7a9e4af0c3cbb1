//! The table as the resync last read it, kept current by the stream, in the way of
//! kube-runtime's reflector store: the resync reads only the agents whose items changed since
//! (the stream says which), and plans only the agents whose plan inputs changed.
//!
//! For each agent the view keeps what the resync needs without its items: what its status
//! records (for the fleet snapshot's reads), its part of the metrics and of the fleet summary,
//! and, after a plan that found no work, a fingerprint of that plan's inputs. An idle resync
//! reads no item and plans no agent; at 100,000 agents the table's Scan alone was 1.4 s of an
//! idle resync's 4.9 s of CPU, and a Scan of every item every minute is DynamoDB read capacity
//! paid for nothing.
//!
//! The resync reads the whole table instead (a consistent Scan) when the view cannot be
//! trusted: before its first read, after stream records were lost, while the stream is not
//! followed (a standby, a failing or stopped watch), and when more agents need reading than a
//! Scan costs. Every agent is read again within [`MAX_AGE_SECS`] whatever the stream says, a
//! rolling relist.
//!
//! On AWS's side the resync comes in two rounds ([`Round`]). A full round lists every resource
//! of the fleet and plans the agents whose inputs changed: it runs every `relist_interval`,
//! and whenever the view or the template changed. In between, a light round lists only the
//! running tasks (ListTasks, ⌈N/100⌉ pages) and enqueues ([`TableView::due`]) the agents whose
//! recorded task is not in that listing (the crash safety net when task events are lost),
//! whose schedule window or idle deadline came, and those stopped for either whose items say
//! they run: at a tenth of the full round's reads and a fortieth of its CPU at 100,000 agents,
//! where a full round turns 400,000 resources into the controller's types, compares them, and
//! drops them again.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cloud::Recorded;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use plan::Context;
use plan::observed::{AgentResources, Fleet};
use spec::lifecycle::Effective;
use spec::render::{Settings, TaskDefinition};
use spec::{ConditionKind, ConditionStatus, Phase};
use store::summary::Part;
use store::{Agent, FleetSummary, StoreError};

use crate::resync::plan_for;
use crate::status::StatusStore;

/// The longest the view trusts what it holds of an agent: every agent's items are read and its
/// plan made again within this, spread over its second half by agent so that no resync reads
/// the whole fleet at once. Ten hours, as controller-runtime's default `SyncPeriod`: a bound on
/// a change the stream never showed, should one ever be missed, and on what a fingerprint
/// cannot see.
pub const MAX_AGE_SECS: i64 = 36_000;

/// Queries in flight at once when the resync reads agents one by one.
const QUERIES_AT_ONCE: usize = 8;

/// The resync reads agents one by one (Query) while they are at most one in this many of the
/// fleet, and the whole table (Scan) beyond: a Scan page holds about 500 agents, so one Query
/// per agent for a twentieth of the fleet costs ten times the requests of a Scan but a tenth of
/// its read capacity and of its CPU. Never a Scan for fewer agents than it has pages.
const QUERY_SHARE: usize = 20;

/// Agents a Scan page holds: 1 MB of items, two of about 1 KB per agent.
const SCAN_PAGE_AGENTS: usize = 500;

/// The stream counts as followed only while a poll succeeded this recently: a watch that
/// stopped (its task ended) must not leave the view trusted.
const FOLLOW_STALE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a resync reads of AWS; see the module's documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Round {
    /// Every resource of the fleet, and a plan for every agent whose inputs changed.
    #[default]
    Full,
    /// The running tasks' ARNs alone.
    Light,
}

/// See the module's documentation.
#[derive(Debug, Default)]
pub struct TableView {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    agents: HashMap<String, Seen>,
    /// Agents whose items the stream showed changed since the last read.
    dirty: HashSet<String>,
    /// The next read is of the whole table.
    cold: bool,
    /// A stream poll succeeded since the view was last invalidated: every change from here on
    /// reaches [`TableView::changed`].
    following: bool,
    /// The last successful poll.
    polled_at: Option<tokio::time::Instant>,
    /// Counts invalidations: a read of the whole table during which one came is not trusted.
    epoch: u64,
    /// When the last full round that planned the fleet began, and the fingerprint of the
    /// template and the settings it planned with. From its beginning: with a relist interval
    /// equal to the resync interval, every round is full.
    relisted: Option<(tokio::time::Instant, u64)>,
    /// When the full round under way began, and the relists asked for by then.
    full_began: Option<(tokio::time::Instant, u64)>,
    /// Full rounds asked for ([`TableView::relist`]), and how many of those asks a full
    /// round that began after them has planned: a round that fails does not answer one, and
    /// an ask during a round is not answered by it.
    relists_asked: u64,
    relists_done: u64,
}

impl State {
    fn followed(&self) -> bool {
        self.following && self.polled_at.is_some_and(|at| at.elapsed() < FOLLOW_STALE)
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            agents: HashMap::new(),
            dirty: HashSet::new(),
            cold: true,
            following: false,
            polled_at: None,
            epoch: 0,
            relisted: None,
            full_began: None,
            relists_asked: 0,
            relists_done: 0,
        }
    }
}

/// What the view keeps of one agent.
#[derive(Debug)]
struct Seen {
    /// What its status records, for [`cloud::Aws::observe_fleet`].
    task_arn: Option<String>,
    purge_task_arn: Option<String>,
    revision: Option<String>,
    /// Whether its recorded task was in the last listing of running tasks; `None` until a
    /// listing after it was recorded. A light round enqueues the agent when the task is not
    /// in a listing, once: when it leaves, or when it is missing from the first listing (it
    /// stopped before any listing saw it).
    task_listed: Option<bool>,
    /// Its part of the metrics, as of the read.
    phase: Option<Phase>,
    ready: bool,
    runs: bool,
    /// Stopped for its schedule or for idleness, and its items as read say it runs now
    /// (activity reported, which the stream does not enqueue): a light round enqueues it, once.
    waking: bool,
    /// When its effective state changes on its own (a schedule window opening or closing, the
    /// idle deadline), as of its items last read: a light round enqueues it then, once. Kept
    /// apart from the memo, which any change of its items drops.
    revisit_at: Option<i64>,
    summary: Option<Part>,
    /// Set after a plan that found no work, and kept only while the items read since are the
    /// ones it was made from: a resync that fails between its read and its plans must not
    /// leave a memo standing for items it never planned.
    memo: Option<Memo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memo {
    /// Its items, as the plan read them.
    items: u64,
    /// The template, the settings and what AWS showed of it.
    observed: u64,
    /// Read and planned again at or after this time (seconds since the epoch), whatever the
    /// fingerprints.
    until: i64,
}

impl Seen {
    fn of(agent: &Agent, settings: &Settings, now: i64, before: Option<Self>) -> Self {
        let status = agent.status.as_ref();
        let phase = status.map(|s| s.phase);
        let task_arn = status.and_then(|s| s.task_arn.clone());
        let effective = effective(agent, settings, now);
        let runs = effective.is_some_and(Effective::runs);
        let stopped_by_time = matches!(phase, Some(Phase::Idle | Phase::Scheduled));
        // Once: the reconcile it gets may fail before its status moves, and the failure's
        // status write is read again.
        let waking =
            runs && stopped_by_time && !before.as_ref().is_some_and(|b| b.runs && b.phase == phase);
        let (memo, task_listed) = before.map_or((None, None), |b| {
            let same = b.task_arn == task_arn;
            (b.memo, b.task_listed.filter(|_| same))
        });
        let memo = memo.filter(|m| items_fingerprint(agent) == Some(m.items));
        Self {
            task_arn,
            task_listed,
            purge_task_arn: status.and_then(|s| s.purge.task_arn.clone()),
            revision: status.and_then(|s| s.task_definition_arn.clone()),
            phase,
            ready: status.is_some_and(|s| {
                s.condition(ConditionKind::Ready)
                    .is_some_and(|c| c.status == ConditionStatus::True)
            }),
            runs,
            waking,
            revisit_at: effective.and_then(Effective::next_boundary),
            summary: Part::of(agent),
            memo,
        }
    }
}

/// What the agent's spec says of now (its schedule, idleness): `None` for an agent being
/// deleted or whose spec does not validate. Agents a schedule or idleness stops are not
/// expected to be Ready.
fn effective(agent: &Agent, settings: &Settings, now: i64) -> Option<Effective> {
    let item = agent
        .spec
        .as_ref()
        .filter(|item| !item.meta.is_deleting())?;
    let spec = item.spec.as_ref().ok()?;
    let lead = spec::lifecycle::lead_for(&spec.agent_id, settings.schedule_lead_secs);
    Some(spec::lifecycle::effective(
        spec,
        agent.last_activity(),
        now,
        lead,
    ))
}

/// The items a resync read, for [`TableView::work`].
#[derive(Debug, Default)]
pub struct Read {
    agents: HashMap<String, Agent>,
    /// Read and found to have no items.
    absent: HashSet<String>,
    /// The whole table was read: an agent not in it has no items.
    full: bool,
}

impl Read {
    /// Whether the whole table was read (a Scan).
    #[must_use]
    pub fn full(&self) -> bool {
        self.full
    }

    /// The agents read.
    #[must_use]
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

/// How many agents a resync planned, and how many it left unplanned as unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub planned: usize,
    pub unchanged: usize,
}

/// The resync's work: agents to enqueue, each with what the snapshot saw of it.
pub type Work<'a> = Vec<(String, &'a AgentResources)>;

/// The fleet's numbers for the metrics, from the view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Agents with a status, by phase.
    pub phases: HashMap<String, i64>,
    pub ready: usize,
    /// Agents whose spec says they run now.
    pub desired_running: usize,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TableView {
    /// The stream showed an item of `agent_id` change: it is read at the next resync.
    pub fn changed(&self, agent_id: &str) {
        let mut state = lock(&self.state);
        if !state.dirty.contains(agent_id) {
            state.dirty.insert(agent_id.to_owned());
        }
    }

    /// A poll of the stream succeeded: the changes it did not show have not happened.
    pub fn polled(&self) {
        let mut state = lock(&self.state);
        state.following = true;
        state.polled_at = Some(tokio::time::Instant::now());
    }

    /// Changes may have been missed (records lost, the stream unread): the next resync reads
    /// the whole table, and the view is trusted again only after a poll that came before it.
    pub fn invalidate(&self) {
        let mut state = lock(&self.state);
        state.cold = true;
        state.following = false;
        state.epoch += 1;
    }

    /// What the resync reads of AWS this time: a full round when the view cannot be trusted
    /// (it reads the whole table then), when more agents changed than a Scan costs, when the
    /// template or the settings changed since the last full round, or `relist_interval` after
    /// it; a light round otherwise.
    #[must_use]
    pub fn round(
        &self,
        settings: &Settings,
        template: &TaskDefinition,
        relist_interval: std::time::Duration,
    ) -> Round {
        let context = context_fingerprint(settings, template);
        let mut state = lock(&self.state);
        let fresh = state.relisted.is_some_and(|(at, planned_with)| {
            planned_with == context && at.elapsed() < relist_interval
        });
        if fresh
            && state.relists_done == state.relists_asked
            && !state.cold
            && state.followed()
            && !many(state.dirty.len(), &state)
        {
            Round::Light
        } else {
            state.full_began = Some((tokio::time::Instant::now(), state.relists_asked));
            Round::Full
        }
    }

    /// The next round to begin is a full one.
    pub fn relist(&self) {
        lock(&self.state).relists_asked += 1;
    }

    /// The resync's read of the table. In a full round: the whole table (Scan), or the agents
    /// whose items changed, whose last plan had work, or whose memo ran out (a Query each). In
    /// a light round, which plans nothing: the agents whose items changed, for the metrics,
    /// except those `busy` says a reconcile will soon write again (in process, or due within a
    /// minute), which stay to be read: every item read in a light round is read again by the
    /// next full round to plan it, and in a bulk onboarding that doubled the reads of most
    /// status writes.
    ///
    /// # Errors
    /// A failed read; what was to be read stays to be read.
    pub async fn read<S: StatusStore>(
        &self,
        store: &S,
        settings: &Settings,
        now: i64,
        round: Round,
        busy: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Read, StoreError> {
        let (full, trusted, epoch, needed) = {
            let mut state = lock(&self.state);
            let mut needed = std::mem::take(&mut state.dirty);
            if round == Round::Light {
                let (later, now_read): (HashSet<String>, HashSet<String>) =
                    needed.into_iter().partition(|id| busy(id));
                state.dirty = later;
                needed = now_read;
            } else {
                for (id, seen) in &state.agents {
                    if seen.memo.is_none_or(|m| m.until <= now) && !needed.contains(id) {
                        needed.insert(id.clone());
                    }
                }
            }
            let followed = state.followed();
            let scan =
                round == Round::Full && (state.cold || !followed || many(needed.len(), &state));
            (scan, followed, state.epoch, needed)
        };
        if !full {
            let ids: Vec<String> = needed.iter().cloned().collect();
            return match self.query(store, ids, settings, now).await {
                Ok((agents, absent)) => Ok(Read {
                    agents,
                    absent,
                    full: false,
                }),
                Err(e) => {
                    lock(&self.state).dirty.extend(needed);
                    Err(e)
                }
            };
        }
        let agents = match store.list().await {
            Ok(agents) => agents,
            Err(e) => {
                lock(&self.state).dirty.extend(needed);
                return Err(e);
            }
        };
        let mut state = lock(&self.state);
        let mut previous = std::mem::take(&mut state.agents);
        state.agents.reserve(agents.len());
        let mut read = HashMap::with_capacity(agents.len());
        for agent in agents {
            let before = previous.remove(&agent.agent_id);
            let seen = Seen::of(&agent, settings, now, before);
            state.agents.insert(agent.agent_id.clone(), seen);
            read.insert(agent.agent_id.clone(), agent);
        }
        // Changes after a poll that came before this read reach `changed`; without one, or
        // with an invalidation since, the read may already be stale.
        state.cold = !trusted || state.epoch != epoch;
        Ok(Read {
            agents: read,
            absent: HashSet::new(),
            full: true,
        })
    }

    /// Reads `ids` one by one (Query), and keeps what they show.
    async fn query<S: StatusStore>(
        &self,
        store: &S,
        ids: Vec<String>,
        settings: &Settings,
        now: i64,
    ) -> Result<(HashMap<String, Agent>, HashSet<String>), StoreError> {
        if ids.is_empty() {
            return Ok((HashMap::new(), HashSet::new()));
        }
        let results: Vec<(String, Option<Agent>)> = stream::iter(ids)
            .map(|id| async move {
                let agent = store.get(&id).await?;
                Ok::<_, StoreError>((id, agent))
            })
            .buffer_unordered(QUERIES_AT_ONCE)
            .try_collect()
            .await?;
        let mut agents = HashMap::new();
        let mut absent = HashSet::new();
        let mut state = lock(&self.state);
        for (id, agent) in results {
            match agent.filter(|a| a.spec.is_some() || a.status.is_some()) {
                Some(agent) => {
                    let before = state.agents.remove(&id);
                    state
                        .agents
                        .insert(id.clone(), Seen::of(&agent, settings, now, before));
                    agents.insert(id, agent);
                }
                None => {
                    state.agents.remove(&id);
                    absent.insert(id);
                }
            }
        }
        Ok((agents, absent))
    }

    /// What a light round enqueues, given its listing of the running tasks at `now`: the
    /// agents whose recorded task is not in it (once: when it leaves, or when the first listing
    /// since it was recorded lacks it), those whose last plan asked to be looked at again by
    /// now (a schedule window, an idle deadline), and those stopped for their schedule or
    /// idleness whose items, read since, say they run (activity reported). Their memos go, so
    /// that the next full round plans them even if their reconcile finds nothing to do.
    pub fn due(&self, running: &HashSet<String>, now: i64) -> Vec<String> {
        let mut state = lock(&self.state);
        let mut due = Vec::new();
        for (id, seen) in &mut state.agents {
            let stopped = seen.task_arn.as_ref().is_some_and(|arn| {
                let listed = running.contains(arn);
                let was = seen.task_listed.replace(listed);
                !listed && was != Some(false)
            });
            let revisit = seen.revisit_at.is_some_and(|at| at <= now);
            if revisit {
                seen.revisit_at = None;
            }
            let waking = std::mem::take(&mut seen.waking);
            if stopped || revisit || waking {
                due.push(id.clone());
                seen.memo = None;
            }
        }
        due.sort_unstable();
        due
    }

    /// What the statuses record, for [`cloud::Aws::observe_fleet`].
    #[must_use]
    pub fn recorded(&self) -> Recorded {
        let state = lock(&self.state);
        let mut recorded = Recorded::default();
        for (id, seen) in &state.agents {
            recorded.tasks.extend(seen.task_arn.iter().cloned());
            recorded.tasks.extend(seen.purge_task_arn.iter().cloned());
            if let Some(arn) = &seen.revision {
                recorded.revisions.insert(id.clone(), arn.clone());
            }
        }
        recorded
    }

    /// Every agent whose plan has work, and every orphan (resources claimed by this
    /// installation of an agent with no items), as [`crate::resync::fleet_plans`] finds them
    /// over the whole table, without planning the agents whose last plan found no work and
    /// whose inputs are the same. An agent the read did not cover whose resources changed is
    /// read here (a Query each), and so is a resource owner the view does not know.
    ///
    /// # Errors
    /// A failed Query.
    pub async fn work<'a, S: StatusStore>(
        &self,
        store: &S,
        mut read: Read,
        fleet: &'a Fleet,
        ctx: &Context<'_>,
    ) -> Result<(Work<'a>, Planned), StoreError> {
        let context = context_fingerprint(ctx.settings, ctx.template);
        let mut counts = Planned::default();
        // Hashed only where compared or kept: in a cold start every agent has work, and
        // fingerprinting them all at each resync would be wasted.
        let mut to_plan: Vec<(String, Option<u64>)> = Vec::new();
        let mut to_read: Vec<String> = Vec::new();
        {
            // Held while every memo is compared: the watch's `changed` waits that long (a
            // fraction of a second at 100,000 agents) rather than every memo being copied out.
            let mut state = lock(&self.state);
            for (id, seen) in &mut state.agents {
                let observed = fleet.observed(id);
                seen.task_listed = seen.task_arn.as_ref().map(|arn| {
                    observed
                        .tasks
                        .iter()
                        .any(|t| &t.arn == arn && t.desired_status == "RUNNING")
                });
                // Planned here: a light round need not wake it.
                seen.waking = false;
                let memo = seen.memo.filter(|m| ctx.now < m.until);
                let Some(memo) = memo else {
                    if read.agents.contains_key(id) {
                        to_plan.push((id.clone(), None));
                    } else {
                        to_read.push(id.clone());
                    }
                    continue;
                };
                // A memo stands only for the items last read (`Seen::of`): read again or not (the
                // stream showed no change), the items are those it was made from.
                let observed = observed_fingerprint(context, observed);
                if observed == memo.observed {
                    counts.unchanged += 1;
                } else if read.agents.contains_key(id) {
                    to_plan.push((id.clone(), Some(observed)));
                } else {
                    to_read.push(id.clone());
                }
            }
            if !read.full {
                // Resources of an agent the view does not know: its items may be newer than
                // the view (the stream lags), so they are read before it is taken for an orphan.
                for (id, observed) in &fleet.agents {
                    if !state.agents.contains_key(id)
                        && !read.absent.contains(id)
                        && claimed(observed, ctx)
                    {
                        to_read.push(id.clone());
                    }
                }
            }
        }
        let (agents, absent) = self.query(store, to_read, ctx.settings, ctx.now).await?;
        to_plan.extend(agents.keys().map(|id| (id.clone(), None)));
        read.agents.extend(agents);
        read.absent.extend(absent);

        let mut work = Vec::new();
        let mut memos: Vec<(String, Option<Memo>)> = Vec::with_capacity(to_plan.len());
        for (id, observed_fp) in to_plan {
            let Some(agent) = read.agents.get(&id) else {
                continue;
            };
            let observed = fleet.observed(&id);
            counts.planned += 1;
            let plan = plan_for(&id, Some(agent), observed, ctx);
            if plan.has_work() {
                work.push((id.clone(), observed));
                memos.push((id, None));
                continue;
            }
            let memo = items_fingerprint(agent).map(|items| {
                let age = max_age(&id);
                let until = plan
                    .revisit_after_secs
                    .and_then(|secs| i64::try_from(secs).ok())
                    .map_or(age, |secs| secs.min(age));
                Memo {
                    items,
                    observed: observed_fp
                        .unwrap_or_else(|| observed_fingerprint(context, observed)),
                    until: ctx.now.saturating_add(until),
                }
            });
            memos.push((id, memo));
        }
        let mut state = lock(&self.state);
        for (id, memo) in memos {
            if let Some(seen) = state.agents.get_mut(&id) {
                seen.memo = memo;
            }
        }
        let (began, asked) = state
            .full_began
            .take()
            .unwrap_or_else(|| (tokio::time::Instant::now(), state.relists_done));
        state.relisted = Some((began, context));
        state.relists_done = state.relists_done.max(asked);
        // Orphans are few and always planned: their plan is their teardown.
        let mut orphans: Vec<(&'a str, &'a AgentResources)> = fleet
            .agents
            .iter()
            .filter(|(id, observed)| {
                !state.agents.contains_key(id.as_str())
                    && (read.full || read.absent.contains(id.as_str()))
                    && claimed(observed, ctx)
            })
            .map(|(id, observed)| (id.as_str(), observed))
            .collect();
        orphans.sort_unstable_by_key(|(id, _)| *id);
        for (id, observed) in orphans {
            counts.planned += 1;
            work.push((id.to_owned(), observed));
        }
        Ok((work, counts))
    }

    /// The fleet's numbers for the metrics.
    #[must_use]
    pub fn census(&self) -> Census {
        let state = lock(&self.state);
        let mut census = Census::default();
        for seen in state.agents.values() {
            if let Some(phase) = seen.phase {
                *census.phases.entry(phase.as_str().to_owned()).or_default() += 1;
            }
            census.ready += usize::from(seen.ready);
            census.desired_running += usize::from(seen.runs);
        }
        census
    }

    /// The fleet summary, as of the view.
    #[must_use]
    pub fn summary(&self, leader: Option<&str>, now: &str) -> FleetSummary {
        let state = lock(&self.state);
        FleetSummary::of_parts(
            state.agents.values().filter_map(|s| s.summary.as_ref()),
            leader,
            now,
        )
    }

    /// Whether the agent was Ready as of its last read; `false` for an agent the view does not
    /// hold.
    #[must_use]
    pub fn is_ready(&self, agent_id: &str) -> bool {
        lock(&self.state)
            .agents
            .get(agent_id)
            .is_some_and(|s| s.ready)
    }

    /// The agents the view holds.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        lock(&self.state).agents.keys().cloned().collect()
    }
}

/// Whether `observed` holds live resources this installation claims.
fn claimed(observed: &AgentResources, ctx: &Context<'_>) -> bool {
    observed.has_live_resources() && observed.claimed_by(&ctx.settings.installation)
}

/// Between half of [`MAX_AGE_SECS`] and all of it, by agent.
fn max_age(agent_id: &str) -> i64 {
    let mut h = hasher();
    agent_id.hash(&mut h);
    let half = MAX_AGE_SECS / 2;
    half + i64::try_from(h.finish() % u64::try_from(half).unwrap_or(1)).unwrap_or(0)
}

/// The template and the settings, the inputs every plan shares: hashed once per resync.
fn context_fingerprint(settings: &Settings, template: &TaskDefinition) -> u64 {
    let mut h = hasher();
    // Both are the controller's own: their Debug forms name every field.
    format!("{settings:?}{template:?}").hash(&mut h);
    h.finish()
}

/// Whether `needed` agents are more than Queries should read: then a Scan reads the table.
fn many(needed: usize, state: &State) -> bool {
    let n = state.agents.len();
    needed.saturating_mul(QUERY_SHARE) > n && needed > n.div_ceil(SCAN_PAGE_AGENTS)
}

/// foldhash's quality hasher with a fixed seed: fast on the few KB an agent's inputs are,
/// where SipHash took as long as the plan it was to save.
fn hasher() -> impl Hasher {
    foldhash::quality::FixedState::with_seed(0x636c_6177_666c_6565).build_hasher()
}

/// The agent's items, as its plan reads them; `None` for an agent that is not fingerprinted,
/// and so always planned: no spec item, or one that does not validate (its plan reads the
/// item as typed).
fn items_fingerprint(agent: &Agent) -> Option<u64> {
    let item = agent.spec.as_ref()?;
    let spec = item.spec.as_ref().ok()?;
    let mut h = hasher();
    (
        &agent.agent_id,
        &item.meta,
        spec,
        &agent.status,
        &agent.activity,
    )
        .hash(&mut h);
    Some(h.finish())
}

/// What AWS shows of the agent, with the context.
fn observed_fingerprint(context: u64, observed: &AgentResources) -> u64 {
    let mut h = hasher();
    (context, observed).hash(&mut h);
    h.finish()
}
