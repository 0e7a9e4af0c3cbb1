//! One simulated fleet and what is measured on it: a cold start against the
//! RegisterTaskDefinition floor, an idle resync's calls and CPU, the controller's heap, and a
//! fleet-wide image change paced by rollout. Everything runs on tokio's paused clock: the
//! times reported are virtual, the CPU times real.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloud::Limits;
use spec::render::{Settings, TaskDefinition, TaskRole};
use spec::{AgentDocument, AgentSpec};
use tokio::time::Instant;

use crate::account::{Account, Latencies, Quotas, Shape};
use crate::assembled::{AssembledController, Config};
use crate::heap;
use crate::table::Table;

/// AWS's RegisterTaskDefinition bucket: one revision per new agent, 20 at once, then 1/s.
pub const REGISTER_BURST: f64 = 20.0;
pub const REGISTER_PER_SECOND: f64 = 1.0;

/// The controller's `--relist-interval`, its default.
pub const RELIST_INTERVAL: Duration = Duration::from_secs(600);

/// The fleet to simulate.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub agents: usize,
    pub workers: usize,
    /// Fakes the agents are spread over (1 keeps every count exact; see [`crate::account`]).
    pub shards: usize,
    /// Other teams' access points on the file system.
    pub foreign_access_points: usize,
    pub quotas: Quotas,
    pub latencies: Latencies,
    pub resync_interval: Duration,
    pub max_concurrent_replacements: usize,
    /// How often the agents Running are counted for the curve.
    pub sample_every: Duration,
    /// Accounts (cells) the agents are spread over, each with its own AWS rates; the
    /// controller's limits are multiplied to match.
    pub accounts: usize,
}

impl Fleet {
    /// `agents` with the production defaults: 4 workers, a 60 s resync, 10 replacements at
    /// once, AWS's quotas, one fake.
    #[must_use]
    pub fn of(agents: usize) -> Self {
        Self {
            agents,
            workers: 4,
            shards: 1,
            foreign_access_points: 0,
            quotas: Quotas::AWS,
            latencies: Latencies::default(),
            resync_interval: Duration::from_secs(60),
            max_concurrent_replacements: 10,
            sample_every: Duration::from_secs(10),
            accounts: 1,
        }
    }

    /// The floor of a cold start of this fleet: the RegisterTaskDefinition bucket, then the
    /// last agent's task start (nothing is Running before its task started, and the last
    /// registration comes at the floor of the bucket at the earliest).
    #[must_use]
    pub fn floor(&self) -> f64 {
        let k = self.accounts.max(1) as f64;
        (self.agents as f64 - REGISTER_BURST * k).max(0.0) / (REGISTER_PER_SECOND * k)
            + self.latencies.task_start.as_secs_f64()
    }

    /// The controller's rate limits: the defaults, every bucket multiplied by the accounts.
    ///
    /// # Errors
    /// None for the defaults; the parser's error otherwise.
    pub fn limits(&self) -> Result<Limits, cloud::ratelimit::LimitsError> {
        if self.accounts <= 1 {
            return Ok(Limits::default());
        }
        let k = self.accounts as f64;
        let default = cloud::ratelimit::DEFAULT_LIMIT;
        let mut config: Vec<String> = cloud::ratelimit::DEFAULT_BUCKETS
            .iter()
            .filter_map(|(ops, capacity, rate)| {
                Some(format!(
                    "{}={}/{}",
                    ops.first()?,
                    (f64::from(*capacity) * k).round(),
                    rate * k
                ))
            })
            .collect();
        // EFS and IAM publish no rates: their buckets (the unlisted default) are per account too.
        config.push(format!(
            "*={}/{}",
            (f64::from(default.capacity()) * k).round(),
            default.per_second() * k
        ));
        Limits::parse(&config.join(","))
    }
}

/// A run of the fleet to convergence.
#[derive(Debug, Clone, Default)]
pub struct Convergence {
    pub agents: usize,
    /// Whether every agent got there; if not, `seconds` is when the run gave up: after
    /// [`STUCK`] without progress, or at its time limit.
    pub converged: bool,
    /// Virtual seconds until every agent is Running on its spec.
    pub seconds: f64,
    /// The floor, in virtual seconds.
    pub floor: f64,
    /// (virtual seconds, agents Running on their current spec).
    pub curve: Vec<(f64, usize)>,
    /// The reconciles' requests, by operation (AWS and the table).
    pub calls: BTreeMap<String, u64>,
    /// The resyncs' requests during the run, by operation, and how many resyncs.
    pub resync_calls: BTreeMap<String, u64>,
    pub resyncs: u64,
    pub throttled: u64,
    pub reconcile_errors: f64,
    /// Real seconds the run took.
    pub wall: f64,
    pub cpu: heap::Cpu,
}

impl Convergence {
    /// Floor over time: the share of the floor's rate the run achieved.
    #[must_use]
    pub fn of_floor(&self) -> f64 {
        if self.converged && self.seconds > 0.0 {
            self.floor / self.seconds
        } else {
            0.0
        }
    }
}

/// One idle resync over the converged fleet.
#[derive(Debug, Clone, Default)]
pub struct IdleResync {
    pub enqueued: usize,
    pub calls: BTreeMap<String, u64>,
    /// Real CPU seconds during it (the process's, and the fake's part: what AWS and DynamoDB
    /// do on their side), and its real duration. What the fake answers is cloned into the
    /// controller's types on the controller's side, as the SDK's parsing would be.
    pub cpu: heap::Cpu,
    pub wall: f64,
    pub parts: crate::assembled::ResyncTimes,
    /// The CPU of the resync before it, the first after the fleet settled.
    pub first: heap::Cpu,
    /// The full round after it (a relist), on the same idle fleet.
    pub relist: crate::assembled::ResyncTimes,
}

/// The heap, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// The controller's structures now, and at most since the fleet was built.
    pub controller: usize,
    pub controller_peak: usize,
    /// The fake AWS and table.
    pub fake: usize,
    pub rss: usize,
    pub rss_peak: usize,
}

impl Memory {
    #[must_use]
    pub fn now() -> Self {
        let (rss, rss_peak) = heap::rss();
        Self {
            controller: heap::controller_bytes(),
            controller_peak: heap::controller_peak(),
            fake: heap::fake_bytes(),
            rss,
            rss_peak,
        }
    }
}

/// A running simulated fleet.
pub struct Simulation {
    pub fleet: Fleet,
    pub controller: Arc<AssembledController>,
    pub account: Arc<Account>,
    pub table: Arc<Table>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<()>>,
}

/// The installation the simulation runs: the fixtures' cluster and file system, a task role
/// per agent (the production default).
#[must_use]
pub fn settings() -> Settings {
    Settings {
        task_role: TaskRole::PerAgent {
            permissions_boundary: "arn:aws:iam::123456789012:policy/clawfleet-agent-boundary"
                .into(),
        },
        ..plan::fixtures::settings()
    }
}

#[must_use]
pub fn template() -> TaskDefinition {
    plan::fixtures::template()
}

/// Agent `i`'s spec, on `image`.
///
/// # Errors
/// None for the ids made here; a validation error otherwise.
pub fn spec(i: usize, image: &str) -> Result<AgentSpec, spec::ValidationErrors> {
    AgentDocument {
        agent_id: Some(agent_id(i)),
        client_id: Some(format!("tenant-{}", i % 97)),
        image: Some(image.to_owned()),
        ..AgentDocument::default()
    }
    .validate()
}

#[must_use]
pub fn agent_id(i: usize) -> String {
    format!("agent-{i:06}")
}

pub const IMAGE: &str = "openclaw/openclaw:v1.0.0";
pub const NEW_IMAGE: &str = "openclaw/openclaw:v1.1.0";

/// Why a simulation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("agent spec: {0}")]
    Spec(String),
    #[error("resync: {0}")]
    Resync(String),
}

/// How long without progress counts as stuck.
pub const STUCK: Duration = Duration::from_secs(3 * 3600);

impl Simulation {
    /// Builds the account, the table and the controller, and starts the controller.
    #[must_use]
    pub fn start(fleet: Fleet) -> Self {
        heap::reset_peak();
        let limits = Arc::new(fleet.limits().unwrap_or_default());
        let account = Arc::new(Account::new(
            settings(),
            template(),
            limits,
            Shape {
                latencies: fleet.latencies,
                quotas: fleet.quotas,
                shards: fleet.shards,
                foreign_access_points: fleet.foreign_access_points,
                accounts: fleet.accounts,
            },
        ));
        let table = Arc::new(Table::new(Duration::from_millis(5)));
        let controller = AssembledController::new(
            Arc::clone(&account),
            Arc::clone(&table),
            settings(),
            template(),
            Config {
                workers: fleet.workers,
                resync_interval: fleet.resync_interval,
                max_concurrent_replacements: fleet.max_concurrent_replacements,
                recovery_days: spec::render::DEFAULT_SECRET_RECOVERY_DAYS,
                relist_interval: RELIST_INTERVAL,
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(Arc::clone(&controller).run(async move {
            let _ = stopped.await;
        }));
        Self {
            fleet,
            controller,
            account,
            table,
            stop: Some(stop),
            run: Some(run),
        }
    }

    /// Stops the controller and starts a new one on the same account and table, with
    /// `max_concurrent_replacements`, as a restart with a new flag would.
    pub async fn restart(mut self, max_concurrent_replacements: usize) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(run) = self.run.take() {
            let _ = run.await;
        }
        self.fleet.max_concurrent_replacements = max_concurrent_replacements;
        let controller = AssembledController::new(
            Arc::clone(&self.account),
            Arc::clone(&self.table),
            settings(),
            template(),
            Config {
                workers: self.fleet.workers,
                resync_interval: self.fleet.resync_interval,
                max_concurrent_replacements,
                recovery_days: spec::render::DEFAULT_SECRET_RECOVERY_DAYS,
                relist_interval: RELIST_INTERVAL,
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(Arc::clone(&controller).run(async move {
            let _ = stopped.await;
        }));
        Self {
            controller,
            stop: Some(stop),
            run: Some(run),
            ..self
        }
    }

    /// Stops the controller and waits for its workers.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(run) = self.run.take() {
            let _ = run.await;
        }
    }

    /// Writes every agent's spec on `image` and enqueues it, as the stream watch would, then
    /// waits until every agent is Running on it. `floor` is the run's floor in seconds.
    ///
    /// # Errors
    /// An invalid spec, or a fleet that stops making progress.
    pub async fn converge(&self, image: &str, floor: f64) -> Result<Convergence, SimError> {
        self.converge_within(image, floor, None).await
    }

    /// [`Simulation::converge`], giving up after `limit` of virtual time.
    ///
    /// # Errors
    /// An invalid spec.
    pub async fn converge_within(
        &self,
        image: &str,
        floor: f64,
        limit: Option<Duration>,
    ) -> Result<Convergence, SimError> {
        self.account.reset_calls();
        self.table.reset_calls();
        let errors_before = self.controller.reconcile_errors();
        let (wall, cpu) = (std::time::Instant::now(), heap::cpu_now());
        let started = Instant::now();
        for i in 0..self.fleet.agents {
            let spec = spec(i, image).map_err(|e| SimError::Spec(e.to_string()))?;
            self.table.apply(&spec);
            self.controller.enqueue(&agent_id(i));
        }
        let mut curve = Vec::new();
        let (mut best, mut progress_at) = (0, Instant::now());
        loop {
            let (running, _) = self.table.running();
            heap::outside(|| curve.push((started.elapsed().as_secs_f64(), running)));
            if curve.len() % 30 == 0 {
                eprintln!(
                    "    {:>6.0} s: {running}/{} Running, phases {:?}, queue {}, {} requests, controller heap {:.1} MiB (peak {:.1})",
                    started.elapsed().as_secs_f64(),
                    self.fleet.agents,
                    self.table.phases(),
                    self.controller.busy(),
                    self.account.requests(),
                    heap::controller_bytes() as f64 / 1_048_576.0,
                    heap::controller_peak() as f64 / 1_048_576.0
                );
                if let Some(waiting) = self.table.one_waiting() {
                    eprintln!("      e.g. {waiting}");
                }
            }
            if running > best {
                best = running;
                progress_at = Instant::now();
            }
            if running >= self.fleet.agents {
                break;
            }
            if limit.is_some_and(|l| started.elapsed() > l) {
                eprintln!(
                    "    stopped at the limit: {running}/{} Running after {:.0} s",
                    self.fleet.agents,
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            if progress_at.elapsed() > STUCK {
                eprintln!(
                    "    gave up: {running}/{} Running and none more for {} s (phases {:?})",
                    self.fleet.agents,
                    STUCK.as_secs(),
                    self.table.phases()
                );
                break;
            }
            tokio::time::sleep(self.fleet.sample_every).await;
        }
        let converged = self.table.running().0 >= self.fleet.agents;
        // The exact moment the last agent turned Running, not the sample after it.
        let seconds = match self.table.last_turned_running() {
            Some(at) if converged && at >= started => at.duration_since(started),
            _ => started.elapsed(),
        }
        .as_secs_f64();
        let mut calls = self.account.call_counts();
        for (op, n) in self.table.call_counts() {
            if op != "Scan" {
                *calls.entry(op.to_owned()).or_default() += n;
            }
        }
        let (mut resync_calls, resyncs) = self.account.fleet_call_counts();
        if let Some(scans) = self.table.call_counts().get("Scan") {
            resync_calls.insert("Scan".into(), *scans);
        }
        Ok(Convergence {
            agents: self.fleet.agents,
            converged,
            seconds,
            floor,
            curve,
            calls,
            resync_calls,
            resyncs,
            throttled: self.account.throttled(),
            reconcile_errors: self.controller.reconcile_errors() - errors_before,
            wall: wall.elapsed().as_secs_f64(),
            cpu: heap::cpu_now() - cpu,
        })
    }

    /// One resync, and what it measured of itself: taken inside the resync, from the moment
    /// it held the resync lock (when the interval's own resync had started first, this one
    /// waited for it, and its reads and CPU are not this one's).
    async fn measured_resync(&self) -> Result<(usize, crate::assembled::ResyncTimes), SimError> {
        let enqueued = self
            .controller
            .resync()
            .await
            .map_err(|e| SimError::Resync(e.to_string()))?;
        let parts = self
            .controller
            .last_resync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Ok((enqueued, parts))
    }

    /// Lets the queue drain (requeued waits, trailing deregistrations).
    pub async fn settle(&self) {
        for _ in 0..360 {
            if self.controller.busy() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }

    /// One resync over the converged fleet, measured alone, in the steady state: a first
    /// resync after the fleet settled, a full round, plans every agent whose status changed
    /// since the last full one (most of them); the one measured follows it, as the next would
    /// a minute later with nothing changed: a light round. The first one's CPU is kept, and a
    /// full round with nothing changed (the relist every `--relist-interval`) is measured
    /// after the light one.
    ///
    /// # Errors
    /// A failed snapshot.
    pub async fn idle_resync(&self) -> Result<IdleResync, SimError> {
        self.settle().await;
        self.controller.relist();
        let first = self.measured_resync().await?.1.total;
        self.account.reset_calls();
        self.table.reset_calls();
        let (enqueued, parts) = self.measured_resync().await?;
        self.controller.relist();
        let relist = self.measured_resync().await?.1;
        Ok(IdleResync {
            relist,
            enqueued,
            calls: parts.calls.clone(),
            cpu: parts.total,
            wall: parts.wall,
            parts,
            first,
        })
    }
}

/// The cold-start floor: every new agent registers one revision, at AWS's 20 at once and 1/s.
#[must_use]
pub fn register_floor(agents: usize) -> f64 {
    (agents as f64 - REGISTER_BURST).max(0.0) / REGISTER_PER_SECOND
}

/// The floor of a replacement wave paced at `cap` at once: each replacement waits for the old
/// task to stop and the new one to start, and registers one revision.
#[must_use]
pub fn wave_floor(agents: usize, cap: usize, latencies: &Latencies) -> (f64, f64) {
    let per = (latencies.task_stop + latencies.task_start).as_secs_f64();
    let pacing = (agents as f64 / cap.max(1) as f64).ceil() * per;
    (register_floor(agents), pacing)
}
