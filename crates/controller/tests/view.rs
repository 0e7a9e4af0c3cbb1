//! The table's view: a resync reads the whole table only when the view cannot be trusted, and
//! otherwise only the agents the stream showed changed, whose plan had work, whose AWS side
//! changed or whose memo ran out; it finds the same work as planning the whole table
//! (`fleet_plans`). Agents are converged for real by the reconciler on the fake cloud.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use controller::expectations::Expectations;
use controller::fake::{FakeCloud, FakeStore};
use controller::reconcile::{Outcome, Reconciler};
use controller::resync::fleet_plans;
use controller::status::StatusStore;
use controller::view::{MAX_AGE_SECS, Planned, Round, TableView};
use plan::Context;
use plan::fixtures::{self, settings, template};
use plan::observed::Fleet;
use spec::render::{Settings, TaskDefinition};
use spec::{AgentDocument, AgentSpec, AgentStatus};
use store::{Agent, FleetSummary, Snapshot, StoreError};

/// Agents in the fleet: enough that a few changed ones are read one by one.
const AGENTS: usize = 40;

fn spec(agent_id: &str, change: impl FnOnce(&mut AgentDocument)) -> AgentSpec {
    let mut document = AgentDocument {
        secret_keys: Vec::new(),
        ..fixtures::document_of(agent_id)
    };
    change(&mut document);
    document.validate().unwrap()
}

fn id(i: usize) -> String {
    format!("agent-{i:02}")
}

/// Run in the middle of the next Scan.
type Hook = Box<dyn FnOnce() + Send>;

/// The fake table, counting the resync's reads.
#[derive(Default)]
struct Table {
    items: FakeStore,
    scans: AtomicUsize,
    queries: AtomicUsize,
    during_scan: std::sync::Mutex<Option<Hook>>,
}

impl StatusStore for Table {
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.items.get(agent_id).await
    }
    async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        self.scans.fetch_add(1, Ordering::Relaxed);
        let listed = self.items.list().await;
        if let Some(hook) = self.during_scan.lock().unwrap().take() {
            hook();
        }
        listed
    }
    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError> {
        self.items.put_status(agent_id, status, previous).await
    }
    async fn delete_items(&self, agent_id: &str, spec: &Snapshot) -> Result<(), StoreError> {
        self.items.delete_items(agent_id, spec).await
    }
    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        self.items.delete_status(agent_id).await
    }
}

struct World {
    cloud: FakeCloud,
    table: Table,
    settings: Settings,
    template: TaskDefinition,
}

/// What one resync did.
#[derive(Debug, PartialEq, Eq)]
struct Pass {
    work: Vec<String>,
    planned: Planned,
    scans: usize,
    queries: usize,
}

/// The agent [`World::with_idle_agent`] adds.
const IDLE: &str = "agent-idle";

impl World {
    /// The converged world and one more agent that stops after 10 minutes idle, planned at
    /// the returned time (just after its spec was written) through a view that follows.
    async fn with_idle_agent() -> (Self, Fleet, TableView, i64) {
        let world = Self::converged().await;
        world.table.items.apply(
            &spec(IDLE, |d| d.idle_stop_after = Some("10m".into())),
            "cli",
        );
        world.reconcile(IDLE).await;
        let fleet = world.fleet().await;
        let start = now();
        let view = TableView::default();
        view.polled();
        world.pass(&view, &fleet, start).await;
        (world, fleet, view, start)
    }

    /// `AGENTS` agents, each converged to Running by the reconciler.
    async fn converged() -> Self {
        let world = Self {
            cloud: FakeCloud::new(0),
            table: Table::default(),
            settings: settings(),
            template: template(),
        };
        for i in 0..AGENTS {
            world.table.items.apply(&spec(&id(i), |_| {}), "cli");
            world.reconcile(&id(i)).await;
        }
        world
    }

    async fn reconcile(&self, agent_id: &str) {
        for _ in 0..12 {
            let expectations = Expectations::default();
            let reconciler = Reconciler {
                cloud: &self.cloud,
                store: &self.table.items,
                settings: &self.settings,
                template: &self.template,
                expectations: &expectations,
                recovery_days: 7,
                rollout: None,
                last_seen: None,
                metrics: None,
            };
            if let Ok(Outcome::Converged | Outcome::Deleted | Outcome::Revisit(_)) =
                reconciler.reconcile(agent_id, None).await
            {
                return;
            }
        }
        panic!("{agent_id} did not converge");
    }

    /// What AWS shows of every agent, as the resync's snapshot would.
    async fn fleet(&self) -> Fleet {
        use controller::aws::Cloud;
        let mut fleet = Fleet {
            template_arn: String::new(),
            template: self.template.clone(),
            agents: std::collections::HashMap::new(),
        };
        let ids: Vec<String> = {
            let state = self.cloud.state();
            let mut ids: Vec<String> = state
                .tasks
                .iter()
                .filter_map(|(t, _)| t.tags.get(spec::render::tag::AGENT_ID).cloned())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for agent_id in ids {
            let status = self.table.items.status(&agent_id);
            let status = status.as_ref();
            let observed = self
                .cloud
                .observe_agent(
                    &agent_id,
                    status.and_then(|s| s.task_arn.as_deref()),
                    status.and_then(|s| s.access_point_id.as_deref()),
                )
                .await
                .unwrap();
            fleet.agents.insert(agent_id, observed);
        }
        fleet
    }

    fn ctx<'a>(&'a self, now: i64) -> Context<'a> {
        Context {
            settings: &self.settings,
            template: &self.template,
            now,
        }
    }

    /// One resync through `view` at `now`.
    async fn pass(&self, view: &TableView, fleet: &Fleet, now: i64) -> Pass {
        let (scans, queries) = (
            self.table.scans.load(Ordering::Relaxed),
            self.table.queries.load(Ordering::Relaxed),
        );
        let ctx = self.ctx(now);
        let read = view
            .read(&self.table, &self.settings, now, Round::Full, &|_| false)
            .await
            .unwrap();
        let (work, planned) = view.work(&self.table, read, fleet, &ctx).await.unwrap();
        let mut work: Vec<String> = work.into_iter().map(|(id, _)| id).collect();
        work.sort();
        Pass {
            work,
            planned,
            scans: self.table.scans.load(Ordering::Relaxed) - scans,
            queries: self.table.queries.load(Ordering::Relaxed) - queries,
        }
    }

    /// The work planning the whole table finds, which the view's must match.
    async fn whole_table_work(&self, fleet: &Fleet, now: i64) -> Vec<String> {
        let agents = self.table.items.list().await.unwrap();
        let ctx = self.ctx(now);
        let mut work: Vec<String> = fleet_plans(&agents, fleet, &ctx)
            .filter(|e| e.agent.is_none() || e.plan.has_work())
            .map(|e| e.agent_id.to_owned())
            .collect();
        work.sort();
        work
    }

    /// A new image for agent `i`, as a writer would, shown to `view` as the stream would.
    fn new_image(&self, view: &TableView, i: usize) {
        self.table.items.apply(
            &spec(&id(i), |d| d.image = Some("openclaw/openclaw:v9".into())),
            "cli",
        );
        view.changed(&id(i));
    }

    /// Agent `i`'s status edited by hand, shown to `view` as the stream would.
    async fn edit_status(&self, view: &TableView, i: usize) {
        let mut status = self.table.items.status(&id(i)).unwrap();
        status.message = Some("edited by hand".into());
        self.table
            .items
            .put_status(&id(i), &status, None)
            .await
            .unwrap();
        view.changed(&id(i));
    }

    /// Agent `i`'s spec made invalid by hand (a plan that does not exist), shown to `view` as
    /// the stream would.
    fn invalid_spec(&self, view: &TableView, i: usize) {
        self.table
            .items
            .edit(&id(i), |d| d.plan = Some("enormous".into()));
        view.changed(&id(i));
    }

    /// `status` written for `agent_id`, shown to `view` as the stream would.
    async fn write_status(&self, view: &TableView, agent_id: &str, status: &AgentStatus) {
        self.table
            .items
            .put_status(agent_id, status, None)
            .await
            .unwrap();
        view.changed(agent_id);
    }

    /// A light round's read of the changed items, nothing busy.
    async fn light_read(&self, view: &TableView) {
        view.read(&self.table, &self.settings, now(), Round::Light, &|_| false)
            .await
            .unwrap();
    }

    /// A view trusted from here on: a poll, then a read of the whole table.
    async fn followed(&self, fleet: &Fleet) -> TableView {
        let view = TableView::default();
        view.polled();
        let first = self.pass(&view, fleet, now()).await;
        assert_eq!(first.scans, 1);
        view
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn planned(planned: usize, unchanged: usize) -> Planned {
    Planned { planned, unchanged }
}

#[tokio::test]
async fn a_followed_view_reads_nothing_when_nothing_changed_and_a_cold_one_scans() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    assert!(world.whole_table_work(&fleet, now()).await.is_empty());
    let view = TableView::default();
    // Never polled: the stream is not followed, every resync reads the whole table. The
    // fingerprints still spare the plans.
    let first = world.pass(&view, &fleet, now()).await;
    assert_eq!(
        (first.scans, first.queries, first.planned),
        (1, 0, planned(AGENTS, 0))
    );
    assert!(first.work.is_empty(), "{first:?}");
    let second = world.pass(&view, &fleet, now()).await;
    assert_eq!(
        (second.scans, second.queries, second.planned),
        (1, 0, planned(0, AGENTS))
    );
    // A poll came after that read: one more read of the whole table, then none.
    view.polled();
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    let idle = world.pass(&view, &fleet, now()).await;
    assert_eq!(
        idle,
        Pass {
            work: Vec::new(),
            planned: planned(0, AGENTS),
            scans: 0,
            queries: 0
        }
    );
    // Records lost: the whole table again, and trusted only after the next poll.
    view.invalidate();
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    view.polled();
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 0);
}

#[tokio::test]
async fn a_change_the_stream_shows_is_read_alone_and_planned_and_many_are_scanned() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    // A new image for one agent.
    world.new_image(&view, 3);
    let pass = world.pass(&view, &fleet, now()).await;
    assert_eq!(pass.work, world.whole_table_work(&fleet, now()).await);
    assert_eq!(
        pass,
        Pass {
            work: vec![id(3)],
            planned: planned(1, AGENTS - 1),
            scans: 0,
            queries: 1
        }
    );
    // Its plan had work: it is read and planned again until it converges.
    let again = world.pass(&view, &fleet, now()).await;
    assert_eq!((again.queries, again.work.clone()), (1, vec![id(3)]));
    world.reconcile(&id(3)).await;
    view.changed(&id(3));
    let fleet = world.fleet().await;
    let settled = world.pass(&view, &fleet, now()).await;
    assert_eq!(
        (settled.work.len(), settled.queries, settled.scans),
        (0, 1, 0),
        "{settled:?}"
    );
    assert_eq!(
        world.pass(&view, &fleet, now()).await.planned,
        planned(0, AGENTS)
    );
    // A status written by hand: read and planned again.
    world.edit_status(&view, 5).await;
    let edited = world.pass(&view, &fleet, now()).await;
    assert_eq!((edited.queries, edited.planned.planned), (1, 1));
    assert_eq!(edited.work, world.whole_table_work(&fleet, now()).await);
    // More changed agents than a twentieth of the fleet: one Scan instead.
    for i in 10..13 {
        view.changed(&id(i));
    }
    let many = world.pass(&view, &fleet, now()).await;
    assert_eq!((many.scans, many.queries), (1, 0), "{many:?}");
}

#[tokio::test]
async fn a_crashed_task_reads_its_agent_alone_and_enqueues_it() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    let mut crashed = fleet.agents.clone();
    crashed.get_mut(&id(7)).unwrap().tasks.clear();
    let crashed = Fleet {
        agents: crashed,
        ..world.fleet().await
    };
    let pass = world.pass(&view, &crashed, now()).await;
    assert_eq!(pass.work, vec![id(7)]);
    assert_eq!(pass.work, world.whole_table_work(&crashed, now()).await);
    assert_eq!((pass.scans, pass.queries), (0, 1));
}

#[tokio::test]
async fn an_agent_is_read_again_when_its_plan_said_to_look_again_and_within_the_max_age() {
    let (world, fleet, view, start) = World::with_idle_agent().await;
    let idle = IDLE;
    let before = world.pass(&view, &fleet, start + 598).await;
    assert_eq!((before.queries, before.work.len()), (0, 0), "{before:?}");
    // The idle deadline (the spec was written just before `start`): read and stopped.
    let deadline = world.pass(&view, &fleet, start + 601).await;
    assert_eq!(deadline.work, vec![idle.to_owned()]);
    assert_eq!(
        deadline.work,
        world.whole_table_work(&fleet, start + 601).await
    );
    assert_eq!((deadline.queries, deadline.scans), (1, 0));

    // Every agent is planned again within the max age, never before half of it, and not all
    // at once.
    let view = world.followed(&fleet).await;
    let t = now();
    let early = world.pass(&view, &fleet, t + MAX_AGE_SECS / 2 - 1).await;
    assert_eq!(early.planned.planned, 1, "only the idle one: {early:?}");
    let mut again = 0;
    for k in 1..=10 {
        let pass = world
            .pass(&view, &fleet, t + MAX_AGE_SECS / 2 + k * MAX_AGE_SECS / 20)
            .await;
        // The idle one has work at every pass.
        let others = pass.planned.planned - 1;
        assert!(others <= AGENTS / 2, "spread: {pass:?}");
        again += others;
    }
    assert_eq!(again, AGENTS, "each planned again once");
}

#[tokio::test]
async fn invalid_specs_deleted_agents_and_orphans_are_always_planned() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    // A spec that does not validate, written by hand.
    world.invalid_spec(&view, 1);
    // An agent whose items are gone, with its resources still there: an orphan.
    world.table.items.delete_status(&id(2)).await.unwrap();
    view.changed(&id(2));
    for _ in 0..2 {
        let pass = world.pass(&view, &fleet, now()).await;
        assert_eq!(pass.work, world.whole_table_work(&fleet, now()).await);
        assert!(pass.work.contains(&id(1)), "{pass:?}");
        assert!(pass.work.contains(&id(2)), "the orphan: {pass:?}");
        assert_eq!(pass.scans, 0);
    }
    assert!(!view.ids().contains(&id(2)), "gone from the view");
}

#[tokio::test]
async fn resources_of_an_agent_the_view_does_not_know_are_read_before_taken_for_an_orphan() {
    let world = World::converged().await;
    let view = world.followed(&world.fleet().await).await;
    // Written and reconciled before the stream showed it to the view.
    world.table.items.apply(&spec("agent-new", |_| {}), "cli");
    world.reconcile("agent-new").await;
    let fleet = world.fleet().await;
    let pass = world.pass(&view, &fleet, now()).await;
    assert_eq!(pass.work, world.whole_table_work(&fleet, now()).await);
    assert!(pass.work.is_empty(), "converged, not torn down: {pass:?}");
    assert_eq!((pass.queries, pass.scans), (1, 0));
    assert!(view.ids().contains(&"agent-new".to_owned()));
}

#[tokio::test]
async fn a_failed_read_keeps_what_was_to_be_read() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    world.new_image(&view, 4);
    world
        .table
        .items
        .fail_next(StoreError::Conflict { agent_id: id(4) });
    assert!(
        view.read(&world.table, &world.settings, now(), Round::Full, &|_| {
            false
        })
        .await
        .is_err()
    );
    let pass = world.pass(&view, &fleet, now()).await;
    assert_eq!(pass.work, vec![id(4)]);
}

#[tokio::test]
async fn the_census_and_the_fleet_summary_are_the_tables() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    world.invalid_spec(&view, 1);
    world.table.items.request_deletion(&id(2));
    view.changed(&id(2));
    world.pass(&view, &fleet, now()).await;
    let agents = world.table.items.list().await.unwrap();
    let at = "2026-11-30T00:00:00Z";
    assert_eq!(
        view.summary(Some("me"), at),
        FleetSummary::of(&agents, Some("me"), at)
    );
    let census = view.census();
    assert_eq!(
        census.phases.values().sum::<i64>(),
        i64::try_from(AGENTS).unwrap()
    );
    let ready = agents
        .iter()
        .filter_map(|a| a.status.as_ref())
        .filter(|s| {
            s.condition(spec::ConditionKind::Ready)
                .is_some_and(|c| c.status == spec::ConditionStatus::True)
        })
        .count();
    assert_eq!(census.ready, ready);
    // The invalid spec and the deleted agent are not to run.
    assert_eq!(census.desired_running, AGENTS - 2, "{census:?}");
}

#[tokio::test]
async fn an_invalidation_during_a_read_of_the_whole_table_leaves_the_view_cold() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = std::sync::Arc::new(TableView::default());
    view.polled();
    // Records are lost (or a poll fails) while the Scan is out: what it read may miss them.
    let during = std::sync::Arc::clone(&view);
    *world.table.during_scan.lock().unwrap() = Some(Box::new(move || during.invalidate()));
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    view.polled();
    assert_eq!(
        world.pass(&view, &fleet, now()).await.scans,
        1,
        "read whole again"
    );
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 0);
}

#[tokio::test]
async fn a_resync_that_fails_after_its_read_leaves_no_memo_for_what_it_did_not_plan() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    world.edit_status(&view, 5).await;
    // The read happens; the snapshot of AWS fails, and no plan is made.
    let read = view
        .read(&world.table, &world.settings, now(), Round::Full, &|_| {
            false
        })
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    drop(read);
    let pass = world.pass(&view, &fleet, now()).await;
    assert_eq!(pass.work, world.whole_table_work(&fleet, now()).await);
    assert_eq!(pass.work, vec![id(5)], "{pass:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_not_polled_for_half_a_minute_is_not_followed() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 0);
    // The watch stopped: no poll, no invalidation.
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    // Polled again: trusted after one more read of the whole table, which the poll came
    // before.
    view.polled();
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 0);
}

const RELIST: std::time::Duration = std::time::Duration::from_secs(600);

impl World {
    /// The ARNs of the tasks whose desired status is RUNNING, as ListTasks lists them.
    fn running(&self) -> std::collections::HashSet<String> {
        self.cloud
            .state()
            .tasks
            .iter()
            .filter(|(t, _)| t.desired_status == "RUNNING")
            .map(|(t, _)| t.arn.clone())
            .collect()
    }

    fn task_of(&self, i: usize) -> String {
        self.table.items.status(&id(i)).unwrap().task_arn.unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn the_round_is_full_when_the_view_the_template_or_the_interval_says_so_and_light_between() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let round = |view: &TableView| view.round(&world.settings, &world.template, RELIST);
    // Never planned: full.
    assert_eq!(round(&TableView::default()), Round::Full);
    let view = world.followed(&fleet).await;
    assert_eq!(round(&view), Round::Light);
    // Another template (a new image for the whole fleet): full, since no full round planned
    // with it; the template the last one planned with still gives a light round.
    let mut template = world.template.clone();
    template.cpu = Some("2048".into());
    assert_eq!(view.round(&world.settings, &template, RELIST), Round::Full);
    assert_eq!(round(&view), Round::Light);
    // Asked for.
    view.relist();
    assert_eq!(round(&view), Round::Full);
    world.pass(&view, &fleet, now()).await;
    assert_eq!(round(&view), Round::Light);
    // More changed agents than Queries should read: a full round, which Scans.
    for i in 0..3 {
        world.edit_status(&view, i).await;
    }
    assert_eq!(round(&view), Round::Full);
    assert_eq!(world.pass(&view, &fleet, now()).await.scans, 1);
    assert_eq!(round(&view), Round::Light);
    // Records lost.
    view.invalidate();
    assert_eq!(round(&view), Round::Full);
    view.polled();
    world.pass(&view, &fleet, now()).await;
    assert_eq!(round(&view), Round::Light);
    // The stream unpolled for half a minute.
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    assert_eq!(round(&view), Round::Full);
    view.polled();
    assert_eq!(round(&view), Round::Light);
    // The interval since the last full round.
    tokio::time::advance(RELIST - std::time::Duration::from_secs(31)).await;
    view.polled();
    assert_eq!(round(&view), Round::Full);
}

#[tokio::test]
async fn a_light_round_reads_only_changed_items_and_enqueues_only_agents_whose_task_left_the_listing()
 {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    assert!(view.due(&world.running(), now()).is_empty());
    // A status edited: read alone, for the metrics. A memo ran out: not read until a full
    // round (it plans nothing).
    world.edit_status(&view, 7).await;
    let queries = world.table.queries.load(Ordering::Relaxed);
    let read = view
        .read(
            &world.table,
            &world.settings,
            now() + MAX_AGE_SECS,
            Round::Light,
            &|_| false,
        )
        .await
        .unwrap();
    assert_eq!((read.len(), read.full()), (1, false));
    assert_eq!(world.table.queries.load(Ordering::Relaxed) - queries, 1);
    // An agent whose reconcile is queued is left for later: the reconcile writes it again.
    world.edit_status(&view, 8).await;
    let busy = id(8);
    let read = view
        .read(&world.table, &world.settings, now(), Round::Light, &|id| {
            id == busy
        })
        .await
        .unwrap();
    assert_eq!(read.len(), 0);
    // Agent 5's task stops behind the controller's back: it leaves the running listing, and
    // the light round enqueues agent 5 once.
    world.cloud.exit(&world.task_of(5), "agent", 137);
    assert_eq!(view.due(&world.running(), now()), vec![id(5)]);
    assert!(view.due(&world.running(), now()).is_empty());
    // Its reconcile relaunches it; the status records the new task, which the next listing
    // shows, and a crash of that one is seen too.
    world.reconcile(&id(5)).await;
    view.changed(&id(5));
    world.light_read(&view).await;
    assert!(view.due(&world.running(), now()).is_empty());
    world.cloud.exit(&world.task_of(5), "agent", 137);
    assert_eq!(view.due(&world.running(), now()), vec![id(5)]);
    // Agent 6's task stops and is relaunched between two listings, and the new one stops
    // before any listing saw it: the first listing since it was recorded lacks it, once.
    world.cloud.exit(&world.task_of(6), "agent", 137);
    world.reconcile(&id(6)).await;
    view.changed(&id(6));
    world.light_read(&view).await;
    world.cloud.exit(&world.task_of(6), "agent", 137);
    assert_eq!(view.due(&world.running(), now()), vec![id(6)]);
    assert!(view.due(&world.running(), now()).is_empty());
    // The next full round finds what planning the whole table finds: agents 5's and 6's
    // stopped tasks, and the statuses of agents 7 and 8 edited by hand, which light rounds
    // read (8's once it was no longer busy) but did not plan.
    let fleet = world.fleet().await;
    let pass = world.pass(&view, &fleet, now()).await;
    assert_eq!(pass.work, world.whole_table_work(&fleet, now()).await);
    assert_eq!(pass.work, vec![id(5), id(6), id(7), id(8)]);
}

#[tokio::test]
async fn a_light_round_enqueues_an_agent_whose_plan_said_to_look_again_by_now() {
    let (world, _, view, start) = World::with_idle_agent().await;
    let idle = IDLE;
    // Its status edited before the deadline (which drops its memo) and read by a light
    // round: the deadline stands.
    let mut status = world.table.items.status(idle).unwrap();
    status.message = Some("edited by hand".into());
    world
        .table
        .items
        .put_status(idle, &status, None)
        .await
        .unwrap();
    view.changed(idle);
    view.read(
        &world.table,
        &world.settings,
        start + 1,
        Round::Light,
        &|_| false,
    )
    .await
    .unwrap();
    // Before its idle deadline, nothing; at it, the agent alone (its task is still listed),
    // once; a memo that ran out only by the view's maximum age waits for a full round.
    assert!(view.due(&world.running(), start + 598).is_empty());
    assert_eq!(
        view.due(&world.running(), start + 601),
        vec![idle.to_owned()]
    );
    assert!(view.due(&world.running(), start + 602).is_empty());
    assert!(view.due(&world.running(), start + MAX_AGE_SECS).is_empty());
}

#[tokio::test]
async fn a_relist_asked_during_a_full_round_makes_the_next_round_full() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    let round = |view: &TableView| view.round(&world.settings, &world.template, RELIST);
    assert_eq!(round(&view), Round::Light);
    view.relist();
    assert_eq!(round(&view), Round::Full);
    // Asked again while that full round plans: the round after it is full too.
    view.relist();
    world.pass(&view, &fleet, now()).await;
    assert_eq!(round(&view), Round::Full);
    world.pass(&view, &fleet, now()).await;
    assert_eq!(round(&view), Round::Light);
}

#[tokio::test]
async fn a_light_round_wakes_an_idle_agent_whose_items_say_it_runs() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    // Agent 9 stopped for idleness, and activity reported since (its items say it runs now):
    // the stream does not enqueue activity, the light round that reads it does, once.
    let mut status = world.table.items.status(&id(9)).unwrap();
    status.phase = spec::Phase::Idle;
    world.write_status(&view, &id(9), &status).await;
    assert!(view.due(&world.running(), now()).is_empty(), "not read yet");
    world.light_read(&view).await;
    assert_eq!(view.due(&world.running(), now()), vec![id(9)]);
    assert!(view.due(&world.running(), now()).is_empty());
    // Its reconcile failed and wrote the same phase again: read again, not woken again (a
    // full round retries it).
    status.message = Some("CreateRole: AccessDenied".into());
    world.write_status(&view, &id(9), &status).await;
    world.light_read(&view).await;
    assert!(view.due(&world.running(), now()).is_empty());
    assert!(view.is_ready(&id(1)) && !view.is_ready("absent"));
}

#[tokio::test]
async fn a_relist_is_answered_only_by_a_full_round_that_planned() {
    let world = World::converged().await;
    let fleet = world.fleet().await;
    let view = world.followed(&fleet).await;
    let round = |view: &TableView| view.round(&world.settings, &world.template, RELIST);
    view.relist();
    // The full round it gets fails before its plans: the next round is full again.
    assert_eq!(round(&view), Round::Full);
    assert_eq!(round(&view), Round::Full);
    world.pass(&view, &fleet, now()).await;
    assert_eq!(round(&view), Round::Light);
}
