//! The long-running controller: a resync that snapshots the fleet with batched reads and
//! enqueues every agent with work to do, workers that reconcile one agent at a time, rate
//! limits on every AWS call, rollout pacing, and metrics and health over HTTP.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use cloud::observed::AgentResources;
use cloud::{Aws, ErrorClass, Gate, ObserveError};
use spec::render::Settings;
use store::{Store, StoreError};
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use crate::act::RealCloud;
use crate::expectations::Expectations;
use crate::leader::{Elector, Fence};
use crate::metrics::Metrics;
use crate::plan::{Context, Desired, plan};
use crate::queue::Queue;
use crate::ratelimit::Limits;
use crate::reconcile::{Outcome, Reconciler, Rollout};
use store::stream::{ChangeFeed, Event, Watcher};

/// How often the stream is read: well within a second, and within DynamoDB Streams' five
/// GetRecords per second per shard.
pub const STREAM_POLL: Duration = Duration::from_millis(250);

/// How often the resync loop looks whether a resync is due (or leadership came).
const RESYNC_CHECK: Duration = Duration::from_millis(500);

impl Gate for Limits {
    fn pass<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), cloud::AwsError>> + Send + 'a>> {
        Box::pin(async move {
            // Cleanup of old revisions yields to registrations new agents wait for.
            if operation == "DeregisterTaskDefinition" {
                self.acquire_low_priority(service, operation).await;
            } else {
                self.acquire(service, operation).await;
            }
            Ok(())
        })
    }

    fn throttled(&self, service: &'static str, operation: &'static str) {
        Limits::throttled(self, service, operation);
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub template: String,
    pub workers: usize,
    pub resync_interval: Duration,
    pub max_concurrent_replacements: usize,
    pub recovery_days: i64,
}

/// Why a resync failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller's shared state.
pub struct Controller {
    cloud: RealCloud,
    store: Store,
    settings: Settings,
    config: Config,
    queue: Queue,
    metrics: Arc<Metrics>,
    expectations: Expectations,
    rollout: Rollout,
    /// What the last resync saw of each agent it enqueued: the first reconcile after a resync
    /// starts from it, later ones (requeues) observe afresh.
    snapshots: std::sync::Mutex<HashMap<String, AgentResources>>,
    template: tokio::sync::RwLock<Option<spec::render::TaskDefinition>>,
    ready: AtomicBool,
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
        let aws = aws.with_gate(&gate);
        Arc::new(Self {
            cloud: RealCloud {
                aws,
                settings: settings.clone(),
            },
            store,
            rollout: Rollout::new(config.max_concurrent_replacements),
            settings,
            config,
            queue: Queue::new(),
            metrics,
            expectations: Expectations::default(),
            snapshots: std::sync::Mutex::default(),
            template: tokio::sync::RwLock::new(None),
            ready: AtomicBool::new(false),
            elector,
        })
    }

    /// Whether this replica leads (always, without an elector).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.elector.as_ref().is_none_or(|e| e.is_leader())
    }

    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the first resync has completed.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Asks for a reconcile of one agent now (a watch event).
    pub fn enqueue(&self, agent_id: &str) {
        self.queue.add(agent_id);
        self.queue_metrics();
    }

    fn queue_metrics(&self) {
        let stats = self.queue.stats();
        self.metrics.queue_depth(stats.queued);
    }

    /// One snapshot of the whole fleet with batched reads; every agent whose plan is not
    /// empty, and every orphan, is enqueued. Returns how many were.
    ///
    /// # Errors
    /// A failed read of AWS or of the table.
    pub async fn resync(&self) -> Result<usize, ResyncError> {
        let fleet = self
            .cloud
            .aws
            .observe_fleet(&self.config.template, &self.settings)
            .await?;
        let agents = self.store.list().await?;
        *self.template.write().await = Some(fleet.template.clone());
        let ctx = Context {
            settings: &self.settings,
            template: &fleet.template,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let mut phases: HashMap<String, i64> = HashMap::new();
        let mut work = Vec::new();
        for agent in &agents {
            let observed = fleet.agent(&agent.agent_id);
            if let Some(status) = &agent.status {
                *phases.entry(status.phase.as_str().to_owned()).or_default() += 1;
            }
            let error = agent.spec.as_ref().and_then(store::SpecItem::error_text);
            let desired = Desired::of(
                &agent.agent_id,
                agent.spec.as_ref(),
                error.as_deref(),
                agent.status.as_ref(),
            );
            let plan = plan(&desired, &observed, &ctx);
            if !plan.is_empty() || plan.wait.is_some() {
                work.push((agent.agent_id.clone(), observed));
            }
        }
        let known: std::collections::HashSet<&str> =
            agents.iter().map(|a| a.agent_id.as_str()).collect();
        for (agent_id, observed) in &fleet.agents {
            if !known.contains(agent_id.as_str()) && observed.has_live_resources() {
                work.push((agent_id.clone(), observed.clone()));
            }
        }
        self.metrics.agents_by_phase(&phases);
        let n = work.len();
        {
            let mut snapshots = self
                .snapshots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (agent_id, observed) in work {
                self.queue.add(&agent_id);
                snapshots.insert(agent_id, observed);
            }
        }
        self.queue_metrics();
        self.ready.store(true, Ordering::Relaxed);
        Ok(n)
    }

    async fn worker(self: Arc<Self>) {
        while let Some(item) = self.queue.get().await {
            let agent_id = item.agent_id;
            self.metrics.queued_for(item.queued_for);
            let span = info_span!("reconcile", agent_id = %agent_id);
            self.reconcile_one(&agent_id).instrument(span).await;
            if let Some(took) = self.queue.done(&agent_id) {
                self.metrics.worked_for(took);
            }
            self.queue_metrics();
        }
    }

    async fn reconcile_one(&self, agent_id: &str) {
        if !self.is_leader() {
            // A standby reconciles nothing; the leader's resync covers every agent.
            self.queue.forget(agent_id);
            return;
        }
        let cached = self.template.read().await.clone();
        let template = match cached {
            Some(t) => t,
            // Work before the first resync (a watch event): load the template now.
            None => match self
                .cloud
                .aws
                .template(&self.config.template, &self.settings)
                .await
            {
                Ok((_, t)) => {
                    *self.template.write().await = Some(t.clone());
                    t
                }
                Err(e) => {
                    warn!(error = %e, "template unavailable");
                    self.queue.retry(agent_id);
                    return;
                }
            },
        };
        let snapshot = self
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(agent_id);
        let reconciler = Reconciler {
            cloud: &self.cloud,
            store: &self.store,
            settings: &self.settings,
            template: &template,
            expectations: &self.expectations,
            recovery_days: self.config.recovery_days,
            rollout: Some(&self.rollout),
            metrics: Some(&self.metrics),
        };
        let started = Instant::now();
        let result = reconciler.reconcile(agent_id, snapshot).await;
        let label = match &result {
            Ok(Outcome::Waiting(w)) => {
                self.queue.forget(agent_id);
                self.queue
                    .add_after(agent_id, Duration::from_secs(w.after_secs.max(1)));
                info!(reason = %w.reason, after_secs = w.after_secs, "waiting");
                "requeue_after"
            }
            Ok(outcome) => {
                self.queue.forget(agent_id);
                info!(outcome = ?outcome, "reconciled");
                "success"
            }
            Err(e) if e.class() == ErrorClass::Terminal => {
                // Terminal: the status says why; retrying cannot help until something changes.
                self.queue.forget(agent_id);
                warn!(error = %e, "reconcile failed (terminal)");
                "error"
            }
            Err(e) => {
                self.queue.retry(agent_id);
                self.metrics.queue_retry();
                warn!(error = %e, class = %e.class(), "reconcile failed; backing off");
                "error"
            }
        };
        self.metrics.reconciled(label, started.elapsed());
    }

    /// Counters of the work queue (adds, retries, depth).
    #[must_use]
    pub fn queue_stats(&self) -> crate::queue::QueueStats {
        self.queue.stats()
    }

    /// Follows the table's stream: every spec change is enqueued at once; data lost before it
    /// was read triggers a resync. Runs until the task is dropped.
    pub async fn watch<F: ChangeFeed>(self: Arc<Self>, mut watcher: Watcher<F>) {
        loop {
            if !self.is_leader() {
                // DynamoDB allows about two readers per shard: only the leader reads.
                tokio::time::sleep(STREAM_POLL).await;
                continue;
            }
            match watcher.poll().await {
                Ok(events) => {
                    for event in events {
                        match event {
                            Event::Changed(agent_id) => {
                                info!(agent_id = %agent_id, "spec changed");
                                self.enqueue(&agent_id);
                            }
                            Event::Resync => {
                                warn!("stream records were trimmed before being read; resyncing");
                                if let Err(e) = self.resync().await {
                                    error!(error = %e, "resync failed; the next one retries");
                                }
                            }
                        }
                    }
                    tokio::time::sleep(STREAM_POLL).await;
                }
                Err(e) => {
                    // The resync still converges everything while the stream is unavailable.
                    warn!(error = %e, "stream unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
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
        tokio::select! {
            () = resyncs => {}
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

    /// `/metrics`, `/healthz` (alive) and `/readyz` (first resync done).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/metrics",
                get(|State(c): State<Arc<Self>>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        c.metrics.render(),
                    )
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(|State(c): State<Arc<Self>>| async move {
                    if !c.is_leader() {
                        (StatusCode::SERVICE_UNAVAILABLE, "standby\n")
                    } else if c.is_ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "first resync not done\n")
                    }
                }),
            )
            .with_state(Arc::clone(self))
    }
}
