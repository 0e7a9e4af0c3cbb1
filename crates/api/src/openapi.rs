//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Schemas come from the same types the handlers read and write (schemars), so a field added to
//! a response is documented by construction; the operations are listed here, and a test checks
//! them against the routes the router serves ([`crate::v1`]).

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use spec::{AgentDocument, AgentStatus};

use crate::agents::{ActivityReport, AgentList, AgentView, SecretKeys, WakeReport};
use crate::problem::Problem;

/// One documented operation.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// The request body's schema name, when it takes one.
    body: Option<&'static str>,
    /// The success status, its schema name, and whether it carries the agent's ETag.
    ok: (u16, &'static str, bool),
    /// Problem statuses besides 401, 429, 502 and 503, which every operation may answer.
    errors: &'static [u16],
    if_match: bool,
    query: &'static [&'static str],
    /// Takes `Idempotency-Key`, and answers 200 when a retry finds what the first attempt made.
    idempotent: bool,
    /// Another success answer besides `ok`: its status and what it means.
    also: Option<(u16, &'static str)>,
}

const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/v1/agents",
        id: "listAgents",
        summary: "The caller's agents, a page at a time (an admin token lists every tenant's, or one tenant's with client_id)",
        body: None,
        ok: (200, "AgentList", false),
        errors: &[400, 403],
        if_match: false,
        query: &["limit", "cursor", "client_id"],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents",
        id: "createAgent",
        summary: "Create an agent; agent_id is generated ({client_id}-random) when omitted, and one a tenant chooses must start with {client_id}-; client_id comes from a tenant token",
        body: Some("AgentSpec"),
        ok: (201, "AgentView", true),
        errors: &[400, 403, 409, 413, 415, 422],
        if_match: false,
        query: &[],
        idempotent: true,
        also: None,
    },
    Operation {
        method: "get",
        path: "/v1/agents/{agent_id}",
        id: "getAgent",
        summary: "One agent: its spec, bookkeeping and status",
        body: None,
        ok: (200, "AgentView", true),
        errors: &[404],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "put",
        path: "/v1/agents/{agent_id}",
        id: "replaceAgent",
        summary: "Replace the agent's spec (restart_requested_at is kept when omitted); If-Match makes it conditional",
        body: Some("AgentSpec"),
        ok: (200, "AgentView", true),
        errors: &[400, 404, 409, 412, 413, 415, 422],
        if_match: true,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "delete",
        path: "/v1/agents/{agent_id}",
        id: "deleteAgent",
        summary: "Ask for deletion: the controller tears the agent's AWS resources down, then removes it; purge_data=true first empties the agent's directory on EFS",
        body: None,
        ok: (202, "AgentView", true),
        errors: &[400, 404, 409, 412],
        if_match: true,
        query: &["purge_data"],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents/{agent_id}/start",
        id: "startAgent",
        summary: "Set desired_state to running",
        body: None,
        ok: (202, "AgentView", true),
        errors: &[404, 409],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents/{agent_id}/stop",
        id: "stopAgent",
        summary: "Set desired_state to stopped",
        body: None,
        ok: (202, "AgentView", true),
        errors: &[404, 409],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents/{agent_id}/restart",
        id: "restartAgent",
        summary: "Replace the agent's task (sets restart_requested_at), e.g. to load new secret values",
        body: None,
        ok: (202, "AgentView", true),
        errors: &[404, 409],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents/{agent_id}/activity",
        id: "reportAgentActivity",
        summary: "Report that the agent was used (by the messaging gateway, say): resets its idle_stop_after timer. Cheap: reports within a minute of the last one are coalesced (recorded false), and it never starts or restarts anything",
        body: None,
        ok: (202, "ActivityReport", false),
        errors: &[404, 409],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "post",
        path: "/v1/agents/{agent_id}/wake",
        id: "wakeAgent",
        summary: "Wake an idle agent: records activity and asks the controller to start it (RunTask within about a second); wait for Ready with GET .../status. Answers 200 with waking false, starting nothing, when desired_state is stopped or the agent is outside its schedule's windows (next_start_at says when it runs)",
        body: None,
        ok: (202, "WakeReport", false),
        errors: &[404, 409],
        if_match: false,
        query: &[],
        idempotent: false,
        also: Some((
            200,
            "Nothing starts: desired_state is stopped, or the agent is outside its schedule's windows (waking false, with the reason and next_start_at)",
        )),
    },
    Operation {
        method: "get",
        path: "/v1/agents/{agent_id}/status",
        id: "getAgentStatus",
        summary: "What the controller last reported (phase Pending until it has seen the agent)",
        body: None,
        ok: (200, "AgentStatus", false),
        errors: &[404],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "put",
        path: "/v1/agents/{agent_id}/secrets",
        id: "setAgentSecrets",
        summary: "Merge key/value pairs into the agent's secret; values are never returned. ECS reads secrets at task start: restart to apply",
        body: Some("SecretValues"),
        ok: (200, "SecretKeys", false),
        errors: &[400, 404, 409, 413, 415, 422],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "get",
        path: "/v1/agents/{agent_id}/secrets",
        id: "getAgentSecretKeys",
        summary: "The key names in the agent's secret, never the values",
        body: None,
        ok: (200, "SecretKeys", false),
        errors: &[404],
        if_match: false,
        query: &[],
        idempotent: false,
        also: None,
    },
    Operation {
        method: "get",
        path: "/v1/agents/{agent_id}/logs",
        id: "getAgentLogs",
        summary: "The newest log lines of the agent's current task (CloudWatch Logs, read on demand: do not poll it)",
        body: None,
        ok: (200, "AgentLogs", false),
        errors: &[400, 404],
        if_match: false,
        query: &["tail"],
        idempotent: false,
        also: None,
    },
];

/// The (method, path) pairs the document describes, methods in upper case.
#[must_use]
pub fn documented() -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|o| (o.method.to_uppercase(), o.path.to_owned()))
        .collect();
    pairs.push(("GET".to_owned(), "/healthz".to_owned()));
    pairs
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem_response(status: u16) -> Value {
    json!({
        "description": reason(status),
        "content": { "application/problem+json": { "schema": schema_ref("Problem") } }
    })
}

fn query_parameter(name: &str) -> Value {
    match name {
        "limit" => json!({
            "name": "limit", "in": "query", "required": false,
            "description": "Agents per page (default 50)",
            "schema": { "type": "integer", "minimum": 1, "maximum": 100 }
        }),
        "cursor" => json!({
            "name": "cursor", "in": "query", "required": false,
            "description": "next_cursor of the previous page of the same listing; opaque and signed, so an altered cursor or one from another listing is a 400",
            "schema": { "type": "string" }
        }),
        "tail" => json!({
            "name": "tail", "in": "query", "required": false,
            "description": "How many of the newest lines (default 100)",
            "schema": { "type": "integer", "minimum": 1, "maximum": crate::logs::MAX_TAIL }
        }),
        "purge_data" => json!({
            "name": "purge_data", "in": "query", "required": false,
            "description": "Erase the agent's files on EFS (a one-off purge task) before its access point is deleted; sets purge_data_on_delete in the same write as deletion_requested_at. Without it the files stay (docs/operations.md, Retention)",
            "schema": { "type": "boolean", "default": false }
        }),
        _ => json!({
            "name": name, "in": "query", "required": false,
            "description": "Admin tokens only: list this tenant's agents (a tenant token may give its own)",
            "schema": { "type": "string", "pattern": spec::DNS_LABEL_PATTERN, "maxLength": 40 }
        }),
    }
}

fn operation(op: &Operation) -> Value {
    let mut parameters: Vec<Value> = Vec::new();
    if op.path.contains("{agent_id}") {
        parameters.push(json!({
            "name": "agent_id", "in": "path", "required": true,
            "schema": { "type": "string", "pattern": spec::DNS_LABEL_PATTERN, "minLength": 1, "maxLength": 40 }
        }));
    }
    parameters.extend(op.query.iter().map(|q| query_parameter(q)));
    if op.idempotent {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Without agent_id: the same key gives the same generated id (an HMAC under the server's key), so a retry answers 200 with the agent the first attempt created instead of creating a second; the same key with a different body is a 422. 1 to 255 visible ASCII characters",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 }
        }));
    }
    if op.if_match {
        parameters.push(json!({
            "name": "If-Match", "in": "header", "required": false,
            "description": "An ETag from an earlier response: the request fails with 412 if the agent changed since, in the console too",
            "schema": { "type": "string" }
        }));
    }
    let (ok_status, ok_schema, etag) = op.ok;
    let mut ok = json!({
        "description": reason(ok_status),
        "content": { "application/json": { "schema": schema_ref(ok_schema) } }
    });
    if etag {
        let mut headers = json!({
            "ETag": {
                "description": "Hash of the spec item as read; send it back in If-Match",
                "required": true,
                "schema": { "type": "string" }
            }
        });
        if ok_status == 201 {
            headers["Location"] = json!({ "required": true, "schema": { "type": "string" } });
        }
        ok["headers"] = headers;
    }
    let mut responses = Map::new();
    if op.idempotent {
        let mut replayed = ok.clone();
        replayed["description"] = json!(
            "A retry with the same Idempotency-Key: the agent the first attempt created, as it is now"
        );
        if let Some(headers) = replayed["headers"].as_object_mut() {
            headers.remove("Location");
        }
        responses.insert("200".to_owned(), replayed);
    }
    if let Some((status, description)) = op.also {
        let mut also = ok.clone();
        also["description"] = json!(description);
        responses.insert(status.to_string(), also);
    }
    responses.insert(ok_status.to_string(), ok);
    let mut errors: Vec<u16> = op.errors.to_vec();
    errors.extend([401, 429, 502, 503]);
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        responses.insert(status.to_string(), problem_response(status));
    }
    let mut value = json!({
        "operationId": op.id,
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = op.body {
        value["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref(body) } }
        });
    }
    value
}

/// Schemas of response types (as serialized) and of the spec as a request takes it.
fn schemas() -> Map<String, Value> {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut output = settings.clone().for_serialize().into_generator();
    // Each call registers the type's schema among the definitions; the returned $ref is not
    // needed here.
    let _ = output.subschema_for::<AgentView>();
    let _ = output.subschema_for::<AgentList>();
    let _ = output.subschema_for::<AgentStatus>();
    let _ = output.subschema_for::<SecretKeys>();
    let _ = output.subschema_for::<crate::logs::AgentLogs>();
    let _ = output.subschema_for::<ActivityReport>();
    let _ = output.subschema_for::<WakeReport>();
    let _ = output.subschema_for::<Problem>();
    let mut schemas = output.take_definitions(true);

    let mut input = settings.for_deserialize().into_generator();
    let _ = input.subschema_for::<AgentDocument>();
    let mut definitions = input.take_definitions(true);
    if let Some(mut document) = definitions.remove("AgentDocument") {
        if let Some(object) = document.as_object_mut() {
            // In a request both ids may be omitted: the server generates agent_id, and takes
            // client_id from a tenant's token or the stored agent.
            object.remove("required");
            object.insert("title".into(), json!("Agent spec"));
            object.insert(
                "description".into(),
                json!("An Agent spec as a request writes it: the fields of a manifest (docs/spec.md has every rule). Bookkeeping (generation, managed_by, created_at, deletion_requested_at) is set by the server."),
            );
        }
        definitions.insert("AgentSpec".into(), document);
    }
    schemas.extend(definitions);
    schemas.insert(
        "SecretValues".into(),
        json!({
            "type": "object",
            "description": "Secret key/value pairs to merge into the agent's secret. Keys are environment variable names a spec may use (docs/spec.md: not reserved, at most 64 characters).",
            "minProperties": 1,
            "propertyNames": { "pattern": spec::ENV_NAME_PATTERN, "maxLength": spec::MAX_SECRET_KEY_LEN },
            "additionalProperties": { "type": "string" }
        }),
    );
    schemas
}

/// The whole document.
#[must_use]
pub fn document() -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in OPERATIONS {
        paths
            .entry(op.path)
            .or_default()
            .insert(op.method.to_owned(), operation(op));
    }
    let mut paths: Map<String, Value> = paths
        .into_iter()
        .map(|(path, ops)| (path.to_owned(), Value::Object(ops)))
        .collect();
    paths.insert(
        "/healthz".into(),
        json!({ "get": {
            "operationId": "healthz",
            "summary": "Liveness; needs no token",
            "security": [],
            "responses": { "200": {
                "description": "OK",
                "content": { "text/plain": { "schema": { "type": "string" } } }
            } }
        } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "clawfleet",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Create, configure, start and stop isolated OpenClaw agents. A tenant token sees only its own agents. Errors are application/problem+json naming the field at fault."
        },
        "servers": [ { "url": "/" } ],
        "security": [ { "bearer": [] } ],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        }
    })
}
