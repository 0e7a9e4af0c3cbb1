//! ETags and If-Match against moto: stale tags are refused, console edits make them stale, and
//! concurrent writers never lose an update.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{ACME, Harness};

#[tokio::test]
async fn a_stale_if_match_is_a_412_including_after_a_console_edit() {
    let h = Harness::new("api-etag").await;
    let created = h.create(ACME, r#"{"agent_id": "acme-etag"}"#).await;
    let first = created.etag();

    let put = h
        .call(
            "PUT",
            "/v1/agents/acme-etag",
            Some(ACME),
            Some(r#"{"plan": "medium"}"#),
            &[("if-match", &first)],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    // The tag read before that write is stale now, for PUT and for DELETE.
    let stale = h
        .call(
            "PUT",
            "/v1/agents/acme-etag",
            Some(ACME),
            Some(r#"{"plan": "large"}"#),
            &[("if-match", &first)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.content_type(), "application/problem+json");
    let stale = h
        .call(
            "DELETE",
            "/v1/agents/acme-etag",
            Some(ACME),
            None,
            &[("if-match", &first)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);

    // A person edits the item in the console: no generation bump, yet the tag changes.
    let current = put.etag();
    h.console_set("acme-etag", "image", "openclaw/agent:console")
        .await;
    let after_console = h.get("/v1/agents/acme-etag", ACME).await;
    assert_eq!(
        after_console.json["metadata"]["generation"],
        put.json["metadata"]["generation"]
    );
    assert_ne!(after_console.etag(), current);
    for (method, body) in [("PUT", Some(r#"{"plan": "large"}"#)), ("DELETE", None)] {
        let reply = h
            .call(
                method,
                "/v1/agents/acme-etag",
                Some(ACME),
                body,
                &[("if-match", &current)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED, "{method}");
    }
    let kept = h.get("/v1/agents/acme-etag", ACME).await;
    assert_eq!(kept.json["spec"]["image"], "openclaw/agent:console");
    assert_eq!(kept.json["spec"]["plan"], "medium");
    assert_eq!(kept.json["metadata"]["deletion_requested_at"], Value::Null);

    // With the fresh tag both go through.
    let put = h
        .call(
            "PUT",
            "/v1/agents/acme-etag",
            Some(ACME),
            Some(r#"{"plan": "large"}"#),
            &[("if-match", &after_console.etag())],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let deleted = h
        .call(
            "DELETE",
            "/v1/agents/acme-etag",
            Some(ACME),
            None,
            &[("if-match", &put.etag())],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_with_one_etag_let_exactly_one_through() {
    let h = Arc::new(Harness::new("api-race").await);
    let etag = h.create(ACME, r#"{"agent_id": "acme-race"}"#).await.etag();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let h = Arc::clone(&h);
            let etag = etag.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"image": "openclaw/agent:{i}"}}"#);
                let reply = h
                    .call(
                        "PUT",
                        "/v1/agents/acme-race",
                        Some(ACME),
                        Some(&body),
                        &[("if-match", &etag)],
                    )
                    .await;
                (i, reply.status)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for writer in writers {
        let (i, status) = writer.await.unwrap();
        match status {
            StatusCode::OK => winners.push(i),
            StatusCode::PRECONDITION_FAILED => {}
            other => panic!("writer {i}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = h.get("/v1/agents/acme-race", ACME).await;
    assert_eq!(
        stored.json["spec"]["image"],
        format!("openclaw/agent:{}", winners[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loops_lose_no_update() {
    let h = Arc::new(Harness::new("api-lost").await);
    h.create(ACME, r#"{"agent_id": "acme-tags"}"#).await;
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                let mut retries = 0;
                loop {
                    let got = h.get("/v1/agents/acme-tags", ACME).await;
                    let mut spec = got.json["spec"].clone();
                    spec["tags"][format!("writer{i}")] = json!("yes");
                    let reply = h
                        .call(
                            "PUT",
                            "/v1/agents/acme-tags",
                            Some(ACME),
                            Some(&spec.to_string()),
                            &[("if-match", &got.etag())],
                        )
                        .await;
                    match reply.status {
                        StatusCode::OK => return retries,
                        StatusCode::PRECONDITION_FAILED => retries += 1,
                        other => panic!("writer {i}: {other}: {}", reply.text),
                    }
                    assert!(retries < 50, "writer {i} starved");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = h.get("/v1/agents/acme-tags", ACME).await;
    let tags = stored.json["spec"]["tags"].as_object().unwrap();
    for i in 0..6 {
        assert_eq!(
            tags[&format!("writer{i}")],
            "yes",
            "writer {i}'s update was lost: {tags:?}"
        );
    }
    // Six writes on top of the creation.
    assert_eq!(stored.json["metadata"]["generation"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_secret_writes_keep_every_key() {
    let h = Arc::new(Harness::new("api-secret-race").await);
    h.create(ACME, r#"{"agent_id": "acme-keys"}"#).await;
    // No secret yet: the writers race to create it, then to merge into it.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                let body = format!(r#"{{"KEY_{i}": "value-{i}"}}"#);
                let reply = h
                    .call(
                        "PUT",
                        "/v1/agents/acme-keys/secrets",
                        Some(ACME),
                        Some(&body),
                        &[],
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "writer {i}: {}", reply.text);
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored: Value = serde_json::from_str(&h.secret_value("acme-keys").await.unwrap()).unwrap();
    let keys = h.get("/v1/agents/acme-keys/secrets", ACME).await;
    for i in 0..8 {
        assert_eq!(stored[format!("KEY_{i}")], format!("value-{i}"), "{stored}");
        assert!(
            keys.json["keys"]
                .as_array()
                .unwrap()
                .contains(&json!(format!("KEY_{i}"))),
            "the Description lost KEY_{i}: {}",
            keys.text
        );
    }
}
