//! Interruption: for every mutating call in turn, make it succeed but lose its response, or
//! fail it, then reconcile again (as a restarted controller, with no memory of the first try)
//! against a fake that behaves like AWS where moto does not: RunTask tokens remembered and
//! replayed (ConflictException for other parameters), EFS tokens honoured, names unique,
//! listings that lag behind writes. No access point, secret, revision or task may be doubled.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use cloud::ErrorClass;
use controller::expectations::Expectations;
use controller::fake::{FakeCloud, FakeStore, Fault};
use controller::reconcile::{Outcome, Reconciler};
use controller::status::StatusStore;
use plan::fixtures::{self, settings, template};
use plan::observed::{Role, RoleDetails};
use spec::render::{self, tag};
use spec::{AgentDocument, AgentSpec};

/// The fixture agent with no secret keys, so it converges all the way to Running.
fn spec(agent_id: &str) -> AgentSpec {
    AgentDocument {
        secret_keys: Vec::new(),
        ..fixtures::document_of(agent_id)
    }
    .validate()
    .unwrap()
}

fn store() -> FakeStore {
    FakeStore::default()
}

/// A reconciler as a one-shot command has it: no rollout, no memory of waits, no metrics.
fn one_shot<'a>(
    fake: &'a FakeCloud,
    store: &'a FakeStore,
    settings: &'a spec::render::Settings,
    template: &'a spec::render::TaskDefinition,
    expectations: &'a Expectations,
) -> Reconciler<'a, FakeCloud, FakeStore> {
    Reconciler {
        cloud: fake,
        store,
        settings,
        template,
        expectations,
        recovery_days: 7,
        rollout: None,
        last_seen: None,
        metrics: None,
    }
}

/// Reconciles as a controller that restarts between tries (no expectations survive), until
/// the agent converges or is deleted, or 12 tries; returns each try's outcome.
async fn reconcile_rounds(
    fake: &FakeCloud,
    store: &FakeStore,
    agent_id: &str,
    settings: &spec::render::Settings,
) -> Vec<String> {
    let template = template();
    let mut outcomes = Vec::new();
    for _ in 0..12 {
        let expectations = Expectations::default();
        let reconciler = one_shot(fake, store, settings, &template, &expectations);
        match reconciler.reconcile(agent_id, None).await {
            Ok(Outcome::Converged) => {
                outcomes.push("converged".into());
                return outcomes;
            }
            Ok(Outcome::Deleted) => {
                outcomes.push("deleted".into());
                return outcomes;
            }
            Ok(other) => outcomes.push(format!("{other:?}")),
            Err(e) => outcomes.push(format!("error: {e}")),
        }
    }
    outcomes
}

/// [`reconcile_rounds`] with the template's task role, which must end converged or deleted.
async fn reconcile_until_converged(
    fake: &FakeCloud,
    store: &FakeStore,
    agent_id: &str,
) -> Vec<String> {
    let outcomes = reconcile_rounds(fake, store, agent_id, &settings()).await;
    assert!(
        matches!(
            outcomes.last().map(String::as_str),
            Some("converged" | "deleted")
        ),
        "did not converge: {outcomes:?}"
    );
    outcomes
}

fn assert_one_of_each(fake: &FakeCloud, agent_id: &str) {
    let mine = |tags: &BTreeMap<String, String>| {
        tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id)
    };
    assert_eq!(
        fake.count(|s| s
            .access_points
            .iter()
            .filter(|(a, _)| mine(&a.tags))
            .count()),
        1,
        "access points"
    );
    assert_eq!(
        fake.count(|s| s.secrets.iter().filter(|(x, _)| mine(&x.tags)).count()),
        1,
        "secrets"
    );
    assert_eq!(
        fake.count(|s| s.revisions.iter().filter(|(_, _, active)| *active).count()),
        1,
        "revisions"
    );
    assert_eq!(
        fake.count(|s| s.tasks.iter().filter(|(t, _)| mine(&t.tags)).count()),
        1,
        "tasks ever started"
    );
    assert_eq!(
        fake.count(|s| s
            .tasks
            .iter()
            .filter(|(t, _)| t.desired_status == "RUNNING")
            .count()),
        1,
        "live tasks"
    );
}

#[tokio::test]
async fn every_create_survives_a_lost_response_or_a_failure_without_duplicates() {
    let store = store();
    for operation in [
        "CreateAccessPoint",
        "CreateSecret",
        "RegisterTaskDefinition",
        "RunTask",
    ] {
        for fault in [Fault::LoseResponse, Fault::Fail] {
            let agent_id = local_aws::unique("agent");
            store.apply(&spec(&agent_id), "cli");
            // Listings lag two reconciles behind writes.
            let fake = FakeCloud::new(2);
            fake.inject(operation, fault);
            let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
            if operation == "RegisterTaskDefinition" {
                // Retried within the action, after re-reading the family.
                assert_eq!(outcomes, ["converged"], "{fault:?}");
            } else {
                assert!(
                    outcomes.iter().any(|o| o.starts_with("error")),
                    "{operation} {fault:?}: the fault must surface as an error first: {outcomes:?}"
                );
            }
            assert_one_of_each(&fake, &agent_id);
            let status = store.get(&agent_id).await.unwrap().unwrap().status.unwrap();
            assert_eq!(status.phase, spec::Phase::Running, "{operation} {fault:?}");
        }
    }
}

#[tokio::test]
async fn a_lost_run_task_response_is_retried_with_the_same_token_and_replayed() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    // A long lag: without the replayed token, the second reconcile would start a second task.
    let fake = FakeCloud::new(100);
    fake.inject("RunTask", Fault::LoseResponse);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let run_calls = fake.count(|s| s.mutations.iter().filter(|c| **c == "RunTask").count());
    assert_eq!(run_calls, 2, "one lost, one replayed");
    assert_eq!(fake.count(|s| s.run_tokens.len()), 1, "both used one token");
    assert_one_of_each(&fake, &agent_id);
}

#[tokio::test]
async fn a_reconcile_from_an_old_fleet_snapshot_reads_the_tasks_again() {
    use controller::aws::Cloud;
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    let fake = FakeCloud::new(0);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let status = store.status(&agent_id).unwrap();
    assert_eq!(status.phase, spec::Phase::Running);
    // What a resync saw a minute ago, while the task was still starting.
    let mut snapshot = fake
        .observe_agent(
            &agent_id,
            status.task_arn.as_deref(),
            status.access_point_id.as_deref(),
        )
        .await
        .unwrap();
    for task in &mut snapshot.tasks {
        task.last_status = "PENDING".into();
    }
    let expectations = Expectations::default();
    let template = template();
    let settings = settings();
    let reconciler = one_shot(&fake, &store, &settings, &template, &expectations);
    let outcome = reconciler.reconcile(&agent_id, Some(snapshot)).await;
    assert!(matches!(outcome, Ok(Outcome::Converged)), "{outcome:?}");
    assert_eq!(
        store.status(&agent_id).map(|s| s.phase),
        Some(spec::Phase::Running),
        "never set back to TaskStarting"
    );
}

#[tokio::test]
async fn an_old_revision_trails_while_registrations_keep_the_bucket_busy() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    let fake = FakeCloud::new(0);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let active = |fake: &FakeCloud| {
        fake.count(|s| s.revisions.iter().filter(|(_, _, active)| *active).count())
    };
    let deregistrations = |fake: &FakeCloud| {
        fake.count(|s| {
            s.mutations
                .iter()
                .filter(|c| **c == "DeregisterTaskDefinition")
                .count()
        })
    };
    assert_eq!(active(&fake), 1);

    // A new image while other agents' registrations hold the shared bucket: the agent is
    // replaced and converges, and its old revision is left for a later pass, with no call
    // and no reconcile looping on it.
    fake.state().deregistration_busy = true;
    let mut changed = spec(&agent_id);
    changed.image = Some("openclaw/openclaw:v9".into());
    store.apply(&changed, "cli");
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert!(outcomes.len() < 12, "{outcomes:?}");
    assert_eq!(active(&fake), 2, "the old revision trails");
    assert_eq!(deregistrations(&fake), 0);

    // Once the bucket has room, the next reconcile deregisters it.
    fake.state().deregistration_busy = false;
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(active(&fake), 1);
    assert_eq!(deregistrations(&fake), 1);

    // A deletion never leaves a revision behind, busy or not.
    fake.state().deregistration_busy = true;
    store.request_deletion(&agent_id);
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("deleted"));
    assert_eq!(active(&fake), 0);
}

#[tokio::test]
async fn teardown_survives_lost_responses_of_every_delete() {
    let store = store();
    for operation in [
        "StopTask",
        "DeleteAccessPoint",
        "DeleteSecret",
        "DeregisterTaskDefinition",
    ] {
        for fault in [Fault::LoseResponse, Fault::Fail] {
            let agent_id = local_aws::unique("agent");
            store.apply(&spec(&agent_id), "cli");
            let fake = FakeCloud::new(0);
            reconcile_until_converged(&fake, &store, &agent_id).await;
            store.request_deletion(&agent_id);
            fake.inject(operation, fault);
            let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
            assert_eq!(
                outcomes.last().map(String::as_str),
                Some("deleted"),
                "{operation} {fault:?}: {outcomes:?}"
            );
            let mine = |tags: &BTreeMap<String, String>| {
                tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id.as_str())
            };
            assert_eq!(
                fake.count(|s| s
                    .access_points
                    .iter()
                    .filter(|(a, _)| mine(&a.tags))
                    .count()),
                0
            );
            assert_eq!(
                fake.count(|s| s
                    .secrets
                    .iter()
                    .filter(|(x, _)| mine(&x.tags) && !x.deleted)
                    .count()),
                0
            );
            assert_eq!(
                fake.count(|s| s.revisions.iter().filter(|(_, _, active)| *active).count()),
                0
            );
            assert_eq!(
                fake.count(|s| s
                    .tasks
                    .iter()
                    .filter(|(t, _)| t.last_status != "STOPPED")
                    .count()),
                0
            );
            assert!(
                store.get(&agent_id).await.unwrap().is_none(),
                "items removed"
            );
        }
    }
}

#[tokio::test]
async fn a_recreated_agent_restores_its_own_secret_but_never_another_tenants() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    let fake = FakeCloud::new(0);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    store.request_deletion(&agent_id);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert!(fake.count(|s| s.secrets.iter().filter(|(x, _)| x.deleted).count()) == 1);

    // The same tenant re-creates the agent: its secret comes back from the recovery window.
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(fake.count(|s| s.secrets.len()), 1);
    assert!(
        fake.count(|s| s
            .mutations
            .iter()
            .filter(|c| **c == "RestoreSecret")
            .count())
            == 1
    );

    // Another tenant takes the same agent id after deletion: the secret is never handed over.
    store.request_deletion(&agent_id);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let mut other = spec(&agent_id);
    other.client_id = "globex".into();
    store.apply(&other, "cli");
    let settings = settings();
    let template = template();
    let expectations = Expectations::default();
    let reconciler = one_shot(&fake, &store, &settings, &template, &expectations);
    let err = reconciler.reconcile(&agent_id, None).await.unwrap_err();
    assert!(err.to_string().contains("is not this agent's"), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(
        fake.count(|s| s
            .mutations
            .iter()
            .filter(|c| **c == "RestoreSecret")
            .count())
            == 1,
        "no second restore"
    );
    let status = store.get(&agent_id).await.unwrap().unwrap().status.unwrap();
    assert!(
        status
            .message
            .unwrap_or_default()
            .contains("is not this agent's")
    );
}

#[tokio::test]
async fn a_launch_token_reused_with_other_parameters_moves_to_the_next_attempt() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    // The RunTask response is lost and the listing lags far behind.
    let fake = FakeCloud::new(100);
    fake.inject("RunTask", Fault::LoseResponse);
    let settings = settings();
    let template = template();
    let expectations = Expectations::default();
    let reconciler = one_shot(&fake, &store, &settings, &template, &expectations);
    assert!(reconciler.reconcile(&agent_id, None).await.is_err());
    // Meanwhile a cost tag changes: same attempt, same token, other parameters.
    let mut tagged = spec(&agent_id);
    tagged.tags.insert("CostCenter".into(), "emea".into());
    store.apply(&tagged, "cli");
    let outcome = reconciler.reconcile(&agent_id, None).await.unwrap();
    assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    assert_eq!(
        store
            .get(&agent_id)
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap()
            .launch_attempt,
        2
    );
    // The next launch uses attempt 2 and a new token. The lost task of attempt 1 is still out
    // there, unseen; when the listing catches up, the extra task is stopped as drift.
    let run = reconciler.reconcile(&agent_id, None).await.unwrap();
    assert!(
        matches!(run, Outcome::Converged | Outcome::Waiting(_)),
        "{run:?}"
    );
    assert_eq!(fake.count(|s| s.run_tokens.len()), 2);
    fake.state().lag = 0;
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("converged"));
    assert_eq!(
        fake.count(|s| s
            .tasks
            .iter()
            .filter(|(t, _)| t.desired_status == "RUNNING")
            .count()),
        1,
        "one task left running"
    );
}

#[tokio::test]
async fn rollout_pacing_holds_replacements_beyond_the_cap_but_never_new_agents() {
    use controller::rollout::Rollout;
    let store = store();
    let fake = FakeCloud::new(0);
    let ids: Vec<String> = (0..3).map(|_| local_aws::unique("agent")).collect();
    for id in &ids {
        store.apply(&spec(id), "cli");
        reconcile_until_converged(&fake, &store, id).await;
    }
    // A fleet-wide change: every agent needs a new task.
    for id in &ids {
        store.request_restart(id, "2026-11-25T12:00:00Z");
    }
    let rollout = Rollout::new(1);
    let settings = settings();
    let template = template();
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        rollout: Some(&rollout),
        ..one_shot(&fake, &store, &settings, &template, &expectations)
    };
    let first = reconciler.reconcile(&ids[0], None).await.unwrap();
    assert!(
        matches!(&first, Outcome::Waiting(w) if w.reason.contains("stopping")),
        "{first:?}"
    );
    let second = reconciler.reconcile(&ids[1], None).await.unwrap();
    assert!(
        matches!(&second, Outcome::Waiting(w) if w.reason.contains("rollout paced")),
        "{second:?}"
    );
    let stopped = |id: &str| {
        fake.count(|s| {
            s.tasks
                .iter()
                .filter(|(t, _)| {
                    t.tags.get(tag::AGENT_ID).map(String::as_str) == Some(id)
                        && t.last_status == "STOPPED"
                })
                .count()
        })
    };
    assert_eq!(stopped(&ids[1]), 0, "held back: still running its old task");
    // A new agent is not held back by the cap.
    let new_agent = local_aws::unique("agent");
    store.apply(&spec(&new_agent), "cli");
    assert_eq!(
        reconciler.reconcile(&new_agent, None).await.unwrap(),
        Outcome::Converged
    );
    // The first replacement completes and frees its slot; the next one proceeds.
    assert_eq!(
        reconciler.reconcile(&ids[0], None).await.unwrap(),
        Outcome::Converged
    );
    assert_eq!(rollout.in_progress(), 0);
    // The held-back agent waited in line; the freed slot admits it, and no one else.
    assert_eq!(rollout.admit(), [ids[1].clone()]);
    assert!(rollout.admit().is_empty());
    let next = reconciler.reconcile(&ids[1], None).await.unwrap();
    assert!(
        matches!(&next, Outcome::Waiting(w) if w.reason.contains("stopping")),
        "{next:?}"
    );
    assert_eq!(stopped(&ids[1]), 1);
}

#[tokio::test]
async fn a_replacement_that_fails_releases_its_rollout_slot() {
    use controller::rollout::Rollout;
    let store = store();
    let fake = FakeCloud::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    store.request_restart(&agent_id, "2026-11-25T12:00:00Z");
    let rollout = Rollout::new(1);
    let (settings, template) = (settings(), template());
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        rollout: Some(&rollout),
        ..one_shot(&fake, &store, &settings, &template, &expectations)
    };
    fake.inject("StopTask", Fault::Fail);
    let failed = reconciler.reconcile(&agent_id, None).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(rollout.in_progress(), 0, "a failure never holds a slot");
}

#[tokio::test]
async fn a_store_that_refuses_is_a_terminal_store_error_looked_at_again_at_the_resync() {
    use controller::policy::{Requeue, decide};
    let store = store();
    let fake = FakeCloud::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    store.fail_next(store::StoreError::Aws {
        operation: "Query",
        table: "t".into(),
        code: Some("AccessDeniedException".into()),
        message: "AccessDeniedException: not authorized".into(),
        class: ErrorClass::Terminal,
    });
    let (settings, template) = (settings(), template());
    let expectations = Expectations::default();
    let reconciler = one_shot(&fake, &store, &settings, &template, &expectations);
    let result = reconciler.reconcile(&agent_id, None).await;
    let error = result.as_ref().expect_err("the read failed");
    assert!(error.is_store() && error.class() == ErrorClass::Terminal);
    let resync = std::time::Duration::from_secs(300);
    assert_eq!(decide(&result, resync).requeue, Requeue::After(resync));
    assert!(
        fake.count(|s| s.mutations.len()) == 0,
        "nothing was done on AWS"
    );
    // Once the store answers again, the agent converges.
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("converged"));
    assert!(store.status(&agent_id).is_some());
}

/// [`reconcile_rounds`] with a task role per agent.
async fn reconcile_per_agent_until_converged(
    fake: &FakeCloud,
    store: &FakeStore,
    agent_id: &str,
) -> Vec<String> {
    reconcile_rounds(fake, store, agent_id, &fixtures::per_agent_settings()).await
}

#[tokio::test]
async fn a_new_role_ecs_cannot_assume_yet_is_retried_until_the_task_starts() {
    let store = store();
    let fake = FakeCloud::new(0);
    fake.state().unassumable = 2;
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(
        outcomes.last().map(String::as_str),
        Some("converged"),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| o.contains("unable to assume the role"))
            .count()
            == 2,
        "{outcomes:?}"
    );
    let role = fake.count(|s| s.roles.len());
    assert_eq!(role, 1);
    let revision_role = fake.count(|s| {
        s.revisions
            .iter()
            .filter(|(r, _, _)| r.content.task_role_arn.as_deref() == Some(s.roles[0].arn.as_str()))
            .count()
    });
    assert_eq!(revision_role, 1, "the revision names the agent's own role");
}

#[tokio::test]
async fn every_role_call_survives_a_lost_response_or_a_failure_without_duplicates() {
    for operation in ["CreateRole", "PutRolePolicy"] {
        for fault in [Fault::LoseResponse, Fault::Fail] {
            let store = store();
            let fake = FakeCloud::new(0);
            let agent_id = local_aws::unique("agent");
            store.apply(&spec(&agent_id), "cli");
            fake.inject(operation, fault);
            let outcomes = reconcile_per_agent_until_converged(&fake, &store, &agent_id).await;
            assert_eq!(
                outcomes.last().map(String::as_str),
                Some("converged"),
                "{operation} {fault:?}: {outcomes:?}"
            );
            assert_eq!(fake.count(|s| s.roles.len()), 1, "{operation} {fault:?}");
            let policy = fake.count(|s| {
                usize::from(
                    s.roles[0]
                        .details
                        .as_ref()
                        .is_some_and(|d| d.policy.is_some()),
                )
            });
            assert_eq!(policy, 1, "{operation} {fault:?}: the policy is in place");
        }
    }
}

#[tokio::test]
async fn at_the_role_quota_the_agent_says_so_and_the_others_converge() {
    let store = store();
    let fake = FakeCloud::new(0);
    fake.state().role_quota = Some(1);
    let first = local_aws::unique("agent");
    let second = local_aws::unique("agent");
    store.apply(&spec(&first), "cli");
    store.apply(&spec(&second), "cli");
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &first).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("converged"));
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &second).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o
                .contains("iam: role quota reached; raise it or move agents to another account")),
        "{outcomes:?}"
    );
    let status = store.status(&second).expect("a status");
    assert_eq!(
        status.message.as_deref(),
        Some("iam: role quota reached; raise it or move agents to another account")
    );
    assert_eq!(fake.count(|s| s.roles.len()), 1);
    // The first agent is unharmed.
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &first).await;
    assert_eq!(outcomes, ["converged"]);
}

#[tokio::test]
async fn deleting_an_agent_deletes_its_role_and_a_foreign_role_is_never_taken() {
    let store = store();
    let fake = FakeCloud::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    reconcile_per_agent_until_converged(&fake, &store, &agent_id).await;
    store.request_deletion(&agent_id);
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("deleted"));
    assert_eq!(fake.count(|s| s.roles.len()), 0);

    // A role with this agent's name but another agent's tags is refused, never adopted.
    let squatter = local_aws::unique("agent");
    store.apply(&spec(&squatter), "cli");
    let name = render::role_name(&fixtures::per_agent_settings(), &squatter);
    fake.state().roles.push(Role {
        arn: format!("arn:aws:iam::123456789012:role/other/{name}"),
        name,
        path: "/other/".into(),
        details: Some(RoleDetails::default()),
    });
    let outcomes = reconcile_per_agent_until_converged(&fake, &store, &squatter).await;
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("exists and is not this agent's")),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_crash_restart_is_timed_from_the_stop_to_the_relaunch() {
    let store = store();
    let fake = FakeCloud::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    // The task crashes, as ECS reports it: stopped on its own, 3 s ago.
    let stopped_at = time::OffsetDateTime::now_utc().unix_timestamp() - 3;
    for (t, _) in fake.state().tasks.iter_mut() {
        t.last_status = "STOPPED".into();
        t.desired_status = "STOPPED".into();
        t.stopped_reason = Some("Essential container in task exited".into());
        t.started_at = Some(stopped_at - 30);
        t.stopped_at = Some(stopped_at);
    }
    let metrics = controller::metrics::Metrics::new(&cloud::Calls::default());
    let (settings, template) = (settings(), template());
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        metrics: Some(&metrics),
        ..one_shot(&fake, &store, &settings, &template, &expectations)
    };
    reconciler.reconcile(&agent_id, None).await.unwrap();
    let text = metrics.render();
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(
        sample("clawfleet_task_relaunch_seconds_count"),
        1.0,
        "{text}"
    );
    let took = sample("clawfleet_task_relaunch_seconds_sum");
    assert!((3.0..10.0).contains(&took), "{took}");
    assert_eq!(
        sample("clawfleet_drift_corrections_total{resource=\"task\"}"),
        1.0
    );
}

/// One reconcile of a new agent on `fake`, then one of the converged agent: each one's requests
/// by operation.
async fn calls_of_a_new_and_a_converged_agent(
    fake: &FakeCloud,
    settings: &spec::render::Settings,
) -> (BTreeMap<&'static str, u64>, BTreeMap<&'static str, u64>) {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    fake.reset_calls();
    let outcomes = reconcile_rounds(fake, &store, &agent_id, settings).await;
    assert_eq!(outcomes, ["converged"], "one reconcile");
    let new = fake.call_counts();
    fake.reset_calls();
    let outcomes = reconcile_rounds(fake, &store, &agent_id, settings).await;
    assert_eq!(outcomes, ["converged"]);
    (new, fake.call_counts())
}

#[tokio::test]
async fn creating_an_agents_access_point_makes_no_describe_access_points_listing() {
    let fake = FakeCloud::new(0);
    fake.add_foreign_access_points(250);
    let (new, converged) = calls_of_a_new_and_a_converged_agent(&fake, &settings()).await;
    assert_eq!(new.get("CreateAccessPoint"), Some(&1), "{new:?}");
    assert_eq!(new.get("DescribeAccessPoints"), None, "{new:?}");
    assert_eq!(
        converged.get("DescribeAccessPoints"),
        Some(&1),
        "the one the status names, by id: {converged:?}"
    );
}

#[tokio::test]
async fn a_new_agents_calls_are_the_same_with_10_or_1000_access_points_on_the_file_system() {
    for settings in [settings(), fixtures::per_agent_settings()] {
        let small = FakeCloud::new(0);
        small.add_foreign_access_points(10);
        let large = FakeCloud::new(0);
        large.add_foreign_access_points(1000);
        let on_small = calls_of_a_new_and_a_converged_agent(&small, &settings).await;
        let on_large = calls_of_a_new_and_a_converged_agent(&large, &settings).await;
        println!(
            "task role {:?}\n  new agent: {:?}\n  converged agent: {:?}",
            settings.task_role, on_large.0, on_large.1
        );
        assert_eq!(on_small, on_large);
    }
}

#[tokio::test]
async fn a_lost_create_access_point_answer_is_settled_by_one_listing_even_where_tokens_are_ignored()
{
    for fault in [Fault::LoseResponse, Fault::Fail] {
        let store = store();
        let agent_id = local_aws::unique("agent");
        store.apply(&spec(&agent_id), "cli");
        // As moto: tokens ignored, listings current.
        let fake = FakeCloud::new(0);
        fake.state().ignore_tokens = true;
        fake.add_foreign_access_points(250);
        fake.inject("CreateAccessPoint", fault);
        let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
        assert!(outcomes[0].starts_with("error"), "{outcomes:?}");
        assert_one_of_each(&fake, &agent_id);
        let creates = fake.calls("CreateAccessPoint");
        assert_eq!(
            creates,
            match fault {
                Fault::LoseResponse => 1,
                Fault::Fail => 2,
            },
            "{fault:?}: a lost answer is adopted, a refused call made again"
        );
        assert_eq!(
            fake.calls("DescribeAccessPoints"),
            3,
            "{fault:?}: one listing of the file system (250 or 251 access points, 100 a page)"
        );
        let status = store.status(&agent_id).expect("a status");
        assert!(status.access_point_token.is_none(), "settled");
        assert!(status.access_point_id.is_some());
    }
}

#[tokio::test]
async fn a_lost_create_access_point_answer_that_no_listing_shows_yet_is_replayed_by_its_token() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    // As EFS: tokens honoured, and a listing far behind.
    let fake = FakeCloud::new(100);
    fake.inject("CreateAccessPoint", Fault::LoseResponse);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(fake.calls("CreateAccessPoint"), 2, "lost, then replayed");
    assert_eq!(fake.count(|s| s.ap_tokens.len()), 1, "both sent one token");
    assert_one_of_each(&fake, &agent_id);
}

#[tokio::test]
async fn an_access_point_deleted_behind_clawfleets_back_is_recreated_without_a_listing() {
    let store = store();
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    let fake = FakeCloud::new(0);
    fake.add_foreign_access_points(250);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let first = store.status(&agent_id).and_then(|s| s.access_point_id);
    fake.state()
        .access_points
        .retain(|(a, _)| Some(&a.id) != first.as_ref());
    fake.reset_calls();
    // A new access point means a new revision, so the task is replaced: two reconciles.
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("converged"));
    assert_eq!(fake.calls("CreateAccessPoint"), 1);
    assert_eq!(
        fake.calls("DescribeAccessPoints"),
        outcomes.len() as u64,
        "the status's by id, once a reconcile, and no listing: {outcomes:?}"
    );
    let second = store.status(&agent_id).and_then(|s| s.access_point_id);
    assert!(second.is_some() && second != first);
    let mine = |s: &controller::fake::CloudState| {
        s.access_points
            .iter()
            .filter(|(a, _)| a.agent_id() == Some(agent_id.as_str()))
            .count()
    };
    assert_eq!(fake.count(mine), 1);
}

#[tokio::test]
async fn a_lost_register_task_definition_answer_is_adopted_within_the_reconcile_without_a_second_revision()
 {
    for (fault, registers) in [(Fault::LoseResponse, 1), (Fault::Fail, 2)] {
        let store = store();
        let agent_id = local_aws::unique("agent");
        store.apply(&spec(&agent_id), "cli");
        let fake = FakeCloud::new(0);
        fake.inject("RegisterTaskDefinition", fault);
        let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
        assert_eq!(
            outcomes,
            ["converged"],
            "{fault:?}: no failure for the queue to back off"
        );
        assert_eq!(
            fake.calls("RegisterTaskDefinition"),
            registers,
            "{fault:?}: a lost answer is adopted by the re-read, a refused call made again"
        );
        assert_eq!(
            fake.calls("DescribeTaskDefinition"),
            2,
            "{fault:?}: re-read before each try"
        );
        assert_one_of_each(&fake, &agent_id);
    }
}
