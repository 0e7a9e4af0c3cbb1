//! Console sessions, kept in this process's memory: a random id in the cookie, and here only
//! the SHA-256 of the id and of the caller's token, never either value. The caller is looked up
//! again from the token hash on every request, so a token revoked in the tokens document ends
//! its sessions at the next reload of that document. A session ends when idle for `idle` or
//! `lifetime` after sign-in, whichever comes first.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub lifetime: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

#[derive(Debug)]
struct Session {
    token_hash: [u8; 32],
    signed_in: Instant,
    last_seen: Instant,
}

/// The sessions of this replica.
#[derive(Debug, Default)]
pub struct Sessions {
    lifetimes: Lifetimes,
    by_id_hash: Mutex<HashMap<[u8; 32], Session>>,
}

/// The most sessions kept at once; beyond it the oldest go first, so that a flood of
/// sign-ins cannot grow memory without bound.
const MAX_SESSIONS: usize = 100_000;

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    #[must_use]
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            by_id_hash: Mutex::default(),
        }
    }

    #[must_use]
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    fn live(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) < self.lifetimes.idle
            && now.duration_since(session.signed_in) < self.lifetimes.lifetime
    }

    /// Opens a session for the caller of `token_hash`; returns the id for the cookie: 32
    /// random bytes, hex.
    pub fn open(&self, token_hash: [u8; 32]) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut sessions = self
            .by_id_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| self.live(s, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id_hash(&id),
            Session {
                token_hash,
                signed_in: now,
                last_seen: now,
            },
        );
        id
    }

    /// The token hash of a live session, which this use keeps alive; an expired one is
    /// removed.
    pub fn touch(&self, id: &str) -> Option<[u8; 32]> {
        let now = Instant::now();
        let key = id_hash(id);
        let mut sessions = self
            .by_id_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let live = sessions.get(&key).is_some_and(|s| self.live(s, now));
        if !live {
            sessions.remove(&key);
            return None;
        }
        let session = sessions.get_mut(&key)?;
        session.last_seen = now;
        Some(session.token_hash)
    }

    /// Ends a session (sign-out, or a revoked token).
    pub fn close(&self, id: &str) {
        self.by_id_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id_hash(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_session_ends_when_idle_and_after_its_lifetime_however_busy() {
        let sessions = Sessions::new(Lifetimes {
            idle: HOUR / 2,
            lifetime: 2 * HOUR,
        });
        let id = sessions.open([7; 32]);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.touch(&id), Some([7; 32]));
        // Used every 20 minutes: alive until its lifetime is over.
        for _ in 0..5 {
            tokio::time::advance(HOUR / 3).await;
            assert_eq!(sessions.touch(&id), Some([7; 32]));
        }
        tokio::time::advance(HOUR / 3).await;
        assert_eq!(sessions.touch(&id), None, "two hours after sign-in");

        let idle = sessions.open([8; 32]);
        tokio::time::advance(HOUR / 2).await;
        assert_eq!(sessions.touch(&idle), None, "half an hour unused");
    }

    #[tokio::test(start_paused = true)]
    async fn ids_are_random_and_a_closed_or_unknown_one_is_nothing() {
        let sessions = Sessions::new(Lifetimes::default());
        let a = sessions.open([1; 32]);
        let b = sessions.open([1; 32]);
        assert_ne!(a, b);
        sessions.close(&a);
        assert_eq!(sessions.touch(&a), None);
        assert_eq!(sessions.touch(&b), Some([1; 32]));
        assert_eq!(sessions.touch("not-an-id"), None);
    }
}
