//! In-memory fakes of both ports of a reconcile, for tests and simulations that need neither
//! DynamoDB nor moto:
//! - [`FakeStore`], the table: items are parsed exactly as the table's
//!   ([`SpecItem::of_document`]), writes are unconditional, and the next call can be made to fail;
//! - [`FakeCloud`], AWS as it behaves where moto does not (remembered tokens, lagging listings,
//!   lost responses), counting every request as AWS would page it.
#![allow(clippy::missing_panics_doc)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cloud::{AwsError, ErrorClass};
use plan::observed::{
    AccessPoint, AgentResources, Role, RoleDetails, Secret, Task, TaskDefinitionRevision,
};
use spec::render::{self, RunTask, TaskDefinition, tag};
use spec::{AgentDocument, AgentSpec, AgentStatus, Meta};
use store::{Agent, Snapshot, SpecItem, StoreError};

use crate::aws::Cloud;
use crate::status::StatusStore;

/// The table, as a map from agent id to its items.
#[derive(Debug, Default)]
pub struct FakeStore {
    agents: Mutex<BTreeMap<String, Agent>>,
    fail_next: Mutex<Option<StoreError>>,
}

impl FakeStore {
    fn agents(&self) -> MutexGuard<'_, BTreeMap<String, Agent>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failure(&self) -> Result<(), StoreError> {
        match self
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: StoreError) {
        *self
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// Writes `spec` as `writer` would (a new incarnation when there was none), keeping the
    /// status, as `Store::apply` does.
    pub fn apply(&self, spec: &AgentSpec, writer: &str) {
        let mut agents = self.agents();
        let agent = agents
            .entry(spec.agent_id.clone())
            .or_insert_with(|| Agent::absent(&spec.agent_id));
        let meta = match &agent.spec {
            Some(current) => Meta {
                generation: current.meta.generation + 1,
                ..current.meta.clone()
            },
            None => Meta {
                generation: 1,
                managed_by: Some(writer.to_owned()),
                created_at: Some(spec::now_rfc3339_millis()),
                ..Meta::default()
            },
        };
        agent.spec = Some(SpecItem::of_document(
            &spec.agent_id,
            &spec.to_document(&meta),
        ));
    }

    /// Edits the stored document as a person in the console would: no new generation.
    pub fn edit(&self, agent_id: &str, change: impl FnOnce(&mut AgentDocument)) {
        if let Some(item) = self
            .agents()
            .get_mut(agent_id)
            .and_then(|a| a.spec.as_mut())
            && let Some(document) = &item.document
        {
            let mut document = document.clone();
            change(&mut document);
            *item = SpecItem::of_document(agent_id, &document);
        }
    }

    /// Sets `deletion_requested_at`, as `Store::request_deletion` does.
    pub fn request_deletion(&self, agent_id: &str) {
        self.edit(agent_id, |d| {
            d.deletion_requested_at = Some(spec::now_rfc3339());
        });
    }

    /// Sets `restart_requested_at`, as `Store::request_restart` does.
    pub fn request_restart(&self, agent_id: &str, at: &str) {
        self.edit(agent_id, |d| d.restart_requested_at = Some(at.to_owned()));
    }

    /// The stored status.
    #[must_use]
    pub fn status(&self, agent_id: &str) -> Option<AgentStatus> {
        self.agents().get(agent_id).and_then(|a| a.status.clone())
    }
}

impl StatusStore for FakeStore {
    async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.failure()?;
        Ok(self.agents().get(agent_id).cloned())
    }

    async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        self.failure()?;
        Ok(self.agents().values().cloned().collect())
    }

    async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        _previous: Option<&AgentStatus>,
    ) -> Result<(), StoreError> {
        self.failure()?;
        let mut agents = self.agents();
        let agent = agents
            .entry(agent_id.to_owned())
            .or_insert_with(|| Agent::absent(agent_id));
        agent.status = Some(status.clone());
        Ok(())
    }

    async fn delete_items(&self, agent_id: &str, _spec: &Snapshot) -> Result<(), StoreError> {
        self.failure()?;
        self.agents().remove(agent_id);
        Ok(())
    }

    async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        self.failure()?;
        self.agents().remove(agent_id);
        Ok(())
    }
}

/// What an injected fault does to the next call of its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call takes effect, but its response never arrives.
    LoseResponse,
    /// The call fails before taking effect.
    Fail,
}

/// Everything the fake cloud holds, open to tests that arrange or inspect it directly. Each
/// resource is kept with the listing tick it was created at.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Advances on every listing; a resource shows in listings `lag` ticks after its creation.
    pub clock: u64,
    pub lag: u64,
    pub fault: Option<(&'static str, Fault)>,
    pub next_id: u64,
    pub access_points: Vec<(AccessPoint, u64)>,
    /// CreateAccessPoint's `ClientToken` -> the access point it created.
    pub ap_tokens: HashMap<String, String>,
    /// Tokens are ignored, as moto ignores them: every create creates.
    pub ignore_tokens: bool,
    pub secrets: Vec<(Secret, u64)>,
    /// Each revision with its creation tick and whether it is ACTIVE.
    pub revisions: Vec<(TaskDefinitionRevision, u64, bool)>,
    pub tasks: Vec<(Task, u64)>,
    /// RunTask's `clientToken` -> the request's parameters and the task it started.
    pub run_tokens: HashMap<String, (String, String)>,
    /// The RegisterTaskDefinition bucket has no room for a low-priority deregistration.
    pub deregistration_busy: bool,
    pub roles: Vec<Role>,
    /// IAM's role quota; `None` for none.
    pub role_quota: Option<usize>,
    /// RunTask calls left that fail as while a new role propagates through IAM.
    pub unassumable: usize,
    /// Every mutating call, in order (the failed and the lost included).
    pub mutations: Vec<&'static str>,
    /// Every AWS request the real adapters would send, by operation: a listing counts one call
    /// per page of [`PAGE`] items, as AWS pages it.
    pub counts: BTreeMap<&'static str, u64>,
    /// Revisions whose content this process knows (registered or described once), as
    /// `cloud::Aws` caches them: a known revision is never described again.
    pub described: HashSet<String>,
}

/// An in-memory AWS that behaves like AWS where moto does not: RunTask tokens remembered and
/// replayed (ConflictException for other parameters), EFS tokens honoured, names unique,
/// listings that lag behind writes, responses lost after the call took effect, and every
/// request counted as the real adapters would send it.
#[derive(Debug, Default)]
pub struct FakeCloud {
    state: Mutex<CloudState>,
}

/// Items per page of every listing the fake counts, as AWS pages DescribeAccessPoints,
/// ListTasks, ListTaskDefinitions and ListSecrets.
pub const PAGE: usize = 100;

/// Calls a listing of `items` takes: one page even when empty.
#[must_use]
pub fn pages(items: usize) -> u64 {
    items.div_ceil(PAGE).max(1) as u64
}

/// The agent's tasks as ListTasks by `startedBy` (subject to the listing's lag) and a
/// DescribeTasks of those and of `known_task` show them, newest first; and how many were listed.
fn agent_tasks(s: &CloudState, agent_id: &str, known_task: Option<&str>) -> (Vec<Task>, usize) {
    let visible = |created: u64| created + s.lag <= s.clock;
    let mine =
        |t: &Task| t.tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id) && !t.is_purge();
    let mut tasks: Vec<Task> = s
        .tasks
        .iter()
        .filter(|(t, c)| mine(t) && (visible(*c) || Some(t.arn.as_str()) == known_task))
        .map(|(t, _)| t.clone())
        .collect();
    tasks.reverse();
    let listed = s
        .tasks
        .iter()
        .filter(|(t, c)| mine(t) && visible(*c))
        .count();
    (tasks, listed)
}

/// Counts `n` requests of `operation`.
fn count(state: &mut CloudState, operation: &'static str, n: u64) {
    *state.counts.entry(operation).or_default() += n;
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

impl FakeCloud {
    /// A fake whose listings show a resource `lag` listings after its creation.
    #[must_use]
    pub fn new(lag: u64) -> Self {
        Self {
            state: Mutex::new(CloudState {
                lag,
                ..CloudState::default()
            }),
        }
    }

    /// The state, recovered from a poisoned lock: every update leaves it consistent.
    pub fn state(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of `operation` (a mutating one) suffers `fault`.
    pub fn inject(&self, operation: &'static str, fault: Fault) {
        self.state().fault = Some((operation, fault));
    }

    /// Requests of `operation` so far (pages of listings counted one each).
    #[must_use]
    pub fn calls(&self, operation: &str) -> u64 {
        self.state().counts.get(operation).copied().unwrap_or(0)
    }

    /// Requests so far, by operation.
    #[must_use]
    pub fn call_counts(&self) -> BTreeMap<&'static str, u64> {
        self.state().counts.clone()
    }

    /// Forgets the requests counted so far.
    pub fn reset_calls(&self) {
        self.state().counts.clear();
    }

    /// Puts `n` access points of other teams on the file system, visible at once: they cost
    /// listing pages, and nothing of clawfleet's may ever touch them.
    pub fn add_foreign_access_points(&self, n: usize) {
        let mut s = self.state();
        for _ in 0..n {
            let id = Self::id(&mut s, "fsap-");
            let ap = AccessPoint {
                arn: format!("arn:aws:elasticfilesystem:us-east-1:1:access-point/{id}"),
                id,
                file_system_id: "fs-fake".into(),
                root_path: Some("/other-team".into()),
                posix_uid: Some(2000),
                posix_gid: Some(2000),
                tags: BTreeMap::from([("team".to_owned(), "other".to_owned())]),
                life_cycle_state: "available".into(),
            };
            s.access_points.push((ap, 0));
        }
    }

    /// Runs a mutating call under the injected fault: `effect` happens unless the call fails.
    fn call<T>(
        &self,
        operation: &'static str,
        effect: impl FnOnce(&mut CloudState) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut state = self.state();
        state.mutations.push(operation);
        count(&mut state, operation, 1);
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

    fn id(state: &mut CloudState, prefix: &str) -> String {
        state.next_id += 1;
        format!("{prefix}{:08}", state.next_id)
    }

    /// The task `arn` stops on its own, its `container` exiting with `exit_code`, as a
    /// finished one-off task (a purge) does: moto runs no container and reports no exit code.
    pub fn exit(&self, arn: &str, container: &str, exit_code: i32) {
        let mut s = self.state();
        for (t, _) in s.tasks.iter_mut().filter(|(t, _)| t.arn == arn) {
            t.desired_status = "STOPPED".into();
            t.last_status = "STOPPED".into();
            t.stopped_reason = Some("Essential container in task exited".into());
            t.stop_code = Some("EssentialContainerExited".into());
            t.exit_codes.insert(container.to_owned(), exit_code);
        }
    }

    /// `f` of the state: a count for a test's assertion.
    pub fn count(&self, f: impl Fn(&CloudState) -> usize) -> usize {
        f(&self.state())
    }
}

impl Cloud for FakeCloud {
    async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        known_access_point: Option<&str>,
    ) -> Result<AgentResources, AwsError> {
        let mut s = self.state();
        s.clock += 1;
        let visible = |created: u64| created + s.lag <= s.clock;
        let mine = |tags: &BTreeMap<String, String>| {
            tags.get(tag::AGENT_ID).map(String::as_str) == Some(agent_id)
        };
        let (tasks, listed_tasks) = agent_tasks(&s, agent_id, known_task);
        let mut revisions: Vec<&(TaskDefinitionRevision, u64, bool)> = s
            .revisions
            .iter()
            .filter(|(r, c, active)| {
                *active && visible(*c) && r.content.family.ends_with(&format!("_{agent_id}"))
            })
            .collect();
        revisions.sort_by_key(|(r, _, _)| std::cmp::Reverse(r.revision));
        // The requests `cloud::Aws::observe_agent` sends: ListTasks by startedBy, DescribeTasks
        // of those (and the status's task), DescribeAccessPoints of the status's access point,
        // DescribeSecret, the family's revisions, the newest one described unless known,
        // GetRole and GetRolePolicy.
        let described_tasks = listed_tasks + usize::from(known_task.is_some());
        let latest_arn = revisions.first().map(|(r, _, _)| r.arn.clone());
        let family_revisions = revisions.len();
        let has_role = s.roles.iter().any(|r| r.agent_id() == Some(agent_id));
        let resources = AgentResources {
            tasks,
            // Described by id: no lag.
            access_points: s
                .access_points
                .iter()
                .filter(|(a, _)| mine(&a.tags) && Some(a.id.as_str()) == known_access_point)
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
            // Read apart, by `observe_purge`, as the real adapter does.
            purge_tasks: Vec::new(),
            purge_revisions: Vec::new(),
        };
        count(&mut s, "ListTasks", pages(listed_tasks));
        if described_tasks > 0 {
            count(
                &mut s,
                "DescribeTasks",
                described_tasks.div_ceil(PAGE) as u64,
            );
        }
        if known_access_point.is_some() {
            count(&mut s, "DescribeAccessPoints", 1);
        }
        count(&mut s, "DescribeSecret", 1);
        count(&mut s, "ListTaskDefinitions", pages(family_revisions));
        if let Some(arn) = latest_arn
            && s.described.insert(arn)
        {
            count(&mut s, "DescribeTaskDefinition", 1);
        }
        count(&mut s, "GetRole", 1);
        if has_role {
            count(&mut s, "GetRolePolicy", 1);
        }
        Ok(resources)
    }

    async fn observe_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<Vec<Task>, AwsError> {
        let mut s = self.state();
        s.clock += 1;
        let (tasks, listed) = agent_tasks(&s, agent_id, known_task);
        let described = listed + usize::from(known_task.is_some());
        count(&mut s, "ListTasks", pages(listed));
        if described > 0 {
            count(&mut s, "DescribeTasks", described.div_ceil(PAGE) as u64);
        }
        Ok(tasks)
    }

    async fn describe_access_points(&self) -> Result<Vec<AccessPoint>, AwsError> {
        let mut s = self.state();
        s.clock += 1;
        let visible: Vec<AccessPoint> = s
            .access_points
            .iter()
            .filter(|(_, c)| c + s.lag <= s.clock)
            .map(|(a, _)| a.clone())
            .collect();
        count(&mut s, "DescribeAccessPoints", pages(visible.len()));
        Ok(visible)
    }

    async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError> {
        let mut s = self.state();
        count(&mut s, "DescribeAccessPoints", 1);
        Ok(s.access_points
            .iter()
            .find(|(a, _)| a.id == id)
            .map(|(a, _)| a.clone()))
    }

    async fn describe_task_definition(
        &self,
        family: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        let mut s = self.state();
        count(&mut s, "DescribeTaskDefinition", 1);
        Ok(s.revisions
            .iter()
            .filter(|(r, _, active)| *active && r.content.family == family)
            .max_by_key(|(r, _, _)| r.revision)
            .map(|(r, _, _)| r.clone()))
    }

    async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        let mut s = self.state();
        count(&mut s, "DescribeSecret", 1);
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
            if let Some(id) = s.ap_tokens.get(token).cloned()
                && !s.ignore_tokens
            {
                // EFS answers AccessPointAlreadyExists naming the access point the token
                // created; the adapter describes it.
                count(s, "DescribeAccessPoints", 1);
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
                content: std::sync::Arc::new(definition.clone()),
            };
            let at = s.clock;
            s.described.insert(rev.arn.clone());
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
            let params = serde_json::to_string(request).unwrap_or_default();
            if let Some((seen, arn)) = s.run_tokens.get(token).cloned() {
                if seen != params {
                    return Err(error("RunTask", "ConflictException", ErrorClass::Terminal));
                }
                // ECS replays the original result for up to 24 hours.
                return s
                    .tasks
                    .iter()
                    .find(|(t, _)| t.arn == arn)
                    .map(|(t, _)| t.clone())
                    .ok_or_else(|| error("RunTask", "ServerException", ErrorClass::Transient));
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

    async fn observe_purge(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<(Vec<Task>, Vec<String>), AwsError> {
        let mut s = self.state();
        s.clock += 1;
        let clock = s.clock;
        let lag = s.lag;
        let started_by = spec::purge::started_by(agent_id);
        let listed: Vec<Task> = s
            .tasks
            .iter()
            .filter(|(t, c)| {
                t.started_by.as_deref() == Some(started_by.as_str())
                    && ((c + lag <= clock && !t.is_stopped()) || Some(t.arn.as_str()) == known_task)
            })
            .map(|(t, _)| t.clone())
            .collect();
        count(&mut s, "ListTasks", 1);
        if !listed.is_empty() || known_task.is_some() {
            count(&mut s, "DescribeTasks", 1);
        }
        let mut listed = listed;
        listed.reverse();
        // ListTaskDefinitions of the purge family (a whole family, as AWS's familyPrefix).
        let family = format!("_{agent_id}_purge");
        let mut revisions: Vec<(i32, String)> = s
            .revisions
            .iter()
            .filter(|(r, c, active)| {
                *active && c + lag <= clock && r.content.family.ends_with(&family)
            })
            .map(|(r, _, _)| (r.revision, r.arn.clone()))
            .collect();
        count(&mut s, "ListTaskDefinitions", pages(revisions.len()));
        revisions.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
        Ok((listed, revisions.into_iter().map(|(_, arn)| arn).collect()))
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

    fn deregistration_has_room(&self) -> bool {
        !self.state().deregistration_busy
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
        let mut s = self.state();
        count(&mut s, "GetRole", 1);
        let role = s.roles.iter().find(|r| r.name == name).cloned();
        if role.is_some() {
            count(&mut s, "GetRolePolicy", 1);
        }
        Ok(role)
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
            // The adapter's PutRolePolicy of the inline policy, right after.
            count(s, "PutRolePolicy", 1);
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
            // The adapter's DeleteRolePolicy, right before.
            count(s, "DeleteRolePolicy", 1);
            s.roles.retain(|r| r.name != name);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listing_of_250_access_points_counts_3_describe_access_points_calls() {
        let fake = FakeCloud::new(0);
        fake.add_foreign_access_points(250);
        assert_eq!(fake.describe_access_points().await.unwrap().len(), 250);
        assert_eq!(fake.calls("DescribeAccessPoints"), 3);
        fake.reset_calls();
        assert!(fake.call_counts().is_empty());
    }

    #[tokio::test]
    async fn observing_an_agent_lists_nothing_the_fleet_shares() {
        let fake = FakeCloud::new(0);
        fake.add_foreign_access_points(250);
        let observed = fake.observe_agent("a1", None, None).await.unwrap();
        assert!(observed.access_points.is_empty());
        assert_eq!(
            fake.calls("DescribeAccessPoints"),
            0,
            "no id known, no read"
        );
        assert_eq!(
            fake.calls("ListTasks"),
            1,
            "an empty listing is still one page"
        );
        assert_eq!(fake.calls("DescribeTasks"), 0, "nothing to describe");
        assert_eq!(fake.calls("GetRolePolicy"), 0, "no role");
        let foreign = fake.state().access_points[0].0.id.clone();
        let observed = fake
            .observe_agent("a1", None, Some(&foreign))
            .await
            .unwrap();
        assert!(observed.access_points.is_empty(), "another's is never ours");
        assert_eq!(fake.calls("DescribeAccessPoints"), 1, "one, by id");
    }

    #[test]
    fn pages_are_of_100_items_and_never_fewer_than_one() {
        assert_eq!(
            [0, 1, 100, 101, 250].map(pages),
            [1, 1, 1, 2, 3],
            "as AWS pages its listings"
        );
    }
}
