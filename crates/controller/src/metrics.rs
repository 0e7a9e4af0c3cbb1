//! Prometheus metrics, named as controller-runtime and client-go name theirs, plus
//! clawfleet's own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use cloud::Calls;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

/// The controller's name in `controller` labels.
pub const CONTROLLER: &str = "agent";

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

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// `clawfleet_aws_requests_total{service,operation,outcome}`, read from the SDK interceptor's
/// counts at each scrape. The HTTP API exports it too.
#[derive(Debug)]
pub struct AwsRequests(pub Calls);

impl Collector for AwsRequests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "clawfleet_aws_requests",
            "AWS requests by service, operation and outcome (success or error), retries included",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for ((service, operation, outcome), count) in self.0.snapshot() {
            let labels = [
                ("service", service),
                ("operation", operation),
                ("outcome", outcome),
            ];
            let family = metric.encode_family(&labels)?;
            ConstCounter::new(count).encode(family)?;
        }
        Ok(())
    }
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_time: Family<ControllerLabel, Histogram>,
    queue_depth: Family<NameLabel, Gauge>,
    queue_adds: Family<NameLabel, Counter>,
    queue_retries: Family<NameLabel, Counter>,
    queue_duration: Family<NameLabel, Histogram>,
    work_duration: Family<NameLabel, Histogram>,
    agents: Family<PhaseLabel, Gauge>,
    drift: Family<ResourceLabel, Counter>,
    to_running: Histogram,
    leader: Gauge,
    /// Each agent's current spec hash and when it was first seen, until it runs on it.
    spec_seen: Mutex<HashMap<String, (String, Option<Instant>)>>,
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
        let queue_depth = Family::<NameLabel, Gauge>::default();
        let queue_adds = Family::<NameLabel, Counter>::default();
        let queue_retries = Family::<NameLabel, Counter>::default();
        let queue_duration = Family::<NameLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let work_duration = Family::<NameLabel, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let agents = Family::<PhaseLabel, Gauge>::default();
        let drift = Family::<ResourceLabel, Counter>::default();
        let to_running = Histogram::new(exponential_buckets(0.25, 2.0, 14));
        let leader = Gauge::default();
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
        registry.register(
            "workqueue_depth",
            "Agents waiting in the work queue",
            queue_depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Adds to the work queue",
            queue_adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Retries after failed reconciles",
            queue_retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "Time an agent waited in the queue before a worker took it",
            queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "Time a worker spent on an agent",
            work_duration.clone(),
        );
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
        registry.register_collector(Box::new(AwsRequests(calls.clone())));
        Self {
            registry,
            reconcile_total,
            reconcile_errors,
            reconcile_time,
            queue_depth,
            queue_adds,
            queue_retries,
            queue_duration,
            work_duration,
            agents,
            drift,
            to_running,
            leader,
            spec_seen: Mutex::new(HashMap::new()),
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

    pub fn reconciled(&self, result: &str, took: Duration) {
        let controller = CONTROLLER.to_owned();
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller: controller.clone(),
                result: result.to_owned(),
            })
            .inc();
        if result == "error" {
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

    fn queue(&self) -> NameLabel {
        NameLabel {
            name: CONTROLLER.to_owned(),
        }
    }

    pub fn queue_depth(&self, depth: usize) {
        self.queue_depth
            .get_or_create(&self.queue())
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn queue_add(&self) {
        self.queue_adds.get_or_create(&self.queue()).inc();
    }

    pub fn queue_retry(&self) {
        self.queue_retries.get_or_create(&self.queue()).inc();
    }

    pub fn queued_for(&self, waited: Duration) {
        self.queue_duration
            .get_or_create(&self.queue())
            .observe(waited.as_secs_f64());
    }

    pub fn worked_for(&self, took: Duration) {
        self.work_duration
            .get_or_create(&self.queue())
            .observe(took.as_secs_f64());
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
