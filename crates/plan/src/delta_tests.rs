//! The delta table: which change replaces a task, which only retags it, and why a revision is
//! registered.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use crate::observed::Task;
use spec::render::{self, Container, Settings, TaskDefinition};
use spec::{AgentDocument, PluginDocument};

use super::*;
use crate::fixtures::{self, SECRET_ARN, launched, revision_arn, settings, template};

/// The fixture document, with skills and a plugin, which travel in `PLUGIN_MANIFEST`.
fn document() -> AgentDocument {
    AgentDocument {
        skills: vec!["summarize".into()],
        plugins: vec![PluginDocument {
            name: "web-search".into(),
            source: "https://github.com/openclaw/web-search.git".into(),
            version: "1.0.0".into(),
        }],
        ..fixtures::document()
    }
}

/// The RunTask a document asks for, on revision `n`.
fn run_task(doc: &AgentDocument, n: i32) -> RunTask {
    let spec = doc.validate().expect("valid fixture");
    render::run_task(&spec, &settings(), &revision_arn(n))
}

/// One row: how the spec changed since the task was launched, and what that must do.
struct TaskRow {
    name: &'static str,
    /// Applied to the document the running task was launched from.
    launched_from: fn(&mut AgentDocument),
    /// Applied to the document the spec says now.
    desired: fn(&mut AgentDocument),
    /// Applied to the task as DescribeTasks reports it.
    observed: fn(&mut Task),
    replace: &'static [&'static str],
    tags_add: &'static [(&'static str, &'static str)],
    tags_remove: &'static [&'static str],
}

fn same(_: &mut AgentDocument) {}
fn as_launched(_: &mut Task) {}

const TASK_TABLE: &[TaskRow] = &[
    TaskRow {
        name: "nothing changed",
        launched_from: same,
        desired: same,
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        // An image change reaches the task as a new revision ARN.
        name: "the task runs an older revision",
        launched_from: same,
        desired: same,
        observed: |t| t.task_definition_arn = revision_arn(1),
        replace: &["task_definition"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "the plan grew from small to medium",
        launched_from: same,
        desired: |d| d.plan = Some("medium".into()),
        observed: as_launched,
        replace: &[
            "cpu",
            "memory",
            "containers.agent.cpu",
            "containers.agent.memory",
        ],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "the plan became the explicit pair it stands for",
        launched_from: |d| d.plan = Some("medium".into()),
        desired: |d| {
            d.plan = None;
            d.cpu = Some(1024);
            d.memory = Some(2048);
        },
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "only the memory of an explicit pair changed",
        launched_from: |d| {
            d.plan = None;
            d.cpu = Some(1024);
            d.memory = Some(2048);
        },
        desired: |d| {
            d.plan = None;
            d.cpu = Some(1024);
            d.memory = Some(4096);
        },
        observed: as_launched,
        replace: &["memory", "containers.agent.memory"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "an env variable was added",
        launched_from: same,
        desired: |d| {
            d.env.insert("TZ".into(), "UTC".into());
        },
        observed: as_launched,
        replace: &["environment.TZ"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "an env value changed",
        launched_from: same,
        desired: |d| {
            d.env.insert("LOG_LEVEL".into(), "debug".into());
        },
        observed: as_launched,
        replace: &["environment.LOG_LEVEL"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "an env variable was removed",
        launched_from: same,
        desired: |d| d.env.clear(),
        observed: as_launched,
        replace: &["environment.LOG_LEVEL"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a plugin version changed",
        launched_from: same,
        desired: |d| d.plugins[0].version = "1.1.0".into(),
        observed: as_launched,
        replace: &["environment.PLUGIN_MANIFEST"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a plugin was added",
        launched_from: same,
        desired: |d| {
            d.plugins.push(PluginDocument {
                name: "calendar".into(),
                source: "git@github.com:acme/calendar.git".into(),
                version: "0.1.0".into(),
            });
        },
        observed: as_launched,
        replace: &["environment.PLUGIN_MANIFEST"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a skill was added",
        launched_from: same,
        desired: |d| d.skills.push("triage".into()),
        observed: as_launched,
        replace: &["environment.PLUGIN_MANIFEST"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        // Secrets live in the revision: a key change reaches the task as a new revision ARN.
        name: "secret keys changed but the revision did not",
        launched_from: same,
        desired: |d| d.secret_keys.push("ANTHROPIC_API_KEY".into()),
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a first restart was requested",
        launched_from: same,
        desired: |d| d.restart_requested_at = Some("2026-01-15T09:30:00Z".into()),
        observed: as_launched,
        replace: &["restart_requested_at"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a newer restart was requested",
        launched_from: |d| d.restart_requested_at = Some("2026-01-15T09:30:00Z".into()),
        desired: |d| d.restart_requested_at = Some("2026-01-16T08:00:00Z".into()),
        observed: as_launched,
        replace: &["restart_requested_at"],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "the restart the task was launched for is still the one requested",
        launched_from: |d| d.restart_requested_at = Some("2026-01-15T09:30:00Z".into()),
        desired: |d| d.restart_requested_at = Some("2026-01-15T09:30:00Z".into()),
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        // Only a new value asks for a restart (design brief); clearing the field does not,
        // and the task keeps the marker it was launched for.
        name: "restart_requested_at was removed",
        launched_from: |d| d.restart_requested_at = Some("2026-01-15T09:30:00Z".into()),
        desired: same,
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "a cost tag was added",
        launched_from: same,
        desired: |d| {
            d.tags.insert("Team".into(), "support".into());
        },
        observed: as_launched,
        replace: &[],
        tags_add: &[("Team", "support")],
        tags_remove: &[],
    },
    TaskRow {
        name: "a cost tag value changed",
        launched_from: same,
        desired: |d| {
            d.tags.insert("CostCenter".into(), "acme-eu".into());
        },
        observed: as_launched,
        replace: &[],
        tags_add: &[("CostCenter", "acme-eu")],
        tags_remove: &[],
    },
    TaskRow {
        name: "a cost tag was removed",
        launched_from: same,
        desired: |d| d.tags.clear(),
        observed: as_launched,
        replace: &[],
        tags_add: &[],
        tags_remove: &["CostCenter"],
    },
    TaskRow {
        name: "someone removed an identity tag from the task",
        launched_from: same,
        desired: same,
        observed: |t| {
            t.tags.remove(tag::CLIENT_ID);
        },
        replace: &[],
        tags_add: &[(tag::CLIENT_ID, "acme")],
        tags_remove: &[],
    },
    TaskRow {
        name: "ECS added aws: tags to the task",
        launched_from: same,
        desired: same,
        observed: |t| {
            t.tags.insert("aws:ecs:clusterName".into(), "dev".into());
            t.tags.insert("aws:ecs:serviceName".into(), "none".into());
        },
        replace: &[],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "an env change and a tag change come together",
        launched_from: same,
        desired: |d| {
            d.env.insert("LOG_LEVEL".into(), "debug".into());
            d.tags.insert("Team".into(), "support".into());
        },
        observed: as_launched,
        replace: &["environment.LOG_LEVEL"],
        tags_add: &[("Team", "support")],
        tags_remove: &[],
    },
    TaskRow {
        // A task launched by hand or by another tool: nothing says it runs the plan.
        name: "the task reports no overrides",
        launched_from: same,
        desired: same,
        observed: |t| t.overrides = None,
        replace: &[
            "cpu",
            "memory",
            "containers.agent.cpu",
            "containers.agent.memory",
            "environment.AGENT_ID",
            "environment.LOG_LEVEL",
            "environment.PLUGIN_MANIFEST",
            "environment.WORKSPACE_ID",
        ],
        tags_add: &[],
        tags_remove: &[],
    },
    TaskRow {
        name: "the task's overrides name another container",
        launched_from: same,
        desired: same,
        observed: |t| {
            if let Some(o) = &mut t.overrides {
                o.container_overrides[0].name = "sidecar".into();
            }
        },
        replace: &[
            "containers.agent.cpu",
            "containers.agent.memory",
            "environment.AGENT_ID",
            "environment.LOG_LEVEL",
            "environment.PLUGIN_MANIFEST",
            "environment.WORKSPACE_ID",
        ],
        tags_add: &[],
        tags_remove: &[],
    },
];

#[test]
fn each_task_change_replaces_the_task_or_retags_it_as_the_table_says() {
    let mut failures = Vec::new();
    for row in TASK_TABLE {
        let mut launched_from = document();
        (row.launched_from)(&mut launched_from);
        let mut task = launched(&run_task(&launched_from, 2));
        (row.observed)(&mut task);
        let mut desired = document();
        (row.desired)(&mut desired);

        let delta = task_delta(&run_task(&desired, 2), &task);

        let tags_add: BTreeMap<String, String> = row
            .tags_add
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if delta.replace.paths() != row.replace
            || delta.tags_add != tags_add
            || delta.tags_remove != row.tags_remove
        {
            failures.push(format!(
                "{}:\n    replace {:?}, want {:?}\n    tags_add {:?}, want {:?}\n    tags_remove {:?}, want {:?}",
                row.name,
                delta.replace.paths(),
                row.replace,
                delta.tags_add,
                tags_add,
                delta.tags_remove,
                row.tags_remove
            ));
        }
        assert_eq!(
            delta.needs_replacement(),
            !row.replace.is_empty(),
            "{}",
            row.name
        );
        assert_eq!(
            delta.needs_tags(),
            !row.tags_add.is_empty() || !row.tags_remove.is_empty(),
            "{}",
            row.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The inputs of one rendered revision.
struct Revision {
    doc: AgentDocument,
    template: TaskDefinition,
    settings: Settings,
    secret_arn: String,
    access_point_id: String,
}

impl Revision {
    fn base() -> Self {
        Self {
            doc: document(),
            template: template(),
            settings: settings(),
            secret_arn: SECRET_ARN.into(),
            access_point_id: "fsap-1".into(),
        }
    }

    fn render(&self) -> TaskDefinition {
        render::task_definition(
            &self.doc.validate().expect("valid fixture"),
            &self.template,
            &self.settings,
            &self.secret_arn,
            &self.access_point_id,
            None,
        )
        .expect("renders")
    }
}

struct DefinitionRow {
    name: &'static str,
    /// Applied to the inputs of the registered revision.
    registered_from: fn(&mut Revision),
    /// Applied to the inputs of the revision the spec asks for now.
    desired: fn(&mut Revision),
    paths: &'static [&'static str],
}

fn unchanged(_: &mut Revision) {}

fn sidecar() -> Container {
    Container {
        name: "log-router".into(),
        image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable".into(),
        essential: Some(false),
        ..Container::default()
    }
}

const DEFINITION_TABLE: &[DefinitionRow] = &[
    DefinitionRow {
        name: "nothing changed",
        registered_from: unchanged,
        desired: unchanged,
        paths: &[],
    },
    DefinitionRow {
        name: "the image changed",
        registered_from: unchanged,
        desired: |r| r.doc.image = Some("openclaw/openclaw:v1.3.0".into()),
        paths: &["containers.agent.image"],
    },
    DefinitionRow {
        name: "the configured default image changed for a spec that names none",
        registered_from: |r| {
            r.doc.image = None;
            r.settings.default_image = Some("openclaw/openclaw:v1.2.3".into());
        },
        desired: |r| {
            r.doc.image = None;
            r.settings.default_image = Some("openclaw/openclaw:v1.3.0".into());
        },
        paths: &["containers.agent.image"],
    },
    DefinitionRow {
        name: "a secret key was added",
        registered_from: unchanged,
        desired: |r| r.doc.secret_keys.push("ANTHROPIC_API_KEY".into()),
        paths: &["containers.agent.secrets"],
    },
    DefinitionRow {
        name: "the secret was re-created with a new ARN",
        registered_from: unchanged,
        desired: |r| r.secret_arn = SECRET_ARN.replace("AbCdEf", "GhIjKl"),
        paths: &["containers.agent.secrets"],
    },
    DefinitionRow {
        name: "the access point was re-created",
        registered_from: unchanged,
        desired: |r| r.access_point_id = "fsap-2".into(),
        paths: &["volumes.clawfleet-workspace"],
    },
    DefinitionRow {
        name: "the file system changed",
        registered_from: unchanged,
        desired: |r| r.settings.file_system_id = "fs-2".into(),
        paths: &["volumes.clawfleet-workspace"],
    },
    DefinitionRow {
        name: "the mount path changed",
        registered_from: unchanged,
        desired: |r| r.settings.mount_path = "/data".into(),
        paths: &["containers.agent.mountPoints"],
    },
    DefinitionRow {
        name: "the template's task role changed",
        registered_from: unchanged,
        desired: |r| {
            r.template.task_role_arn = Some("arn:aws:iam::123456789012:role/task-v2".into());
        },
        paths: &["taskRoleArn"],
    },
    DefinitionRow {
        name: "the template's execution role changed",
        registered_from: unchanged,
        desired: |r| {
            r.template.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec-v2".into());
        },
        paths: &["executionRoleArn"],
    },
    DefinitionRow {
        name: "the template's task size changed",
        registered_from: unchanged,
        desired: |r| {
            r.template.cpu = Some("1024".into());
            r.template.memory = Some("2048".into());
        },
        paths: &["cpu", "memory"],
    },
    DefinitionRow {
        name: "the template's agent container gained an environment variable",
        registered_from: unchanged,
        desired: |r| {
            r.template.container_definitions[0]
                .environment
                .push(render::NameValue {
                    name: "OPENCLAW_MODE".into(),
                    value: "managed".into(),
                });
        },
        paths: &["containers.agent.environment"],
    },
    DefinitionRow {
        name: "the template's agent container changed its memory reservation",
        registered_from: unchanged,
        desired: |r| r.template.container_definitions[0].memory_reservation = Some(768),
        paths: &["containers.agent.other"],
    },
    DefinitionRow {
        name: "the template gained a sidecar container",
        registered_from: unchanged,
        desired: |r| r.template.container_definitions.push(sidecar()),
        paths: &["containers.log-router"],
    },
    DefinitionRow {
        name: "the template dropped a sidecar container",
        registered_from: |r| r.template.container_definitions.push(sidecar()),
        desired: unchanged,
        paths: &["containers.log-router"],
    },
    DefinitionRow {
        // These travel in the RunTask overrides and the task's tags, not in the revision.
        name: "plan, env, plugins, tags and restart changed",
        registered_from: unchanged,
        desired: |r| {
            r.doc.plan = Some("large".into());
            r.doc.env.insert("TZ".into(), "UTC".into());
            r.doc.skills.push("triage".into());
            r.doc.tags.insert("Team".into(), "support".into());
            r.doc.restart_requested_at = Some("2026-01-15T09:30:00Z".into());
        },
        paths: &[],
    },
];

#[test]
fn each_definition_change_names_the_fields_that_need_a_new_revision() {
    let mut failures = Vec::new();
    for row in DEFINITION_TABLE {
        let mut registered = Revision::base();
        (row.registered_from)(&mut registered);
        let mut desired = Revision::base();
        (row.desired)(&mut desired);
        let (registered, desired) = (registered.render(), desired.render());

        let delta = definition_delta(&desired, &registered);

        if delta.paths() != row.paths {
            failures.push(format!(
                "{}: paths {:?}, want {:?}",
                row.name,
                delta.paths(),
                row.paths
            ));
        }
        // plan registers a revision when the content differs: the delta must agree.
        assert_eq!(
            delta.is_empty(),
            desired == registered,
            "{}: the delta and content equality disagree",
            row.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_definition_delta_shows_the_old_and_new_image() {
    let registered = Revision::base().render();
    let mut desired = Revision::base();
    desired.doc.image = Some("openclaw/openclaw:v1.3.0".into());

    let delta = definition_delta(&desired.render(), &registered);

    assert_eq!(
        delta.0,
        vec![Difference {
            path: "containers.agent.image".into(),
            desired: "openclaw/openclaw:v1.3.0".into(),
            observed: "openclaw/openclaw:v1.2.3".into(),
        }]
    );
}

fn difference(path: &str, observed: &str, desired: &str) -> Difference {
    Difference {
        path: path.into(),
        desired: desired.into(),
        observed: observed.into(),
    }
}

#[test]
fn an_empty_delta_displays_as_nothing() {
    assert_eq!(Delta::default().to_string(), "");
}

#[test]
fn short_values_display_as_path_old_to_new() {
    let delta = Delta(vec![difference("cpu", "512", "1024")]);
    assert_eq!(delta.to_string(), "cpu: 512 -> 1024");
}

#[test]
fn long_values_display_only_the_path() {
    let old = format!("{{\"plugins\":[],\"skills\":[\"{}\"]}}", "a".repeat(80));
    let new = format!("{{\"plugins\":[],\"skills\":[\"{}\"]}}", "b".repeat(80));
    let delta = Delta(vec![difference("environment.PLUGIN_MANIFEST", &old, &new)]);
    assert_eq!(delta.to_string(), "environment.PLUGIN_MANIFEST changed");
}

#[test]
fn values_up_to_120_characters_together_are_still_shown() {
    let (sixty, sixty_one) = ("x".repeat(60), "y".repeat(61));
    let at_limit = Delta(vec![difference("image", &sixty, &sixty)]);
    let over = Delta(vec![difference("image", &sixty, &sixty_one)]);
    assert_eq!(at_limit.to_string(), format!("image: {sixty} -> {sixty}"));
    assert_eq!(over.to_string(), "image changed");
}

#[test]
fn several_differences_display_in_order_separated_by_semicolons() {
    let delta = Delta(vec![
        difference("cpu", "512", "1024"),
        difference(
            "environment.PLUGIN_MANIFEST",
            &"m".repeat(70),
            &"n".repeat(70),
        ),
        difference("memory", "1024", "2048"),
    ]);
    assert_eq!(
        delta.to_string(),
        "cpu: 512 -> 1024; environment.PLUGIN_MANIFEST changed; memory: 1024 -> 2048"
    );
    assert_eq!(
        delta.paths(),
        ["cpu", "environment.PLUGIN_MANIFEST", "memory"]
    );
}

#[test]
fn a_plan_change_displays_task_and_container_sizes() {
    let mut desired = document();
    desired.plan = Some("medium".into());
    let delta = task_delta(&run_task(&desired, 2), &launched(&run_task(&document(), 2)));
    let shown = delta.replace.to_string();
    assert!(shown.starts_with("cpu: "), "{shown}");
    assert!(shown.contains("512") && shown.contains("1024"), "{shown}");
    assert!(shown.contains("memory: "), "{shown}");
}

#[test]
fn a_delta_reads_without_rust_debug_syntax() {
    let mut bigger = document();
    bigger.plan = Some("medium".into());
    bigger.env.remove("LOG_LEVEL");
    let delta = task_delta(&run_task(&bigger, 1), &launched(&run_task(&document(), 1)));
    let text = delta.replace.to_string();
    assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    assert!(text.contains("cpu: 512 -> 1024"), "{text}");
    assert!(
        text.contains("environment.LOG_LEVEL: info -> (none)"),
        "{text}"
    );
}

#[test]
fn tags_people_and_aws_own_are_never_removed_on_any_resource() {
    let want = BTreeMap::from([("CostCenter".to_owned(), "acme".to_owned())]);
    let have = BTreeMap::from([
        ("Name".to_owned(), "my agent".to_owned()),
        ("aws:cloudformation:stack-name".to_owned(), "x".to_owned()),
        ("Stale".to_owned(), "1".to_owned()),
        ("clawfleet:launch-attempt".to_owned(), "3".to_owned()),
    ]);
    let delta = tag_delta(&want, &have, &["clawfleet:launch-attempt"]);
    assert_eq!(delta.add, want);
    assert_eq!(delta.remove, ["Stale"]);
}
