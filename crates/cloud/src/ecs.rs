//! ECS: the reads (ListTasks, DescribeTasks, DescribeTaskDefinition, ListTaskDefinitions) and the
//! writes (RegisterTaskDefinition, RunTask, StopTask, TagResource, DeregisterTaskDefinition)
//! clawfleet makes; each function names the operation it calls.

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    DesiredStatus, SortOrder, TaskDefinitionField, TaskDefinitionStatus, TaskField,
};
use spec::render::{
    self, Container, ContainerOverride, EfsVolume, LogConfiguration, MountPoint, NameValue,
    Overrides, PortMapping, RuntimePlatform, SecretRef, TaskDefinition, Volume,
};

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};
use crate::pages::all_pages;
use plan::observed::{Task, TaskDefinitionRevision};

/// DescribeTasks accepts at most this many ARNs per call.
pub const DESCRIBE_TASKS_BATCH: usize = 100;

/// ECS in one cluster.
#[derive(Debug, Clone)]
pub struct Ecs {
    client: Client,
    cluster: String,
    gate: SharedGate,
}

impl Ecs {
    #[must_use]
    pub fn new(client: Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
            gate: crate::gate::open(),
        }
    }

    /// The same, every call passing `gate`.
    #[must_use]
    pub fn with_gate(self, gate: SharedGate) -> Self {
        let config = self
            .client
            .config()
            .to_builder()
            .interceptor(crate::gate::ThrottleFeedback::new(gate.clone(), "ECS"))
            .build();
        Self {
            client: Client::from_conf(config),
            gate,
            ..self
        }
    }

    /// The same client, every call passing the gate at low priority: a purge revision of a
    /// deleted agent yields to the revisions new agents wait for in the shared
    /// RegisterTaskDefinition bucket.
    #[must_use]
    pub fn low_priority(&self) -> Self {
        Self {
            gate: std::sync::Arc::new(crate::gate::LowPriority(self.gate.clone())),
            ..self.clone()
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
            .through(&*self.gate, "ECS", "DescribeTaskDefinition")
            .await;
        match result {
            Ok(out) => Ok(out.task_definition.map(|td| revision(&td))),
            // ECS answers an unknown definition with ClientException "Unable to describe".
            Err(e) => {
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
                .through(&*self.gate, "ECS", "ListTaskDefinitions")
                .await?;
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
                .through(&*self.gate, "ECS", "ListTasks")
                .await?;
            Ok((out.task_arns.unwrap_or_default(), out.next_token))
        })
        .await
    }

    /// ListTasks of the whole cluster, desired status RUNNING, all pages: what the resync lists;
    /// a stopped task is described by the ARN its agent's status keeps.
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_running_tasks(&self) -> Result<Vec<String>, AwsError> {
        all_pages(|token| async move {
            let out = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .desired_status(DesiredStatus::Running)
                .set_next_token(token)
                .send()
                .through(&*self.gate, "ECS", "ListTasks")
                .await?;
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
                        .through(&*self.gate, "ECS", "ListTasks")
                        .await?;
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
                .through(&*self.gate, "ECS", "DescribeTasks")
                .await?;
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
        container_health: t
            .containers()
            .iter()
            .filter_map(|c| Some((c.name()?.to_owned(), c.health_status()?.as_str().to_owned())))
            .collect(),
        exit_codes: t
            .containers()
            .iter()
            .filter_map(|c| Some((c.name()?.to_owned(), c.exit_code()?)))
            .collect(),
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
        content: std::sync::Arc::new(content.normalized()),
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
        health_check: c.health_check().map(|h| spec::render::HealthCheck {
            command: h.command().to_vec(),
            interval: h.interval(),
            timeout: h.timeout(),
            retries: h.retries(),
            start_period: h.start_period(),
        }),
        init_process_enabled: c.linux_parameters().and_then(|l| l.init_process_enabled()),
    }
}

/// Writes. Each names its operation; retries and rate limits are the caller's (one place).
impl Ecs {
    /// RegisterTaskDefinition of a rendered definition, with tags.
    ///
    /// # Errors
    /// A refused definition (terminal) or a failed call.
    pub async fn register_task_definition(
        &self,
        definition: &TaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<TaskDefinitionRevision, AwsError> {
        use aws_sdk_ecs::types as t;
        let bad = |what: &str, e: &dyn std::fmt::Display| AwsError {
            service: "ECS",
            operation: "RegisterTaskDefinition",
            code: None,
            message: format!("{what}: {e}"),
            class: crate::ErrorClass::Terminal,
        };
        let mut containers = Vec::new();
        for c in &definition.container_definitions {
            let mut b = t::ContainerDefinition::builder()
                .name(&c.name)
                .image(&c.image)
                .set_essential(c.essential)
                .set_memory(c.memory)
                .set_memory_reservation(c.memory_reservation)
                .set_command((!c.command.is_empty()).then(|| c.command.clone()))
                .set_entry_point((!c.entry_point.is_empty()).then(|| c.entry_point.clone()))
                .set_working_directory(c.working_directory.clone())
                .set_user(c.user.clone())
                .set_stop_timeout(c.stop_timeout)
                .set_readonly_root_filesystem(c.readonly_root_filesystem);
            if let Some(cpu) = c.cpu {
                b = b.cpu(cpu);
            }
            for e in &c.environment {
                b = b.environment(
                    t::KeyValuePair::builder()
                        .name(&e.name)
                        .value(&e.value)
                        .build(),
                );
            }
            for s in &c.secrets {
                let secret = t::Secret::builder()
                    .name(&s.name)
                    .value_from(&s.value_from)
                    .build()
                    .map_err(|e| bad("secrets", &e))?;
                b = b.secrets(secret);
            }
            for m in &c.mount_points {
                b = b.mount_points(
                    t::MountPoint::builder()
                        .source_volume(&m.source_volume)
                        .container_path(&m.container_path)
                        .read_only(m.read_only)
                        .build(),
                );
            }
            for p in &c.port_mappings {
                b = b.port_mappings(
                    t::PortMapping::builder()
                        .container_port(p.container_port)
                        .set_protocol(p.protocol.as_deref().map(t::TransportProtocol::from))
                        .build(),
                );
            }
            if let Some(h) = &c.health_check {
                b = b.health_check(
                    t::HealthCheck::builder()
                        .set_command(Some(h.command.clone()))
                        .set_interval(h.interval)
                        .set_timeout(h.timeout)
                        .set_retries(h.retries)
                        .set_start_period(h.start_period)
                        .build()
                        .map_err(|e| bad("healthCheck", &e))?,
                );
            }
            if let Some(init) = c.init_process_enabled {
                b = b.linux_parameters(
                    t::LinuxParameters::builder()
                        .init_process_enabled(init)
                        .build(),
                );
            }
            if let Some(l) = &c.log_configuration {
                let mut lb = t::LogConfiguration::builder()
                    .log_driver(t::LogDriver::from(l.log_driver.as_str()));
                for (k, v) in &l.options {
                    lb = lb.options(k, v);
                }
                b = b.log_configuration(lb.build().map_err(|e| bad("logConfiguration", &e))?);
            }
            containers.push(b.build());
        }
        let mut volumes = Vec::new();
        for v in &definition.volumes {
            let efs = match &v.efs_volume_configuration {
                Some(e) => Some(
                    t::EfsVolumeConfiguration::builder()
                        .file_system_id(&e.file_system_id)
                        .set_root_directory(e.root_directory.clone())
                        .set_transit_encryption(
                            e.transit_encryption
                                .as_deref()
                                .map(t::EfsTransitEncryption::from),
                        )
                        .authorization_config(
                            t::EfsAuthorizationConfig::builder()
                                .set_access_point_id(e.access_point_id.clone())
                                .set_iam(e.iam.as_deref().map(t::EfsAuthorizationConfigIam::from))
                                .build(),
                        )
                        .build()
                        .map_err(|err| bad("volumes", &err))?,
                ),
                None => None,
            };
            volumes.push(
                t::Volume::builder()
                    .name(&v.name)
                    .set_efs_volume_configuration(efs)
                    .build(),
            );
        }
        let tags: Vec<t::Tag> = tags
            .iter()
            .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
            .collect();
        let out = self
            .client
            .register_task_definition()
            .family(&definition.family)
            .set_task_role_arn(definition.task_role_arn.clone())
            .set_execution_role_arn(definition.execution_role_arn.clone())
            .set_network_mode(definition.network_mode.as_deref().map(t::NetworkMode::from))
            .set_requires_compatibilities(Some(
                definition
                    .requires_compatibilities
                    .iter()
                    .map(|c| t::Compatibility::from(c.as_str()))
                    .collect(),
            ))
            .set_cpu(definition.cpu.clone())
            .set_memory(definition.memory.clone())
            .set_runtime_platform(definition.runtime_platform.as_ref().map(|p| {
                t::RuntimePlatform::builder()
                    .set_cpu_architecture(
                        p.cpu_architecture.as_deref().map(t::CpuArchitecture::from),
                    )
                    .set_operating_system_family(
                        p.operating_system_family.as_deref().map(t::OsFamily::from),
                    )
                    .build()
            }))
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .set_tags((!tags.is_empty()).then_some(tags))
            // No retry inside the SDK: RegisterTaskDefinition has no token, so a retry after
            // a lost answer registers a second revision and spends the bucket it shares with
            // DeregisterTaskDefinition twice more (the register, then the cleanup). The
            // executor retries instead, after re-reading the family.
            .customize()
            .config_override(
                aws_sdk_ecs::config::Builder::default()
                    .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()),
            )
            .send()
            .through(&*self.gate, "ECS", "RegisterTaskDefinition")
            .await?;
        out.task_definition
            .as_ref()
            .map(revision)
            .ok_or_else(|| AwsError {
                service: "ECS",
                operation: "RegisterTaskDefinition",
                code: None,
                message: "the response carried no task definition".into(),
                class: crate::ErrorClass::Transient,
            })
    }

    /// RunTask of one agent task on Fargate, with the launch token.
    ///
    /// # Errors
    /// A failed call, or a launch ECS reported as a failure.
    pub async fn run_task(
        &self,
        request: &render::RunTask,
        client_token: &str,
    ) -> Result<Task, AwsError> {
        use aws_sdk_ecs::types as t;
        let network = t::NetworkConfiguration::builder()
            .awsvpc_configuration(
                t::AwsVpcConfiguration::builder()
                    .set_subnets(Some(request.subnets.clone()))
                    .set_security_groups(Some(request.security_groups.clone()))
                    .assign_public_ip(t::AssignPublicIp::from(request.assign_public_ip.as_str()))
                    .build()
                    .map_err(|e| AwsError {
                        service: "ECS",
                        operation: "RunTask",
                        code: None,
                        message: format!("networkConfiguration: {e}"),
                        class: crate::ErrorClass::Terminal,
                    })?,
            )
            .build();
        let mut overrides = t::TaskOverride::builder()
            .cpu(&request.overrides.cpu)
            .memory(&request.overrides.memory);
        for c in &request.overrides.container_overrides {
            let mut co = t::ContainerOverride::builder()
                .name(&c.name)
                .set_cpu(c.cpu)
                .set_memory(c.memory);
            for e in &c.environment {
                co = co.environment(
                    t::KeyValuePair::builder()
                        .name(&e.name)
                        .value(&e.value)
                        .build(),
                );
            }
            overrides = overrides.container_overrides(co.build());
        }
        let tags: Vec<t::Tag> = request
            .tags
            .iter()
            .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
            .collect();
        let out = self
            .client
            .run_task()
            .cluster(&request.cluster)
            .task_definition(&request.task_definition)
            .launch_type(t::LaunchType::from(request.launch_type.as_str()))
            .started_by(&request.started_by)
            .network_configuration(network)
            .overrides(overrides.build())
            .set_tags(Some(tags))
            .client_token(client_token)
            .count(1)
            .send()
            .through(&*self.gate, "ECS", "RunTask")
            .await?;
        if let Some(started) = out.tasks().first() {
            return Ok(task(started));
        }
        let reason = out
            .failures()
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    f.reason().unwrap_or("unknown"),
                    f.detail().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(AwsError {
            service: "ECS",
            operation: "RunTask",
            code: None,
            message: format!("no task started: {reason}"),
            // Capacity and placement failures pass; a bad request would have been an error.
            class: crate::ErrorClass::Transient,
        })
    }

    /// StopTask with a reason that ECS keeps as the task's stoppedReason.
    ///
    /// # Errors
    /// A failed call.
    pub async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), AwsError> {
        self.client
            .stop_task()
            .cluster(&self.cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .through(&*self.gate, "ECS", "StopTask")
            .await?;
        Ok(())
    }
}

impl Ecs {
    /// TagResource and UntagResource on a task (or any ECS ARN).
    ///
    /// # Errors
    /// A failed call.
    pub async fn tag_resource(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        if !add.is_empty() {
            let tags = add
                .iter()
                .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
                .collect();
            self.client
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags))
                .send()
                .through(&*self.gate, "ECS", "TagResource")
                .await?;
        }
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .through(&*self.gate, "ECS", "UntagResource")
                .await?;
        }
        Ok(())
    }

    /// Whether a DeregisterTaskDefinition would pass the gate now: it shares its bucket with
    /// the registrations new agents wait for.
    #[must_use]
    pub fn deregistration_has_room(&self) -> bool {
        self.gate.has_spare("ECS", "DeregisterTaskDefinition")
    }

    /// DeregisterTaskDefinition of one revision.
    ///
    /// # Errors
    /// A failed call.
    pub async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        self.client
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .through(&*self.gate, "ECS", "DeregisterTaskDefinition")
            .await?;
        Ok(())
    }
}
