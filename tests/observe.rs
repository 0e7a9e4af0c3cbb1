//! Observing AWS against moto: hand-made resources, tagged as clawfleet tags them, are found
//! under their agent; foreign, untagged ones never are. `clawfleet plan` reads the same.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use aws_sdk_efs::types::{PosixUser, RootDirectory};
use cloud::Aws;
use plan::{Action, Context, Desired};
use spec::render::{self, Settings};
use spec::{AgentDocument, AgentSpec};
use support::Fleet;

/// The development stack, made by the project's own tooling (tools/moto/dev_stack.py).
struct Stack {
    env: BTreeMap<String, String>,
}

impl Stack {
    fn create(name: &str) -> Self {
        Self {
            env: local_aws::dev_stack(name),
        }
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    fn settings(&self, secret_prefix: &str) -> Settings {
        Settings {
            subnets: self
                .get("CLAWFLEET_SUBNETS")
                .split(',')
                .map(str::to_owned)
                .collect(),
            security_groups: vec![self.get("CLAWFLEET_SECURITY_GROUPS").to_owned()],
            secret_prefix: secret_prefix.to_owned(),
            ..Settings::new(
                self.get("CLAWFLEET_CLUSTER"),
                self.get("CLAWFLEET_FILE_SYSTEM_ID"),
            )
        }
    }
}

fn agent_spec(agent_id: &str) -> AgentSpec {
    AgentDocument {
        agent_id: Some(agent_id.into()),
        client_id: Some("acme".into()),
        image: Some("openclaw/openclaw:v1.2.3".into()),
        secret_keys: vec!["OPENAI_API_KEY".into()],
        tags: BTreeMap::from([("CostCenter".into(), "acme".into())]),
        ..AgentDocument::default()
    }
    .validate()
    .unwrap()
}

#[tokio::test]
async fn observe_finds_the_agents_resources_and_never_foreign_ones() {
    let name = local_aws::unique("obs");
    let stack = Stack::create(&name);
    let prefix = format!("/{name}/agents/");
    let settings = stack.settings(&prefix);
    let config = local_aws::sdk_config().await;
    let aws = Aws::new(&config, &settings);
    let efs = aws_sdk_efs::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let ecs = aws_sdk_ecs::Client::new(&config);
    let spec = agent_spec(&local_aws::unique("agent"));

    // The agent's resources, made and tagged as clawfleet makes and tags them.
    let want_ap = render::access_point(&spec, &settings);
    let mut create = efs
        .create_access_point()
        .client_token(local_aws::unique("token"))
        .file_system_id(&settings.file_system_id)
        .posix_user(PosixUser::builder().uid(1000).gid(1000).build().unwrap())
        .root_directory(RootDirectory::builder().path(&want_ap.root_path).build());
    for (k, v) in &want_ap.tags {
        create = create.tags(
            aws_sdk_efs::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap(),
        );
    }
    let ap_id = create.send().await.unwrap().access_point_id.unwrap();
    let want_secret = render::secret(&spec, &settings);
    let mut create = sm
        .create_secret()
        .name(&want_secret.name)
        .description(render::secret_description(&spec.secret_keys))
        .secret_string("{}");
    for (k, v) in &want_secret.tags {
        create = create.tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build(),
        );
    }
    let secret_arn = create.send().await.unwrap().arn.unwrap();
    let template_name = stack.get("CLAWFLEET_TEMPLATE_TASK_DEFINITION");
    let (_, template) = aws.template(template_name, &settings).await.unwrap();
    let rendered =
        render::task_definition(&spec, &template, &settings, &secret_arn, &ap_id, None).unwrap();
    let revision = aws
        .ecs
        .register_task_definition(&rendered, &render::revision_tags(&spec, &settings))
        .await
        .unwrap();
    let task = aws
        .ecs
        .run_task(
            &render::run_task(&spec, &settings, &revision.arn),
            "launch-1",
        )
        .await
        .unwrap();

    // Foreign resources in the same cluster and file system, without clawfleet's tags.
    let foreign_ap = efs
        .create_access_point()
        .client_token(local_aws::unique("token"))
        .file_system_id(&settings.file_system_id)
        .root_directory(RootDirectory::builder().path("/someone-else").build())
        .send()
        .await
        .unwrap()
        .access_point_id
        .unwrap();
    let foreign_task = ecs
        .run_task()
        .cluster(&settings.cluster)
        .task_definition(template_name)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .started_by("someone-else")
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(settings.subnets.clone()))
                        .set_security_groups(Some(settings.security_groups.clone()))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .tasks
        .unwrap()
        .remove(0)
        .task_arn
        .unwrap();

    let fleet = aws
        .observe_fleet(template_name, &settings, &cloud::Recorded::default())
        .await
        .unwrap();
    assert_eq!(
        fleet.agents.keys().collect::<Vec<_>>(),
        [&spec.agent_id],
        "only clawfleet's agent"
    );
    let seen = fleet.agent(&spec.agent_id);
    assert_eq!(seen.access_points.len(), 1);
    assert_eq!(seen.access_points[0].id, ap_id);
    assert_eq!(
        seen.access_points[0].root_path.as_deref(),
        Some(want_ap.root_path.as_str())
    );
    let secret = seen.secret.as_ref().unwrap();
    assert_eq!(secret.arn, secret_arn);
    assert_eq!(
        secret.key_names.as_deref(),
        Some(&["OPENAI_API_KEY".to_string()][..])
    );
    let latest = seen.latest_revision.as_ref().unwrap();
    assert_eq!(latest.arn, revision.arn);
    assert_eq!(
        *latest.content, rendered,
        "a registered revision reads back as rendered"
    );
    assert_eq!(seen.tasks.len(), 1);
    assert_eq!(seen.tasks[0].arn, task.arn);
    assert!(seen.tasks[0].is_live());
    for agent in fleet.agents.values() {
        assert!(agent.tasks.iter().all(|t| t.arn != foreign_task));
        assert!(agent.access_points.iter().all(|a| a.id != foreign_ap));
    }

    // The per-agent read describes the access point its status names, and lists none.
    let one = aws
        .observe_agent(&spec.agent_id, None, Some(&ap_id), &settings)
        .await
        .unwrap();
    assert_eq!(one, seen, "per-agent and fleet observation agree");
    let unnamed = aws
        .observe_agent(&spec.agent_id, None, None, &settings)
        .await
        .unwrap();
    assert!(unnamed.access_points.is_empty());

    // What moto reports for the task matches what was asked: nothing to replace.
    let ctx = Context {
        settings: &settings,
        template: &fleet.template,
        now: 1_780_000_000,
    };
    let desired = Desired {
        agent_id: &spec.agent_id,
        spec: Some(Ok(&spec)),
        deleting: false,
        status: None,
        last_activity: None,
        purge_data: false,
    };
    let plan = plan::plan(&desired, &seen, &ctx);
    let aws_actions: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.is_aws())
        .map(ToString::to_string)
        .collect();
    assert!(
        aws_actions.is_empty(),
        "converged, but planned: {aws_actions:?}"
    );
    assert!(
        matches!(plan.actions.last(), Some(Action::UpdateStatus(s)) if s.phase == spec::Phase::Running)
    );

    // `clawfleet plan` reads the same state from the binary.
    let cli = Fleet::unbootstrapped("plan")
        .env("CLAWFLEET_CLUSTER", &settings.cluster)
        .env("CLAWFLEET_SUBNETS", settings.subnets.join(","))
        .env(
            "CLAWFLEET_SECURITY_GROUPS",
            settings.security_groups.join(","),
        )
        .env("CLAWFLEET_FILE_SYSTEM_ID", &settings.file_system_id)
        .env("CLAWFLEET_TEMPLATE_TASK_DEFINITION", template_name)
        .env("CLAWFLEET_SECRET_PREFIX", &prefix)
        // As the library's settings above: the template's task role, the same installation.
        .env("CLAWFLEET_TASK_ROLE", "template")
        .env("CLAWFLEET_INSTALLATION", &settings.installation);
    assert_eq!(cli.run(&["bootstrap"]).code, 0);
    let manifest = format!(
        "agent_id: {}\nclient_id: acme\nimage: openclaw/openclaw:v1.2.3\nsecret_keys: [OPENAI_API_KEY]\ntags: {{CostCenter: acme}}\n",
        spec.agent_id
    );
    let run = cli.run_with_stdin(&["apply", "-f", "-"], &manifest);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = cli.run(&["plan", &spec.agent_id]);
    let (stdout, stderr) = (&run.stdout, &run.stderr);
    assert_eq!(run.code, 1, "a status write is pending: {stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("update status: phase Running"), "{stdout}");

    // A task stopped behind clawfleet's back shows up as a relaunch.
    ecs.stop_task()
        .cluster(&settings.cluster)
        .task(&task.arn)
        .reason("chaos")
        .send()
        .await
        .unwrap();
    let run = cli.run(&["plan", "--all"]);
    let stdout = &run.stdout;
    assert_eq!(run.code, 1);
    assert!(
        stdout.contains(&format!("run task {}", revision.arn)),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&foreign_task) && !stdout.contains(&foreign_ap),
        "{stdout}"
    );
    assert!(!stdout.contains("orphaned"), "{stdout}");
}
