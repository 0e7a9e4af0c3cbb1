//! The web console under `/console/`: a face for the same API, with no power of its own.
//!
//! Every page calls the `/v1` handlers themselves ([`crate::agents`], [`crate::logs`]) with the
//! signed-in caller, so tenant scoping, validation and ETags have one implementation; the
//! console only turns forms into the API's JSON and its answers into HTML. A tenant asking for
//! another tenant's agent gets the API's 404, as a page.
//!
//! Sessions: [`session`]. CSRF: every request that is not a GET or HEAD must carry an `Origin`
//! equal to the one accepted origin (`--public-url`'s, or else the one matching `Host`), on
//! top of the session cookie's `SameSite=Strict`. Pages carry a strict Content Security
//! Policy: scripts and styles only from this origin's two static files, nothing inline.
//! None of these routes is an API route, so none is in the OpenAPI document.

pub mod form;
pub mod pages;
pub mod session;

use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::agents::{self, AgentId, AgentList, AgentView, SecretKeys};
use crate::problem::ApiError;
use crate::{Api, Caller, Served, logs};
use form::{DRAFT_FIELDS, Draft, FieldErrors, Fields};

/// The session cookie's name.
pub const COOKIE: &str = "clawfleet_session";

/// The policy on every console response: this origin's files only, nothing inline, no
/// frames, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

/// How the console runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The console's public address (`--public-url`): the cookie is then `Secure`, and this
    /// origin is the only one accepted for state-changing requests.
    pub public_url: Option<PublicUrl>,
    pub lifetimes: session::Lifetimes,
}

/// An `https://host[:port]` address, reduced to its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
}

impl PublicUrl {
    /// # Errors
    /// Not an http(s) URL with a host, or one carrying user information.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text}: not a URL (https://HOST[:PORT])"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(format!(
                "{text}: the scheme must be https (or http for local tests)"
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{text}: needs a host, and no user information"));
        }
        Ok(Self {
            origin: format!("{scheme}://{}", authority.to_ascii_lowercase()),
        })
    }

    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The console's routes, and `GET /` sending a browser there.
pub fn router(api: &Api) -> Router<Api> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in_form).post(sign_in))
        .route("/console/sign-out", axum::routing::post(sign_out))
        .route("/console/agents", get(agents_page).post(create))
        .route("/console/rows", get(agent_rows))
        .route("/console/new", get(create_form))
        .route("/console/agents/{agent_id}", get(detail))
        .route("/console/agents/{agent_id}/edit", get(edit_form).post(edit))
        .route(
            "/console/agents/{agent_id}/secrets",
            get(secrets_form).post(set_secrets),
        )
        .route("/console/agents/{agent_id}/logs", get(recent_logs))
        .route(
            "/console/agents/{agent_id}/actions/{action}",
            get(confirm).post(act),
        )
        .route(
            "/console/static/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/console/static/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route("/console/{*rest}", get(not_found))
        .route_layer(middleware::from_fn_with_state(api.clone(), guard))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The origin a state-changing request must come from.
fn accepted_origin(api: &Api, headers: &HeaderMap) -> Option<Vec<String>> {
    if let Some(public) = &api.config.console.public_url {
        return Some(vec![public.origin().to_owned()]);
    }
    let host = headers
        .get(header::HOST)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    Some(vec![format!("http://{host}"), format!("https://{host}")])
}

/// CSRF refusal and the security headers of every console response.
async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = if changes_state && !same_origin(&api, request.headers()) {
        html(
            StatusCode::FORBIDDEN,
            pages::problem(
                None,
                "Refused",
                "This request did not come from this console's own pages (its Origin header is missing or another site's), so it was refused. Go back to the console and try again.",
            ),
        )
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn same_origin(api: &Api, headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
    else {
        return false;
    };
    accepted_origin(api, headers).is_some_and(|accepted| accepted.contains(&origin))
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page for the signed-in caller, labelled with them for the access log.
fn page(signed: &Signed, status: StatusCode, markup: Markup) -> Response {
    let mut response = html(status, markup);
    response
        .extensions_mut()
        .insert(Served(signed.caller.label().to_owned()));
    response
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn cookie(api: &Api, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if api.config.console.public_url.is_some() {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn session_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in caller of a console request; anyone else is sent to the sign-in page.
pub struct Signed {
    pub caller: Caller,
}

impl FromRequestParts<Api> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Response> {
        let to_sign_in = || {
            let mut response = see_other("/console/sign-in");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie(api, "", Duration::ZERO));
            response
        };
        let Some(id) = session_id(parts) else {
            return Err(see_other("/console/sign-in"));
        };
        let Some(token_hash) = api.sessions.touch(&id) else {
            return Err(to_sign_in());
        };
        // Looked up again every time: a token revoked in the tokens document ends here.
        let Some(caller) = api.tokens().caller_of_hash(&token_hash) else {
            api.sessions.close(&id);
            return Err(to_sign_in());
        };
        if let (Caller::Tenant(tenant), Some(limits)) = (&caller, &api.limits)
            && let Err(wait) = limits.check(tenant)
        {
            let mut response = html(
                StatusCode::TOO_MANY_REQUESTS,
                pages::problem(
                    Some(&caller),
                    "Too many requests",
                    &format!(
                        "Your tenant's request rate is used up; try again in {} s.",
                        wait.as_secs().saturating_add(1)
                    ),
                ),
            );
            response
                .extensions_mut()
                .insert(Served(caller.label().to_owned()));
            return Err(response);
        }
        Ok(Self { caller })
    }
}

/// Reads a handler's JSON answer back into its type.
async fn answer<T: DeserializeOwned>(result: Result<Response, ApiError>) -> Result<T, ApiError> {
    let response = result?;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|_| ApiError::Internal)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        tracing::error!("the console could not read the API's answer: {e}");
        ApiError::Internal
    })
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// An API error as a page: the API's status, its one line.
fn error_page(signed: &Signed, error: &ApiError) -> Response {
    let status = error.status();
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    page(
        signed,
        status,
        pages::problem(Some(&signed.caller), title, &error.to_string()),
    )
}

async fn body_bytes(api: &Api, body: Body) -> Option<Vec<u8>> {
    axum::body::to_bytes(body, api.config.body_limit)
        .await
        .ok()
        .map(|b| b.to_vec())
}

async fn not_found(signed: Signed) -> Response {
    page(
        &signed,
        StatusCode::NOT_FOUND,
        pages::problem(
            Some(&signed.caller),
            "Not found",
            "There is no such page in the console.",
        ),
    )
}

async fn sign_in_form() -> Response {
    html(StatusCode::OK, pages::sign_in(None))
}

async fn sign_in(State(api): State<Api>, body: Body) -> Response {
    let bytes = body_bytes(&api, body).await.unwrap_or_default();
    let fields = Fields::parse(&bytes);
    let token = fields.get("token").trim();
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if token.is_empty() || api.tokens().caller_of_hash(&hash).is_none() {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some(
                "This token is not valid (or it was revoked). Check it with your operator.",
            )),
        );
    }
    let id = api.sessions.open(hash);
    let mut response = see_other("/console/");
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&api, &id, api.sessions.lifetimes().lifetime),
    );
    response
}

async fn sign_out(State(api): State<Api>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Some(id) = session_id(&parts) {
        api.sessions.close(&id);
    }
    let mut response = see_other("/console/sign-in");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&api, "", Duration::ZERO));
    response
}

async fn home(State(api): State<Api>, signed: Signed) -> Response {
    match &signed.caller {
        Caller::Admin => {
            let summary = match api.store.fleet_summary().await {
                Ok(summary) => summary,
                Err(e) => return error_page(&signed, &e.into()),
            };
            page(
                &signed,
                StatusCode::OK,
                pages::fleet(&signed.caller, summary.as_ref()),
            )
        }
        Caller::Tenant(_) => list_page(api, signed, None).await,
    }
}

/// The query a listing page passes on to `GET /v1/agents` (limit, cursor, client_id), and a
/// notice to show.
fn listing_query(raw: Option<&str>) -> (String, Option<String>) {
    let mut query = vec!["limit=100".to_owned()];
    let mut notice = None;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*name {
            "cursor" | "client_id" => query.push(
                form_urlencoded::Serializer::new(String::new())
                    .append_pair(&name, &value)
                    .finish(),
            ),
            "done" => notice = Some(value.into_owned()),
            _ => {}
        }
    }
    (query.join("&"), notice)
}

async fn list_page(api: Api, signed: Signed, raw: Option<String>) -> Response {
    let (query, notice) = listing_query(raw.as_deref());
    let result = agents::list(
        State(api),
        Extension(signed.caller.clone()),
        RawQuery(Some(query.clone())),
    )
    .await;
    let list: AgentList = match answer(result).await {
        Ok(list) => list,
        Err(e) => return error_page(&signed, &e),
    };
    let client = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned());
    let heading = match (&signed.caller, &client) {
        (Caller::Admin, Some(client)) => format!("Agents of {client}"),
        (Caller::Admin, None) => "Every agent".to_owned(),
        (Caller::Tenant(_), _) => "Your agents".to_owned(),
    };
    let rows_url = format!("/console/rows?{query}");
    let next = list.next_cursor.as_ref().map(|cursor| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("cursor", cursor);
        if let Some(client) = &client {
            q.append_pair("client_id", client);
        }
        format!("/console/agents?{}", q.finish())
    });
    let notice = notice.as_deref().and_then(notice_text);
    page(
        &signed,
        StatusCode::OK,
        pages::agents(
            &signed.caller,
            &heading,
            &list,
            &rows_url,
            next.as_deref(),
            notice,
            time::OffsetDateTime::now_utc(),
        ),
    )
}

/// The notices a redirect after a change may ask for (never free text from the URL).
fn notice_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "created" => "Agent created.",
        "start" => "Start requested: the controller launches the agent shortly.",
        "stop" => "Stop requested: the controller stops the agent's task shortly.",
        "restart" => "Restart requested: the agent's task is replaced shortly.",
        "delete" => "Deletion requested: the controller removes the agent's resources shortly.",
        "saved" => "Spec saved.",
        "secrets" => "Secrets saved. A running agent reads new values when it restarts.",
        _ => return None,
    })
}

async fn agents_page(State(api): State<Api>, signed: Signed, RawQuery(raw): RawQuery) -> Response {
    list_page(api, signed, raw).await
}

async fn agent_rows(State(api): State<Api>, signed: Signed, RawQuery(raw): RawQuery) -> Response {
    let (query, _) = listing_query(raw.as_deref());
    let result = agents::list(
        State(api),
        Extension(signed.caller.clone()),
        RawQuery(Some(query)),
    )
    .await;
    match answer::<AgentList>(result).await {
        Ok(list) => page(
            &signed,
            StatusCode::OK,
            pages::agent_rows(&list, time::OffsetDateTime::now_utc()),
        ),
        Err(e) => error_page(&signed, &e),
    }
}

async fn create_form(signed: Signed) -> Response {
    page(
        &signed,
        StatusCode::OK,
        pages::create(&signed.caller, &Draft::default(), &FieldErrors::default()),
    )
}

async fn create(State(api): State<Api>, signed: Signed, body: Body) -> Response {
    let bytes = body_bytes(&api, body).await.unwrap_or_default();
    let draft = Draft::from_fields(&Fields::parse(&bytes));
    let invalid = |errors: &FieldErrors| {
        page(
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::create(&signed.caller, &draft, errors),
        )
    };
    let document = match draft.document() {
        Ok(document) => document,
        Err(errors) => return invalid(&errors),
    };
    let result = agents::create(
        State(api),
        Extension(signed.caller.clone()),
        json_headers(),
        Body::from(serde_json::to_vec(&document).unwrap_or_default()),
    )
    .await;
    match answer::<AgentView>(result).await {
        Ok(agent) => see_other(&format!("/console/agents/{}?done=created", agent.agent_id)),
        Err(e) => invalid(&FieldErrors::from_api(&e, DRAFT_FIELDS)),
    }
}

async fn read_agent(api: &Api, signed: &Signed, agent_id: String) -> Result<AgentView, ApiError> {
    answer(
        agents::get(
            State(api.clone()),
            Extension(signed.caller.clone()),
            AgentId(agent_id),
        )
        .await,
    )
    .await
}

async fn detail(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let notice = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| notice_text(&v));
    match read_agent(&api, &signed, agent_id).await {
        Ok(agent) => page(
            &signed,
            StatusCode::OK,
            pages::detail(
                &signed.caller,
                &agent,
                notice,
                time::OffsetDateTime::now_utc(),
            ),
        ),
        Err(e) => error_page(&signed, &e),
    }
}

fn spec_text(agent: &AgentView) -> String {
    agent
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_string_pretty(s).ok())
        .unwrap_or_else(|| "{}".to_owned())
}

async fn edit_form(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
) -> Response {
    match read_agent(&api, &signed, agent_id).await {
        Ok(agent) => page(
            &signed,
            StatusCode::OK,
            pages::edit(
                &signed.caller,
                &agent.agent_id,
                &spec_text(&agent),
                &agent.metadata.etag,
                &FieldErrors::default(),
                None,
            ),
        ),
        Err(e) => error_page(&signed, &e),
    }
}

async fn edit(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
    body: Body,
) -> Response {
    let bytes = body_bytes(&api, body).await.unwrap_or_default();
    let fields = Fields::parse(&bytes);
    let (text, etag) = (fields.get("spec").to_owned(), fields.get("etag").to_owned());
    let mut headers = json_headers();
    // Always conditional: an edit made on a stale page must not overwrite anyone.
    let if_match = HeaderValue::from_str(&format!("\"{etag}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"invalid\""));
    headers.insert(header::IF_MATCH, if_match);
    let result = agents::replace(
        State(api.clone()),
        Extension(signed.caller.clone()),
        AgentId(agent_id.clone()),
        headers,
        Body::from(text.clone()),
    )
    .await;
    match answer::<AgentView>(result).await {
        Ok(_) => see_other(&format!("/console/agents/{agent_id}?done=saved")),
        Err(ApiError::PreconditionFailed) => match read_agent(&api, &signed, agent_id).await {
            Ok(current) => page(
                &signed,
                StatusCode::PRECONDITION_FAILED,
                pages::edit(
                    &signed.caller,
                    &current.agent_id,
                    &text,
                    &current.metadata.etag,
                    &FieldErrors::default(),
                    Some(&spec_text(&current)),
                ),
            ),
            Err(e) => error_page(&signed, &e),
        },
        Err(e @ ApiError::NotFound(_)) => error_page(&signed, &e),
        Err(e) => {
            // Every spec error belongs to the one text area.
            let mut errors = FieldErrors::default();
            let placed = FieldErrors::from_api(&e, &[]);
            for message in placed.general {
                errors.add("spec", message);
            }
            page(
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::edit(&signed.caller, &agent_id, &text, &etag, &errors, None),
            )
        }
    }
}

/// The four actions and what each asks first.
fn question(action: &str, agent_id: &str) -> Option<String> {
    Some(match action {
        "start" => format!("Start {agent_id}?"),
        "stop" => format!("Stop {agent_id}? Its task stops; its memory and secrets stay."),
        "restart" => format!("Restart {agent_id}? Its task is replaced by a new one."),
        "delete" => format!(
            "Delete {agent_id}? Its task, access point and secret are removed; its memory on EFS is kept until purged."
        ),
        _ => return None,
    })
}

async fn confirm(
    State(api): State<Api>,
    signed: Signed,
    Path((agent_id, action)): Path<(String, String)>,
) -> Response {
    let Some(question) = question(&action, &agent_id) else {
        return not_found(signed).await;
    };
    // The question is asked only about an agent the caller may see.
    match read_agent(&api, &signed, agent_id).await {
        Ok(agent) => page(
            &signed,
            StatusCode::OK,
            pages::confirm(&signed.caller, &agent.agent_id, &action, &question),
        ),
        Err(e) => error_page(&signed, &e),
    }
}

async fn act(
    State(api): State<Api>,
    signed: Signed,
    Path((agent_id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let caller = Extension(signed.caller.clone());
    let id = AgentId(agent_id.clone());
    // The delete form's checkbox: erase the agent's files before its access point goes.
    let purge =
        (Fields::parse(&body).get("purge_data") == "true").then(|| "purge_data=true".to_owned());
    let result = match action.as_str() {
        "start" => agents::start(State(api), caller, id).await,
        "stop" => agents::stop(State(api), caller, id).await,
        "restart" => agents::restart(State(api), caller, id).await,
        "delete" => agents::delete(State(api), caller, id, RawQuery(purge), HeaderMap::new()).await,
        _ => return not_found(signed).await,
    };
    match result {
        Ok(_) if action == "delete" => see_other("/console/?done=delete"),
        Ok(_) => see_other(&format!("/console/agents/{agent_id}?done={action}")),
        Err(e) => error_page(&signed, &e),
    }
}

async fn secrets_page(
    api: &Api,
    signed: &Signed,
    agent_id: String,
    errors: &FieldErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let agent = match read_agent(api, signed, agent_id.clone()).await {
        Ok(agent) => agent,
        Err(e) => return error_page(signed, &e),
    };
    let keys: SecretKeys = match answer(
        agents::get_secrets(
            State(api.clone()),
            Extension(signed.caller.clone()),
            AgentId(agent_id),
        )
        .await,
    )
    .await
    {
        Ok(keys) => keys,
        Err(e) => return error_page(signed, &e),
    };
    let declared = agent.spec.map(|s| s.secret_keys).unwrap_or_default();
    page(
        signed,
        status,
        pages::secrets(
            &signed.caller,
            &agent.agent_id,
            &keys.keys,
            &declared,
            errors,
            notice,
        ),
    )
}

async fn secrets_form(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let notice = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| notice_text(&v));
    secrets_page(
        &api,
        &signed,
        agent_id,
        &FieldErrors::default(),
        notice,
        StatusCode::OK,
    )
    .await
}

async fn set_secrets(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
    body: Body,
) -> Response {
    let bytes = body_bytes(&api, body).await.unwrap_or_default();
    let values = match form::secret_rows(&Fields::parse(&bytes)) {
        Ok(values) => values,
        Err(errors) => {
            return secrets_page(
                &api,
                &signed,
                agent_id,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let keys: Vec<String> = values.keys().cloned().collect();
    let result = agents::put_secrets(
        State(api.clone()),
        Extension(signed.caller.clone()),
        AgentId(agent_id.clone()),
        json_headers(),
        Body::from(serde_json::to_vec(&values).unwrap_or_default()),
    )
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/agents/{agent_id}/secrets?done=secrets")),
        Err(e @ ApiError::NotFound(_)) => error_page(&signed, &e),
        Err(e) => {
            let errors =
                FieldErrors::from_api(&e, &keys.iter().map(String::as_str).collect::<Vec<_>>());
            secrets_page(&api, &signed, agent_id, &errors, None, e.status()).await
        }
    }
}

async fn recent_logs(
    State(api): State<Api>,
    signed: Signed,
    Path(agent_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let tail = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "tail")
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .map_or(logs::DEFAULT_TAIL, |n| n.clamp(1, logs::MAX_TAIL));
    match logs::recent_lines(&api, &signed.caller, &agent_id, tail).await {
        Ok(lines) => page(
            &signed,
            StatusCode::OK,
            pages::logs(&signed.caller, &lines, tail),
        ),
        Err(e) => error_page(&signed, &e),
    }
}
