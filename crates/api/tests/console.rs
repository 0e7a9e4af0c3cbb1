//! The web console through the router: sign-in and its cookie, CSRF refusal, tenant scoping,
//! secret values never rendered, escaping, the 412 explained, revocation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use support::{ACME, ADMIN, GLOBEX, Harness};
use tower::ServiceExt as _;

const HOST: &str = "console.test:8080";
const ORIGIN: &str = "http://console.test:8080";

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn set_cookie(&self) -> &str {
        self.headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// One request as a browser on this console would send it: Host, and the session cookie.
async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    session: Option<&str>,
    origin: Option<&str>,
    form: Option<&str>,
) -> Page {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST);
    if let Some(id) = session {
        request = request.header("cookie", format!("theme=dark; clawfleet_session={id}"));
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let request = request
        .body(form.map_or_else(Body::empty, |f| Body::from(f.to_owned())))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(h: &Harness, path: &str, session: &str) -> Page {
    send(h, "GET", path, Some(session), None, None).await
}

async fn post(h: &Harness, path: &str, session: &str, form: &str) -> Page {
    send(h, "POST", path, Some(session), Some(ORIGIN), Some(form)).await
}

/// Signs in with `token` and returns the session id from the cookie.
async fn sign_in(h: &Harness, token: &str) -> String {
    let page = send(
        h,
        "POST",
        "/console/sign-in",
        None,
        Some(ORIGIN),
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), "/console/");
    let cookie = page.set_cookie();
    cookie
        .strip_prefix("clawfleet_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_random_and_never_the_token() {
    let h = Harness::new("console-cookie").await;
    let page = send(
        &h,
        "POST",
        "/console/sign-in",
        None,
        Some(ORIGIN),
        Some(&format!("token={ACME}")),
    )
    .await;
    let cookie = page.set_cookie().to_owned();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "development: no public URL, {cookie}"
    );
    assert!(!cookie.contains(ACME), "{cookie}");
    let id = sign_in(&h, ACME).await;
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(id, sign_in(&h, ACME).await, "a new random id per sign-in");
    let home = get(&h, "/console/", &id).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("Signed in as"), "{}", home.text);

    // A wrong token: the form again, the error next to the field, no cookie.
    let refused = send(
        &h,
        "POST",
        "/console/sign-in",
        None,
        Some(ORIGIN),
        Some("token=nope"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.set_cookie().is_empty());
    assert!(
        refused.text.contains(r#"id="token-error""#),
        "{}",
        refused.text
    );

    // With --public-url the cookie is Secure, and only that origin is accepted.
    let public = Harness::with_console(
        "console-public",
        api::DEFAULT_BODY_LIMIT,
        None,
        api::console::Settings {
            public_url: Some(
                api::console::PublicUrl::parse("https://console.example.com/").unwrap(),
            ),
            ..api::console::Settings::default()
        },
    )
    .await;
    let same_host = send(
        &public,
        "POST",
        "/console/sign-in",
        None,
        Some(ORIGIN),
        Some(&format!("token={ACME}")),
    )
    .await;
    assert_eq!(
        same_host.status,
        StatusCode::FORBIDDEN,
        "the Host's origin is not the public one"
    );
    let signed = send(
        &public,
        "POST",
        "/console/sign-in",
        None,
        Some("https://console.example.com"),
        Some(&format!("token={ACME}")),
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert!(
        signed.set_cookie().contains("; Secure"),
        "{}",
        signed.set_cookie()
    );
}

#[tokio::test]
async fn a_state_changing_request_without_this_consoles_origin_is_refused() {
    let h = Harness::new("console-csrf").await;
    let id = sign_in(&h, ACME).await;
    let form = "plan=small&desired_state=stopped&agent_id=acme-csrf";
    for origin in [
        None,
        Some("https://evil.example"),
        Some("null"),
        Some("http://console.test:9999"),
    ] {
        let page = send(&h, "POST", "/console/agents", Some(&id), origin, Some(form)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(page.text.contains("Refused"), "{}", page.text);
    }
    // Sign-in and sign-out are checked too.
    let no_origin = send(
        &h,
        "POST",
        "/console/sign-in",
        None,
        None,
        Some(&format!("token={ACME}")),
    )
    .await;
    assert_eq!(no_origin.status, StatusCode::FORBIDDEN);
    assert!(no_origin.set_cookie().is_empty());
    let out = send(&h, "POST", "/console/sign-out", Some(&id), None, None).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&h, "/console/", &id).await.status,
        StatusCode::OK,
        "still signed in"
    );
    assert_eq!(
        h.get("/v1/agents/acme-csrf", ACME).await.status,
        StatusCode::NOT_FOUND,
        "nothing was created"
    );
    // The same form from the console itself goes through.
    let page = post(&h, "/console/agents", &id, form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), "/console/agents/acme-csrf?done=created");
}

#[tokio::test]
async fn another_tenants_agent_is_a_404_page_on_every_console_route_and_nothing_changes() {
    let h = Harness::new("console-tenants").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-private", "desired_state": "stopped"}"#,
    )
    .await;
    let before = h.dump().await;
    let globex = sign_in(&h, GLOBEX).await;
    for path in [
        "/console/agents/acme-private",
        "/console/agents/acme-private/edit",
        "/console/agents/acme-private/secrets",
        "/console/agents/acme-private/logs",
        "/console/agents/acme-private/actions/stop",
        "/console/agents/acme-private/actions/delete",
    ] {
        let page = get(&h, path, &globex).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.text.contains("Not found"), "{path}: {}", page.text);
        assert!(page.text.contains("<html"), "a page, not JSON: {path}");
    }
    for (path, form) in [
        ("/console/agents/acme-private/actions/start", ""),
        ("/console/agents/acme-private/actions/delete", ""),
        (
            "/console/agents/acme-private/secrets",
            "key_0=STOLEN&value_0=x",
        ),
        ("/console/agents/acme-private/edit", "etag=x&spec=%7B%7D"),
    ] {
        let page = post(&h, path, &globex, form).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.text);
    }
    assert_eq!(h.dump().await, before, "nothing changed");
    let list = get(&h, "/console/", &globex).await;
    assert!(!list.text.contains("acme-private"), "{}", list.text);
    let rows = get(&h, "/console/rows", &globex).await;
    assert!(!rows.text.contains("acme-private"));
    // The owner sees it.
    let acme = sign_in(&h, ACME).await;
    assert!(
        get(&h, "/console/", &acme)
            .await
            .text
            .contains("acme-private")
    );
}

#[tokio::test]
async fn no_page_ever_shows_a_secret_value() {
    let h = Harness::new("console-secrets").await;
    let id = sign_in(&h, ACME).await;
    let created = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=acme-sec&plan=small&desired_state=stopped&secret_keys=OPENAI_API_KEY",
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let value = "sk-super-secret-value-4711";
    let set = post(
        &h,
        "/console/agents/acme-sec/secrets",
        &id,
        &format!("key_0=OPENAI_API_KEY&value_0={value}"),
    )
    .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.text);
    assert_eq!(
        h.secret_value("acme-sec").await.as_deref(),
        Some(r#"{"OPENAI_API_KEY":"sk-super-secret-value-4711"}"#)
    );
    // A rejected form does not echo what was typed either.
    let rejected = post(
        &h,
        "/console/agents/acme-sec/secrets",
        &id,
        &format!("key_0=bad%20key&value_0={value}-2&key_1=&value_1={value}-3"),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!rejected.text.contains(value), "{}", rejected.text);
    assert!(
        rejected.text.contains("row 2: a value needs a key name"),
        "{}",
        rejected.text
    );
    // The API's error about the key typed into a blank row is shown above the form.
    let key_error = post(
        &h,
        "/console/agents/acme-sec/secrets",
        &id,
        &format!("key_3=bad%20key&value_3={value}-4"),
    )
    .await;
    assert_eq!(key_error.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(key_error.text.contains("bad key: "), "{}", key_error.text);
    assert!(!key_error.text.contains(value), "{}", key_error.text);
    for path in [
        "/console/",
        "/console/rows",
        "/console/agents/acme-sec",
        "/console/agents/acme-sec?done=secrets",
        "/console/agents/acme-sec/edit",
        "/console/agents/acme-sec/secrets",
        "/console/agents/acme-sec/secrets?done=secrets",
        "/console/agents/acme-sec/logs",
        "/console/agents/acme-sec/actions/restart",
    ] {
        let page = get(&h, path, &id).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.text.contains(value), "{path} shows the value");
    }
    let keys = get(&h, "/console/agents/acme-sec/secrets", &id).await;
    assert!(
        keys.text.contains("<code>OPENAI_API_KEY</code>"),
        "{}",
        keys.text
    );
    let admin = sign_in(&h, ADMIN).await;
    let page = get(&h, "/console/agents/acme-sec/secrets", &admin).await;
    assert!(!page.text.contains(value));
}

#[tokio::test]
async fn user_controlled_strings_render_as_text() {
    let h = Harness::new("console-escape").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-esc", "desired_state": "stopped", "env": {"X": "\"><img src=x>"}}"#,
    )
    .await;
    // The API refuses such a tag value; a person typing in the DynamoDB console does not.
    let tags = aws_sdk_dynamodb::types::AttributeValue::M(
        [(
            "Owner".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("<script>alert(1)</script>".to_owned()),
        )]
        .into(),
    );
    h.dynamodb
        .update_item()
        .table_name(&h.table)
        .key(
            "agent_id",
            aws_sdk_dynamodb::types::AttributeValue::S("acme-esc".into()),
        )
        .key(
            "record",
            aws_sdk_dynamodb::types::AttributeValue::S("spec".into()),
        )
        .update_expression("SET tags = :t")
        .expression_attribute_values(":t", tags)
        .send()
        .await
        .unwrap();
    let id = sign_in(&h, ACME).await;
    let page = get(&h, "/console/agents/acme-esc", &id).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains("Owner=&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script>alert"), "{}", page.text);
    assert!(!page.text.contains("<img src=x>"));
    let edit = get(&h, "/console/agents/acme-esc/edit", &id).await;
    assert!(!edit.text.contains("<script>alert"));
    // A create form sent back with errors keeps what was typed, as text.
    let again = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=%3Cscript%3Ex%3C%2Fscript%3E&plan=small",
    )
    .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!again.text.contains("<script>x"), "{}", again.text);
    assert!(again.text.contains("&lt;script&gt;x"), "{}", again.text);
}

#[tokio::test]
async fn validation_errors_are_shown_next_to_the_field_they_name() {
    let h = Harness::new("console-validate").await;
    let id = sign_in(&h, ACME).await;
    let page = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=acme-bad&plan=small&image=Not+An+Image&desired_state=stopped&env=A%3D1%0Aoops",
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.text.contains(r#"id="env-error""#), "{}", page.text);
    assert!(page.text.contains("line 2: write KEY=VALUE"));
    // The form's own syntax fixed, the API's validation names the image.
    let page = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=acme-bad&plan=small&image=Not+An+Image&desired_state=stopped",
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error_list = page
        .text
        .split(r#"id="image-error""#)
        .nth(1)
        .expect("an error list next to image");
    assert!(
        error_list.starts_with("><li>image: must be an OCI reference"),
        "{error_list}"
    );
    assert!(
        page.text
            .contains(r#"aria-describedby="image-hint image-error""#)
    );
    assert!(
        page.text.contains(r#"value="Not An Image""#),
        "what was typed stays"
    );
    // Another tenant's prefix is named next to agent_id.
    let page = post(&h, "/console/agents", &id, "agent_id=globex-1&plan=small").await;
    assert!(
        page.text.contains(r#"id="agent_id-error""#),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn a_stale_edit_is_refused_with_412_and_explained_and_a_fresh_one_saves() {
    let h = Harness::new("console-etag").await;
    h.create(
        ACME,
        r#"{"agent_id": "acme-edit", "desired_state": "stopped"}"#,
    )
    .await;
    let id = sign_in(&h, ACME).await;
    let form = get(&h, "/console/agents/acme-edit/edit", &id).await;
    let etag = form
        .text
        .split(r#"name="etag" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // Someone else changes it in between.
    h.console_set("acme-edit", "plan", "large").await;
    let spec = "%7B%22desired_state%22%3A%22stopped%22%2C%22plan%22%3A%22medium%22%7D";
    let page = post(
        &h,
        "/console/agents/acme-edit/edit",
        &id,
        &format!("etag={etag}&spec={spec}"),
    )
    .await;
    assert_eq!(page.status, StatusCode::PRECONDITION_FAILED);
    assert!(
        page.text.contains("Someone else changed this agent"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("&quot;large&quot;"),
        "their version is shown"
    );
    assert_eq!(
        h.get("/v1/agents/acme-edit", ACME).await.json["spec"]["plan"],
        "large"
    );
    let fresh = page
        .text
        .split(r#"name="etag" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let saved = post(
        &h,
        "/console/agents/acme-edit/edit",
        &id,
        &format!("etag={fresh}&spec={spec}"),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(
        h.get("/v1/agents/acme-edit", ACME).await.json["spec"]["plan"],
        "medium"
    );
}

#[tokio::test]
async fn sign_out_and_a_revoked_token_end_the_session() {
    let h = Harness::new("console-revoke").await;
    let id = sign_in(&h, ACME).await;
    let out = post(&h, "/console/sign-out", &id, "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.set_cookie().contains("Max-Age=0"));
    let after = get(&h, "/console/", &id).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/console/sign-in");

    let acme = sign_in(&h, ACME).await;
    let globex = sign_in(&h, GLOBEX).await;
    // The operator removes acme's token from the tokens document.
    let without_acme: String = support::tokens_document()
        .split("- sha256: ")
        .filter(|entry| !entry.is_empty() && !entry.contains("tenant: acme"))
        .map(|entry| format!("- sha256: {entry}"))
        .collect();
    h.api
        .set_tokens(api::Tokens::parse("reloaded", &without_acme).unwrap());
    assert_eq!(
        get(&h, "/console/", &acme).await.location(),
        "/console/sign-in"
    );
    assert_eq!(get(&h, "/console/", &globex).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_root_redirects_pages_carry_the_policy_and_the_console_is_not_in_the_api_document() {
    let h = Harness::new("console-misc").await;
    let root = send(&h, "GET", "/", None, None, None).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.location(), "/console/");
    let unsigned = send(&h, "GET", "/console/", None, None, None).await;
    assert_eq!(unsigned.location(), "/console/sign-in");
    let sign_in_page = send(&h, "GET", "/console/sign-in", None, None, None).await;
    let csp = sign_in_page.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert_eq!(csp, api::console::CSP);
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert!(!sign_in_page.text.contains("<script>"), "no inline script");
    assert!(!sign_in_page.text.contains("style="), "no inline style");
    assert!(sign_in_page.text.contains(r#"<label for="token">"#));
    let document = h.call("GET", "/openapi.json", None, None, &[]).await.text;
    assert!(
        !document.contains("/console"),
        "console routes are not API routes"
    );

    let admin = sign_in(&h, ADMIN).await;
    let fleet = get(&h, "/console/", &admin).await;
    assert!(
        fleet.text.contains("has not written a fleet summary yet"),
        "{}",
        fleet.text
    );
    let agents = vec![];
    let summary = store::FleetSummary::of(&agents, Some("controller-7"), "2026-11-29T12:00:00Z");
    h.store.put_fleet_summary(&summary).await.unwrap();
    let fleet = get(&h, "/console/", &admin).await;
    assert!(fleet.text.contains("controller-7"), "{}", fleet.text);
    let tenant = sign_in(&h, ACME).await;
    assert!(
        !get(&h, "/console/", &tenant)
            .await
            .text
            .contains("controller-7")
    );
}

#[tokio::test]
async fn a_schedule_is_created_from_the_form_and_a_delete_may_ask_for_the_purge() {
    let h = Harness::new("console-lifecycle").await;
    let id = sign_in(&h, ACME).await;
    // An unknown time zone is the API's error, shown next to the time zone input.
    let page = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=acme-office&plan=small&desired_state=stopped&schedule_timezone=Mars%2FOlympus&schedule=mon%2Ctue+08%3A00-20%3A00",
    )
    .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.text
    );
    let next_to_zone = page
        .text
        .split(r#"id="schedule_timezone-error""#)
        .nth(1)
        .expect("an error list next to the time zone");
    assert!(
        next_to_zone.starts_with("><li>schedule.timezone: "),
        "{next_to_zone}"
    );
    let page = post(
        &h,
        "/console/agents",
        &id,
        "agent_id=acme-office&plan=small&desired_state=stopped&schedule_timezone=Europe%2FMadrid&schedule=mon%2Ctue+08%3A00-20%3A00&idle_stop_after=30m",
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    let stored = h.store.get_spec("acme-office").await.unwrap().unwrap();
    let document = stored.document.clone().unwrap();
    let schedule = document.schedule.unwrap();
    assert_eq!(schedule.timezone, "Europe/Madrid");
    assert_eq!(schedule.windows[0].days, ["mon", "tue"]);
    assert_eq!(document.idle_stop_after.as_deref(), Some("30m"));
    let detail = get(&h, "/console/agents/acme-office", &id).await;
    assert!(
        detail.text.contains("mon,tue 08:00-20:00 (Europe/Madrid)"),
        "{}",
        detail.text
    );

    // The delete page offers the purge; checked, the deletion asks for it.
    let ask = get(&h, "/console/agents/acme-office/actions/delete", &id).await;
    assert!(ask.text.contains(r#"name="purge_data""#), "{}", ask.text);
    let done = post(
        &h,
        "/console/agents/acme-office/actions/delete",
        &id,
        "purge_data=true",
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let deleted = h.store.get_spec("acme-office").await.unwrap().unwrap();
    assert!(deleted.meta.is_deleting());
    assert_eq!(
        deleted.document.and_then(|d| d.purge_data_on_delete),
        Some(true)
    );
}
