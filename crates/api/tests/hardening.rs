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
            ("owner_client_id".to_owned(), s("acme")),
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

#[tokio::test]
async fn a_tenant_may_choose_only_ids_that_start_with_its_own_name_and_admins_any() {
    let h = Harness::new("api-squat").await;
    let squat = h
        .call(
            "POST",
            "/v1/agents",
            Some(GLOBEX),
            Some(r#"{"agent_id": "acme-support2"}"#),
            &[],
        )
        .await;
    assert_eq!(
        squat.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        squat.text
    );
    assert_eq!(squat.json["errors"][0]["field"], "agent_id");
    assert!(squat.text.contains("globex-"), "{}", squat.text);
    let bare = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some(r#"{"agent_id": "acme"}"#),
            &[],
        )
        .await;
    assert_eq!(
        bare.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bare.text
    );
    h.create(GLOBEX, r#"{"agent_id": "globex-support"}"#).await;
    h.create(
        support::ADMIN,
        r#"{"agent_id": "legacy-bot", "client_id": "globex"}"#,
    )
    .await;
    assert_eq!(
        h.get("/v1/agents/legacy-bot", GLOBEX).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn keyed_ids_cannot_be_computed_without_the_servers_key() {
    use sha2::{Digest, Sha256};
    let h = Harness::new("api-keyed").await;
    // The id the old, keyless formula gives: anyone could compute and pre-create it.
    let digest = Sha256::digest(b"acme\nsignup-4712");
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let predictable: String = digest
        .iter()
        .take(8)
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect();
    h.create(
        support::ADMIN,
        &format!(r#"{{"agent_id": "acme-{predictable}", "client_id": "globex"}}"#),
    )
    .await;
    let made = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some("{}"),
            &[("idempotency-key", "signup-4712")],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_ne!(made.json["agent_id"], format!("acme-{predictable}"));
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_a_422_and_one_with_control_characters_a_400()
 {
    let h = Harness::new("api-idem-body").await;
    let h = &h;
    let post = |body: &'static str, key: &'static str| async move {
        h.call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    };
    let first = post(r#"{"plan": "small"}"#, "order-9").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let same = post(r#"{ "plan" : "small" }"#, "order-9").await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "the same request replays: {}",
        same.text
    );
    let before = h.dump().await;
    let other = post(r#"{"plan": "large"}"#, "order-9").await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );
    assert_eq!(other.json["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(h.dump().await, before, "nothing changed");
    assert!(before.contains("idempotency_fingerprint"), "{before}");

    let tabbed = post("{}", "order\t10").await;
    assert_eq!(tabbed.status, StatusCode::BAD_REQUEST, "{}", tabbed.text);
    assert_eq!(tabbed.json["errors"][0]["field"], "Idempotency-Key");
}

/// Follows `next_cursor` from the first page, at most 200 pages.
async fn list_all(h: &Harness, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let path = match &cursor {
            Some(c) => format!("/v1/agents?limit={limit}&cursor={c}"),
            None => format!("/v1/agents?limit={limit}"),
        };
        let page = h.get(&path, support::ADMIN).await;
        assert_eq!(page.status, StatusCode::OK, "limit {limit}: {}", page.text);
        let items = page.json["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        ids.extend(
            items
                .iter()
                .map(|i| i["agent_id"].as_str().unwrap().to_owned()),
        );
        match page.json["next_cursor"].as_str() {
            Some(next) => {
                assert_ne!(
                    cursor.as_deref(),
                    Some(next),
                    "limit {limit}: the same cursor again"
                );
                cursor = Some(next.to_owned());
            }
            None => return ids,
        }
    }
    panic!("limit {limit}: more than 200 pages");
}

#[tokio::test]
async fn the_admin_listing_shows_every_agent_once_at_every_page_size() {
    let h = Harness::new("api-pages").await;
    let mut expected = Vec::new();
    for i in 0..9 {
        let (token, id) = if i % 2 == 0 {
            (ACME, format!("acme-a{i}"))
        } else {
            (GLOBEX, format!("globex-g{i}"))
        };
        h.create(token, &format!(r#"{{"agent_id": "{id}"}}"#)).await;
        expected.push(id);
    }
    // Statuses, a lease, a secret-writer lock, the id key, and console-typed ids that are no
    // DNS labels: items a page can end on.
    let put = |item: Vec<(&str, AttributeValue)>| {
        h.dynamodb
            .put_item()
            .table_name(&h.table)
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
    };
    for id in expected.iter().step_by(2) {
        put(vec![
            ("agent_id", s(id)),
            ("record", s("status")),
            ("phase", s("Running")),
        ])
        .await
        .unwrap();
    }
    put(vec![("agent_id", s("_leader")), ("record", s("lease"))])
        .await
        .unwrap();
    put(vec![
        ("agent_id", s("acme-a0")),
        ("record", s("secret-lock")),
    ])
    .await
    .unwrap();
    h.store.ensure_id_key().await.unwrap();
    for id in ["Not A Label", "UPPER_case"] {
        put(vec![
            ("agent_id", s(id)),
            ("record", s("spec")),
            ("client_id", s("acme")),
        ])
        .await
        .unwrap();
        expected.push(id.to_owned());
    }
    expected.sort();
    for limit in [1, 2, 3, 7, 100] {
        let mut listed = list_all(&h, limit).await;
        listed.sort();
        assert_eq!(listed, expected, "limit {limit}");
    }
    // A cursor is the server's: altered, or replayed on another listing, it is a 400.
    let first = h.get("/v1/agents?limit=2", support::ADMIN).await;
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let flipped = if cursor.ends_with('0') { '1' } else { '0' };
    let altered = format!("{}{flipped}", &cursor[..cursor.len() - 1]);
    for (token, path) in [
        (
            support::ADMIN,
            format!("/v1/agents?limit=2&cursor={altered}"),
        ),
        (ACME, format!("/v1/agents?limit=2&cursor={cursor}")),
    ] {
        let reply = h.get(&path, token).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json["errors"][0]["field"], "cursor");
    }
}

#[tokio::test]
async fn two_authorization_headers_a_foreign_charset_and_an_unserved_method_are_problems() {
    let h = Harness::new("api-http").await;
    let two = h
        .call(
            "GET",
            "/v1/agents",
            Some(ACME),
            None,
            &[("authorization", "Bearer admin-token")],
        )
        .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST, "{}", two.text);
    assert_eq!(two.json["errors"][0]["field"], "Authorization");

    let latin = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some(r#"{"agent_id": "acme-latin"}"#),
            &[("content-type", "application/json; charset=latin-1")],
        )
        .await;
    assert_eq!(
        latin.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        latin.text
    );
    let utf8 = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some(r#"{"agent_id": "acme-utf8"}"#),
            &[("content-type", "application/json; charset=\"UTF-8\"")],
        )
        .await;
    assert_eq!(utf8.status, StatusCode::CREATED, "{}", utf8.text);

    let patch = h
        .call("PATCH", "/v1/agents/acme-utf8", Some(ACME), Some("{}"), &[])
        .await;
    assert_eq!(
        patch.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        patch.text
    );
    assert_eq!(patch.content_type(), "application/problem+json");
    assert_eq!(patch.json["status"], 405);
    assert!(patch.headers.contains_key("allow"), "{:?}", patch.headers);
}

#[tokio::test]
async fn reserved_names_long_keys_and_repeated_json_keys_are_refused_naming_them() {
    let h = Harness::new("api-names").await;
    h.create(ACME, r#"{"agent_id": "acme-names"}"#).await;
    let path = "/v1/agents/acme-names/secrets";
    let long = "K".repeat(65);
    for key in [
        "AGENT_ID",
        "ECS_CONTAINER_METADATA_URI_V4",
        "LD_PRELOAD",
        &long,
    ] {
        let body = format!(r#"{{"{key}": "v"}}"#);
        let reply = h.call("PUT", path, Some(ACME), Some(&body), &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.json["errors"][0]["field"], *key);
    }
    assert_eq!(
        h.secret_value("acme-names").await,
        None,
        "nothing was written"
    );
    let env = h
        .call(
            "PUT",
            "/v1/agents/acme-names",
            Some(ACME),
            Some(r#"{"env": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil"}}"#),
            &[],
        )
        .await;
    assert_eq!(env.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", env.text);
    assert_eq!(
        env.json["errors"][0]["field"],
        "env.AWS_CONTAINER_CREDENTIALS_FULL_URI"
    );
    let twice = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some(r#"{"agent_id": "acme-twice", "plan": "bogus", "plan": "small"}"#),
            &[],
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.text);
    assert_eq!(twice.json["errors"][0]["field"], "plan");
}

#[tokio::test]
async fn a_deletion_request_typed_as_null_in_the_console_is_no_deletion_request() {
    let h = Harness::new("api-null").await;
    h.create(ACME, r#"{"agent_id": "acme-null"}"#).await;
    h.dynamodb
        .update_item()
        .table_name(&h.table)
        .key("agent_id", s("acme-null"))
        .key("record", s("spec"))
        .update_expression("SET deletion_requested_at = :n, created_at = :bad")
        .expression_attribute_values(":n", AttributeValue::Null(true))
        .expression_attribute_values(":bad", s("long ago"))
        .send()
        .await
        .unwrap();
    let agent = h.get("/v1/agents/acme-null", ACME).await;
    assert_eq!(agent.status, StatusCode::OK, "{}", agent.text);
    assert_eq!(
        agent.json["metadata"]["deletion_requested_at"],
        serde_json::Value::Null
    );
    assert!(
        agent.json["spec_error"]
            .as_str()
            .is_some_and(|e| e.contains("created_at")),
        "{}",
        agent.text
    );
    let stop = h
        .call("POST", "/v1/agents/acme-null/stop", Some(ACME), None, &[])
        .await;
    assert_eq!(
        stop.status,
        StatusCode::ACCEPTED,
        "not being deleted: {}",
        stop.text
    );
}
