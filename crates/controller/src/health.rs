//! The controller's HTTP side: `/metrics` (Prometheus text), `/healthz` (the process is alive)
//! and `/readyz` (the leader has done its first resync; the detail names a store failure that
//! keeps statuses from being written, and a task-events queue that cannot be read).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::runtime::Controller;

impl Controller {
    /// The router for `--metrics-addr`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/metrics",
                get(|State(c): State<Arc<Self>>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        c.metrics.render(),
                    )
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(|State(c): State<Arc<Self>>| async move {
                    let (code, head) = if !c.is_leader() {
                        (StatusCode::SERVICE_UNAVAILABLE, "standby")
                    } else if c.is_ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "first resync not done")
                    };
                    let mut body = format!("{head}\n");
                    if let Some(detail) = c.store_problem() {
                        body.push_str(&format!("store: {detail}\n"));
                    }
                    // Still ready: without events the resync converges everything, later.
                    if let Some(detail) = c.task_events_problem() {
                        body.push_str(&format!("task events: {detail}\n"));
                    }
                    (code, body)
                }),
            )
            .with_state(Arc::clone(self))
    }
}
