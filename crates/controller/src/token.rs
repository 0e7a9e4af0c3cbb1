//! Idempotency tokens for the two creates AWS deduplicates.
//!
//! ECS remembers a RunTask `clientToken` for up to 24 hours and replays the original result,
//! so the token must be stable across retries of one launch (a lost response must not start a
//! second task) and new for every deliberate launch (a relaunch after a crash must not replay
//! the crashed task). It is derived from what defines one launch: the agent, the launch attempt
//! recorded in the status before the call, the task definition revision and the overrides.

use sha2::{Digest, Sha256};
use spec::render::{AccessPoint, RunTask};

/// ECS and EFS accept at most 64 characters.
pub const MAX_TOKEN_LEN: usize = 64;

fn token(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    // "cf-r-" + 48 hex characters = 53: within 64 with room to spare.
    format!("cf-{prefix}-{}", &hex::encode(hasher.finalize())[..48])
}

/// The RunTask `clientToken` of launch `attempt` of `agent_id`.
#[must_use]
pub fn launch_token(agent_id: &str, attempt: u64, request: &RunTask) -> String {
    let overrides = serde_json::to_string(&request.overrides).unwrap_or_default();
    token(
        "r",
        &[
            agent_id,
            &attempt.to_string(),
            &request.task_definition,
            &overrides,
        ],
    )
}

/// The CreateAccessPoint `ClientToken`: the agent's incarnation (its spec's `created_at`, new
/// when a deleted agent id is created again), the request's content and the access point it
/// replaces (none for the first), so one deleted behind clawfleet's back, or by a deletion of
/// the whole agent, is recreated rather than replayed.
#[must_use]
pub fn access_point_token(
    agent_id: &str,
    incarnation: &str,
    request: &AccessPoint,
    replaces: Option<&str>,
) -> String {
    let content = serde_json::to_string(request).unwrap_or_default();
    token(
        "a",
        &[agent_id, incarnation, &content, replaces.unwrap_or("")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::AgentDocument;
    use spec::render::{self, Settings};

    fn request(td: &str, plan: &str) -> RunTask {
        let spec = AgentDocument {
            agent_id: Some("acme-support".into()),
            client_id: Some("acme".into()),
            plan: Some(plan.into()),
            ..AgentDocument::default()
        }
        .validate()
        .expect("valid");
        render::run_task(&spec, &Settings::new("dev", "fs-1"), td)
    }

    #[test]
    fn launch_token_is_stable_across_retries_of_one_attempt() {
        let r = request("arn:td:1", "small");
        assert_eq!(
            launch_token("acme-support", 3, &r),
            launch_token("acme-support", 3, &r.clone())
        );
    }

    #[test]
    fn launch_token_is_new_for_each_attempt() {
        let r = request("arn:td:1", "small");
        assert_ne!(
            launch_token("acme-support", 3, &r),
            launch_token("acme-support", 4, &r)
        );
    }

    #[test]
    fn launch_token_is_new_for_each_task_definition_revision() {
        assert_ne!(
            launch_token("acme-support", 1, &request("arn:td:1", "small")),
            launch_token("acme-support", 1, &request("arn:td:2", "small"))
        );
    }

    #[test]
    fn launch_token_is_new_when_the_overrides_change() {
        assert_ne!(
            launch_token("acme-support", 1, &request("arn:td:1", "small")),
            launch_token("acme-support", 1, &request("arn:td:1", "large"))
        );
    }

    #[test]
    fn launch_token_differs_between_agents() {
        let r = request("arn:td:1", "small");
        assert_ne!(
            launch_token("acme-support", 1, &r),
            launch_token("acme-research", 1, &r)
        );
    }

    #[test]
    fn tokens_fit_in_64_characters() {
        let long_arn = format!(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/{}:99999",
            "x".repeat(255)
        );
        let t = launch_token(&"a".repeat(40), u64::MAX, &request(&long_arn, "large"));
        assert!(t.len() <= MAX_TOKEN_LEN, "{}", t.len());
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let ap = render::access_point(
            &AgentDocument {
                agent_id: Some("a".repeat(40)),
                client_id: Some("c".repeat(40)),
                ..AgentDocument::default()
            }
            .validate()
            .expect("valid"),
            &Settings::new("dev", "fs-1"),
        );
        assert!(
            access_point_token(
                "a",
                "2026-11-25T10:00:00Z",
                &ap,
                Some("fsap-0123456789abcdef0")
            )
            .len()
                <= MAX_TOKEN_LEN
        );
    }

    #[test]
    fn access_point_token_changes_when_it_replaces_a_deleted_one() {
        let ap = render::access_point(
            &AgentDocument {
                agent_id: Some("acme-support".into()),
                client_id: Some("acme".into()),
                ..AgentDocument::default()
            }
            .validate()
            .expect("valid"),
            &Settings::new("dev", "fs-1"),
        );
        let t = |incarnation: &str, replaces: Option<&str>| {
            access_point_token("acme-support", incarnation, &ap, replaces)
        };
        let first = "2026-11-25T10:00:00Z";
        assert_eq!(t(first, None), t(first, None));
        assert_ne!(t(first, None), t(first, Some("fsap-1")));
        assert_ne!(
            t(first, None),
            t("2026-12-01T10:00:00Z", None),
            "a re-created agent"
        );
    }
}
