//! The one-off task that erases a deleted agent's files before its access point goes: its own
//! revision (RunTask overrides can change neither the image nor the volumes), mounting the
//! agent's access point with the agent's task role, no secrets, the agents' private
//! networking, and `startedBy` `purge/{agent_id}` so that nothing takes it for the agent.

use std::collections::BTreeMap;

use crate::render::{
    self, Container, EfsVolume, MountPoint, Overrides, RunTask, Settings, TaskDefinition,
    TemplateError, Volume, WORKSPACE_VOLUME, tag,
};

/// `--purge-timeout`'s default: an hour, far beyond what deleting one agent's memory takes,
/// short enough that a stuck purge is seen the same day.
pub const DEFAULT_TIMEOUT_SECS: i64 = 3600;

/// The purge revision's one container; its exit code says whether the purge worked.
pub const CONTAINER: &str = "purge";

/// Where the purge container mounts the agent's access point.
pub const MOUNT_PATH: &str = "/purge";

/// Removes everything under the mount, dotfiles included (`find` visits every entry, depth
/// first with `-delete`), then fails unless the directory is really empty: exit code 0 means
/// purged, whatever the image's shell and `find` are.
pub const COMMAND: &str = "find /purge -mindepth 1 -delete && test -z \"$(ls -A /purge)\"";

/// Fargate's smallest task: the purge only walks a directory.
const CPU: &str = "256";
const MEMORY: &str = "512";

/// The family of an agent's purge revisions: the agent's family with `_purge`, which no agent
/// family can be (agent ids have no '_').
#[must_use]
pub fn family(settings: &Settings, agent_id: &str) -> String {
    format!("{}_purge", render::family(settings, agent_id))
}

/// The agent whose purge revisions a family holds.
#[must_use]
pub fn agent_of_family<'a>(settings: &Settings, family: &'a str) -> Option<&'a str> {
    render::agent_of_family(settings, family.strip_suffix("_purge")?)
}

/// The `startedBy` of an agent's purge tasks. Not the agent's (`clawfleet/{id}`), so the
/// agent's ListTasks never returns it.
#[must_use]
pub fn started_by(agent_id: &str) -> String {
    format!("purge/{agent_id}")
}

/// The agent a purge task's `startedBy` names.
#[must_use]
pub fn agent_of_started_by(started_by: &str) -> Option<&str> {
    started_by
        .strip_prefix("purge/")
        .filter(|a| crate::is_label(a))
}

/// Why a configured purge image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "--purge-image {0}: must be pinned by digest (NAME@sha256:<64 hex digits>), so every purge runs the image that was reviewed"
    )]
    NotPinned(String),
}

/// Checks that `image` is pinned by digest.
///
/// # Errors
/// [`ImageError::NotPinned`].
pub fn check_image(image: &str) -> Result<(), ImageError> {
    let pinned = image.split_once("@sha256:").is_some_and(|(name, digest)| {
        !name.is_empty()
            && digest.len() == 64
            && digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if pinned {
        Ok(())
    } else {
        Err(ImageError::NotPinned(image.to_owned()))
    }
}

/// What the purge revision and task carry: the identity tags, the installation and the
/// agent's cost tags, like every other resource clawfleet owns for the agent.
#[must_use]
pub fn tags(
    agent_id: &str,
    client_id: &str,
    cost_tags: &BTreeMap<String, String>,
    settings: &Settings,
) -> BTreeMap<String, String> {
    let mut tags = cost_tags.clone();
    tags.extend(render::identity_tags(agent_id, client_id));
    tags.insert(tag::INSTALLATION.to_owned(), settings.installation.clone());
    tags
}

/// The purge revision: the template's roles, networking mode and platform, one container
/// running [`COMMAND`] from `image` with the agent's access point mounted (transit encryption
/// and IAM authorization on, as for the agent), no secrets and no environment. The log
/// configuration is the agent container's, so the purge's output lands where on-call looks.
///
/// # Errors
/// A template that cannot produce agent revisions.
pub fn definition(
    template: &TaskDefinition,
    settings: &Settings,
    agent_id: &str,
    access_point_id: &str,
    task_role_arn: Option<&str>,
    image: &str,
) -> Result<TaskDefinition, TemplateError> {
    template.check_template(settings)?;
    let log_configuration = template
        .container_definitions
        .iter()
        .find(|c| c.name == settings.container)
        .and_then(|c| c.log_configuration.clone());
    Ok(TaskDefinition {
        family: family(settings, agent_id),
        task_role_arn: task_role_arn
            .map(str::to_owned)
            .or_else(|| template.task_role_arn.clone()),
        execution_role_arn: template.execution_role_arn.clone(),
        network_mode: template.network_mode.clone(),
        requires_compatibilities: template.requires_compatibilities.clone(),
        cpu: Some(CPU.to_owned()),
        memory: Some(MEMORY.to_owned()),
        runtime_platform: template.runtime_platform.clone(),
        ephemeral_storage_gib: None,
        container_definitions: vec![Container {
            name: CONTAINER.to_owned(),
            image: image.to_owned(),
            essential: Some(true),
            entry_point: vec!["sh".to_owned(), "-c".to_owned()],
            command: vec![COMMAND.to_owned()],
            mount_points: vec![MountPoint {
                source_volume: WORKSPACE_VOLUME.to_owned(),
                container_path: MOUNT_PATH.to_owned(),
                read_only: false,
            }],
            log_configuration,
            ..Container::default()
        }],
        volumes: vec![Volume {
            name: WORKSPACE_VOLUME.to_owned(),
            efs_volume_configuration: Some(EfsVolume {
                file_system_id: settings.file_system_id.clone(),
                root_directory: None,
                transit_encryption: Some("ENABLED".to_owned()),
                access_point_id: Some(access_point_id.to_owned()),
                iam: Some("ENABLED".to_owned()),
            }),
        }],
    }
    .normalized())
}

/// The purge RunTask: the agents' cluster, private subnets and security groups, no public
/// IP, `startedBy` [`started_by`], and the purge attempt as the launch-attempt tag.
#[must_use]
pub fn run_task(
    settings: &Settings,
    agent_id: &str,
    definition_arn: &str,
    mut tags: BTreeMap<String, String>,
    attempt: u64,
) -> RunTask {
    tags.insert(tag::LAUNCH_ATTEMPT.to_owned(), attempt.to_string());
    RunTask {
        cluster: settings.cluster.clone(),
        task_definition: definition_arn.to_owned(),
        launch_type: "FARGATE".to_owned(),
        started_by: started_by(agent_id),
        subnets: settings.subnets.clone(),
        security_groups: settings.security_groups.clone(),
        assign_public_ip: "DISABLED".to_owned(),
        overrides: Overrides {
            cpu: CPU.to_owned(),
            memory: MEMORY.to_owned(),
            container_overrides: Vec::new(),
        },
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> TaskDefinition {
        TaskDefinition {
            family: "openclaw-agent".into(),
            task_role_arn: Some("arn:aws:iam::1:role/template".into()),
            execution_role_arn: Some("arn:aws:iam::1:role/exec".into()),
            network_mode: Some("awsvpc".into()),
            requires_compatibilities: vec!["FARGATE".into()],
            container_definitions: vec![Container {
                name: "agent".into(),
                image: "openclaw/agent:1".into(),
                secrets: vec![render::SecretRef {
                    name: "KEY".into(),
                    value_from: "arn:secret:KEY::".into(),
                }],
                ..Container::default()
            }],
            ..TaskDefinition::default()
        }
    }

    #[test]
    fn only_images_pinned_by_digest_are_accepted() {
        let digest = "a".repeat(64);
        assert!(
            check_image(&format!(
                "public.ecr.aws/docker/library/busybox@sha256:{digest}"
            ))
            .is_ok()
        );
        for bad in [
            "busybox:1.36".to_owned(),
            "busybox@sha256:abc".to_owned(),
            format!("@sha256:{digest}"),
            format!("busybox@sha256:{}", "G".repeat(64)),
        ] {
            assert!(check_image(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_purge_revision_mounts_the_agents_access_point_with_its_role_and_no_secrets() {
        let settings = Settings::new("dev", "fs-1");
        let def = definition(
            &template(),
            &settings,
            "acme-support",
            "fsap-9",
            Some("arn:aws:iam::1:role/agent-acme-support"),
            "busybox@sha256:0",
        )
        .unwrap();
        assert_eq!(def.family, "clawfleet_dev_acme-support_purge");
        assert_eq!(
            def.task_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/agent-acme-support")
        );
        assert_eq!(def.container_definitions.len(), 1);
        let c = &def.container_definitions[0];
        assert!(c.secrets.is_empty() && c.environment.is_empty());
        assert_eq!(c.mount_points[0].container_path, MOUNT_PATH);
        let volume = def.volumes[0].efs_volume_configuration.as_ref().unwrap();
        assert_eq!(volume.access_point_id.as_deref(), Some("fsap-9"));
        assert_eq!(volume.iam.as_deref(), Some("ENABLED"));
        // No agent family, no template: nothing takes the purge revision for the agent's.
        assert_eq!(render::agent_of_family(&settings, &def.family), None);
        assert_eq!(
            agent_of_family(&settings, &def.family),
            Some("acme-support")
        );
    }

    #[test]
    fn the_purge_task_is_started_by_purge_and_never_by_the_agent() {
        let settings = Settings::new("dev", "fs-1");
        let run = run_task(&settings, "acme-support", "arn:td", BTreeMap::new(), 3);
        assert_eq!(run.started_by, "purge/acme-support");
        assert_ne!(run.started_by, render::started_by("acme-support"));
        assert_eq!(agent_of_started_by(&run.started_by), Some("acme-support"));
        assert_eq!(run.assign_public_ip, "DISABLED");
        assert_eq!(
            run.tags.get(tag::LAUNCH_ATTEMPT).map(String::as_str),
            Some("3")
        );
    }
}
