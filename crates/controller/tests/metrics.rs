//! Every metric docs/controller.md documents, with its labels, is on `/metrics` of a freshly
//! started controller before any work: dashboards and `absent()` alerts rely on it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use cloud::{Aws, Calls, Limits};
use controller::metrics::Metrics;
use controller::runtime::{Config, Controller};
use http_body_util::BodyExt;
use store::Store;
use tower::ServiceExt;

/// `(metric, labels)` for each row of the metrics table in docs/controller.md.
fn documented() -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/controller.md"
    ))
    .expect("docs/controller.md");
    let rows: Vec<(String, Vec<String>)> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let labels = cells[2]
                .split(',')
                .map(|l| l.trim().trim_matches('`').to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            (name, labels)
        })
        .collect();
    assert!(
        rows.len() >= 16,
        "the metrics table was not found: {rows:?}"
    );
    rows
}

#[tokio::test]
async fn every_documented_metric_is_exported_at_zero_before_any_work() {
    // Nothing is ever called: the endpoint only has to parse.
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let settings = plan::fixtures::settings();
    let calls = Calls::default();
    let controller = Controller::new(
        Aws::new(&config, &settings),
        Store::new(aws_sdk_dynamodb::Client::new(&config), "unused"),
        settings,
        Config {
            template: "agent-template".into(),
            workers: 1,
            resync_interval: std::time::Duration::from_secs(60),
            max_concurrent_replacements: 1,
            recovery_days: 7,
            iam_drift_interval: std::time::Duration::from_secs(3600),
            iam_role_quota: 1000,
            relist_interval: std::time::Duration::ZERO,
        },
        Arc::new(Limits::default()),
        Arc::new(Metrics::new(&calls)),
        None,
    );
    let response = controller
        .router()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    for (name, labels) in documented() {
        let series: Vec<&&str> = samples
            .iter()
            .filter(|s| {
                let metric = s.split(['{', ' ']).next().unwrap_or_default();
                metric == name
                    || metric == format!("{name}_count")
                    || metric == format!("{name}_total")
            })
            .collect();
        assert!(!series.is_empty(), "{name} is not exported:\n{text}");
        for label in &labels {
            assert!(
                series.iter().any(|s| s.contains(&format!("{label}=\""))),
                "{name} has no series with label {label}: {series:?}"
            );
        }
    }
    for queue_series in ["workqueue_depth", "workqueue_unfinished_work_seconds"] {
        assert!(
            samples
                .iter()
                .any(|s| s.starts_with(&format!("{queue_series}{{name=\"agent\"}} 0"))),
            "{queue_series} for the queue `agent` is 0:\n{text}"
        );
    }
    assert!(
        samples
            .iter()
            .any(|s| s.starts_with("clawfleet_aws_requests_total{")
                && s.contains("operation=\"RunTask\"")
                && s.contains("outcome=\"throttled\"")),
        "every AWS operation exists at 0 with each outcome"
    );
    // Every phase, the lifecycle's Scheduled and Idle among them, exists at 0.
    for phase in spec::Phase::ALL {
        let sample = format!("clawfleet_agents{{phase=\"{}\"}} 0", phase.as_str());
        assert!(
            samples.iter().any(|s| s.starts_with(&sample)),
            "{sample} missing:\n{text}"
        );
    }
    for phase in ["Scheduled", "Idle"] {
        assert!(spec::Phase::ALL.iter().any(|p| p.as_str() == phase));
    }
}
