//! The `/v1/agents` routes: every write ends in the same validated spec item that the CLI and
//! the console produce, through the store's conditional writes.
//!
//! A tenant sees only agents it owns (the `client_id` the controller recorded in the status, or
//! before the first reconcile the spec's): anything else, including an agent id
//! that cannot exist, is the same 404, so a response never tells whether another tenant's agent
//! exists. The one exception is creation, where a taken id must be refused: that 409 reads the
//! same whoever owns the id.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spec::{AgentDocument, AgentStatus, DesiredState};
use store::{Agent, SpecItem, StoreError};

use crate::auth::Caller;
use crate::idkey::IdKey;
use crate::problem::{ApiError, axum_json};
use spec::is_label;

use crate::{Api, WRITER, body, intake};

/// An agent as the API shows it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    pub agent_id: String,
    pub client_id: Option<String>,
    /// The spec as stored, in the shape `PUT` takes, without bookkeeping. `null` when the
    /// item's attributes do not parse; it may break rules when typed by hand in the console
    /// (`spec_error` then says which).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub spec: Option<AgentDocument>,
    pub metadata: Metadata,
    /// Why the stored spec does not validate; the agent then keeps its last valid
    /// configuration.
    pub spec_error: Option<String>,
    /// What the controller last reported; `null` until it has seen the agent.
    pub status: Option<AgentStatus>,
}

/// Bookkeeping set by writers, never by tenants.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Bumped by every API, CLI and GitOps write (not by console edits).
    pub generation: u64,
    /// `api`, `cli` or `gitops:NAME`; `null` for an item written in the console.
    pub managed_by: Option<String>,
    pub created_at: Option<String>,
    /// Set once deletion was asked for; the controller then tears the agent down.
    pub deletion_requested_at: Option<String>,
    /// The same value as the `ETag` header: the hash of the spec item as read.
    pub etag: String,
}

/// One page of agents.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    pub items: Vec<AgentView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The answer to `POST /v1/agents/{id}/activity`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActivityReport {
    pub agent_id: String,
    /// When the report was received (RFC 3339).
    pub at: String,
    /// Whether it was written: reports within a minute of the stored activity are coalesced,
    /// so an agent costs at most one write a minute however often it is used.
    pub recorded: bool,
}

/// The answer to `POST /v1/agents/{id}/wake`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WakeReport {
    pub agent_id: String,
    /// When the wake was asked for (RFC 3339 with milliseconds).
    pub requested_at: String,
    /// Whether the controller will start the agent (it is idle or running). False when
    /// `desired_state` is `stopped` or the agent is outside its schedule's windows: then
    /// nothing starts, and `reason` says why.
    pub waking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Outside the schedule's windows: when the next one opens (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_at: Option<String>,
}

/// The key names of an agent's secret. Never values.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeys {
    pub agent_id: String,
    /// Every key the secret holds, in order.
    pub keys: Vec<String>,
    /// The keys this request set; absent on `GET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<String>>,
}

/// The `{agent_id}` of the path. One that does not even decode (`%FF`) is the same 404 as any
/// id that cannot exist, not axum's plain-text 400.
pub struct AgentId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for AgentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Self(id))
            .map_err(|_| ApiError::NotFound("agent (an id that cannot exist)".to_owned()))
    }
}

fn not_found(agent_id: &str) -> ApiError {
    ApiError::NotFound(format!("agent {agent_id}"))
}

fn view(agent: Agent) -> Option<AgentView> {
    let owner = agent.owner();
    let item = agent.spec?;
    let spec = item.document.clone().map(|d| AgentDocument {
        generation: None,
        managed_by: None,
        created_at: None,
        deletion_requested_at: None,
        ..d
    });
    Some(AgentView {
        client_id: owner,
        spec,
        metadata: Metadata {
            generation: item.meta.generation,
            managed_by: item.meta.managed_by.clone(),
            created_at: item.meta.created_at.clone(),
            deletion_requested_at: item.meta.deletion_requested_at.clone(),
            etag: item.snapshot.etag(),
        },
        spec_error: item.error_text(),
        status: agent.status,
        agent_id: agent.agent_id,
    })
}

/// A JSON response; with the agent's `ETag` when it shows one agent.
pub(crate) fn respond<T: Serialize>(status: StatusCode, body: &T, etag: Option<&str>) -> Response {
    let mut response = (status, axum_json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = etag
        && let Ok(value) = HeaderValue::from_str(&format!("\"{etag}\""))
    {
        headers.insert(header::ETAG, value);
    }
    response
}

fn respond_agent(status: StatusCode, agent: AgentView) -> Response {
    let etag = agent.metadata.etag.clone();
    respond(status, &agent, Some(&etag))
}

/// Both items of an agent the caller may see (Query).
pub(crate) async fn visible(
    api: &Api,
    caller: &Caller,
    agent_id: &str,
) -> Result<AgentView, ApiError> {
    if !is_label(agent_id) {
        return Err(not_found(agent_id));
    }
    let agent = api.store.get(agent_id).await?;
    agent
        .and_then(view)
        .filter(|v| caller.may_see(v.client_id.as_deref()))
        .ok_or_else(|| not_found(agent_id))
}

/// The spec item of an agent the caller may see (Query: the status says who owns it).
async fn visible_spec(api: &Api, caller: &Caller, agent_id: &str) -> Result<SpecItem, ApiError> {
    if !is_label(agent_id) {
        return Err(not_found(agent_id));
    }
    api.store
        .get(agent_id)
        .await?
        .filter(|agent| caller.may_see(agent.owner().as_deref()))
        .and_then(|agent| agent.spec)
        .ok_or_else(|| not_found(agent_id))
}

/// Both items of an agent the caller may see that has a spec not being deleted.
async fn visible_live(api: &Api, caller: &Caller, agent_id: &str) -> Result<Agent, ApiError> {
    if !is_label(agent_id) {
        return Err(not_found(agent_id));
    }
    let agent = api
        .store
        .get(agent_id)
        .await?
        .filter(|agent| caller.may_see(agent.owner().as_deref()))
        .filter(|agent| agent.spec.is_some())
        .ok_or_else(|| not_found(agent_id))?;
    if let Some(spec) = &agent.spec {
        refuse_deleting(spec)?;
    }
    Ok(agent)
}

/// Checks `If-Match` against the item as read. Returns whether the request carried one.
fn if_match(headers: &HeaderMap, etag: &str) -> Result<bool, ApiError> {
    // The header may come as several lines; together they are one list.
    let mut given = false;
    let mut matches = false;
    for value in headers.get_all(header::IF_MATCH) {
        given = true;
        let value = value.to_str().map_err(|_| ApiError::PreconditionFailed)?;
        matches |= value.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"') == etag
        });
    }
    match (given, matches) {
        (false, _) => Ok(false),
        (true, true) => Ok(true),
        (true, false) => Err(ApiError::PreconditionFailed),
    }
}

/// A write the store refused because the item changed after it was read.
fn changed(conditional: bool, agent_id: &str) -> ApiError {
    if conditional {
        ApiError::PreconditionFailed
    } else {
        ApiError::Conflict(format!(
            "agent {agent_id}: conflict: the agent changed while this request was applied; GET it and retry"
        ))
    }
}

fn refuse_bookkeeping(document: &AgentDocument) -> Result<(), ApiError> {
    match document.bookkeeping_present().first() {
        Some(field) => Err(ApiError::invalid(
            *field,
            "is set by the server; a request cannot set it",
        )),
        None => Ok(()),
    }
}

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The tenant's part of a generated id: at most 31 characters, so that with `-` and 8 more the
/// id stays within 40.
fn id_prefix(client_id: &str) -> &str {
    client_id
        .get(..client_id.len().min(31))
        .unwrap_or(client_id)
        .trim_end_matches('-')
}

/// `{client_id}-` and eight random characters, within the 40 an id may have.
fn generate_id(client_id: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect();
    format!("{}-{suffix}", id_prefix(client_id))
}

pub async fn list(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = body::query(query.as_deref(), &["limit", "cursor", "client_id"])?;
    let mut limit = 50;
    let mut after = None;
    let mut client = match &caller {
        Caller::Tenant(own) => Some(own.clone()),
        Caller::Admin => None,
    };
    for (name, value) in params {
        match name {
            "limit" => {
                limit = value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| ApiError::BadParameter {
                        field: "limit".into(),
                        message: "must be an integer from 1 to 100".into(),
                    })?;
            }
            "cursor" => after = Some(value),
            _ => match &caller {
                Caller::Admin if is_label(value) => client = Some(value.to_owned()),
                Caller::Admin => {
                    return Err(ApiError::BadParameter {
                        field: "client_id".into(),
                        message: spec::LABEL_RULE.into(),
                    });
                }
                Caller::Tenant(own) if value == own => {}
                Caller::Tenant(_) => {
                    return Err(ApiError::Forbidden {
                        field: "client_id".into(),
                        message: "a tenant token lists only its own agents".into(),
                    });
                }
            },
        }
    }
    // A cursor is sealed for the listing it continues: one tenant's, or every tenant's (`*`).
    let scope = client.as_deref().unwrap_or("*");
    let after =
        match after {
            Some(cursor) => Some(api.config.id_key.open_cursor(scope, cursor).ok_or_else(
                || ApiError::BadParameter {
                    field: "cursor".into(),
                    message: "is not a cursor this API returned for this listing".into(),
                },
            )?),
            None => None,
        };
    let page = match &client {
        Some(client) => {
            api.store
                .page_by_client(client, limit, after.as_ref())
                .await?
        }
        None => api.store.page_all(limit, after.as_ref()).await?,
    };
    let items: Vec<AgentView> = page
        .agents
        .into_iter()
        .filter_map(view)
        .filter(|v| caller.may_see(v.client_id.as_deref()))
        .collect();
    let list = AgentList {
        items,
        next_cursor: page
            .next
            .as_ref()
            .map(|key| api.config.id_key.seal_cursor(scope, key)),
    };
    Ok(respond(StatusCode::OK, &list, None))
}

pub async fn create(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut document: AgentDocument = body::json(&headers, request, api.config.body_limit).await?;
    refuse_bookkeeping(&document)?;
    // What the request asked for, however it was spelled: the same body sent again gives the
    // same fingerprint, so only a different request under the same key is refused.
    let fingerprint = hex::encode(Sha256::digest(
        serde_json::to_vec(&document).unwrap_or_default(),
    ));
    let client = match (&caller, document.client_id.take()) {
        (Caller::Tenant(own), None) => own.clone(),
        (Caller::Tenant(own), Some(given)) if &given == own => given,
        (Caller::Tenant(_), Some(_)) => {
            return Err(ApiError::Forbidden {
                field: "client_id".into(),
                message: "must be omitted or your own tenant's id".into(),
            });
        }
        (Caller::Admin, Some(given)) => given,
        (Caller::Admin, None) => {
            return Err(ApiError::invalid(
                "client_id",
                "is required with an admin token",
            ));
        }
    };
    if !is_label(&client) {
        // Checked before an id is made from it; validation would say the same.
        return Err(ApiError::invalid("client_id", spec::LABEL_RULE));
    }
    document.client_id = Some(client.clone());
    // A tenant's own ids start with its name, so that no tenant can take another's ids ahead
    // of it. Admins (and the CLI and GitOps, which do not come through here) are exempt.
    if let (Caller::Tenant(own), Some(id)) = (&caller, &document.agent_id)
        && !id.starts_with(&format!("{own}-"))
    {
        return Err(ApiError::invalid(
            "agent_id",
            format!("must start with \"{own}-\", your tenant's id and a hyphen"),
        ));
    }
    // With an Idempotency-Key and no agent_id, the id comes from the tenant and the key, so a
    // retried create (after a timeout, say) finds the agent its first attempt made.
    let keyed = match (&key, &document.agent_id) {
        (Some(key), None) => {
            document.agent_id = Some(keyed_id(&api.config.id_key, &client, key));
            true
        }
        _ => false,
    };
    let generated = document.agent_id.is_none();
    let mut tries = 0;
    let agent_id = loop {
        tries += 1;
        if generated {
            document.agent_id = Some(generate_id(&client));
        }
        let spec = document.validate().map_err(ApiError::Invalid)?;
        let recorded = keyed.then(|| fingerprint.clone());
        match api.store.create(&spec, WRITER, recorded).await {
            Ok(()) => break spec.agent_id,
            Err(StoreError::Conflict { .. }) if generated && tries < 3 => {}
            Err(StoreError::Conflict { .. }) => {
                if keyed {
                    // A failed read is that failure, never "taken": the client would then
                    // make the second agent the key is there to prevent.
                    match replay(&api, &caller, &spec.agent_id, &fingerprint).await {
                        Ok(agent) => {
                            let mut response = respond_agent(StatusCode::OK, agent);
                            response
                                .headers_mut()
                                .insert("idempotent-replayed", HeaderValue::from_static("true"));
                            return Ok(response);
                        }
                        Err(ApiError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                return Err(ApiError::Conflict(format!(
                    "agent_id: {} is taken; choose another",
                    spec.agent_id
                )));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let agent = visible(&api, &caller, &agent_id).await?;
    let mut response = respond_agent(StatusCode::CREATED, agent);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/agents/{agent_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The agent a retried keyed create made, when the caller may see it and the retry asks for
/// what the first attempt did.
///
/// # Errors
/// 404 when the caller may not see it; 422 when the key was used with another body (the IETF
/// Idempotency-Key draft's answer), since replaying would hand back an agent other than the
/// one asked for. An agent created before fingerprints were recorded replays as before.
async fn replay(
    api: &Api,
    caller: &Caller,
    agent_id: &str,
    fingerprint: &str,
) -> Result<AgentView, ApiError> {
    let item = visible_spec(api, caller, agent_id).await?;
    if item
        .meta
        .idempotency_fingerprint
        .as_deref()
        .is_some_and(|f| f != fingerprint)
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "was used with a different request body; use a new key for a new request",
        ));
    }
    visible(api, caller, agent_id).await
}

/// The `Idempotency-Key` header, when sent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (b' '..=b'~').contains(&b)))
        .map(|k| Some(k.to_owned()))
        .ok_or_else(|| ApiError::BadParameter {
            field: "Idempotency-Key".into(),
            message: "must be 1 to 255 visible ASCII characters".into(),
        })
}

/// The agent id a tenant's `Idempotency-Key` stands for: `{client_id}-` and 8 characters of an
/// HMAC of both under the server's key, so that the same key gives the same id, another
/// tenant's the same key another id, and nobody without the server's key can tell which id a
/// key will take (and take it first).
#[must_use]
pub fn keyed_id(id_key: &IdKey, client_id: &str, key: &str) -> String {
    let suffix: String = id_key
        .id_bytes(client_id, key)
        .iter()
        .take(8)
        .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
        .collect();
    format!("{}-{suffix}", id_prefix(client_id))
}

pub async fn get(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let agent = visible(&api, &caller, &agent_id).await?;
    Ok(respond_agent(StatusCode::OK, agent))
}

pub async fn replace(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    // A body that is not a valid spec is refused before any precondition is looked at: its
    // 400 or 422 does not depend on what is stored.
    let mut document: AgentDocument = body::json(&headers, request, api.config.body_limit).await?;
    refuse_bookkeeping(&document)?;
    let current = visible_spec(&api, &caller, &agent_id).await?;
    match &document.agent_id {
        Some(given) if *given != agent_id => {
            return Err(ApiError::invalid(
                "agent_id",
                "must be omitted or equal to the id in the path",
            ));
        }
        _ => document.agent_id = Some(agent_id.clone()),
    }
    let stored_client = current.client_id();
    if document.client_id.is_none() {
        document.client_id.clone_from(&stored_client);
    }
    if stored_client.is_some() && document.client_id != stored_client {
        return Err(ApiError::invalid(
            "client_id",
            "cannot change once the agent exists",
        ));
    }
    let spec = document.validate().map_err(ApiError::Invalid)?;
    let conditional = if_match(&headers, &current.snapshot.etag())?;
    match api.store.apply_over(&spec, WRITER, Some(&current)).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => return Err(changed(conditional, &agent_id)),
        Err(e) => return Err(e.into()),
    }
    let agent = visible(&api, &caller, &agent_id).await?;
    Ok(respond_agent(StatusCode::OK, agent))
}

pub async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut purge_data = false;
    for (_, value) in body::query(query.as_deref(), &["purge_data"])? {
        purge_data = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::BadParameter {
                    field: "purge_data".into(),
                    message: "must be true or false".into(),
                });
            }
        };
    }
    let current = visible_spec(&api, &caller, &agent_id).await?;
    let conditional = if_match(&headers, &current.snapshot.etag())?;
    if current.meta.is_deleting() && purge_data && !purges(&current) {
        // The teardown may already have deleted the access point: nothing could reach the
        // files any more, so a purge cannot be promised after the fact.
        return Err(ApiError::Conflict(format!(
            "agent {agent_id}: conflict: the agent is already being deleted without purge_data"
        )));
    }
    if !current.meta.is_deleting() {
        match api
            .store
            .request_deletion_over(&current, &spec::now_rfc3339(), purge_data)
            .await
        {
            Ok(()) | Err(StoreError::Deleting { .. }) => {}
            Err(StoreError::Conflict { .. }) => return Err(changed(conditional, &agent_id)),
            Err(e) => return Err(e.into()),
        }
    }
    let agent = visible(&api, &caller, &agent_id).await?;
    Ok(respond_agent(StatusCode::ACCEPTED, agent))
}

/// Whether the stored spec asks for the agent's files to be erased on deletion.
fn purges(item: &SpecItem) -> bool {
    item.document
        .as_ref()
        .is_some_and(|d| d.purge_data_on_delete == Some(true))
}

/// The state a spec item asks for; absent means running, as in validation.
fn desired_state(item: &SpecItem) -> Option<&str> {
    item.document
        .as_ref()
        .map(|d| d.desired_state.as_deref().unwrap_or("running"))
}

async fn set_state(
    api: Api,
    caller: Caller,
    agent_id: String,
    state: DesiredState,
) -> Result<Response, ApiError> {
    let current = visible_spec(&api, &caller, &agent_id).await?;
    refuse_deleting(&current)?;
    if desired_state(&current) != Some(state.as_str()) {
        api.store.set_desired_state(&current, state).await?;
    }
    let agent = visible(&api, &caller, &agent_id).await?;
    Ok(respond_agent(StatusCode::ACCEPTED, agent))
}

fn refuse_deleting(item: &SpecItem) -> Result<(), ApiError> {
    if item.meta.is_deleting() {
        return Err(ApiError::Conflict(format!(
            "agent {}: conflict: the agent is being deleted",
            item.agent_id
        )));
    }
    Ok(())
}

pub async fn start(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    set_state(api, caller, agent_id, DesiredState::Running).await
}

pub async fn stop(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    set_state(api, caller, agent_id, DesiredState::Stopped).await
}

pub async fn restart(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let current = visible_spec(&api, &caller, &agent_id).await?;
    refuse_deleting(&current)?;
    // Milliseconds, so that two restarts asked for within one second are two restarts.
    api.store
        .request_restart_of(&current, &spec::now_rfc3339_millis())
        .await?;
    let agent = visible(&api, &caller, &agent_id).await?;
    Ok(respond_agent(StatusCode::ACCEPTED, agent))
}

pub async fn activity(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let agent = visible_live(&api, &caller, &agent_id).await?;
    let now = time::OffsetDateTime::now_utc();
    let recorded = api
        .store
        .record_activity(&agent, now.unix_timestamp())
        .await?;
    let report = ActivityReport {
        agent_id,
        at: spec::format_rfc3339(now),
        recorded,
    };
    Ok(respond(StatusCode::ACCEPTED, &report, None))
}

pub async fn wake(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let agent = visible_live(&api, &caller, &agent_id).await?;
    let requested_at = spec::now_rfc3339_millis();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let spec = agent.spec.as_ref().and_then(|item| item.spec.as_ref().ok());
    let refused = match spec.map(|s| spec::lifecycle::wake(s, now)) {
        Some(spec::lifecycle::WakeAnswer::Stopped) => Some((
            "desired_state is stopped: start the agent instead".to_owned(),
            None,
        )),
        Some(spec::lifecycle::WakeAnswer::OutsideSchedule { next_start }) => Some((
            "outside the schedule's windows".to_owned(),
            time::OffsetDateTime::from_unix_timestamp(next_start)
                .ok()
                .map(spec::format_rfc3339),
        )),
        // An invalid spec is woken all the same: its last valid configuration may run.
        Some(spec::lifecycle::WakeAnswer::Wakes) | None => None,
    };
    let report = match refused {
        Some((reason, next_start_at)) => WakeReport {
            agent_id,
            requested_at,
            waking: false,
            reason: Some(reason),
            next_start_at,
        },
        None => {
            api.store.request_wake(&agent_id, &requested_at).await?;
            WakeReport {
                agent_id,
                requested_at,
                waking: true,
                reason: None,
                next_start_at: None,
            }
        }
    };
    let status = if report.waking {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(respond(status, &report, None))
}

pub async fn status(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let agent = visible(&api, &caller, &agent_id).await?;
    let status = agent.status.unwrap_or_default();
    Ok(respond(StatusCode::OK, &status, None))
}

pub async fn put_secrets(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let current = visible_spec(&api, &caller, &agent_id).await?;
    let values: BTreeMap<String, serde_json::Value> =
        body::json(&headers, request, api.config.body_limit).await?;
    // serde's own message would quote the offending value, and this one may be a secret.
    let values = values
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key, text)),
            _ => Err(ApiError::invalid(key, "must be a string")),
        })
        .collect::<Result<BTreeMap<String, String>, ApiError>>()?;
    let written = intake::set_values(
        &api.store,
        &api.secrets,
        &current,
        &api.config.secret_prefix,
        values,
    )
    .await?;
    let keys = SecretKeys {
        agent_id,
        keys: written.keys,
        set: Some(written.set),
    };
    Ok(respond(StatusCode::OK, &keys, None))
}

pub async fn get_secrets(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
) -> Result<Response, ApiError> {
    let current = visible_spec(&api, &caller, &agent_id).await?;
    let keys = intake::key_names(&api.secrets, &current, &api.config.secret_prefix)
        .await?
        .unwrap_or_default();
    let keys = SecretKeys {
        agent_id,
        keys,
        set: None,
    };
    Ok(respond(StatusCode::OK, &keys, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_start_with_the_tenant() {
        for client in [
            "acme",
            "a",
            &"x".repeat(40),
            &format!("{}-b", "a".repeat(30)),
        ] {
            let id = generate_id(client);
            assert!(is_label(&id), "{id}");
            assert!(id.len() <= 40, "{id}");
            assert!(id.starts_with(&client[..client.len().min(30)]), "{id}");
        }
        assert_ne!(generate_id("acme"), generate_id("acme"));
    }

    #[test]
    fn keyed_ids_depend_on_the_server_key_the_tenant_and_the_key() {
        let server = IdKey::random();
        let id = keyed_id(&server, "acme", "order-1234");
        assert!(is_label(&id) && id.starts_with("acme-"), "{id}");
        assert_eq!(id, keyed_id(&server, "acme", "order-1234"));
        assert_ne!(id, keyed_id(&server, "acme", "order-1235"));
        assert_ne!(id[5..], keyed_id(&server, "globex", "order-1234")[7..]);
        assert_ne!(
            id,
            keyed_id(&IdKey::random(), "acme", "order-1234"),
            "without the server's key the id cannot be computed"
        );
        let long = keyed_id(&server, &"x".repeat(40), "k");
        assert!(is_label(&long) && long.len() == 40, "{long}");
    }

    #[test]
    fn if_match_takes_lists_weak_tags_and_star() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
            if_match(&headers, "abc")
        };
        assert!(!if_match(&HeaderMap::new(), "abc").unwrap());
        for good in ["\"abc\"", "*", "\"x\", \"abc\"", "W/\"abc\""] {
            assert!(with(good).unwrap(), "{good}");
        }
        let mut two_lines = HeaderMap::new();
        two_lines.append(header::IF_MATCH, HeaderValue::from_static("\"x\""));
        two_lines.append(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(if_match(&two_lines, "abc").unwrap());
        for bad in ["\"abd\"", "\"\"", "abcd"] {
            assert_eq!(
                with(bad).unwrap_err().status(),
                StatusCode::PRECONDITION_FAILED
            );
        }
    }
}
