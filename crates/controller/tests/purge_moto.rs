//! Purge on delete against moto: the purge task runs with the agent's access point, and the
//! access point goes only after it; a deletion without purge runs no purge task.
//!
//! moto runs no container: a task stays RUNNING until StopTask, and every container of a
//! stopped task reports `exitCode` 0. So here the purge "finishes" by StopTask (as
//! `tools/moto/crash.py` ends a task) and succeeds; a non-zero exit code cannot be made on
//! moto, and its path (Warning event, access point kept) is tested on the fake
//! (`tests/purge.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use cloud::Aws;
use controller::aws::RealCloud;
use controller::expectations::Expectations;
use controller::reconcile::{Outcome, Reconciler};
use spec::render::Settings;
use spec::{AgentDocument, AgentSpec};
use store::Store;

struct Env {
    settings: Settings,
    template_name: String,
    cloud: RealCloud,
    store: Store,
    ecs: aws_sdk_ecs::Client,
    efs: aws_sdk_efs::Client,
}

const IMAGE: &str = "public.ecr.aws/docker/library/busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222";

async fn env() -> Env {
    let name = local_aws::unique("purge");
    let vars = local_aws::dev_stack(&name);
    let settings = Settings {
        installation: name.clone(),
        subnets: vars["CLAWFLEET_SUBNETS"]
            .split(',')
            .map(str::to_owned)
            .collect(),
        security_groups: vec![vars["CLAWFLEET_SECURITY_GROUPS"].clone()],
        secret_prefix: format!("/{name}/agents/"),
        purge_image: Some(IMAGE.into()),
        ..Settings::new(
            &vars["CLAWFLEET_CLUSTER"],
            &vars["CLAWFLEET_FILE_SYSTEM_ID"],
        )
    };
    let config = local_aws::sdk_config().await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&config),
        local_aws::unique("purge"),
    );
    store.bootstrap().await.unwrap();
    Env {
        cloud: RealCloud {
            aws: Aws::new(&config, &settings),
            settings: settings.clone(),
        },
        template_name: vars["CLAWFLEET_TEMPLATE_TASK_DEFINITION"].clone(),
        settings,
        store,
        ecs: aws_sdk_ecs::Client::new(&config),
        efs: aws_sdk_efs::Client::new(&config),
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
            metrics: None,
        }
        .reconcile(agent_id, None)
        .await
        .unwrap()
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
}

fn agent(agent_id: &str) -> AgentSpec {
    AgentDocument {
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
    env.store.apply(&agent(&id), "cli").await.unwrap();
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
    assert_eq!(definition.container_definitions()[0].image(), Some(IMAGE));
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
    env.store.apply(&agent(&id), "cli").await.unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Converged);
    env.store
        .request_deletion(&id, &spec::now_rfc3339(), false)
        .await
        .unwrap();
    assert_eq!(env.settle(&id).await, Outcome::Deleted);
    assert!(env.purge_tasks(&id).await.is_empty());
}
