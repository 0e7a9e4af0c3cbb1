//! The HTTP API: tenant-scoped agent lifecycle and secret intake over the Agent store.
//!
//! Customers' backends and dashboards write specs here; every write ends in the same validated
//! spec item that the CLI, GitOps and the DynamoDB console produce, so the controller cannot
//! tell them apart. Secret values go to Secrets Manager through [`intake`], the code that
//! `clawfleet secrets set` uses too.

pub mod agents;
pub mod auth;
pub mod body;
pub mod console;
pub mod idkey;
pub mod intake;
pub mod limit;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use cloud::Secrets;
use store::Store;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::{Caller, Tokens, TokensError, token_hash};
pub use problem::ApiError;

/// The `managed_by` of every spec the API writes.
pub const WRITER: &str = "api";

/// The default limit on request bodies.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How the API runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of the agents' secret names (`/openclaw/agents/` by default).
    pub secret_prefix: String,
    /// Larger request bodies get a 413.
    pub body_limit: usize,
    /// Each tenant's request budget; `None` leaves tenants unlimited.
    pub tenant_rate: Option<limit::TenantRate>,
    /// Makes keyed agent ids and signs listing cursors.
    pub id_key: idkey::IdKey,
    /// Where agents' log lines are read; `None` answers the logs route with a 503.
    pub logs: Option<logs::LogReader>,
    /// The web console's public address and session lifetimes.
    pub console: console::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret_prefix: spec::render::DEFAULT_SECRET_PREFIX.to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            tenant_rate: None,
            // Only for tests and tools: `serve` loads the key every replica shares.
            id_key: idkey::IdKey::random(),
            logs: None,
            console: console::Settings::default(),
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Api(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub secrets: Secrets,
    pub config: Config,
    pub metrics: metrics::Metrics,
    limits: Option<limit::TenantLimits>,
    /// The console's sessions, in this replica's memory (docs/console.md says why).
    sessions: console::session::Sessions,
    /// Replaced whole when the tokens document is read again, so that a tenant added to it
    /// needs no restart.
    tokens: RwLock<Arc<Tokens>>,
}

impl std::ops::Deref for Api {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Api {
    #[must_use]
    pub fn new(store: Store, secrets: Secrets, tokens: Tokens, config: Config) -> Self {
        Self::with_metrics(store, secrets, tokens, config, metrics::Metrics::default())
    }

    /// [`Api::new`] with metrics that carry more collectors (the AWS call counts).
    #[must_use]
    pub fn with_metrics(
        store: Store,
        secrets: Secrets,
        tokens: Tokens,
        config: Config,
        metrics: metrics::Metrics,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            secrets,
            limits: config.tenant_rate.map(limit::TenantLimits::new),
            sessions: console::session::Sessions::new(config.console.lifetimes),
            config,
            metrics,
            tokens: RwLock::new(Arc::new(tokens)),
        }))
    }

    /// The token hashes in force.
    #[must_use]
    pub fn tokens(&self) -> Arc<Tokens> {
        Arc::clone(&self.tokens.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a new tokens document in force for every request from now on.
    pub fn set_tokens(&self, tokens: Tokens) {
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
    }

    /// `/metrics`, for the separate address Prometheus scrapes.
    pub fn metrics_router(&self) -> Router {
        let api = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let text = api.metrics.render();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
    }

    /// Every route, with authentication, the access log and panic containment.
    pub fn router(&self) -> Router {
        let v1 = v1()
            .router
            .route_layer(middleware::from_fn_with_state(self.clone(), authenticate));
        Router::new()
            .merge(v1)
            .merge(console::router(self))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/openapi.json", get(openapi_json))
            .fallback(|| async { ApiError::NotFound("route".to_owned()) })
            .layer(middleware::map_response(method_not_allowed_as_problem))
            // Inside the access log, so that a request that panicked is logged and counted.
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal.into_response()
            }))
            .layer(middleware::from_fn_with_state(self.clone(), access_log))
            .with_state(self.clone())
    }
}

/// The authenticated routes, recorded as they are added so that the OpenAPI document can be
/// checked against them.
pub struct Routes {
    router: Router<Api>,
    paths: BTreeMap<&'static str, MethodRouter<Api>>,
    /// Every (method, path) served.
    pub table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            paths: BTreeMap::new(),
            table: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Api>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let routes = self.paths.remove(path).unwrap_or_default();
        self.paths.insert(path, routes.on(filter, handler));
        self.table.push((method, path));
        self
    }

    fn build(mut self) -> Self {
        for (path, routes) in std::mem::take(&mut self.paths) {
            self.router = self.router.route(path, routes);
        }
        self
    }
}

/// The `/v1` routes.
#[must_use]
pub fn v1() -> Routes {
    use agents::*;
    Routes::new()
        .add(Method::GET, "/v1/agents", list)
        .add(Method::POST, "/v1/agents", create)
        .add(Method::GET, "/v1/agents/{agent_id}", get)
        .add(Method::PUT, "/v1/agents/{agent_id}", replace)
        .add(Method::DELETE, "/v1/agents/{agent_id}", delete)
        .add(Method::POST, "/v1/agents/{agent_id}/start", start)
        .add(Method::POST, "/v1/agents/{agent_id}/stop", stop)
        .add(Method::POST, "/v1/agents/{agent_id}/restart", restart)
        .add(Method::GET, "/v1/agents/{agent_id}/status", status)
        .add(Method::POST, "/v1/agents/{agent_id}/activity", activity)
        .add(Method::POST, "/v1/agents/{agent_id}/wake", wake)
        .add(Method::PUT, "/v1/agents/{agent_id}/secrets", put_secrets)
        .add(Method::GET, "/v1/agents/{agent_id}/secrets", get_secrets)
        .add(
            Method::GET,
            "/v1/agents/{agent_id}/logs",
            crate::logs::get_logs,
        )
        .build()
}

async fn openapi_json() -> Response {
    let mut response = problem::axum_json(&openapi::document()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// axum answers a method a route does not serve with an empty 405; it becomes a problem like
/// every other error, keeping the `Allow` header.
async fn method_not_allowed_as_problem(response: Response) -> Response {
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = ApiError::MethodNotAllowed.into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// The tenant a response was served to, for the access log.
#[derive(Debug, Clone)]
pub(crate) struct Served(pub(crate) String);

/// Resolves the bearer token to a [`Caller`], or answers 401.
async fn authenticate(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    // Which of two tokens counts would depend on the proxy in front; neither does.
    if request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .count()
        > 1
    {
        return ApiError::BadParameter {
            field: "Authorization".into(),
            message: "given more than once; send one bearer token".into(),
        }
        .into_response();
    }
    let caller = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .and_then(|token| api.tokens().caller(token));
    let Some(caller) = caller else {
        return ApiError::Unauthorized.into_response();
    };
    let served = Served(caller.label().to_owned());
    if let (Caller::Tenant(tenant), Some(limits)) = (&caller, &api.limits)
        && let Err(wait) = limits.check(tenant)
    {
        let mut response = ApiError::TooManyRequests {
            retry_after: wait.as_secs().saturating_add(1),
        }
        .into_response();
        response.extensions_mut().insert(served);
        return response;
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(served);
    response
}

/// One line per request: method, route, status, latency and tenant. Never a header value, a
/// token or a body. The same figures go to the metrics.
async fn access_log(State(api): State<Api>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Any token is a valid method to hyper: anything but the standard ones is one label, or a
    // stream of invented methods would grow the metrics without bound.
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::PATCH
        | Method::TRACE
        | Method::CONNECT => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let tenant = response
        .extensions()
        .get::<Served>()
        .map_or("-", |s| s.0.as_str());
    let took = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(
        target: "access",
        %method,
        route,
        status,
        latency_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        tenant,
    );
    api.metrics.observe(&method, &route, status, took);
    response
}
