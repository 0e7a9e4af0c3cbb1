//! `clawfleet audit`: checks, read-only, that the live configuration isolates every agent
//! (docs/security.md, "clawfleet audit"). The rules are `plan::audit`'s; this module reads.
//!
//! AWS calls, for N agents (in the table or with a role under the installation's path) with one
//! role each, M mount targets and the execution role's P policies: 1 DescribeTaskDefinition
//! (template) + 1 DescribeFileSystems + 1 DescribeFileSystemPolicy + 1 DescribeMountTargets +
//! M DescribeMountTargetSecurityGroups + 1 EC2 DescribeSecurityGroups + the execution role's
//! GetRole, ListRolePolicies, ListAttachedRolePolicies, one GetRolePolicy per inline policy and
//! GetPolicy + GetPolicyVersion per attached one + DescribeAccessPoints (all pages) + ⌈N/1000⌉
//! ListRoles + per agent 1 DescribeTaskDefinition and 4 IAM reads (GetRole, ListRolePolicies,
//! GetRolePolicy, ListAttachedRolePolicies), plus the table's Scan: about 5N + 10, one at a time.

use std::collections::BTreeSet;

use cloud::{Aws, AwsError, Calls, Ec2};
use plan::audit::{Agent, Observed, SecurityGroup};
use spec::render::{self, Settings, TaskRole};
use store::Store;

use crate::failure::{Exit, Failure};

fn aws_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Aws(e.to_string())
}

/// Prints one line per finding; exit 0 when there is none, 1 otherwise, 2 when a read failed.
pub async fn run(
    store: &Store,
    config: &aws_config::SdkConfig,
    settings: &Settings,
    template: &str,
) -> Result<Exit, Failure> {
    let calls = Calls::default();
    let aws = Aws::counted(config, settings, &calls);
    let ec2 = Ec2::new(config, &calls);
    let observed = read(store, &aws, &ec2, settings, template).await?;
    let findings = plan::audit::audit(settings, &observed);
    for finding in &findings {
        println!("{finding}");
    }
    tracing::info!(
        calls = calls.total(|_, _| true),
        findings = findings.len(),
        "audit done"
    );
    Ok(if findings.is_empty() {
        Exit::Success
    } else {
        Exit::NotAsItShouldBe
    })
}

/// Everything the rules look at.
async fn read(
    store: &Store,
    aws: &Aws,
    ec2: &Ec2,
    settings: &Settings,
    template: &str,
) -> Result<Observed, Failure> {
    let (_, template) = aws
        .template(template, settings)
        .await
        .map_err(aws_failure)?;
    let file_system_arn = aws
        .efs
        .describe_file_system_arn()
        .await
        .map_err(aws_failure)?
        .ok_or_else(|| {
            Failure::Aws(format!(
                "EFS DescribeFileSystems: file system {} not found (set --file-system-id)",
                settings.file_system_id
            ))
        })?;
    let file_system_policy = aws
        .efs
        .describe_file_system_policy()
        .await
        .map_err(aws_failure)?;
    let mut mount_target_groups = BTreeSet::new();
    for target in aws
        .efs
        .describe_mount_targets()
        .await
        .map_err(aws_failure)?
    {
        mount_target_groups.extend(
            aws.efs
                .describe_mount_target_security_groups(&target)
                .await
                .map_err(aws_failure)?,
        );
    }
    let group_ids: Vec<String> = settings
        .security_groups
        .iter()
        .cloned()
        .chain(mount_target_groups.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let security_groups = security_groups(ec2, &group_ids).await?;
    let execution_role = match template.execution_role_arn.as_deref() {
        Some(arn) => aws
            .iam
            .role_policies(role_name_of(arn))
            .await
            .map_err(aws_failure)?,
        None => None,
    };
    let access_points = aws
        .efs
        .describe_access_points()
        .await
        .map_err(aws_failure)?;

    let mut agent_ids: BTreeSet<String> = store
        .list()
        .await?
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    let per_agent = matches!(settings.task_role, TaskRole::PerAgent { .. });
    if per_agent {
        let roles = aws
            .iam
            .list_roles(&render::role_path(settings))
            .await
            .map_err(aws_failure)?;
        agent_ids.extend(
            roles
                .iter()
                .filter_map(|r| render::agent_of_role(settings, &r.name))
                .map(str::to_owned),
        );
    }
    let mut agents = Vec::new();
    for agent_id in agent_ids {
        let role = if per_agent {
            aws.iam
                .role_policies(&render::role_name(settings, &agent_id))
                .await
                .map_err(aws_failure)?
        } else {
            None
        };
        // DescribeTaskDefinition by family answers its latest ACTIVE revision.
        let revision = aws
            .ecs
            .describe_task_definition(&render::family(settings, &agent_id))
            .await
            .map_err(aws_failure)?;
        agents.push(Agent {
            agent_id,
            role,
            revision,
        });
    }
    Ok(Observed {
        file_system_arn,
        file_system_policy,
        mount_target_groups,
        security_groups,
        execution_role,
        access_points,
        agents,
    })
}

/// The groups, in one DescribeSecurityGroups. EC2 refuses the whole request when one group does
/// not exist; then each is described alone, so the audit names the missing ones as findings
/// instead of failing.
async fn security_groups(ec2: &Ec2, ids: &[String]) -> Result<Vec<SecurityGroup>, Failure> {
    let missing = |e: &AwsError| e.has_code("InvalidGroup.NotFound");
    match ec2.describe_security_groups(ids).await {
        Ok(groups) => Ok(groups),
        Err(e) if missing(&e) => {
            let mut found = Vec::new();
            for id in ids {
                match ec2.describe_security_groups(std::slice::from_ref(id)).await {
                    Ok(groups) => found.extend(groups),
                    Err(e) if missing(&e) => {}
                    Err(e) => return Err(aws_failure(e)),
                }
            }
            Ok(found)
        }
        Err(e) => Err(aws_failure(e)),
    }
}

/// The role name of a role ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`): IAM calls take names.
fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
