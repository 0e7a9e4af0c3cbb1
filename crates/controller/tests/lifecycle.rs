//! One agent's whole life against moto: create, change plan, stop, start, restart, secrets,
//! delete; every AWS and DynamoDB call counted with an SDK interceptor.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use cloud::{Aws, Calls};
use controller::aws::{Cloud, RealCloud};
use controller::expectations::Expectations;
use controller::reconcile::{Outcome, Reconciler};
use plan::observed::Task;
use spec::render::{self, Settings, tag};
use spec::{AgentSpec, DesiredState, Phase};
use store::Store;

const PURGE_IMAGE: &str = "public.ecr.aws/docker/library/busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct Env {
    settings: Settings,
    template_name: String,
    calls: Calls,
    cloud: RealCloud,
    store: Store,
    ecs: aws_sdk_ecs::Client,
    efs: aws_sdk_efs::Client,
    sm: aws_sdk_secretsmanager::Client,
    iam: aws_sdk_iam::Client,
}

async fn env() -> Env {
    env_with(false).await
}

/// The environment, with a task role per agent under the development stack's boundary when
/// `per_agent`.
async fn env_with(per_agent: bool) -> Env {
    let name = local_aws::unique("life");
    let vars = local_aws::dev_stack(&name);
    let task_role = if per_agent {
        spec::render::TaskRole::PerAgent {
            permissions_boundary: vars["CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY"].clone(),
        }
    } else {
        spec::render::TaskRole::Template
    };
    let settings = Settings {
        installation: name.clone(),
        task_role,
        subnets: vars["CLAWFLEET_SUBNETS"]
            .split(',')
            .map(str::to_owned)
            .collect(),
        security_groups: vec![vars["CLAWFLEET_SECURITY_GROUPS"].clone()],
        secret_prefix: format!("/{name}/agents/"),
        // Only an agent deleted with purge_data runs it (the purge tests below).
        purge_image: Some(PURGE_IMAGE.into()),
        ..Settings::new(
            &vars["CLAWFLEET_CLUSTER"],
            &vars["CLAWFLEET_FILE_SYSTEM_ID"],
        )
    };
    let config = local_aws::sdk_config().await;
    let calls = Calls::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(calls.clone())
        .build();
    let store = Store::new(
        aws_sdk_dynamodb::Client::from_conf(dynamodb),
        local_aws::unique("life"),
    );
    store.bootstrap().await.unwrap();
    Env {
        cloud: RealCloud {
            aws: Aws::counted(&config, &settings, &calls),
            settings: settings.clone(),
        },
        template_name: vars["CLAWFLEET_TEMPLATE_TASK_DEFINITION"].clone(),
        settings,
        calls,
        store,
        ecs: aws_sdk_ecs::Client::new(&config),
        efs: aws_sdk_efs::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
    }
}

impl Env {
    async fn reconcile(&self, agent_id: &str) -> Outcome {
        let (_, template) = self
            .cloud
            .aws
            .template(&self.template_name, &self.settings)
            .await
            .unwrap();
        let expectations = Expectations::default();
        Reconciler {
            cloud: &self.cloud,
            store: &self.store,
            settings: &self.settings,
            template: &template,
            expectations: &expectations,
            recovery_days: 7,
            rollout: None,
            last_seen: None,
            metrics: None,
        }
        .reconcile(agent_id, None)
        .await
        .unwrap()
    }

    /// Everything of the agent's that AWS holds: what a reconcile observes, with the access
    /// points of a listing of the whole file system (a reconcile describes only the one its
    /// status names).
    async fn observed(&self, agent_id: &str) -> plan::observed::AgentResources {
        let mut resources = self
            .cloud
            .observe_agent(agent_id, None, None)
            .await
            .unwrap();
        resources.access_points = self
            .cloud
            .describe_access_points()
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.agent_id() == Some(agent_id))
            .collect();
        resources
    }

    /// Reconciles until converged, following waits (moto stops tasks at once).
    async fn converge(&self, agent_id: &str) -> Outcome {
        for _ in 0..6 {
            match self.reconcile(agent_id).await {
                Outcome::Waiting(_) => continue,
                done => return done,
            }
        }
        panic!("{agent_id} did not converge")
    }

    async fn tasks(&self, agent_id: &str) -> Vec<Task> {
        let mut resources = self.observed(agent_id).await;
        let status = self
            .store
            .get(agent_id)
            .await
            .unwrap()
            .and_then(|a| a.status);
        if let Some(arn) = status.and_then(|s| s.task_arn)
            && !resources.tasks.iter().any(|t| t.arn == arn)
        {
            resources
                .tasks
                .extend(self.cloud.aws.ecs.describe_tasks(&[arn]).await.unwrap());
        }
        resources.tasks
    }

    /// Reconciles until converged or deleted, or until it waits on something other than a
    /// task stopping (moto stops tasks at once).
    async fn settle(&self, agent_id: &str) -> Outcome {
        let mut last = None;
        for _ in 0..6 {
            match self.reconcile(agent_id).await {
                Outcome::Waiting(w) => last = Some(Outcome::Waiting(w)),
                done => return done,
            }
        }
        last.unwrap()
    }

    async fn purge_tasks(&self, agent_id: &str) -> Vec<aws_sdk_ecs::types::Task> {
        let mut arns = Vec::new();
        for status in [
            aws_sdk_ecs::types::DesiredStatus::Running,
            aws_sdk_ecs::types::DesiredStatus::Stopped,
        ] {
            let listed = self
                .ecs
                .list_tasks()
                .cluster(&self.settings.cluster)
                .started_by(format!("purge/{agent_id}"))
                .desired_status(status)
                .send()
                .await
                .unwrap();
            arns.extend(listed.task_arns().iter().cloned());
        }
        if arns.is_empty() {
            return Vec::new();
        }
        self.ecs
            .describe_tasks()
            .cluster(&self.settings.cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .unwrap()
            .tasks()
            .to_vec()
    }

    async fn access_point_exists(&self, id: &str) -> bool {
        let described = self
            .efs
            .describe_access_points()
            .access_point_id(id)
            .send()
            .await;
        described.is_ok_and(|d| !d.access_points().is_empty())
    }

    async fn live_tasks(&self, agent_id: &str) -> Vec<Task> {
        self.tasks(agent_id)
            .await
            .into_iter()
            .filter(Task::is_live)
            .collect()
    }
}

fn agent(agent_id: &str) -> AgentSpec {
    plan::fixtures::document_of(agent_id).validate().unwrap()
}

/// What `clawfleet secrets set` does, through the same adapter.
async fn set_secret_keys(env: &Env, agent_id: &str, keys: &[&str]) {
    let name = render::secret_name(&env.settings, agent_id);
    let secret = env
        .cloud
        .aws
        .secrets
        .describe_secret(&name)
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let value: BTreeMap<&String, &str> = keys.iter().map(|k| (k, "test-value")).collect();
    env.cloud
        .aws
        .secrets
        .update_secret(
            &secret.arn,
            &render::secret_description(&keys),
            &serde_json::to_string(&value).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn one_agent_from_creation_to_deletion() {
    let env = env().await;
    let id = local_aws::unique("agent");
    let spec = agent(&id);
    env.store.apply(&spec, "cli").await.unwrap();

    // Declared secret keys are missing: everything but the task exists, and the status says why.
    let outcome = env.converge(&id).await;
    assert!(
        matches!(&outcome, Outcome::WaitingOnOwner(m) if m.contains("OPENAI_API_KEY")),
        "{outcome:?}"
    );
    assert!(
        env.live_tasks(&id).await.is_empty(),
        "no task without its secrets"
    );
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;

    // Create -> Running.
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    assert_eq!(status.phase, Phase::Running);
    let aps = env
        .efs
        .describe_access_points()
        .access_point_id(status.access_point_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let ap = &aps.access_points()[0];
    assert_eq!(
        ap.root_directory().unwrap().path(),
        Some(format!("/agents/acme/{id}").as_str())
    );
    assert_eq!(
        ap.posix_user().map(|p| (p.uid(), p.gid())),
        Some((1000, 1000))
    );
    let ap_tags: BTreeMap<&str, &str> = ap.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(ap_tags[tag::AGENT_ID], id);
    assert_eq!(ap_tags[tag::CLIENT_ID], "acme");
    assert_eq!(ap_tags[tag::MANAGED_BY], "clawfleet");
    assert_eq!(ap_tags["CostCenter"], "acme");
    let secret = env
        .sm
        .describe_secret()
        .secret_id(status.secret_arn.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret.name(),
        Some(render::secret_name(&env.settings, &id).as_str())
    );
    assert!(
        secret
            .tags()
            .iter()
            .any(|t| t.key() == Some(tag::AGENT_ID) && t.value() == Some(id.as_str()))
    );
    let td = env
        .ecs
        .describe_task_definition()
        .task_definition(status.task_definition_arn.clone().unwrap())
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    let container = &td.container_definitions()[0];
    assert_eq!(container.image(), Some("openclaw/openclaw:v1.2.3"));
    assert_eq!(
        container.secrets()[0].value_from(),
        format!("{}:OPENAI_API_KEY::", status.secret_arn.clone().unwrap())
    );
    let live = env.live_tasks(&id).await;
    assert_eq!(live.len(), 1);
    let overrides = live[0].overrides.clone().unwrap();
    assert_eq!(
        (overrides.cpu.as_str(), overrides.memory.as_str()),
        ("512", "1024")
    );
    let env_vars: BTreeMap<String, String> = overrides.container_overrides[0]
        .environment
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(env_vars["AGENT_ID"], id);
    assert_eq!(env_vars["WORKSPACE_ID"], "acme");
    assert_eq!(env_vars["LOG_LEVEL"], "info");
    let first_task = live[0].arn.clone();

    // A second reconcile of a converged agent changes nothing: zero mutating calls, AWS or DynamoDB.
    env.calls.reset();
    assert_eq!(env.reconcile(&id).await, Outcome::Converged);
    assert_eq!(env.calls.mutating(), 0, "{:?}", env.calls.snapshot());
    assert!(env.calls.total(|_, _| true) > 0, "the reconcile did read");

    // A plan change: the old task is STOPPED before the new one starts, with the new size.
    let mut large = spec.clone();
    large.size = Some(spec::Size::Plan(spec::Plan::Large));
    env.store.apply(&large, "cli").await.unwrap();
    let outcome = env.reconcile(&id).await;
    assert!(
        matches!(outcome, Outcome::Waiting(_)),
        "stop first, then wait: {outcome:?}"
    );
    assert!(
        env.live_tasks(&id).await.is_empty(),
        "the old task is stopping before any new one"
    );
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let live = env.live_tasks(&id).await;
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].arn, first_task);
    let overrides = live[0].overrides.clone().unwrap();
    assert_eq!(
        (overrides.cpu.as_str(), overrides.memory.as_str()),
        ("2048", "4096")
    );
    let old = env
        .cloud
        .aws
        .ecs
        .describe_tasks(&[first_task])
        .await
        .unwrap();
    assert_eq!(old[0].last_status, "STOPPED");
    assert!(
        old[0]
            .stopped_reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("clawfleet: replacing")
    );

    // Stopped: no task.
    let mut stopped = large.clone();
    stopped.desired_state = DesiredState::Stopped;
    env.store.apply(&stopped, "cli").await.unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    assert!(env.live_tasks(&id).await.is_empty());
    assert_eq!(
        env.store
            .get(&id)
            .await
            .unwrap()
            .unwrap()
            .status
            .unwrap()
            .phase,
        Phase::Stopped
    );

    // Running again, then a restart: a new task each time.
    env.store.apply(&large, "cli").await.unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let before = env.live_tasks(&id).await;
    assert_eq!(before.len(), 1);
    env.store
        .request_restart(&id, "2026-11-25T12:00:00Z")
        .await
        .unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let after = env.live_tasks(&id).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].arn, before[0].arn, "restart replaced the task");
    assert_eq!(
        after[0].tags.get(tag::RESTART).map(String::as_str),
        Some("2026-11-25T12:00:00Z")
    );

    // Delete: the task stops, then the access point, the secret (recovery window), the
    // revisions and the items go.
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    env.store
        .request_deletion(&id, &spec::now_rfc3339(), false)
        .await
        .unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Deleted);
    assert!(env.store.get(&id).await.unwrap().is_none(), "items removed");
    assert!(env.live_tasks(&id).await.is_empty());
    let aps = env
        .efs
        .describe_access_points()
        .access_point_id(status.access_point_id.unwrap())
        .send()
        .await;
    assert!(
        aps.is_err() || aps.unwrap().access_points().is_empty(),
        "access point deleted"
    );
    let secret = env
        .sm
        .describe_secret()
        .secret_id(status.secret_arn.unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        secret.deleted_date().is_some(),
        "secret scheduled for deletion"
    );
    let revisions = env
        .ecs
        .list_task_definitions()
        .family_prefix(render::family(&env.settings, &id))
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(
        revisions.task_definition_arns().is_empty(),
        "revisions deregistered"
    );
}

#[tokio::test]
async fn garbage_collection_tears_down_an_agent_deleted_in_the_console_and_leaves_foreign_resources()
 {
    let env = env().await;
    let id = local_aws::unique("agent");
    let mut spec = agent(&id);
    spec.secret_keys.clear();
    env.store.apply(&spec, "cli").await.unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let foreign_ap = env
        .efs
        .create_access_point()
        .client_token(local_aws::unique("t"))
        .file_system_id(&env.settings.file_system_id)
        .root_directory(
            aws_sdk_efs::types::RootDirectory::builder()
                .path("/foreign")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .access_point_id
        .unwrap();
    let foreign_secret = env
        .sm
        .create_secret()
        .name(format!("{}foreign/secrets", env.settings.secret_prefix))
        .secret_string("{}")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();

    // Someone deletes the spec item by hand in the console; the status item stays.
    let config = local_aws::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&config)
        .delete_item()
        .table_name(env.store.table())
        .key(
            "agent_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
        )
        .key(
            "record",
            aws_sdk_dynamodb::types::AttributeValue::S("spec".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(env.store.get(&id).await.unwrap().unwrap().status.is_some());

    // A fleet-wide pass finds the orphan by its tags and tears it down.
    let fleet = env
        .cloud
        .aws
        .observe_fleet(
            &env.template_name,
            &env.settings,
            &cloud::Recorded::default(),
        )
        .await
        .unwrap();
    assert!(fleet.agents.contains_key(&id));
    let (_, template) = env
        .cloud
        .aws
        .template(&env.template_name, &env.settings)
        .await
        .unwrap();
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: &env.cloud,
        store: &env.store,
        settings: &env.settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        last_seen: None,
        metrics: None,
    };
    let mut outcome = reconciler
        .reconcile(&id, Some(fleet.agent(&id)))
        .await
        .unwrap();
    for _ in 0..4 {
        if outcome == Outcome::Converged || outcome == Outcome::Deleted {
            break;
        }
        outcome = reconciler.reconcile(&id, None).await.unwrap();
    }
    assert_eq!(outcome, Outcome::Deleted);
    let left = env.observed(&id).await;
    assert!(!left.has_live_resources(), "{left:?}");
    assert!(
        env.store.get(&id).await.unwrap().is_none(),
        "the status item went too"
    );

    // Foreign, untagged resources are untouched.
    let ap = env
        .efs
        .describe_access_points()
        .access_point_id(&foreign_ap)
        .send()
        .await
        .unwrap();
    assert_eq!(ap.access_points().len(), 1);
    let secret = env
        .sm
        .describe_secret()
        .secret_id(&foreign_secret)
        .send()
        .await
        .unwrap();
    assert!(secret.deleted_date().is_none());
}

/// AWS requests by operation, DynamoDB left out, and the template read that `Env::reconcile`
/// makes each time (the controller reads it once a resync).
fn aws_calls(counts: &cloud::calls::CallCounts) -> BTreeMap<&str, u64> {
    let mut by_operation = BTreeMap::new();
    for ((service, operation, _), n) in counts {
        if service != "DynamoDB" {
            *by_operation.entry(operation.as_str()).or_default() += n;
        }
    }
    if let Some(n) = by_operation.get_mut("DescribeTaskDefinition") {
        *n -= 1;
    }
    by_operation.retain(|_, n| *n > 0);
    by_operation
}

/// Counts the calls of one reconcile of a new agent and of a converged one, for the docs
/// (docs/benchmarks.md, "Per-agent AWS calls"); the same counts as the fake's
/// (`interruption::a_new_agents_calls_are_the_same_with_10_or_1000_access_points_on_the_file_system`).
#[tokio::test]
async fn calls_of_one_reconcile_of_a_new_and_of_a_converged_agent() {
    let env = env().await;
    let id = local_aws::unique("agent");
    let mut spec = agent(&id);
    spec.secret_keys.clear();
    env.store.apply(&spec, "cli").await.unwrap();
    env.calls.reset();
    assert_eq!(env.reconcile(&id).await, Outcome::Converged);
    let new = env.calls.snapshot();
    eprintln!("new agent: {new:?}");
    let mutating: Vec<&str> = new
        .keys()
        .filter(|(_, op, _)| cloud::calls::is_mutating(op))
        .map(|(_, op, _)| op.as_str())
        .collect();
    // Sorted by service: DynamoDB, ECS, EFS, Secrets Manager.
    assert_eq!(
        mutating,
        [
            "PutItem",
            "RegisterTaskDefinition",
            "RunTask",
            "CreateAccessPoint",
            "CreateSecret"
        ],
        "{new:?}"
    );
    let status_writes = new
        .get(&(
            "DynamoDB".to_owned(),
            "PutItem".to_owned(),
            "success".to_owned(),
        ))
        .copied();
    assert_eq!(
        status_writes,
        Some(3),
        "the access point's token before CreateAccessPoint, the launch attempt before RunTask, \
         then the end state"
    );
    assert_eq!(
        env.calls.mutating(),
        7,
        "one of each, three status writes: {new:?}"
    );
    assert_eq!(
        aws_calls(&new),
        BTreeMap::from([
            ("CreateAccessPoint", 1),
            ("CreateSecret", 1),
            ("DescribeSecret", 1),
            ("DescribeTaskDefinition", 1),
            ("GetRole", 1),
            ("ListTaskDefinitions", 1),
            ("ListTasks", 1),
            ("RegisterTaskDefinition", 1),
            ("RunTask", 1),
        ]),
        "no listing of the file system"
    );
    env.calls.reset();
    assert_eq!(env.reconcile(&id).await, Outcome::Converged);
    let converged = env.calls.snapshot();
    eprintln!("converged agent: {converged:?}");
    assert_eq!(env.calls.mutating(), 0);
    assert_eq!(
        aws_calls(&converged),
        BTreeMap::from([
            ("DescribeAccessPoints", 1),
            ("DescribeSecret", 1),
            ("DescribeTasks", 1),
            ("GetRole", 1),
            ("ListTaskDefinitions", 1),
            ("ListTasks", 1),
        ]),
        "the access point by the id in the status"
    );
}

#[tokio::test]
async fn a_new_agent_gets_its_own_role_scoped_to_its_access_point_and_loses_it_on_delete() {
    let env = env_with(true).await;
    let id = local_aws::unique("role");
    let spec = agent(&id);
    env.store.apply(&spec, "cli").await.unwrap();
    env.converge(&id).await;
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;
    assert_eq!(env.converge(&id).await, Outcome::Converged);

    let name = spec::render::role_name(&env.settings, &id);
    let role = env.iam.get_role().role_name(&name).send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.path(), spec::render::role_path(&env.settings));
    let spec::render::TaskRole::PerAgent {
        permissions_boundary,
    } = &env.settings.task_role
    else {
        unreachable!("per-agent settings")
    };
    assert_eq!(
        role.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(permissions_boundary.as_str())
    );
    let tags: BTreeMap<&str, &str> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags.get("clawfleet:agent-id"), Some(&id.as_str()));
    assert_eq!(tags.get("clawfleet:client-id"), Some(&"acme"));

    let observed = env.observed(&id).await;
    let ap_arn = observed.access_points[0].arn.clone();
    let policy = observed
        .role
        .as_ref()
        .and_then(|r| r.details.as_ref())
        .and_then(|d| d.policy.clone())
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        policy["Statement"][0]["Condition"]["ArnEquals"]["elasticfilesystem:AccessPointArn"],
        serde_json::Value::String(ap_arn)
    );
    assert_eq!(
        observed
            .latest_revision
            .as_ref()
            .and_then(|r| r.content.task_role_arn.as_deref()),
        Some(role.arn()),
        "the revision names the agent's own role"
    );

    // A widened policy is put back on the next reconcile.
    env.iam
        .put_role_policy()
        .role_name(&name)
        .policy_name(spec::render::ROLE_POLICY_NAME)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let observed = env.observed(&id).await;
    let restored = observed
        .role
        .and_then(|r| r.details)
        .and_then(|d| d.policy)
        .unwrap();
    assert!(!restored.contains("\"*\""), "{restored}");

    env.store
        .request_deletion(&id, &spec::now_rfc3339(), false)
        .await
        .unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Deleted);
    assert!(
        env.iam.get_role().role_name(&name).send().await.is_err(),
        "the role is gone"
    );
}

#[tokio::test]
async fn an_untagged_role_under_the_installations_path_is_never_touched() {
    let env = env_with(true).await;
    let id = local_aws::unique("stray");
    let name = spec::render::role_name(&env.settings, &id);
    env.iam
        .create_role()
        .role_name(&name)
        .path(spec::render::role_path(&env.settings))
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    // No spec: an orphan by name, but nothing says it is clawfleet's.
    let outcome = env.reconcile(&id).await;
    assert!(
        matches!(outcome, Outcome::Converged | Outcome::Deleted),
        "{outcome:?}"
    );
    assert!(
        env.iam.get_role().role_name(&name).send().await.is_ok(),
        "left alone"
    );
}

#[tokio::test]
async fn a_client_id_edited_in_the_console_moves_nothing_to_the_tenant_it_names() {
    let env = env_with(true).await;
    let id = local_aws::unique("moved");
    env.store.apply(&agent(&id), "cli").await.unwrap();
    env.converge(&id).await;
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let before = env.observed(&id).await;
    let task = env.live_tasks(&id).await;
    assert_eq!(task.len(), 1);

    // A person types another tenant into the spec item, in the console.
    let config = local_aws::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&config)
        .update_item()
        .table_name(env.store.table())
        .key("agent_id", AttributeValue::S(id.clone()))
        .key("record", AttributeValue::S("spec".into()))
        .update_expression("SET client_id = :other")
        .expression_attribute_values(":other", AttributeValue::S("globex".into()))
        .send()
        .await
        .unwrap();
    env.calls.reset();
    let outcome = env.reconcile(&id).await;
    assert!(
        matches!(&outcome, Outcome::WaitingOnOwner(m) if m.starts_with("client_id:")),
        "{outcome:?}"
    );
    assert_eq!(
        env.calls
            .total(|service, op| service != "DynamoDB" && cloud::calls::is_mutating(op)),
        0,
        "nothing created, re-tagged or stopped: {:?}",
        env.calls.snapshot()
    );
    let after = env.observed(&id).await;
    assert_eq!(
        after.secret, before.secret,
        "the secret keeps its tenant's tags"
    );
    assert_eq!(after.access_points, before.access_points);
    assert_eq!(after.role, before.role);
    assert_eq!(
        env.live_tasks(&id).await,
        task,
        "the same task keeps running"
    );
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    assert_eq!(status.client_id.as_deref(), Some("acme"));
    let valid = status.condition(spec::ConditionKind::SpecValid).unwrap();
    assert_eq!(valid.status, spec::ConditionStatus::False);
    assert!(valid.message.contains("client_id"), "{}", valid.message);
}

#[tokio::test]
async fn another_installation_in_the_account_never_touches_this_ones_agents() {
    let env = env_with(true).await;
    let id = local_aws::unique("ours");
    env.store.apply(&agent(&id), "cli").await.unwrap();
    env.converge(&id).await;
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let before = env.observed(&id).await;
    let tagged = |tags: &BTreeMap<String, String>| {
        tags.get(tag::INSTALLATION) == Some(&env.settings.installation)
    };
    assert!(before.access_points.iter().all(|a| tagged(&a.tags)));
    assert!(before.secret.as_ref().is_some_and(|s| tagged(&s.tags)));
    assert!(before.tasks.iter().all(|t| tagged(&t.tags)));

    // The other installation: same account, cluster, file system and prefix, its own table,
    // which holds no such agent. To it, the agent would be an orphan, if it were its own.
    let theirs = Settings {
        installation: local_aws::unique("other"),
        ..env.settings.clone()
    };
    let config = local_aws::sdk_config().await;
    let other = Env {
        cloud: RealCloud {
            aws: Aws::new(&config, &theirs),
            settings: theirs.clone(),
        },
        settings: theirs,
        store: Store::new(
            aws_sdk_dynamodb::Client::new(&config),
            local_aws::unique("other"),
        ),
        ..env_with(true).await
    };
    other.store.bootstrap().await.unwrap();
    let fleet = other
        .cloud
        .aws
        .observe_fleet(
            &env.template_name,
            &other.settings,
            &cloud::Recorded::default(),
        )
        .await
        .unwrap();
    assert!(
        fleet
            .agents
            .get(&id)
            .is_none_or(|a| !a.claimed_by(&other.settings.installation)),
        "not claimed by the other installation"
    );
    assert!(other.observed(&id).await.access_points.is_empty());
    // Even asked to reconcile it directly, it finds nothing of its own and removes nothing.
    other.reconcile(&id).await;
    let after = env.observed(&id).await;
    assert_eq!(after.access_points, before.access_points);
    assert_eq!(after.secret, before.secret);
    assert_eq!(after.role, before.role);
    assert_eq!(env.live_tasks(&id).await.len(), 1);
}

#[tokio::test]
async fn the_role_of_an_agent_deleted_in_the_console_is_collected_with_its_resources() {
    let env = env_with(true).await;
    let id = local_aws::unique("orphan");
    let mut spec = agent(&id);
    spec.secret_keys.clear();
    env.store.apply(&spec, "cli").await.unwrap();
    assert_eq!(env.converge(&id).await, Outcome::Converged);
    let name = render::role_name(&env.settings, &id);
    assert!(env.iam.get_role().role_name(&name).send().await.is_ok());

    // Both items deleted by hand: only the tags say whose the resources were.
    let config = local_aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    for record in ["spec", "status"] {
        dynamodb
            .delete_item()
            .table_name(env.store.table())
            .key("agent_id", AttributeValue::S(id.clone()))
            .key("record", AttributeValue::S(record.into()))
            .send()
            .await
            .unwrap();
    }
    // The resync files the role by its name under the installation's path, as an orphan.
    let fleet = env
        .cloud
        .aws
        .observe_fleet(
            &env.template_name,
            &env.settings,
            &cloud::Recorded::default(),
        )
        .await
        .unwrap();
    assert!(fleet.agent(&id).role.is_some(), "listed under the path");
    for _ in 0..6 {
        if env.reconcile(&id).await == Outcome::Converged
            && env.iam.get_role().role_name(&name).send().await.is_err()
        {
            break;
        }
    }
    assert!(
        env.iam.get_role().role_name(&name).send().await.is_err(),
        "the orphan's role is collected"
    );
    assert!(env.observed(&id).await.access_points.is_empty());
}

#[tokio::test]
async fn calls_of_one_reconcile_with_a_task_role_per_agent() {
    let env = env_with(true).await;
    let id = local_aws::unique("agent");
    let mut spec = agent(&id);
    spec.secret_keys.clear();
    env.store.apply(&spec, "cli").await.unwrap();
    env.calls.reset();
    assert_eq!(env.reconcile(&id).await, Outcome::Converged);
    let new = env.calls.snapshot();
    eprintln!("new agent: {new:?}");
    let mutating: Vec<&str> = new
        .keys()
        .filter(|(_, op, _)| cloud::calls::is_mutating(op))
        .map(|(_, op, _)| op.as_str())
        .collect();
    // Sorted by service: DynamoDB, ECS, EFS, IAM, Secrets Manager.
    assert_eq!(
        mutating,
        [
            "PutItem",
            "RegisterTaskDefinition",
            "RunTask",
            "CreateAccessPoint",
            "CreateRole",
            "PutRolePolicy",
            "CreateSecret"
        ],
        "{new:?}"
    );
    assert_eq!(
        env.calls.mutating(),
        9,
        "one of each, three status writes: {new:?}"
    );
    env.calls.reset();
    assert_eq!(env.reconcile(&id).await, Outcome::Converged);
    let converged = env.calls.snapshot();
    eprintln!("converged agent: {converged:?}");
    assert_eq!(env.calls.mutating(), 0, "{converged:?}");
    let iam_reads: u64 = converged
        .iter()
        .filter(|((service, _, _), _)| service == "IAM")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(iam_reads, 2, "GetRole and GetRolePolicy: {converged:?}");
}

/// Today's weekday in UTC as schedules spell it, `ahead` days on.
fn weekday(ahead: i64) -> String {
    let days = time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 + ahead;
    // 1970-01-01 was a Thursday.
    ["thu", "fri", "sat", "sun", "mon", "tue", "wed"][usize::try_from(days.rem_euclid(7)).unwrap()]
        .to_owned()
}

fn scheduled(agent_id: &str, days: &[String], start: &str, end: &str) -> AgentSpec {
    let mut document = plan::fixtures::document_of(agent_id);
    document.schedule = Some(spec::schedule::ScheduleDocument {
        timezone: "UTC".into(),
        windows: vec![spec::schedule::WindowDocument {
            days: days.to_vec(),
            start: start.into(),
            end: end.into(),
        }],
    });
    document.validate().unwrap()
}

#[tokio::test]
async fn an_agent_outside_its_window_has_no_task_and_is_looked_at_again_when_it_opens() {
    let env = env().await;
    let id = local_aws::unique("sched");
    let spec = scheduled(&id, &[weekday(3)], "10:00", "11:00");
    env.store.apply(&spec, "cli").await.unwrap();
    env.converge(&id).await;
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;
    let outcome = env.converge(&id).await;
    let before = time::OffsetDateTime::now_utc().unix_timestamp();

    assert!(
        env.live_tasks(&id).await.is_empty(),
        "no task outside the window"
    );
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    assert_eq!(status.phase, Phase::Scheduled);
    let ready = status.condition(spec::ConditionKind::Ready).unwrap();
    assert_eq!(ready.reason, "OutsideSchedule");
    let next_start = status
        .next_start_at
        .as_deref()
        .and_then(spec::parse_rfc3339)
        .expect("next_start_at in the status")
        .unix_timestamp();
    assert!(
        status
            .next_start_at
            .as_deref()
            .unwrap()
            .ends_with("T10:00:00Z")
    );
    // The requeue lands at the window's opening less this agent's lead.
    let lead = spec::lifecycle::lead_for(&id, env.settings.schedule_lead_secs);
    let Outcome::Revisit(after) = outcome else {
        panic!("expected a revisit, got {outcome:?}");
    };
    let due = before + i64::try_from(after).unwrap();
    assert!(
        (due - (next_start - lead)).abs() <= 2,
        "revisit at {due}, window opens at {next_start} with a lead of {lead}"
    );
}

#[tokio::test]
async fn an_agent_inside_its_window_has_one_task() {
    let env = env().await;
    let id = local_aws::unique("sched");
    let every_day: Vec<String> = (0..7).map(weekday).collect();
    let spec = scheduled(&id, &every_day, "00:00", "24:00");
    env.store.apply(&spec, "cli").await.unwrap();
    env.converge(&id).await;
    set_secret_keys(&env, &id, &["OPENAI_API_KEY"]).await;
    let outcome = env.converge(&id).await;
    assert!(matches!(outcome, Outcome::Revisit(_)), "{outcome:?}");
    assert_eq!(env.live_tasks(&id).await.len(), 1);
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.next_start_at, None);
}

// Purge on delete. moto runs no container: a task stays RUNNING until StopTask, and every
// container of a stopped task reports `exitCode` 0. So here the purge "finishes" by StopTask
// and succeeds; the non-zero exit code path (Warning event, access point kept) is tested on the
// fake (`tests/purge.rs`).

fn agent_without_secrets(agent_id: &str) -> AgentSpec {
    spec::AgentDocument {
        secret_keys: Vec::new(),
        ..plan::fixtures::document_of(agent_id)
    }
    .validate()
    .unwrap()
}

#[tokio::test]
async fn delete_with_purge_runs_a_purge_task_on_the_agents_access_point_then_deletes_it() {
    let env = env().await;
    let id = local_aws::unique("agent");
    env.store
        .apply(&agent_without_secrets(&id), "cli")
        .await
        .unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Converged);
    let status = env.store.get(&id).await.unwrap().unwrap().status.unwrap();
    let access_point = status.access_point_id.clone().unwrap();

    env.store
        .request_deletion(&id, &spec::now_rfc3339(), true)
        .await
        .unwrap();
    let outcome = env.settle(&id).await;
    assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    let purges = env.purge_tasks(&id).await;
    assert_eq!(purges.len(), 1, "one purge task");
    let purge = &purges[0];
    assert_eq!(purge.started_by(), Some(format!("purge/{id}").as_str()));
    let revision = env
        .ecs
        .describe_task_definition()
        .task_definition(purge.task_definition_arn().unwrap())
        .send()
        .await
        .unwrap();
    let definition = revision.task_definition().unwrap();
    assert!(
        definition
            .family()
            .unwrap()
            .ends_with(&format!("_{id}_purge"))
    );
    let efs = definition.volumes()[0].efs_volume_configuration().unwrap();
    assert_eq!(
        efs.authorization_config().and_then(|a| a.access_point_id()),
        Some(access_point.as_str()),
        "the purge mounts the agent's own access point"
    );
    assert!(definition.container_definitions()[0].secrets().is_empty());
    assert_eq!(
        definition.container_definitions()[0].image(),
        Some(PURGE_IMAGE)
    );
    assert!(
        env.access_point_exists(&access_point).await,
        "kept while the purge runs"
    );

    // The purge task finishes (moto: StopTask; its container reports exit code 0).
    env.ecs
        .stop_task()
        .cluster(&env.settings.cluster)
        .task(purge.task_arn().unwrap())
        .reason("Essential container in task exited")
        .send()
        .await
        .unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Deleted);
    assert!(
        !env.access_point_exists(&access_point).await,
        "deleted after the purge"
    );
    assert!(env.store.get(&id).await.unwrap().is_none(), "items removed");
    let purge_revisions = env
        .ecs
        .list_task_definitions()
        .family_prefix(spec::purge::family(&env.settings, &id))
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(
        purge_revisions.task_definition_arns().is_empty(),
        "the purge revision is deregistered"
    );
}

#[tokio::test]
async fn delete_without_purge_leaves_no_purge_task() {
    let env = env().await;
    let id = local_aws::unique("agent");
    env.store
        .apply(&agent_without_secrets(&id), "cli")
        .await
        .unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Converged);
    env.store
        .request_deletion(&id, &spec::now_rfc3339(), false)
        .await
        .unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Deleted);
    assert!(env.purge_tasks(&id).await.is_empty());
}

/// A gate that lets every call through and records each with its priority.
#[derive(Debug, Default)]
struct RecordingGate(std::sync::Mutex<Vec<(&'static str, bool)>>);

impl RecordingGate {
    fn record(
        &self,
        operation: &'static str,
        low_priority: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), cloud::AwsError>> + Send + '_>>
    {
        self.0.lock().unwrap().push((operation, low_priority));
        Box::pin(async { Ok(()) })
    }
}

impl cloud::Gate for RecordingGate {
    fn pass<'a>(
        &'a self,
        _: &'static str,
        operation: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), cloud::AwsError>> + Send + 'a>>
    {
        self.record(operation, false)
    }
    fn pass_low_priority<'a>(
        &'a self,
        _: &'static str,
        operation: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), cloud::AwsError>> + Send + 'a>>
    {
        self.record(operation, true)
    }
    fn throttled(&self, _: &str, _: &str) {}
}

#[tokio::test]
async fn a_purge_revision_is_registered_at_low_priority_and_an_agents_revision_is_not() {
    let env = env().await;
    let gate = std::sync::Arc::new(RecordingGate::default());
    let shared: cloud::SharedGate = gate.clone();
    let cloud = RealCloud {
        aws: Aws::new(&local_aws::sdk_config().await, &env.settings).with_gate(&shared),
        settings: env.settings.clone(),
    };
    let (_, template) = cloud
        .aws
        .template(&env.template_name, &env.settings)
        .await
        .unwrap();
    let agent = render::TaskDefinition {
        family: format!("{}-agent", env.settings.installation),
        ..template.clone()
    };
    let purge = render::TaskDefinition {
        family: format!("{}-purge", env.settings.installation),
        ..template
    };
    cloud
        .register_task_definition(&agent, &BTreeMap::new())
        .await
        .unwrap();
    cloud
        .register_purge_task_definition(&purge, &BTreeMap::new())
        .await
        .unwrap();
    let registrations: Vec<(&str, bool)> = gate
        .0
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(operation, _)| *operation == "RegisterTaskDefinition")
        .collect();
    assert_eq!(
        registrations,
        [
            ("RegisterTaskDefinition", false),
            ("RegisterTaskDefinition", true)
        ],
        "the agent's revision at normal priority, the purge's behind it"
    );
}
