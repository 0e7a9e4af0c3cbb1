//! The long-running controller: shared state, the workers that take agents from the queue,
//! reconcile them and apply the requeue policy, and the loop that runs the resync on time.
//! The resync, the watch and the HTTP side are in their own modules.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloud::Aws;
use plan::observed::AgentResources;
use spec::failure::ErrorClass;
use spec::render::{Settings, TaskDefinition, TaskRole};
use store::Store;
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use crate::aws::RealCloud;
use crate::expectations::Expectations;
use crate::leader::{Elector, Fence};
use crate::metrics::Metrics;
use crate::policy::{self, Requeue};
use crate::queue::{Backoff, Queue};
use crate::reconcile::Reconciler;
use crate::rollout::Rollout;
use cloud::Limits;

/// How often the resync loop looks whether a resync is due (or leadership came).
const RESYNC_CHECK: Duration = Duration::from_millis(500);

/// How often the work in process is reported, as client-go's `updateUnfinishedWorkLoop`.
const UNFINISHED_WORK_TICK: Duration = Duration::from_millis(500);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub template: String,
    pub workers: usize,
    pub resync_interval: Duration,
    pub max_concurrent_replacements: usize,
    pub recovery_days: i64,
    /// How often every agent's task role is read (GetRole, GetRolePolicy) and put back when
    /// changed: a fresh reconcile per agent, spread over the interval, outside the resync.
    pub iam_drift_interval: Duration,
    /// IAM's role quota of the account (`clawfleet_agent_roles_quota`).
    pub iam_role_quota: u64,
    /// How often a resync lists every resource of the fleet (a full round); the resyncs in
    /// between list the running tasks alone (`controller::view::Round`).
    pub relist_interval: Duration,
}

/// The controller's shared state.
pub struct Controller {
    pub(crate) cloud: RealCloud,
    /// Every AWS call's gate (rate limits, and the lease's fence), for the clients made after
    /// the controller, such as the task-events queue.
    pub(crate) gate: cloud::SharedGate,
    pub(crate) store: Store,
    pub(crate) settings: Settings,
    pub(crate) config: Config,
    pub(crate) queue: Queue,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) expectations: Expectations,
    pub(crate) last_seen: crate::last_seen::LastSeen,
    /// The table as the resync last read it, kept current by the stream.
    pub(crate) view: crate::view::TableView,
    /// Held by the resync running.
    pub(crate) resyncing: tokio::sync::Mutex<()>,
    pub(crate) rollout: Rollout,
    /// What the last resync saw of each agent it enqueued: the first reconcile after a resync
    /// starts from it, later ones (requeues) observe afresh.
    pub(crate) snapshots: Mutex<HashMap<String, AgentResources>>,
    pub(crate) template: tokio::sync::RwLock<Option<TaskDefinition>>,
    pub(crate) ready: AtomicBool,
    /// The last failure to read the task-events queue, while it lasts: `/readyz` shows it.
    task_events_problem: Mutex<Option<String>>,
    /// The last terminal store failure, until a reconcile writes again: `/readyz` shows it.
    store_problem: Mutex<Option<String>>,
    /// `None`: a single replica, always leading.
    elector: Option<Arc<Elector>>,
}

impl Controller {
    /// A controller whose every AWS call passes `limits`, and, with an elector, acts only
    /// while it holds the lease (every mutating call checks it).
    #[must_use]
    pub fn new(
        aws: Aws,
        store: Store,
        settings: Settings,
        config: Config,
        limits: Arc<Limits>,
        metrics: Arc<Metrics>,
        elector: Option<Arc<Elector>>,
    ) -> Arc<Self> {
        let gate: cloud::SharedGate = match &elector {
            Some(elector) => Arc::new(Fence {
                limits,
                elector: Arc::clone(elector),
            }),
            None => limits,
        };
        if elector.is_none() {
            metrics.set_leader(true);
        }
        metrics.set_agent_roles_quota(config.iam_role_quota);
        let aws = aws.with_gate(&gate);
        Arc::new(Self {
            gate,
            cloud: RealCloud {
                aws,
                settings: settings.clone(),
            },
            store,
            rollout: Rollout::new(config.max_concurrent_replacements),
            settings,
            config,
            queue: Queue::with_metrics(Backoff::default(), metrics.workqueue()),
            metrics,
            expectations: Expectations::default(),
            last_seen: crate::last_seen::LastSeen::default(),
            view: crate::view::TableView::default(),
            resyncing: tokio::sync::Mutex::new(()),
            snapshots: Mutex::default(),
            template: tokio::sync::RwLock::new(None),
            ready: AtomicBool::new(false),
            store_problem: Mutex::new(None),
            task_events_problem: Mutex::new(None),
            elector,
        })
    }

    /// Whether this replica leads (always, without an elector).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.elector.as_ref().is_none_or(|e| e.is_leader())
    }

    /// The replica holding the lease, for the fleet summary; `None` without election.
    #[must_use]
    pub fn leader_name(&self) -> Option<&str> {
        self.elector.as_ref().map(|e| e.holder())
    }

    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the first resync has completed.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last terminal store failure, while it lasts.
    #[must_use]
    pub fn store_problem(&self) -> Option<String> {
        self.store_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last failure to read the task-events queue, while it lasts.
    #[must_use]
    pub fn task_events_problem(&self) -> Option<String> {
        self.task_events_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_task_events_problem(&self, problem: Option<String>) {
        *self
            .task_events_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problem;
    }

    /// Asks for a reconcile of one agent now (a watch event).
    pub fn enqueue(&self, agent_id: &str) {
        self.queue.add(agent_id);
    }

    /// Counters of the work queue (adds, retries, depth).
    #[must_use]
    pub fn queue_stats(&self) -> crate::queue::QueueStats {
        self.queue.stats()
    }

    async fn worker(self: Arc<Self>) {
        while let Some(item) = self.queue.get().await {
            let agent_id = item.agent_id;
            let span = info_span!("reconcile", agent_id = %agent_id);
            self.reconcile_one(&agent_id).instrument(span).await;
            self.queue.done(&agent_id);
        }
    }

    /// The template, as the last resync read it; before the first resync (a watch event came
    /// first) it is read now.
    async fn template(&self) -> Result<TaskDefinition, cloud::ObserveError> {
        if let Some(t) = self.template.read().await.clone() {
            return Ok(t);
        }
        let (_, t) = self
            .cloud
            .aws
            .template(&self.config.template, &self.settings)
            .await?;
        *self.template.write().await = Some(t.clone());
        Ok(t)
    }

    async fn reconcile_one(&self, agent_id: &str) {
        if !self.is_leader() {
            // A standby reconciles nothing; the leader's resync covers every agent.
            self.queue.forget(agent_id);
            return;
        }
        let started = Instant::now();
        let template = match self.template().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "template unavailable; backing off");
                self.queue.retry(agent_id);
                self.metrics
                    .reconciled(policy::Result::Error, started.elapsed());
                return;
            }
        };
        let snapshot = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(agent_id);
        let reconciler = Reconciler {
            cloud: &self.cloud,
            store: &self.store,
            settings: &self.settings,
            template: &template,
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
        // A slot this reconcile freed goes to the replacements waiting in line, ahead of
        // fresh work: the slot is idle until its replacement's next step runs.
        for waiting in self.rollout.admit() {
            self.queue.add_follow_up(&waiting);
        }
        if let Some(class) = decision.store_error {
            self.metrics.store_error(class);
        }
        let mut problem = self
            .store_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(outcome) => {
                *problem = None;
                info!(outcome = ?outcome, requeue = ?decision.requeue, "reconciled");
            }
            Err(e) => {
                if decision.store_error == Some(ErrorClass::Terminal) {
                    *problem = Some(e.to_string());
                }
                warn!(error = %e, class = %e.class(), requeue = ?decision.requeue, "reconcile failed");
            }
        }
        drop(problem);
        self.metrics.reconciled(decision.result, started.elapsed());
    }

    /// Runs workers and the resync loop until `shutdown` resolves; then stops resyncing,
    /// lets in-flight reconciles finish and drains the queue.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| tokio::spawn(Arc::clone(&self).worker()))
            .collect();
        let resyncs = {
            let this = Arc::clone(&self);
            async move {
                // Checked often, so that a replica that becomes leader resyncs at once.
                let mut tick = tokio::time::interval(RESYNC_CHECK.min(this.config.resync_interval));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last: Option<Instant> = None;
                loop {
                    tick.tick().await;
                    if !this.is_leader() {
                        last = None;
                        continue;
                    }
                    if last.is_some_and(|at| at.elapsed() < this.config.resync_interval) {
                        continue;
                    }
                    last = Some(Instant::now());
                    match this.resync().instrument(info_span!("resync")).await {
                        Ok(n) => info!(enqueued = n, "resync"),
                        Err(e) => error!(error = %e, "resync failed; the next one retries"),
                    }
                }
            }
        };
        let unfinished = {
            let this = Arc::clone(&self);
            async move {
                let mut tick = tokio::time::interval(UNFINISHED_WORK_TICK);
                loop {
                    tick.tick().await;
                    this.queue.update_unfinished_work();
                }
            }
        };
        let iam_drift = {
            let this = Arc::clone(&self);
            async move {
                // With the template's shared role there is no agent role to watch.
                if !matches!(this.settings.task_role, TaskRole::PerAgent { .. }) {
                    std::future::pending::<()>().await;
                }
                loop {
                    // The agents the table's view holds, as of the last resync.
                    let agents = this.view.ids();
                    if agents.is_empty() || !this.is_leader() {
                        tokio::time::sleep(RESYNC_CHECK).await;
                        continue;
                    }
                    // Spread over the interval, so IAM sees a trickle, never a burst.
                    let gap = this
                        .config
                        .iam_drift_interval
                        .div_f64(agents.len() as f64)
                        .max(Duration::from_millis(10));
                    for agent_id in agents {
                        tokio::time::sleep(gap).await;
                        if this.is_leader() {
                            this.queue.add(&agent_id);
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = resyncs => {}
            () = unfinished => {}
            () = iam_drift => {}
            () = shutdown => info!("shutting down: finishing in-flight reconciles"),
        }
        self.queue.shut_down();
        for worker in workers {
            if let Err(e) = worker.await {
                error!(error = %e, "worker ended abnormally");
            }
        }
        info!("stopped");
    }
}
