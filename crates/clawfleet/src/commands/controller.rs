//! `clawfleet controller`: the long-running process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloud::Limits;
use cloud::{Aws, Calls};
use controller::leader::Elector;
use controller::metrics::Metrics;
use controller::runtime::{Config, Controller};
use std::collections::HashMap;
use store::Store;

use store::stream::{DynamoStream, Position, Watcher};
use tracing::{info, warn};

use crate::cli::ControllerArgs;
use crate::commands::shutdown_signal;
use crate::failure::{Exit, Failure};

pub struct Options {
    pub workers: usize,
    pub resync_interval: Duration,
    pub metrics_addr: SocketAddr,
    pub max_concurrent_replacements: usize,
    pub secret_recovery_days: i64,
    pub iam_drift_interval: Duration,
    pub iam_role_quota: u64,
    pub relist_interval: Duration,
    pub task_events_queue: Option<String>,
    pub rate_limits: String,
    pub lease_duration: Duration,
    pub lease_renew: Duration,
    pub replica_id: Option<String>,
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "clawfleet".into())
}

pub async fn run(
    table: &str,
    config: &aws_config::SdkConfig,
    args: &ControllerArgs,
    options: Options,
) -> Result<Exit, Failure> {
    let limits = Limits::parse(&options.rate_limits)
        .map_err(|e| Failure::Usage(format!("--rate-limits: {e}")))?;
    if options.lease_renew.is_zero() || options.lease_renew * 2 > options.lease_duration {
        return Err(Failure::Usage(
            "--lease-renew must be positive and at most half of --lease-duration".into(),
        ));
    }
    // A call in flight must not outlive the lease: operation timeouts stay below
    // lease - renew, so a paused leader cannot act after a new one took over.
    let timeout = (options.lease_duration - options.lease_renew).mul_f64(0.8);
    let config = &config
        .to_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        )
        .build();
    let settings = args.settings(table).map_err(Failure::Usage)?;
    let calls = Calls::default();
    let aws = Aws::counted(config, &settings, &calls);
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(calls.clone())
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), table);
    let watch_store = store.clone();
    // Fail fast on a wrong template or table, before serving anything.
    aws.template(&args.template_task_definition, &settings)
        .await
        .map_err(|e| Failure::Aws(e.to_string()))?;
    store.list().await?;

    let metrics = Arc::new(Metrics::new(&calls));
    let replica = options
        .replica_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let elector = Elector::new(
        store.clone(),
        replica.clone(),
        options.lease_duration,
        options.lease_renew,
        Some(Arc::clone(&metrics)),
    );
    elector.step().await;
    info!(replica = %replica, leader = elector.is_leader(), "lease");
    let controller = Controller::new(
        aws,
        store,
        settings,
        Config {
            template: args.template_task_definition.clone(),
            workers: options.workers,
            resync_interval: options.resync_interval,
            max_concurrent_replacements: options.max_concurrent_replacements,
            recovery_days: options.secret_recovery_days,
            iam_drift_interval: options.iam_drift_interval,
            iam_role_quota: options.iam_role_quota,
            relist_interval: options.relist_interval,
        },
        Arc::new(limits),
        metrics,
        Some(Arc::clone(&elector)),
    );
    let listener = tokio::net::TcpListener::bind(options.metrics_addr)
        .await
        .map_err(|e| Failure::Usage(format!("--metrics-addr {}: {e}", options.metrics_addr)))?;
    info!(addr = %options.metrics_addr, "serving /metrics, /healthz and /readyz");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, controller.router()).with_graceful_shutdown(async {
        let _ = http_stopped.await;
    });
    let http = tokio::spawn(async move { server.await });
    let streams = aws_sdk_dynamodbstreams::Client::new(config);
    let watch = match DynamoStream::of(&watch_store, streams).await {
        Ok(feed) => Some(tokio::spawn(Arc::clone(&controller).watch(Watcher::new(
            feed,
            Position::Latest,
            HashMap::new(),
        )))),
        Err(e) => {
            warn!(error = %e, "no stream to watch; relying on the resync");
            None
        }
    };
    let events = options.task_events_queue.as_ref().map(|url| {
        let sqs = aws_sdk_sqs::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        let queue = cloud::sqs::Queue::new(aws_sdk_sqs::Client::from_conf(sqs), url);
        info!(queue = %url, "consuming task-state events");
        tokio::spawn(Arc::clone(&controller).consume_task_events(queue))
    });
    if events.is_none() {
        info!("no --task-events-queue: crashed tasks are noticed at the next resync");
    }
    let (stop_lease, lease_stopped) = tokio::sync::oneshot::channel::<()>();
    let lease = tokio::spawn(Arc::clone(&elector).run(async {
        let _ = lease_stopped.await;
    }));
    controller.run(shutdown_signal()).await;
    // In-flight reconciles are done: give the lease up so a standby takes over at once.
    let _ = stop_lease.send(());
    let _ = lease.await;
    if let Some(watch) = watch {
        watch.abort();
    }
    if let Some(events) = events {
        events.abort();
    }
    let _ = stop_http.send(());
    let _ = http.await;
    Ok(Exit::Success)
}
