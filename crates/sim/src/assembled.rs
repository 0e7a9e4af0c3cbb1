//! The controller, assembled from the controller library's public pieces as
//! `controller::runtime::Controller` assembles them over the real AWS and table: the work
//! queue, a worker per slot that reconciles with the [`Reconciler`] and applies
//! [`policy::decide`], the resync that reads the table through the
//! [`controller::view::TableView`], plans the agents whose inputs changed and enqueues the
//! agents with work, rollout pacing and expectations. Only the two ports differ: [`Account`]
//! for AWS and [`Table`] for DynamoDB.
//!
//! What the runtime has and this leaves out: the lease (one replica), the stream watch (the
//! simulation enqueues a changed agent as the watch would, and hands the view the agents whose
//! items changed at each resync), the IAM drift pass, and `/metrics` serving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloud::Calls;
use controller::expectations::Expectations;
use controller::metrics::Metrics;
use controller::policy::{self, Requeue};
use controller::queue::{Backoff, FOLLOW_UP_HORIZON, Queue};
use controller::reconcile::Reconciler;
use controller::resync::ResyncError;
use controller::rollout::Rollout;
use controller::view::{Planned, Round};
use plan::Context;
use plan::observed::AgentResources;
use spec::render::{Settings, TaskDefinition};

use crate::account::Account;
use crate::table::Table;

/// How the assembled controller runs (the runtime's `Config`, less what it leaves out).
#[derive(Debug, Clone)]
pub struct Config {
    pub workers: usize,
    pub resync_interval: Duration,
    pub max_concurrent_replacements: usize,
    pub recovery_days: i64,
    pub relist_interval: Duration,
}

pub struct AssembledController {
    pub account: Arc<Account>,
    pub table: Arc<Table>,
    settings: Settings,
    template: TaskDefinition,
    config: Config,
    queue: Queue,
    metrics: Arc<Metrics>,
    expectations: Expectations,
    last_seen: controller::last_seen::LastSeen,
    view: controller::view::TableView,
    rollout: Rollout,
    /// What the last resync saw of each agent it enqueued, as the runtime keeps it.
    snapshots: Mutex<HashMap<String, AgentResources>>,
    /// CPU time of the last resync's parts: the fleet snapshot (the fake's answers turned
    /// into the controller's types), the table's reads, the plans.
    pub last_resync: Mutex<ResyncTimes>,
    resyncing: tokio::sync::Mutex<()>,
}

/// Where a resync's CPU time went, in seconds.
#[derive(Debug, Clone, Default)]
pub struct ResyncTimes {
    /// All of it, from the moment it held the resync lock: a resync the interval's loop had
    /// started first is not counted in the one that waited for it.
    pub total: crate::heap::Cpu,
    pub wall: f64,
    /// Its reads of AWS and of the table, by operation.
    pub calls: std::collections::BTreeMap<String, u64>,
    pub snapshot: crate::heap::Cpu,
    pub scan: crate::heap::Cpu,
    /// The plans, the enqueues, and dropping the snapshot.
    pub plans: crate::heap::Cpu,
    /// The controller's heap the Scan's agents and the fleet snapshot took while the resync
    /// held them: its transient, on top of what the controller holds.
    pub scan_bytes: usize,
    pub fleet_bytes: usize,
    /// Agents planned, and left unplanned as unchanged since a plan that found no work.
    pub planned: Planned,
    /// Agents whose items the resync read, and whether it read the whole table (a Scan).
    pub read: usize,
    pub full: bool,
    pub round: Round,
}

impl AssembledController {
    #[must_use]
    pub fn new(
        account: Arc<Account>,
        table: Arc<Table>,
        settings: Settings,
        template: TaskDefinition,
        config: Config,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(&Calls::default()));
        Arc::new(Self {
            account,
            table,
            queue: Queue::with_metrics(Backoff::default(), metrics.workqueue()),
            rollout: Rollout::new(config.max_concurrent_replacements),
            metrics,
            settings,
            template,
            config,
            expectations: Expectations::default(),
            last_seen: controller::last_seen::LastSeen::default(),
            view: controller::view::TableView::default(),
            snapshots: Mutex::default(),
            last_resync: Mutex::default(),
            resyncing: tokio::sync::Mutex::new(()),
        })
    }

    /// The next resync is a full round.
    pub fn relist(&self) {
        self.view.relist();
    }

    /// Asks for a reconcile of one agent now, as the stream watch does on a change.
    pub fn enqueue(&self, agent_id: &str) {
        self.queue.add(agent_id);
    }

    /// Agents waiting in the queue or being reconciled.
    #[must_use]
    pub fn busy(&self) -> usize {
        let stats = self.queue.stats();
        stats.queued + stats.in_process
    }

    /// Reconcile errors so far.
    #[must_use]
    pub fn reconcile_errors(&self) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("controller_runtime_reconcile_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn worker(self: Arc<Self>) {
        while let Some(item) = self.queue.get().await {
            self.reconcile_one(&item.agent_id).await;
            self.queue.done(&item.agent_id);
        }
    }

    async fn reconcile_one(&self, agent_id: &str) {
        let started = tokio::time::Instant::now();
        let snapshot = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(agent_id);
        let reconciler = Reconciler {
            cloud: &*self.account,
            store: &*self.table,
            settings: &self.settings,
            template: &self.template,
            expectations: &self.expectations,
            recovery_days: self.config.recovery_days,
            rollout: Some(&self.rollout),
            last_seen: Some(&self.last_seen),
            metrics: Some(&self.metrics),
        };
        let result = reconciler.reconcile(agent_id, snapshot).await;
        let decision = policy::decide(&result, self.config.resync_interval);
        match decision.requeue {
            Requeue::Forget => self.queue.forget(agent_id),
            Requeue::After(delay) => {
                self.queue.forget(agent_id);
                self.queue.add_after(agent_id, delay);
            }
            Requeue::Backoff => {
                self.queue.retry(agent_id);
            }
        }
        // A slot this reconcile freed goes to the replacements waiting in line.
        for waiting in self.rollout.admit() {
            self.queue.add_follow_up(&waiting);
        }
        self.metrics.reconciled(decision.result, started.elapsed());
    }

    /// One resync, as the runtime's: the table's items that changed (or a Scan of them all),
    /// the fleet snapshot, a plan per agent whose inputs changed, and every agent with work
    /// (and every orphan) enqueued with what the snapshot saw of it. Returns how many.
    ///
    /// # Errors
    /// A failed read.
    pub async fn resync(&self) -> Result<usize, ResyncError> {
        // One at a time, as the runtime's resync loop runs them: a resync of 100,000 agents
        // takes minutes of virtual time, and the interval's next one must not interleave with
        // a measured one.
        let _one = self.resyncing.lock().await;
        let (wall, cpu) = (std::time::Instant::now(), crate::heap::cpu_now());
        let fleet_before = self.account.fleet_call_counts().0;
        let table_before = self.table.call_counts();
        // The watch, as the runtime's follows the stream: every agent whose items changed.
        for agent_id in self.table.take_changes() {
            self.view.changed(&agent_id);
        }
        self.view.polled();
        let clock = tokio::time::Instant::now();
        let started = crate::heap::cpu_now();
        let before = crate::heap::controller_bytes();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let template = self
            .account
            .describe_template()
            .await
            .map_err(cloud::ObserveError::from)?;
        let round = self
            .view
            .round(&self.settings, &template, self.config.relist_interval);
        let read = self
            .view
            .read(&*self.table, &self.settings, now, round, &|id| {
                self.queue.has_within(id, FOLLOW_UP_HORIZON)
            })
            .await?;
        let scan_bytes = crate::heap::controller_bytes().saturating_sub(before);
        let (read_agents, full) = (read.len(), read.full());
        let scanned = crate::heap::cpu_now();
        let mut due = Vec::new();
        let snapshot = match round {
            Round::Full => Some(
                self.account
                    .observe_fleet(&self.view.recorded())
                    .await
                    .map_err(cloud::ObserveError::from)?,
            ),
            Round::Light => {
                let running: std::collections::HashSet<String> = self
                    .account
                    .list_running_tasks()
                    .await
                    .map_err(cloud::ObserveError::from)?
                    .into_iter()
                    .collect();
                due = self.view.due(&running, now);
                None
            }
        };
        let observed = crate::heap::cpu_now();
        let fleet_bytes = crate::heap::controller_bytes().saturating_sub(before + scan_bytes);
        self.expectations.expire();
        self.last_seen.expire();
        let ctx = Context {
            settings: &self.settings,
            template: &template,
            now,
        };
        let (work, planned) = match &snapshot {
            Some(fleet) => self.view.work(&*self.table, read, fleet, &ctx).await?,
            None => (Vec::new(), Planned::default()),
        };
        let census = self.view.census();
        self.metrics.agents_by_phase(&census.phases);
        self.metrics
            .set_readiness(census.ready, census.desired_running);
        self.metrics.resynced(clock.elapsed(), planned);
        let n = controller::resync::enqueue(&self.queue, &self.rollout, &self.snapshots, work, due);
        // Dropping the snapshot is part of the resync's cost (a quarter of it at 100,000).
        let snapshot_cpu = observed - scanned;
        drop(snapshot);
        let mut calls = self.account.fleet_call_counts().0;
        for (op, n) in &mut calls {
            *n -= fleet_before.get(op).copied().unwrap_or(0);
        }
        for (op, n) in self.table.call_counts() {
            let n = n - table_before.get(op).copied().unwrap_or(0);
            *calls.entry(op.to_owned()).or_default() += n;
        }
        calls.retain(|_, n| *n > 0);
        *self
            .last_resync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = ResyncTimes {
            total: crate::heap::cpu_now() - cpu,
            wall: wall.elapsed().as_secs_f64(),
            calls,
            snapshot: snapshot_cpu,
            scan: scanned - started,
            plans: crate::heap::cpu_now() - observed,
            scan_bytes,
            fleet_bytes,
            planned,
            read: read_agents,
            full,
            round,
        };
        Ok(n)
    }

    /// Runs the workers, and a resync every interval, until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| tokio::spawn(Arc::clone(&self).worker()))
            .collect();
        let resyncs = {
            let this = Arc::clone(&self);
            async move {
                let mut tick = tokio::time::interval(this.config.resync_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let _ = this.resync().await;
                }
            }
        };
        // ECS task-state events enqueue their agent, as `controller::events` does.
        let events = {
            let this = Arc::clone(&self);
            let mut events = self.account.task_events();
            async move {
                while let Some(agent) = events.recv().await {
                    this.queue.add_follow_up(&agent);
                }
            }
        };
        tokio::select! {
            () = resyncs => {}
            () = events => {}
            () = shutdown => {}
        }
        self.queue.shut_down();
        for worker in workers {
            let _ = worker.await;
        }
    }
}
