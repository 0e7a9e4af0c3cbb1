//! The AWS side of a reconcile, as a port: one method per AWS operation, so that tests can put
//! a fake that behaves like AWS (remembered tokens, lagging listings, lost responses) where moto
//! cannot. [`RealCloud`] is the adapter onto [`cloud::Aws`].

use std::collections::BTreeMap;

use cloud::{Aws, AwsError};
use plan::observed::{AccessPoint, AgentResources, Role, Secret, Task, TaskDefinitionRevision};
use spec::render::{self, RunTask, Settings, TaskDefinition};

/// One method per AWS operation (or, for `observe_agent`, per batch of reads).
#[allow(async_fn_in_trait)]
pub trait Cloud: Sync {
    /// Every resource of one agent (ListTasks, DescribeTasks, DescribeAccessPoints of
    /// `known_access_point` only, DescribeSecret, ListTaskDefinitions, DescribeTaskDefinition,
    /// GetRole, GetRolePolicy): nothing that grows with the fleet.
    async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        known_access_point: Option<&str>,
    ) -> Result<AgentResources, AwsError>;
    /// The agent's tasks alone (ListTasks, DescribeTasks), as `observe_agent` reads them: the
    /// poll of a reconcile waiting on a task's change of state.
    async fn observe_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<Vec<Task>, AwsError>;
    /// EFS DescribeAccessPoints of the whole file system, all pages, of this installation:
    /// only to settle a CreateAccessPoint whose answer was lost, since emulators ignore
    /// tokens and idempotency must not rest on the token alone.
    async fn describe_access_points(&self) -> Result<Vec<AccessPoint>, AwsError>;
    /// ECS DescribeTaskDefinition of a family's latest ACTIVE revision: the re-read before
    /// RegisterTaskDefinition, which has no idempotency token.
    async fn describe_task_definition(
        &self,
        family: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError>;
    /// Secrets Manager DescribeSecret.
    async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError>;
    /// EFS DescribeAccessPoints of one access point: the re-read before creating a new one
    /// when the status names one the listing does not show (lag, or deleted).
    async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError>;
    /// EFS CreateAccessPoint.
    async fn create_access_point(
        &self,
        request: &render::AccessPoint,
        token: &str,
    ) -> Result<AccessPoint, AwsError>;
    /// Secrets Manager CreateSecret.
    async fn create_secret(
        &self,
        request: &render::Secret,
        description: &str,
        value: &str,
    ) -> Result<Secret, AwsError>;
    /// Secrets Manager RestoreSecret.
    async fn restore_secret(&self, arn: &str) -> Result<(), AwsError>;
    /// ECS RegisterTaskDefinition.
    async fn register_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError>;
    /// ECS RegisterTaskDefinition of a purge revision, at low priority in the shared bucket.
    async fn register_purge_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        self.register_task_definition(definition, tags).await
    }
    /// The agent's data purge tasks (ListTasks by `startedBy` `purge/{agent_id}`,
    /// DescribeTasks, with `known_task` from the status) and its purge revisions' ARNs
    /// (ListTaskDefinitions of the purge family), newest first.
    async fn observe_purge(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<(Vec<Task>, Vec<String>), AwsError>;
    /// ECS RunTask.
    async fn run_task(&self, request: &RunTask, token: &str) -> Result<Task, AwsError>;
    /// ECS StopTask.
    async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError>;
    /// TagResource/UntagResource of the service the ARN names.
    async fn tag_resource(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError>;
    /// ECS DeregisterTaskDefinition.
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError>;
    /// Whether a DeregisterTaskDefinition would go out now without waiting behind the
    /// registrations it shares a bucket with (no call).
    fn deregistration_has_room(&self) -> bool {
        true
    }
    /// EFS DeleteAccessPoint.
    async fn delete_access_point(&self, id: &str) -> Result<(), AwsError>;
    /// Secrets Manager DeleteSecret with a recovery window.
    async fn delete_secret(&self, arn: &str, recovery_days: i64) -> Result<(), AwsError>;
    /// IAM GetRole and GetRolePolicy: the re-read when CreateRole says the name is taken.
    async fn get_role(&self, name: &str) -> Result<Option<Role>, AwsError>;
    /// IAM CreateRole, then PutRolePolicy.
    async fn create_role(&self, request: &render::Role) -> Result<Role, AwsError>;
    /// IAM PutRolePolicy.
    async fn put_role_policy(&self, name: &str, policy: &str) -> Result<(), AwsError>;
    /// IAM PutRolePermissionsBoundary.
    async fn put_role_permissions_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> Result<(), AwsError>;
    /// IAM DeleteRolePolicy, then DeleteRole.
    async fn delete_role(&self, name: &str) -> Result<(), AwsError>;
}

/// The real AWS, configured for one installation.
#[derive(Debug, Clone)]
pub struct RealCloud {
    pub aws: Aws,
    pub settings: Settings,
}

impl Cloud for RealCloud {
    async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError> {
        self.aws.efs.describe_access_point(id).await
    }
    async fn observe_agent(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
        known_access_point: Option<&str>,
    ) -> Result<AgentResources, AwsError> {
        self.aws
            .observe_agent(agent_id, known_task, known_access_point, &self.settings)
            .await
    }
    async fn observe_tasks(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<Vec<Task>, AwsError> {
        self.aws
            .observe_tasks(agent_id, known_task, &self.settings)
            .await
    }
    async fn describe_access_points(&self) -> Result<Vec<AccessPoint>, AwsError> {
        let mut listed = self.aws.efs.describe_access_points().await?;
        listed.retain(|a| render::of_installation(&a.tags, &self.settings));
        Ok(listed)
    }
    async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        self.aws.secrets.describe_secret(name).await
    }
    async fn describe_task_definition(
        &self,
        family: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        self.aws.ecs.describe_task_definition(family).await
    }
    async fn create_access_point(
        &self,
        request: &render::AccessPoint,
        token: &str,
    ) -> Result<AccessPoint, AwsError> {
        self.aws.efs.create_access_point(request, token).await
    }
    async fn create_secret(
        &self,
        request: &render::Secret,
        description: &str,
        value: &str,
    ) -> Result<Secret, AwsError> {
        self.aws
            .secrets
            .create_secret(request, description, value)
            .await
    }
    async fn restore_secret(&self, arn: &str) -> Result<(), AwsError> {
        self.aws.secrets.restore_secret(arn).await
    }
    async fn register_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        let revision = self
            .aws
            .ecs
            .register_task_definition(definition, tags)
            .await?;
        self.aws.remember(&revision);
        Ok(revision)
    }
    async fn register_purge_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        let revision = self
            .aws
            .ecs
            .low_priority()
            .register_task_definition(definition, tags)
            .await?;
        self.aws.remember(&revision);
        Ok(revision)
    }
    async fn observe_purge(
        &self,
        agent_id: &str,
        known_task: Option<&str>,
    ) -> Result<(Vec<Task>, Vec<String>), AwsError> {
        self.aws
            .observe_purge(agent_id, known_task, &self.settings)
            .await
    }
    async fn run_task(&self, request: &RunTask, token: &str) -> Result<Task, AwsError> {
        self.aws.ecs.run_task(request, token).await
    }
    async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError> {
        self.aws.ecs.stop_task(arn, reason).await
    }
    async fn tag_resource(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        if arn.contains(":iam::") {
            let name = arn.rsplit('/').next().unwrap_or(arn);
            self.aws.iam.tag_role(name, add, remove).await
        } else if arn.contains(":elasticfilesystem:") {
            let id = arn.rsplit('/').next().unwrap_or(arn);
            self.aws.efs.tag_resource(id, add, remove).await
        } else if arn.contains(":secretsmanager:") {
            self.aws.secrets.tag_resource(arn, add, remove).await
        } else {
            self.aws.ecs.tag_resource(arn, add, remove).await
        }
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        self.aws.ecs.deregister_task_definition(arn).await
    }
    fn deregistration_has_room(&self) -> bool {
        self.aws.ecs.deregistration_has_room()
    }
    async fn delete_access_point(&self, id: &str) -> Result<(), AwsError> {
        self.aws.efs.delete_access_point(id).await
    }
    async fn delete_secret(&self, arn: &str, recovery_days: i64) -> Result<(), AwsError> {
        self.aws.secrets.delete_secret(arn, recovery_days).await
    }
    async fn get_role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        self.aws.iam.get_role(name).await
    }
    async fn create_role(&self, request: &render::Role) -> Result<Role, AwsError> {
        self.aws.iam.create_role(request).await
    }
    async fn put_role_policy(&self, name: &str, policy: &str) -> Result<(), AwsError> {
        self.aws.iam.put_role_policy(name, policy).await
    }
    async fn put_role_permissions_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> Result<(), AwsError> {
        self.aws
            .iam
            .put_role_permissions_boundary(name, boundary)
            .await
    }
    async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        self.aws.iam.delete_role(name).await
    }
}
