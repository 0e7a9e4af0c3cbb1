//! `clawfleet sync` and `clawfleet diff` end to end against moto: ownership, adopt, prune and
//! its guard, dry runs, exit codes, and that a sync writes nothing it should not.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use support::{Run, examples};

const SOURCE: &str = "platform";

type Item = HashMap<String, AttributeValue>;

// Inherent methods on the shared run result that only these tests need.
impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// What `diff` says when there is nothing to do: nothing, and exit code 0.
    fn assert_in_sync(&self) {
        assert_eq!(
            (self.code, self.stdout.as_str()),
            (0, ""),
            "{}",
            self.stderr
        );
    }
}

/// One isolated table on the shared local AWS, and a directory of manifests for it.
struct Fleet {
    cli: support::Fleet,
    dir: PathBuf,
}

/// The shared runner's `run`, `command`, `table` and `dynamodb`, on this fleet's table.
impl Deref for Fleet {
    type Target = support::Fleet;

    fn deref(&self) -> &support::Fleet {
        &self.cli
    }
}

impl Fleet {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(local_aws::unique("gitops"));
        std::fs::create_dir_all(&dir).expect("manifest dir");
        Self {
            cli: support::Fleet::new("gitops"),
            dir,
        }
    }

    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// `clawfleet sync DIR --source platform` plus `flags`.
    fn sync(&self, flags: &[&str]) -> Run {
        let dir = self.dir();
        let mut args = vec!["sync", dir.as_str(), "--source", SOURCE];
        args.extend(flags);
        self.run(&args)
    }

    /// `clawfleet diff DIR --source platform` plus `flags`.
    fn diff(&self, flags: &[&str]) -> Run {
        let dir = self.dir();
        let mut args = vec!["diff", dir.as_str(), "--source", SOURCE];
        args.extend(flags);
        self.run(&args)
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).expect("write manifest");
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.join(file)).expect("remove manifest");
    }

    async fn store(&self) -> store::Store {
        store::Store::new(self.dynamodb().await, &self.table)
    }

    /// Every item in the table, in key order: what "writes nothing" is checked against.
    async fn items(&self) -> Vec<Item> {
        let out = self
            .dynamodb()
            .await
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        let mut items = out.items.unwrap_or_default();
        let key = |i: &Item| format!("{:?}{:?}", i.get("agent_id"), i.get("record"));
        items.sort_by_key(key);
        items
    }

    async fn spec_item(&self, agent_id: &str) -> Item {
        self.dynamodb()
            .await
            .get_item()
            .table_name(&self.table)
            .key("agent_id", s(agent_id))
            .key("record", s("spec"))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .unwrap_or_else(|| panic!("agent {agent_id} has no spec item"))
    }

    /// A spec typed in the DynamoDB console: no `managed_by`, no `generation`.
    async fn console_put(&self, agent_id: &str, plan: &str) {
        self.dynamodb()
            .await
            .put_item()
            .table_name(&self.table)
            .item("agent_id", s(agent_id))
            .item("record", s("spec"))
            .item("client_id", s("acme"))
            .item("plan", s(plan))
            .send()
            .await
            .expect("console write");
    }

    /// A spec written through the HTTP API (`managed_by = api`), by the store the API uses.
    async fn api_put(&self, agent_id: &str, plan: &str) {
        let spec = spec::AgentDocument {
            agent_id: Some(agent_id.into()),
            client_id: Some("acme".into()),
            plan: Some(plan.into()),
            ..spec::AgentDocument::default()
        }
        .validate()
        .expect("valid spec");
        self.store()
            .await
            .apply(&spec, "api")
            .await
            .expect("API write");
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// The spec item of one agent among items read earlier.
fn spec_of<'a>(items: &'a [Item], agent_id: &str) -> &'a Item {
    items
        .iter()
        .find(|i| {
            text(i, "agent_id").as_deref() == Some(agent_id)
                && text(i, "record").as_deref() == Some("spec")
        })
        .unwrap_or_else(|| panic!("agent {agent_id} has no spec item"))
}

fn generation(item: &Item) -> Option<String> {
    item.get("generation").and_then(|v| v.as_n().ok()).cloned()
}

/// One manifest document for the tenant `acme`.
fn agent(agent_id: &str, plan: &str) -> String {
    format!("api_version: clawfleet/v1\nagent_id: {agent_id}\nclient_id: acme\nplan: {plan}\n")
}

fn docs(documents: &[String]) -> String {
    documents.join("---\n")
}

#[tokio::test]
async fn sync_creates_then_a_rerun_writes_nothing() {
    let fleet = Fleet::new();
    fleet.write(
        "acme.yaml",
        &docs(&[agent("a1", "small"), agent("a2", "medium")]),
    );
    let run = fleet.sync(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/a1 create", "agent/a2 create"]);
    let a1 = fleet.spec_item("a1").await;
    assert_eq!(text(&a1, "managed_by").as_deref(), Some("gitops:platform"));
    assert_eq!(generation(&a1).as_deref(), Some("1"));

    let before = fleet.items().await;
    let run = fleet.sync(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/a1 unchanged", "agent/a2 unchanged"]);
    assert_eq!(fleet.items().await, before, "a re-run writes nothing");
}

#[test]
fn the_example_manifests_sync_idempotently() {
    let fleet = Fleet::new();
    let examples = examples();
    let sync = |fleet: &Fleet| fleet.run(&["sync", &examples, "--source", "demo", "--prune"]);
    let first = sync(&fleet);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.stdout.matches(" create").count(),
        3,
        "{}",
        first.stdout
    );
    let again = sync(&fleet);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout.matches(" unchanged").count(),
        3,
        "{}",
        again.stdout
    );
    let diff = fleet.run(&["diff", &examples, "--source", "demo", "--prune"]);
    diff.assert_in_sync();
}

#[tokio::test]
async fn sync_updates_a_changed_manifest_and_diff_names_the_fields() {
    let fleet = Fleet::new();
    fleet.write("a1.yaml", &agent("a1", "small"));
    assert_eq!(fleet.sync(&[]).code, 0);

    fleet.write(
        "a1.yaml",
        &format!("{}env:\n  LOG_LEVEL: debug\n", agent("a1", "medium")),
    );
    let diff = fleet.diff(&[]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert_eq!(
        diff.lines(),
        [
            r#"~ agent/a1: plan: "small" -> "medium""#,
            r#"~ agent/a1: env.LOG_LEVEL: (absent) -> "debug""#,
        ]
    );

    let run = fleet.sync(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/a1 update"]);
    let a1 = fleet.spec_item("a1").await;
    assert_eq!(text(&a1, "plan").as_deref(), Some("medium"));
    assert_eq!(generation(&a1).as_deref(), Some("2"));

    let diff = fleet.diff(&[]);
    diff.assert_in_sync();
}

#[tokio::test]
async fn prune_removes_only_this_sources_own_agents() {
    let fleet = Fleet::new();
    fleet.write("keep.yaml", &agent("keep", "small"));
    fleet.write("gone.yaml", &agent("gone", "small"));
    assert_eq!(fleet.sync(&[]).code, 0);
    // Agents of everyone else, all absent from this source's DIR.
    let theirs = std::env::temp_dir().join(local_aws::unique("gitops-other"));
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("o.yaml"), agent("theirs", "small")).unwrap();
    let run = fleet.run(&["sync", &theirs.display().to_string(), "--source", "other"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::write(theirs.join("o.yaml"), agent("by-cli", "small")).unwrap();
    let run = fleet.run(&["apply", "-f", &theirs.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    fleet.api_put("by-api", "small").await;
    fleet.console_put("by-console", "small").await;

    fleet.remove("gone.yaml");
    let before = fleet.items().await;
    let run = fleet.sync(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/keep unchanged"], "prune is opt-in");
    assert_eq!(fleet.items().await, before);

    let run = fleet.sync(&["--prune"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/keep unchanged", "agent/gone prune"]);
    let gone = fleet.spec_item("gone").await;
    assert!(text(&gone, "deletion_requested_at").is_some());
    assert_eq!(generation(&gone).as_deref(), Some("2"));
    for untouched in ["keep", "theirs", "by-api", "by-console", "by-cli"] {
        let old = spec_of(&before, untouched);
        assert_eq!(&fleet.spec_item(untouched).await, old, "{untouched}");
    }

    let after = fleet.items().await;
    let run = fleet.sync(&["--prune"]);
    assert_eq!(
        run.lines(),
        ["agent/keep unchanged"],
        "already being pruned"
    );
    assert_eq!(fleet.items().await, after);
}

#[tokio::test]
async fn agents_of_the_api_and_the_console_are_conflicts_and_stay_untouched() {
    let fleet = Fleet::new();
    fleet.api_put("by-api", "small").await;
    fleet.console_put("by-console", "small").await;
    let before = fleet.items().await;
    fleet.write(
        "all.yaml",
        &docs(&[
            agent("by-api", "large"),
            agent("by-console", "large"),
            agent("fresh", "small"),
        ]),
    );

    let run = fleet.sync(&["--prune"]);
    assert_eq!(run.code, 1, "conflicts exit 1: {}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "agent/by-api conflict: managed by api",
            "agent/by-console conflict: managed by no one (written in the console); --adopt takes it over",
            "agent/fresh create",
        ],
        "a conflict does not stop the rest"
    );
    for id in ["by-api", "by-console"] {
        let old = spec_of(&before, id);
        assert_eq!(&fleet.spec_item(id).await, old, "{id} untouched");
    }

    let diff = fleet.diff(&[]);
    assert_eq!(diff.code, 1);
    assert_eq!(
        diff.lines(),
        [
            "! agent/by-api conflict: managed by api",
            "! agent/by-console conflict: managed by no one (written in the console); --adopt takes it over",
        ]
    );
}

#[tokio::test]
async fn adopt_takes_over_only_agents_no_one_manages() {
    let fleet = Fleet::new();
    fleet.console_put("same", "small").await;
    fleet.console_put("differs", "small").await;
    fleet.api_put("by-api", "small").await;
    fleet.write(
        "all.yaml",
        &docs(&[
            agent("same", "small"),
            agent("differs", "medium"),
            agent("by-api", "small"),
        ]),
    );

    let diff = fleet.diff(&["--adopt"]);
    assert_eq!(diff.code, 1);
    assert!(
        diff.lines()
            .contains(&r#"~ agent/same: managed_by: (absent) -> "gitops:platform""#),
        "{}",
        diff.stdout
    );

    let run = fleet.sync(&["--adopt"]);
    assert_eq!(run.code, 1, "the API's agent is still a conflict");
    assert_eq!(
        run.lines(),
        [
            "agent/by-api conflict: managed by api",
            "agent/differs update (adopted)",
            "agent/same update (adopted)",
        ]
    );
    for id in ["same", "differs"] {
        let item = fleet.spec_item(id).await;
        assert_eq!(
            text(&item, "managed_by").as_deref(),
            Some("gitops:platform")
        );
        assert_eq!(generation(&item).as_deref(), Some("1"), "{id}");
    }
    assert_eq!(
        text(&fleet.spec_item("differs").await, "plan").as_deref(),
        Some("medium")
    );
    assert_eq!(
        text(&fleet.spec_item("by-api").await, "managed_by").as_deref(),
        Some("api")
    );

    fleet.remove("all.yaml");
    fleet.write(
        "mine.yaml",
        &docs(&[agent("same", "small"), agent("differs", "medium")]),
    );
    let run = fleet.sync(&[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.lines(),
        ["agent/differs unchanged", "agent/same unchanged"]
    );
}

#[tokio::test]
async fn prune_refuses_to_empty_a_source_without_allow_empty() {
    let fleet = Fleet::new();
    fleet.write(
        "acme.yaml",
        &docs(&[agent("a1", "small"), agent("a2", "small")]),
    );
    assert_eq!(fleet.sync(&[]).code, 0);
    fleet.remove("acme.yaml");
    let before = fleet.items().await;

    for run in [
        fleet.sync(&["--prune"]),
        fleet.sync(&["--prune", "--dry-run"]),
    ] {
        assert_eq!(run.code, 1);
        assert_eq!(run.stdout, "", "nothing is done, not even in part");
        assert!(
            run.stderr
                .starts_with("error: --prune would remove every agent gitops:platform manages (2)"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("--allow-empty"), "{}", run.stderr);
    }
    assert_eq!(fleet.items().await, before);
    assert_eq!(fleet.diff(&["--prune"]).code, 1);

    let run = fleet.sync(&["--prune", "--allow-empty"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["agent/a1 prune", "agent/a2 prune"]);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let fleet = Fleet::new();
    fleet.write(
        "acme.yaml",
        &docs(&[agent("changed", "small"), agent("gone", "small")]),
    );
    assert_eq!(fleet.sync(&[]).code, 0);
    fleet.console_put("console", "small").await;
    fleet.write(
        "acme.yaml",
        &docs(&[
            agent("changed", "large"),
            agent("console", "small"),
            agent("new", "small"),
        ]),
    );
    let before = fleet.items().await;

    let run = fleet.sync(&["--dry-run", "--prune", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "agent/changed update (dry run)",
            "agent/console update (adopted, dry run)",
            "agent/new create (dry run)",
            "agent/gone prune (dry run)",
        ]
    );
    assert_eq!(fleet.items().await, before);
}

#[tokio::test]
async fn diff_exits_0_in_sync_1_on_differences_and_2_on_errors() {
    let fleet = Fleet::new();
    fleet.write("a1.yaml", &agent("a1", "small"));
    let diff = fleet.diff(&[]);
    assert_eq!(diff.code, 1);
    assert_eq!(diff.lines(), ["+ agent/a1 (not in table)"]);
    assert_eq!(fleet.sync(&[]).code, 0);
    let diff = fleet.diff(&[]);
    diff.assert_in_sync();

    fleet.remove("a1.yaml");
    fleet.write("b1.yaml", &agent("b1", "small"));
    let diff = fleet.diff(&["--prune"]);
    assert_eq!(diff.code, 1);
    assert_eq!(
        diff.lines(),
        ["+ agent/b1 (not in table)", "- agent/a1 (would be pruned)"]
    );

    let missing = fleet.run(&["diff", "/definitely/not/here", "--source", SOURCE]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.starts_with("error: /definitely/not/here: "),
        "{}",
        missing.stderr
    );

    let dir = fleet.dir();
    let unreachable = fleet
        .command(&["diff", &dir, "--source", SOURCE])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run");
    assert_eq!(unreachable.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.starts_with(&format!("error: DynamoDB Scan on table {}: ", fleet.table)),
        "{stderr}"
    );

    // An invalid manifest is input that is not as it should be: 1, like every other command.
    fleet.write("bad.yaml", "agent_id: bad\nclient_id: acme\nplan: huge\n");
    let invalid = fleet.diff(&[]);
    assert_eq!(invalid.code, 1);
    assert!(
        invalid.stderr.contains("plan: must be"),
        "{}",
        invalid.stderr
    );
}

#[tokio::test]
async fn one_invalid_manifest_among_valid_ones_writes_nothing() {
    let fleet = Fleet::new();
    fleet.write("a.yaml", &agent("a1", "small"));
    fleet.write("b.yaml", &agent("b1", "small"));
    assert_eq!(fleet.sync(&[]).code, 0);
    fleet.write("a.yaml", &agent("a1", "large"));
    fleet.remove("b.yaml");
    fleet.write("c.yaml", &agent("c1", "small"));
    fleet.write(
        "d.yaml",
        &docs(&[
            agent("d1", "small"),
            format!(
                "{}plugins:\n  - {{name: x, source: ftp://example.com/x, version: '1'}}\n",
                agent("d2", "small")
            ),
        ]),
    );
    let before = fleet.items().await;

    let run = fleet.sync(&["--prune"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    let file = fleet.dir.join("d.yaml").display().to_string();
    assert_eq!(
        run.stderr.trim(),
        format!("error: {file}:6 (document 2): plugins[0].source: must be an https:// or git URL")
    );
    assert_eq!(fleet.items().await, before, "no create, update or prune");
}

#[tokio::test]
async fn client_id_changes_and_agents_being_deleted_are_conflicts() {
    let fleet = Fleet::new();
    fleet.write(
        "a.yaml",
        &docs(&[agent("moved", "small"), agent("deleting", "small")]),
    );
    assert_eq!(fleet.sync(&[]).code, 0);
    assert_eq!(fleet.run(&["delete", "deleting"]).code, 0);
    fleet.write(
        "a.yaml",
        &docs(&[
            agent("moved", "small").replace("client_id: acme", "client_id: globex"),
            agent("deleting", "large"),
        ]),
    );
    let before = fleet.items().await;
    let run = fleet.sync(&[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.lines(),
        [
            "agent/deleting conflict: being deleted",
            r#"agent/moved conflict: client_id: cannot change once the agent exists (it is "acme")"#,
        ]
    );
    assert_eq!(fleet.items().await, before, "no undelete, no tenant move");
}

/// The race a sync can lose: an edit between its read and its write is a conflict, never an
/// overwrite. Exercised on the store calls the sync makes, with the edit made in between.
#[tokio::test]
async fn a_write_racing_a_console_edit_is_a_conflict() {
    let fleet = Fleet::new();
    fleet.write("a.yaml", &agent("pruned", "small"));
    assert_eq!(fleet.sync(&[]).code, 0);
    fleet.console_put("adopted", "small").await;
    let store = fleet.store().await;
    let read = store.list_specs().await.expect("read");
    // A console edit after the read: no generation bump, so only a whole-item condition sees it.
    for id in ["pruned", "adopted"] {
        fleet
            .dynamodb()
            .await
            .update_item()
            .table_name(&fleet.table)
            .key("agent_id", s(id))
            .key("record", s("spec"))
            .update_expression("SET #plan = :plan")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":plan", s("large"))
            .send()
            .await
            .expect("console edit");
    }
    let stale = |id: &str| read.iter().find(|i| i.agent_id == id).unwrap();
    let prune = store
        .request_deletion_over(stale("pruned"), "2026-11-25T10:00:00Z", false)
        .await;
    assert!(
        matches!(prune, Err(store::StoreError::Conflict { .. })),
        "{prune:?}"
    );
    let spec = stale("adopted").spec.clone().unwrap();
    let claim = store
        .claim_over(&spec, "gitops:platform", stale("adopted"))
        .await;
    assert!(
        matches!(claim, Err(store::StoreError::Conflict { .. })),
        "{claim:?}"
    );
    for id in ["pruned", "adopted"] {
        let item = fleet.spec_item(id).await;
        assert_eq!(
            text(&item, "plan").as_deref(),
            Some("large"),
            "{id} kept its edit"
        );
        assert!(text(&item, "deletion_requested_at").is_none());
    }
}
