//! The work queue of agent ids, with client-go's workqueue semantics on tokio's clock.
//!
//! - [`Queue::get`] hands an agent id to one worker at a time; the worker calls [`Queue::done`]
//!   when its reconcile ends. An id is never in process twice.
//! - Adding an id that is already queued coalesces into one entry that keeps the earlier due
//!   time. Adding an id that is in process marks it dirty: it is queued again, once, at `done`.
//! - [`Queue::add_after`] schedules an id no earlier than a delay (requeue-after: a task still
//!   PROVISIONING or STOPPING). [`Queue::retry`] does the same with a per-id backoff, 1 s doubling
//!   to 5 min with ±10 % jitter, that only failures grow and [`Queue::forget`] resets. A plain add
//!   (a watch event, a resync) still brings a backed-off id forward, as in client-go, because a
//!   spec change may be the fix; it leaves the failure count alone.
//! - Two lanes, as controller-runtime's priority queue puts events ahead of its initial list:
//!   follow-ups ([`Queue::add_after`], a reconcile waiting on AWS, and [`Queue::add_follow_up`],
//!   a task event or a rollout slot) are handed out before fresh adds ([`Queue::add`],
//!   [`Queue::retry`]) once due, but never more than [`FOLLOW_UPS_PER_FRESH`] in a row while a
//!   fresh one is due. In a bulk onboarding or a fleet-wide change, thousands of fresh ids are
//!   due at once; in one lane an agent's wait for its task came due behind all of them, so each
//!   agent took the whole change's time to turn Running, and a rollout's slots sat on
//!   replacements whose next step waited in line. An id asked for both ways is queued at the
//!   earlier due time, in the follow-up lane if a follow-up ask is due within a minute of it.
//! - [`Queue::shut_down`] drains: from then on adds are ignored, ids scheduled for later (waits
//!   and backoffs) are dropped because the next start's resync finds them again and waiting out a
//!   5-minute backoff would hold up the exit, and ids already due (also ones added while in
//!   process) are still handed out. `get` returns `None` once none is left, waking idle workers.
//! - The queue owns its metrics, as client-go's does: a [`QueueMetrics`] sink given at creation
//!   is told of every add, the depth, each queue and work duration and each retry, from inside
//!   `add`, `get`, `done` and `retry`; [`Queue::update_unfinished_work`] (called on a tick, as
//!   client-go's `updateUnfinishedWorkLoop`) reports the work in process and its longest item.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Per-agent exponential backoff for failed reconciles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// No delay is longer, jitter included.
    pub max: Duration,
    /// Relative spread around the delay (0.1 is ±10 %), so that agents failing together, say on
    /// an AWS outage, do not retry in lockstep.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay before the retry that follows failure number `failures` (1 for the first), without
    /// jitter: `base * 2^(failures - 1)`, capped at `max`.
    #[must_use]
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// [`Backoff::delay`] scaled by `1 + jitter * spread`, with `spread` in `[-1, 1]`, capped at
    /// `max`.
    #[must_use]
    pub fn jittered(&self, failures: u32, spread: f64) -> Duration {
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = 1.0 + jitter * spread.clamp(-1.0, 1.0);
        let delay = self.delay(failures);
        Duration::try_from_secs_f64(delay.as_secs_f64() * factor)
            .unwrap_or(delay)
            .min(self.max)
    }
}

/// An agent id handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub agent_id: String,
    /// From the moment the id was due (or re-queued at `done`) until a worker got it: the
    /// `workqueue_queue_duration_seconds` sample. Requested delays are not counted.
    pub queued_for: Duration,
}

/// Counters and gauges for the `workqueue_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ids waiting to be handed out, due or not (`workqueue_depth`, same as [`Queue::len`]).
    pub queued: usize,
    /// Ids handed out and not yet done.
    pub in_process: usize,
    /// Adds that queued an id or marked an in-process id dirty; coalesced adds are not counted
    /// (`workqueue_adds_total`, as in client-go).
    pub adds: u64,
    /// Calls to [`Queue::retry`] that were accepted (`workqueue_retries_total`).
    pub retries: u64,
}

/// Where the queue reports what happens to it (`workqueue_*` in Prometheus terms). Every
/// method is cheap and must not block: it is called under the queue's lock.
pub trait QueueMetrics: Send + Sync + std::fmt::Debug {
    /// An id was queued or marked dirty (coalesced adds are not counted).
    fn add(&self);
    /// Ids waiting to be handed out.
    fn depth(&self, depth: usize);
    /// From due to handed out.
    fn queued_for(&self, waited: Duration);
    /// From handed out to done.
    fn worked_for(&self, took: Duration);
    /// A failed reconcile was queued again after its backoff.
    fn retry(&self);
    /// The seconds of work in process, summed over ids, and of the longest-running one.
    fn unfinished(&self, total_secs: f64, longest_secs: f64);
}

/// Reports nothing: one-shot commands and tests that do not look.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl QueueMetrics for NoMetrics {
    fn add(&self) {}
    fn depth(&self, _: usize) {}
    fn queued_for(&self, _: Duration) {}
    fn worked_for(&self, _: Duration) {}
    fn retry(&self) {}
    fn unfinished(&self, _: f64, _: f64) {}
}

/// Two asks for one id: the earlier due time; in the follow-up lane when either ask is a
/// follow-up due within [`FOLLOW_UP_HORIZON`] of it. A resync's add coalescing with a wait on
/// AWS due in a few seconds keeps the wait's place ahead of the backlog (in a cold start the
/// resync re-adds every agent in progress); one coalescing with a timer an hour away (a
/// schedule's revisit, a paced rollout's fallback) is fresh work due now, not a follow-up
/// that would go ahead of task events.
fn merge(a: (Instant, Lane), b: (Instant, Lane)) -> (Instant, Lane) {
    let due = a.0.min(b.0);
    let follows = |(at, lane): (Instant, Lane)| {
        lane == Lane::FollowUp && at.saturating_duration_since(due) <= FOLLOW_UP_HORIZON
    };
    let lane = if follows(a) || follows(b) {
        Lane::FollowUp
    } else {
        Lane::Fresh
    };
    (due, lane)
}

/// How far ahead a follow-up may be due and still lend its lane to an earlier ask: waits on
/// AWS are seconds (`plan::POLL_SECS`), timers are minutes to hours.
pub const FOLLOW_UP_HORIZON: Duration = Duration::from_secs(60);

/// Follow-ups handed out in a row, at most, while a fresh id is due: fresh ids keep at least a
/// fifth of the workers' turns however many agents are waiting on AWS.
pub const FOLLOW_UPS_PER_FRESH: u32 = 4;

/// Which lane an id is queued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Fresh,
    FollowUp,
}

type Key = (Instant, u64);

#[derive(Debug, Default)]
struct State {
    /// Queued fresh ids by (due, arrival), so that ids due at the same time keep their order.
    fresh: BTreeMap<Key, String>,
    /// Queued follow-ups, the same way.
    follow_ups: BTreeMap<Key, String>,
    /// Queued ids -> their lane and key.
    queued: HashMap<String, (Lane, Key)>,
    /// Follow-ups handed out in a row while a fresh id was due.
    streak: u32,
    /// Ids in process -> when a worker got them.
    in_process: HashMap<String, Instant>,
    /// In-process ids added again -> the earliest due time asked for, and the lane.
    dirty: HashMap<String, (Instant, Lane)>,
    /// Failures since the last `forget`, per id.
    failures: HashMap<String, u32>,
    next_arrival: u64,
    shutting_down: bool,
    adds: u64,
    retries: u64,
}

impl State {
    fn lane(&mut self, lane: Lane) -> &mut BTreeMap<Key, String> {
        match lane {
            Lane::Fresh => &mut self.fresh,
            Lane::FollowUp => &mut self.follow_ups,
        }
    }

    /// Queues `agent_id` (not in process) due at `due` in `lane`; with an ask already queued, the
    /// two merge ([`merge`]). Returns whether it was not queued before.
    fn enqueue(&mut self, agent_id: &str, due: Instant, lane: Lane) -> bool {
        if let Some(&(old_lane, old)) = self.queued.get(agent_id) {
            let (new_due, new_lane) = merge((old.0, old_lane), (due, lane));
            let new = (new_due, old.1);
            if (new_lane, new) != (old_lane, old)
                && let Some(id) = self.lane(old_lane).remove(&old)
            {
                self.lane(new_lane).insert(new, id);
                self.queued.insert(agent_id.to_owned(), (new_lane, new));
            }
            return false;
        }
        let key = (due, self.next_arrival);
        self.next_arrival += 1;
        self.queued.insert(agent_id.to_owned(), (lane, key));
        self.lane(lane).insert(key, agent_id.to_owned());
        true
    }

    /// Returns whether a waiting worker may now find something to do.
    fn add(&mut self, agent_id: &str, due: Instant, lane: Lane) -> bool {
        if self.shutting_down {
            return false;
        }
        if self.in_process.contains_key(agent_id) {
            match self.dirty.get_mut(agent_id) {
                Some(queued) => *queued = merge(*queued, (due, lane)),
                None => {
                    self.dirty.insert(agent_id.to_owned(), (due, lane));
                    self.adds += 1;
                }
            }
            return false;
        }
        if self.enqueue(agent_id, due, lane) {
            self.adds += 1;
        }
        true
    }

    /// Ids queued in both lanes.
    fn len(&self) -> usize {
        self.fresh.len() + self.follow_ups.len()
    }

    /// The earliest due time queued.
    fn next_due(&self) -> Option<Instant> {
        let first = |lane: &BTreeMap<Key, String>| lane.first_key_value().map(|(key, _)| key.0);
        match (first(&self.fresh), first(&self.follow_ups)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pop_due(&mut self, now: Instant) -> Option<Item> {
        let due = |lane: &BTreeMap<Key, String>| {
            lane.first_key_value()
                .is_some_and(|((due, _), _)| *due <= now)
        };
        let lane = match (due(&self.follow_ups), due(&self.fresh)) {
            (true, true) if self.streak < FOLLOW_UPS_PER_FRESH => {
                self.streak += 1;
                Lane::FollowUp
            }
            (true, false) => Lane::FollowUp,
            (_, true) => {
                self.streak = 0;
                Lane::Fresh
            }
            (false, false) => return None,
        };
        let ((due, _), agent_id) = self.lane(lane).pop_first()?;
        self.queued.remove(&agent_id);
        self.in_process.insert(agent_id.clone(), now);
        Some(Item {
            agent_id,
            queued_for: now.saturating_duration_since(due),
        })
    }
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

/// The queue; share it between workers with an `Arc`.
#[derive(Debug)]
pub struct Queue {
    backoff: Backoff,
    metrics: std::sync::Arc<dyn QueueMetrics>,
    state: Mutex<State>,
    /// Wakes workers waiting in `get` after anything that can make an id available or ends the
    /// queue.
    changed: Notify,
}

impl Queue {
    /// A queue with the default backoff (1 s doubling to 5 min, ±10 %) that reports nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::with_backoff(Backoff::default())
    }

    #[must_use]
    pub fn with_backoff(backoff: Backoff) -> Self {
        Self::with_metrics(backoff, std::sync::Arc::new(NoMetrics))
    }

    /// A queue that reports to `metrics`, which it sets to 0 now: the depth and the work in
    /// process exist before the first add, as client-go's do.
    #[must_use]
    pub fn with_metrics(backoff: Backoff, metrics: std::sync::Arc<dyn QueueMetrics>) -> Self {
        metrics.depth(0);
        metrics.unfinished(0.0, 0.0);
        Self {
            backoff,
            metrics,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Reports the work in process (`workqueue_unfinished_work_seconds`) and its longest item
    /// (`workqueue_longest_running_processor_seconds`); call it on a tick.
    pub fn update_unfinished_work(&self) {
        let state = self.state();
        let now = Instant::now();
        let ages = state
            .in_process
            .values()
            .map(|started| now.saturating_duration_since(*started).as_secs_f64());
        let (total, longest) = ages.fold((0.0, 0.0_f64), |(t, l), a| (t + a, l.max(a)));
        self.metrics.unfinished(total, longest);
    }

    /// Runs `change` on the state and reports what it changed: an add, and the depth.
    fn change<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state();
        let adds = state.adds;
        let out = change(&mut state);
        for _ in adds..state.adds {
            self.metrics.add();
        }
        self.metrics.depth(state.len());
        out
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything that could panic, so a
        // poisoned lock still guards valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `agent_id` now, in the fresh lane (a spec change, a resync). Ignored after
    /// [`Queue::shut_down`].
    pub fn add(&self, agent_id: &str) {
        self.add_at(agent_id, Instant::now(), Lane::Fresh);
    }

    /// Queues `agent_id` now, in the follow-up lane: the next step of work under way (a task
    /// event, a rollout slot freed for it). Ignored after [`Queue::shut_down`].
    pub fn add_follow_up(&self, agent_id: &str) {
        self.add_at(agent_id, Instant::now(), Lane::FollowUp);
    }

    /// Queues `agent_id` no earlier than `delay` from now, in the follow-up lane (requeue-after:
    /// a reconcile waiting on AWS). Ignored after [`Queue::shut_down`].
    pub fn add_after(&self, agent_id: &str, delay: Duration) {
        self.add_at(agent_id, Instant::now() + delay, Lane::FollowUp);
    }

    fn add_at(&self, agent_id: &str, due: Instant, lane: Lane) {
        let wake = self.change(|state| state.add(agent_id, due, lane));
        if wake {
            self.changed.notify_waiters();
        }
    }

    /// Waits until an id is due and not in process, and hands it out; call [`Queue::done`] with
    /// it when finished.
    ///
    /// Cancel-safe: a dropped `get` takes nothing out of the queue.
    ///
    /// # Guarantees
    /// Returns `None` only after [`Queue::shut_down`], once no id is left to hand out (nothing
    /// queued, no in-process id waiting to be re-queued at `done`).
    pub async fn get(&self) -> Option<Item> {
        loop {
            // Created before looking at the state, so a change made after the look still wakes
            // this worker.
            let changed = self.changed.notified();
            let next_due = {
                let mut state = self.state();
                if let Some(item) = state.pop_due(Instant::now()) {
                    self.metrics.depth(state.len());
                    self.metrics.queued_for(item.queued_for);
                    return Some(item);
                }
                if state.shutting_down && state.len() == 0 && state.dirty.is_empty() {
                    return None;
                }
                state.next_due()
            };
            match next_due {
                Some(due) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Ends the processing of `agent_id`: if it was added meanwhile, it is queued again now (or
    /// at the later time its add asked for). Returns how long it was in process (the
    /// `workqueue_work_duration_seconds` sample), or `None` if it was not in process.
    pub fn done(&self, agent_id: &str) -> Option<Duration> {
        let now = Instant::now();
        let (started, requeued) = self.change(|state| {
            let started = state.in_process.remove(agent_id)?;
            let requeued = state
                .dirty
                .remove(agent_id)
                .map(|(due, lane)| (due.max(now), lane));
            if let Some((due, lane)) = requeued {
                state.enqueue(agent_id, due, lane);
            }
            Some((started, requeued))
        })?;
        if requeued.is_some() {
            self.changed.notify_waiters();
        }
        let took = now.saturating_duration_since(started);
        self.metrics.worked_for(took);
        Some(took)
    }

    /// Counts a failure of `agent_id`'s reconcile and queues it after its backoff. Call it for
    /// real failures only, before or after `done`. Returns the delay chosen, or `None` after
    /// [`Queue::shut_down`] (nothing is counted or queued then).
    pub fn retry(&self, agent_id: &str) -> Option<Duration> {
        let (delay, wake) = self.change(|state| {
            if state.shutting_down {
                return None;
            }
            let failures = state.failures.entry(agent_id.to_owned()).or_insert(0);
            *failures = failures.saturating_add(1);
            let delay = self
                .backoff
                .jittered(*failures, rand::random_range(-1.0..=1.0));
            state.retries += 1;
            Some((
                delay,
                state.add(agent_id, Instant::now() + delay, Lane::Fresh),
            ))
        })?;
        self.metrics.retry();
        if wake {
            self.changed.notify_waiters();
        }
        Some(delay)
    }

    /// Resets `agent_id`'s backoff, after a successful reconcile.
    pub fn forget(&self, agent_id: &str) {
        self.state().failures.remove(agent_id);
    }

    /// Failures counted for `agent_id` since its last [`Queue::forget`].
    #[must_use]
    pub fn failures(&self, agent_id: &str) -> u32 {
        self.state().failures.get(agent_id).copied().unwrap_or(0)
    }

    /// Stops accepting adds and drains; see the module documentation for exactly what is kept.
    pub fn shut_down(&self) {
        let mut state = self.state();
        state.shutting_down = true;
        let now = Instant::now();
        let State {
            fresh,
            follow_ups,
            queued,
            dirty,
            ..
        } = &mut *state;
        for lane in [fresh, follow_ups] {
            lane.retain(|&(due, _), agent_id| {
                let keep = due <= now;
                if !keep {
                    queued.remove(agent_id);
                }
                keep
            });
        }
        dirty.retain(|_, (due, _)| *due <= now);
        self.metrics.depth(state.len());
        drop(state);
        self.changed.notify_waiters();
    }

    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.state().shutting_down
    }

    /// Whether `agent_id` is queued (due or not), or in process.
    #[must_use]
    pub fn has(&self, agent_id: &str) -> bool {
        let state = self.state();
        state.queued.contains_key(agent_id) || state.in_process.contains_key(agent_id)
    }

    /// Whether `agent_id` is in process, or queued and due within `horizon`: a reconcile will
    /// read it soon. A timer hours away (a schedule's next window) does not count.
    #[must_use]
    pub fn has_within(&self, agent_id: &str, horizon: Duration) -> bool {
        let state = self.state();
        state.in_process.contains_key(agent_id)
            || state
                .queued
                .get(agent_id)
                .is_some_and(|(_, (due, _))| *due <= Instant::now() + horizon)
    }

    /// Ids waiting to be handed out, due now or later; in-process ids are not counted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn stats(&self) -> QueueStats {
        let state = self.state();
        QueueStats {
            queued: state.len(),
            in_process: state.in_process.len(),
            adds: state.adds,
            retries: state.retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// `get` that must answer without waiting for the clock or another task.
    async fn get_now(queue: &Queue) -> Option<Item> {
        tokio::time::timeout(Duration::ZERO, queue.get())
            .await
            .ok()
            .flatten()
    }

    /// Whether `get` stays waiting for `window` of virtual time.
    async fn waits_for(queue: &Queue, window: Duration) -> bool {
        tokio::time::timeout(window, queue.get()).await.is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn has_within_counts_ids_in_process_and_due_soon_not_timers_far_off() {
        let queue = Queue::new();
        let minute = secs(60.0);
        queue.add_after("later", secs(3600.0));
        queue.add_after("soon", secs(30.0));
        queue.add("now");
        assert!(!queue.has_within("later", minute));
        assert!(queue.has_within("soon", minute));
        assert!(!queue.has_within("absent", minute));
        let item = get_now(&queue).await.map(|i| i.agent_id);
        assert_eq!(item.as_deref(), Some("now"));
        assert!(queue.has_within("now", minute), "in process");
        queue.done("now");
        assert!(!queue.has_within("now", minute));
        tokio::time::advance(secs(3000.0)).await;
        assert!(!queue.has_within("later", minute));
        tokio::time::advance(secs(550.0)).await;
        assert!(queue.has_within("later", minute));
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_adds_of_a_queued_id_are_handed_out_once() {
        let queue = Queue::new();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        queue.add("a");
        assert_eq!(queue.len(), 2);

        assert_eq!(
            get_now(&queue).await.map(|i| i.agent_id).as_deref(),
            Some("a")
        );
        assert_eq!(
            get_now(&queue).await.map(|i| i.agent_id).as_deref(),
            Some("b")
        );
        assert!(waits_for(&queue, secs(3600.0)).await);
        assert_eq!(queue.stats().adds, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_added_while_in_process_is_handed_out_again_only_after_done_and_once() {
        let queue = Queue::new();
        queue.add("a");
        let item = get_now(&queue).await.unwrap();
        assert_eq!(item.agent_id, "a");

        queue.add("a");
        queue.add("a");
        assert!(queue.is_empty(), "a dirty in-process id is not queued yet");
        assert!(
            waits_for(&queue, secs(60.0)).await,
            "handed out while in process"
        );

        assert_eq!(queue.done("a"), Some(secs(60.0)));
        assert_eq!(queue.len(), 1);
        let again = get_now(&queue).await.unwrap();
        assert_eq!(again.agent_id, "a");
        assert_eq!(
            again.queued_for,
            Duration::ZERO,
            "queued from done, not from the add"
        );
        queue.done("a");
        assert!(
            waits_for(&queue, secs(3600.0)).await,
            "handed out a second time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn done_of_an_id_not_in_process_changes_nothing() {
        let queue = Queue::new();
        queue.add("a");
        assert_eq!(queue.done("a"), None);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn backoff_doubles_from_one_second_and_caps_at_five_minutes() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (1..=12).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX), secs(300.0));
        assert_eq!(backoff.jittered(1, -1.0), secs(0.9));
        assert_eq!(backoff.jittered(1, 1.0), secs(1.1));
        assert_eq!(backoff.jittered(10, -1.0), secs(270.0));
        assert_eq!(
            backoff.jittered(10, 1.0),
            secs(300.0),
            "jitter never passes the cap"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_one_two_four_seconds_up_to_five_minutes_within_jitter() {
        let queue = Queue::new();
        queue.add("a");
        for failure in 1..=12_u32 {
            let item = get_now(&queue).await.unwrap();
            let delay = queue.retry(&item.agent_id).unwrap();
            queue.done(&item.agent_id);

            let nominal = Backoff::default().delay(failure).as_secs_f64();
            let (low, high) = (nominal * 0.9, (nominal * 1.1).min(300.0));
            let d = delay.as_secs_f64();
            assert!(
                (low - 1e-9..=high + 1e-9).contains(&d),
                "failure {failure}: {d} s outside [{low}, {high}]"
            );
            // Handed out when the delay is over, not before.
            let started = Instant::now();
            let next = queue.get().await.unwrap();
            queue.done(&next.agent_id);
            queue.add(&next.agent_id);
            let waited = started.elapsed().as_secs_f64();
            assert!(
                (d..d + 0.002).contains(&waited),
                "waited {waited} s for {d} s"
            );
        }
        assert_eq!(queue.failures("a"), 12);
        assert_eq!(queue.stats().retries, 12);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_retries_of_agents_that_fail_together() {
        let queue = Queue::new();
        let delays: Vec<Duration> = (0..100)
            .filter_map(|n| queue.retry(&format!("agent-{n}")))
            .collect();
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*min >= secs(0.9) && *max <= secs(1.1), "{min:?}..{max:?}");
        assert!(
            max.as_secs_f64() - min.as_secs_f64() > 0.05,
            "no spread: {min:?}..{max:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn forget_resets_the_backoff_to_one_second() {
        let queue = Queue::new();
        for _ in 0..6 {
            queue.retry("a");
        }
        assert_eq!(queue.failures("a"), 6);
        queue.forget("a");
        assert_eq!(queue.failures("a"), 0);
        let delay = queue.retry("a").unwrap();
        assert!((secs(0.9)..=secs(1.1)).contains(&delay), "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn plain_adds_do_not_grow_the_backoff() {
        let queue = Queue::new();
        queue.retry("a");
        for _ in 0..50 {
            queue.add("a");
            let item = get_now(&queue).await.unwrap();
            queue.add(&item.agent_id);
            queue.done(&item.agent_id);
        }
        assert_eq!(queue.failures("a"), 1);
        let get = get_now(&queue).await.unwrap();
        let delay = queue.retry(&get.agent_id).unwrap();
        assert!((secs(1.8)..=secs(2.2)).contains(&delay), "{delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_plain_add_brings_a_backed_off_id_forward() {
        let queue = Queue::new();
        queue.add("a");
        for _ in 0..8 {
            let item = queue.get().await.unwrap();
            queue.retry(&item.agent_id);
            queue.done(&item.agent_id);
        }
        assert!(
            waits_for(&queue, secs(10.0)).await,
            "the 8th retry waits about 128 s"
        );
        queue.add("a");
        assert_eq!(get_now(&queue).await.unwrap().agent_id, "a");
        assert_eq!(
            queue.failures("a"),
            8,
            "the add leaves the failure count alone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_hands_ids_out_in_due_order_not_in_add_order() {
        let queue = Queue::new();
        let start = Instant::now();
        queue.add_after("slow", secs(30.0));
        queue.add_after("fast", secs(5.0));
        queue.add("now");
        assert_eq!(queue.len(), 3);

        let mut seen = Vec::new();
        for _ in 0..3 {
            let item = queue.get().await.unwrap();
            assert_eq!(
                item.queued_for,
                Duration::ZERO,
                "a requested delay is not queue time"
            );
            seen.push((item.agent_id, start.elapsed().as_secs()));
        }
        let expected = [("now", 0), ("fast", 5), ("slow", 30)];
        let expected: Vec<_> = expected
            .iter()
            .map(|(id, t)| ((*id).to_owned(), *t))
            .collect();
        assert_eq!(seen, expected);
    }

    /// Every id `get` hands out without waiting, done at once, in order.
    async fn drain_now(queue: &Queue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = get_now(queue).await {
            queue.done(&item.agent_id);
            out.push(item.agent_id);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn due_follow_ups_go_before_fresh_ids_but_never_more_than_four_in_a_row() {
        let queue = Queue::new();
        for i in 0..3 {
            queue.add(&format!("new-{i}"));
        }
        // Waits that came due, and task events: after the fresh ids, but handed out first.
        for i in 0..6 {
            queue.add_after(&format!("wait-{i}"), Duration::ZERO);
        }
        for i in 0..4 {
            queue.add_follow_up(&format!("event-{i}"));
        }
        let order = drain_now(&queue).await;
        assert_eq!(
            order,
            [
                "wait-0", "wait-1", "wait-2", "wait-3", "new-0", "wait-4", "wait-5", "event-0",
                "event-1", "new-1", "event-2", "event-3", "new-2"
            ],
            "follow-ups in due order, a fresh id after every {FOLLOW_UPS_PER_FRESH}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_follow_up_not_yet_due_lets_fresh_ids_through() {
        let queue = Queue::new();
        let start = Instant::now();
        queue.add_after("wait", secs(5.0));
        queue.add("new");
        assert_eq!(drain_now(&queue).await, ["new"]);
        let item = queue.get().await.unwrap();
        assert_eq!(item.agent_id, "wait");
        assert_eq!(start.elapsed(), secs(5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_asked_for_both_ways_is_due_at_the_earlier_time_and_a_near_follow_up_keeps_its_lane()
     {
        let queue = Queue::new();
        let start = Instant::now();
        // A timer an hour away (a schedule's revisit), then a resync's add: fresh work due now,
        // not a follow-up ahead of task events.
        queue.add_after("timer", secs(3600.0));
        queue.add("new");
        queue.add("timer");
        queue.add_follow_up("event");
        assert_eq!(queue.len(), 3);
        // The timer keeps its place in line (its first arrival), behind the task event.
        assert_eq!(drain_now(&queue).await, ["event", "timer", "new"]);
        // Queued fresh, then a follow-up due now: the follow-up lane, at once.
        queue.add("a");
        queue.add("b");
        queue.add_follow_up("b");
        // A wait due in seconds, then a resync's add: a follow-up, now.
        queue.add("c");
        queue.add_after("w", secs(5.0));
        queue.add("w");
        assert_eq!(drain_now(&queue).await, ["b", "w", "a", "c"]);
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Added as a follow-up while in process: queued again at done, as a follow-up.
        queue.add("d");
        queue.add("e");
        let item = get_now(&queue).await.unwrap();
        assert_eq!(item.agent_id, "d");
        queue.add("f");
        queue.add_follow_up("d");
        queue.done("d");
        assert_eq!(drain_now(&queue).await, ["d", "e", "f"]);
        assert!(waits_for(&queue, secs(10.0)).await, "nothing left");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_in_the_fresh_lane() {
        let queue = Queue::with_backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        });
        queue.add("failing");
        let item = get_now(&queue).await.unwrap();
        queue.done(&item.agent_id);
        queue.retry("failing");
        tokio::time::advance(secs(1.0)).await;
        queue.add("new");
        queue.add_follow_up("event");
        assert_eq!(drain_now(&queue).await, ["event", "failing", "new"]);
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_coalesces_keeping_the_earlier_due_time() {
        let queue = Queue::new();
        let start = Instant::now();
        queue.add_after("a", secs(10.0));
        queue.add_after("a", secs(20.0));
        queue.add_after("b", secs(20.0));
        queue.add_after("b", secs(5.0));
        assert_eq!(queue.len(), 2);

        let first = queue.get().await.unwrap();
        assert_eq!((first.agent_id.as_str(), start.elapsed()), ("b", secs(5.0)));
        let second = queue.get().await.unwrap();
        assert_eq!(
            (second.agent_id.as_str(), start.elapsed()),
            ("a", secs(10.0))
        );
        assert!(
            waits_for(&queue, secs(3600.0)).await,
            "the later add left an entry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_while_in_process_requeues_at_the_later_of_done_and_the_delay() {
        let queue = Queue::new();
        queue.add("a");
        let start = Instant::now();
        get_now(&queue).await.unwrap();
        queue.add_after("a", secs(10.0));
        queue.add_after("a", secs(30.0));
        tokio::time::sleep(secs(2.0)).await;
        queue.done("a");
        assert_eq!(queue.get().await.unwrap().agent_id, "a");
        assert_eq!(start.elapsed(), secs(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn queued_for_measures_the_time_between_due_and_get() {
        let queue = Queue::new();
        queue.add("a");
        tokio::time::sleep(secs(3.0)).await;
        let item = queue.get().await.unwrap();
        assert_eq!(item.queued_for, secs(3.0));
        tokio::time::sleep(secs(7.0)).await;
        assert_eq!(queue.done("a"), Some(secs(7.0)));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_queued_ids_then_get_returns_none() {
        let queue = Queue::new();
        queue.add("a");
        queue.add("b");
        queue.shut_down();
        queue.add("c");
        assert_eq!(get_now(&queue).await.unwrap().agent_id, "a");
        assert_eq!(get_now(&queue).await.unwrap().agent_id, "b");
        queue.done("a");
        queue.done("b");
        assert_eq!(get_now(&queue).await, None);
        assert_eq!(queue.get().await, None, "None stays None");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drops_waits_and_backoffs_and_ignores_new_adds_and_retries() {
        let queue = Queue::new();
        queue.add_after("waiting", secs(30.0));
        queue.retry("failing");
        queue.add("due");
        let adds = queue.stats().adds;
        queue.shut_down();
        assert_eq!(queue.len(), 1);
        queue.add("late");
        queue.add_after("late", secs(1.0));
        assert_eq!(queue.retry("late"), None);
        assert_eq!(queue.stats().adds, adds);

        assert_eq!(get_now(&queue).await.unwrap().agent_id, "due");
        assert_eq!(get_now(&queue).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_added_while_in_process_before_shutdown_is_still_handed_out() {
        let queue = Arc::new(Queue::new());
        queue.add("a");
        get_now(&queue).await.unwrap();
        queue.add("a");
        queue.shut_down();

        // Another worker waits for the dirty id instead of leaving.
        let other = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.get().await }
        });
        tokio::time::sleep(secs(1.0)).await;
        assert!(!other.is_finished());
        queue.done("a");
        assert_eq!(other.await.unwrap().unwrap().agent_id, "a");
        queue.done("a");
        assert_eq!(get_now(&queue).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_wakes_every_idle_worker_with_none() {
        let queue = Arc::new(Queue::new());
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move { queue.get().await })
            })
            .collect();
        tokio::time::sleep(secs(5.0)).await;
        queue.shut_down();
        for worker in workers {
            assert_eq!(worker.await.unwrap(), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_get_takes_nothing_out_of_the_queue() {
        let queue = Queue::new();
        queue.add_after("a", secs(10.0));
        assert!(waits_for(&queue, secs(5.0)).await);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.get().await.unwrap().agent_id, "a");
    }

    /// Shared by the workers of a concurrency test.
    #[derive(Default)]
    struct Ledger {
        in_process: HashSet<String>,
        /// Adds made per id, bumped before each add.
        added: BTreeMap<String, u64>,
        /// Per id, the adds seen when its last run started.
        seen: BTreeMap<String, u64>,
        runs: u64,
        overlaps: u64,
    }

    fn ledger(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
        ledger.lock().unwrap()
    }

    /// Runs workers until the queue is shut down and drained.
    fn spawn_workers(
        queue: &Arc<Queue>,
        book: &Arc<Mutex<Ledger>>,
        workers: usize,
        work: fn(u64) -> Duration,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..workers)
            .map(|_| {
                let (queue, book) = (Arc::clone(queue), Arc::clone(book));
                tokio::spawn(async move {
                    while let Some(item) = queue.get().await {
                        let run = {
                            let mut book = ledger(&book);
                            if !book.in_process.insert(item.agent_id.clone()) {
                                book.overlaps += 1;
                            }
                            let added = book.added.get(&item.agent_id).copied().unwrap_or(0);
                            book.seen.insert(item.agent_id.clone(), added);
                            book.runs += 1;
                            book.runs
                        };
                        let pause = work(run);
                        if pause.is_zero() {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(pause).await;
                        }
                        ledger(&book).in_process.remove(&item.agent_id);
                        queue.done(&item.agent_id);
                    }
                })
            })
            .collect()
    }

    fn add_counted(queue: &Queue, book: &Mutex<Ledger>, agent_id: &str) {
        *ledger(book).added.entry(agent_id.to_owned()).or_insert(0) += 1;
        queue.add(agent_id);
    }

    /// Every id's last run started after its last add, and no id ran twice at once.
    fn assert_no_overlap_and_no_lost_add(book: &Mutex<Ledger>, ids: usize) {
        let book = ledger(book);
        assert_eq!(
            book.overlaps, 0,
            "an id was processed by two workers at once"
        );
        assert_eq!(book.added.len(), ids);
        assert_eq!(book.seen, book.added, "an add was lost");
        assert!(book.in_process.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_process_one_id_concurrently_and_lose_no_add() {
        const IDS: usize = 3;
        let queue = Arc::new(Queue::new());
        let book = Arc::new(Mutex::new(Ledger::default()));
        // More workers than ids, work of 1 to 7 ms of virtual time and each id added again every
        // 3 ms: most adds land while the id is in process and an idle worker is waiting.
        let workers = spawn_workers(&queue, &book, 8, |run| {
            Duration::from_millis(1 + run * 5 % 7)
        });
        for round in 0..500_u64 {
            let id = format!("agent-{}", round % IDS as u64);
            add_counted(&queue, &book, &id);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        queue.shut_down();
        for worker in workers {
            worker.await.unwrap();
        }
        assert_no_overlap_and_no_lost_add(&book, IDS);
        assert!(
            ledger(&book).runs < 500,
            "adds while queued should coalesce"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn workers_on_four_threads_never_process_one_id_concurrently() {
        const IDS: usize = 16;
        let queue = Arc::new(Queue::new());
        let book = Arc::new(Mutex::new(Ledger::default()));
        let workers = spawn_workers(&queue, &book, 8, |_| Duration::ZERO);
        let producers: Vec<_> = (0..4_usize)
            .map(|p| {
                let (queue, book) = (Arc::clone(&queue), Arc::clone(&book));
                tokio::spawn(async move {
                    for n in 0..2_000 {
                        add_counted(&queue, &book, &format!("agent-{}", (n * 7 + p) % IDS));
                        if n % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        queue.shut_down();
        for worker in workers {
            worker.await.unwrap();
        }
        assert_no_overlap_and_no_lost_add(&book, IDS);
        let stats = queue.stats();
        assert_eq!((stats.queued, stats.in_process), (0, 0));
    }

    /// A sink that records what the queue told it.
    #[derive(Debug, Default)]
    struct Recorded {
        events: Mutex<Vec<String>>,
    }

    impl Recorded {
        fn push(&self, event: String) {
            self.events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    impl QueueMetrics for Recorded {
        fn add(&self) {
            self.push("add".into());
        }
        fn depth(&self, depth: usize) {
            self.push(format!("depth {depth}"));
        }
        fn queued_for(&self, waited: Duration) {
            self.push(format!("queued {}", waited.as_secs()));
        }
        fn worked_for(&self, took: Duration) {
            self.push(format!("worked {}", took.as_secs()));
        }
        fn retry(&self) {
            self.push("retry".into());
        }
        fn unfinished(&self, total: f64, longest: f64) {
            self.push(format!("unfinished {total} {longest}"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_reports_its_own_metrics_from_add_get_done_and_retry() {
        let sink = Arc::new(Recorded::default());
        let queue = Queue::with_metrics(
            Backoff {
                jitter: 0.0,
                ..Backoff::default()
            },
            sink.clone(),
        );
        assert_eq!(
            sink.take(),
            ["depth 0", "unfinished 0 0"],
            "at 0 from the start"
        );

        queue.add("a");
        queue.add("a");
        assert_eq!(
            sink.take(),
            ["add", "depth 1", "depth 1"],
            "a coalesced add is no add"
        );

        tokio::time::advance(secs(2.0)).await;
        let item = get_now(&queue).await.expect("due");
        assert_eq!(sink.take(), ["depth 0", "queued 2"]);

        tokio::time::advance(secs(3.0)).await;
        queue.update_unfinished_work();
        assert_eq!(sink.take(), ["unfinished 3 3"]);

        queue.retry(&item.agent_id);
        assert_eq!(
            sink.take(),
            ["add", "depth 0", "retry"],
            "marked dirty while in process"
        );
        queue.done(&item.agent_id);
        assert_eq!(sink.take(), ["depth 1", "worked 3"]);
        queue.update_unfinished_work();
        assert_eq!(sink.take(), ["unfinished 0 0"]);
    }
}
