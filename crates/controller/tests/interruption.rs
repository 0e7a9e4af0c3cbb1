//! Interruption: for every mutating call in turn, make it succeed but lose its response, or
//! fail it, then reconcile again (as a restarted controller, with no memory of the first try)
//! against a fake that behaves like AWS where moto does not: RunTask tokens remembered and
//! replayed (ConflictException for other parameters), EFS tokens honoured, names unique,
//! listings that lag behind writes. No access point, secret, revision or task may be doubled.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use cloud::{AwsError, ErrorClass};
use controller::aws::Cloud;
use controller::expectations::Expectations;
use controller::fake::FakeStore;
use controller::reconcile::{Outcome, Reconciler};
use controller::status::StatusStore;
use plan::fixtures::{self, settings, template};
use plan::observed::{
    AccessPoint, AgentResources, Role, RoleDetails, Secret, Task, TaskDefinitionRevision,
};
use spec::render::{self, RunTask, TaskDefinition, tag};
use spec::{AgentDocument, AgentSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The call takes effect, but its response never arrives.
    LoseResponse,
    /// The call fails before taking effect.
    Fail,
}

#[derive(Default)]
struct State {
    /// Advances on every listing; a resource shows in listings `lag` ticks after its creation.
    clock: u64,
    lag: u64,
    fault: Option<(&'static str, Fault)>,
    next_id: u64,
    access_points: Vec<(AccessPoint, u64)>,
    ap_tokens: HashMap<String, String>,
    secrets: Vec<(Secret, u64)>,
    revisions: Vec<(TaskDefinitionRevision, u64, bool)>,
    tasks: Vec<(Task, u64)>,
    run_tokens: HashMap<String, (String, String)>,
    roles: Vec<Role>,
    /// IAM's role quota; `None` for none.
    role_quota: Option<usize>,
    /// RunTask calls left that fail as while a new role propagates through IAM.
    unassumable: usize,
    calls: Vec<&'static str>,
}

struct FakeAws {
    state: Mutex<State>,
}

fn error(operation: &'static str, code: &str, class: ErrorClass) -> AwsError {
    AwsError {
        service: "Fake",
        operation,
        code: Some(code.to_owned()),
        message: format!("{code}: injected"),
        class,
    }
}

impl FakeAws {
    fn new(lag: u64) -> Self {
        Self {
            state: Mutex::new(State {
                lag,
                ..State::default()
            }),
        }
    }

    fn inject(&self, operation: &'static str, fault: Fault) {
        self.state.lock().unwrap().fault = Some((operation, fault));
    }

    /// Runs a mutating call under the injected fault: `effect` happens unless the call fails.
    fn call<T>(
        &self,
        operation: &'static str,
        effect: impl FnOnce(&mut State) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(operation);
        let fault = match state.fault {
            Some((op, fault)) if op == operation => {
                state.fault = None;
                Some(fault)
            }
            _ => None,
        };
        if fault == Some(Fault::Fail) {
            return Err(error(
                operation,
                "ServiceUnavailableException",
                ErrorClass::Transient,
            ));
        }
        let result = effect(&mut state);
        if fault == Some(Fault::LoseResponse) {
            return Err(AwsError {
                service: "Fake",
                operation,
                code: None,
                message: "connection reset before the response".into(),
                class: ErrorClass::Transient,
            });
        }
        result
    }

    fn id(state: &mut State, prefix: &str) -> String {
        state.next_id += 1;
        format!("{prefix}{:08}", state.next_id)
    }

    fn count(&self, f: impl Fn(&State) -> usize) -> usize {
        f(&self.state.lock().unwrap())
    }
}

impl Cloud for FakeAws {
    async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<AgentResources, AwsError> {
        let mut s = self.state.lock().unwrap();
        s.clock += 1;
        let visible = |created: u64| created + s.lag <= s.clock;
        let mine = |tags: &BTreeMap<String, String>| {
            tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id)
        };
        let mut tasks: Vec<Task> = s
            .tasks
            .iter()
            .filter(|(t, c)| mine(&t.tags) && (visible(*c) || Some(t.arn.as_str()) == known_task))
            .map(|(t, _)| t.clone())
            .collect();
        tasks.reverse();
        let mut revisions: Vec<&(TaskDefinitionRevision, u64, bool)> = s
            .revisions
            .iter()
            .filter(|(r, c, active)| {
                *active && visible(*c) && r.content.family.ends_with(&format!("_{agent_id}"))
            })
            .collect();
        revisions.sort_by_key(|(r, _, _)| std::cmp::Reverse(r.revision));
        Ok(AgentResources {
            tasks,
            access_points: s
                .access_points
                .iter()
                .filter(|(a, c)| mine(&a.tags) && visible(*c))
                .map(|(a, _)| a.clone())
                .collect(),
            secret: s
                .secrets
                .iter()
                .filter(|(x, c)| mine(&x.tags) && visible(*c))
                .map(|(x, _)| x.clone())
                .next(),
            latest_revision: revisions.first().map(|(r, _, _)| r.clone()),
            older_revisions: revisions
                .iter()
                .skip(1)
                .map(|(r, _, _)| r.arn.clone())
                .collect(),
            role: s
                .roles
                .iter()
                .find(|r| r.agent_id() == Some(agent_id))
                .cloned(),
        })
    }

    async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError> {
        let s = self.state.lock().unwrap();
        Ok(s.access_points
            .iter()
            .find(|(a, _)| a.id == id)
            .map(|(a, _)| a.clone()))
    }

    async fn describe_task_definition(
        &self,
        family: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        let s = self.state.lock().unwrap();
        Ok(s.revisions
            .iter()
            .filter(|(r, _, active)| *active && r.content.family == family)
            .max_by_key(|(r, _, _)| r.revision)
            .map(|(r, _, _)| r.clone()))
    }

    async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        let s = self.state.lock().unwrap();
        Ok(s.secrets
            .iter()
            .find(|(x, _)| x.name == name)
            .map(|(x, _)| x.clone()))
    }

    async fn create_access_point(
        &self,
        request: &render::AccessPoint,
        token: &str,
    ) -> Result<AccessPoint, AwsError> {
        self.call("CreateAccessPoint", |s| {
            if let Some(id) = s.ap_tokens.get(token).cloned() {
                // EFS returns the access point the token created, if it still exists.
                return s
                    .access_points
                    .iter()
                    .find(|(a, _)| a.id == id)
                    .map(|(a, _)| a.clone())
                    .ok_or_else(|| {
                        error(
                            "CreateAccessPoint",
                            "AccessPointNotFound",
                            ErrorClass::Terminal,
                        )
                    });
            }
            let id = Self::id(s, "fsap-");
            let ap = AccessPoint {
                id: id.clone(),
                arn: format!("arn:aws:elasticfilesystem:us-east-1:1:access-point/{id}"),
                file_system_id: request.file_system_id.clone(),
                root_path: Some(request.root_path.clone()),
                posix_uid: Some(i64::from(request.posix_uid)),
                posix_gid: Some(i64::from(request.posix_gid)),
                tags: request.tags.clone(),
                life_cycle_state: "available".into(),
            };
            s.ap_tokens.insert(token.to_owned(), id);
            let at = s.clock;
            s.access_points.push((ap.clone(), at));
            Ok(ap)
        })
    }

    async fn create_secret(
        &self,
        request: &render::Secret,
        description: &str,
        _value: &str,
    ) -> Result<Secret, AwsError> {
        self.call("CreateSecret", |s| {
            if let Some((existing, _)) = s.secrets.iter().find(|(x, _)| x.name == request.name) {
                let code = if existing.deleted {
                    "InvalidRequestException"
                } else {
                    "ResourceExistsException"
                };
                return Err(error("CreateSecret", code, ErrorClass::Terminal));
            }
            let id = Self::id(s, "");
            let secret = Secret {
                arn: format!(
                    "arn:aws:secretsmanager:us-east-1:1:secret:{}-{id}",
                    request.name
                ),
                name: request.name.clone(),
                tags: request.tags.clone(),
                key_names: render::secret_keys_in(description),
                deleted: false,
            };
            let at = s.clock;
            s.secrets.push((secret.clone(), at));
            Ok(secret)
        })
    }

    async fn restore_secret(&self, arn: &str) -> Result<(), AwsError> {
        self.call("RestoreSecret", |s| {
            for (x, _) in s.secrets.iter_mut().filter(|(x, _)| x.arn == arn) {
                x.deleted = false;
            }
            Ok(())
        })
    }

    async fn register_task_definition(
        &self,
        definition: &TaskDefinition,
        _tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        self.call("RegisterTaskDefinition", |s| {
            let revision = 1 + s
                .revisions
                .iter()
                .filter(|(r, _, _)| r.content.family == definition.family)
                .count() as i32;
            let rev = TaskDefinitionRevision {
                arn: format!(
                    "arn:aws:ecs:us-east-1:1:task-definition/{}:{revision}",
                    definition.family
                ),
                revision,
                content: definition.clone(),
            };
            let at = s.clock;
            s.revisions.push((rev.clone(), at, true));
            Ok(rev)
        })
    }

    async fn run_task(&self, request: &RunTask, token: &str) -> Result<Task, AwsError> {
        self.call("RunTask", |s| {
            if s.unassumable > 0 {
                s.unassumable -= 1;
                return Err(AwsError {
                    message: "InvalidParameterException: ECS was unable to assume the role 'arn:aws:iam::123456789012:role/x' that was provided for this task.".into(),
                    // As `AwsError::from_sdk` classes it (tested in the cloud crate).
                    ..error("RunTask", "InvalidParameterException", ErrorClass::Transient)
                });
            }
            let params = serde_json::to_string(request).unwrap();
            if let Some((seen, arn)) = s.run_tokens.get(token).cloned() {
                if seen != params {
                    return Err(error("RunTask", "ConflictException", ErrorClass::Terminal));
                }
                // ECS replays the original result for up to 24 hours.
                return Ok(s
                    .tasks
                    .iter()
                    .find(|(t, _)| t.arn == arn)
                    .map(|(t, _)| t.clone())
                    .unwrap());
            }
            let id = Self::id(s, "");
            let task = Task {
                arn: format!("arn:aws:ecs:us-east-1:1:task/{}/{id}", request.cluster),
                task_definition_arn: request.task_definition.clone(),
                last_status: "RUNNING".into(),
                desired_status: "RUNNING".into(),
                started_by: Some(request.started_by.clone()),
                tags: request.tags.clone(),
                overrides: Some(request.overrides.clone()),
                started_at: Some(1_780_000_000),
                ..Task::default()
            };
            s.run_tokens
                .insert(token.to_owned(), (params, task.arn.clone()));
            let at = s.clock;
            s.tasks.push((task.clone(), at));
            Ok(task)
        })
    }

    async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError> {
        self.call("StopTask", |s| {
            for (t, _) in s.tasks.iter_mut().filter(|(t, _)| t.arn == arn) {
                t.desired_status = "STOPPED".into();
                t.last_status = "STOPPED".into();
                t.stopped_reason = Some(reason.to_owned());
            }
            Ok(())
        })
    }

    async fn tag_resource(
        &self,
        _arn: &str,
        _add: &BTreeMap<String, String>,
        _remove: &[String],
    ) -> Result<(), AwsError> {
        self.call("TagResource", |_| Ok(()))
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        self.call("DeregisterTaskDefinition", |s| {
            for (r, _, active) in s.revisions.iter_mut().filter(|(r, _, _)| r.arn == arn) {
                let _ = r;
                *active = false;
            }
            Ok(())
        })
    }

    async fn delete_access_point(&self, id: &str) -> Result<(), AwsError> {
        self.call("DeleteAccessPoint", |s| {
            s.access_points.retain(|(a, _)| a.id != id);
            Ok(())
        })
    }

    async fn delete_secret(&self, arn: &str, _days: i64) -> Result<(), AwsError> {
        self.call("DeleteSecret", |s| {
            for (x, _) in s.secrets.iter_mut().filter(|(x, _)| x.arn == arn) {
                x.deleted = true;
            }
            Ok(())
        })
    }

    async fn get_role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        let s = self.state.lock().unwrap();
        Ok(s.roles.iter().find(|r| r.name == name).cloned())
    }

    async fn create_role(&self, request: &render::Role) -> Result<Role, AwsError> {
        self.call("CreateRole", |s| {
            if s.roles.iter().any(|r| r.name == request.name) {
                return Err(error(
                    "CreateRole",
                    "EntityAlreadyExists",
                    ErrorClass::Terminal,
                ));
            }
            if s.role_quota.is_some_and(|q| s.roles.len() >= q) {
                return Err(error("CreateRole", "LimitExceeded", ErrorClass::Terminal));
            }
            let role = Role {
                name: request.name.clone(),
                arn: format!(
                    "arn:aws:iam::123456789012:role{}{}",
                    request.path, request.name
                ),
                path: request.path.clone(),
                details: Some(RoleDetails {
                    permissions_boundary: Some(request.permissions_boundary.clone()),
                    policy: Some(request.policy.clone()),
                    tags: request.tags.clone(),
                }),
            };
            s.roles.push(role.clone());
            Ok(role)
        })
    }

    async fn put_role_policy(&self, name: &str, policy: &str) -> Result<(), AwsError> {
        self.call("PutRolePolicy", |s| {
            for d in s
                .roles
                .iter_mut()
                .filter(|r| r.name == name)
                .filter_map(|r| r.details.as_mut())
            {
                d.policy = Some(policy.to_owned());
            }
            Ok(())
        })
    }

    async fn put_role_permissions_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> Result<(), AwsError> {
        self.call("PutRolePermissionsBoundary", |s| {
            for d in s
                .roles
                .iter_mut()
                .filter(|r| r.name == name)
                .filter_map(|r| r.details.as_mut())
            {
                d.permissions_boundary = Some(boundary.to_owned());
            }
            Ok(())
        })
    }

    async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        self.call("DeleteRole", |s| {
            s.roles.retain(|r| r.name != name);
            Ok(())
        })
    }
}

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

/// Reconciles as a controller that restarts between tries (no expectations survive), until
/// the agent converges or is deleted, or 12 tries; returns each try's outcome.
async fn reconcile_rounds(
    fake: &FakeAws,
    store: &FakeStore,
    agent_id: &str,
    settings: &spec::render::Settings,
) -> Vec<String> {
    let template = template();
    let mut outcomes = Vec::new();
    for _ in 0..12 {
        let expectations = Expectations::default();
        let reconciler = Reconciler {
            cloud: fake,
            store,
            settings,
            template: &template,
            expectations: &expectations,
            recovery_days: 7,
            rollout: None,
            metrics: None,
        };
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
    fake: &FakeAws,
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

fn assert_one_of_each(fake: &FakeAws, agent_id: &str) {
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
            let fake = FakeAws::new(2);
            fake.inject(operation, fault);
            let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
            assert!(
                outcomes.iter().any(|o| o.starts_with("error")),
                "{operation} {fault:?}: the fault must surface as an error first: {outcomes:?}"
            );
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
    let fake = FakeAws::new(100);
    fake.inject("RunTask", Fault::LoseResponse);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let run_calls = fake.count(|s| s.calls.iter().filter(|c| **c == "RunTask").count());
    assert_eq!(run_calls, 2, "one lost, one replayed");
    assert_eq!(fake.count(|s| s.run_tokens.len()), 1, "both used one token");
    assert_one_of_each(&fake, &agent_id);
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
            let fake = FakeAws::new(0);
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
    let fake = FakeAws::new(0);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    store.request_deletion(&agent_id);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert!(fake.count(|s| s.secrets.iter().filter(|(x, _)| x.deleted).count()) == 1);

    // The same tenant re-creates the agent: its secret comes back from the recovery window.
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(fake.count(|s| s.secrets.len()), 1);
    assert!(fake.count(|s| s.calls.iter().filter(|c| **c == "RestoreSecret").count()) == 1);

    // Another tenant takes the same agent id after deletion: the secret is never handed over.
    store.request_deletion(&agent_id);
    reconcile_until_converged(&fake, &store, &agent_id).await;
    let mut other = spec(&agent_id);
    other.client_id = "globex".into();
    store.apply(&other, "cli");
    let settings = settings();
    let template = template();
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        metrics: None,
    };
    let err = reconciler.reconcile(&agent_id, None).await.unwrap_err();
    assert!(err.to_string().contains("is not this agent's"), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(
        fake.count(|s| s.calls.iter().filter(|c| **c == "RestoreSecret").count()) == 1,
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
    let fake = FakeAws::new(100);
    fake.inject("RunTask", Fault::LoseResponse);
    let settings = settings();
    let template = template();
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        metrics: None,
    };
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
    fake.state.lock().unwrap().lag = 0;
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
    let fake = FakeAws::new(0);
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
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: Some(&rollout),
        metrics: None,
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
    let fake = FakeAws::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    store.request_restart(&agent_id, "2026-11-25T12:00:00Z");
    let rollout = Rollout::new(1);
    let (settings, template) = (settings(), template());
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: Some(&rollout),
        metrics: None,
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
    let fake = FakeAws::new(0);
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
    let reconciler = Reconciler {
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        metrics: None,
    };
    let result = reconciler.reconcile(&agent_id, None).await;
    let error = result.as_ref().expect_err("the read failed");
    assert!(error.is_store() && error.class() == ErrorClass::Terminal);
    let resync = std::time::Duration::from_secs(300);
    assert_eq!(decide(&result, resync).requeue, Requeue::After(resync));
    assert!(
        fake.count(|s| s.calls.len()) == 0,
        "nothing was done on AWS"
    );
    // Once the store answers again, the agent converges.
    let outcomes = reconcile_until_converged(&fake, &store, &agent_id).await;
    assert_eq!(outcomes.last().map(String::as_str), Some("converged"));
    assert!(store.status(&agent_id).is_some());
}

/// [`reconcile_rounds`] with a task role per agent.
async fn reconcile_per_agent_until_converged(
    fake: &FakeAws,
    store: &FakeStore,
    agent_id: &str,
) -> Vec<String> {
    reconcile_rounds(fake, store, agent_id, &fixtures::per_agent_settings()).await
}

#[tokio::test]
async fn a_new_role_ecs_cannot_assume_yet_is_retried_until_the_task_starts() {
    let store = store();
    let fake = FakeAws::new(0);
    fake.state.lock().unwrap().unassumable = 2;
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
            let fake = FakeAws::new(0);
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
    let fake = FakeAws::new(0);
    fake.state.lock().unwrap().role_quota = Some(1);
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
    let fake = FakeAws::new(0);
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
    fake.state.lock().unwrap().roles.push(Role {
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
    let fake = FakeAws::new(0);
    let agent_id = local_aws::unique("agent");
    store.apply(&spec(&agent_id), "cli");
    reconcile_until_converged(&fake, &store, &agent_id).await;
    // The task crashes, as ECS reports it: stopped on its own, 3 s ago.
    let stopped_at = time::OffsetDateTime::now_utc().unix_timestamp() - 3;
    for (t, _) in fake.state.lock().unwrap().tasks.iter_mut() {
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
        cloud: &fake,
        store: &store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        metrics: Some(&metrics),
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
