//! The fixtures every test of the planner and the controller shares: one installation's
//! settings, one template, one agent, and what AWS shows for it at each stage.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;

use spec::render::{self, Container, RunTask, Settings, TaskDefinition};
use spec::{AgentDocument, AgentSpec};

use crate::observed::{
    AccessPoint, AgentResources, Role, RoleDetails, Secret, Task, TaskDefinitionRevision,
};

/// A fixed "now", in seconds since the epoch.
pub const NOW: i64 = 1_780_000_000;
pub const AGENT: &str = "acme-support";
pub const TASK_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task/dev/1111";
pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:/openclaw/agents/acme-support/secrets-AbCdEf";

/// The installation: cluster `dev`, file system `fs-1`, two private subnets.
#[must_use]
pub fn settings() -> Settings {
    Settings {
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        security_groups: vec!["sg-1".into()],
        ..Settings::new("dev", "fs-1")
    }
}

/// The template task definition agents' revisions derive from.
#[must_use]
pub fn template() -> TaskDefinition {
    TaskDefinition {
        family: "agent-template".into(),
        task_role_arn: Some("arn:aws:iam::123456789012:role/task".into()),
        execution_role_arn: Some("arn:aws:iam::123456789012:role/exec".into()),
        network_mode: Some("awsvpc".into()),
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: Some("512".into()),
        memory: Some("1024".into()),
        container_definitions: vec![Container {
            name: "agent".into(),
            image: "openclaw/openclaw:latest".into(),
            essential: Some(true),
            memory_reservation: Some(512),
            ..Container::default()
        }],
        ..TaskDefinition::default()
    }
}

/// The spec document of agent `agent_id` of tenant `acme`, running, with one secret key.
#[must_use]
pub fn document_of(agent_id: &str) -> AgentDocument {
    AgentDocument {
        agent_id: Some(agent_id.into()),
        client_id: Some("acme".into()),
        image: Some("openclaw/openclaw:v1.2.3".into()),
        plan: Some("small".into()),
        secret_keys: vec!["OPENAI_API_KEY".into()],
        env: BTreeMap::from([("LOG_LEVEL".into(), "info".into())]),
        tags: BTreeMap::from([("CostCenter".into(), "acme".into())]),
        ..AgentDocument::default()
    }
}

/// [`document_of`] [`AGENT`].
#[must_use]
pub fn document() -> AgentDocument {
    document_of(AGENT)
}

/// [`document`], validated.
#[must_use]
pub fn spec() -> AgentSpec {
    document().validate().expect("valid fixture")
}

#[must_use]
pub fn revision_arn(n: i32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/clawfleet_dev_{AGENT}:{n}")
}

/// The access point `id` as DescribeAccessPoints shows it once created for `spec`.
#[must_use]
pub fn access_point(spec: &AgentSpec, id: &str) -> AccessPoint {
    let want = render::access_point(spec, &settings());
    AccessPoint {
        id: id.into(),
        arn: format!("arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/{id}"),
        file_system_id: want.file_system_id,
        root_path: Some(want.root_path),
        posix_uid: Some(1000),
        posix_gid: Some(1000),
        tags: want.tags,
        life_cycle_state: "available".into(),
    }
}

/// Revision `n` of the agent's family, rendered from `template` with access point `ap`.
#[must_use]
pub fn revision(
    spec: &AgentSpec,
    template: &TaskDefinition,
    ap: &str,
    n: i32,
) -> TaskDefinitionRevision {
    TaskDefinitionRevision {
        arn: revision_arn(n),
        revision: n,
        content: std::sync::Arc::new(
            render::task_definition(spec, template, &settings(), SECRET_ARN, ap, None)
                .expect("renders"),
        ),
    }
}

/// The task DescribeTasks reports after launching `run`.
#[must_use]
pub fn launched(run: &RunTask) -> Task {
    Task {
        arn: TASK_ARN.into(),
        task_definition_arn: run.task_definition.clone(),
        last_status: "RUNNING".into(),
        desired_status: "RUNNING".into(),
        started_by: Some(run.started_by.clone()),
        tags: run.tags.clone(),
        overrides: Some(run.overrides.clone()),
        ..Task::default()
    }
}

/// A RUNNING task `arn` of `spec` on revision `td`, started at `started_at`.
#[must_use]
pub fn running_task(spec: &AgentSpec, arn: &str, td: &str, started_at: i64) -> Task {
    Task {
        arn: arn.into(),
        started_at: Some(started_at),
        ..launched(&render::run_task(spec, &settings(), td))
    }
}

/// What AWS looks like for `spec` once converged.
#[must_use]
pub fn converged(spec: &AgentSpec) -> AgentResources {
    AgentResources {
        tasks: vec![running_task(spec, TASK_ARN, &revision_arn(1), NOW - 100)],
        access_points: vec![access_point(spec, "fsap-1")],
        secret: Some(Secret {
            arn: SECRET_ARN.into(),
            name: render::secret_name(&settings(), AGENT),
            tags: render::secret(spec, &settings()).tags,
            key_names: Some(vec!["OPENAI_API_KEY".into()]),
            deleted: false,
        }),
        latest_revision: Some(revision(spec, &template(), "fsap-1", 1)),
        older_revisions: Vec::new(),
        role: None,
        purge_tasks: Vec::new(),
        purge_revisions: Vec::new(),
    }
}

/// The permissions boundary of [`per_agent_settings`].
pub const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/clawfleet-agent-boundary";

/// [`settings`] with a task role per agent.
#[must_use]
pub fn per_agent_settings() -> Settings {
    Settings {
        task_role: render::TaskRole::PerAgent {
            permissions_boundary: BOUNDARY.into(),
        },
        ..settings()
    }
}

/// The agent's role as GetRole and GetRolePolicy show it once created for `spec` and the
/// access point `ap`.
#[must_use]
pub fn role(spec: &AgentSpec, ap: &AccessPoint) -> Role {
    let want = render::role(spec, &per_agent_settings(), &ap.arn).expect("per-agent role");
    Role {
        arn: format!("arn:aws:iam::123456789012:role{}{}", want.path, want.name),
        name: want.name,
        path: want.path,
        details: Some(RoleDetails {
            permissions_boundary: Some(want.permissions_boundary),
            policy: Some(want.policy),
            tags: want.tags,
        }),
    }
}
