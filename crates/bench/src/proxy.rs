//! A proxy in front of moto that throttles ECS like AWS does: token buckets per category of
//! operations at the documented rates, answering ThrottlingException when one is empty.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloud::ratelimit::{Bucket, Limit};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

/// AWS's documented ECS buckets (capacity, refill per second), by operation.
fn ecs_bucket(operation: &str) -> Option<(&'static str, u32, f64)> {
    Some(match operation {
        "RegisterTaskDefinition" | "DeregisterTaskDefinition" => ("register", 20, 1.0),
        "RunTask" | "StartTask" | "StopTask" => ("run", 100, 40.0),
        "DescribeTasks" | "ListTasks" => ("describe", 100, 20.0),
        "DescribeTaskDefinition" => ("describe-td", 50, 20.0),
        "TagResource" | "UntagResource" => ("tag", 20, 10.0),
        "ListTaskDefinitions" => ("list-td", 50, 20.0),
        _ => return None,
    })
}

pub struct Proxy {
    upstream: Uri,
    client: Client<HttpConnector, Body>,
    buckets: Mutex<std::collections::HashMap<&'static str, Arc<Bucket>>>,
    pub throttled: AtomicU64,
    /// (when, startedBy) of every RunTask that went through.
    pub run_tasks: Mutex<Vec<(Instant, String)>>,
}

impl Proxy {
    pub fn new(upstream: &str) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            upstream: upstream
                .parse()
                .map_err(|e| format!("upstream {upstream}: {e}"))?,
            client: Client::builder(TokioExecutor::new()).build_http(),
            buckets: Mutex::default(),
            throttled: AtomicU64::new(0),
            run_tasks: Mutex::default(),
        }))
    }

    fn bucket(&self, operation: &str) -> Option<Arc<Bucket>> {
        let (name, capacity, rate) = ecs_bucket(operation)?;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(name).or_insert_with(|| {
            let limit = Limit::new(capacity, rate).unwrap_or(cloud::ratelimit::DEFAULT_LIMIT);
            Arc::new(Bucket::new(name, limit))
        });
        Some(Arc::clone(bucket))
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(self))
    }
}

fn throttle() -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    )
        .into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    if target.starts_with("AmazonEC2ContainerService")
        && let Some(bucket) = proxy.bucket(&operation)
        && !bucket.try_acquire()
    {
        proxy.throttled.fetch_add(1, Ordering::Relaxed);
        return throttle();
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if operation == "RunTask"
        && target.starts_with("AmazonEC2ContainerService")
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        let started_by = json["startedBy"].as_str().unwrap_or_default().to_owned();
        proxy
            .run_tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((Instant::now(), started_by));
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = format!(
        "{}://{}{}",
        proxy.upstream.scheme_str().unwrap_or("http"),
        proxy
            .upstream
            .authority()
            .map_or("127.0.0.1", |a| a.as_str()),
        path
    );
    let Ok(uri) = uri.parse::<Uri>() else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    parts.uri = uri;
    let upstream = axum::http::Request::from_parts(parts, Body::from(bytes));
    match proxy.client.request(upstream).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    }
}
