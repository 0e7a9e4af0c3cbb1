//! A proxy in front of moto that behaves like AWS where moto does not:
//! - ECS throttles with token buckets per category of operations at the documented rates,
//!   answering ThrottlingException when one is empty; a competing client in the same account
//!   can be made to spend a share of the RegisterTaskDefinition bucket;
//! - listings come in pages of 100 ([`crate::paging`]);
//! - idempotency tokens are remembered and replayed (RunTask's clientToken, EFS's ClientToken,
//!   Secrets Manager's ClientRequestToken), which moto ignores;
//! - a configurable share of all calls fails with a 500: half refused before acting, half
//!   after taking effect, so that the answer is lost.
//!
//! It also counts what took effect per agent, so that duplicates show.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;

use crate::call::{Call, Service, form_value};
use crate::paging::{self, Listing, Page};

/// AWS's page size for the listings the controller makes.
pub const AWS_PAGE_SIZE: usize = 100;

/// AWS's documented ECS buckets (name, capacity, refill per second), by operation.
fn ecs_bucket(operation: &str) -> Option<(&'static str, f64, f64)> {
    Some(match operation {
        "RegisterTaskDefinition" | "DeregisterTaskDefinition" => (REGISTER, 20.0, 1.0),
        "RunTask" | "StartTask" | "StopTask" => ("run", 100.0, 40.0),
        "DescribeTasks" | "ListTasks" => ("describe", 100.0, 20.0),
        "DescribeTaskDefinition" => ("describe-td", 50.0, 20.0),
        "TagResource" | "UntagResource" => ("tag", 20.0, 10.0),
        "ListTaskDefinitions" => ("list-td", 50.0, 20.0),
        _ => return None,
    })
}

/// The bucket RegisterTaskDefinition and DeregisterTaskDefinition share: the floor of a cold
/// start.
pub const REGISTER: &str = "register";

/// One of AWS's token buckets: `capacity` tokens, refilled at `per_second`.
#[derive(Debug)]
struct AwsBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl AwsBucket {
    fn new(capacity: f64, per_second: f64) -> Self {
        Self {
            capacity,
            per_second,
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second)
            .min(self.capacity);
        self.at = now;
    }

    fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A call the proxy answered from its memory of an idempotency token.
#[derive(Debug, Clone)]
struct Replay {
    /// The request without its token: the same token with other parameters is refused.
    params: String,
    body: Bytes,
}

/// What went through the proxy since the last [`Proxy::reset`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Throttled answers, by operation.
    pub throttled: BTreeMap<String, u64>,
    /// Calls answered with a 500 before reaching moto.
    pub faults_before: u64,
    /// Calls that took effect in moto, then answered with a 500.
    pub faults_after: u64,
    /// Calls answered from a remembered idempotency token.
    pub replays: u64,
    /// Listing pages served, by operation.
    pub pages: BTreeMap<String, u64>,
    /// Creates that took effect, by (operation, agent).
    pub created: BTreeMap<(String, String), u64>,
    /// RegisterTaskDefinition tokens the competing client took, and its throttled attempts.
    pub competitor_took: u64,
    pub competitor_throttled: u64,
}

impl Stats {
    /// Creates that took effect beyond the first per agent, by operation.
    #[must_use]
    pub fn duplicates(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for ((operation, _), n) in &self.created {
            *out.entry(operation.clone()).or_default() += n.saturating_sub(1);
        }
        out
    }

    #[must_use]
    pub fn throttled_total(&self) -> u64 {
        self.throttled.values().sum()
    }
}

pub struct Proxy {
    upstream: Uri,
    client: Client<HttpConnector, Body>,
    /// Page size of the paged listings; 0 passes moto's single page through.
    page_size: AtomicUsize,
    /// The share of calls that fail, in millionths.
    fault_ppm: AtomicU64,
    buckets: Mutex<HashMap<&'static str, AwsBucket>>,
    rng: Mutex<rand::rngs::StdRng>,
    replays: Mutex<HashMap<String, Replay>>,
    stats: Mutex<Stats>,
    competitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// (when, operation, agent) of every create that took effect: the cold start's timeline.
    creates: Mutex<Vec<(Instant, String, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// A proxy to `upstream` that pages at `page_size` (0: not at all); faults draw from a
    /// generator seeded with `seed`, so a run can be repeated.
    ///
    /// # Errors
    /// An upstream that is not a URL.
    pub fn new(upstream: &str, page_size: usize, seed: u64) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            upstream: upstream
                .parse()
                .map_err(|e| format!("upstream {upstream}: {e}"))?,
            client: Client::builder(TokioExecutor::new()).build_http(),
            page_size: AtomicUsize::new(page_size),
            fault_ppm: AtomicU64::new(0),
            buckets: Mutex::default(),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            replays: Mutex::default(),
            stats: Mutex::default(),
            competitor: Mutex::new(None),
            creates: Mutex::default(),
        }))
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(self))
    }

    /// Fails `rate` (0 to 1) of all calls from now on.
    pub fn set_fault_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1e6).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.fault_ppm.store(ppm as u64, Ordering::Relaxed);
    }

    /// A new account: full buckets, no counts, no competitor.
    pub fn reset(&self) {
        lock(&self.buckets).clear();
        *lock(&self.stats) = Stats::default();
        lock(&self.creates).clear();
        if let Some(task) = lock(&self.competitor).take() {
            task.abort();
        }
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// Tokens in the RegisterTaskDefinition bucket now.
    #[must_use]
    pub fn register_tokens(&self) -> f64 {
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry(REGISTER)
            .or_insert_with(|| AwsBucket::new(20.0, 1.0));
        bucket.refill();
        bucket.tokens
    }

    /// The RegisterTaskDefinition bucket's refill rate per second.
    #[must_use]
    pub fn register_rate(&self) -> f64 {
        ecs_bucket("RegisterTaskDefinition").map_or(1.0, |(_, _, rate)| rate)
    }

    /// When the first RunTask with `started_by` took effect.
    #[must_use]
    pub fn run_task_of(&self, started_by: &str) -> Option<Instant> {
        lock(&self.creates)
            .iter()
            .find(|(_, operation, by)| operation == "RunTask" && by == started_by)
            .map(|(at, _, _)| *at)
    }

    /// When the first and the last `operation` that took effect did.
    #[must_use]
    pub fn first_and_last(&self, operation: &str) -> Option<(Instant, Instant)> {
        let creates = lock(&self.creates);
        let mut times = creates
            .iter()
            .filter(|(_, op, _)| op == operation)
            .map(|(at, _, _)| *at);
        let first = times.next()?;
        Some((first, times.next_back().unwrap_or(first)))
    }

    /// Another client in the same account spends `share` of the RegisterTaskDefinition
    /// bucket's refill, one call at a time, from now until [`Proxy::reset`].
    pub fn start_competitor(self: &Arc<Self>, share: f64) {
        if share <= 0.0 {
            return;
        }
        let period = Duration::from_secs_f64(1.0 / (share * self.register_rate()));
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let took = this.take_token("RegisterTaskDefinition");
                let mut stats = lock(&this.stats);
                if took {
                    stats.competitor_took += 1;
                } else {
                    stats.competitor_throttled += 1;
                }
            }
        });
        if let Some(old) = lock(&self.competitor).replace(task) {
            old.abort();
        }
    }

    /// Takes a token from the ECS bucket of `operation`; true when it passes (or has none).
    fn take_token(&self, operation: &str) -> bool {
        let Some((name, capacity, rate)) = ecs_bucket(operation) else {
            return true;
        };
        lock(&self.buckets)
            .entry(name)
            .or_insert_with(|| AwsBucket::new(capacity, rate))
            .try_take()
    }

    /// Draws whether this call fails: `Some(true)` before acting, `Some(false)` after.
    fn draw_fault(&self) -> Option<bool> {
        let ppm = self.fault_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return None;
        }
        let draw: u64 = lock(&self.rng).random_range(0..2_000_000);
        (draw < 2 * ppm).then_some(draw < ppm)
    }
}

/// The token of an idempotent create, as AWS keys its memory of it.
fn token_key(call: &Call, request: &Value) -> Option<String> {
    let field = match (call.service, call.operation.as_str()) {
        (Service::Ecs, "RunTask") => "clientToken",
        (Service::Efs, "CreateAccessPoint") => "ClientToken",
        (Service::SecretsManager, "CreateSecret") => "ClientRequestToken",
        _ => return None,
    };
    let token = request.get(field)?.as_str()?;
    // RunTask's tokens are per cluster.
    let scope = request
        .get("cluster")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!("{}:{scope}:{token}", call.operation))
}

/// The request without its token, to tell a retry from another request under the same token.
fn params_of(request: &Value) -> String {
    let mut request = request.clone();
    if let Some(object) = request.as_object_mut() {
        for field in ["clientToken", "ClientToken", "ClientRequestToken"] {
            object.remove(field);
        }
    }
    request.to_string()
}

/// Which agent a create is for, to count what took effect per agent.
fn created_for(call: &Call, request: &Value, form: &str) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match (call.service, call.operation.as_str()) {
        (Service::Ecs, "RunTask") => request.get("startedBy").and_then(text),
        (Service::Ecs, "RegisterTaskDefinition") => request.get("family").and_then(text),
        (Service::SecretsManager, "CreateSecret") => request.get("Name").and_then(text),
        (Service::Efs, "CreateAccessPoint") => request
            .get("Tags")?
            .as_array()?
            .iter()
            .find(|t| t.get("Key").and_then(Value::as_str) == Some(spec::render::tag::AGENT_ID))
            .and_then(|t| t.get("Value").and_then(text)),
        (Service::Iam, "CreateRole") => form_value(form, "RoleName"),
        _ => None,
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(
        status,
        "application/x-amz-json-1.1",
        serde_json::json!({"__type": code, "message": message}).to_string(),
    )
}

fn throttle() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "ThrottlingException",
        "Rate exceeded",
    )
}

/// A 500 in the service's own protocol, with the code its API reference gives.
fn server_error(service: Service) -> Response {
    let message =
        "We encountered an internal error. Please try again. (injected by the benchmark proxy)";
    match service {
        Service::Efs => {
            let mut response = answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                serde_json::json!({"ErrorCode": "InternalServerError", "Message": message})
                    .to_string(),
            );
            response.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static("InternalServerError"),
            );
            response
        }
        Service::Iam | Service::Other => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceFailure</Code>\
                 <Message>{message}</Message></Error><RequestId>bench</RequestId></ErrorResponse>"
            ),
        ),
        Service::Ecs => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerException",
            message,
        ),
        Service::SecretsManager => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServiceError",
            message,
        ),
        Service::DynamoDb | Service::DynamoDbStreams => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        ),
        Service::Sqs => json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message),
    }
}

/// What AWS answers for a token it has seen.
fn replayed(call: &Call, seen: &Replay, params: &str) -> Response {
    match call.operation.as_str() {
        "CreateAccessPoint" => {
            let id = serde_json::from_slice::<Value>(&seen.body)
                .ok()
                .and_then(|v| {
                    v.get("AccessPointId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let mut response = answer(
                StatusCode::CONFLICT,
                "application/json",
                serde_json::json!({
                    "ErrorCode": "AccessPointAlreadyExists",
                    "Message": "An access point with this client token already exists.",
                    "AccessPointId": id,
                })
                .to_string(),
            );
            response.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static("AccessPointAlreadyExists"),
            );
            response
        }
        _ if seen.params != params => json_error(
            StatusCode::BAD_REQUEST,
            if call.service == Service::Ecs {
                "ConflictException"
            } else {
                "ResourceExistsException"
            },
            "The client token was used with other parameters.",
        ),
        _ => answer(
            StatusCode::OK,
            "application/x-amz-json-1.1",
            String::from_utf8_lossy(&seen.body).into_owned(),
        ),
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = parts.uri.path().to_owned();
    let call = Call::of(target.as_deref(), parts.method.as_str(), &path, &bytes);

    if call.service == Service::Ecs && !proxy.take_token(&call.operation) {
        *lock(&proxy.stats)
            .throttled
            .entry(call.operation.clone())
            .or_default() += 1;
        return throttle();
    }
    let fault = proxy.draw_fault();
    if fault == Some(true) {
        lock(&proxy.stats).faults_before += 1;
        return server_error(call.service);
    }

    let mut json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let form = if call.service == Service::Iam {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        String::new()
    };
    let key = json.as_ref().and_then(|j| token_key(&call, j));
    let params = json.as_ref().map(params_of).unwrap_or_default();
    if let Some(key) = &key {
        let seen = lock(&proxy.replays).get(key).cloned();
        if let Some(seen) = seen {
            lock(&proxy.stats).replays += 1;
            if fault == Some(false) {
                lock(&proxy.stats).faults_after += 1;
                return server_error(call.service);
            }
            return replayed(&call, &seen, &params);
        }
    }

    // Paging: take the proxy's token out before moto sees the request.
    let size = proxy.page_size.load(Ordering::Relaxed);
    let listing = Listing::of(&call).filter(|_| size > 0);
    let mut page: Option<Page> = None;
    let mut query = parts.uri.query().map(str::to_owned);
    let mut body = bytes.clone();
    if let Some(listing) = listing {
        match listing {
            Listing::Query { .. } => {
                let (q, p) =
                    paging::take_query(query.as_deref().unwrap_or_default(), listing, size);
                // One access point by id is not a listing.
                if !q.contains("AccessPointId=") {
                    page = p;
                }
                query = Some(q);
            }
            Listing::Json { .. } | Listing::Native { .. } => {
                if let Some(j) = json.as_mut() {
                    page = paging::take_json(j, listing, size);
                    body = Bytes::from(j.to_string());
                    parts.headers.remove(header::CONTENT_LENGTH);
                }
            }
        }
    }

    let uri = format!(
        "{}://{}{}{}",
        proxy.upstream.scheme_str().unwrap_or("http"),
        proxy
            .upstream
            .authority()
            .map_or("127.0.0.1", |a| a.as_str()),
        path,
        query
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );
    let Ok(uri) = uri.parse::<Uri>() else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    parts.uri = uri;
    let upstream = axum::http::Request::from_parts(parts, Body::from(body));
    let response = match proxy.client.request(upstream).await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let (mut head, answer_body) = response.into_parts();
    let Ok(mut answer_bytes) = answer_body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let ok = head.status.is_success();

    if ok && let Some(listing) = listing {
        let mut served = true;
        if let Some(page) = page
            && let Ok(mut whole) = serde_json::from_slice::<Value>(&answer_bytes)
        {
            served = paging::cut(&mut whole, listing, page).is_some();
            answer_bytes = Bytes::from(whole.to_string());
            head.headers.remove(header::CONTENT_LENGTH);
        }
        if served {
            *lock(&proxy.stats)
                .pages
                .entry(call.operation.clone())
                .or_default() += 1;
        }
    }
    if ok {
        if let Some(agent) = created_for(&call, json.as_ref().unwrap_or(&Value::Null), &form) {
            *lock(&proxy.stats)
                .created
                .entry((call.operation.clone(), agent.clone()))
                .or_default() += 1;
            lock(&proxy.creates).push((Instant::now(), call.operation.clone(), agent));
        }
        if let Some(key) = key {
            lock(&proxy.replays).insert(
                key,
                Replay {
                    params,
                    body: answer_bytes.clone(),
                },
            );
        }
    }
    if fault == Some(false) {
        lock(&proxy.stats).faults_after += 1;
        return server_error(call.service);
    }
    let mut response = Response::from_parts(head, Body::from(answer_bytes));
    strip_hop_headers(response.headers_mut());
    response
}

/// Headers that described moto's body, not the one the proxy sends.
fn strip_hop_headers(headers: &mut HeaderMap) {
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]
    use super::*;
    use axum::http::Method;

    /// An upstream that, like moto, answers ListTasks, ListTaskDefinitions and
    /// DescribeAccessPoints whole, pages ListSecrets itself by `MaxResults` (1,000 unless
    /// told), and counts the requests it gets.
    async fn whole_listings(n: usize, requests: Arc<AtomicU64>) -> String {
        let app = axum::Router::new().fallback(move |method: Method, request: Request| {
            let requests = Arc::clone(&requests);
            async move {
                requests.fetch_add(1, Ordering::Relaxed);
                let target = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let json = match (method.as_str(), target.as_str()) {
                    (_, t) if t.ends_with(".ListTasks") => serde_json::json!({
                        "taskArns": (0..n).map(|i| format!("arn:aws:ecs:us-east-1:1:task/c/{i}")).collect::<Vec<_>>()
                    }),
                    (_, t) if t.ends_with(".ListTaskDefinitions") => serde_json::json!({
                        "taskDefinitionArns": (0..n).map(|i| format!("arn:aws:ecs:us-east-1:1:task-definition/f:{i}")).collect::<Vec<_>>()
                    }),
                    (_, t) if t.ends_with(".ListSecrets") => {
                        let start: usize = asked["NextToken"].as_str().unwrap_or("0").parse().unwrap();
                        let size = asked["MaxResults"].as_u64().unwrap_or(1000) as usize;
                        let end = (start + size).min(n);
                        let mut page = serde_json::json!({
                            "SecretList": (start..end).map(|i| serde_json::json!({"Name": format!("s{i}"), "ARN": format!("arn:s{i}")})).collect::<Vec<_>>()
                        });
                        if end < n {
                            page["NextToken"] = Value::from(end.to_string());
                        }
                        page
                    }
                    ("GET", _) => serde_json::json!({
                        "AccessPoints": (0..n).map(|i| serde_json::json!({"AccessPointId": format!("fsap-{i}"), "FileSystemId": "fs-1"})).collect::<Vec<_>>()
                    }),
                    _ => serde_json::json!({}),
                };
                answer(StatusCode::OK, "application/x-amz-json-1.1", json.to_string())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn proxied(upstream: &str, page_size: usize) -> (Arc<Proxy>, aws_config::SdkConfig) {
        let proxy = Proxy::new(upstream, page_size, 1).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = proxy.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(format!("http://{addr}"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::from_keys("t", "t", None))
            .load()
            .await;
        (proxy, config)
    }

    #[tokio::test]
    async fn the_proxy_s_paging_a_listing_of_250_items_comes_back_in_3_pages() {
        let requests = Arc::new(AtomicU64::new(0));
        let upstream = whole_listings(250, Arc::clone(&requests)).await;
        let (proxy, config) = proxied(&upstream, AWS_PAGE_SIZE).await;
        // The controller's own adapters, following next tokens as they do against AWS.
        let ecs = cloud::Ecs::new(aws_sdk_ecs::Client::new(&config), "c");
        let efs = cloud::Efs::new(aws_sdk_efs::Client::new(&config), "fs-1");
        let secrets = cloud::Secrets::new(aws_sdk_secretsmanager::Client::new(&config));
        assert_eq!(ecs.list_tasks_started_by("a").await.unwrap().len(), 250);
        assert_eq!(ecs.list_task_definitions(None).await.unwrap().len(), 250);
        assert_eq!(efs.describe_access_points().await.unwrap().len(), 250);
        assert_eq!(secrets.list_secrets("/").await.unwrap().len(), 250);
        let pages = proxy.stats().pages;
        for operation in [
            "ListTasks",
            "ListTaskDefinitions",
            "DescribeAccessPoints",
            "ListSecrets",
        ] {
            assert_eq!(pages.get(operation), Some(&3), "{operation}: {pages:?}");
        }
        assert_eq!(requests.load(Ordering::Relaxed), 12);
    }

    #[tokio::test]
    async fn without_paging_the_listing_passes_whole() {
        let requests = Arc::new(AtomicU64::new(0));
        let upstream = whole_listings(250, Arc::clone(&requests)).await;
        let (proxy, config) = proxied(&upstream, 0).await;
        let ecs = cloud::Ecs::new(aws_sdk_ecs::Client::new(&config), "c");
        assert_eq!(ecs.list_tasks_started_by("a").await.unwrap().len(), 250);
        assert!(proxy.stats().pages.is_empty());
        assert_eq!(requests.load(Ordering::Relaxed), 1);
    }

    /// An upstream whose RunTask starts a new task on every call, as moto does (it ignores
    /// client tokens), counting them.
    async fn forgetful_ecs(started: Arc<AtomicU64>) -> String {
        let app = axum::Router::new().fallback(move || {
            let started = Arc::clone(&started);
            async move {
                let n = started.fetch_add(1, Ordering::Relaxed);
                let task = format!("arn:aws:ecs:us-east-1:1:task/c/{n}");
                answer(
                    StatusCode::OK,
                    "application/x-amz-json-1.1",
                    serde_json::json!({"tasks": [{"taskArn": task}], "failures": []}).to_string(),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn run_task(
        client: &aws_sdk_ecs::Client,
        token: &str,
        started_by: &str,
    ) -> aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder {
        client
            .run_task()
            .cluster("c")
            .task_definition("f:1")
            .started_by(started_by)
            .client_token(token)
    }

    #[tokio::test]
    async fn a_run_task_token_is_replayed_as_ecs_does_and_other_parameters_conflict() {
        let started = Arc::new(AtomicU64::new(0));
        let upstream = forgetful_ecs(Arc::clone(&started)).await;
        let (proxy, config) = proxied(&upstream, AWS_PAGE_SIZE).await;
        let ecs = aws_sdk_ecs::Client::new(&config);
        let first = run_task(&ecs, "t1", "agent-a").send().await.unwrap();
        let again = run_task(&ecs, "t1", "agent-a").send().await.unwrap();
        assert_eq!(first.tasks()[0].task_arn(), again.tasks()[0].task_arn());
        assert_eq!(
            started.load(Ordering::Relaxed),
            1,
            "the replay never reached moto"
        );
        let other = run_task(&ecs, "t1", "agent-b").send().await.unwrap_err();
        assert_eq!(
            aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&other),
            Some("ConflictException")
        );
        let stats = proxy.stats();
        assert_eq!(stats.replays, 2);
        assert_eq!(stats.created.len(), 1);
        assert!(stats.duplicates().values().all(|n| *n == 0));
    }

    #[tokio::test]
    async fn faults_split_between_refused_and_lost_answers_and_lost_ones_take_effect() {
        let started = Arc::new(AtomicU64::new(0));
        let upstream = forgetful_ecs(Arc::clone(&started)).await;
        let (proxy, config) = proxied(&upstream, AWS_PAGE_SIZE).await;
        proxy.set_fault_rate(1.0);
        // No SDK retries: each call is one draw.
        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(&config)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
        for i in 0..60 {
            let err = run_task(&ecs, &format!("t{i}"), &format!("agent-{i}"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(
                aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&err),
                Some("ServerException")
            );
        }
        let stats = proxy.stats();
        assert_eq!(stats.faults_before + stats.faults_after, 60);
        assert!(
            stats.faults_before >= 15 && stats.faults_after >= 15,
            "{stats:?}"
        );
        // What was lost after acting took effect: a retry with a new token would duplicate it.
        assert_eq!(started.load(Ordering::Relaxed), stats.faults_after);
        assert_eq!(stats.created.len() as u64, stats.faults_after);
    }
}
