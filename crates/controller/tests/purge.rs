//! Data purge on delete, carried out on the in-memory fake: the purge task mounts the agent's
//! access point, and only its exit code 0 lets the access point go. Every reconcile is a fresh
//! controller (no expectations survive), as after a restart mid-purge: what the purge needs is
//! in the status.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use controller::expectations::Expectations;
use controller::fake::{FakeCloud, FakeStore};
use controller::reconcile::{Outcome, Reconciler};
use controller::status::StatusStore;
use plan::fixtures::{self, settings, template};
use plan::observed::Task;
use spec::render::{Settings, tag};
use spec::{AgentDocument, AgentSpec, EventType};

const IMAGE: &str =
    "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn spec(agent_id: &str) -> AgentSpec {
    AgentDocument {
        secret_keys: Vec::new(),
        ..fixtures::document_of(agent_id)
    }
    .validate()
    .unwrap()
}

fn purge_settings() -> Settings {
    Settings {
        purge_image: Some(IMAGE.into()),
        ..settings()
    }
}

async fn reconcile_once(
    fake: &FakeCloud,
    store: &FakeStore,
    agent_id: &str,
    settings: &Settings,
) -> Result<Outcome, String> {
    let template = template();
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: fake,
        store,
        settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        last_seen: None,
        metrics: None,
    };
    reconciler
        .reconcile(agent_id, None)
        .await
        .map_err(|e| e.to_string())
}

/// Reconciles until nothing is left to do now (converged, deleted, or waiting on AWS).
async fn settle(
    fake: &FakeCloud,
    store: &FakeStore,
    agent_id: &str,
    settings: &Settings,
) -> Outcome {
    let mut last = None;
    for _ in 0..8 {
        let outcome = reconcile_once(fake, store, agent_id, settings)
            .await
            .unwrap();
        match outcome {
            Outcome::Converged | Outcome::Deleted => return outcome,
            _ => last = Some(outcome),
        }
    }
    last.unwrap()
}

/// A converged agent, then deleted with purge_data.
async fn deleted_with_purge(fake: &FakeCloud, store: &FakeStore, settings: &Settings) -> String {
    let agent_id = local_aws::unique("purge");
    store.apply(&spec(&agent_id), "cli");
    assert_eq!(
        settle(fake, store, &agent_id, settings).await,
        Outcome::Converged
    );
    store.edit(&agent_id, |d| {
        d.deletion_requested_at = Some(spec::now_rfc3339());
        d.purge_data_on_delete = Some(true);
    });
    agent_id
}

fn purge_tasks(fake: &FakeCloud, agent_id: &str) -> Vec<Task> {
    let started_by = format!("purge/{agent_id}");
    fake.state()
        .tasks
        .iter()
        .filter(|(t, _)| t.started_by.as_deref() == Some(started_by.as_str()))
        .map(|(t, _)| t.clone())
        .collect()
}

fn access_points(fake: &FakeCloud, agent_id: &str) -> Vec<String> {
    fake.state()
        .access_points
        .iter()
        .filter(|(a, _)| a.tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id))
        .map(|(a, _)| a.id.clone())
        .collect()
}

fn events(store: &FakeStore, agent_id: &str, reason: &str) -> Vec<(EventType, String)> {
    store
        .status(agent_id)
        .map(|s| s.events)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason == reason)
        .map(|e| (e.kind, e.message))
        .collect()
}

#[tokio::test]
async fn a_purge_that_exits_0_erases_through_the_agents_access_point_then_deletes_it() {
    let (fake, store, settings) = (FakeCloud::new(0), FakeStore::default(), purge_settings());
    let agent_id = deleted_with_purge(&fake, &store, &settings).await;
    let access_point = access_points(&fake, &agent_id);
    assert_eq!(access_point.len(), 1);

    let outcome = settle(&fake, &store, &agent_id, &settings).await;
    assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    let purges = purge_tasks(&fake, &agent_id);
    assert_eq!(purges.len(), 1, "one purge task");
    let purge = &purges[0];
    let revision = fake
        .state()
        .revisions
        .iter()
        .find(|(r, _, _)| r.arn == purge.task_definition_arn)
        .map(|(r, _, _)| r.content.clone())
        .expect("the purge revision");
    assert!(revision.family.ends_with(&format!("_{agent_id}_purge")));
    let volume = revision.volumes[0]
        .efs_volume_configuration
        .clone()
        .unwrap();
    assert_eq!(volume.access_point_id.as_ref(), Some(&access_point[0]));
    assert!(revision.container_definitions[0].secrets.is_empty());
    assert_eq!(purge.tags.get(tag::AGENT_ID), Some(&agent_id));
    assert_eq!(
        access_points(&fake, &agent_id),
        access_point,
        "kept while purging"
    );
    // The agent's own task was stopped first and never relaunched.
    let status = store.status(&agent_id).unwrap();
    assert_eq!(status.purge.task_arn.as_ref(), Some(&purge.arn));
    assert!(status.purge.started_at.is_some());

    // Looked at again while it runs: no second purge task.
    settle(&fake, &store, &agent_id, &settings).await;
    assert_eq!(purge_tasks(&fake, &agent_id).len(), 1);

    fake.exit(&purge.arn, spec::purge::CONTAINER, 0);
    assert_eq!(
        settle(&fake, &store, &agent_id, &settings).await,
        Outcome::Deleted
    );
    assert!(
        access_points(&fake, &agent_id).is_empty(),
        "deleted after the purge"
    );
    assert!(
        fake.state()
            .revisions
            .iter()
            .all(|(r, _, active)| !*active || !r.content.family.contains(&agent_id)),
        "the purge revision is deregistered with the rest"
    );
    assert!(store.status(&agent_id).is_none(), "items removed");
}

#[tokio::test]
async fn a_purge_exiting_non_zero_keeps_the_access_point_and_warns() {
    let (fake, store, settings) = (FakeCloud::new(0), FakeStore::default(), purge_settings());
    let agent_id = deleted_with_purge(&fake, &store, &settings).await;
    settle(&fake, &store, &agent_id, &settings).await;
    let purge = purge_tasks(&fake, &agent_id).remove(0);
    fake.exit(&purge.arn, spec::purge::CONTAINER, 1);

    for _ in 0..3 {
        let outcome = settle(&fake, &store, &agent_id, &settings).await;
        assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    }
    assert_eq!(
        access_points(&fake, &agent_id).len(),
        1,
        "the access point is kept"
    );
    let failed = events(&store, &agent_id, "PurgeFailed");
    assert_eq!(failed.len(), 1, "reported once: {failed:?}");
    assert_eq!(failed[0].0, EventType::Warning);
    assert!(
        failed[0].1.contains("exited with code 1"),
        "{}",
        failed[0].1
    );
    let status = store.status(&agent_id).unwrap();
    assert_eq!(status.purge.failures, 1);
    assert!(
        status
            .message
            .unwrap_or_default()
            .contains("access point is kept"),
        "the status says why"
    );
    assert_eq!(
        purge_tasks(&fake, &agent_id).len(),
        1,
        "the retry waits out its backoff"
    );
}

#[tokio::test]
async fn a_purge_beyond_its_timeout_is_stopped_counted_failed_and_keeps_the_access_point() {
    let (fake, store, settings) = (FakeCloud::new(0), FakeStore::default(), purge_settings());
    let agent_id = deleted_with_purge(&fake, &store, &settings).await;
    settle(&fake, &store, &agent_id, &settings).await;
    let purge = purge_tasks(&fake, &agent_id).remove(0);
    // Launched longer ago than the timeout (the status is what a restarted controller reads).
    let mut status = store.status(&agent_id).unwrap();
    let long_ago =
        time::OffsetDateTime::now_utc() - time::Duration::seconds(settings.purge_timeout_secs + 60);
    status.purge.started_at = Some(spec::format_rfc3339(long_ago));
    store.put_status(&agent_id, &status, None).await.unwrap();

    settle(&fake, &store, &agent_id, &settings).await;
    let stopped = purge_tasks(&fake, &agent_id).remove(0);
    assert_eq!(stopped.arn, purge.arn);
    assert_eq!(stopped.last_status, "STOPPED");
    assert!(
        stopped
            .stopped_reason
            .unwrap_or_default()
            .contains("beyond its timeout")
    );
    assert_eq!(access_points(&fake, &agent_id).len(), 1);
    let failed = events(&store, &agent_id, "PurgeFailed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].1.contains("--purge-timeout"), "{}", failed[0].1);
}

#[tokio::test]
async fn a_deletion_without_purge_runs_no_purge_task() {
    let (fake, store, settings) = (FakeCloud::new(0), FakeStore::default(), purge_settings());
    let agent_id = local_aws::unique("nopurge");
    store.apply(&spec(&agent_id), "cli");
    settle(&fake, &store, &agent_id, &settings).await;
    store.request_deletion(&agent_id);
    assert_eq!(
        settle(&fake, &store, &agent_id, &settings).await,
        Outcome::Deleted
    );
    assert!(purge_tasks(&fake, &agent_id).is_empty());
    assert!(access_points(&fake, &agent_id).is_empty());
}
