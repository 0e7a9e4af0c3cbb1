//! `clawfleet secrets set` against moto: values reach Secrets Manager and nowhere else, not
//! the table, not the output, not logs at RUST_LOG=trace with the SDK's own logs included.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Output};

struct Run {
    table: String,
    prefix: String,
}

impl Run {
    fn new() -> Self {
        let run = Self {
            table: local_aws::unique("secrets"),
            prefix: format!("/{}/agents/", local_aws::unique("p")),
        };
        assert!(run.cmd(&["bootstrap"]).status.success());
        run
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, "warn")
    }

    fn cmd_env(&self, args: &[&str], log: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_clawfleet"))
            .args(args)
            .env("CLAWFLEET_TABLE", &self.table)
            .env("CLAWFLEET_SECRET_PREFIX", &self.prefix)
            .env("AWS_ENDPOINT_URL", local_aws::endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", log)
            .output()
            .unwrap()
    }

    fn apply(&self, manifest: &str) {
        let dir = std::env::temp_dir().join(local_aws::unique("m"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.yaml");
        std::fs::write(&file, manifest).unwrap();
        let out = self.cmd(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn values_reach_secrets_manager_and_nowhere_else() {
    let run = Run::new();
    let agent = local_aws::unique("agent");
    run.apply(&format!(
        "agent_id: {agent}\nclient_id: acme\nsecret_keys: [OPENAI_API_KEY, GITHUB_TOKEN]\n"
    ));
    let value_one = local_aws::unique("value-one");
    let value_two = local_aws::unique("value-two");
    let env_file = std::env::temp_dir().join(local_aws::unique("env"));
    std::fs::write(&env_file, format!("# keys\nOPENAI_API_KEY={value_one}\n\n")).unwrap();

    let out = run.cmd_env(
        &[
            "secrets",
            "set",
            &agent,
            "--from-env-file",
            env_file.to_str().unwrap(),
            "--from-literal",
            &format!("GITHUB_TOKEN={value_two}"),
        ],
        "trace",
    );
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("GITHUB_TOKEN, OPENAI_API_KEY"),
        "{printed}"
    );
    assert!(printed.contains("values not shown"), "{printed}");
    assert!(
        printed.lines().count() > 20,
        "trace logs, the SDK's included, were captured"
    );
    assert!(
        !printed.contains(&value_one) && !printed.contains(&value_two),
        "a value leaked into the output or logs"
    );

    // In Secrets Manager: the values, and the key names in the Description.
    let config = local_aws::sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let name = format!("{}{agent}/secrets", run.prefix);
    let stored = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    let values: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(values["OPENAI_API_KEY"], value_one.as_str());
    assert_eq!(values["GITHUB_TOKEN"], value_two.as_str());
    let described = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(
        described.description(),
        Some("clawfleet keys: GITHUB_TOKEN,OPENAI_API_KEY")
    );
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("clawfleet:client-id") && t.value() == Some("acme"))
    );

    // Nowhere in the table.
    let dump = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(&run.table)
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", dump.items());
    assert!(dump.contains(&agent));
    assert!(!dump.contains(&value_one) && !dump.contains(&value_two));

    // A second set merges; --restart asks for a new task.
    let value_three = local_aws::unique("value-three");
    let out = run.cmd(&[
        "secrets",
        "set",
        &agent,
        "--from-literal",
        &format!("OPENAI_API_KEY={value_three}"),
        "--restart",
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("restart requested"), "{printed}");
    assert!(!printed.contains(&value_three));
    let stored = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    let values: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(values["OPENAI_API_KEY"], value_three.as_str());
    assert_eq!(
        values["GITHUB_TOKEN"],
        value_two.as_str(),
        "keys not given are kept"
    );
    let listed = run.cmd(&["get", &agent, "-o", "json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("restart_requested_at"));

    let keys = run.cmd(&["secrets", "keys", &agent]);
    assert_eq!(
        String::from_utf8_lossy(&keys.stdout),
        "GITHUB_TOKEN\nOPENAI_API_KEY\n"
    );
}

#[test]
fn secrets_are_refused_for_an_agent_with_no_spec() {
    let run = Run::new();
    let out = run.cmd(&["secrets", "set", "ghost", "--from-literal", "A=b"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: agent ghost: not found; secrets are set only for an existing agent"
    );
}

#[test]
fn a_bad_env_file_line_is_named_without_its_value() {
    let run = Run::new();
    let agent = local_aws::unique("agent");
    run.apply(&format!("agent_id: {agent}\nclient_id: acme\n"));
    let file = std::env::temp_dir().join(local_aws::unique("env"));
    std::fs::write(&file, "GOOD=1\nthis line has a secret-ish-value-xyz\n").unwrap();
    let out = run.cmd(&[
        "secrets",
        "set",
        &agent,
        "--from-env-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("error: {}:2: expected KEY=VALUE", file.display())
    );
    let lower = run.cmd(&[
        "secrets",
        "set",
        &agent,
        "--from-literal",
        "lower=value-xyz",
    ]);
    assert_eq!(lower.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&lower.stderr).contains("value-xyz"));
    let none = run.cmd(&["secrets", "set", &agent]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "nothing to set is a usage error"
    );
}
