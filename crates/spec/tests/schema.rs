//! docs/agent.schema.json: generated from the spec types, committed, and kept in step.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use spec::AgentDocument;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/agent.schema.json")
}

/// Objects with their keys in sorted order, whatever map serde_json was built with: a
/// workspace build unifies in `preserve_order` for some crates, and the committed file must not
/// depend on which crates were built together.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

fn generated() -> String {
    let mut text = serde_json::to_string_pretty(&sorted(AgentDocument::manifest_schema())).unwrap();
    text.push('\n');
    text
}

/// Run with `CLAWFLEET_BLESS=1` to rewrite the committed file after changing the spec types.
#[test]
fn committed_schema_matches_the_spec_types() {
    let path = committed_path();
    let fresh = generated();
    if std::env::var_os("CLAWFLEET_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let same = serde_json::from_str::<serde_json::Value>(&committed)
        .is_ok_and(|c| c == AgentDocument::manifest_schema());
    assert!(
        same && committed == fresh,
        "docs/agent.schema.json is not what the spec types generate; regenerate it with \
         `CLAWFLEET_BLESS=1 cargo test -p clawfleet-spec --test schema` and commit it"
    );
}

#[test]
fn schema_refuses_bookkeeping_and_unknown_fields() {
    let schema = AgentDocument::manifest_schema();
    assert_eq!(schema["additionalProperties"], false);
    let properties = schema["properties"].as_object().unwrap();
    for field in AgentDocument::BOOKKEEPING {
        assert!(!properties.contains_key(field), "{field} is in the schema");
    }
    for field in AgentDocument::ATTRIBUTES {
        if !AgentDocument::BOOKKEEPING.contains(&field) {
            assert!(properties.contains_key(field), "{field} is missing");
        }
    }
    assert_eq!(
        schema["required"],
        serde_json::json!(["agent_id", "client_id"])
    );
}

#[test]
fn schema_id_pattern_agrees_with_validation() {
    let schema = AgentDocument::manifest_schema();
    let pattern = schema["properties"]["agent_id"]["pattern"]
        .as_str()
        .unwrap();
    let max = schema["properties"]["agent_id"]["maxLength"]
        .as_u64()
        .unwrap();
    let label = regex::Regex::new(pattern).unwrap();
    let long = "a".repeat(41);
    for id in [
        "a",
        "acme-support",
        "a1-b2",
        "-a",
        "a-",
        "Acme",
        "a_b",
        "",
        long.as_str(),
    ] {
        let by_schema = label.is_match(id) && id.chars().count() as u64 <= max;
        let document = AgentDocument {
            agent_id: Some(id.to_owned()),
            client_id: Some("acme".to_owned()),
            ..AgentDocument::default()
        };
        let by_validation = document.validate().is_ok();
        assert_eq!(by_schema, by_validation, "agent_id {id:?}");
    }
}

#[test]
fn schema_enums_agree_with_validation() {
    let schema = AgentDocument::manifest_schema();
    let values = |field: &str| -> Vec<String> {
        schema["properties"][field]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    for plan in values("plan") {
        let document = AgentDocument {
            agent_id: Some("a1".into()),
            client_id: Some("acme".into()),
            plan: Some(plan.clone()),
            ..AgentDocument::default()
        };
        assert!(document.validate().is_ok(), "plan {plan}");
    }
    for state in values("desired_state") {
        let document = AgentDocument {
            agent_id: Some("a1".into()),
            client_id: Some("acme".into()),
            desired_state: Some(state.clone()),
            ..AgentDocument::default()
        };
        assert!(document.validate().is_ok(), "desired_state {state}");
    }
}
