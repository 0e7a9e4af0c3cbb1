//! Every route against moto: the happy path, each error status, and tenant isolation.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{ACME, ADMIN, GLOBEX, Harness};

#[tokio::test]
async fn a_tenant_creates_configures_starts_stops_restarts_and_deletes_an_agent() {
    let h = Harness::new("api-happy").await;

    // Create without an id: the server generates one under the tenant, and client_id comes
    // from the token.
    let created = h
        .create(ACME, r#"{"plan": "small", "desired_state": "stopped"}"#)
        .await;
    let id = created.json["agent_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("acme-"), "{id}");
    assert_eq!(created.json["client_id"], "acme");
    assert_eq!(created.json["metadata"]["managed_by"], "api");
    assert_eq!(created.json["metadata"]["generation"], 1);
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/v1/agents/{id}")
    );
    assert_eq!(
        created.etag(),
        format!("\"{}\"", created.json["metadata"]["etag"].as_str().unwrap())
    );
    let item = h.store.get_spec(&id).await.unwrap().unwrap();
    assert_eq!(item.meta.managed_by.as_deref(), Some("api"));
    assert!(item.spec.is_ok());

    // Create with an id.
    let named = h
        .create(
            ACME,
            r#"{"agent_id": "acme-named", "image": "openclaw/agent:1.2"}"#,
        )
        .await;
    assert_eq!(named.json["spec"]["image"], "openclaw/agent:1.2");

    // Read, list (paged), status.
    let got = h.get(&format!("/v1/agents/{id}"), ACME).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.etag(), created.etag());
    assert_eq!(got.json["spec"]["plan"], "small");
    let first = h.get("/v1/agents?limit=1", ACME).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["items"].as_array().unwrap().len(), 1);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let second = h
        .get(&format!("/v1/agents?limit=1&cursor={cursor}"), ACME)
        .await;
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|r| r.json["items"].as_array().unwrap().clone())
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut expected = vec![id.clone(), "acme-named".to_owned()];
    expected.sort();
    assert_eq!(seen, expected);
    let status = h.get(&format!("/v1/agents/{id}/status"), ACME).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json["phase"], "Pending");

    // Replace the spec, with a fresh If-Match.
    let put = h
        .call(
            "PUT",
            &format!("/v1/agents/{id}"),
            Some(ACME),
            Some(r#"{"plan": "medium", "desired_state": "stopped", "secret_keys": ["OPENAI_API_KEY"]}"#),
            &[("if-match", &got.etag())],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.json["spec"]["plan"], "medium");
    assert_eq!(put.json["metadata"]["generation"], 2);
    assert_ne!(put.etag(), got.etag());

    // Secrets: values to Secrets Manager, key names back.
    let secrets = h
        .call(
            "PUT",
            &format!("/v1/agents/{id}/secrets"),
            Some(ACME),
            Some(r#"{"OPENAI_API_KEY": "sk-happy-path-value"}"#),
            &[],
        )
        .await;
    assert_eq!(secrets.status, StatusCode::OK, "{}", secrets.text);
    assert_eq!(secrets.json["keys"], json!(["OPENAI_API_KEY"]));
    assert!(!secrets.text.contains("sk-happy-path-value"));
    let stored: Value = serde_json::from_str(&h.secret_value(&id).await.unwrap()).unwrap();
    assert_eq!(stored["OPENAI_API_KEY"], "sk-happy-path-value");
    assert!(!h.dump().await.contains("sk-happy-path-value"));
    let more = h
        .call(
            "PUT",
            &format!("/v1/agents/{id}/secrets"),
            Some(ACME),
            Some(r#"{"SLACK_TOKEN": "xoxb-1"}"#),
            &[],
        )
        .await;
    assert_eq!(more.json["keys"], json!(["OPENAI_API_KEY", "SLACK_TOKEN"]));
    assert_eq!(more.json["set"], json!(["SLACK_TOKEN"]));
    let keys = h.get(&format!("/v1/agents/{id}/secrets"), ACME).await;
    assert_eq!(keys.status, StatusCode::OK);
    assert_eq!(
        keys.json,
        json!({"agent_id": id, "keys": ["OPENAI_API_KEY", "SLACK_TOKEN"]})
    );

    // Start, stop, restart: imperative toggles that keep managed_by.
    let start = h
        .call(
            "POST",
            &format!("/v1/agents/{id}/start"),
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED, "{}", start.text);
    assert_eq!(start.json["spec"]["desired_state"], "running");
    assert_eq!(start.json["spec"]["plan"], "medium");
    let again = h
        .call(
            "POST",
            &format!("/v1/agents/{id}/start"),
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(
        again.json["metadata"]["generation"],
        start.json["metadata"]["generation"]
    );
    let restart = h
        .call(
            "POST",
            &format!("/v1/agents/{id}/restart"),
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(restart.status, StatusCode::ACCEPTED);
    assert!(restart.json["spec"]["restart_requested_at"].is_string());
    let stop = h
        .call(
            "POST",
            &format!("/v1/agents/{id}/stop"),
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED);
    assert_eq!(stop.json["spec"]["desired_state"], "stopped");
    let stored = h.store.get_spec(&id).await.unwrap().unwrap();
    let spec = stored.spec.unwrap();
    assert_eq!(spec.desired_state, spec::DesiredState::Stopped);
    assert!(spec.restart_requested_at.is_some());

    // A PUT that omits restart_requested_at keeps it, as `kubectl apply` keeps the restart
    // annotation.
    let put = h
        .call(
            "PUT",
            &format!("/v1/agents/{id}"),
            Some(ACME),
            Some(r#"{"plan": "large"}"#),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(
        put.json["spec"]["restart_requested_at"],
        restart.json["spec"]["restart_requested_at"]
    );

    // Delete: soft, then visible as deleting; a second DELETE is the same answer.
    let deleted = h
        .call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(ACME),
            None,
            &[("if-match", &put.etag())],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    assert!(deleted.json["metadata"]["deletion_requested_at"].is_string());
    let twice = h
        .call("DELETE", &format!("/v1/agents/{id}"), Some(ACME), None, &[])
        .await;
    assert_eq!(twice.status, StatusCode::ACCEPTED);
    assert!(
        h.store
            .get_spec(&id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .is_deleting()
    );
}

#[tokio::test]
async fn health_and_the_openapi_document_need_no_token_and_everything_else_does() {
    let h = Harness::new("api-auth").await;
    let health = h.call("GET", "/healthz", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let doc = h.call("GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.json["openapi"], "3.1.0");

    for (method, path) in [
        ("GET", "/v1/agents"),
        ("POST", "/v1/agents"),
        ("GET", "/v1/agents/x"),
        ("PUT", "/v1/agents/x"),
        ("DELETE", "/v1/agents/x"),
        ("POST", "/v1/agents/x/start"),
        ("POST", "/v1/agents/x/stop"),
        ("POST", "/v1/agents/x/restart"),
        ("GET", "/v1/agents/x/status"),
        ("PUT", "/v1/agents/x/secrets"),
        ("GET", "/v1/agents/x/secrets"),
    ] {
        for token in [None, Some("wrong-token"), Some("")] {
            let reply = h.call(method, path, token, Some("{}"), &[]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(reply.content_type(), "application/problem+json");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
    }
    let basic = h
        .call(
            "GET",
            "/v1/agents",
            None,
            None,
            &[("authorization", "Basic YWNtZTpwdw==")],
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    let unknown = h.get("/v2/agents", ACME).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.content_type(), "application/problem+json");
}

fn detail(reply: &support::Reply) -> String {
    reply.json["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn each_error_is_a_problem_with_its_status_naming_the_field() {
    let h = Harness::with_limit("api-errors", 2048).await;
    h.create(ACME, r#"{"agent_id": "acme-1"}"#).await;
    let post = |body: &'static str| h.call("POST", "/v1/agents", Some(ACME), Some(body), &[]);

    // 400: malformed JSON, a body that is not an object, bad query parameters.
    for body in [
        r#"{"plan": "#,
        "",
        "<xml/>",
        r#"{"plan": "small"} trailing"#,
    ] {
        let reply = post(body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            reply.text
        );
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.json["status"], 400);
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=zz",
        "colour=red",
        "limit=1&limit=2",
    ] {
        let reply = h.get(&format!("/v1/agents?{query}"), ACME).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        let field = query.split('=').next().unwrap();
        assert_eq!(reply.json["errors"][0]["field"], field, "{query}");
    }

    // 413 over the limit (2 KiB here), 415 for a body that is not JSON.
    let large = format!(r#"{{"env": {{"BIG": "{}"}}}}"#, "x".repeat(4096));
    let reply = h
        .call("POST", "/v1/agents", Some(ACME), Some(&large), &[])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.content_type(), "application/problem+json");
    let reply = h
        .call(
            "PUT",
            "/v1/agents/acme-1/secrets",
            Some(ACME),
            Some(&large),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            None,
            &[("content-type", "text/yaml")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // 422 naming the field: rules, wrong types, unknown fields, bookkeeping, ids.
    for (body, field) in [
        (r#"{"plan": "huge"}"#, "plan"),
        (r#"{"cpu": 256, "memory": 4096}"#, "memory"),
        (r#"{"cpu": "lots"}"#, "cpu"),
        (r#"{"colour": "red"}"#, "colour"),
        (
            r#"{"plugins": [{"name": "x", "source": "ftp://x", "version": "1"}]}"#,
            "plugins[0].source",
        ),
        (r#"{"managed_by": "gitops:prod"}"#, "managed_by"),
        (r#"{"generation": 7}"#, "generation"),
        (r#"{"agent_id": "Not_A_Label"}"#, "agent_id"),
        (r#"{"env": {"AGENT_ID": "x"}}"#, "env.AGENT_ID"),
        ("[null, null]", "(body)"),
    ] {
        let reply = post(body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
        let fields: Vec<&str> = reply.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{body}: {fields:?} should name {field}"
        );
        assert!(
            detail(&reply).contains(field.trim_start_matches("(body)")),
            "{}",
            reply.text
        );
    }
    for (body, field) in [
        (r#"{"lower": "x"}"#, "lower"),
        (r#"{"KEY": 1}"#, "KEY"),
        ("{}", "(body)"),
    ] {
        let reply = h
            .call(
                "PUT",
                "/v1/agents/acme-1/secrets",
                Some(ACME),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.json["errors"][0]["field"], field, "{body}");
    }
    let reply = h
        .call(
            "PUT",
            "/v1/agents/acme-1",
            Some(ACME),
            Some(r#"{"agent_id": "acme-2"}"#),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["errors"][0]["field"], "agent_id");
    let reply = h
        .call(
            "PUT",
            "/v1/agents/acme-1",
            Some(ADMIN),
            Some(r#"{"client_id": "globex"}"#),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["errors"][0]["field"], "client_id");
    let reply = h
        .call("POST", "/v1/agents", Some(ADMIN), Some("{}"), &[])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["errors"][0]["field"], "client_id");
    // An admin's client_id is checked before an id is generated from it.
    for client in [
        "ééééééééééééééééééééééééééééééééé",
        "Acme",
        "-acme",
        &"a".repeat(41),
    ] {
        let body = format!(r#"{{"client_id": "{client}"}}"#);
        let reply = h
            .call(
                "POST",
                "/v1/agents",
                Some(ADMIN),
                Some(&body),
                &[("idempotency-key", "k")],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{client}: {}",
            reply.text
        );
        assert_eq!(reply.json["errors"][0]["field"], "client_id");
    }

    // 403: a tenant creating for another tenant, or listing one.
    let reply = post(r#"{"client_id": "globex"}"#).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json["errors"][0]["field"], "client_id");
    let reply = h.get("/v1/agents?client_id=globex", ACME).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // 404: unknown agents, and ids that cannot exist, on every agent route.
    for id in ["acme-missing", "NOT-AN-ID", &"a".repeat(41)] {
        for (method, suffix) in [
            ("GET", ""),
            ("PUT", ""),
            ("DELETE", ""),
            ("POST", "/start"),
            ("POST", "/stop"),
            ("POST", "/restart"),
            ("GET", "/status"),
            ("GET", "/secrets"),
            ("PUT", "/secrets"),
        ] {
            let path = format!("/v1/agents/{id}{suffix}");
            let body = if suffix == "/secrets" {
                r#"{"A": "b"}"#
            } else {
                "{}"
            };
            let reply = h.call(method, &path, Some(ACME), Some(body), &[]).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                reply.text
            );
            assert_eq!(reply.content_type(), "application/problem+json");
        }
    }

    // 409: a taken id; writes to an agent being deleted.
    let reply = post(r#"{"agent_id": "acme-1"}"#).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(detail(&reply).starts_with("agent_id:"), "{}", reply.text);
    h.call("DELETE", "/v1/agents/acme-1", Some(ACME), None, &[])
        .await;
    for (method, suffix, body) in [
        ("PUT", "", Some("{}")),
        ("POST", "/start", None),
        ("POST", "/stop", None),
        ("POST", "/restart", None),
        ("PUT", "/secrets", Some(r#"{"A": "b"}"#)),
        ("POST", "/activity", None),
        ("POST", "/wake", None),
    ] {
        let path = format!("/v1/agents/acme-1{suffix}");
        let reply = h.call(method, &path, Some(ACME), body, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{method} {path}: {}",
            reply.text
        );
        assert!(detail(&reply).contains("being deleted"), "{}", reply.text);
    }
}

/// The routes an agent id can be put in, with a body each may take.
const AGENT_ROUTES: [(&str, &str, Option<&str>); 13] = [
    ("GET", "", None),
    ("PUT", "", Some(r#"{"plan": "large"}"#)),
    ("DELETE", "", None),
    ("DELETE", "?purge_data=true", None),
    ("POST", "/start", None),
    ("POST", "/stop", None),
    ("POST", "/restart", None),
    ("GET", "/status", None),
    ("GET", "/secrets", None),
    ("PUT", "/secrets", Some(r#"{"STOLEN": "x"}"#)),
    ("GET", "/logs", None),
    ("POST", "/activity", None),
    ("POST", "/wake", None),
];

#[tokio::test]
async fn another_tenants_agent_is_a_404_on_every_route_and_nothing_changes() {
    let h = Harness::new("api-tenants").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-private", "desired_state": "stopped"}"#,
    )
    .await;
    h.call(
        "PUT",
        "/v1/agents/acme-private/secrets",
        Some(ACME),
        Some(r#"{"KEY": "v"}"#),
        &[],
    )
    .await;
    let before = h.dump().await;
    let secret_before = h.secret_value("acme-private").await;

    for (method, suffix, body) in AGENT_ROUTES {
        let path = format!("/v1/agents/acme-private{suffix}");
        let reply = h.call(method, &path, Some(GLOBEX), body, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            reply.text
        );
        // Same answer as for an agent that does not exist.
        let missing = h
            .call(
                method,
                &format!("/v1/agents/acme-nobody{suffix}"),
                Some(GLOBEX),
                body,
                &[],
            )
            .await;
        assert_eq!(
            reply.text.replace("acme-private", "X"),
            missing.text.replace("acme-nobody", "X")
        );
    }
    let list = h.get("/v1/agents", GLOBEX).await;
    assert_eq!(list.json["items"], json!([]));
    // Creating under another tenant's id is refused for its name alone, so it says nothing
    // about whether the agent exists (a taken id of one's own is a 409: see the idempotency
    // test).
    let taken = h
        .call(
            "POST",
            "/v1/agents",
            Some(GLOBEX),
            Some(r#"{"agent_id": "acme-private"}"#),
            &[],
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(taken.json["errors"][0]["field"], "agent_id");
    assert!(!taken.text.contains("taken"), "{}", taken.text);
    assert!(!taken.text.contains("acme\""), "{}", taken.text);
    assert!(!taken.text.contains("client"), "{}", taken.text);

    assert_eq!(
        h.dump().await,
        before,
        "another tenant's requests changed the table"
    );
    assert_eq!(h.secret_value("acme-private").await, secret_before);

    // The admin token sees and lists every tenant's agents.
    assert_eq!(
        h.get("/v1/agents/acme-private", ADMIN).await.status,
        StatusCode::OK
    );
    let all = h.get("/v1/agents", ADMIN).await;
    assert_eq!(all.json["items"][0]["agent_id"], "acme-private");
    let acme = h.get("/v1/agents?client_id=acme", ADMIN).await;
    assert_eq!(acme.json["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_agent_typed_in_the_console_is_served_and_its_errors_are_shown() {
    let h = Harness::new("api-console").await;
    h.create(ACME, r#"{"agent_id": "acme-console"}"#).await;
    h.console_set("acme-console", "plan", "gigantic").await;
    let got = h.get("/v1/agents/acme-console", ACME).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.json["spec_error"]
            .as_str()
            .unwrap()
            .starts_with("plan:"),
        "{}",
        got.text
    );
    // Starting and stopping need no valid spec; a PUT fixes it.
    let stop = h
        .call(
            "POST",
            "/v1/agents/acme-console/stop",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text);
    let fix = h
        .call(
            "PUT",
            "/v1/agents/acme-console",
            Some(ACME),
            Some(r#"{"plan": "small"}"#),
            &[("if-match", &stop.etag())],
        )
        .await;
    assert_eq!(fix.status, StatusCode::OK, "{}", fix.text);
    assert_eq!(fix.json["spec_error"], Value::Null);
}

#[tokio::test]
async fn key_names_beyond_what_the_secrets_description_holds_are_a_422_and_change_nothing() {
    let h = Harness::new("api-keys").await;
    h.create(ACME, r#"{"agent_id": "acme-keys"}"#).await;
    // The key names are recorded in the secret's Description, which holds 2048 characters.
    let keys = |from: usize, to: usize| {
        let pairs: Vec<String> = (from..to)
            .map(|i| format!(r#""A_RATHER_LONG_KEY_NAME_FOR_A_TOKEN_{i:03}": "v""#))
            .collect();
        format!("{{{}}}", pairs.join(","))
    };
    let path = "/v1/agents/acme-keys/secrets";
    let first = h
        .call("PUT", path, Some(ACME), Some(&keys(0, 40)), &[])
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let before = h.secret_value("acme-keys").await;
    let more = h
        .call("PUT", path, Some(ACME), Some(&keys(40, 60)), &[])
        .await;
    assert_eq!(
        more.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        more.text
    );
    assert!(detail(&more).contains("Description"), "{}", more.text);
    assert_eq!(h.secret_value("acme-keys").await, before);
    let fresh = h.create(ACME, r#"{"agent_id": "acme-keys-2"}"#).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    let at_once = h
        .call(
            "PUT",
            "/v1/agents/acme-keys-2/secrets",
            Some(ACME),
            Some(&keys(0, 60)),
            &[],
        )
        .await;
    assert_eq!(
        at_once.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        at_once.text
    );
    assert_eq!(h.secret_value("acme-keys-2").await, None);
}

#[tokio::test]
async fn a_create_retried_with_its_idempotency_key_finds_the_first_agent_instead_of_a_second() {
    let h = Harness::new("api-idem").await;
    let h = &h;
    let create = |token: &'static str, key: &'static str| async move {
        h.call(
            "POST",
            "/v1/agents",
            Some(token),
            Some(r#"{"plan": "small"}"#),
            &[("idempotency-key", key)],
        )
        .await
    };
    let first = create(ACME, "order-1234").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let id = first.json["agent_id"].as_str().unwrap().to_owned();
    let retry = create(ACME, "order-1234").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.json["agent_id"], id.as_str());
    assert_eq!(retry.etag(), first.etag());
    let list = h.get("/v1/agents", ACME).await;
    assert_eq!(
        list.json["items"].as_array().unwrap().len(),
        1,
        "no second agent"
    );

    // Another key is another agent; another tenant's same key is that tenant's own agent.
    let other = create(ACME, "order-1235").await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json["agent_id"], id.as_str());
    let globex = create(GLOBEX, "order-1234").await;
    assert_eq!(globex.status, StatusCode::CREATED, "{}", globex.text);
    assert!(
        globex.json["agent_id"]
            .as_str()
            .unwrap()
            .starts_with("globex-")
    );

    // An agent of another tenant that happens to have the id a key stands for is not replayed:
    // a plain 409, as for any taken id.
    let collide = api::agents::keyed_id(&h.api.config.id_key, "acme", "k-collide");
    let squatter = h
        .call(
            "POST",
            "/v1/agents",
            Some(ADMIN),
            Some(&format!(
                r#"{{"agent_id": "{collide}", "client_id": "globex"}}"#
            )),
            &[],
        )
        .await;
    assert_eq!(squatter.status, StatusCode::CREATED, "{}", squatter.text);
    let refused = create(ACME, "k-collide").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(!refused.text.contains("globex"), "{}", refused.text);

    let bad = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some("{}"),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["errors"][0]["field"], "Idempotency-Key");
    let long = "k".repeat(256);
    let bad = h
        .call(
            "POST",
            "/v1/agents",
            Some(ACME),
            Some("{}"),
            &[("idempotency-key", &long)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_tenant_over_its_request_rate_gets_429s_and_the_others_do_not() {
    let rate = "3/0.01".parse().unwrap();
    let h = Harness::with_config("api-rate", api::DEFAULT_BODY_LIMIT, Some(rate)).await;
    for _ in 0..3 {
        assert_eq!(h.get("/v1/agents", ACME).await.status, StatusCode::OK);
    }
    let limited = h.get("/v1/agents", ACME).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.content_type(), "application/problem+json");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    // Another tenant, and the admin scope, are not held back by acme's script.
    assert_eq!(h.get("/v1/agents", GLOBEX).await.status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(h.get("/v1/agents", ADMIN).await.status, StatusCode::OK);
    }
    // Unauthenticated requests cost nothing and stay 401s.
    assert_eq!(
        h.call("GET", "/v1/agents", None, None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn secret_values_of_the_wrong_type_are_named_by_key_never_quoted() {
    let h = Harness::new("api-quote").await;
    h.create(ACME, r#"{"agent_id": "acme-pin"}"#).await;
    for body in [
        r#"{"PIN": 987654321}"#,
        r#"{"PIN": 98765.4321}"#,
        r#"{"PIN": ["987654321"]}"#,
        r#"{"PIN": {"v": "987654321"}}"#,
    ] {
        let reply = h
            .call(
                "PUT",
                "/v1/agents/acme-pin/secrets",
                Some(ACME),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.json["errors"][0]["field"], "PIN");
        assert!(
            !reply.text.contains("98765"),
            "a value reached the error: {}",
            reply.text
        );
    }
    let reply = h
        .call(
            "PUT",
            "/v1/agents/acme-pin/secrets",
            Some(ACME),
            Some(r#"{"PIN": null}"#),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.secret_value("acme-pin").await, None);
}

#[tokio::test]
async fn ids_that_do_not_decode_and_invented_methods_get_problems_not_plain_text() {
    let h = Harness::new("api-odd").await;
    for path in [
        "/v1/agents/%FF",
        "/v1/agents/%C3%28/status",
        "/v1/agents/%FF/secrets",
    ] {
        let reply = h.get(path, ACME).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.content_type(), "application/problem+json", "{path}");
    }
    // Invented methods share one metrics label, so they cannot grow the series.
    for method in ["QWERTY", "BREW", "X-LONG-INVENTED-METHOD"] {
        let reply = h.call(method, "/v1/agents", Some(ACME), None, &[]).await;
        assert!(reply.status.is_client_error(), "{method}: {}", reply.status);
    }
    let metrics = h.api.metrics.render();
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(
        !metrics.contains("QWERTY") && !metrics.contains("BREW"),
        "{metrics}"
    );
    // A null where no field is nullable, bookkeeping included, is named.
    for (body, field) in [
        (r#"{"image": null}"#, "image"),
        (r#"{"generation": null}"#, "generation"),
    ] {
        let reply = h
            .call("POST", "/v1/agents", Some(ACME), Some(body), &[])
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.json["errors"][0]["field"], field);
    }
}

#[tokio::test]
async fn an_aws_failure_names_the_call_and_its_code_and_keeps_the_rest_in_the_log() {
    let config = local_aws::sdk_config().await;
    let table = local_aws::unique("api-missing-table");
    let api = api::Api::new(
        store::Store::new(aws_sdk_dynamodb::Client::new(&config), &table),
        cloud::Secrets::new(aws_sdk_secretsmanager::Client::new(&config)),
        api::Tokens::parse("t", &support::tokens_document()).unwrap(),
        api::Config::default(),
    );
    let request = axum::http::Request::builder()
        .uri("/v1/agents/acme-1")
        .header("authorization", format!("Bearer {ACME}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let problem: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        problem["detail"],
        "DynamoDB Query: ResourceNotFoundException; the details are in the server's log"
    );
    assert!(
        !String::from_utf8_lossy(&bytes).contains(&table),
        "the table name reached a tenant"
    );
}

/// The activity and wake items of an agent, as the table holds them.
async fn lifecycle_items(h: &Harness, agent_id: &str) -> Vec<String> {
    h.dump()
        .await
        .lines()
        .filter(|l| l.contains(&format!("S(\"{agent_id}\")")))
        .filter(|l| l.contains("S(\"activity\")") || l.contains("S(\"wake\")"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn activity_is_coalesced_to_one_write_a_minute_and_never_listed_or_a_spec_change() {
    let h = Harness::new("api-activity").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-busy", "idle_stop_after": "30m"}"#,
    )
    .await;
    let spec_before = h.get("/v1/agents/acme-busy", ACME).await;
    let first = h
        .call(
            "POST",
            "/v1/agents/acme-busy/activity",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.json["recorded"], true);
    let stored = lifecycle_items(&h, "acme-busy").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    for _ in 0..5 {
        let again = h
            .call(
                "POST",
                "/v1/agents/acme-busy/activity",
                Some(ACME),
                None,
                &[],
            )
            .await;
        assert_eq!(again.status, StatusCode::ACCEPTED);
        assert_eq!(again.json["recorded"], false, "coalesced: {}", again.text);
    }
    assert_eq!(
        lifecycle_items(&h, "acme-busy").await,
        stored,
        "no second write"
    );
    // Apart from the spec: no generation bump, no new ETag, not an agent in listings.
    let spec_after = h.get("/v1/agents/acme-busy", ACME).await;
    assert_eq!(spec_after.etag(), spec_before.etag());
    assert_eq!(
        spec_after.json["metadata"]["generation"],
        spec_before.json["metadata"]["generation"]
    );
    let list = h.get("/v1/agents", ADMIN).await;
    let ids: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-busy"]);
}

#[tokio::test]
async fn wake_asks_the_controller_unless_stopped_or_outside_the_schedule() {
    let h = Harness::new("api-wake").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-idle", "idle_stop_after": "5m"}"#,
    )
    .await;
    let reply = h
        .call("POST", "/v1/agents/acme-idle/wake", Some(ACME), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["waking"], true);
    let requested = reply.json["requested_at"].as_str().unwrap().to_owned();
    assert!(spec::parse_rfc3339(&requested).is_some(), "{requested}");
    let items = lifecycle_items(&h, "acme-idle").await;
    assert!(
        items
            .iter()
            .any(|i| i.contains("S(\"wake\")") && i.contains(&requested)),
        "{items:?}"
    );

    // desired_state: stopped wins over a wake: nothing is written.
    h.create(
        ACME,
        r#"{"agent_id": "acme-off", "desired_state": "stopped"}"#,
    )
    .await;
    let reply = h
        .call("POST", "/v1/agents/acme-off/wake", Some(ACME), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["waking"], false);
    assert!(
        reply.json["reason"]
            .as_str()
            .unwrap()
            .contains("desired_state is stopped")
    );
    assert!(lifecycle_items(&h, "acme-off").await.is_empty());

    // Outside the schedule: the answer says when the next window opens; nothing starts.
    let tomorrow = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"][usize::try_from(
        (time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 + 1) % 7,
    )
    .unwrap()];
    let body = format!(
        r#"{{"agent_id": "acme-office", "schedule": {{"timezone": "UTC", "windows": [{{"days": ["{tomorrow}"], "start": "09:00", "end": "10:00"}}]}}}}"#
    );
    h.create(ACME, &body).await;
    let reply = h
        .call("POST", "/v1/agents/acme-office/wake", Some(ACME), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["waking"], false);
    let next = reply.json["next_start_at"].as_str().unwrap();
    assert!(next.ends_with("T09:00:00Z"), "{next}");
    assert!(lifecycle_items(&h, "acme-office").await.is_empty());
}

#[tokio::test]
async fn delete_with_purge_data_sets_the_purge_attribute_with_the_deletion_request() {
    let h = Harness::new("api-purge").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-leaving", "desired_state": "stopped"}"#,
    )
    .await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-staying-files", "desired_state": "stopped"}"#,
    )
    .await;

    let bad = h
        .call(
            "DELETE",
            "/v1/agents/acme-leaving?purge_data=yes",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("purge_data"), "{}", bad.text);
    let untouched = h.store.get_spec("acme-leaving").await.unwrap().unwrap();
    assert!(!untouched.meta.is_deleting());

    let reply = h
        .call(
            "DELETE",
            "/v1/agents/acme-leaving?purge_data=true",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let item = h.store.get_spec("acme-leaving").await.unwrap().unwrap();
    assert!(item.meta.is_deleting());
    assert_eq!(
        item.document.as_ref().and_then(|d| d.purge_data_on_delete),
        Some(true)
    );
    assert_eq!(item.meta.generation, 2, "one write, one generation");

    // Without the parameter the files stay: no purge is asked for.
    let plain = h
        .call(
            "DELETE",
            "/v1/agents/acme-staying-files",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(plain.status, StatusCode::ACCEPTED, "{}", plain.text);
    let item = h
        .store
        .get_spec("acme-staying-files")
        .await
        .unwrap()
        .unwrap();
    assert!(item.meta.is_deleting());
    assert_eq!(
        item.document.as_ref().and_then(|d| d.purge_data_on_delete),
        None
    );
    // A purge cannot be added once the teardown may have removed the access point.
    let late = h
        .call(
            "DELETE",
            "/v1/agents/acme-staying-files?purge_data=true",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
}
