//! Client-side token buckets per AWS operation, shared the way AWS shares its own.
//!
//! - A [`Bucket`] holds up to `capacity` tokens and refills at `rate` per second; each call takes
//!   one, and waits on tokio's clock when none is left.
//! - [`Limits`] maps `SERVICE:OPERATION` to the buckets a call must pass. Operations that ECS
//!   throttles together share one bucket (RegisterTaskDefinition with DeregisterTaskDefinition;
//!   RunTask, StartTask and StopTask; DescribeTasks with ListTasks; ...), and RunTask also passes
//!   Fargate's own RunTask bucket. Defaults are 98 % of the documented rates ([`DEFAULT_BUCKETS`]):
//!   close enough to use the account's whole budget, with a margin for clock skew between this
//!   bucket and AWS's. Every other operation (EFS and IAM publish no rates) gets a conservative
//!   bucket of its own.
//! - Priority: [`Bucket::acquire_low_priority`] (deregistering old revisions) takes a token only
//!   while no normal caller waits and more than a reserve of half the capacity is left, so
//!   registrations that new agents wait for never queue behind cleanup.
//! - Adaptation (AIMD, as the SDK's adaptive retry mode and TCP do): [`Bucket::throttled`],
//!   called after AWS answered ThrottlingException, empties the bucket and halves its refill
//!   rate (multiplicative decrease, down to [`MIN_SLOWDOWN_FACTOR`] of the limit); then the rate
//!   climbs back by [`RECOVERY_PER_SECOND`] of the limit each second (additive increase) until it
//!   is the limit again or AWS throttles again. Throttles within [`REACTION`] of a decrease
//!   answer calls sent before it, so they empty the bucket without halving it again. When
//!   another client in the account spends part of AWS's bucket, the rate saws between the part
//!   left and half of it; AWS's own bucket stores what the slow half leaves unspent (it holds
//!   20 tokens for RegisterTaskDefinition, a slow climb leaves about 3), so nearly all of the
//!   part left is used, at the price of one throttled call (retried) per cycle.
//! - Configuration ([`Limits::parse`]): comma-separated `SERVICE:OPERATION=CAPACITY/RATE`, e.g.
//!   `ECS:RegisterTaskDefinition=20/1,EFS:CreateAccessPoint=5/2`. Naming any operation of a shared
//!   bucket sets that bucket; `Fargate:RunTask` is Fargate's RunTask bucket; `*` sets the bucket
//!   that each unlisted operation gets. Names are matched exactly, as the SDK spells them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The slowest a bucket gets after repeated throttling, as a fraction of its configured rate.
pub const MIN_SLOWDOWN_FACTOR: f64 = 1.0 / 16.0;

/// How fast a throttled bucket's rate climbs back, per second, as a fraction of its configured
/// rate: from half the rate to the full one in 20 s. Slow enough that AWS's bucket (20 tokens
/// for RegisterTaskDefinition) stores what the climb leaves unspent when a competing client
/// holds part of it, fast enough that a lone throttle costs about 5 s of full-rate calls.
pub const RECOVERY_PER_SECOND: f64 = 1.0 / 40.0;

/// Throttles that arrive within this time after the rate was halved answer calls already in
/// flight at the decrease: they empty the bucket but do not halve the rate again.
pub const REACTION: Duration = Duration::from_secs(1);

/// Each row is one bucket, shared by its operations: (operations, capacity, rate per second).
///
/// ECS rows are "Request throttling for the Amazon ECS API" (capacity/refill per second) with the
/// refill at 98 % and the whole burst: AWS's bucket is full when this process starts using it
/// (and [`Bucket::throttled`] corrects the rare start where another process had spent it), and
/// a burst rounded down to 19 of 20 cost a cold start a whole second of RegisterTaskDefinition
/// for nothing. Register+Deregister 20/1, DeleteTaskDefinitions 5/1,
/// RunTask+StartTask+StopTask 100/40, DescribeTasks+ListTasks 100/20, DescribeTaskDefinition
/// 50/20, TagResource+UntagResource 20/10; Fargate adds RunTask at 20 calls/s. Secrets Manager
/// publishes rates per second without a burst (50/s for CreateSecret, DeleteSecret,
/// TagResource+UntagResource, PutSecretValue+UpdateSecret, RestoreSecret; 100/s for ListSecrets;
/// 10,000/s for DescribeSecret and GetSecretValue): a burst of one second's worth at 98 %, and
/// reads capped far below their quota.
pub const DEFAULT_BUCKETS: &[(&[&str], u32, f64)] = &[
    (
        &["ECS:RegisterTaskDefinition", "ECS:DeregisterTaskDefinition"],
        20,
        0.98,
    ),
    (&["ECS:DeleteTaskDefinitions"], 5, 0.98),
    (&["ECS:RunTask", "ECS:StartTask", "ECS:StopTask"], 100, 39.2),
    (&[FARGATE_RUN_TASK], 20, 19.6),
    (&["ECS:DescribeTasks", "ECS:ListTasks"], 100, 19.6),
    (&["ECS:DescribeTaskDefinition"], 50, 19.6),
    (&["ECS:TagResource", "ECS:UntagResource"], 20, 9.8),
    (&["SecretsManager:CreateSecret"], 49, 49.0),
    (&["SecretsManager:DeleteSecret"], 49, 49.0),
    (
        &["SecretsManager:TagResource", "SecretsManager:UntagResource"],
        49,
        49.0,
    ),
    (
        &[
            "SecretsManager:PutSecretValue",
            "SecretsManager:UpdateSecret",
        ],
        49,
        49.0,
    ),
    (&["SecretsManager:RestoreSecret"], 49, 49.0),
    (&["SecretsManager:ListSecrets"], 98, 98.0),
    (
        &[
            "SecretsManager:DescribeSecret",
            "SecretsManager:GetSecretValue",
        ],
        1000,
        1000.0,
    ),
];

/// Fargate's RunTask limit, which ECS RunTask calls pass on top of ECS's own bucket.
const FARGATE_RUN_TASK: &str = "Fargate:RunTask";

/// The bucket each operation without a row in [`DEFAULT_BUCKETS`] gets (EFS and IAM publish no
/// rates; CreateAccessPoint does throttle).
pub const DEFAULT_LIMIT: Limit = Limit {
    capacity: 10,
    per_second: 5.0,
};

/// Tokens closer than this to a whole one count as whole: float refill must not make a caller
/// sleep again for a nanosecond.
const EPSILON: f64 = 1e-9;

/// A wrong rate-limit configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// An entry is not `SERVICE:OPERATION=CAPACITY/RATE` (or `*=CAPACITY/RATE`).
    #[error(
        "rate limit `{entry}`: expected SERVICE:OPERATION=CAPACITY/RATE, e.g. ECS:RunTask=90/36"
    )]
    Syntax { entry: String },
    /// The capacity is below 1, or the rate is not a positive number.
    #[error(
        "rate limit `{entry}`: the capacity must be at least 1 and the rate above 0 per second"
    )]
    OutOfRange { entry: String },
    /// Two entries set one bucket, directly or through operations that share it.
    #[error("rate limits `{first}` and `{second}` set the same bucket")]
    Duplicate { first: String, second: String },
}

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    capacity: u32,
    per_second: f64,
}

impl Limit {
    /// # Errors
    /// [`LimitsError::OutOfRange`] when `capacity` is 0 or `per_second` is not a positive number.
    pub fn new(capacity: u32, per_second: f64) -> Result<Self, LimitsError> {
        if capacity == 0 || !per_second.is_finite() || per_second <= 0.0 {
            return Err(LimitsError::OutOfRange {
                entry: format!("{capacity}/{per_second}"),
            });
        }
        Ok(Self {
            capacity,
            per_second,
        })
    }

    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    #[must_use]
    pub fn per_second(&self) -> f64 {
        self.per_second
    }
}

/// `CAPACITY/RATE`, e.g. `18/0.9`.
impl FromStr for Limit {
    type Err = LimitsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || LimitsError::Syntax {
            entry: s.to_owned(),
        };
        let (capacity, rate) = s.split_once('/').ok_or_else(syntax)?;
        let capacity = capacity.trim().parse().map_err(|_| syntax())?;
        let rate = rate.trim().parse().map_err(|_| syntax())?;
        Self::new(capacity, rate).map_err(|_| LimitsError::OutOfRange {
            entry: s.to_owned(),
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.capacity, self.per_second)
    }
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled_at: Instant,
    /// The refill rate at `refilled_at`: the limit's, or lower after throttling, climbing back.
    rate: f64,
    /// When the rate was last halved.
    decreased_at: Option<Instant>,
    /// Normal callers inside `acquire`, whom low-priority callers yield to.
    normal_waiting: usize,
}

impl State {
    /// The additive increase, per second per second.
    fn climb(limit: Limit) -> f64 {
        limit.per_second * RECOVERY_PER_SECOND
    }

    /// Seconds until the rate is the limit's again.
    fn ramp(&self, limit: Limit) -> f64 {
        ((limit.per_second - self.rate) / Self::climb(limit)).max(0.0)
    }

    /// Tokens earned in the `elapsed` seconds after `refilled_at`: along the climb, then at the
    /// limit's rate.
    fn earned(&self, elapsed: f64, limit: Limit) -> f64 {
        let climb = Self::climb(limit);
        let ramp = self.ramp(limit).min(elapsed);
        self.rate * ramp + climb * ramp * ramp / 2.0 + limit.per_second * (elapsed - ramp)
    }

    /// Adds the tokens earned until `now`, and climbs the rate.
    fn refill(&mut self, now: Instant, limit: Limit) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        self.tokens = (self.tokens + self.earned(elapsed, limit)).min(f64::from(limit.capacity));
        self.rate = (self.rate + Self::climb(limit) * elapsed).min(limit.per_second);
        self.refilled_at = now;
    }

    /// How long until the bucket (refilled at `now`) holds `wanted` tokens, if nobody takes any.
    fn time_until(&self, wanted: f64, limit: Limit) -> Duration {
        let missing = wanted - self.tokens;
        if missing <= EPSILON {
            return Duration::ZERO;
        }
        let ramp = self.ramp(limit);
        let on_ramp = self.earned(ramp, limit);
        let seconds = if missing <= on_ramp {
            // rate·t + climb·t²/2 = missing
            let climb = Self::climb(limit);
            ((self.rate * self.rate + 2.0 * climb * missing).sqrt() - self.rate) / climb
        } else {
            ramp + (missing - on_ramp) / limit.per_second
        };
        // A second at most past the exact time: the loop around it sleeps again if short.
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(1))
    }
}

/// One token bucket; share it with an `Arc`.
#[derive(Debug)]
pub struct Bucket {
    name: String,
    limit: Limit,
    /// Tokens that low-priority callers leave in the bucket.
    reserve: f64,
    state: Mutex<State>,
    /// Normal callers queue here, so they get tokens in arrival order (tokio's mutex is fair).
    normal_turn: tokio::sync::Mutex<()>,
    low_turn: tokio::sync::Mutex<()>,
    /// Wakes a low-priority caller when the last normal caller leaves.
    normal_idle: Notify,
}

/// Counts a normal caller for as long as it is inside `acquire`, cancellation included.
struct NormalCaller<'a>(&'a Bucket);

impl<'a> NormalCaller<'a> {
    fn enter(bucket: &'a Bucket) -> Self {
        bucket.state().normal_waiting += 1;
        Self(bucket)
    }
}

impl Drop for NormalCaller<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.normal_waiting = state.normal_waiting.saturating_sub(1);
        let idle = state.normal_waiting == 0;
        drop(state);
        if idle {
            self.0.normal_idle.notify_waiters();
        }
    }
}

impl Bucket {
    /// A full bucket: a fresh process gets the burst, and [`Bucket::throttled`] corrects it when
    /// another process had already spent AWS's.
    #[must_use]
    pub fn new(name: impl Into<String>, limit: Limit) -> Self {
        Self {
            name: name.into(),
            limit,
            reserve: f64::from(limit.capacity / 2),
            state: Mutex::new(State {
                tokens: f64::from(limit.capacity),
                refilled_at: Instant::now(),
                rate: limit.per_second,
                decreased_at: None,
                normal_waiting: 0,
            }),
            normal_turn: tokio::sync::Mutex::new(()),
            low_turn: tokio::sync::Mutex::new(()),
            normal_idle: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Updates are plain arithmetic that cannot panic half-way, so a poisoned lock still
        // guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The operations sharing it, e.g. `ECS:RegisterTaskDefinition+ECS:DeregisterTaskDefinition`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Tokens available now.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        let mut state = self.state();
        state.refill(Instant::now(), self.limit);
        state.tokens
    }

    /// The refill rate now, per second: lower than the limit's after throttling, until it has
    /// climbed back.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let mut state = self.state();
        state.refill(Instant::now(), self.limit);
        state.rate
    }

    /// Takes a token if one is available and no caller is waiting for one.
    #[must_use]
    pub fn try_acquire(&self) -> bool {
        let mut state = self.state();
        state.refill(Instant::now(), self.limit);
        if state.normal_waiting == 0 && state.tokens + EPSILON >= 1.0 {
            state.tokens = (state.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    /// Waits for a token and takes it; callers are served in arrival order. Cancel-safe: a
    /// dropped `acquire` takes nothing.
    pub async fn acquire(&self) {
        let _caller = NormalCaller::enter(self);
        let _turn = self.normal_turn.lock().await;
        loop {
            let wait = {
                let mut state = self.state();
                let now = Instant::now();
                state.refill(now, self.limit);
                if state.tokens + EPSILON >= 1.0 {
                    state.tokens = (state.tokens - 1.0).max(0.0);
                    return;
                }
                state.time_until(1.0, self.limit)
            };
            // Sleeping again after waking, instead of taking the token blindly, keeps a
            // throttle that arrived meanwhile in force.
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether [`Bucket::acquire_low_priority`] would take a token now without waiting.
    #[must_use]
    pub fn has_spare(&self) -> bool {
        let mut state = self.state();
        state.refill(Instant::now(), self.limit);
        state.normal_waiting == 0 && state.tokens + EPSILON >= 1.0 + self.reserve
    }

    /// Waits until no normal caller waits and more than the reserve (half the capacity) is
    /// left, then takes a token: for work that can trail, like deregistering old revisions.
    /// Cancel-safe.
    pub async fn acquire_low_priority(&self) {
        let _turn = self.low_turn.lock().await;
        loop {
            let normal_left = self.normal_idle.notified();
            let (wait, yielding) = {
                let mut state = self.state();
                let now = Instant::now();
                state.refill(now, self.limit);
                let wanted = 1.0 + self.reserve;
                let yielding = state.normal_waiting > 0;
                if !yielding && state.tokens + EPSILON >= wanted {
                    state.tokens = (state.tokens - 1.0).max(0.0);
                    return;
                }
                (state.time_until(wanted, self.limit), yielding)
            };
            if yielding {
                tokio::select! {
                    () = normal_left => {}
                    () = tokio::time::sleep(wait) => {}
                }
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// AWS throttled a call that passed this bucket: its real bucket is empty (other clients
    /// share it), so this one is emptied too, and its rate halves (never below
    /// [`MIN_SLOWDOWN_FACTOR`] of the limit) unless it was halved less than [`REACTION`] ago.
    /// The rate then climbs back by [`RECOVERY_PER_SECOND`] of the limit each second.
    pub fn throttled(&self) {
        let mut state = self.state();
        let now = Instant::now();
        state.refill(now, self.limit);
        state.tokens = 0.0;
        if state
            .decreased_at
            .is_some_and(|at| now.saturating_duration_since(at) < REACTION)
        {
            return;
        }
        state.rate = (state.rate / 2.0).max(self.limit.per_second * MIN_SLOWDOWN_FACTOR);
        state.decreased_at = Some(now);
    }
}

/// The buckets of every AWS operation the controller calls.
#[derive(Debug)]
pub struct Limits {
    /// `SERVICE:OPERATION` -> the buckets a call passes, in order.
    routes: HashMap<String, Vec<Arc<Bucket>>>,
    unlisted_limit: Limit,
    /// Buckets of operations without a route, made on first use.
    unlisted: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::build(&HashMap::new(), DEFAULT_LIMIT)
    }
}

impl Limits {
    /// The defaults with the overrides in `config`, described in the module documentation. An
    /// empty `config` gives the defaults.
    ///
    /// # Errors
    /// A [`LimitsError`] naming the first wrong entry.
    pub fn parse(config: &str) -> Result<Self, LimitsError> {
        // Row of DEFAULT_BUCKETS (or the operation itself when unlisted) -> (entry, limit).
        let mut overrides: HashMap<String, (String, Limit)> = HashMap::new();
        let mut unlisted_limit: Option<(String, Limit)> = None;
        for entry in config.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let syntax = || LimitsError::Syntax {
                entry: entry.to_owned(),
            };
            let (operation, limit) = entry.split_once('=').ok_or_else(syntax)?;
            let operation = operation.trim();
            let limit: Limit = limit.parse().map_err(|e| match e {
                LimitsError::OutOfRange { .. } => LimitsError::OutOfRange {
                    entry: entry.to_owned(),
                },
                _ => syntax(),
            })?;
            let previous = if operation == "*" {
                unlisted_limit.replace((entry.to_owned(), limit))
            } else {
                if !is_operation(operation) {
                    return Err(syntax());
                }
                let bucket = DEFAULT_BUCKETS
                    .iter()
                    .find(|(operations, ..)| operations.contains(&operation))
                    .map_or(operation, |(operations, ..)| operations[0]);
                overrides.insert(bucket.to_owned(), (entry.to_owned(), limit))
            };
            if let Some((first, _)) = previous {
                return Err(LimitsError::Duplicate {
                    first,
                    second: entry.to_owned(),
                });
            }
        }
        let overrides = overrides
            .into_iter()
            .map(|(bucket, (_, limit))| (bucket, limit))
            .collect();
        Ok(Self::build(
            &overrides,
            unlisted_limit.map_or(DEFAULT_LIMIT, |(_, limit)| limit),
        ))
    }

    /// `overrides` is keyed by a bucket's first operation, or by an unlisted operation.
    fn build(overrides: &HashMap<String, Limit>, unlisted_limit: Limit) -> Self {
        let mut routes: HashMap<String, Vec<Arc<Bucket>>> = HashMap::new();
        for (operations, capacity, per_second) in DEFAULT_BUCKETS {
            let limit = overrides.get(operations[0]).copied().unwrap_or(Limit {
                capacity: *capacity,
                per_second: *per_second,
            });
            let bucket = Arc::new(Bucket::new(operations.join("+"), limit));
            for operation in *operations {
                routes.insert((*operation).to_owned(), vec![Arc::clone(&bucket)]);
            }
        }
        for (operation, limit) in overrides {
            routes
                .entry(operation.clone())
                .or_insert_with(|| vec![Arc::new(Bucket::new(operation.clone(), *limit))]);
        }
        if let Some(fargate) = routes
            .get(FARGATE_RUN_TASK)
            .and_then(|b| b.first())
            .cloned()
            && let Some(run_task) = routes.get_mut("ECS:RunTask")
        {
            run_task.push(fargate);
        }
        Self {
            routes,
            unlisted_limit,
            unlisted: Mutex::new(HashMap::new()),
        }
    }

    /// The buckets a call to `service`'s `operation` must pass, e.g. `("ECS", "RunTask")`: ECS's
    /// RunTask+StartTask+StopTask bucket, then Fargate's RunTask bucket.
    #[must_use]
    pub fn buckets(&self, service: &str, operation: &str) -> Vec<Arc<Bucket>> {
        let key = format!("{service}:{operation}");
        if let Some(buckets) = self.routes.get(&key) {
            return buckets.clone();
        }
        let mut unlisted = self.unlisted.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = unlisted
            .entry(key)
            .or_insert_with_key(|key| Arc::new(Bucket::new(key.clone(), self.unlisted_limit)));
        vec![Arc::clone(bucket)]
    }

    /// Waits until a call to `service`'s `operation` may be made; call it right before the call.
    pub async fn acquire(&self, service: &str, operation: &str) {
        for bucket in self.buckets(service, operation) {
            bucket.acquire().await;
        }
    }

    /// Whether a low-priority call of `service`'s `operation` would pass now without waiting.
    #[must_use]
    pub fn has_spare(&self, service: &str, operation: &str) -> bool {
        self.buckets(service, operation)
            .iter()
            .all(|bucket| bucket.has_spare())
    }

    /// As [`Limits::acquire`], yielding to every normal caller of the same buckets.
    pub async fn acquire_low_priority(&self, service: &str, operation: &str) {
        for bucket in self.buckets(service, operation) {
            bucket.acquire_low_priority().await;
        }
    }

    /// AWS throttled a call to `service`'s `operation`. Every bucket the call passed slows down,
    /// since the answer does not say which of AWS's limits was hit.
    pub fn throttled(&self, service: &str, operation: &str) {
        for bucket in self.buckets(service, operation) {
            bucket.throttled();
        }
    }
}

/// `SERVICE:OPERATION`, both non-empty alphanumeric.
fn is_operation(name: &str) -> bool {
    name.split_once(':').is_some_and(|(service, operation)| {
        [service, operation]
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

impl crate::Gate for Limits {
    fn pass<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::AwsError>> + Send + 'a>>
    {
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

    fn pass_low_priority<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::AwsError>> + Send + 'a>>
    {
        Box::pin(async move {
            self.acquire_low_priority(service, operation).await;
            Ok(())
        })
    }

    fn has_spare(&self, service: &str, operation: &str) -> bool {
        Limits::has_spare(self, service, operation)
    }

    fn throttled(&self, service: &str, operation: &str) {
        Limits::throttled(self, service, operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(capacity: u32, per_second: f64) -> Limit {
        Limit::new(capacity, per_second).unwrap()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Seconds of virtual time `f` takes.
    async fn timed(f: impl Future<Output = ()>) -> f64 {
        let start = Instant::now();
        f.await;
        start.elapsed().as_secs_f64()
    }

    fn assert_about(measured: f64, expected: f64) {
        // tokio's timer rounds each sleep up to the next millisecond, and a late wake-up leaves
        // the next wait that much shorter.
        assert!(
            (expected - 0.0021..=expected + 0.0021).contains(&measured),
            "measured {measured} s, expected {expected} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_capacity_is_immediate() {
        let bucket = Bucket::new("test", limit(18, 0.9));
        let took = timed(async {
            for _ in 0..18 {
                bucket.acquire().await;
            }
        })
        .await;
        assert_eq!(took, 0.0);
        assert!(!bucket.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn the_call_after_a_burst_waits_one_refill_interval() {
        let bucket = Bucket::new("test", limit(18, 0.9));
        for _ in 0..18 {
            bucket.acquire().await;
        }
        assert_about(timed(bucket.acquire()).await, 1.0 / 0.9);
        assert_about(timed(bucket.acquire()).await, 1.0 / 0.9);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_refill_at_the_rate_up_to_capacity() {
        let bucket = Bucket::new("test", limit(10, 2.0));
        for _ in 0..10 {
            assert!(bucket.try_acquire());
        }
        tokio::time::sleep(secs(2.5)).await;
        assert!((bucket.tokens() - 5.0).abs() < 1e-6, "{}", bucket.tokens());
        tokio::time::sleep(secs(3600.0)).await;
        assert_eq!(bucket.tokens(), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn register_and_deregister_drain_one_shared_bucket() {
        let limits = Limits::default();
        for _ in 0..10 {
            limits.acquire("ECS", "RegisterTaskDefinition").await;
            limits.acquire("ECS", "DeregisterTaskDefinition").await;
        }
        let next = timed(limits.acquire("ECS", "DeregisterTaskDefinition")).await;
        assert_about(next, 1.0 / 0.98);
        // Other operations keep their own tokens.
        assert_eq!(timed(limits.acquire("ECS", "DescribeTasks")).await, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn run_task_passes_ecs_and_fargate_buckets_and_stop_task_only_ecs() {
        let limits = Limits::default();
        let names: Vec<_> = limits
            .buckets("ECS", "RunTask")
            .iter()
            .map(|b| b.name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["ECS:RunTask+ECS:StartTask+ECS:StopTask", "Fargate:RunTask"]
        );

        for _ in 0..20 {
            limits.acquire("ECS", "RunTask").await;
        }
        assert_about(timed(limits.acquire("ECS", "RunTask")).await, 1.0 / 19.6);
        assert_eq!(timed(limits.acquire("ECS", "StopTask")).await, 0.0);
        let ecs = &limits.buckets("ECS", "StopTask")[0];
        assert!(
            (ecs.tokens() - (100.0 - 22.0)).abs() < 3.0,
            "{}",
            ecs.tokens()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_empties_the_bucket_and_halves_its_rate() {
        let bucket = Bucket::new("test", limit(10, 10.0));
        bucket.throttled();
        assert_eq!(bucket.rate(), 5.0);
        assert_eq!(bucket.tokens(), 0.0);
        // 5·t + 0.25·t²/2 = 1 token.
        let first = ((25.0_f64 + 0.5).sqrt() - 5.0) / 0.25;
        assert_about(timed(bucket.acquire()).await, first);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_rate_recovers_additively_to_the_limit() {
        let bucket = Bucket::new("test", limit(10, 10.0));
        bucket.throttled();
        let mut rates = Vec::new();
        for _ in 0..5 {
            tokio::time::sleep(secs(5.0)).await;
            rates.push(bucket.rate());
        }
        // A fortieth of the limit per second: half back in 20 s, then no higher than the limit.
        assert_eq!(rates, [6.25, 7.5, 8.75, 10.0, 10.0]);
        // Full and at the full rate again.
        for _ in 0..10 {
            assert!(bucket.try_acquire());
        }
        assert_about(timed(bucket.acquire()).await, 0.1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_across_the_end_of_the_climb_uses_both_rates() {
        let bucket = Bucket::new("test", limit(100, 1.1));
        bucket.throttled();
        // The climb from 0.55/s to 1.1/s takes 20 s and earns 0.55·20 + 0.0275·20²/2 = 16.5.
        tokio::time::sleep(secs(19.0)).await;
        let earned = 0.55 * 19.0 + 0.0275 * 19.0 * 19.0 / 2.0;
        assert!(
            (bucket.tokens() - earned).abs() < 1e-6,
            "{}",
            bucket.tokens()
        );
        for _ in 0..15 {
            assert!(bucket.try_acquire());
        }
        // Two more tokens: 1.5 by the end of the climb, the last half at 1.1/s.
        let took = timed(async {
            bucket.acquire().await;
            bucket.acquire().await;
        })
        .await;
        assert_about(took, 1.0 + 0.5 / 1.1);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_throttling_slows_further_down_to_a_sixteenth() {
        let bucket = Bucket::new("test", limit(20, 16.0));
        let mut rates = Vec::new();
        for _ in 0..6 {
            bucket.throttled();
            rates.push(bucket.rate());
            tokio::time::sleep(REACTION).await;
        }
        // Halved each time, after climbing 0.4/s in the second between; floored at 1/16.
        let expected = [8.0, 4.2, 2.3, 1.35, 1.0, 1.0];
        for (rate, expected) in rates.iter().zip(expected) {
            assert!((rate - expected).abs() < 1e-9, "{rates:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_of_calls_in_flight_at_the_decrease_halve_the_rate_once() {
        let bucket = Bucket::new("test", limit(20, 16.0));
        for _ in 0..5 {
            bucket.throttled();
        }
        assert_eq!(bucket.rate(), 8.0);
        assert_eq!(
            bucket.tokens(),
            0.0,
            "each throttle still empties the bucket"
        );
    }

    /// AWS's side of one bucket at its documented rate, with a competing client that spends
    /// `competitor` of its refill. The controller acquires from its own bucket, sends, and on a
    /// throttle reports it and sends again, as the gate and the retry do. Returns (calls that
    /// went through, throttled answers) over `seconds`.
    async fn against_aws(bucket: &Bucket, aws: Limit, competitor: f64, seconds: f64) -> (u64, u64) {
        let aws = Arc::new(Bucket::new("aws", aws));
        let start = Instant::now();
        let end = start + secs(seconds);
        let rival = (competitor > 0.0).then(|| {
            let aws = Arc::clone(&aws);
            tokio::spawn(async move {
                // It wants `competitor` calls a second and retries a throttled one until it
                // goes through, as an SDK would.
                let mut tick = tokio::time::interval(secs(1.0 / competitor));
                loop {
                    tick.tick().await;
                    while !aws.try_acquire() {
                        tokio::time::sleep(secs(0.1)).await;
                    }
                }
            })
        });
        let (mut done, mut throttled) = (0, 0);
        while Instant::now() < end {
            bucket.acquire().await;
            if aws.try_acquire() {
                done += 1;
            } else {
                throttled += 1;
                bucket.throttled();
            }
        }
        if let Some(rival) = rival {
            rival.abort();
        }
        (done, throttled)
    }

    #[tokio::test(start_paused = true)]
    async fn alone_in_the_account_a_bucket_converges_to_the_documented_rate_without_throttling() {
        let limits = Limits::default();
        let bucket = &limits.buckets("ECS", "RegisterTaskDefinition")[0];
        let (done, throttled) = against_aws(bucket, limit(20, 1.0), 0.0, 3600.0).await;
        assert_eq!(throttled, 0);
        let rate = done as f64 / 3600.0;
        assert!(
            (0.98..=1.0).contains(&rate),
            "{rate} calls/s against AWS's 1/s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn beside_a_client_spending_30_percent_it_uses_at_least_90_percent_of_the_rest() {
        let limits = Limits::default();
        let bucket = &limits.buckets("ECS", "RegisterTaskDefinition")[0];
        let (done, throttled) = against_aws(bucket, limit(20, 1.0), 0.3, 3600.0).await;
        let share = done as f64 / 3600.0 / 0.7;
        println!("beside a 30 % competitor: {share:.3} of the rest, {throttled} throttled");
        assert!(share >= 0.9, "{share} of the 0.7/s left");
        assert!(
            throttled > 0,
            "the competitor's share is found by throttling"
        );
        assert!(
            throttled < 3600 / 10,
            "{throttled} throttles: at most one per cycle of the climb"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_run_task_slows_every_bucket_it_passed() {
        let limits = Limits::default();
        limits.throttled("ECS", "RunTask");
        let rates: Vec<f64> = limits
            .buckets("ECS", "RunTask")
            .iter()
            .map(|b| b.rate())
            .collect();
        assert_eq!(rates, [19.6, 9.8]);
        assert_eq!(limits.buckets("ECS", "DescribeTasks")[0].rate(), 19.6);
    }

    #[tokio::test(start_paused = true)]
    async fn low_priority_leaves_a_reserve_of_half_the_capacity() {
        let bucket = Bucket::new("test", limit(10, 1.0));
        for _ in 0..5 {
            assert_eq!(timed(bucket.acquire_low_priority()).await, 0.0);
        }
        // 5 left = the reserve: the next low-priority call waits for a sixth token.
        assert_about(timed(bucket.acquire_low_priority()).await, 1.0);
        // Normal callers may spend the reserve.
        for _ in 0..5 {
            assert!(bucket.try_acquire());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn has_spare_says_whether_a_low_priority_call_would_pass_now() {
        let bucket = Bucket::new("test", limit(10, 1.0));
        assert!(bucket.has_spare(), "full: 10 > the reserve of 5");
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert!(!bucket.has_spare(), "5 left: the reserve, not more");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(bucket.has_spare(), "a sixth came");
        assert_eq!(
            timed(bucket.acquire_low_priority()).await,
            0.0,
            "and it passes at once"
        );
        assert!(!bucket.has_spare());
    }

    #[tokio::test(start_paused = true)]
    async fn low_priority_waits_until_no_normal_caller_is_waiting() {
        let bucket = Arc::new(Bucket::new("test", limit(10, 1.0)));
        for _ in 0..10 {
            bucket.acquire().await;
        }
        let start = Instant::now();
        let low = tokio::spawn({
            let bucket = Arc::clone(&bucket);
            async move {
                bucket.acquire_low_priority().await;
                start.elapsed().as_secs_f64()
            }
        });
        tokio::task::yield_now().await;
        let normal: Vec<_> = (0..5)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                tokio::spawn(async move {
                    bucket.acquire().await;
                    start.elapsed().as_secs_f64()
                })
            })
            .collect();
        let mut last_normal: f64 = 0.0;
        for task in normal {
            last_normal = last_normal.max(task.await.unwrap());
        }
        let low = low.await.unwrap();
        assert_about(last_normal, 5.0);
        // After the normal callers, the bucket refills to the reserve (5) plus one.
        assert_about(low, 5.0 + 6.0);
    }

    #[tokio::test(start_paused = true)]
    async fn low_priority_never_takes_the_token_a_waiting_normal_caller_is_due() {
        // Capacity 1 has no reserve: both callers wait for the same token, due at the same tick.
        let bucket = Arc::new(Bucket::new("test", limit(1, 1.0)));
        assert!(bucket.try_acquire());
        let start = Instant::now();
        let low = tokio::spawn({
            let bucket = Arc::clone(&bucket);
            async move {
                bucket.acquire_low_priority().await;
                start.elapsed().as_secs_f64()
            }
        });
        tokio::task::yield_now().await;
        let normal = tokio::spawn({
            let bucket = Arc::clone(&bucket);
            async move {
                bucket.acquire().await;
                start.elapsed().as_secs_f64()
            }
        });
        assert_about(normal.await.unwrap(), 1.0);
        assert_about(low.await.unwrap(), 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_acquire_does_not_block_low_priority_callers() {
        let bucket = Bucket::new("test", limit(2, 1.0));
        assert!(bucket.try_acquire() && bucket.try_acquire());
        assert!(
            tokio::time::timeout(secs(0.5), bucket.acquire())
                .await
                .is_err()
        );
        // Refills to 2 by 2 s; the reserve of 1 leaves one for low priority.
        assert_about(timed(bucket.acquire_low_priority()).await, 1.5);
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_does_not_jump_ahead_of_a_waiting_caller() {
        let bucket = Bucket::new("test", limit(5, 1.0));
        // What `acquire` holds while it waits for its turn or a token.
        let waiting = NormalCaller::enter(&bucket);
        assert!(!bucket.try_acquire());
        drop(waiting);
        assert!(bucket.try_acquire());
    }

    /// Spawns `calls` callers of `operation` at once, each returning when it got its token.
    fn spawn_callers(
        limits: &Arc<Limits>,
        calls: usize,
        operation: &'static str,
        low_priority: bool,
    ) -> Vec<tokio::task::JoinHandle<f64>> {
        let start = Instant::now();
        (0..calls)
            .map(|_| {
                let limits = Arc::clone(limits);
                tokio::spawn(async move {
                    if low_priority {
                        limits.acquire_low_priority("ECS", operation).await;
                    } else {
                        limits.acquire("ECS", operation).await;
                    }
                    start.elapsed().as_secs_f64()
                })
            })
            .collect()
    }

    /// Seconds until the last of `callers` got its token.
    async fn last_done(callers: Vec<tokio::task::JoinHandle<f64>>) -> f64 {
        let mut last: f64 = 0.0;
        for caller in callers {
            last = last.max(caller.await.unwrap());
        }
        last
    }

    /// 20 registrations at once, the other 180 at 0.98/s.
    const COLD_START_OF_200: f64 = (200.0 - 20.0) / 0.98;

    #[tokio::test(start_paused = true)]
    async fn a_cold_start_of_200_registrations_paces_itself_to_the_refill_rate() {
        let limits = Arc::new(Limits::default());
        let took = last_done(spawn_callers(&limits, 200, "RegisterTaskDefinition", false)).await;
        println!("cold start of 200 registrations: {took:.3} s of virtual time");
        assert!(
            (COLD_START_OF_200..COLD_START_OF_200 + 0.5).contains(&took),
            "{took} s, expected about {COLD_START_OF_200} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deregistrations_queued_during_a_cold_start_wait_until_the_registrations_are_done() {
        let limits = Arc::new(Limits::default());
        let registrations = spawn_callers(&limits, 200, "RegisterTaskDefinition", false);
        tokio::task::yield_now().await;
        let cleanup = spawn_callers(&limits, 50, "DeregisterTaskDefinition", true);
        let registrations = last_done(registrations).await;
        let (first_cleanup, cleanup_done) = {
            let mut times = Vec::new();
            for caller in cleanup {
                times.push(caller.await.unwrap());
            }
            let first = times.iter().copied().fold(f64::MAX, f64::min);
            (first, times.iter().copied().fold(0.0, f64::max))
        };
        println!(
            "200 registrations with 50 deregistrations queued: registrations done at \
             {registrations:.3} s, deregistrations from {first_cleanup:.3} s to {cleanup_done:.3} s"
        );
        assert!(
            (COLD_START_OF_200..COLD_START_OF_200 + 0.5).contains(&registrations),
            "registrations took {registrations} s"
        );
        // Then the bucket refills to its reserve (10) plus one, and cleanup trails at the rate.
        assert_about(first_cleanup, registrations + 11.0 / 0.98);
        assert!(
            (cleanup_done - (first_cleanup + 49.0 / 0.98)).abs() < 0.1,
            "{cleanup_done}"
        );
    }

    #[test]
    fn limits_parse_sets_shared_buckets_unlisted_operations_and_the_default() {
        let limits = Limits::parse(
            " ECS:DeregisterTaskDefinition=20/1, EFS:CreateAccessPoint=3/0.5,*=2/1,Fargate:RunTask=20/20",
        )
        .unwrap();
        let register = &limits.buckets("ECS", "RegisterTaskDefinition")[0];
        assert_eq!(register.limit(), limit(20, 1.0));
        assert!(Arc::ptr_eq(
            register,
            &limits.buckets("ECS", "DeregisterTaskDefinition")[0]
        ));
        assert_eq!(limits.buckets("ECS", "RunTask")[1].limit(), limit(20, 20.0));
        assert_eq!(
            limits.buckets("EFS", "CreateAccessPoint")[0].limit(),
            limit(3, 0.5)
        );
        assert_eq!(
            limits.buckets("EFS", "DeleteAccessPoint")[0].limit(),
            limit(2, 1.0)
        );
        assert_eq!(
            limits.buckets("ECS", "DescribeTasks")[0].limit(),
            limit(100, 19.6),
            "untouched defaults stay"
        );
        assert_eq!(
            Limits::parse("").unwrap().routes.len(),
            Limits::default().routes.len()
        );
    }

    #[test]
    fn limits_parse_rejects_wrong_entries_naming_them() {
        let cases = [
            (
                "RunTask=1/1",
                "rate limit `RunTask=1/1`: expected SERVICE:OPERATION=CAPACITY/RATE",
            ),
            ("ECS:RunTask=90", "rate limit `ECS:RunTask=90`: expected"),
            ("ECS:RunTask=x/1", "rate limit `ECS:RunTask=x/1`: expected"),
            (
                "ECS:RunTask=0/1",
                "rate limit `ECS:RunTask=0/1`: the capacity must be at least 1",
            ),
            (
                "ECS:RunTask=5/0",
                "rate limit `ECS:RunTask=5/0`: the capacity",
            ),
            (
                "ECS:RunTask=5/-1",
                "rate limit `ECS:RunTask=5/-1`: the capacity",
            ),
            (
                "ECS:RunTask=5/NaN",
                "rate limit `ECS:RunTask=5/NaN`: the capacity",
            ),
            (
                "ECS:RegisterTaskDefinition=20/1,ECS:DeregisterTaskDefinition=10/1",
                "rate limits `ECS:RegisterTaskDefinition=20/1` and \
                 `ECS:DeregisterTaskDefinition=10/1` set the same bucket",
            ),
            (
                "*=1/1,*=2/1",
                "rate limits `*=1/1` and `*=2/1` set the same bucket",
            ),
        ];
        for (config, message) in cases {
            let error = Limits::parse(config).unwrap_err().to_string();
            assert!(error.starts_with(message), "{config}: {error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlisted_operations_get_a_conservative_bucket_each() {
        let limits = Limits::default();
        let create = limits.buckets("EFS", "CreateAccessPoint");
        let delete = limits.buckets("EFS", "DeleteAccessPoint");
        assert_eq!(create[0].limit(), DEFAULT_LIMIT);
        assert!(!Arc::ptr_eq(&create[0], &delete[0]));
        assert!(Arc::ptr_eq(
            &create[0],
            &limits.buckets("EFS", "CreateAccessPoint")[0]
        ));
        for _ in 0..10 {
            limits.acquire("EFS", "CreateAccessPoint").await;
        }
        assert_about(timed(limits.acquire("EFS", "CreateAccessPoint")).await, 0.2);
        assert_eq!(timed(limits.acquire("EFS", "DeleteAccessPoint")).await, 0.0);
    }

    #[test]
    fn every_default_bucket_refills_just_below_the_rate_it_models() {
        // First operation of each bucket -> the documented (capacity, rate per second).
        let documented: HashMap<&str, (u32, f64)> = HashMap::from([
            ("ECS:RegisterTaskDefinition", (20, 1.0)),
            ("ECS:DeleteTaskDefinitions", (5, 1.0)),
            ("ECS:RunTask", (100, 40.0)),
            (FARGATE_RUN_TASK, (20, 20.0)),
            ("ECS:DescribeTasks", (100, 20.0)),
            ("ECS:DescribeTaskDefinition", (50, 20.0)),
            ("ECS:TagResource", (20, 10.0)),
            ("SecretsManager:CreateSecret", (50, 50.0)),
            ("SecretsManager:DeleteSecret", (50, 50.0)),
            ("SecretsManager:TagResource", (50, 50.0)),
            ("SecretsManager:PutSecretValue", (50, 50.0)),
            ("SecretsManager:RestoreSecret", (50, 50.0)),
            ("SecretsManager:ListSecrets", (100, 100.0)),
            ("SecretsManager:DescribeSecret", (10_000, 10_000.0)),
        ]);
        assert_eq!(documented.len(), DEFAULT_BUCKETS.len());
        for (operations, capacity, per_second) in DEFAULT_BUCKETS {
            let (max_capacity, max_rate) = documented[operations[0]];
            assert!(
                *capacity <= max_capacity && *per_second < max_rate,
                "{operations:?}"
            );
            if operations[0] != "SecretsManager:DescribeSecret" {
                assert!(
                    *per_second >= 0.98 * max_rate - 1e-9,
                    "{operations:?}: at least 98 % of the documented rate"
                );
            }
            assert!(Limit::new(*capacity, *per_second).is_ok(), "{operations:?}");
            assert!(
                operations.iter().all(|op| is_operation(op)),
                "{operations:?}"
            );
        }
    }
}
