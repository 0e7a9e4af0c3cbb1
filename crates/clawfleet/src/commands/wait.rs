//! `clawfleet wait`: reads each agent from the store at most once a second until every one meets
//! a condition, or the timeout passes. It polls with consistent reads and never reads the
//! table's stream: DynamoDB throttles more than two readers per shard, and the stream is the
//! controller's.

use std::time::Duration;

use spec::{ConditionKind, ConditionStatus, Phase};
use store::{Agent, Store};
use tokio::time::Instant;

use crate::failure::{Exit, Failure};

/// How often the store is read: at most once a second.
pub const POLL: Duration = Duration::from_secs(1);

/// What `--for` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `phase=<Phase>`: the status's phase is this one.
    Phase(Phase),
    /// `condition=<Kind>`: the status's condition of this kind is True.
    True(ConditionKind),
}

impl Condition {
    /// Parses `--for`: `phase=Running`, `condition=Ready` (names as the status writes them,
    /// case-insensitive).
    ///
    /// # Errors
    /// Anything else, with the accepted names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let names = |all: &[&str]| all.join(", ");
        match text.split_once('=') {
            Some(("phase", name)) => Phase::ALL
                .into_iter()
                .find(|p| p.as_str().eq_ignore_ascii_case(name))
                .map(Self::Phase)
                .ok_or_else(|| {
                    format!(
                        "unknown phase \"{name}\" (one of {})",
                        names(&Phase::ALL.map(Phase::as_str))
                    )
                }),
            Some(("condition", name)) => ConditionKind::ALL
                .into_iter()
                .find(|k| k.as_str().eq_ignore_ascii_case(name))
                .map(Self::True)
                .ok_or_else(|| {
                    format!(
                        "unknown condition \"{name}\" (one of {})",
                        names(&ConditionKind::ALL.map(ConditionKind::as_str))
                    )
                }),
            _ => Err("expected phase=<Phase> or condition=<Kind>, e.g. phase=Running".into()),
        }
    }

    /// Whether `agent` meets it.
    #[must_use]
    pub fn met_by(self, agent: &Agent) -> bool {
        let Some(status) = &agent.status else {
            return false;
        };
        match self {
            Self::Phase(phase) => status.phase == phase,
            Self::True(kind) => status
                .condition(kind)
                .is_some_and(|c| c.status == ConditionStatus::True),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Phase(p) => write!(f, "phase={}", p.as_str()),
            Self::True(k) => write!(f, "condition={k}"),
        }
    }
}

/// Waits until every agent meets `condition`: exit 0, each printed as it does; 1 when
/// `timeout` passes first, naming the agents that did not with their phase.
///
/// # Errors
/// A failed read of the store.
pub async fn run(
    store: &Store,
    agent_ids: &[String],
    condition: Condition,
    timeout: Duration,
) -> Result<Exit, Failure> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<String> = Vec::new();
    for id in agent_ids {
        if !pending.contains(id) {
            pending.push(id.clone());
        }
    }
    let mut last_seen: Vec<(String, String)> = Vec::new();
    loop {
        let read_at = Instant::now();
        last_seen.clear();
        let mut still = Vec::new();
        for id in pending {
            let agent = store.get(&id).await?;
            match agent {
                Some(agent) if condition.met_by(&agent) => {
                    println!("agent/{id} {condition}");
                }
                Some(agent) => {
                    last_seen.push((id.clone(), crate::output::phase(&agent)));
                    still.push(id);
                }
                None => {
                    last_seen.push((id.clone(), "not found".into()));
                    still.push(id);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(Exit::Success);
        }
        let next = read_at + POLL;
        if next > deadline {
            tokio::time::sleep_until(deadline).await;
            let names: Vec<String> = last_seen
                .iter()
                .map(|(id, phase)| format!("{id} ({phase})"))
                .collect();
            return Err(Failure::Invalid(format!(
                "timed out after {} waiting for {condition}: {}",
                humantime::format_duration(timeout),
                names.join(", ")
            )));
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn for_accepts_any_phase_and_condition_kind_case_insensitively() {
        assert_eq!(
            Condition::parse("phase=Running"),
            Ok(Condition::Phase(Phase::Running))
        );
        assert_eq!(
            Condition::parse("phase=stopped"),
            Ok(Condition::Phase(Phase::Stopped))
        );
        assert_eq!(
            Condition::parse("condition=Ready"),
            Ok(Condition::True(ConditionKind::Ready))
        );
        assert_eq!(
            Condition::parse("condition=SecretsReady").map(|c| c.to_string()),
            Ok("condition=SecretsReady".to_owned())
        );
    }

    #[test]
    fn for_rejects_unknown_names_listing_the_accepted_ones() {
        let err = Condition::parse("phase=Runing").unwrap_err();
        assert!(err.contains("unknown phase \"Runing\""), "{err}");
        assert!(err.contains("Running"), "{err}");
        let err = Condition::parse("condition=Healthy").unwrap_err();
        assert!(
            err.contains("SpecValid, SecretsReady, Synced, Ready"),
            "{err}"
        );
        assert!(Condition::parse("Running").is_err());
        assert!(Condition::parse("delete").is_err());
    }
}
