//! The purge rules: one test per situation a deletion with `purge_data_on_delete` meets.

use spec::render::{Settings, tag};
use spec::{AgentSpec, AgentStatus, EventType};

use crate::action::{Action, Plan, StopReason};
use crate::fixtures::*;
use crate::observed::{AgentResources, Task};
use crate::plan::{Context, Desired, plan};

const IMAGE: &str =
    "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000";
const PURGE_REVISION: &str =
    "arn:aws:ecs:us-east-1:123456789012:task-definition/clawfleet_dev_acme-support_purge:1";
const PURGE_TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/dev/purge-1";

fn purge_settings() -> Settings {
    Settings {
        purge_image: Some(IMAGE.into()),
        ..settings()
    }
}

fn delete_with_purge(
    settings: &Settings,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
    now: i64,
) -> Plan {
    let spec = spec();
    let template = template();
    let ctx = Context {
        settings,
        template: &template,
        now,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: Some(Ok(&spec)),
        deleting: true,
        status,
        last_activity: None,
        purge_data: true,
    };
    plan(&desired, observed, &ctx)
}

/// The agent's resources with its task STOPPED by the deletion.
fn stopped(spec: &AgentSpec) -> AgentResources {
    let mut observed = converged(spec);
    for task in &mut observed.tasks {
        task.last_status = "STOPPED".into();
        task.desired_status = "STOPPED".into();
        task.stopped_reason = Some(StopReason::Deleted.to_string());
    }
    observed
}

fn purge_task(attempt: u64, last_status: &str, exit_code: Option<i32>) -> Task {
    let run = spec::purge::run_task(
        &purge_settings(),
        AGENT,
        PURGE_REVISION,
        spec::purge::tags(AGENT, "acme", &Default::default(), &purge_settings()),
        attempt,
    );
    Task {
        arn: PURGE_TASK.into(),
        task_definition_arn: PURGE_REVISION.into(),
        last_status: last_status.into(),
        desired_status: if last_status == "STOPPED" {
            "STOPPED"
        } else {
            "RUNNING"
        }
        .into(),
        started_by: Some(run.started_by.clone()),
        tags: run.tags.clone(),
        exit_codes: exit_code
            .map(|c| [(spec::purge::CONTAINER.to_owned(), c)].into())
            .unwrap_or_default(),
        ..Task::default()
    }
}

fn last_status(plan: &Plan) -> AgentStatus {
    plan.actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::UpdateStatus(s) => Some(s.clone()),
            _ => None,
        })
        .expect("the plan updates the status")
}

fn deletes_access_point(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::DeleteAccessPoint { .. }))
}

fn status_launched(attempt: u64, at: i64) -> AgentStatus {
    let mut status = AgentStatus {
        client_id: Some("acme".into()),
        ..AgentStatus::default()
    };
    status.purge.attempt = attempt;
    status.purge.image = Some(IMAGE.into());
    status.purge.started_at = Some(crate::plan::rfc3339(at));
    status
}

#[test]
fn the_purge_runs_only_after_the_agents_task_has_stopped() {
    let spec = spec();
    let plan = delete_with_purge(&purge_settings(), None, &converged(&spec), NOW);
    assert!(plan.actions.iter().all(|a| !matches!(
        a,
        Action::RegisterPurgeTaskDefinition { .. } | Action::RunPurgeTask { .. }
    )));
    assert!(!deletes_access_point(&plan));
}

#[test]
fn a_purge_registers_its_own_revision_with_the_agents_access_point_first() {
    let spec = spec();
    let plan = delete_with_purge(&purge_settings(), None, &stopped(&spec), NOW);
    let register = plan.actions.iter().find_map(|a| match a {
        Action::RegisterPurgeTaskDefinition { definition, tags } => Some((definition, tags)),
        _ => None,
    });
    let (definition, tags) = register.expect("a purge revision is registered");
    assert_eq!(definition.family, "clawfleet_dev_acme-support_purge");
    let volume = definition.volumes[0]
        .efs_volume_configuration
        .as_ref()
        .unwrap();
    assert_eq!(volume.access_point_id.as_deref(), Some("fsap-1"));
    assert_eq!(definition.container_definitions[0].image, IMAGE);
    assert!(definition.container_definitions[0].secrets.is_empty());
    assert_eq!(tags.get(tag::AGENT_ID).map(String::as_str), Some(AGENT));
    assert!(!deletes_access_point(&plan), "the access point stays");
    assert!(!plan.actions.contains(&Action::DeleteItems));
    assert_eq!(last_status(&plan).purge.image.as_deref(), Some(IMAGE));
}

#[test]
fn with_its_revision_the_purge_task_is_launched_with_the_attempt_recorded_first() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    let mut status = AgentStatus::default();
    status.purge.image = Some(IMAGE.into());
    let plan = delete_with_purge(&purge_settings(), Some(&status), &observed, NOW);
    let position = |f: &dyn Fn(&Action) -> bool| plan.actions.iter().position(f);
    let recorded = position(&|a| matches!(a, Action::UpdateStatus(s) if s.purge.attempt == 1))
        .expect("the attempt is stored");
    let run = position(&|a| matches!(a, Action::RunPurgeTask { attempt: 1, .. }))
        .expect("the purge task is launched");
    assert!(recorded < run, "the attempt is stored before RunTask");
    let Action::RunPurgeTask { request, .. } = &plan.actions[run] else {
        unreachable!()
    };
    assert_eq!(request.started_by, "purge/acme-support");
    assert_eq!(request.task_definition, PURGE_REVISION);
    assert_eq!(request.assign_public_ip, "DISABLED");
    assert_eq!(request.subnets, settings().subnets);
    assert!(!deletes_access_point(&plan));
    assert!(plan.wait.is_some(), "waits for the purge task to stop");
}

#[test]
fn a_running_purge_is_waited_for_not_relaunched() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    observed.purge_tasks = vec![purge_task(1, "RUNNING", None)];
    let status = status_launched(1, NOW - 60);
    let plan = delete_with_purge(&purge_settings(), Some(&status), &observed, NOW);
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, Action::UpdateStatus(_))),
        "{:?}",
        plan.actions
    );
    assert_eq!(
        plan.wait.as_ref().map(|w| w.after_secs),
        Some(crate::PURGE_POLL_SECS)
    );
    assert_eq!(
        last_status(&plan).purge.task_arn.as_deref(),
        Some(PURGE_TASK)
    );
}

#[test]
fn exit_code_zero_deletes_the_access_point_and_the_purge_revision() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    observed.purge_tasks = vec![purge_task(1, "STOPPED", Some(0))];
    let status = status_launched(1, NOW - 60);
    let plan = delete_with_purge(&purge_settings(), Some(&status), &observed, NOW);
    let steps: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    let purged = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::UpdateStatus(s) if s.purge.purged_at.is_some()))
        .expect("the purge is recorded");
    let deleted = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::DeleteAccessPoint { id } if id == "fsap-1"))
        .expect("the access point goes");
    assert!(purged < deleted, "{steps:?}");
    assert!(
        plan.actions.contains(&Action::DeregisterTaskDefinition {
            arn: PURGE_REVISION.into()
        }),
        "{steps:?}"
    );
    assert_eq!(plan.actions.last(), Some(&Action::DeleteItems));
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "Purged" && e.kind == EventType::Normal)
    );
}

#[test]
fn a_non_zero_exit_keeps_the_access_point_warns_and_retries_after_a_backoff() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    observed.purge_tasks = vec![purge_task(1, "STOPPED", Some(1))];
    let status = status_launched(1, NOW - 60);
    let plan = delete_with_purge(&purge_settings(), Some(&status), &observed, NOW);
    assert!(!deletes_access_point(&plan));
    assert!(!plan.actions.contains(&Action::DeleteItems));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::RunPurgeTask { .. })),
        "not before the backoff"
    );
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "PurgeFailed")
        .expect("a PurgeFailed event");
    assert_eq!(warning.kind, EventType::Warning);
    assert!(
        warning.message.contains("exited with code 1"),
        "{}",
        warning.message
    );
    let after = last_status(&plan);
    assert_eq!(after.purge.failures, 1);
    assert!(
        after
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("access point is kept")
    );
    assert_eq!(
        plan.wait.as_ref().map(|w| w.after_secs),
        Some(u64::try_from(crate::PURGE_BACKOFF_MIN_SECS).unwrap())
    );

    // Seen again within the backoff: the failure is not counted twice.
    let again = delete_with_purge(&purge_settings(), Some(&after), &observed, NOW + 10);
    assert!(again.events.iter().all(|e| e.reason != "PurgeFailed"));
    assert!(!deletes_access_point(&again));

    // After the backoff: the next attempt, with a new launch token.
    let retry = delete_with_purge(
        &purge_settings(),
        Some(&after),
        &observed,
        NOW + crate::PURGE_BACKOFF_MIN_SECS,
    );
    assert!(
        retry
            .actions
            .iter()
            .any(|a| matches!(a, Action::RunPurgeTask { attempt: 2, .. })),
        "{:?}",
        retry.actions
    );
    assert!(!deletes_access_point(&retry));
}

#[test]
fn a_purge_whose_image_cannot_be_pulled_is_a_failure_not_a_success() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    let mut task = purge_task(1, "STOPPED", None);
    task.stopped_reason = Some("CannotPullContainerError: pull access denied".into());
    task.stop_code = Some("TaskFailedToStart".into());
    observed.purge_tasks = vec![task];
    let status = status_launched(1, NOW - 60);
    let plan = delete_with_purge(&purge_settings(), Some(&status), &observed, NOW);
    assert!(!deletes_access_point(&plan));
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "PurgeFailed")
        .unwrap();
    assert!(
        warning.message.contains("CannotPullContainerError"),
        "{}",
        warning.message
    );
}

#[test]
fn a_purge_beyond_its_timeout_is_stopped_and_counts_as_failed() {
    let spec = spec();
    let settings = purge_settings();
    let mut observed = stopped(&spec);
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    observed.purge_tasks = vec![purge_task(1, "RUNNING", None)];
    let status = status_launched(1, NOW - settings.purge_timeout_secs);
    let plan = delete_with_purge(&settings, Some(&status), &observed, NOW);
    assert!(plan.actions.contains(&Action::StopTask {
        task_arn: PURGE_TASK.into(),
        reason: StopReason::PurgeTimeout,
    }));
    assert!(!deletes_access_point(&plan));

    // Stopped by the timeout: failed, even if the container happened to exit 0.
    let mut task = purge_task(1, "STOPPED", Some(0));
    task.stopped_reason = Some(StopReason::PurgeTimeout.to_string());
    observed.purge_tasks = vec![task];
    let plan = delete_with_purge(&settings, Some(&last_status(&plan)), &observed, NOW + 5);
    assert!(!deletes_access_point(&plan));
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "PurgeFailed")
        .unwrap();
    assert!(
        warning.message.contains("--purge-timeout"),
        "{}",
        warning.message
    );
}

#[test]
fn without_a_purge_image_the_access_point_is_kept_and_the_status_says_why() {
    let spec = spec();
    let plan = delete_with_purge(&settings(), None, &stopped(&spec), NOW);
    assert!(!deletes_access_point(&plan));
    assert!(!plan.actions.contains(&Action::DeleteItems));
    assert!(
        last_status(&plan)
            .message
            .unwrap_or_default()
            .contains("--purge-image")
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "PurgeNotConfigured" && e.kind == EventType::Warning)
    );
}

#[test]
fn a_purge_task_is_never_taken_for_the_agents_task() {
    // A running agent with a stray purge task: no extra-task stop, no crash restart.
    let spec = spec();
    let mut observed = converged(&spec);
    observed.purge_tasks = vec![purge_task(1, "RUNNING", None)];
    let template = template();
    let settings = purge_settings();
    let ctx = Context {
        settings: &settings,
        template: &template,
        now: NOW,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: Some(Ok(&spec)),
        deleting: false,
        status: None,
        last_activity: None,
        purge_data: true,
    };
    let plan = plan(&desired, &observed, &ctx);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::StopTask { .. } | Action::RunTask { .. })),
        "{:?}",
        plan.actions
    );
    // And a fleet snapshot files it apart from the agent's tasks.
    let mut fleet = crate::observed::Fleet::default();
    fleet.add_tasks(vec![
        purge_task(1, "RUNNING", None),
        converged(&spec).tasks[0].clone(),
    ]);
    let filed = fleet.agent(AGENT);
    assert_eq!(filed.tasks.len(), 1);
    assert_eq!(filed.purge_tasks.len(), 1);
    assert!(filed.tasks.iter().all(|t| !t.is_purge()));
}

#[test]
fn a_deletion_without_purge_launches_no_purge_task() {
    let spec = spec();
    let template = template();
    let settings = purge_settings();
    let ctx = Context {
        settings: &settings,
        template: &template,
        now: NOW,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: Some(Ok(&spec)),
        deleting: true,
        status: None,
        last_activity: None,
        purge_data: false,
    };
    let plan = plan(&desired, &stopped(&spec), &ctx);
    assert!(plan.actions.iter().all(|a| !matches!(
        a,
        Action::RegisterPurgeTaskDefinition { .. } | Action::RunPurgeTask { .. }
    )));
    assert!(deletes_access_point(&plan));
}

#[test]
fn an_orphans_purge_task_and_revisions_are_collected() {
    let spec = spec();
    let mut observed = stopped(&spec);
    observed.purge_tasks = vec![purge_task(1, "RUNNING", None)];
    observed.purge_revisions = vec![PURGE_REVISION.into()];
    let template = template();
    let settings = purge_settings();
    let ctx = Context {
        settings: &settings,
        template: &template,
        now: NOW,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: None,
        deleting: false,
        status: None,
        last_activity: None,
        purge_data: false,
    };
    let plan = plan(&desired, &observed, &ctx);
    assert!(plan.actions.contains(&Action::StopTask {
        task_arn: PURGE_TASK.into(),
        reason: StopReason::Deleted
    }));
    observed.purge_tasks = vec![purge_task(1, "STOPPED", Some(0))];
    let plan = crate::plan::plan(&desired, &observed, &ctx);
    assert!(plan.actions.contains(&Action::DeregisterTaskDefinition {
        arn: PURGE_REVISION.into()
    }));
}
