//! Prometheus metrics, named as controller-runtime and client-go name theirs, plus
//! clawfleet's own. Every series a dashboard or an alert reads exists at 0 from the start, for
//! the controller's and the queue's name (`agent`), so `rate()` and `absent()` work before the
//! first event; the list is in docs/controller.md and a test holds the two together.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud::Calls;
use cloud::metrics::AwsRequests;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::policy;

/// The controller's name in `controller` labels, and its queue's in `name` labels.
pub const CONTROLLER: &str = "agent";

/// The `result` labels of `controller_runtime_reconcile_total`, as controller-runtime's.
pub const RESULTS: [&str; 3] = ["success", "error", "requeue_after"];

/// The resources whose drift corrections are counted.
pub const DRIFT_RESOURCES: [&str; 4] = ["access_point", "secret", "task", "task_role"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LastStatusLabel {
    last_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// ECS's task statuses, the `last_status` labels of `clawfleet_task_events_total`.
pub const TASK_STATUSES: [&str; 8] = [
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
];

/// Why task events are dropped.
pub const DROP_REASONS: [&str; 3] = ["malformed", "foreign", "stale"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The `workqueue_*` series of one queue, which the queue itself updates
/// ([`crate::queue::QueueMetrics`]).
#[derive(Debug)]
pub struct WorkqueueMetrics {
    name: NameLabel,
    depth: Family<NameLabel, Gauge>,
    adds: Family<NameLabel, Counter>,
    retries: Family<NameLabel, Counter>,
    queue_duration: Family<NameLabel, Histogram>,
    work_duration: Family<NameLabel, Histogram>,
    unfinished: Family<NameLabel, SecondsGauge>,
    longest: Family<NameLabel, SecondsGauge>,
}

impl WorkqueueMetrics {
    fn register(registry: &mut Registry, name: &str) -> Self {
        let histogram = || {
            Family::<NameLabel, Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            )
        };
        let this = Self {
            name: NameLabel {
                name: name.to_owned(),
            },
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: histogram(),
            work_duration: histogram(),
            unfinished: Family::default(),
            longest: Family::default(),
        };
        registry.register(
            "workqueue_depth",
            "Agents waiting in the work queue",
            this.depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Adds to the work queue",
            this.adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Retries after failed reconciles",
            this.retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "Time an agent waited in the queue before a worker took it",
            this.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "Time a worker spent on an agent",
            this.work_duration.clone(),
        );
        registry.register(
            "workqueue_unfinished_work_seconds",
            "Seconds of work in process that has not finished, summed over agents; a value that only grows means a stuck worker",
            this.unfinished.clone(),
        );
        registry.register(
            "workqueue_longest_running_processor_seconds",
            "Seconds the longest-running reconcile in process has been running",
            this.longest.clone(),
        );
        // Every series of the queue exists at 0 from the start.
        drop(this.depth.get_or_create(&this.name));
        drop(this.adds.get_or_create(&this.name));
        drop(this.retries.get_or_create(&this.name));
        drop(this.queue_duration.get_or_create(&this.name));
        drop(this.work_duration.get_or_create(&this.name));
        drop(this.unfinished.get_or_create(&this.name));
        drop(this.longest.get_or_create(&this.name));
        this
    }
}

impl crate::queue::QueueMetrics for WorkqueueMetrics {
    fn add(&self) {
        self.adds.get_or_create(&self.name).inc();
    }
    fn depth(&self, depth: usize) {
        self.depth
            .get_or_create(&self.name)
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    fn queued_for(&self, waited: Duration) {
        self.queue_duration
            .get_or_create(&self.name)
            .observe(waited.as_secs_f64());
    }
    fn worked_for(&self, took: Duration) {
        self.work_duration
            .get_or_create(&self.name)
            .observe(took.as_secs_f64());
    }
    fn retry(&self) {
        self.retries.get_or_create(&self.name).inc();
    }
    fn unfinished(&self, total_secs: f64, longest_secs: f64) {
        self.unfinished.get_or_create(&self.name).set(total_secs);
        self.longest.get_or_create(&self.name).set(longest_secs);
    }
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_time: Family<ControllerLabel, Histogram>,
    workqueue: Arc<WorkqueueMetrics>,
    agents: Family<PhaseLabel, Gauge>,
    store_errors: Family<ClassLabel, Counter>,
    stream_skipped: Counter,
    agent_roles: Gauge,
    agent_roles_quota: Gauge,
    agents_ready: Gauge,
    agents_desired_running: Gauge,
    task_events: Family<LastStatusLabel, Counter>,
    task_events_dropped: Family<ReasonLabel, Counter>,
    task_events_queue_errors: Counter,
    task_relaunch: Histogram,
    drift: Family<ResourceLabel, Counter>,
    to_running: Histogram,
    leader: Gauge,
    /// Each agent's current spec hash and when it was first seen, until it runs on it.
    spec_seen: Mutex<HashMap<String, (String, Option<Instant>)>>,
    wakes: Counter,
    wake_to_running: Histogram,
    resync_time: Histogram,
    resync_planned: Gauge,
    resync_unchanged: Gauge,
    /// Each agent's last wake seen (milliseconds since the epoch), and whether it still waits
    /// to be Running.
    wakes_seen: Mutex<HashMap<String, (i64, bool)>>,
}

/// A wake older than this when the controller first sees it (after a restart, say) is history:
/// neither counted nor timed.
const WAKE_FRESH_MS: i64 = 10 * 60 * 1000;

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl Metrics {
    #[must_use]
    pub fn new(calls: &Calls) -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        let reconcile_errors = Family::<ControllerLabel, Counter>::default();
        let reconcile_time = Family::<ControllerLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let agents = Family::<PhaseLabel, Gauge>::default();
        let store_errors = Family::<ClassLabel, Counter>::default();
        let stream_skipped = Counter::default();
        let agent_roles = Gauge::default();
        let agent_roles_quota = Gauge::default();
        let agents_ready = Gauge::default();
        let agents_desired_running = Gauge::default();
        let task_events = Family::<LastStatusLabel, Counter>::default();
        let task_events_dropped = Family::<ReasonLabel, Counter>::default();
        let task_events_queue_errors = Counter::default();
        let task_relaunch = Histogram::new(exponential_buckets(0.5, 2.0, 12));
        let drift = Family::<ResourceLabel, Counter>::default();
        let to_running = Histogram::new(exponential_buckets(0.25, 2.0, 14));
        let leader = Gauge::default();
        let wakes = Counter::default();
        let wake_to_running = Histogram::new(exponential_buckets(0.25, 2.0, 12));
        // 50 ms to about 100 s: a resync of 100,000 agents reads for minutes of AWS latency.
        let resync_time = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        let resync_planned = Gauge::default();
        let resync_unchanged = Gauge::default();
        registry.register(
            "clawfleet_resync_seconds",
            "Time per resync: the table's Scan, the fleet's reads, the plans, the enqueues",
            resync_time.clone(),
        );
        registry.register(
            "clawfleet_resync_agents_planned",
            "Agents the last resync planned",
            resync_planned.clone(),
        );
        registry.register(
            "clawfleet_resync_agents_unchanged",
            "Agents the last resync did not plan: their inputs were those of a plan that found no work",
            resync_unchanged.clone(),
        );
        registry.register(
            "clawfleet_wakes",
            "Wakes (POST /v1/agents/{id}/wake, clawfleet wake) the controller acted on",
            wakes.clone(),
        );
        registry.register(
            "clawfleet_wake_to_running_seconds",
            "From a wake being requested to the agent Running",
            wake_to_running.clone(),
        );
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles per controller and result",
            reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Reconciles that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Time per reconcile",
            reconcile_time.clone(),
        );
        let workqueue = Arc::new(WorkqueueMetrics::register(&mut registry, CONTROLLER));
        registry.register(
            "clawfleet_agents",
            "Agents by phase at the last resync",
            agents.clone(),
        );
        registry.register(
            "clawfleet_drift_corrections",
            "Changes made behind clawfleet's back that it corrected, by resource",
            drift.clone(),
        );
        registry.register(
            "clawfleet_spec_to_running_seconds",
            "Time from a spec change being seen to the agent Running on it",
            to_running.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 when this replica is the leader",
            leader.clone(),
        );
        registry.register(
            "clawfleet_store_errors",
            "Failed DynamoDB calls of reconciles, by class (terminal errors such as AccessDenied are retried at the resync interval)",
            store_errors.clone(),
        );
        registry.register(
            "clawfleet_stream_records_skipped",
            "Stream records skipped because no page holding them could be read (each triggers a resync)",
            stream_skipped.clone(),
        );
        registry.register(
            "clawfleet_agent_roles",
            "Agent task roles under the installation's IAM path at the last resync",
            agent_roles.clone(),
        );
        registry.register(
            "clawfleet_agent_roles_quota",
            "IAM's role quota of the account (--iam-role-quota); roles are account-wide",
            agent_roles_quota.clone(),
        );
        registry.register(
            "clawfleet_agents_ready",
            "Agents whose Ready condition is True at the last resync",
            agents_ready.clone(),
        );
        registry.register(
            "clawfleet_agents_desired_running",
            "Agents with a valid spec asking to run (desired_state running, not being deleted, inside their schedule, not idle) at the last resync",
            agents_desired_running.clone(),
        );
        registry.register(
            "clawfleet_task_events",
            "ECS task-state events handled, by the task's last status",
            task_events.clone(),
        );
        registry.register(
            "clawfleet_task_events_dropped",
            "Task-state events deleted without effect: malformed, foreign (another cluster, a task clawfleet did not start) or stale (duplicate, out of order)",
            task_events_dropped.clone(),
        );
        registry.register(
            "clawfleet_task_events_queue_errors",
            "Failed reads of the task-events queue (the resync still converges everything)",
            task_events_queue_errors.clone(),
        );
        registry.register(
            "clawfleet_task_relaunch_seconds",
            "From a task stopping on its own to its replacement's RunTask",
            task_relaunch.clone(),
        );
        for status in TASK_STATUSES {
            drop(task_events.get_or_create(&LastStatusLabel {
                last_status: status.to_owned(),
            }));
        }
        for reason in DROP_REASONS {
            drop(task_events_dropped.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            }));
        }
        registry.register_collector(Box::new(AwsRequests(calls.clone())));
        // Every series exists at 0 from the start.
        let controller = || ControllerLabel {
            controller: CONTROLLER.to_owned(),
        };
        for result in RESULTS {
            drop(reconcile_total.get_or_create(&ReconcileLabels {
                controller: CONTROLLER.to_owned(),
                result: result.to_owned(),
            }));
        }
        drop(reconcile_errors.get_or_create(&controller()));
        drop(reconcile_time.get_or_create(&controller()));
        for phase in spec::Phase::ALL {
            drop(agents.get_or_create(&PhaseLabel {
                phase: phase.as_str().to_owned(),
            }));
        }
        for resource in DRIFT_RESOURCES {
            drop(drift.get_or_create(&ResourceLabel {
                resource: resource.to_owned(),
            }));
        }
        for class in ["terminal", "throttled", "transient"] {
            drop(store_errors.get_or_create(&ClassLabel {
                class: class.to_owned(),
            }));
        }
        Self {
            registry,
            reconcile_total,
            reconcile_errors,
            reconcile_time,
            workqueue,
            agents,
            store_errors,
            stream_skipped,
            agent_roles,
            agent_roles_quota,
            agents_ready,
            agents_desired_running,
            task_events,
            task_events_dropped,
            task_events_queue_errors,
            task_relaunch,
            drift,
            to_running,
            leader,
            spec_seen: Mutex::new(HashMap::new()),
            wakes,
            wake_to_running,
            resync_time,
            resync_planned,
            resync_unchanged,
            wakes_seen: Mutex::new(HashMap::new()),
        }
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn reconciled(&self, result: policy::Result, took: Duration) {
        let controller = CONTROLLER.to_owned();
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller: controller.clone(),
                result: result.as_str().to_owned(),
            })
            .inc();
        if result == policy::Result::Error {
            self.reconcile_errors
                .get_or_create(&ControllerLabel {
                    controller: controller.clone(),
                })
                .inc();
        }
        self.reconcile_time
            .get_or_create(&ControllerLabel { controller })
            .observe(took.as_secs_f64());
    }

    /// The work queue's series, for [`crate::queue::Queue::with_metrics`].
    #[must_use]
    pub fn workqueue(&self) -> Arc<WorkqueueMetrics> {
        Arc::clone(&self.workqueue)
    }

    /// Agents Ready, and agents that should be: the not-Ready alert compares the two.
    pub fn set_readiness(&self, ready: usize, desired_running: usize) {
        self.agents_ready
            .set(i64::try_from(ready).unwrap_or(i64::MAX));
        self.agents_desired_running
            .set(i64::try_from(desired_running).unwrap_or(i64::MAX));
    }

    pub fn task_event(&self, last_status: &str) {
        self.task_events
            .get_or_create(&LastStatusLabel {
                last_status: last_status.to_owned(),
            })
            .inc();
    }

    pub fn task_event_dropped(&self, reason: &str) {
        self.task_events_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn task_events_queue_error(&self) {
        self.task_events_queue_errors.inc();
    }

    /// A crashed task's replacement was launched `secs` after it stopped.
    pub fn task_relaunched(&self, secs: i64) {
        #[allow(clippy::cast_precision_loss)]
        self.task_relaunch.observe(secs.max(0) as f64);
    }

    /// A resync ended: how long it took, and how many agents it planned and left unplanned.
    pub fn resynced(&self, took: std::time::Duration, planned: crate::view::Planned) {
        self.resync_time.observe(took.as_secs_f64());
        self.resync_planned
            .set(i64::try_from(planned.planned).unwrap_or(i64::MAX));
        self.resync_unchanged
            .set(i64::try_from(planned.unchanged).unwrap_or(i64::MAX));
    }

    pub fn set_agent_roles(&self, n: usize) {
        self.agent_roles.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_agent_roles_quota(&self, quota: u64) {
        self.agent_roles_quota
            .set(i64::try_from(quota).unwrap_or(i64::MAX));
    }

    /// `n` more stream records were skipped.
    pub fn stream_records_skipped(&self, n: u64) {
        self.stream_skipped.inc_by(n);
    }

    /// A DynamoDB call of a reconcile failed with `class`.
    pub fn store_error(&self, class: spec::failure::ErrorClass) {
        self.store_errors
            .get_or_create(&ClassLabel {
                class: class.as_str().to_owned(),
            })
            .inc();
    }

    /// Replaces the per-phase agent counts.
    pub fn agents_by_phase(&self, counts: &HashMap<String, i64>) {
        for phase in spec::Phase::ALL {
            let n = counts.get(phase.as_str()).copied().unwrap_or(0);
            self.agents
                .get_or_create(&PhaseLabel {
                    phase: phase.as_str().to_owned(),
                })
                .set(n);
        }
    }

    pub fn drift_corrected(&self, resource: &str) {
        self.drift
            .get_or_create(&ResourceLabel {
                resource: resource.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Notes the spec an agent should run; a new hash restarts its clock.
    pub fn spec_seen(&self, agent_id: &str, hash: &str) {
        let mut seen = self
            .spec_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = seen.get(agent_id).is_none_or(|(h, _)| h != hash);
        if fresh {
            seen.insert(agent_id.to_owned(), (hash.to_owned(), Some(Instant::now())));
        }
    }

    /// Notes the agent's last wake (milliseconds since the epoch): a new one is counted and,
    /// unless the agent already runs, timed until it is Running.
    pub fn wake_seen(&self, agent_id: &str, requested_ms: i64, running: bool) {
        let mut seen = self
            .wakes_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = seen.get(agent_id).is_none_or(|(at, _)| *at < requested_ms)
            && now_ms() - requested_ms < WAKE_FRESH_MS;
        if fresh {
            self.wakes.inc();
            seen.insert(agent_id.to_owned(), (requested_ms, !running));
        }
    }

    /// The agent is Running: observes the time since its last wake, once.
    pub fn running_after_wake(&self, agent_id: &str) {
        let mut seen = self
            .wakes_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, waiting)) = seen.get_mut(agent_id)
            && *waiting
        {
            *waiting = false;
            let took = (now_ms() - *at).max(0);
            #[allow(clippy::cast_precision_loss)]
            self.wake_to_running.observe(took as f64 / 1000.0);
        }
    }

    /// The agent runs on `hash`: observes the time since that spec was seen, once.
    pub fn running_on(&self, agent_id: &str, hash: &str) {
        let mut seen = self
            .spec_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((h, at)) = seen.get_mut(agent_id)
            && h == hash
            && let Some(at) = at.take()
        {
            self.to_running.observe(at.elapsed().as_secs_f64());
        }
    }
}
