//! The store against moto's DynamoDB. Each test uses its own table.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use spec::{AgentDocument, AgentSpec, AgentStatus, Phase};
use store::{BootstrapOutcome, SpecError, Store, StoreError, Write};

async fn client() -> Client {
    Client::new(&local_aws::sdk_config().await)
}

async fn fresh_store() -> Store {
    let store = Store::new(client().await, local_aws::unique("agents"));
    store.bootstrap().await.expect("bootstrap");
    store
}

fn spec(agent_id: &str, client_id: &str) -> AgentSpec {
    AgentDocument {
        agent_id: Some(agent_id.into()),
        client_id: Some(client_id.into()),
        plan: Some("small".into()),
        ..AgentDocument::default()
    }
    .validate()
    .expect("valid spec")
}

/// Every item in the store's table, whatever its record.
async fn every_item(store: &Store) -> Vec<HashMap<String, AttributeValue>> {
    client()
        .await
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[tokio::test]
async fn bootstrap_twice_is_fine() {
    let store = Store::new(client().await, local_aws::unique("agents"));
    assert_eq!(store.bootstrap().await.unwrap(), BootstrapOutcome::Created);
    assert_eq!(
        store.bootstrap().await.unwrap(),
        BootstrapOutcome::AlreadyExisted
    );
    let table = client()
        .await
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert!(table.stream_specification().unwrap().stream_enabled());
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some("by-client")
    );
}

#[tokio::test]
async fn bootstrap_refuses_a_table_of_another_shape() {
    let name = local_aws::unique("other");
    let c = client().await;
    c.create_table()
        .table_name(&name)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = Store::new(c, &name).bootstrap().await.unwrap_err();
    assert!(matches!(err, StoreError::TableShape { .. }), "{err}");
    assert!(err.to_string().contains("key schema"), "{err}");
}

#[tokio::test]
async fn apply_creates_then_reports_unchanged_then_updates() {
    let store = fresh_store().await;
    let mut a = spec("acme-one", "acme");
    assert_eq!(store.apply(&a, "cli").await.unwrap(), Write::Created);
    assert_eq!(store.apply(&a, "cli").await.unwrap(), Write::Unchanged);
    let item = store.get_spec("acme-one").await.unwrap().unwrap();
    assert_eq!(item.meta.generation, 1);
    assert_eq!(item.meta.managed_by.as_deref(), Some("cli"));
    assert!(item.meta.created_at.is_some());

    a.image = Some("openclaw/openclaw:v2".into());
    assert_eq!(store.apply(&a, "cli").await.unwrap(), Write::Updated);
    let item = store.get_spec("acme-one").await.unwrap().unwrap();
    assert_eq!(item.meta.generation, 2);
    assert_eq!(item.spec.unwrap(), a);
}

#[tokio::test]
async fn eight_concurrent_applies_lose_no_update() {
    let store = fresh_store().await;
    store.apply(&spec("race", "acme"), "cli").await.unwrap();
    let before = store
        .get_spec("race")
        .await
        .unwrap()
        .unwrap()
        .meta
        .generation;

    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut version = spec("race", "acme");
            version.env.insert("VERSION".into(), i.to_string());
            store.apply(&version, "cli").await.map(|w| (i, w))
        }));
    }
    let mut succeeded = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok((i, Write::Updated)) => succeeded.push(i),
            Ok((_, other)) => panic!("distinct versions cannot be {other:?}"),
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(!succeeded.is_empty());
    assert_eq!(succeeded.len() + conflicts, 8);
    let after = store.get_spec("race").await.unwrap().unwrap();
    assert_eq!(
        after.meta.generation,
        before + succeeded.len() as u64,
        "generation rises by exactly the number of successful applies"
    );
    let stored_version = after.spec.unwrap().env["VERSION"].parse::<u32>().unwrap();
    assert!(succeeded.contains(&stored_version));
}

#[tokio::test]
async fn console_edit_between_read_and_write_is_not_overwritten() {
    let store = fresh_store().await;
    let c = client().await;
    store.apply(&spec("edited", "acme"), "cli").await.unwrap();
    let read = store.get_spec("edited").await.unwrap().unwrap();

    // A person changes the memory in the console: no generation bump, no managed_by.
    c.update_item()
        .table_name(store.table())
        .key("agent_id", s("edited"))
        .key("record", s("spec"))
        .update_expression("REMOVE #plan SET cpu = :cpu, memory = :mem")
        .expression_attribute_names("#plan", "plan")
        .expression_attribute_values(":cpu", AttributeValue::N("1024".into()))
        .expression_attribute_values(":mem", AttributeValue::N("4096".into()))
        .send()
        .await
        .unwrap();

    let mut mine = read.spec.clone().unwrap();
    mine.image = Some("openclaw/openclaw:v9".into());
    let err = store
        .apply_over(&mine, "cli", Some(&read))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");

    let now = store.get_spec("edited").await.unwrap().unwrap();
    let now_spec = now.spec.unwrap();
    assert_eq!(now_spec.resources().memory, 4096, "the console edit stands");
    assert_eq!(now_spec.image, None);
    assert_ne!(now.snapshot.etag(), read.snapshot.etag());
}

#[tokio::test]
async fn a_console_edit_that_adds_an_attribute_is_detected() {
    let store = fresh_store().await;
    let c = client().await;
    store.apply(&spec("added", "acme"), "cli").await.unwrap();
    let read = store.get_spec("added").await.unwrap().unwrap();
    c.update_item()
        .table_name(store.table())
        .key("agent_id", s("added"))
        .key("record", s("spec"))
        .update_expression("SET image = :i")
        .expression_attribute_values(":i", s("openclaw/openclaw:console"))
        .send()
        .await
        .unwrap();
    let mut mine = read.spec.clone().unwrap();
    mine.desired_state = spec::DesiredState::Stopped;
    let err = store.apply_over(&mine, "cli", Some(&read)).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })));
}

#[tokio::test]
async fn create_races_with_an_existing_item() {
    let store = fresh_store().await;
    store.apply(&spec("first", "acme"), "cli").await.unwrap();
    let err = store
        .apply_over(&spec("first", "acme"), "cli", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn client_id_cannot_change() {
    let store = fresh_store().await;
    store.apply(&spec("owned", "acme"), "cli").await.unwrap();
    let err = store
        .apply(&spec("owned", "globex"), "cli")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("client_id: cannot change"),
        "{err}"
    );
}

#[tokio::test]
async fn item_typed_in_the_console_parses() {
    let store = fresh_store().await;
    let c = client().await;
    let item = HashMap::from([
        ("agent_id".to_string(), s("typed")),
        ("record".to_string(), s("spec")),
        ("client_id".to_string(), s("acme")),
        ("cpu".to_string(), AttributeValue::N("2048".into())),
        ("memory".to_string(), AttributeValue::N("8192".into())),
        (
            "secret_keys".to_string(),
            AttributeValue::Ss(vec!["OPENAI_API_KEY".into()]),
        ),
        (
            "skills".to_string(),
            AttributeValue::L(vec![s("web"), s("voice")]),
        ),
    ]);
    c.put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let agent = store.get("typed").await.unwrap().unwrap();
    let spec = agent.spec.unwrap().spec.unwrap();
    assert_eq!(spec.resources().memory, 8192);
    assert_eq!(spec.secret_keys, ["OPENAI_API_KEY"]);
    assert_eq!(spec.skills, ["web", "voice"]);
    assert!(agent.status.is_none());
}

#[tokio::test]
async fn a_bad_item_is_reported_and_the_rest_of_the_fleet_lists() {
    let store = fresh_store().await;
    let c = client().await;
    store.apply(&spec("good", "acme"), "cli").await.unwrap();
    c.put_item()
        .table_name(store.table())
        .item("agent_id", s("bad"))
        .item("record", s("spec"))
        .item("client_id", s("acme"))
        .item("imgae", s("x"))
        .send()
        .await
        .unwrap();
    c.put_item()
        .table_name(store.table())
        .item("agent_id", s("wrongtype"))
        .item("record", s("spec"))
        .item("client_id", s("acme"))
        .item("memory", s("lots"))
        .send()
        .await
        .unwrap();
    let agents = store.list().await.unwrap();
    assert_eq!(agents.len(), 3);
    let by_id: HashMap<_, _> = agents.iter().map(|a| (a.agent_id.as_str(), a)).collect();
    assert!(by_id["good"].spec.as_ref().unwrap().spec.is_ok());
    match &by_id["bad"].spec.as_ref().unwrap().spec {
        Err(SpecError::Item(m)) => assert_eq!(m, "imgae: unknown attribute (a typo?)"),
        other => panic!("{other:?}"),
    }
    match &by_id["wrongtype"].spec.as_ref().unwrap().spec {
        Err(SpecError::Item(m)) => assert!(
            m.starts_with("memory: ") && m.contains("found type S"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Deletion needs only the agent id, even for an item that does not parse.
    store
        .request_deletion("bad", &spec::now_rfc3339(), false)
        .await
        .unwrap();
    let bad = store.get_spec("bad").await.unwrap().unwrap();
    assert!(bad.meta.is_deleting());
}

#[tokio::test]
async fn list_by_client_queries_the_index_with_statuses() {
    let store = fresh_store().await;
    for (agent, client) in [("a1", "acme"), ("a2", "acme"), ("g1", "globex")] {
        store.apply(&spec(agent, client), "cli").await.unwrap();
    }
    let status = AgentStatus {
        phase: Phase::Running,
        ..AgentStatus::default()
    };
    store.put_status("a2", &status, None).await.unwrap();
    let acme = store.list_by_client("acme").await.unwrap();
    let ids: Vec<_> = acme.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(acme[1].status.as_ref().unwrap().phase, Phase::Running);
    assert!(acme[0].status.is_none());
    assert!(store.list_by_client("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn list_reads_every_page() {
    let store = fresh_store().await;
    let c = client().await;
    // Five items of 300 KB exceed one 1 MB Scan page, which moto enforces like DynamoDB.
    let pad = "x".repeat(300_000);
    for i in 0..5 {
        c.put_item()
            .table_name(store.table())
            .item("agent_id", s(&format!("p{i}")))
            .item("record", s("spec"))
            .item("client_id", s("acme"))
            .item("pad", s(&pad))
            .send()
            .await
            .unwrap();
    }
    let first_page = c.scan().table_name(store.table()).send().await.unwrap();
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the fixture must span several pages"
    );
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn status_writes_are_skipped_when_nothing_changed() {
    let store = fresh_store().await;
    store.apply(&spec("st", "acme"), "cli").await.unwrap();
    let mut status = AgentStatus {
        phase: Phase::Provisioning,
        updated_at: Some("2026-11-25T10:00:00Z".into()),
        ..AgentStatus::default()
    };
    assert!(store.put_status("st", &status, None).await.unwrap());
    let again = AgentStatus {
        updated_at: Some("2026-11-25T10:05:00Z".into()),
        ..status.clone()
    };
    assert!(!store.put_status("st", &again, Some(&status)).await.unwrap());
    status.phase = Phase::Running;
    assert!(store.put_status("st", &status, Some(&again)).await.unwrap());
    let read = store.get("st").await.unwrap().unwrap();
    assert_eq!(read.status.unwrap().phase, Phase::Running);
    // A status write never changes the spec item.
    assert_eq!(read.spec.unwrap().meta.generation, 1);
}

#[tokio::test]
async fn deleting_agents_refuse_apply_and_restart() {
    let store = fresh_store().await;
    let s = spec("gone", "acme");
    store.apply(&s, "cli").await.unwrap();
    store
        .request_restart("gone", "2026-11-25T10:00:00Z")
        .await
        .unwrap();
    let item = store.get_spec("gone").await.unwrap().unwrap();
    assert_eq!(item.meta.generation, 2);
    assert_eq!(
        item.spec.as_ref().unwrap().restart_requested_at.as_deref(),
        Some("2026-11-25T10:00:00Z")
    );
    store
        .request_deletion("gone", &spec::now_rfc3339(), false)
        .await
        .unwrap();
    assert!(matches!(
        store.apply(&s, "cli").await,
        Err(StoreError::Deleting { .. })
    ));
    assert!(matches!(
        store.request_restart("gone", "2026-11-25T11:00:00Z").await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .request_restart("never-existed", "2026-11-25T11:00:00Z")
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let item = store.get_spec("gone").await.unwrap().unwrap();
    store.delete_items("gone", &item.snapshot).await.unwrap();
    assert!(store.get("gone").await.unwrap().is_none());
}

#[tokio::test]
async fn aws_errors_name_the_operation() {
    let store = Store::new(client().await, local_aws::unique("missing"));
    let err = store.get_spec("x").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("DynamoDB GetItem on table missing-"),
        "{text}"
    );
    assert!(text.contains("ResourceNotFoundException"), "{text}");
}

#[tokio::test]
async fn a_toggle_lands_only_on_the_incarnation_that_was_read() {
    let store = fresh_store().await;
    store.apply(&spec("reused", "acme"), "api").await.unwrap();
    let read = store.get_spec("reused").await.unwrap().unwrap();
    // Deleted and created again, by another tenant, between the read and the write.
    store.delete_items("reused", &read.snapshot).await.unwrap();
    store.apply(&spec("reused", "globex"), "api").await.unwrap();
    let globex = store.get_spec("reused").await.unwrap().unwrap();
    assert!(matches!(
        store
            .set_desired_state(&read, spec::DesiredState::Stopped)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .request_restart_of(&read, "2026-11-25T12:00:00Z")
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let after = store.get_spec("reused").await.unwrap().unwrap();
    assert_eq!(
        after.snapshot, globex.snapshot,
        "the other tenant's agent was touched"
    );
    // On the incarnation read, both go through.
    store
        .set_desired_state(&globex, spec::DesiredState::Stopped)
        .await
        .unwrap();
    store
        .request_restart_of(&globex, "2026-11-25T12:00:00Z")
        .await
        .unwrap();
    let done = store
        .get_spec("reused")
        .await
        .unwrap()
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(done.desired_state, spec::DesiredState::Stopped);
    assert_eq!(
        done.restart_requested_at.as_deref(),
        Some("2026-11-25T12:00:00Z")
    );
}

#[tokio::test]
async fn the_secret_writer_lock_is_held_by_one_writer_and_leaves_no_item() {
    let store = fresh_store().await;
    let minute = std::time::Duration::from_secs(60);
    assert!(
        store
            .lock_secret("acme-1", "writer-a", minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .lock_secret("acme-1", "writer-b", minute)
            .await
            .unwrap()
    );
    // Another agent's lock is another item.
    assert!(
        store
            .lock_secret("acme-2", "writer-b", minute)
            .await
            .unwrap()
    );
    // Only the holder releases it.
    store.unlock_secret("acme-1", "writer-b").await.unwrap();
    assert!(
        !store
            .lock_secret("acme-1", "writer-b", minute)
            .await
            .unwrap()
    );
    store.unlock_secret("acme-1", "writer-a").await.unwrap();
    assert!(
        store
            .lock_secret("acme-1", "writer-b", minute)
            .await
            .unwrap()
    );
    // An expired lock is taken over.
    assert!(
        store
            .lock_secret("acme-3", "crashed", std::time::Duration::ZERO)
            .await
            .unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store
            .lock_secret("acme-3", "writer-c", minute)
            .await
            .unwrap()
    );
    for (agent, holder) in [
        ("acme-1", "writer-b"),
        ("acme-2", "writer-b"),
        ("acme-3", "writer-c"),
    ] {
        store.unlock_secret(agent, holder).await.unwrap();
    }
    let items = every_item(&store).await;
    assert!(items.is_empty(), "{items:?}");
    assert!(store.list().await.unwrap().is_empty());

    // A lock left by a writer that crashed goes with the agent's other items.
    store.apply(&spec("acme-4", "acme"), "api").await.unwrap();
    assert!(
        store
            .lock_secret("acme-4", "crashed", minute)
            .await
            .unwrap()
    );
    let read = store.get_spec("acme-4").await.unwrap().unwrap();
    store.delete_items("acme-4", &read.snapshot).await.unwrap();
    let left = every_item(&store).await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_stream_record_the_sdk_cannot_parse_is_named_by_its_sequence_number() {
    use store::stream::{ChangeFeed, DynamoStream, FeedError, Position};
    let store = fresh_store().await;
    let config = local_aws::sdk_config().await;
    let stream = DynamoStream::of(&store, aws_sdk_dynamodbstreams::Client::new(&config))
        .await
        .unwrap();
    let shard = stream.shards().await.unwrap().remove(0).id;
    // moto keeps an empty map key, which the SDK refuses to parse: one such record fails the
    // whole GetRecords page.
    let tags = AttributeValue::M(HashMap::from([(String::new(), s("x"))]));
    client()
        .await
        .put_item()
        .table_name(store.table())
        .item("agent_id", s("broken"))
        .item("record", s("spec"))
        .item("tags", tags)
        .send()
        .await
        .unwrap();
    let iterator = stream
        .iterator(&shard, &Position::TrimHorizon)
        .await
        .unwrap();
    match stream.read_one(&iterator).await {
        Err(FeedError::Unreadable {
            sequence: Some(sequence),
            ..
        }) => assert!(!sequence.is_empty()),
        other => panic!("expected an unreadable page naming its record, got {other:?}"),
    }
}

#[tokio::test]
async fn the_id_key_is_made_once_at_random_and_no_listing_shows_it() {
    let store = fresh_store().await;
    assert_eq!(store.id_key().await.unwrap(), None);
    assert!(store.ensure_id_key().await.unwrap(), "created");
    let key = store.id_key().await.unwrap().expect("a key");
    assert_eq!(key.len(), 64);
    assert!(
        !store.ensure_id_key().await.unwrap(),
        "kept, never replaced"
    );
    assert_eq!(store.id_key().await.unwrap(), Some(key.clone()));
    let other = fresh_store().await;
    other.ensure_id_key().await.unwrap();
    assert_ne!(other.id_key().await.unwrap(), Some(key), "random per table");

    store.apply(&spec("acme-1", "acme"), "cli").await.unwrap();
    let ids = |agents: Vec<store::Agent>| -> Vec<String> {
        agents.into_iter().map(|a| a.agent_id).collect()
    };
    assert_eq!(ids(store.list().await.unwrap()), ["acme-1"]);
    assert_eq!(store.list_specs().await.unwrap().len(), 1);
    assert_eq!(
        ids(store.page_all(100, None).await.unwrap().agents),
        ["acme-1"]
    );
}

/// Rewrites every BatchGetItem answer into "nothing processed, this key left over", as
/// DynamoDB does under throttling and moto never does.
#[derive(Debug)]
struct NothingProcessed {
    table: String,
}

impl aws_sdk_dynamodb::config::Intercept for NothingProcessed {
    fn name(&self) -> &'static str {
        "NothingProcessed"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        let is_batch = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == "BatchGetItem");
        if is_batch {
            let table = &self.table;
            let answer = format!(
                r#"{{"Responses": {{"{table}": []}}, "UnprocessedKeys": {{"{table}": {{"Keys": [{{"agent_id": {{"S": "acme-1"}}, "record": {{"S": "status"}}}}]}}}}}}"#
            );
            *context.response_mut().body_mut() = aws_smithy_types::body::SdkBody::from(answer);
        }
        Ok(())
    }
}

#[tokio::test]
async fn batch_get_keys_left_unprocessed_after_every_retry_are_an_error_not_a_partial_answer() {
    let store = fresh_store().await;
    store.apply(&spec("acme-1", "acme"), "cli").await.unwrap();
    let config = local_aws::sdk_config().await;
    let throttled = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(NothingProcessed {
            table: store.table().to_owned(),
        })
        .build();
    let throttled = Store::new(Client::from_conf(throttled), store.table());
    let err = throttled.list_by_client("acme").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Incomplete { missing: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("BatchGetItem"), "{err}");
}

#[tokio::test]
async fn the_fleet_summary_is_read_back_and_no_listing_shows_it() {
    let store = fresh_store().await;
    assert_eq!(store.fleet_summary().await.unwrap(), None);
    for (agent, client) in [("a1", "acme"), ("g1", "globex")] {
        store.apply(&spec(agent, client), "cli").await.unwrap();
    }
    let agents = store.list().await.unwrap();
    let summary = store::FleetSummary::of(&agents, Some("controller-a"), "2026-11-29T12:00:00Z");
    store.put_fleet_summary(&summary).await.unwrap();
    assert_eq!(store.fleet_summary().await.unwrap(), Some(summary.clone()));
    assert_eq!(summary.agents, 2);

    let ids = |agents: Vec<store::Agent>| -> Vec<String> {
        agents.into_iter().map(|a| a.agent_id).collect()
    };
    assert_eq!(ids(store.list().await.unwrap()), ["a1", "g1"]);
    assert_eq!(
        ids(store.page_all(100, None).await.unwrap().agents),
        ["a1", "g1"]
    );
    let specs: Vec<String> = store
        .list_specs()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.agent_id)
        .collect();
    assert_eq!(specs, ["a1", "g1"]);
    assert!(
        every_item(&store)
            .await
            .iter()
            .any(|i| i.get("agent_id") == Some(&s(store::summary::SUMMARY_ID))),
        "the item is in the table"
    );
}

/// A schedule as a person types it in the console: a map with a string and a list of maps,
/// the days as a string set or a list.
fn console_schedule(days: AttributeValue, timezone: &str) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("timezone".to_string(), s(timezone)),
        (
            "windows".to_string(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("days".to_string(), days),
                ("start".to_string(), s("08:00")),
                ("end".to_string(), s("20:00")),
            ]))]),
        ),
    ]))
}

#[tokio::test]
async fn a_schedule_typed_in_the_console_as_a_map_parses_and_a_bad_one_names_its_field() {
    let store = fresh_store().await;
    let c = client().await;
    let put = |id: &str, schedule: AttributeValue| {
        c.put_item()
            .table_name(store.table())
            .item("agent_id", s(id))
            .item("record", s("spec"))
            .item("client_id", s("acme"))
            .item("schedule", schedule)
            .item("idle_stop_after", s("30m"))
            .send()
    };
    put(
        "as-list",
        console_schedule(AttributeValue::L(vec![s("mon"), s("fri")]), "Europe/Madrid"),
    )
    .await
    .unwrap();
    put(
        "as-set",
        console_schedule(AttributeValue::Ss(vec!["mon".into()]), "Europe/Madrid"),
    )
    .await
    .unwrap();
    put(
        "bad-zone",
        console_schedule(AttributeValue::L(vec![s("mon")]), "Mars/Olympus"),
    )
    .await
    .unwrap();
    put(
        "bad-type",
        console_schedule(
            AttributeValue::L(vec![AttributeValue::N("1".into())]),
            "UTC",
        ),
    )
    .await
    .unwrap();
    for id in ["as-list", "as-set"] {
        let agent = store.get(id).await.unwrap().unwrap();
        let spec = agent.spec.unwrap().spec.unwrap();
        let schedule = spec.schedule.expect("a schedule");
        assert_eq!(schedule.timezone, "Europe/Madrid", "{id}");
        assert_eq!(
            (schedule.windows[0].start, schedule.windows[0].end),
            (480, 1200)
        );
        assert_eq!(spec.idle_stop_after, Some(1800));
    }
    match store
        .get("bad-zone")
        .await
        .unwrap()
        .unwrap()
        .spec
        .unwrap()
        .spec
    {
        Err(SpecError::Invalid(e)) => assert!(e.names("schedule.timezone"), "{e}"),
        other => panic!("{other:?}"),
    }
    match store
        .get("bad-type")
        .await
        .unwrap()
        .unwrap()
        .spec
        .unwrap()
        .spec
    {
        Err(SpecError::Item(m)) => assert!(
            m.starts_with("schedule.windows[0].days[0]: ") && m.contains("found type N"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}
