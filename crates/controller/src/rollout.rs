//! Rollout pacing: at most `--max-concurrent-replacements` running agents are being replaced at
//! once, so a fleet-wide change (a new template, a new default image, a wave of restarts) rolls
//! in waves instead of taking every tenant down together.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Caps how many running agents are being replaced at once, so a fleet-wide change (a new
/// template, a new default image, a wave of restarts) rolls in waves instead of taking every
/// tenant down together. New agents are not held back: only replacements take a slot.
#[derive(Debug)]
pub struct Rollout {
    cap: usize,
    replacing: Mutex<HashSet<String>>,
}

impl Rollout {
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            replacing: Mutex::default(),
        }
    }

    fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        self.replacing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for `agent_id` (or confirms it holds one); false when all are taken.
    pub fn begin(&self, agent_id: &str) -> bool {
        let mut set = self.set();
        if set.contains(agent_id) {
            return true;
        }
        if set.len() >= self.cap {
            return false;
        }
        set.insert(agent_id.to_owned())
    }

    pub fn end(&self, agent_id: &str) {
        self.set().remove(agent_id);
    }

    /// Replacements in progress.
    #[must_use]
    pub fn in_progress(&self) -> usize {
        self.set().len()
    }
}
