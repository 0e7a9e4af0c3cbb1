//! Rollout pacing: at most `--max-concurrent-replacements` running agents are being replaced at
//! once, so a fleet-wide change (a new template, a new default image, a wave of restarts) rolls
//! in waves instead of taking every tenant down together.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Caps how many running agents are being replaced at once, so a fleet-wide change (a new
/// template, a new default image, a wave of restarts) rolls in waves instead of taking every
/// tenant down together. New agents are not held back: only replacements take a slot.
///
/// A replacement held back waits in line for a slot instead of asking again on a timer: the
/// worker that frees a slot enqueues the next in line ([`Rollout::admit`]). Polling on a timer
/// made every held-back agent re-read AWS every few seconds, so a wave over 5,000 agents spent
/// the read buckets on polls, and the few agents with a slot waited behind them (the fleet
/// simulation's image change never finished; docs/benchmarks.md).
#[derive(Debug)]
pub struct Rollout {
    cap: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    replacing: HashSet<String>,
    /// Held back, oldest first; `in_line` is the same set, for the duplicate check.
    line: VecDeque<String>,
    in_line: HashSet<String>,
}

impl Rollout {
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for `agent_id` (or confirms it holds one); false when all are taken, and
    /// the agent then waits in line for [`Rollout::admit`].
    pub fn begin(&self, agent_id: &str) -> bool {
        let mut state = self.state();
        if state.replacing.contains(agent_id) {
            return true;
        }
        if state.replacing.len() >= self.cap {
            if state.in_line.insert(agent_id.to_owned()) {
                state.line.push_back(agent_id.to_owned());
            }
            return false;
        }
        state.replacing.insert(agent_id.to_owned())
    }

    pub fn end(&self, agent_id: &str) {
        self.state().replacing.remove(agent_id);
    }

    /// The agents in line, oldest first, as many as there are free slots: the caller enqueues
    /// them. Each still takes its slot with [`Rollout::begin`] when it is reconciled, and one
    /// that finds the slots taken again goes back in line.
    pub fn admit(&self) -> Vec<String> {
        let mut state = self.state();
        let free = self.cap.saturating_sub(state.replacing.len());
        let mut admitted = Vec::new();
        while admitted.len() < free {
            let Some(agent_id) = state.line.pop_front() else {
                break;
            };
            state.in_line.remove(&agent_id);
            admitted.push(agent_id);
        }
        admitted
    }

    /// Frees the slots of replacements no reconcile carries on (`carried` says which do: queued
    /// or in process), and admits the next in line to them. A holder whose reconcile ended
    /// without ending its slot (a replica that lost the lease mid-replacement, a failure that
    /// left it unqueued) would otherwise keep it for good, and the agents in line, which the
    /// resync leaves alone, would wait forever.
    pub fn release_stranded(&self, carried: impl Fn(&str) -> bool) -> Vec<String> {
        self.state().replacing.retain(|agent_id| carried(agent_id));
        self.admit()
    }

    /// Whether `agent_id` waits in line for a slot.
    #[must_use]
    pub fn in_line(&self, agent_id: &str) -> bool {
        self.state().in_line.contains(agent_id)
    }

    /// Replacements in progress.
    #[must_use]
    pub fn in_progress(&self) -> usize {
        self.state().replacing.len()
    }

    /// Replacements waiting in line for a slot.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.state().line.len()
    }
}

/// Whether the resync leaves `agent_id` alone: it waits in line for a slot with its old task
/// still running, and is enqueued when admitted. Re-reading it at every resync of a long
/// fleet-wide change cost each held-back agent a full read per resync, for a plan that puts
/// it back in line. One whose task is gone is enqueued (its task event may have been lost).
#[must_use]
pub fn held(rollout: &Rollout, agent_id: &str, observed: &plan::observed::AgentResources) -> bool {
    rollout.in_line(agent_id) && observed.tasks.iter().any(plan::observed::Task::is_live)
}

#[cfg(test)]
mod tests {
    use super::Rollout;

    #[test]
    fn slots_up_to_the_cap_and_a_holder_keeps_its_own() {
        let rollout = Rollout::new(2);
        assert!(rollout.begin("a"));
        assert!(rollout.begin("b"));
        assert!(rollout.begin("a"), "a holder asking again keeps its slot");
        assert!(!rollout.begin("c"));
        assert_eq!(rollout.in_progress(), 2);
        assert_eq!(rollout.waiting(), 1);
        assert!(rollout.in_line("c") && !rollout.in_line("a"));
        rollout.end("a");
        assert_eq!(rollout.admit(), ["c"]);
        assert!(!rollout.in_line("c"), "admitted: out of the line");
    }

    #[test]
    fn a_freed_slot_admits_the_oldest_in_line_once() {
        let rollout = Rollout::new(1);
        assert!(rollout.begin("a"));
        assert!(!rollout.begin("b"));
        assert!(!rollout.begin("c"));
        assert!(!rollout.begin("b"), "asking again keeps b's place");
        assert!(rollout.admit().is_empty(), "no slot is free yet");
        rollout.end("a");
        assert_eq!(rollout.admit(), ["b"]);
        assert!(rollout.begin("b"));
        assert!(rollout.admit().is_empty(), "b holds the one slot");
        rollout.end("b");
        assert_eq!(rollout.admit(), ["c"]);
        assert_eq!(rollout.waiting(), 0);
    }

    #[test]
    fn an_admitted_agent_that_loses_the_race_goes_back_in_line() {
        let rollout = Rollout::new(1);
        assert!(rollout.begin("a"));
        assert!(!rollout.begin("b"));
        rollout.end("a");
        assert_eq!(rollout.admit(), ["b"]);
        // Another replacement took the slot before b was reconciled.
        assert!(rollout.begin("z"));
        assert!(!rollout.begin("b"));
        assert_eq!(rollout.waiting(), 1);
        rollout.end("z");
        assert_eq!(rollout.admit(), ["b"]);
    }

    #[test]
    fn as_many_are_admitted_as_slots_are_free() {
        let rollout = Rollout::new(3);
        for id in ["a", "b", "c"] {
            assert!(rollout.begin(id));
        }
        for id in ["d", "e", "f", "g"] {
            assert!(!rollout.begin(id));
        }
        rollout.end("a");
        rollout.end("b");
        assert_eq!(rollout.admit(), ["d", "e"]);
        assert_eq!(rollout.waiting(), 2);
    }

    #[test]
    fn the_resync_leaves_alone_an_agent_in_line_whose_old_task_runs() {
        use plan::fixtures::{converged, spec};
        let rollout = Rollout::new(1);
        assert!(rollout.begin("a"));
        assert!(!rollout.begin("b"));
        let running = converged(&spec());
        let mut crashed = running.clone();
        crashed.tasks.clear();
        assert!(super::held(&rollout, "b", &running));
        assert!(
            !super::held(&rollout, "b", &crashed),
            "its task is gone: enqueued"
        );
        assert!(
            !super::held(&rollout, "a", &running),
            "holds a slot: enqueued"
        );
    }

    #[test]
    fn a_slot_no_reconcile_carries_on_is_freed_for_the_next_in_line() {
        let rollout = Rollout::new(1);
        assert!(rollout.begin("a"));
        assert!(!rollout.begin("b"));
        // a is still queued (waiting on AWS): nothing changes.
        assert!(rollout.release_stranded(|id| id == "a").is_empty());
        assert_eq!(rollout.in_progress(), 1);
        // a's reconcile ended without releasing its slot, and nothing queues it any more.
        assert_eq!(rollout.release_stranded(|_| false), ["b"]);
        assert!(rollout.begin("b"));
        assert_eq!(rollout.in_progress(), 1);
    }
}
