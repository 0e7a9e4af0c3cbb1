//! The `clawfleet` binary end to end against moto: commands, output and exit codes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use support::{Fleet, examples};

/// The table prefix of this binary's fleets.
const PREFIX: &str = "cli";

// Inherent methods on the shared runner that only these tests need.
impl Fleet {
    fn get_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["get", "-o", "json"])).expect("get -o json is JSON")
    }
}

#[test]
fn bootstrap_twice_is_fine() {
    let fleet = Fleet::new(PREFIX);
    let out = fleet.ok(&["bootstrap"]);
    assert_eq!(
        out.trim(),
        format!(
            "table/{} already exists\nid-key/_clawfleet/id-key already exists",
            fleet.table
        )
    );
}

#[test]
fn apply_get_describe_restart_delete_end_to_end() {
    let fleet = Fleet::new(PREFIX);
    let out = fleet.ok(&["apply", "-f", &examples()]);
    assert!(out.contains("agent/acme-support created"), "{out}");
    assert!(out.contains("agent/globex-ops created"), "{out}");

    let again = fleet.ok(&["apply", "-f", &examples()]);
    assert_eq!(again.matches("unchanged").count(), 3, "{again}");

    let table = fleet.ok(&["get"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("AGENT ID"), "{table}");
    assert!(lines[0].contains("CLIENT") && lines[0].contains("PHASE") && lines[0].contains("AGE"));
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        table.contains("globex-ops") && table.contains("stopped"),
        "{table}"
    );

    let acme = fleet.ok(&["get", "--client", "acme", "-o", "json"]);
    let acme: Vec<serde_json::Value> = serde_json::from_str(&acme).expect("json");
    assert_eq!(acme.len(), 2);
    assert!(acme.iter().all(|a| a["spec"]["client_id"] == "acme"));

    let one = fleet.ok(&["get", "acme-support", "-o", "yaml"]);
    assert!(one.contains("agent_id: acme-support"), "{one}");

    let described = fleet.ok(&["describe", "acme-support"]);
    assert!(described.contains("Client:       acme"), "{described}");
    assert!(described.contains("Managed by:   cli"), "{described}");
    assert!(described.contains("Generation:   1"), "{described}");
    assert!(described.contains("Spec valid:   yes"), "{described}");

    let restarted = fleet.ok(&["restart", "acme-support"]);
    assert!(restarted.contains("restart requested at"), "{restarted}");
    let agents = fleet.get_json();
    let support = agents
        .iter()
        .find(|a| a["agent_id"] == "acme-support")
        .expect("acme-support listed");
    assert!(support["spec"]["restart_requested_at"].is_string());
    assert_eq!(support["spec"]["generation"], 2);
    // A later apply of the same manifests keeps the restart marker and changes nothing.
    let again = fleet.ok(&["apply", "-f", &examples()]);
    assert_eq!(again.matches("unchanged").count(), 3, "{again}");

    let deleted = fleet.ok(&["delete", "globex-ops", "--purge-data"]);
    assert!(deleted.contains("deletion requested"), "{deleted}");
    let globex = fleet
        .get_json()
        .into_iter()
        .find(|a| a["agent_id"] == "globex-ops")
        .expect("globex-ops listed");
    assert_eq!(globex["spec"]["purge_data_on_delete"], true, "{globex}");
    assert!(fleet.ok(&["get"]).contains("Deleting"));
    // Applying to an agent being deleted is a conflict, not an undelete.
    let run = fleet.run(&["apply", "-f", &format!("{}/globex.yaml", examples())]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("being deleted"), "{}", run.stderr);

    let purged = fleet.ok(&["delete", "globex-ops", "--purge"]);
    assert!(purged.contains("purged"));
    let run = fleet.run(&["describe", "globex-ops"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), "error: agent globex-ops: not found");
}

#[test]
fn apply_reads_stdin_and_reports_updates() {
    let fleet = Fleet::new(PREFIX);
    let manifest = "agent_id: piped\nclient_id: acme\nplan: small\n";
    let run = fleet.run_with_stdin(&["apply", "-f", "-"], manifest);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "agent/piped created");
    let changed = "agent_id: piped\nclient_id: acme\nplan: large\n";
    let run = fleet.run_with_stdin(&["apply", "-f", "-"], changed);
    assert_eq!(run.stdout.trim(), "agent/piped updated");
    let agents = fleet.get_json();
    assert_eq!(agents[0]["spec"]["plan"], "large");
    assert_eq!(agents[0]["spec"]["generation"], 2);
}

#[test]
fn an_invalid_manifest_writes_nothing_and_names_the_field() {
    let fleet = Fleet::new(PREFIX);
    let manifests = "agent_id: fine\nclient_id: acme\n---\nagent_id: broken\nclient_id: acme\nplugins:\n  - {name: a, source: ftp://example.com/a, version: '1'}\n";
    let run = fleet.run_with_stdin(&["apply", "-f", "-"], manifests);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: <stdin>:4 (document 2): plugins[0].source: must be an https:// or git URL"
    );
    assert!(fleet.get_json().is_empty(), "nothing was written");
}

#[test]
fn a_yaml_error_names_file_and_line() {
    let fleet = Fleet::new(PREFIX);
    let dir = std::env::temp_dir().join(local_aws::unique("manifests"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("typo.yaml");
    std::fs::write(
        &file,
        "agent_id: t1\nclient_id: acme\nimgae: openclaw/openclaw:v1\n",
    )
    .expect("write manifest");
    let run = fleet.run(&["apply", "-f", &dir.display().to_string()]);
    assert_eq!(run.code, 1);
    let first = run.stderr.lines().next().unwrap_or_default().to_owned();
    assert!(
        first.starts_with(&format!("error: {}:3 (document 1): ", file.display())),
        "{first}"
    );
    assert!(first.contains("imgae"), "{first}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

#[tokio::test]
async fn a_console_typo_is_reported_and_the_fleet_still_lists() {
    let fleet = Fleet::new(PREFIX);
    fleet.ok(&["apply", "-f", &examples()]);
    let s = |v: &str| AttributeValue::S(v.into());
    fleet
        .dynamodb()
        .await
        .put_item()
        .table_name(&fleet.table)
        .item("agent_id", s("typed"))
        .item("record", s("spec"))
        .item("client_id", s("acme"))
        .item("desired_state", s("runing"))
        .send()
        .await
        .expect("console write");
    let table = fleet.ok(&["get"]);
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("typed") && l.contains("Invalid")),
        "{table}"
    );
    let described = fleet.ok(&["describe", "typed"]);
    assert!(
        described.contains("Spec valid:   no: desired_state: must be \"running\" or \"stopped\""),
        "{described}"
    );
    // An invalid spec can still be deleted.
    assert!(
        fleet
            .ok(&["delete", "typed"])
            .contains("deletion requested")
    );
}

#[test]
fn aws_failures_exit_2_naming_the_operation() {
    let fleet = Fleet::new(PREFIX);
    let out = fleet
        .command(&["get"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: DynamoDB Scan on table {}: ", fleet.table)),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains("DispatchFailure {"),
        "no debug dump: {stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let fleet = Fleet::new(PREFIX);
    assert_eq!(fleet.run(&["frobnicate"]).code, 2);
    assert_eq!(fleet.run(&["apply"]).code, 2);
    assert_eq!(fleet.run(&["get", "-o", "xml"]).code, 2);
    // `--purge` removes the items at once, leaving nothing to drive a purge of the files.
    let both = fleet.run(&["delete", "some-agent", "--purge", "--purge-data"]);
    assert_eq!(both.code, 2);
    assert!(both.stderr.contains("--purge-data"), "{}", both.stderr);
    let missing = fleet.run(&["apply", "-f", "/definitely/not/here.yaml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .starts_with("error: /definitely/not/here.yaml: ")
    );
}

#[test]
fn restart_and_delete_of_unknown_agents_exit_1() {
    let fleet = Fleet::new(PREFIX);
    let run = fleet.run(&["restart", "ghost"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), "error: agent ghost: not found");
    assert_eq!(fleet.run(&["delete", "ghost"]).code, 1);
}

#[test]
fn touch_coalesces_and_wake_refuses_a_stopped_agent() {
    let fleet = Fleet::new(PREFIX);
    fleet.ok(&["apply", "-f", &examples()]);
    let first = fleet.ok(&["touch", "acme-support"]);
    assert!(first.contains("activity recorded"), "{first}");
    let again = fleet.ok(&["touch", "acme-support"]);
    assert!(again.contains("nothing written"), "{again}");
    let woken = fleet.ok(&["wake", "acme-support"]);
    assert!(woken.contains("wake requested at"), "{woken}");
    // Neither is a spec change, nor an agent of its own in listings.
    let agents = fleet.get_json();
    assert_eq!(agents.len(), 3);
    let support = agents
        .iter()
        .find(|a| a["agent_id"] == "acme-support")
        .expect("listed");
    assert_eq!(support["spec"]["generation"], 1);
    // desired_state: stopped wins over a wake.
    let refused = fleet.run(&["wake", "globex-ops"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("desired_state is stopped"),
        "{}",
        refused.stderr
    );
    assert_eq!(fleet.run(&["wake", "ghost"]).code, 1);
    assert_eq!(fleet.run(&["touch", "ghost"]).code, 1);
}
