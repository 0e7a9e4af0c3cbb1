//! ECS reads: each function names the operation it calls.

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    DesiredStatus, SortOrder, TaskDefinitionField, TaskDefinitionStatus, TaskField,
};
use spec::render::{
    Container, ContainerOverride, EfsVolume, LogConfiguration, MountPoint, NameValue, Overrides,
    PortMapping, RuntimePlatform, SecretRef, TaskDefinition, Volume,
};

use crate::error::AwsError;
use crate::observed::{Task, TaskDefinitionRevision};
use crate::pages::all_pages;

/// DescribeTasks accepts at most this many ARNs per call.
pub const DESCRIBE_TASKS_BATCH: usize = 100;

/// ECS in one cluster.
#[derive(Debug, Clone)]
pub struct Ecs {
    client: Client,
    cluster: String,
}

fn err<E>(
    operation: &'static str,
) -> impl Fn(
    aws_sdk_ecs::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| AwsError::from_sdk("ECS", operation, &e)
}

impl Ecs {
    #[must_use]
    pub fn new(client: Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
        }
    }

    #[must_use]
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// DescribeTaskDefinition: `name` is a family (its latest ACTIVE revision), `family:rev`
    /// (pinned) or an ARN. `None` when ECS knows no such definition.
    ///
    /// # Errors
    /// Any other failure of DescribeTaskDefinition.
    pub async fn describe_task_definition(
        &self,
        name: &str,
    ) -> Result<Option<TaskDefinitionRevision>, AwsError> {
        let result = self
            .client
            .describe_task_definition()
            .task_definition(name)
            .include(TaskDefinitionField::Tags)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.task_definition.map(|td| revision(&td))),
            // ECS answers an unknown definition with ClientException "Unable to describe".
            Err(e) => {
                let e = AwsError::from_sdk("ECS", "DescribeTaskDefinition", &e);
                if e.has_code("ClientException") && e.message.contains("nable to describe") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// ListTaskDefinitions (ACTIVE, newest first, all pages). With a family, only that
    /// family's revisions (ECS matches `familyPrefix` as the whole family name).
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_task_definitions(
        &self,
        family: Option<&str>,
    ) -> Result<Vec<String>, AwsError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_task_definitions()
                .set_family_prefix(family.map(str::to_owned))
                .status(TaskDefinitionStatus::Active)
                .sort(SortOrder::Desc)
                .set_next_token(token)
                .send()
                .await
                .map_err(err("ListTaskDefinitions"))?;
            Ok((out.task_definition_arns.unwrap_or_default(), out.next_token))
        })
        .await
    }

    /// ListTasks with `startedBy` as its only filter, as ECS requires, all pages. ECS then
    /// lists tasks whose desired status is RUNNING; a stopped task is found by its ARN, which
    /// the status keeps (DescribeTasks shows stopped tasks for at least an hour).
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_tasks_started_by(&self, started_by: &str) -> Result<Vec<String>, AwsError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .started_by(started_by)
                .set_next_token(token)
                .send()
                .await
                .map_err(err("ListTasks"))?;
            Ok((out.task_arns.unwrap_or_default(), out.next_token))
        })
        .await
    }

    /// ListTasks of the whole cluster, desired status RUNNING then STOPPED, all pages.
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_tasks(&self) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let listed = all_pages(|token| {
                let status = status.clone();
                async move {
                    let out = self
                        .client
                        .list_tasks()
                        .cluster(&self.cluster)
                        .desired_status(status)
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(err("ListTasks"))?;
                    Ok((out.task_arns.unwrap_or_default(), out.next_token))
                }
            })
            .await?;
            arns.extend(listed);
        }
        Ok(arns)
    }

    /// DescribeTasks with tags, in batches of 100 ARNs. Unknown ARNs are simply absent.
    ///
    /// # Errors
    /// A failed batch.
    pub async fn describe_tasks(&self, arns: &[String]) -> Result<Vec<Task>, AwsError> {
        let mut tasks = Vec::new();
        let mut unique: Vec<&String> = arns.iter().collect();
        unique.sort();
        unique.dedup();
        for batch in unique.chunks(DESCRIBE_TASKS_BATCH) {
            let out = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(batch.iter().map(|a| (*a).clone()).collect()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(err("DescribeTasks"))?;
            tasks.extend(out.tasks.unwrap_or_default().iter().map(task));
        }
        Ok(tasks)
    }
}

fn tags(tags: &[aws_sdk_ecs::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn name_values(pairs: &[aws_sdk_ecs::types::KeyValuePair]) -> Vec<NameValue> {
    pairs
        .iter()
        .filter_map(|p| {
            Some(NameValue {
                name: p.name()?.to_owned(),
                value: p.value().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// An SDK task as observed data.
fn task(t: &aws_sdk_ecs::types::Task) -> Task {
    let overrides = t.overrides().map(|o| Overrides {
        cpu: o.cpu().unwrap_or_default().to_owned(),
        memory: o.memory().unwrap_or_default().to_owned(),
        container_overrides: o
            .container_overrides()
            .iter()
            .map(|c| ContainerOverride {
                name: c.name().unwrap_or_default().to_owned(),
                cpu: c.cpu(),
                memory: c.memory(),
                environment: name_values(c.environment()),
            })
            .collect(),
    });
    Task {
        arn: t.task_arn().unwrap_or_default().to_owned(),
        task_definition_arn: t.task_definition_arn().unwrap_or_default().to_owned(),
        last_status: t.last_status().unwrap_or_default().to_owned(),
        desired_status: t.desired_status().unwrap_or_default().to_owned(),
        started_by: t.started_by().map(str::to_owned),
        tags: tags(t.tags()),
        overrides,
        stopped_reason: t.stopped_reason().map(str::to_owned),
        stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
        started_at: t.started_at().or(t.created_at()).map(|d| d.secs()),
        stopped_at: t.stopped_at().map(|d| d.secs()),
    }
}

/// An SDK task definition as clawfleet's content type.
fn revision(td: &aws_sdk_ecs::types::TaskDefinition) -> TaskDefinitionRevision {
    let content = TaskDefinition {
        family: td.family().unwrap_or_default().to_owned(),
        task_role_arn: td.task_role_arn().map(str::to_owned),
        execution_role_arn: td.execution_role_arn().map(str::to_owned),
        network_mode: td.network_mode().map(|m| m.as_str().to_owned()),
        requires_compatibilities: td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        cpu: td.cpu().map(str::to_owned),
        memory: td.memory().map(str::to_owned),
        runtime_platform: td.runtime_platform().map(|p| RuntimePlatform {
            cpu_architecture: p.cpu_architecture().map(|a| a.as_str().to_owned()),
            operating_system_family: p.operating_system_family().map(|f| f.as_str().to_owned()),
        }),
        ephemeral_storage_gib: td.ephemeral_storage().map(|e| e.size_in_gib()),
        container_definitions: td.container_definitions().iter().map(container).collect(),
        volumes: td
            .volumes()
            .iter()
            .map(|v| Volume {
                name: v.name().unwrap_or_default().to_owned(),
                efs_volume_configuration: v.efs_volume_configuration().map(|e| EfsVolume {
                    file_system_id: e.file_system_id().to_owned(),
                    root_directory: e
                        .root_directory()
                        .filter(|d| !d.is_empty() && *d != "/")
                        .map(str::to_owned),
                    transit_encryption: e.transit_encryption().map(|t| t.as_str().to_owned()),
                    access_point_id: e
                        .authorization_config()
                        .and_then(|a| a.access_point_id())
                        .map(str::to_owned),
                    iam: e
                        .authorization_config()
                        .and_then(|a| a.iam())
                        .map(|i| i.as_str().to_owned()),
                }),
            })
            .collect(),
    };
    TaskDefinitionRevision {
        arn: td.task_definition_arn().unwrap_or_default().to_owned(),
        revision: td.revision(),
        content: content.normalized(),
    }
}

fn container(c: &aws_sdk_ecs::types::ContainerDefinition) -> Container {
    Container {
        name: c.name().unwrap_or_default().to_owned(),
        image: c.image().unwrap_or_default().to_owned(),
        essential: c.essential(),
        cpu: Some(c.cpu()).filter(|cpu| *cpu != 0),
        memory: c.memory(),
        memory_reservation: c.memory_reservation(),
        command: c.command().to_vec(),
        entry_point: c.entry_point().to_vec(),
        working_directory: c.working_directory().map(str::to_owned),
        user: c.user().map(str::to_owned),
        environment: name_values(c.environment()),
        secrets: c
            .secrets()
            .iter()
            .map(|s| SecretRef {
                name: s.name().to_owned(),
                value_from: s.value_from().to_owned(),
            })
            .collect(),
        mount_points: c
            .mount_points()
            .iter()
            .map(|m| MountPoint {
                source_volume: m.source_volume().unwrap_or_default().to_owned(),
                container_path: m.container_path().unwrap_or_default().to_owned(),
                read_only: m.read_only().unwrap_or(false),
            })
            .collect(),
        port_mappings: c
            .port_mappings()
            .iter()
            .filter_map(|p| {
                Some(PortMapping {
                    container_port: p.container_port()?,
                    protocol: p.protocol().map(|t| t.as_str().to_owned()),
                })
            })
            .collect(),
        log_configuration: c.log_configuration().map(|l| LogConfiguration {
            log_driver: l.log_driver().as_str().to_owned(),
            options: l
                .options()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }),
        stop_timeout: c.stop_timeout(),
        readonly_root_filesystem: c.readonly_root_filesystem(),
    }
}
