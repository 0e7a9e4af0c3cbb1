//! Golden files of the per-agent AWS shapes: what three specs render to, reviewed by hand.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use spec::render::{
    self, Container, LogConfiguration, PortMapping, RuntimePlatform, Settings, TaskDefinition,
};
use spec::{AgentDocument, AgentSpec, PluginDocument};

const ACCOUNT_ARN: &str = "arn:aws:iam::123456789012";
const ACCESS_POINT_ID: &str = "fsap-0123456789abcdef0";

/// The template a dev stack registers: the seed's single task definition for every agent.
fn template() -> TaskDefinition {
    TaskDefinition {
        family: "clawfleet-dev-agent-template".into(),
        task_role_arn: Some(format!("{ACCOUNT_ARN}:role/clawfleet-dev-agent-task")),
        execution_role_arn: Some(format!("{ACCOUNT_ARN}:role/clawfleet-dev-agent-execution")),
        network_mode: Some("awsvpc".into()),
        requires_compatibilities: vec!["FARGATE".into()],
        cpu: Some("512".into()),
        memory: Some("1024".into()),
        runtime_platform: Some(RuntimePlatform {
            cpu_architecture: Some("X86_64".into()),
            operating_system_family: Some("LINUX".into()),
        }),
        container_definitions: vec![Container {
            name: "agent".into(),
            image: "openclaw/openclaw:latest".into(),
            essential: Some(true),
            memory_reservation: Some(512),
            port_mappings: vec![PortMapping {
                container_port: 18789,
                protocol: Some("tcp".into()),
            }],
            log_configuration: Some(LogConfiguration {
                log_driver: "awslogs".into(),
                options: BTreeMap::from([
                    ("awslogs-group".into(), "/clawfleet/dev/agents".into()),
                    ("awslogs-region".into(), "us-east-1".into()),
                    ("awslogs-stream-prefix".into(), "agent".into()),
                ]),
            }),
            stop_timeout: Some(30),
            ..Container::default()
        }],
        ..TaskDefinition::default()
    }
}

fn settings() -> Settings {
    Settings {
        subnets: vec![
            "subnet-0a1b2c3d4e5f60001".into(),
            "subnet-0a1b2c3d4e5f60002".into(),
        ],
        security_groups: vec!["sg-0123456789abcdef0".into()],
        ..Settings::new("dev", "fs-12345678")
    }
}

/// Only the ids: the image, the plan and everything else come from the defaults.
fn minimal() -> AgentSpec {
    AgentDocument {
        agent_id: Some("acme-support".into()),
        client_id: Some("acme".into()),
        ..AgentDocument::default()
    }
    .validate()
    .expect("valid fixture")
}

/// Every field a tenant can set.
fn full() -> AgentSpec {
    AgentDocument {
        api_version: Some("clawfleet/v1".into()),
        agent_id: Some("globex-research".into()),
        client_id: Some("globex".into()),
        image: Some("ghcr.io/openclaw/openclaw:2026.1.15".into()),
        plan: Some("large".into()),
        skills: vec!["summarize".into(), "triage".into()],
        plugins: vec![
            PluginDocument {
                name: "web-search".into(),
                source: "https://github.com/openclaw/web-search.git".into(),
                version: "1.4.0".into(),
            },
            PluginDocument {
                name: "calendar".into(),
                source: "git@github.com:globex/calendar.git".into(),
                version: "0.9.2".into(),
            },
        ],
        env: BTreeMap::from([
            ("TZ".into(), "Europe/Paris".into()),
            ("LOG_LEVEL".into(), "debug".into()),
        ]),
        // Deliberately unsorted: the task definition lists secrets by name.
        secret_keys: vec!["OPENAI_API_KEY".into(), "ANTHROPIC_API_KEY".into()],
        tags: BTreeMap::from([
            ("CostCenter".into(), "research".into()),
            ("Team".into(), "ml-platform".into()),
        ]),
        restart_requested_at: Some("2026-01-15T09:30:00Z".into()),
        ..AgentDocument::default()
    }
    .validate()
    .expect("valid fixture")
}

/// An explicit Fargate pair instead of a plan, and no secret keys.
fn explicit_size() -> AgentSpec {
    AgentDocument {
        agent_id: Some("initech-ops".into()),
        client_id: Some("initech".into()),
        cpu: Some(4096),
        memory: Some(8192),
        env: BTreeMap::from([("LOG_LEVEL".into(), "info".into())]),
        tags: BTreeMap::from([("CostCenter".into(), "ops".into())]),
        ..AgentDocument::default()
    }
    .validate()
    .expect("valid fixture")
}

fn secret_arn(agent_id: &str) -> String {
    format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:/openclaw/agents/{agent_id}/secrets-AbCdEf"
    )
}

fn revision_arn(agent_id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/clawfleet_dev_{agent_id}:1")
}

/// The four shapes of one spec, by golden file suffix.
fn rendered(spec: &AgentSpec) -> Vec<(&'static str, String)> {
    let settings = settings();
    let task_definition = render::task_definition(
        spec,
        &template(),
        &settings,
        &secret_arn(&spec.agent_id),
        ACCESS_POINT_ID,
        None,
    )
    .expect("the template is usable");
    vec![
        ("task-definition", pretty(&task_definition)),
        (
            "run-task",
            pretty(&render::run_task(
                spec,
                &settings,
                &revision_arn(&spec.agent_id),
            )),
        ),
        (
            "access-point",
            pretty(&render::access_point(spec, &settings)),
        ),
        ("secret", pretty(&render::secret(spec, &settings))),
    ]
}

fn pretty(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    text
}

fn golden_path(case: &str, shape: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{case}.{shape}.json"))
}

/// Where two texts first differ, as `line N: golden ... / rendered ...`.
fn first_difference(golden: &str, fresh: &str) -> String {
    let (mut g, mut f) = (golden.lines(), fresh.lines());
    for n in 1.. {
        match (g.next(), f.next()) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => break,
            (a, b) => {
                return format!(
                    "line {n}: golden {:?} / rendered {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                );
            }
        }
    }
    "trailing whitespace".into()
}

/// Compares every shape of `spec` with its golden file; `CLAWFLEET_BLESS=1` rewrites them.
fn check_golden(case: &str, spec: &AgentSpec) {
    let bless = std::env::var_os("CLAWFLEET_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (shape, fresh) in rendered(spec) {
        let path = golden_path(case, shape);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let name = format!("crates/spec/tests/golden/{case}.{shape}.json");
        match std::fs::read_to_string(&path) {
            Ok(golden) if golden == fresh => {}
            Ok(golden) => stale.push(format!("{name}: {}", first_difference(&golden, &fresh))),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "rendering of case {case:?} differs from its golden files:\n  {}\nIf the change is \
         intended, review the diff, then re-run with CLAWFLEET_BLESS=1 \
         (`CLAWFLEET_BLESS=1 cargo test -p clawfleet-spec --test render_golden`) and commit the \
         golden files",
        stale.join("\n  ")
    );
}

#[test]
fn a_minimal_spec_renders_to_its_golden_files() {
    check_golden("minimal", &minimal());
}

#[test]
fn a_spec_with_every_field_renders_to_its_golden_files() {
    check_golden("full", &full());
}

#[test]
fn an_explicit_cpu_and_memory_spec_renders_to_its_golden_files() {
    check_golden("explicit-size", &explicit_size());
}

/// The rules of design.md that a careless bless must not lose, checked on every case.
#[test]
fn every_case_keeps_the_rendering_rules_of_the_design() {
    for spec in [minimal(), full(), explicit_size()] {
        let agent = spec.agent_id.as_str();
        let td = render::task_definition(
            &spec,
            &template(),
            &settings(),
            &secret_arn(agent),
            ACCESS_POINT_ID,
            None,
        )
        .unwrap();
        let td = serde_json::to_value(&td).unwrap();
        let volume = &td["volumes"][0]["efsVolumeConfiguration"];
        assert_eq!(td["volumes"][0]["name"], "clawfleet-workspace", "{agent}");
        assert!(volume.get("rootDirectory").is_none(), "{agent}");
        assert_eq!(volume["transitEncryption"], "ENABLED", "{agent}");
        assert_eq!(volume["iam"], "ENABLED", "{agent}");
        assert_eq!(volume["accessPointId"], ACCESS_POINT_ID, "{agent}");
        let container = &td["containerDefinitions"][0];
        assert!(container.get("memory").is_none(), "{agent}: hard memory");
        for secret in container["secrets"].as_array().into_iter().flatten() {
            let key = secret["name"].as_str().unwrap();
            assert_eq!(
                secret["valueFrom"],
                format!("{}:{key}::", secret_arn(agent)),
                "{agent}"
            );
        }

        let run = serde_json::to_value(render::run_task(&spec, &settings(), "td")).unwrap();
        let r = spec.resources();
        assert_eq!(run["overrides"]["cpu"], r.cpu.to_string(), "{agent}");
        assert_eq!(run["overrides"]["memory"], r.memory.to_string(), "{agent}");
        let agent_override = &run["overrides"]["containerOverrides"][0];
        assert_eq!(agent_override["cpu"], r.cpu, "{agent}");
        assert_eq!(agent_override["memory"], r.memory, "{agent}");
        let names: Vec<&str> = agent_override["environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names[..3],
            ["AGENT_ID", "WORKSPACE_ID", "PLUGIN_MANIFEST"],
            "{agent}"
        );
        assert_eq!(agent_override["environment"][1]["value"], spec.client_id);
        assert_eq!(run["assignPublicIp"], "DISABLED", "{agent}");
        assert_eq!(run["launchType"], "FARGATE", "{agent}");
        assert_eq!(run["startedBy"], format!("clawfleet/{agent}"), "{agent}");
        assert_eq!(run["tags"]["clawfleet:managed-by"], "clawfleet", "{agent}");
        assert_eq!(run["tags"]["clawfleet:agent-id"], agent, "{agent}");
        assert_eq!(run["tags"]["clawfleet:client-id"], spec.client_id);
        for (k, v) in &spec.tags {
            assert_eq!(run["tags"][k], *v, "{agent}: user tag {k}");
        }

        let ap = render::access_point(&spec, &settings());
        assert_eq!(
            ap.root_path,
            format!("/agents/{}/{agent}", spec.client_id),
            "{agent}"
        );
        assert_eq!(
            (ap.posix_uid, ap.posix_gid, ap.creation_permissions.as_str()),
            (1000, 1000, "0750"),
            "{agent}"
        );
    }
}
