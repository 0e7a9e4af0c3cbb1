//! The OpenAPI document against the router: every served route documented, nothing documented
//! that is not served, every reference resolved, and docs/openapi.json kept in step.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::http::StatusCode;
use serde_json::Value;
use support::{ACME, Harness};

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let mut served: BTreeSet<(String, String)> = api::v1()
        .table
        .iter()
        .map(|(method, path)| (method.to_string(), (*path).to_owned()))
        .collect();
    served.insert(("GET".to_owned(), "/healthz".to_owned()));
    let documented: BTreeSet<(String, String)> = api::openapi::documented().into_iter().collect();
    assert_eq!(served, documented);

    let doc = api::openapi::document();
    let in_doc: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(in_doc, documented);
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_inside_the_document() {
    let doc = api::openapi::document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 10);
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    assert!(doc.to_string().contains("\"AgentSpec\""));
    assert!(!doc.to_string().contains("$defs"));
}

#[tokio::test]
async fn every_documented_operation_answers_its_documented_statuses_and_never_a_404_route() {
    let h = Harness::new("api-doc").await;
    let doc = api::openapi::document();
    for (method, path) in api::openapi::documented() {
        let concrete = path.replace("{agent_id}", "acme-none");
        let reply = h
            .call(&method, &concrete, Some(ACME), Some("{}"), &[])
            .await;
        let documented = &doc["paths"][&path][method.to_lowercase()]["responses"];
        assert!(
            documented.get(reply.status.as_str()).is_some(),
            "{method} {path} answered {} which is not documented",
            reply.status
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
}

/// Run with `CLAWFLEET_BLESS=1` to rewrite docs/openapi.json after changing the API.
#[test]
fn committed_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let doc = api::openapi::document();
    let mut fresh = serde_json::to_string_pretty(&doc).unwrap();
    fresh.push('\n');
    if std::env::var_os("CLAWFLEET_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let same = serde_json::from_str::<Value>(&committed).is_ok_and(|c| c == doc);
    assert!(
        same,
        "docs/openapi.json is not what the code serves; regenerate it with \
         `CLAWFLEET_BLESS=1 cargo test -p clawfleet-api --test openapi` and commit it"
    );
}
