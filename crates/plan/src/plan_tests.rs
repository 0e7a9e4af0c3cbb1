//! The plan table: one test per situation the controller meets.

use std::collections::BTreeMap;

use crate::observed::AgentResources;
use spec::render;
use spec::{AgentSpec, AgentStatus, ConditionKind, ConditionStatus, Phase};

use super::*;
use crate::action::{Action, Launch, StopReason};
use crate::fixtures::*;

fn run_plan(
    spec: Option<Result<&AgentSpec, &str>>,
    deleting: bool,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
) -> Plan {
    run_plan_at(spec, deleting, status, observed, NOW)
}

fn run_plan_at(
    spec: Option<Result<&AgentSpec, &str>>,
    deleting: bool,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
    now: i64,
) -> Plan {
    run_plan_with(
        &settings(),
        &template(),
        spec,
        deleting,
        status,
        observed,
        now,
    )
}

/// A plan of the fixture agent under the given installation settings and template.
fn run_plan_with(
    settings: &spec::render::Settings,
    template: &spec::render::TaskDefinition,
    spec: Option<Result<&AgentSpec, &str>>,
    deleting: bool,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
    now: i64,
) -> Plan {
    let ctx = Context {
        settings,
        template,
        now,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec,
        deleting,
        status,
        last_activity: None,
        purge_data: false,
    };
    plan(&desired, observed, &ctx)
}

/// The status a plan writes last.
fn final_status(plan: &Plan) -> AgentStatus {
    plan.actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::UpdateStatus(s) => Some(s.clone()),
            _ => None,
        })
        .expect("the plan updates the status")
}

/// The status a converged agent already has: what the first plan over it writes.
fn settled(spec: &AgentSpec, observed: &AgentResources) -> AgentStatus {
    final_status(&run_plan(Some(Ok(spec)), false, None, observed))
}

fn aws_actions(plan: &Plan) -> Vec<&Action> {
    plan.actions.iter().filter(|a| a.is_aws()).collect()
}

fn stops(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect()
}

fn has_run_task(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::RunTask { .. }))
}

fn condition(status: &AgentStatus, kind: ConditionKind) -> (ConditionStatus, String, String) {
    let c = status.condition(kind).expect("condition present");
    (c.status, c.reason.clone(), c.message.clone())
}

#[test]
fn a_new_agent_gets_an_access_point_and_a_secret_first() {
    let spec = spec();
    let plan = run_plan(Some(Ok(&spec)), false, None, &AgentResources::default());
    let kinds: Vec<String> = aws_actions(&plan).iter().map(|a| a.to_string()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    match &plan.actions[0] {
        Action::CreateAccessPoint(ap) => {
            assert_eq!(ap.root_path, "/agents/acme/acme-support");
            assert_eq!((ap.posix_uid, ap.posix_gid), (1000, 1000));
            assert_eq!(ap.tags["clawfleet:agent-id"], AGENT);
            assert_eq!(ap.tags["CostCenter"], "acme");
        }
        other => panic!("first must create the access point, got {other}"),
    }
    match &plan.actions[1] {
        Action::CreateSecret(s) => assert_eq!(s.name, "/openclaw/agents/acme-support/secrets"),
        other => panic!("then the secret, got {other}"),
    }
    assert!(!has_run_task(&plan));
    let status = final_status(&plan);
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!(
        condition(&status, ConditionKind::SecretsReady).0,
        ConditionStatus::False
    );
}

#[test]
fn a_new_agent_registers_its_revision_once_the_access_point_and_secret_exist() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks.clear();
    observed.latest_revision = None;
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    let aws = aws_actions(&plan);
    assert_eq!(aws.len(), 1, "{aws:?}");
    let Action::RegisterTaskDefinition {
        definition,
        changes,
        tags,
    } = aws[0]
    else {
        panic!("expected a registration, got {}", aws[0])
    };
    assert!(changes.is_empty(), "a first revision has no delta");
    assert_eq!(definition.family, "clawfleet_dev_acme-support");
    assert_eq!(tags["clawfleet:managed-by"], "clawfleet");
    let agent = &definition.container_definitions[0];
    assert_eq!(agent.image, "openclaw/openclaw:v1.2.3");
    assert_eq!(
        agent.secrets[0].value_from,
        format!("{SECRET_ARN}:OPENAI_API_KEY::")
    );
    assert_eq!(agent.memory, None, "no hard limit below the task size");
}

#[test]
fn a_new_agent_launches_once_its_revision_exists() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks.clear();
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    let aws = aws_actions(&plan);
    assert_eq!(aws.len(), 1, "{aws:?}");
    let Action::RunTask { request: run, .. } = aws[0] else {
        panic!("expected RunTask, got {}", aws[0])
    };
    assert_eq!(run.task_definition, revision_arn(1));
    assert_eq!(run.assign_public_ip, "DISABLED");
    assert_eq!(run.started_by, "clawfleet/acme-support");
    assert_eq!(run.launch_type, "FARGATE");
    // The attempt is recorded before the launch.
    let run_at = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::RunTask { .. }));
    let recorded = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::UpdateStatus(s) if s.launch_attempt == 1));
    assert!(recorded < run_at, "launch attempt written before RunTask");
    assert_eq!(
        final_status(&plan).restarts,
        0,
        "a first launch is no restart"
    );
}

#[test]
fn an_already_converged_agent_has_an_empty_plan() {
    let spec = spec();
    let observed = converged(&spec);
    let status = settled(&spec, &observed);
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(
        condition(&status, ConditionKind::Ready).0,
        ConditionStatus::True
    );
    assert_eq!(
        condition(&status, ConditionKind::Synced).0,
        ConditionStatus::True
    );
    assert_eq!(status.task_arn.as_deref(), Some(TASK_ARN));
    assert_eq!(status.access_point_id.as_deref(), Some("fsap-1"));
    let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
    assert!(plan.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.wait, None);
    // Later, the same observation still needs nothing: times do not cause writes.
    let later = run_plan_at(Some(Ok(&spec)), false, Some(&status), &observed, NOW + 3600);
    assert!(later.is_empty());
}

#[test]
fn desired_state_stopped_stops_the_task_and_waits() {
    let mut spec = spec();
    let observed = converged(&spec);
    spec.desired_state = spec::DesiredState::Stopped;
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert_eq!(stops(&plan), ["clawfleet: desired_state is stopped"]);
    assert!(!has_run_task(&plan));
    assert_eq!(final_status(&plan).phase, Phase::Stopping);
    assert!(plan.wait.is_some());

    let mut stopped = observed.clone();
    stopped.tasks[0].last_status = "STOPPED".into();
    stopped.tasks[0].desired_status = "STOPPED".into();
    stopped.tasks[0].stopped_reason = Some("clawfleet: desired_state is stopped".into());
    let plan = run_plan(Some(Ok(&spec)), false, None, &stopped);
    assert!(aws_actions(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(final_status(&plan).phase, Phase::Stopped);
}

#[test]
fn an_image_change_registers_a_revision_then_replaces_the_task() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.image = Some("openclaw/openclaw:v1.3.0".into());
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    let aws = aws_actions(&plan);
    assert_eq!(
        aws.len(),
        1,
        "register only; the task keeps running meanwhile: {aws:?}"
    );
    let Action::RegisterTaskDefinition { changes, .. } = aws[0] else {
        panic!("expected a registration, got {}", aws[0])
    };
    assert_eq!(changes.paths(), ["containers.agent.image"]);

    let mut registered = observed.clone();
    registered.older_revisions = vec![revision_arn(1)];
    registered.latest_revision = Some(revision(&new, &template(), "fsap-1", 2));
    let plan = run_plan(Some(Ok(&new)), false, None, &registered);
    assert_eq!(stops(&plan), ["clawfleet: replacing: task_definition"]);
    assert!(!has_run_task(&plan), "stop, wait until STOPPED, then start");
    assert!(plan.wait.is_some());
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::DeregisterTaskDefinition { .. })),
        "the revision the live task uses is kept"
    );
}

#[test]
fn a_plan_change_replaces_the_task_with_new_cpu_and_memory() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.size = Some(spec::Size::Plan(spec::Plan::Large));
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::RegisterTaskDefinition { .. })),
        "cpu/memory live in overrides"
    );
    let reasons = stops(&plan);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("cpu") && reasons[0].contains("memory"),
        "{reasons:?}"
    );

    let mut replaced = observed.clone();
    replaced.tasks[0].desired_status = "STOPPED".into();
    replaced.tasks[0].last_status = "STOPPED".into();
    replaced.tasks[0].stopped_reason = Some(reasons[0].to_owned());
    let plan = run_plan(Some(Ok(&new)), false, None, &replaced);
    let run = plan.actions.iter().find_map(|a| match a {
        Action::RunTask { request: r, .. } => Some(r),
        _ => None,
    });
    let run = run.expect("the new task starts once the old one is STOPPED");
    assert_eq!(
        (run.overrides.cpu.as_str(), run.overrides.memory.as_str()),
        ("2048", "4096")
    );
    assert_eq!(run.overrides.container_overrides[0].memory, Some(4096));
    assert_eq!(final_status(&plan).restarts, 0, "our own stop is no crash");
}

#[test]
fn an_env_change_replaces_the_task() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.env.insert("LOG_LEVEL".into(), "debug".into());
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    assert_eq!(
        stops(&plan),
        ["clawfleet: replacing: environment.LOG_LEVEL"]
    );
}

#[test]
fn a_plugin_change_replaces_the_task() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.plugins.push(spec::Plugin {
        name: "calendar".into(),
        source: "https://github.com/openclaw/calendar".into(),
        version: "1.0.0".into(),
    });
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    assert_eq!(
        stops(&plan),
        ["clawfleet: replacing: environment.PLUGIN_MANIFEST"]
    );
}

#[test]
fn a_tags_only_change_tags_in_place_without_a_restart() {
    let old = spec();
    let observed = converged(&old);
    let status = settled(&old, &observed);
    let mut new = old.clone();
    new.tags.insert("CostCenter".into(), "acme-emea".into());
    new.tags.insert("Team".into(), "support".into());
    let plan = run_plan(Some(Ok(&new)), false, Some(&status), &observed);
    assert!(stops(&plan).is_empty());
    assert!(!has_run_task(&plan));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
    );
    let tagged: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::TagResource { arn, add, remove } => {
                assert_eq!(add["CostCenter"], "acme-emea");
                assert_eq!(add["Team"], "support");
                assert!(remove.is_empty());
                Some(arn.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(tagged.len(), 3, "access point, secret and task: {tagged:?}");
    assert!(tagged.contains(&TASK_ARN));
}

#[test]
fn a_removed_tag_is_untagged_in_place() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.tags.clear();
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    assert!(stops(&plan).is_empty());
    assert!(plan.actions.iter().any(
        |a| matches!(a, Action::TagResource { remove, .. } if remove == &["CostCenter".to_string()])
    ));
}

#[test]
fn restart_requested_at_replaces_the_task() {
    let old = spec();
    let observed = converged(&old);
    let mut new = old.clone();
    new.restart_requested_at = Some("2026-11-25T10:00:00Z".into());
    let plan = run_plan(Some(Ok(&new)), false, None, &observed);
    assert_eq!(stops(&plan), ["clawfleet: replacing: restart_requested_at"]);
    // The replacement carries the marker, so it is not replaced again.
    let mut relaunched = observed.clone();
    relaunched.tasks = vec![running_task(
        &new,
        "arn:aws:ecs:us-east-1:123456789012:task/dev/2222",
        &revision_arn(1),
        NOW,
    )];
    let plan = run_plan(Some(Ok(&new)), false, None, &relaunched);
    assert!(stops(&plan).is_empty(), "{:?}", plan.actions);
}

#[test]
fn a_soft_deleted_agent_stops_its_task_then_removes_everything() {
    let spec = spec();
    let observed = converged(&spec);
    let plan = run_plan(Some(Ok(&spec)), true, None, &observed);
    assert_eq!(stops(&plan), ["clawfleet: agent deleted"]);
    assert_eq!(
        aws_actions(&plan).len(),
        1,
        "nothing else until the task is STOPPED"
    );
    assert!(plan.wait.is_some());
    assert_eq!(final_status(&plan).phase, Phase::Deleting);

    let mut stopped = observed.clone();
    stopped.tasks[0].last_status = "STOPPED".into();
    stopped.tasks[0].desired_status = "STOPPED".into();
    stopped.older_revisions = vec![revision_arn(0)];
    let plan = run_plan(Some(Ok(&spec)), true, None, &stopped);
    let steps: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    assert!(
        matches!(plan.actions[0], Action::DeleteAccessPoint { ref id } if id == "fsap-1"),
        "{steps:?}"
    );
    assert!(
        matches!(plan.actions[1], Action::DeleteSecret { ref arn } if arn == SECRET_ARN),
        "{steps:?}"
    );
    assert!(matches!(
        plan.actions[2],
        Action::DeregisterTaskDefinition { .. }
    ));
    assert!(matches!(
        plan.actions[3],
        Action::DeregisterTaskDefinition { .. }
    ));
    assert_eq!(plan.actions.last(), Some(&Action::DeleteItems), "{steps:?}");
}

#[test]
fn an_invalid_spec_can_still_be_deleted() {
    let observed = AgentResources::default();
    let plan = run_plan(
        Some(Err("plan: must be \"small\", \"medium\" or \"large\"")),
        true,
        None,
        &observed,
    );
    assert_eq!(plan.actions, [Action::DeleteItems]);
}

#[test]
fn an_orphan_is_torn_down_without_items_to_delete() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks[0].last_status = "STOPPED".into();
    observed.tasks[0].desired_status = "STOPPED".into();
    let plan = run_plan(None, false, None, &observed);
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteAccessPoint { .. }))
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteSecret { .. }))
    );
    assert!(!plan.actions.contains(&Action::DeleteItems));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::UpdateStatus(_))),
        "no status for an agent with no spec"
    );

    let mut running = converged(&spec);
    running.access_points.clear();
    let plan = run_plan(None, false, None, &running);
    assert_eq!(stops(&plan), ["clawfleet: agent deleted"]);
}

#[test]
fn two_live_tasks_keep_the_matching_one_and_stop_the_other() {
    let spec = spec();
    let mut observed = converged(&spec);
    let mut stale = running_task(
        &spec,
        "arn:aws:ecs:us-east-1:123456789012:task/dev/0000",
        &revision_arn(1),
        NOW - 50,
    );
    stale.overrides = Some(render::overrides(
        &AgentSpec {
            env: BTreeMap::new(),
            ..spec.clone()
        },
        "agent",
    ));
    observed.tasks.insert(0, stale);
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    let stopped: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { task_arn, .. } => Some(task_arn.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        stopped,
        ["arn:aws:ecs:us-east-1:123456789012:task/dev/0000"]
    );
    assert_eq!(final_status(&plan).task_arn.as_deref(), Some(TASK_ARN));
}

#[test]
fn an_access_point_deleted_behind_our_back_is_recreated() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.access_points.clear();
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(matches!(plan.actions[0], Action::CreateAccessPoint(_)));
    assert!(
        stops(&plan).is_empty(),
        "the task is replaced once the new revision exists"
    );

    // With the new access point, the revision changes and the task follows.
    observed.access_points = vec![access_point(&spec, "fsap-2")];
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    let Some(Action::RegisterTaskDefinition { changes, .. }) = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
    else {
        panic!("expected a registration: {:?}", plan.actions)
    };
    assert_eq!(changes.paths(), ["volumes.clawfleet-workspace"]);
}

fn crashed(spec: &AgentSpec, ran_secs: i64) -> AgentResources {
    let mut observed = converged(spec);
    let task = &mut observed.tasks[0];
    task.last_status = "STOPPED".into();
    task.desired_status = "STOPPED".into();
    task.stop_code = Some("EssentialContainerExited".into());
    task.stopped_reason = Some("Essential container in task exited".into());
    task.started_at = Some(NOW - ran_secs);
    task.stopped_at = Some(NOW - 1);
    observed
}

#[test]
fn a_task_that_stopped_by_itself_is_restarted_at_once_the_first_time() {
    let spec = spec();
    let observed = crashed(&spec, 30);
    let before = settled(&spec, &converged(&spec));
    let plan = run_plan(Some(Ok(&spec)), false, Some(&before), &observed);
    assert!(has_run_task(&plan));
    let status = final_status(&plan);
    assert_eq!(status.restarts, 1);
    assert_eq!(status.launch_attempt, before.launch_attempt + 1);
    assert!(status.last_restart_at.is_some());
    assert_eq!(
        status.message.as_deref(),
        Some("last task stopped: Essential container in task exited")
    );
}

#[test]
fn crash_restarts_back_off_exponentially_and_reset_after_a_long_run() {
    let spec = spec();
    let observed = crashed(&spec, 30);
    let status_after = |restarts: u32, last_restart: i64| AgentStatus {
        restarts,
        last_restart_at: Some(rfc3339(last_restart)),
        ..AgentStatus::default()
    };
    // restarts=1 -> 10 s, 2 -> 20 s, 3 -> 40 s, ... capped at 600 s.
    for (restarts, delay) in [
        (1u32, 10i64),
        (2, 20),
        (3, 40),
        (6, 320),
        (7, 600),
        (12, 600),
    ] {
        let status = status_after(restarts, NOW - 5);
        let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
        assert!(!has_run_task(&plan), "restarts={restarts}");
        let wait = plan.wait.clone().expect("backoff wait");
        assert_eq!(
            wait.after_secs,
            u64::try_from(delay - 5).unwrap_or(0),
            "restarts={restarts}"
        );
        assert_eq!(final_status(&plan).phase, Phase::Failed);
        let later = run_plan_at(
            Some(Ok(&spec)),
            false,
            Some(&status),
            &observed,
            NOW - 5 + delay,
        );
        assert!(has_run_task(&later), "restarts={restarts} after {delay}s");
        assert_eq!(final_status(&later).restarts, restarts + 1);
    }
    // A task that ran 10 minutes resets the count: restart at once, counted as the first.
    let long_run = crashed(&spec, 700);
    let plan = run_plan(
        Some(Ok(&spec)),
        false,
        Some(&status_after(9, NOW - 5)),
        &long_run,
    );
    assert!(has_run_task(&plan));
    assert_eq!(final_status(&plan).restarts, 1);
}

#[test]
fn a_task_still_stopping_is_waited_for() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks[0].desired_status = "STOPPED".into();
    observed.tasks[0].last_status = "DEACTIVATING".into();
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(!has_run_task(&plan), "never two tasks on one EFS directory");
    assert!(stops(&plan).is_empty());
    assert_eq!(plan.wait.as_ref().map(|w| w.after_secs), Some(POLL_SECS));
}

#[test]
fn a_task_still_starting_is_waited_for() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks[0].last_status = "PROVISIONING".into();
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(aws_actions(&plan).is_empty());
    assert_eq!(final_status(&plan).phase, Phase::Provisioning);
    assert!(plan.wait.is_some());
}

#[test]
fn a_template_change_registers_a_new_revision() {
    let spec = spec();
    let observed = converged(&spec);
    let mut new_template = template();
    new_template.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec-v2".into());
    new_template.container_definitions[0].stop_timeout = Some(60);
    let settings = settings();
    let ctx = Context {
        settings: &settings,
        template: &new_template,
        now: NOW,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: Some(Ok(&spec)),
        deleting: false,
        status: None,
        last_activity: None,
        purge_data: false,
    };
    let plan = plan(&desired, &observed, &ctx);
    let Some(Action::RegisterTaskDefinition { changes, .. }) = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::RegisterTaskDefinition { .. }))
    else {
        panic!("expected a registration: {:?}", plan.actions)
    };
    assert_eq!(
        changes.paths(),
        ["executionRoleArn", "containers.agent.other"]
    );
}

#[test]
fn missing_secret_keys_wait_with_no_task_and_name_the_keys() {
    let mut spec = spec();
    spec.secret_keys.push("GITHUB_TOKEN".into());
    let mut observed = converged(&spec);
    observed.tasks.clear();
    observed.latest_revision = Some(revision(&spec, &template(), "fsap-1", 1));
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(!has_run_task(&plan));
    assert_eq!(plan.wait, None, "waiting on the owner, not on a timer");
    let status = final_status(&plan);
    assert_eq!(status.phase, Phase::Pending);
    let (state, reason, message) = condition(&status, ConditionKind::SecretsReady);
    assert_eq!(
        (state, reason.as_str()),
        (ConditionStatus::False, "MissingKeys")
    );
    assert!(
        message.contains("GITHUB_TOKEN") && !message.contains("OPENAI_API_KEY"),
        "{message}"
    );
}

#[test]
fn a_stop_for_a_missing_secret_key_is_not_counted_as_a_crash() {
    let mut spec = spec();
    spec.secret_keys.push("GITHUB_TOKEN".into());
    let mut observed = crashed(&spec, 5);
    observed.latest_revision = Some(revision(&spec, &template(), "fsap-1", 1));
    observed.tasks[0].task_definition_arn = revision_arn(1);
    observed.tasks[0].stopped_reason = Some(
        "ResourceInitializationError: unable to pull secrets or registry auth: retrieved secret from Secrets Manager did not contain json key GITHUB_TOKEN".into(),
    );
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(!has_run_task(&plan));
    let status = final_status(&plan);
    assert_eq!(status.restarts, 0);
    assert_eq!(
        condition(&status, ConditionKind::Ready).1,
        "WaitingForSecrets"
    );
}

#[test]
fn an_invalid_spec_changes_nothing_and_leaves_the_running_task_alone() {
    let spec = spec();
    let observed = converged(&spec);
    let before = settled(&spec, &observed);
    let error = "plugins[0].source: must be an https:// or git URL";
    let plan = run_plan(Some(Err(error)), false, Some(&before), &observed);
    assert!(aws_actions(&plan).is_empty(), "{:?}", plan.actions);
    let status = final_status(&plan);
    let (state, reason, message) = condition(&status, ConditionKind::SpecValid);
    assert_eq!(
        (state, reason.as_str(), message.as_str()),
        (ConditionStatus::False, "InvalidSpec", error)
    );
    assert_eq!(
        status.phase,
        Phase::Running,
        "the agent keeps running on its last valid spec"
    );

    let plan = run_plan(Some(Err(error)), false, None, &AgentResources::default());
    assert_eq!(
        final_status(&plan).phase,
        Phase::Failed,
        "Failed only when nothing runs"
    );
}

#[test]
fn old_revisions_no_task_uses_are_deregistered() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.older_revisions = vec![revision_arn(0)];
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(plan.actions.contains(&Action::DeregisterTaskDefinition {
        arn: revision_arn(0)
    }));
    assert!(stops(&plan).is_empty());
}

#[test]
fn a_task_stopped_by_a_person_is_replaced_at_once() {
    let spec = spec();
    let mut observed = crashed(&spec, 3000);
    observed.tasks[0].stop_code = Some("UserInitiated".into());
    observed.tasks[0].stopped_reason = Some("Task stopped by user".into());
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    assert!(has_run_task(&plan));
}

fn launched_attempt(plan: &Plan) -> Option<String> {
    plan.actions.iter().find_map(|a| match a {
        Action::RunTask { request: r, .. } => r.tags.get(render::tag::LAUNCH_ATTEMPT).cloned(),
        _ => None,
    })
}

#[test]
fn a_launch_whose_outcome_is_unknown_is_retried_with_the_same_attempt() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks.clear();
    // Attempt 3 was recorded, but no task from it was ever seen: its response may be lost.
    let status = AgentStatus {
        launch_attempt: 3,
        ..AgentStatus::default()
    };
    let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
    assert_eq!(launched_attempt(&plan).as_deref(), Some("3"));
    assert_eq!(final_status(&plan).launch_attempt, 3);
    assert_eq!(final_status(&plan).restarts, 0);
}

#[test]
fn a_relaunch_after_a_seen_attempt_uses_the_next_attempt() {
    let spec = spec();
    let mut observed = crashed(&spec, 30);
    observed.tasks[0]
        .tags
        .insert(render::tag::LAUNCH_ATTEMPT.into(), "3".into());
    let status = AgentStatus {
        launch_attempt: 3,
        ..AgentStatus::default()
    };
    let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
    assert_eq!(launched_attempt(&plan).as_deref(), Some("4"));
    let recorded = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::UpdateStatus(s) if s.launch_attempt == 4));
    let run = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::RunTask { .. }));
    assert!(recorded < run, "attempt 4 is recorded before RunTask");
    assert_eq!(final_status(&plan).restarts, 1);
}

#[test]
fn the_launch_attempt_tag_is_never_untagged_in_place() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks[0]
        .tags
        .insert(render::tag::LAUNCH_ATTEMPT.into(), "1".into());
    let status = AgentStatus {
        launch_attempt: 1,
        ..settled(&spec, &observed)
    };
    let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
    assert!(plan.is_empty(), "{:?}", plan.actions);
}

#[test]
fn of_two_matching_tasks_the_one_clawfleet_launched_is_kept() {
    let spec = spec();
    let mut observed = converged(&spec);
    let status = settled(&spec, &observed);
    // Someone starts a copy by hand, newer than ours, with our tags.
    let copy = running_task(
        &spec,
        "arn:aws:ecs:us-east-1:123456789012:task/dev/9999",
        &revision_arn(1),
        NOW - 10,
    );
    observed.tasks.insert(0, copy);
    let plan = run_plan(Some(Ok(&spec)), false, Some(&status), &observed);
    let stopped: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { task_arn, .. } => Some(task_arn.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        stopped,
        ["arn:aws:ecs:us-east-1:123456789012:task/dev/9999"]
    );
}

/// The launch the plan asks for: its attempt and why.
fn launch(plan: &Plan) -> Option<(u64, Launch)> {
    plan.actions.iter().find_map(|a| match a {
        Action::RunTask { attempt, cause, .. } => Some((*attempt, *cause)),
        _ => None,
    })
}

#[test]
fn a_crash_restart_says_so_in_the_action_and_a_first_launch_does_not() {
    let spec = spec();
    let before = settled(&spec, &converged(&spec));
    let plan = run_plan(Some(Ok(&spec)), false, Some(&before), &crashed(&spec, 30));
    assert_eq!(
        launch(&plan),
        Some((
            before.launch_attempt + 1,
            Launch::CrashRestart {
                stopped_at: Some(NOW - 1)
            }
        ))
    );

    let mut fresh = converged(&spec);
    fresh.tasks.clear();
    let plan = run_plan(Some(Ok(&spec)), false, None, &fresh);
    assert_eq!(launch(&plan), Some((1, Launch::Start)));
}

#[test]
fn the_run_task_action_carries_the_attempt_it_tags_the_task_with() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks.clear();
    let plan = run_plan(Some(Ok(&spec)), false, None, &observed);
    let (attempt, _) = launch(&plan).expect("a launch");
    assert_eq!(launched_attempt(&plan), Some(attempt.to_string()));
}

#[test]
fn stops_carry_a_typed_reason_the_executor_decides_on() {
    let old = spec();
    let mut registered = converged(&old);
    let mut new = old.clone();
    new.image = Some("openclaw/openclaw:v1.3.0".into());
    registered.older_revisions = vec![revision_arn(1)];
    registered.latest_revision = Some(revision(&new, &template(), "fsap-1", 2));
    let plan = run_plan(Some(Ok(&new)), false, None, &registered);
    let reasons: Vec<&StopReason> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::StopTask { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [&StopReason::Replacing(vec!["task_definition".into()])]
    );
    assert!(reasons[0].is_replacement() && !reasons[0].is_drift());

    let mut two = converged(&old);
    let mut extra = two.tasks[0].clone();
    extra.arn = "arn:aws:ecs:us-east-1:123456789012:task/dev/2222".into();
    two.tasks.push(extra);
    let plan = run_plan(Some(Ok(&old)), false, None, &two);
    assert!(plan.actions.iter().any(|a| matches!(
        a,
        Action::StopTask { reason, .. } if reason.is_drift() && !reason.is_replacement()
    )));
}

fn run_plan_per_agent(spec: &AgentSpec, observed: &AgentResources) -> Plan {
    let settings = per_agent_settings();
    run_plan_with(
        &settings,
        &template(),
        Some(Ok(spec)),
        false,
        None,
        observed,
        NOW,
    )
}

/// What AWS shows for a new agent whose access point and secret exist, with no role yet.
fn before_role(spec: &AgentSpec) -> AgentResources {
    let mut observed = converged(spec);
    observed.tasks.clear();
    observed.latest_revision = None;
    observed
}

#[test]
fn a_per_agent_role_is_created_after_the_access_point_and_before_the_revision() {
    let spec = spec();
    let plan = run_plan_per_agent(&spec, &before_role(&spec));
    let aws = aws_actions(&plan);
    let Action::CreateRole(role) = aws[0] else {
        panic!("expected the role first, got {aws:?}")
    };
    assert_eq!(role.name, format!("cf-default-{AGENT}"));
    assert_eq!(role.path, "/clawfleet/default/");
    assert_eq!(role.permissions_boundary, BOUNDARY);
    let policy: serde_json::Value = serde_json::from_str(&role.policy).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Condition"]["ArnEquals"]["elasticfilesystem:AccessPointArn"],
        "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-1"
    );
    assert_eq!(
        statement["Action"],
        serde_json::json!([
            "elasticfilesystem:ClientMount",
            "elasticfilesystem:ClientWrite"
        ])
    );
    assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(1));
    assert!(
        !aws.iter()
            .any(|a| matches!(a, Action::RegisterTaskDefinition { .. })),
        "the revision names the role, so it waits for it: {aws:?}"
    );
}

#[test]
fn the_revision_names_the_agents_own_role() {
    let spec = spec();
    let mut observed = before_role(&spec);
    let role = role(&spec, &observed.access_points[0]);
    observed.role = Some(role.clone());
    let plan = run_plan_per_agent(&spec, &observed);
    let registered = plan.actions.iter().find_map(|a| match a {
        Action::RegisterTaskDefinition { definition, .. } => Some(definition),
        _ => None,
    });
    assert_eq!(
        registered.and_then(|d| d.task_role_arn.as_deref()),
        Some(role.arn.as_str())
    );
}

#[test]
fn a_widened_role_policy_or_a_removed_boundary_is_put_back() {
    let spec = spec();
    let mut observed = before_role(&spec);
    let mut role = role(&spec, &observed.access_points[0]);
    let wide =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    if let Some(d) = role.details.as_mut() {
        d.policy = Some(wide.into());
        d.permissions_boundary = None;
    }
    observed.role = Some(role);
    let plan = run_plan_per_agent(&spec, &observed);
    let update = plan.actions.iter().find_map(|a| match a {
        Action::UpdateRole {
            policy,
            permissions_boundary,
            ..
        } => Some((policy.is_some(), permissions_boundary.as_deref())),
        _ => None,
    });
    assert_eq!(update, Some((true, Some(BOUNDARY))));
}

#[test]
fn a_listed_role_whose_policy_was_not_read_is_left_alone() {
    let spec = spec();
    let mut observed = before_role(&spec);
    let mut role = role(&spec, &observed.access_points[0]);
    role.details = None;
    observed.role = Some(role);
    let plan = run_plan_per_agent(&spec, &observed);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::UpdateRole { .. } | Action::CreateRole(_))),
        "{:?}",
        plan.actions
    );
}

#[test]
fn deleting_an_agent_deletes_its_role() {
    let spec = spec();
    let mut observed = converged(&spec);
    observed.tasks.clear();
    observed.role = Some(role(&spec, &observed.access_points[0]));
    let plan = run_plan(Some(Ok(&spec)), true, None, &observed);
    assert!(plan.actions.iter().any(
        |a| matches!(a, Action::DeleteRole { name } if *name == format!("cf-default-{AGENT}"))
    ));
}

#[test]
fn with_the_template_role_no_agent_role_is_made() {
    let spec = spec();
    let plan = run_plan(Some(Ok(&spec)), false, None, &before_role(&spec));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateRole(_))),
        "{:?}",
        plan.actions
    );
}

#[test]
fn the_first_reconcile_records_the_owner() {
    let spec = spec();
    let status = settled(&spec, &converged(&spec));
    assert_eq!(status.client_id.as_deref(), Some("acme"));
}

#[test]
fn a_client_id_edited_in_the_console_is_an_invalid_spec_and_moves_nothing() {
    let spec = spec();
    let observed = converged(&spec);
    let before = settled(&spec, &observed);
    let mut moved = spec.clone();
    moved.client_id = "globex".into();
    for previous in [Some(&before), None] {
        // Recorded in the status, or (an agent from before the owner was recorded) only in
        // the tags of its resources: either way the edit is refused.
        let plan = run_plan(Some(Ok(&moved)), false, previous, &observed);
        assert!(
            aws_actions(&plan).is_empty(),
            "nothing is created, re-tagged or stopped: {:?}",
            plan.actions
        );
        let status = final_status(&plan);
        let (state, reason, message) = condition(&status, ConditionKind::SpecValid);
        assert_eq!(
            (state, reason.as_str()),
            (ConditionStatus::False, "InvalidSpec")
        );
        assert!(
            message.starts_with("client_id:") && message.contains("\"acme\""),
            "{message}"
        );
        assert_ne!(status.phase, Phase::Failed, "its task still runs");
        if previous.is_some() {
            assert_eq!(
                status.phase,
                Phase::Running,
                "the agent keeps running as it was"
            );
            assert_eq!(status.client_id.as_deref(), Some("acme"), "the owner stays");
        }
    }
}

/// The fixture template with a health check on the agent container.
fn health_checked_template() -> spec::render::TaskDefinition {
    let mut template = template();
    template.container_definitions[0].health_check = Some(spec::render::HealthCheck {
        command: vec!["CMD-SHELL".into(), "curl -f localhost/health".into()],
        interval: Some(30),
        timeout: Some(5),
        retries: Some(3),
        start_period: Some(60),
    });
    template
}

fn run_plan_health(
    spec: &AgentSpec,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
    now: i64,
) -> Plan {
    let template = health_checked_template();
    run_plan_with(
        &settings(),
        &template,
        Some(Ok(spec)),
        false,
        status,
        observed,
        now,
    )
}

/// `converged`, on a revision rendered from the health-checked template, reporting `health`.
fn health_observed(spec: &AgentSpec, health: Option<&str>) -> AgentResources {
    let mut observed = converged(spec);
    observed.latest_revision = Some(revision(spec, &health_checked_template(), "fsap-1", 1));
    if let Some(h) = health {
        observed.tasks[0]
            .container_health
            .insert("agent".into(), h.into());
    }
    observed
}

#[test]
fn without_a_health_check_ready_follows_running_and_says_so() {
    let spec = spec();
    let status = settled(&spec, &converged(&spec));
    let (state, reason, message) = condition(&status, ConditionKind::Ready);
    assert_eq!(
        (state, reason.as_str()),
        (ConditionStatus::True, "TaskRunning")
    );
    assert!(message.contains("no health check"), "{message}");
}

#[test]
fn running_but_not_yet_healthy_is_not_ready() {
    let spec = spec();
    for health in [None, Some("UNKNOWN")] {
        let plan = run_plan_health(&spec, None, &health_observed(&spec, health), NOW);
        let status = final_status(&plan);
        assert_eq!(status.phase, Phase::Running);
        let (state, reason, _) = condition(&status, ConditionKind::Ready);
        assert_eq!(
            (state, reason.as_str()),
            (ConditionStatus::False, "HealthUnknown")
        );
        assert!(plan.wait.is_some(), "looked at again");
    }
}

#[test]
fn healthy_is_ready() {
    let spec = spec();
    let plan = run_plan_health(&spec, None, &health_observed(&spec, Some("HEALTHY")), NOW);
    let status = final_status(&plan);
    let (state, reason, _) = condition(&status, ConditionKind::Ready);
    assert_eq!((state, reason.as_str()), (ConditionStatus::True, "Healthy"));
    assert_eq!(plan.wait, None);
}

#[test]
fn unhealthy_beyond_the_grace_is_replaced_as_a_crash_with_a_warning() {
    let spec = spec();
    let observed = health_observed(&spec, Some("UNHEALTHY"));
    // First seen UNHEALTHY: waits out the grace, records since when.
    let plan = run_plan_health(&spec, None, &observed, NOW);
    assert!(stops(&plan).is_empty());
    let status = final_status(&plan);
    assert_eq!(status.unhealthy_since, Some(rfc3339(NOW)));
    assert_eq!(
        plan.wait.as_ref().map(|w| w.after_secs),
        Some(u64::try_from(settings().unhealthy_grace_secs).unwrap())
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.kind == spec::EventType::Warning && e.reason == "Unhealthy")
    );
    // Still UNHEALTHY after the grace: replaced.
    let later = NOW + settings().unhealthy_grace_secs + 1;
    let plan = run_plan_health(&spec, Some(&status), &observed, later);
    assert_eq!(stops(&plan), [StopReason::Unhealthy.to_string()]);
    // Once it stopped, the relaunch counts as a crash restart.
    let mut stopped = observed.clone();
    let task = &mut stopped.tasks[0];
    task.last_status = "STOPPED".into();
    task.desired_status = "STOPPED".into();
    task.stopped_reason = Some(StopReason::Unhealthy.to_string());
    task.stopped_at = Some(later);
    let before = final_status(&plan);
    let plan = run_plan_health(&spec, Some(&before), &stopped, later + 5);
    assert!(
        matches!(launch(&plan), Some((_, Launch::CrashRestart { .. }))),
        "{:?}",
        plan.actions
    );
    assert_eq!(final_status(&plan).restarts, before.restarts + 1);
}

// ----- schedules and idleness (NOW is Thursday 2026-05-28 20:26:40 UTC) -----

fn scheduled_spec(start: &str, end: &str, idle: Option<&str>) -> AgentSpec {
    let mut document = document();
    document.schedule = Some(spec::schedule::ScheduleDocument {
        timezone: "UTC".into(),
        windows: vec![spec::schedule::WindowDocument {
            days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .map(str::to_owned)
                .to_vec(),
            start: start.into(),
            end: end.into(),
        }],
    });
    document.idle_stop_after = idle.map(str::to_owned);
    document.validate().expect("valid schedule")
}

fn plan_with_activity(
    spec: &AgentSpec,
    status: Option<&AgentStatus>,
    observed: &AgentResources,
    last_activity: Option<i64>,
    now: i64,
) -> Plan {
    let (settings, template) = (settings(), template());
    let ctx = Context {
        settings: &settings,
        template: &template,
        now,
    };
    let desired = Desired {
        agent_id: AGENT,
        spec: Some(Ok(spec)),
        deleting: false,
        status,
        last_activity,
        purge_data: false,
    };
    plan(&desired, observed, &ctx)
}

fn stopped_by_clawfleet(observed: &AgentResources, reason: &StopReason) -> AgentResources {
    let mut stopped = observed.clone();
    for task in &mut stopped.tasks {
        task.last_status = "STOPPED".into();
        task.desired_status = "STOPPED".into();
        task.stopped_reason = Some(reason.to_string());
    }
    stopped
}

#[test]
fn outside_its_window_an_agent_is_stopped_as_scheduled_with_its_next_start() {
    let spec = scheduled_spec("08:00", "20:00", None);
    let observed = converged(&spec);
    let plan = plan_with_activity(&spec, None, &observed, None, NOW);
    assert_eq!(stops(&plan), ["clawfleet: outside the schedule's windows"]);
    assert_eq!(final_status(&plan).phase, Phase::Stopping);

    let stopped = stopped_by_clawfleet(&observed, &StopReason::OutsideSchedule);
    let plan = plan_with_activity(&spec, None, &stopped, None, NOW);
    assert!(aws_actions(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.wait, None, "nothing to wait for on AWS");
    let status = final_status(&plan);
    assert_eq!(status.phase, Phase::Scheduled);
    assert_eq!(
        status.next_start_at.as_deref(),
        Some("2026-05-29T08:00:00Z")
    );
    let (ready, reason, message) = condition(&status, ConditionKind::Ready);
    assert_eq!(
        (ready, reason.as_str()),
        (ConditionStatus::False, "OutsideSchedule")
    );
    assert!(message.contains("2026-05-29T08:00:00Z"), "{message}");
    // Look again when the window opens, less this agent's lead.
    let next_start = NOW - 73_600 + 86_400 + 8 * 3600;
    let lead = spec::lifecycle::lead_for(AGENT, settings().schedule_lead_secs);
    assert_eq!(
        plan.revisit_after_secs,
        Some(u64::try_from(next_start - lead - NOW).unwrap())
    );
    let again = plan_with_activity(&spec, Some(&status), &stopped, None, NOW + 60);
    assert!(
        !again.has_work(),
        "the resync does not enqueue a settled scheduled agent"
    );
    // Recorded as a Normal event, not a failure.
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "OutsideSchedule" && e.kind == spec::EventType::Normal),
        "{:?}",
        plan.events
    );
    // At the revisit the agent starts again.
    let at = NOW + i64::try_from(plan.revisit_after_secs.unwrap()).unwrap();
    let plan = plan_with_activity(&spec, Some(&status), &stopped, None, at);
    assert!(has_run_task(&plan), "{:?}", plan.actions);
    assert_eq!(final_status(&plan).next_start_at, None);
}

#[test]
fn inside_its_window_an_agent_runs_and_is_looked_at_again_when_it_closes() {
    let spec = scheduled_spec("20:00", "24:00", None);
    let observed = converged(&spec);
    let status = final_status(&plan_with_activity(&spec, None, &observed, None, NOW));
    assert_eq!(status.phase, Phase::Running);
    let plan = plan_with_activity(&spec, Some(&status), &observed, None, NOW);
    assert!(plan.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.revisit_after_secs, Some(86_400 - 73_600));
}

#[test]
fn no_activity_for_idle_stop_after_stops_the_agent_as_idle() {
    let mut document = document();
    document.idle_stop_after = Some("30m".into());
    let spec = document.validate().unwrap();
    let observed = converged(&spec);
    // 29:59 after the last activity: running, looked at again at the deadline.
    let plan = plan_with_activity(&spec, None, &observed, Some(NOW - 1799), NOW);
    assert!(stops(&plan).is_empty());
    assert_eq!(plan.revisit_after_secs, Some(1));
    // 30:00: stopped as idle.
    let plan = plan_with_activity(&spec, None, &observed, Some(NOW - 1800), NOW);
    assert_eq!(stops(&plan), ["clawfleet: idle"]);
    let stopped = stopped_by_clawfleet(&observed, &StopReason::Idle);
    let plan = plan_with_activity(&spec, None, &stopped, Some(NOW - 1800), NOW);
    let status = final_status(&plan);
    assert_eq!(status.phase, Phase::Idle);
    assert_eq!(condition(&status, ConditionKind::Ready).1, "Idle");
    assert_eq!(plan.revisit_after_secs, None, "only a wake brings it back");
    // Activity (a wake) starts it again.
    let plan = plan_with_activity(&spec, Some(&status), &stopped, Some(NOW), NOW);
    assert!(has_run_task(&plan), "{:?}", plan.actions);
}

#[test]
fn desired_state_stopped_wins_over_a_wake() {
    let mut document = document();
    document.idle_stop_after = Some("30m".into());
    document.desired_state = Some("stopped".into());
    let spec = document.validate().unwrap();
    let observed = stopped_by_clawfleet(&converged(&spec), &StopReason::DesiredStopped);
    let plan = plan_with_activity(&spec, None, &observed, Some(NOW), NOW);
    assert!(!has_run_task(&plan));
    assert_eq!(final_status(&plan).phase, Phase::Stopped);
}

#[test]
fn deletion_wins_over_the_schedule() {
    let spec = scheduled_spec("20:00", "24:00", None);
    let observed = converged(&spec);
    let plan = run_plan(Some(Ok(&spec)), true, None, &observed);
    assert_eq!(stops(&plan), ["clawfleet: agent deleted"]);
}
