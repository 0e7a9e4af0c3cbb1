//! One simulated AWS account: the controller library's in-memory [`FakeCloud`], with what the
//! simulation needs around it and the fake does not have:
//! - AWS's own token buckets for ECS at the documented rates (a call over them is throttled,
//!   and the controller's gate is told, as `cloud`'s adapters tell it);
//! - the controller's client-side gate ([`cloud::Limits`]) in front of every call, where
//!   `cloud`'s adapters put it;
//! - IAM's role quota per account and EFS's access points per file system;
//! - a latency per request, and Fargate's time to start and to stop a task, on the virtual
//!   clock;
//! - the fleet-wide snapshot of the resync, counted page by page as `cloud::Aws::observe_fleet`
//!   sends it, and the revision cache that `cloud::Aws` keeps;
//! - shards: one fake per slice of the agents for the 100,000-agent stress, because the fake
//!   scans its lists on every call; ids are made unique per shard and route calls back.
//!
//! Every call into a fake runs on the fake's side of the heap count ([`crate::heap`]); what
//! it returns is cloned onto the controller's.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cloud::{AwsError, ErrorClass, Gate, Limits, Recorded};
use controller::aws::Cloud;
use controller::fake::FakeCloud;
use plan::observed::{
    AccessPoint, AgentResources, Fleet, Role, Secret, Task, TaskDefinitionRevision, family_revision,
};
use spec::render::{self, RunTask, Settings, TaskDefinition};
use tokio::time::Instant;

use crate::heap::{Outside, outside};

/// Ids of shard `k` start at `k * SHARD_SPAN`, so the shard of an id is its number over it.
const SHARD_SPAN: u64 = 1_000_000_000;

/// How often `cloud::Aws::observe_fleet` lists every revision (its private
/// `REVISION_LISTING_INTERVAL`).
const REVISION_LISTING_INTERVAL: Duration = Duration::from_secs(600);

/// Items per page of AWS's listings (ListRoles: 1,000).
const PAGE: usize = 100;
const ROLES_PAGE: usize = 1000;

/// How long AWS takes, on the virtual clock. These are assumptions of the simulation, of the
/// order AWS's APIs and Fargate show, not measurements; docs/benchmarks.md lists them.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    /// One read request (a Describe, Get or List page).
    pub read: Duration,
    /// One write request (Create, Register, Run, Stop, Put, Tag, Delete).
    pub write: Duration,
    /// From RunTask to RUNNING (provisioning, image pull, start).
    pub task_start: Duration,
    /// From StopTask to STOPPED (SIGTERM, the container's exit, deprovisioning).
    pub task_stop: Duration,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            read: Duration::from_millis(50),
            write: Duration::from_millis(150),
            task_start: Duration::from_secs(30),
            task_stop: Duration::from_secs(15),
        }
    }
}

/// The account's and the file system's quotas; `None` lifts one.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// IAM roles per account (5,000 at most on request; 1,000 by default).
    pub roles: Option<usize>,
    /// EFS access points per file system.
    pub access_points: Option<usize>,
}

impl Quotas {
    pub const AWS: Self = Self {
        roles: Some(5000),
        access_points: Some(10_000),
    };
    pub const LIFTED: Self = Self {
        roles: None,
        access_points: None,
    };

    /// The quotas of `accounts` accounts (one file system each) added up: a fleet over several
    /// accounts is simulated as one account whose buckets and quotas are that many times AWS's.
    #[must_use]
    pub fn times(self, accounts: usize) -> Self {
        let k = accounts.max(1);
        Self {
            roles: self.roles.map(|n| n * k),
            access_points: self.access_points.map(|n| n * k),
        }
    }
}

/// AWS's documented ECS buckets (name, capacity, refill per second), by operation.
fn ecs_bucket(operation: &str) -> Option<(&'static str, f64, f64)> {
    Some(match operation {
        "RegisterTaskDefinition" | "DeregisterTaskDefinition" => ("register", 20.0, 1.0),
        "RunTask" | "StartTask" | "StopTask" => ("run", 100.0, 40.0),
        "DescribeTasks" | "ListTasks" => ("describe", 100.0, 20.0),
        "DescribeTaskDefinition" => ("describe-td", 50.0, 20.0),
        "TagResource" | "UntagResource" => ("tag", 20.0, 10.0),
        _ => return None,
    })
}

/// One of AWS's token buckets.
#[derive(Debug)]
struct AwsBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl AwsBucket {
    fn try_take(&mut self, n: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second)
            .min(self.capacity);
        self.at = now;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// What the account did, beyond the fakes' own request counts.
#[derive(Debug, Default)]
struct Tally {
    /// Requests the resync's fleet snapshots made, by operation.
    fleet: BTreeMap<&'static str, u64>,
    /// Fleet snapshots taken.
    snapshots: u64,
    throttled: u64,
}

/// When each task was launched and asked to stop, to show it starting and stopping as
/// Fargate does (the fake shows it RUNNING, and STOPPED, at once).
#[derive(Debug, Default)]
struct Lifecycle {
    launched: HashMap<String, Instant>,
    stopping: HashMap<String, Instant>,
}

pub struct Account {
    shards: Vec<FakeCloud>,
    settings: Settings,
    template: TaskDefinition,
    gate: Arc<Limits>,
    latencies: Latencies,
    quotas: Quotas,
    buckets: Mutex<HashMap<&'static str, AwsBucket>>,
    /// Accounts the agents are spread over: ECS's buckets are per account, so a cell of
    /// several has their sum.
    accounts: f64,
    tally: Mutex<Tally>,
    lifecycle: Mutex<Lifecycle>,
    /// The revisions this controller knows, as `cloud::Aws` caches them: the controller's.
    revisions: Mutex<HashMap<String, TaskDefinitionRevision>>,
    /// When the last snapshot listed every revision.
    revisions_listed_at: Mutex<Option<Instant>>,
    requests: AtomicU64,
    /// ECS task-state events as EventBridge delivers them to the controller's queue (agent
    /// ids): a task's RUNNING and its STOPPED, [`EVENT_DELAY`] after they happen.
    task_events: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
}

/// From a task's change of state to its event in the controller's hands (EventBridge, SQS,
/// the long poll): an assumption, as the latencies are.
pub const EVENT_DELAY: Duration = Duration::from_secs(1);

/// A revision as the SDK hands it over: its content parsed into memory of the controller's own.
/// The fake's revisions share their content (`Arc`), so a plain clone would leave the
/// controller holding the fake's allocation, uncounted.
fn parsed(rev: TaskDefinitionRevision) -> TaskDefinitionRevision {
    TaskDefinitionRevision {
        content: std::sync::Arc::new((*rev.content).clone()),
        ..rev
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn aws_error(
    service: &'static str,
    operation: &'static str,
    code: &str,
    class: ErrorClass,
) -> AwsError {
    AwsError {
        service,
        operation,
        code: Some(code.to_owned()),
        message: format!("{code}: simulated"),
        class,
    }
}

/// The number at the end of an id or ARN (`fsap-1000000017`, `.../task/dev/1000000017`).
fn id_number(id: &str) -> Option<u64> {
    let digits: String = id
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    digits.parse().ok()
}

/// Stable over runs, unlike the standard library's hasher.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The service whose gate an operation passes, as `cloud`'s adapters name them.
fn service_of(operation: &str) -> &'static str {
    match operation {
        "DescribeAccessPoints" | "CreateAccessPoint" | "DeleteAccessPoint" => "EFS",
        "DescribeSecret" | "CreateSecret" | "RestoreSecret" | "DeleteSecret" | "ListSecrets" => {
            "SecretsManager"
        }
        "GetRole"
        | "GetRolePolicy"
        | "CreateRole"
        | "PutRolePolicy"
        | "DeleteRole"
        | "DeleteRolePolicy"
        | "PutRolePermissionsBoundary"
        | "ListRoles" => "IAM",
        _ => "ECS",
    }
}

/// What the simulated AWS is like, beside the installation.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub latencies: Latencies,
    pub quotas: Quotas,
    /// Fakes the agents are spread over (1 unless the fleet is too large for one).
    pub shards: usize,
    /// Other teams' access points on the file system.
    pub foreign_access_points: usize,
    /// Accounts whose ECS buckets add up.
    pub accounts: usize,
}

impl Account {
    /// An account of `shape`, with the controller's `gate` in front.
    #[must_use]
    pub fn new(
        settings: Settings,
        template: TaskDefinition,
        gate: Arc<Limits>,
        shape: Shape,
    ) -> Self {
        let Shape {
            latencies,
            quotas,
            shards,
            foreign_access_points: foreign,
            accounts,
        } = shape;
        let shards: Vec<FakeCloud> = outside(|| {
            (0..shards.max(1) as u64)
                .map(|k| {
                    let fake = FakeCloud::new(0);
                    fake.state().next_id = k * SHARD_SPAN;
                    fake
                })
                .collect()
        });
        if let Some(first) = shards.first() {
            outside(|| first.add_foreign_access_points(foreign));
        }
        Self {
            shards,
            settings,
            template,
            gate,
            latencies,
            quotas,
            buckets: Mutex::default(),
            accounts: accounts.max(1) as f64,
            tally: Mutex::default(),
            lifecycle: Mutex::default(),
            revisions: Mutex::default(),
            revisions_listed_at: Mutex::default(),
            requests: AtomicU64::new(0),
            task_events: Mutex::default(),
        }
    }

    /// The task-state events from now on, for the controller that consumes them (a new call
    /// hands them to a new controller).
    pub fn task_events(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = outside(tokio::sync::mpsc::unbounded_channel);
        *lock(&self.task_events) = Some(tx);
        rx
    }

    /// Delivers `agent_id`'s task event after `after` (the task's change) and [`EVENT_DELAY`].
    fn task_event(&self, agent_id: &str, after: Duration) {
        let Some(tx) = lock(&self.task_events).clone() else {
            return;
        };
        let agent = agent_id.to_owned();
        outside(move || {
            tokio::spawn(async move {
                tokio::time::sleep(after + EVENT_DELAY).await;
                let _ = tx.send(agent);
            });
        });
    }

    fn shard_of_agent(&self, agent_id: &str) -> &FakeCloud {
        let k = fnv(agent_id) % self.shards.len() as u64;
        &self.shards[usize::try_from(k).unwrap_or(0)]
    }

    fn shard_of_id(&self, id: &str) -> &FakeCloud {
        let k = id_number(id).map_or(0, |n| n / SHARD_SPAN);
        self.shards
            .get(usize::try_from(k).unwrap_or(0))
            .unwrap_or(&self.shards[0])
    }

    fn agent_of_secret<'a>(&self, name_or_arn: &'a str) -> &'a str {
        let prefix = &self.settings.secret_prefix;
        name_or_arn
            .find(prefix.as_str())
            .map(|at| &name_or_arn[at + prefix.len()..])
            .and_then(|rest| rest.split("/secrets").next())
            .unwrap_or(name_or_arn)
    }

    fn agent_of_revision<'a>(&self, arn_or_family: &'a str) -> &'a str {
        let family = family_revision(arn_or_family).map_or(arn_or_family, |(f, _)| f);
        render::agent_of_family(&self.settings, family).unwrap_or(family)
    }

    fn agent_of_role<'a>(&self, name: &'a str) -> &'a str {
        render::agent_of_role(&self.settings, name).unwrap_or(name)
    }

    /// Requests sent to AWS so far, every kind (the fakes', the snapshot's, the table's).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests of the reconciles (everything but the resync's snapshots), by operation, as
    /// the fakes counted them.
    #[must_use]
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        outside(|| {
            let mut out: BTreeMap<String, u64> = BTreeMap::new();
            for shard in &self.shards {
                for (op, n) in shard.state().counts.iter() {
                    *out.entry((*op).to_owned()).or_default() += n;
                }
            }
            out
        })
    }

    /// Requests of the resync's fleet snapshots, by operation, and how many snapshots.
    #[must_use]
    pub fn fleet_call_counts(&self) -> (BTreeMap<String, u64>, u64) {
        outside(|| {
            let tally = lock(&self.tally);
            (
                tally
                    .fleet
                    .iter()
                    .map(|(op, n)| ((*op).to_owned(), *n))
                    .collect(),
                tally.snapshots,
            )
        })
    }

    pub fn reset_calls(&self) {
        outside(|| {
            for shard in &self.shards {
                shard.reset_calls();
            }
            let mut tally = lock(&self.tally);
            tally.fleet.clear();
            tally.snapshots = 0;
            tally.throttled = 0;
        });
    }

    /// Calls AWS answered with ThrottlingException.
    #[must_use]
    pub fn throttled(&self) -> u64 {
        lock(&self.tally).throttled
    }

    /// Counts requests of a fleet snapshot.
    fn count_fleet(&self, operation: &'static str, n: u64) {
        outside(|| *lock(&self.tally).fleet.entry(operation).or_default() += n);
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// AWS's bucket for `operation` has `n` tokens.
    fn admit(&self, operation: &str, n: f64) -> bool {
        let Some((name, capacity, per_second)) = ecs_bucket(operation) else {
            return true;
        };
        outside(|| {
            lock(&self.buckets)
                .entry(name)
                .or_insert_with(|| AwsBucket {
                    capacity: capacity * self.accounts,
                    per_second: per_second * self.accounts,
                    tokens: capacity * self.accounts,
                    at: Instant::now(),
                })
                .try_take(n)
        })
    }

    /// One call: the controller's gate and AWS's bucket for `primary` (none for a batch of
    /// reads), the fake (on its side of the heap), then the gate for every further request it
    /// stands for, and their latency; the answer cloned onto the controller's side.
    async fn call<T: Clone>(
        &self,
        primary: Option<(&'static str, &'static str)>,
        shard: &FakeCloud,
        fake: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        if let Some((service, operation)) = primary {
            self.gate.pass(service, operation).await?;
            if !self.admit(operation, 1.0) {
                outside(|| lock(&self.tally).throttled += 1);
                self.gate.throttled(service, operation);
                self.requests.fetch_add(1, Ordering::Relaxed);
                return Err(aws_error(
                    service,
                    operation,
                    "ThrottlingException",
                    ErrorClass::Throttled,
                ));
            }
        }
        let before = outside(|| shard.state().counts.clone());
        let answer = Outside::new(fake).await;
        let sent: Vec<(&'static str, u64)> = outside(|| {
            shard
                .state()
                .counts
                .iter()
                .map(|(op, n)| (*op, n - before.get(op).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        });
        let mut wait = Duration::ZERO;
        for (operation, n) in sent.iter().copied() {
            self.requests.fetch_add(n, Ordering::Relaxed);
            let each = if cloud::calls::is_mutating(operation) {
                self.latencies.write
            } else {
                self.latencies.read
            };
            wait += each * u32::try_from(n).unwrap_or(u32::MAX);
            let further = if primary.is_some_and(|(_, p)| p == operation) {
                n - 1
            } else {
                n
            };
            for _ in 0..further {
                self.gate.pass(service_of(operation), operation).await?;
                self.admit(operation, 1.0);
            }
        }
        outside(|| drop(before));
        tokio::time::sleep(wait).await;
        match &answer {
            Ok(value) => Ok(value.clone()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Shows a task as Fargate would at this moment: PENDING for a while after its launch,
    /// DEPROVISIONING for a while after StopTask.
    fn as_fargate_shows(&self, tasks: &mut [Task]) {
        let now = Instant::now();
        let lifecycle = lock(&self.lifecycle);
        for task in tasks {
            if let Some(at) = lifecycle.stopping.get(&task.arn) {
                if now < *at + self.latencies.task_stop && task.last_status == "STOPPED" {
                    task.last_status = "DEPROVISIONING".into();
                }
            } else if let Some(at) = lifecycle.launched.get(&task.arn)
                && now < *at + self.latencies.task_start
                && task.last_status == "RUNNING"
            {
                task.last_status = "PENDING".into();
            }
        }
    }

    /// The reads of `operation`, `n` of them one after another, through ECS's buckets as the
    /// gate lets them, counted, each taking a read's latency.
    async fn fleet_reads(&self, operation: &'static str, n: u64) -> Result<(), AwsError> {
        if ecs_bucket(operation).is_some() {
            for _ in 0..n {
                self.gate.pass("ECS", operation).await?;
                self.admit(operation, 1.0);
            }
        }
        self.count_fleet(operation, n);
        tokio::time::sleep(self.latencies.read * u32::try_from(n).unwrap_or(u32::MAX)).await;
        Ok(())
    }

    /// The template, as `cloud::Aws::template` reads it at each resync
    /// (DescribeTaskDefinition).
    ///
    /// # Errors
    /// The gate's refusal.
    pub async fn describe_template(&self) -> Result<TaskDefinition, AwsError> {
        self.fleet_reads("DescribeTaskDefinition", 1).await?;
        Ok(self.template.clone())
    }

    /// A light round's listing: the ARNs of the tasks whose desired status is RUNNING
    /// (ListTasks, by 100).
    ///
    /// # Errors
    /// The gate's refusal.
    pub async fn list_running_tasks(&self) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        for shard in &self.shards {
            let s = shard.state();
            arns.extend(
                s.tasks
                    .iter()
                    .filter(|(t, _)| t.desired_status == "RUNNING")
                    .map(|(t, _)| t.arn.clone()),
            );
        }
        let pages = arns.len().div_ceil(PAGE).max(1) as u64;
        self.fleet_reads("ListTasks", pages).await?;
        Ok(arns)
    }

    /// The fleet-wide snapshot of a full round, counted as `cloud::Aws::list_fleet` sends
    /// it (the template is [`Account::describe_template`]'s): ListTasks of the RUNNING tasks, DescribeTasks by 100 of those and of
    /// the recorded tasks that are not running any more, DescribeAccessPoints, ListSecrets,
    /// ListRoles by 1,000; every [`REVISION_LISTING_INTERVAL`] (and the first time)
    /// ListTaskDefinitions and a DescribeTaskDefinition of each family's newest revision not
    /// cached, in between the revisions `recorded` names, from the cache.
    ///
    /// # Errors
    /// The gate's refusal.
    pub async fn observe_fleet(&self, recorded: &Recorded) -> Result<Fleet, AwsError> {
        let now = Instant::now();
        let list_revisions = {
            let mut at = lock(&self.revisions_listed_at);
            let due = at.is_none_or(|t| now.duration_since(t) >= REVISION_LISTING_INTERVAL);
            if due {
                *at = Some(now);
            }
            due
        };
        // Read straight into the controller's memory, as the SDK deserializes AWS's answers.
        let mut tasks: Vec<Task> = Vec::new();
        let mut access_points: Vec<AccessPoint> = Vec::new();
        let mut secrets: Vec<Secret> = Vec::new();
        let mut revisions: Vec<TaskDefinitionRevision> = Vec::new();
        let mut roles: Vec<Role> = Vec::new();
        let mut running = 0;
        {
            let lifecycle = lock(&self.lifecycle);
            // ECS shows a stopped task for an hour.
            let gone = |arn: &str| {
                lifecycle
                    .stopping
                    .get(arn)
                    .is_some_and(|at| at.elapsed() > Duration::from_secs(3600))
            };
            let vanished: std::collections::HashSet<&str> =
                recorded.tasks.iter().map(String::as_str).collect();
            for shard in &self.shards {
                let s = shard.state();
                for (t, _) in &s.tasks {
                    if t.desired_status == "RUNNING" {
                        running += 1;
                        tasks.push(t.clone());
                    } else if vanished.contains(t.arn.as_str()) && !gone(&t.arn) {
                        tasks.push(t.clone());
                    }
                }
                access_points.extend(s.access_points.iter().map(|(a, _)| a.clone()));
                secrets.extend(
                    s.secrets
                        .iter()
                        .map(|(x, _)| x)
                        .filter(|x| x.name.starts_with(&self.settings.secret_prefix))
                        .cloned(),
                );
                if list_revisions {
                    revisions.extend(
                        s.revisions
                            .iter()
                            .filter(|(_, _, active)| *active)
                            .map(|(r, _, _)| r.clone()),
                    );
                }
                // ListRoles returns neither boundary nor policies.
                roles.extend(s.roles.iter().map(|r| Role {
                    name: r.name.clone(),
                    arn: r.arn.clone(),
                    path: r.path.clone(),
                    details: None,
                }));
            }
        }
        let pages = |n: usize, per: usize| n.div_ceil(per).max(1) as u64;
        let mut sent: Vec<(&'static str, u64)> = vec![
            ("ListTasks", pages(running, PAGE)),
            ("DescribeTasks", tasks.len().div_ceil(PAGE) as u64),
            ("DescribeAccessPoints", pages(access_points.len(), PAGE)),
            ("ListSecrets", pages(secrets.len(), PAGE)),
            ("ListRoles", pages(roles.len(), ROLES_PAGE)),
        ];
        if list_revisions {
            sent.push(("ListTaskDefinitions", pages(revisions.len(), PAGE)));
        }
        // ECS's buckets for the ECS reads, as the gate lets them through.
        for (operation, n) in &sent {
            if ecs_bucket(operation).is_some() {
                for _ in 0..*n {
                    self.gate.pass("ECS", operation).await?;
                    self.admit(operation, 1.0);
                }
            }
        }
        self.as_fargate_shows(&mut tasks);
        let ours = |tags: &BTreeMap<String, String>| render::of_installation(tags, &self.settings);
        let mut fleet = Fleet {
            template_arn: format!(
                "arn:aws:ecs:us-east-1:1:task-definition/{}:1",
                self.template.family
            ),
            template: self.template.clone(),
            agents: std::collections::HashMap::new(),
        };
        tasks.retain(|t| ours(&t.tags));
        fleet.add_tasks(tasks);
        access_points.retain(|a| ours(&a.tags));
        fleet.add_access_points(access_points);
        secrets.retain(|x| ours(&x.tags));
        fleet.add_secrets(secrets);
        let mut described = 0;
        if list_revisions {
            let all: Vec<String> = revisions.iter().map(|r| r.arn.clone()).collect();
            let mut newest: BTreeMap<&str, &TaskDefinitionRevision> = BTreeMap::new();
            for rev in &revisions {
                if render::agent_of_family(&self.settings, &rev.content.family).is_some()
                    && newest
                        .get(rev.content.family.as_str())
                        .is_none_or(|r| rev.revision > r.revision)
                {
                    newest.insert(&rev.content.family, rev);
                }
            }
            let mut latest = Vec::new();
            {
                let mut cache = lock(&self.revisions);
                for rev in newest.values() {
                    if let Some(known) = cache.get(&rev.arn) {
                        latest.push(known.clone());
                    } else {
                        described += 1;
                        let rev = parsed((*rev).clone());
                        cache.insert(rev.arn.clone(), rev.clone());
                        latest.push(rev);
                    }
                }
            }
            fleet.add_revisions(&self.settings, latest, &all);
        } else {
            let mut latest = Vec::new();
            let mut missing = Vec::new();
            {
                let cache = lock(&self.revisions);
                for arn in recorded.revisions.values() {
                    match cache.get(arn) {
                        Some(known) => latest.push(known.clone()),
                        None => missing.push(arn.clone()),
                    }
                }
            }
            for arn in missing {
                let agent = self.agent_of_revision(&arn).to_owned();
                let shard = self.shard_of_agent(&agent);
                let family = family_revision(&arn)
                    .map_or(arn.as_str(), |(f, _)| f)
                    .to_owned();
                described += 1;
                let found = outside(|| {
                    shard
                        .state()
                        .revisions
                        .iter()
                        .find(|(r, _, _)| r.arn == arn || r.content.family == family)
                        .map(|(r, _, _)| r.clone())
                });
                if let Some(rev) = found {
                    let rev = parsed(rev);
                    lock(&self.revisions).insert(arn.clone(), rev.clone());
                    latest.push(rev);
                }
            }
            fleet.add_revisions(&self.settings, latest, &[]);
        }
        sent.push(("DescribeTaskDefinition", described));
        fleet.add_roles(&self.settings, roles);
        let requests: u64 = sent.iter().map(|(_, n)| n).sum();
        for (operation, n) in sent {
            self.count_fleet(operation, n);
        }
        outside(|| lock(&self.tally).snapshots += 1);
        // The reads go one after another, as `observe_fleet` awaits each.
        tokio::time::sleep(self.latencies.read * u32::try_from(requests).unwrap_or(u32::MAX)).await;
        Ok(fleet)
    }
}

impl Cloud for Account {
    async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        known_access_point: Option<&str>,
    ) -> Result<AgentResources, AwsError> {
        let shard = self.shard_of_agent(agent_id);
        let mut seen = self
            .call(
                None,
                shard,
                shard.observe_agent(agent_id, known_task, known_access_point),
            )
            .await?;
        self.as_fargate_shows(&mut seen.tasks);
        // As `cloud::Aws`: a revision already cached is not described (nor parsed) again.
        if let Some(rev) = seen.latest_revision.take() {
            let mut cache = lock(&self.revisions);
            let kept = cache
                .entry(rev.arn.clone())
                .or_insert_with(|| parsed(rev))
                .clone();
            seen.latest_revision = Some(kept);
        }
        Ok(seen)
    }

    async fn observe_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<Vec<Task>, AwsError> {
        let shard = self.shard_of_agent(agent_id);
        let mut tasks = self
            .call(None, shard, shard.observe_tasks(agent_id, known_task))
            .await?;
        self.as_fargate_shows(&mut tasks);
        Ok(tasks)
    }

    async fn describe_access_points(&self) -> Result<Vec<AccessPoint>, AwsError> {
        // The file system is one: every shard's part of it, each counted by its fake.
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(
                self.call(
                    Some(("EFS", "DescribeAccessPoints")),
                    shard,
                    shard.describe_access_points(),
                )
                .await?,
            );
        }
        Ok(all)
    }

    async fn observe_purge(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<(Vec<Task>, Vec<String>), AwsError> {
        // The simulation deletes no agent with purge_data; the fake counts the reads it makes.
        let shard = self.shard_of_agent(agent_id);
        self.call(None, shard, shard.observe_purge(agent_id, known_task))
            .await
    }

    async fn describe_task_definition(
        &self,
        family: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        let shard = self.shard_of_agent(self.agent_of_revision(family));
        let found = self
            .call(
                Some(("ECS", "DescribeTaskDefinition")),
                shard,
                shard.describe_task_definition(family),
            )
            .await?;
        Ok(found.map(parsed))
    }

    async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        let shard = self.shard_of_agent(self.agent_of_secret(name));
        self.call(
            Some(("SecretsManager", "DescribeSecret")),
            shard,
            shard.describe_secret(name),
        )
        .await
    }

    async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError> {
        let shard = self.shard_of_id(id);
        self.call(
            Some(("EFS", "DescribeAccessPoints")),
            shard,
            shard.describe_access_point(id),
        )
        .await
    }

    async fn create_access_point(
        &self,
        request: &render::AccessPoint,
        token: &str,
    ) -> Result<AccessPoint, AwsError> {
        let agent = request
            .tags
            .get(render::tag::AGENT_ID)
            .map_or("", String::as_str);
        if let Some(quota) = self.quotas.access_points {
            let live: usize = outside(|| {
                self.shards
                    .iter()
                    .map(|s| s.state().access_points.len())
                    .sum()
            });
            if live >= quota {
                return Err(aws_error(
                    "EFS",
                    "CreateAccessPoint",
                    "AccessPointLimitExceeded",
                    ErrorClass::Terminal,
                ));
            }
        }
        let shard = self.shard_of_agent(agent);
        self.call(
            Some(("EFS", "CreateAccessPoint")),
            shard,
            shard.create_access_point(request, token),
        )
        .await
    }

    async fn create_secret(
        &self,
        request: &render::Secret,
        description: &str,
        value: &str,
    ) -> Result<Secret, AwsError> {
        let shard = self.shard_of_agent(self.agent_of_secret(&request.name));
        self.call(
            Some(("SecretsManager", "CreateSecret")),
            shard,
            shard.create_secret(request, description, value),
        )
        .await
    }

    async fn restore_secret(&self, arn: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_secret(arn));
        self.call(
            Some(("SecretsManager", "RestoreSecret")),
            shard,
            shard.restore_secret(arn),
        )
        .await
    }

    async fn register_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        let shard = self.shard_of_agent(self.agent_of_revision(&definition.family));
        let revision = self
            .call(
                Some(("ECS", "RegisterTaskDefinition")),
                shard,
                shard.register_task_definition(definition, tags),
            )
            .await
            .map(parsed)?;
        // As `cloud::Aws::remember`: a registered revision is never described.
        lock(&self.revisions).insert(revision.arn.clone(), revision.clone());
        Ok(revision)
    }

    async fn run_task(&self, request: &RunTask, token: &str) -> Result<Task, AwsError> {
        let agent = request
            .tags
            .get(render::tag::AGENT_ID)
            .map_or("", String::as_str);
        let shard = self.shard_of_agent(agent);
        let mut task = self
            .call(
                Some(("ECS", "RunTask")),
                shard,
                shard.run_task(request, token),
            )
            .await?;
        outside(|| {
            lock(&self.lifecycle)
                .launched
                .entry(task.arn.clone())
                .or_insert_with(Instant::now);
        });
        self.as_fargate_shows(std::slice::from_mut(&mut task));
        self.task_event(agent, self.latencies.task_start);
        Ok(task)
    }

    async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_id(arn);
        self.call(
            Some(("ECS", "StopTask")),
            shard,
            shard.stop_task(arn, reason),
        )
        .await?;
        outside(|| {
            lock(&self.lifecycle)
                .stopping
                .entry(arn.to_owned())
                .or_insert_with(Instant::now);
        });
        let agent = outside(|| {
            shard
                .state()
                .tasks
                .iter()
                .find(|(t, _)| t.arn == arn)
                .and_then(|(t, _)| t.agent_id().map(str::to_owned))
        });
        if let Some(agent) = agent {
            self.task_event(&agent, self.latencies.task_stop);
        }
        Ok(())
    }

    async fn tag_resource(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        let shard = if arn.contains(":iam::") {
            self.shard_of_agent(self.agent_of_role(arn.rsplit('/').next().unwrap_or(arn)))
        } else if arn.contains(":secretsmanager:") {
            self.shard_of_agent(self.agent_of_secret(arn))
        } else if arn.contains(":task-definition/") {
            self.shard_of_agent(self.agent_of_revision(arn))
        } else {
            self.shard_of_id(arn)
        };
        let service = if arn.contains(":iam::") {
            "IAM"
        } else if arn.contains(":secretsmanager:") {
            "SecretsManager"
        } else if arn.contains(":elasticfilesystem:") {
            "EFS"
        } else {
            "ECS"
        };
        self.call(
            Some((service, "TagResource")),
            shard,
            shard.tag_resource(arn, add, remove),
        )
        .await
    }

    fn deregistration_has_room(&self) -> bool {
        self.gate.has_spare("ECS", "DeregisterTaskDefinition")
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_revision(arn));
        self.call(
            Some(("ECS", "DeregisterTaskDefinition")),
            shard,
            shard.deregister_task_definition(arn),
        )
        .await
    }

    async fn delete_access_point(&self, id: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_id(id);
        self.call(
            Some(("EFS", "DeleteAccessPoint")),
            shard,
            shard.delete_access_point(id),
        )
        .await
    }

    async fn delete_secret(&self, arn: &str, recovery_days: i64) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_secret(arn));
        self.call(
            Some(("SecretsManager", "DeleteSecret")),
            shard,
            shard.delete_secret(arn, recovery_days),
        )
        .await
    }

    async fn get_role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        let shard = self.shard_of_agent(self.agent_of_role(name));
        self.call(Some(("IAM", "GetRole")), shard, shard.get_role(name))
            .await
    }

    async fn create_role(&self, request: &render::Role) -> Result<Role, AwsError> {
        if let Some(quota) = self.quotas.roles {
            let roles: usize = outside(|| self.shards.iter().map(|s| s.state().roles.len()).sum());
            if roles >= quota {
                return Err(aws_error(
                    "IAM",
                    "CreateRole",
                    "LimitExceeded",
                    ErrorClass::Terminal,
                ));
            }
        }
        let shard = self.shard_of_agent(self.agent_of_role(&request.name));
        self.call(
            Some(("IAM", "CreateRole")),
            shard,
            shard.create_role(request),
        )
        .await
    }

    async fn put_role_policy(&self, name: &str, policy: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_role(name));
        self.call(
            Some(("IAM", "PutRolePolicy")),
            shard,
            shard.put_role_policy(name, policy),
        )
        .await
    }

    async fn put_role_permissions_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_role(name));
        self.call(
            Some(("IAM", "PutRolePermissionsBoundary")),
            shard,
            shard.put_role_permissions_boundary(name, boundary),
        )
        .await
    }

    async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        let shard = self.shard_of_agent(self.agent_of_role(name));
        self.call(Some(("IAM", "DeleteRole")), shard, shard.delete_role(name))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_route_back_to_their_shard() {
        assert_eq!(id_number("fsap-3000000017"), Some(3_000_000_017));
        assert_eq!(
            id_number("arn:aws:ecs:us-east-1:1:task/dev/00000042"),
            Some(42)
        );
        assert_eq!(id_number("fsap-"), None);
        assert_eq!(fnv("a"), fnv("a"));
        assert_ne!(fnv("a"), fnv("b"));
    }
}
