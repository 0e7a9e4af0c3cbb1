//! What a hostile tenant or a careless operator can reach (issue 12), against moto.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use support::{ACME, GLOBEX, Harness};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

#[tokio::test]
async fn a_console_edit_of_client_id_hands_nothing_to_the_tenant_it_names() {
    let h = Harness::new("api-move").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-moved", "secret_keys": ["TOKEN"]}"#,
    )
    .await;
    let set = h
        .call(
            "PUT",
            "/v1/agents/acme-moved/secrets",
            Some(ACME),
            Some(r#"{"TOKEN": "s3cret"}"#),
            &[],
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    // The controller's first reconcile recorded the owner in the status item.
    h.dynamodb
        .put_item()
        .table_name(&h.table)
        .set_item(Some(HashMap::from([
            ("agent_id".to_owned(), s("acme-moved")),
            ("record".to_owned(), s("status")),
            ("phase".to_owned(), s("Running")),
            ("client_id".to_owned(), s("acme")),
        ])))
        .send()
        .await
        .unwrap();
    // Someone edits the spec in the console.
    h.console_set("acme-moved", "client_id", "globex").await;
    let before = h.dump().await;

    let base = "/v1/agents/acme-moved";
    for (method, path, body) in [
        ("GET", base.to_owned(), None),
        ("GET", format!("{base}/status"), None),
        ("GET", format!("{base}/secrets"), None),
        (
            "PUT",
            format!("{base}/secrets"),
            Some(r#"{"TOKEN": "stolen"}"#),
        ),
        ("PUT", base.to_owned(), Some(r#"{"plan": "large"}"#)),
        ("POST", format!("{base}/start"), None),
        ("POST", format!("{base}/stop"), None),
        ("POST", format!("{base}/restart"), None),
        ("DELETE", base.to_owned(), None),
    ] {
        let reply = h.call(method, &path, Some(GLOBEX), body, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            reply.text
        );
    }
    let listed = h.get("/v1/agents", GLOBEX).await;
    assert_eq!(
        listed.json["items"],
        serde_json::json!([]),
        "{}",
        listed.text
    );
    assert_eq!(h.dump().await, before, "nothing changed");
    assert_eq!(
        h.secret_value("acme-moved").await.as_deref(),
        Some(r#"{"TOKEN":"s3cret"}"#)
    );
    // The owner still sees it, as its own.
    let own = h.get(base, ACME).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.json["client_id"], "acme");
}
