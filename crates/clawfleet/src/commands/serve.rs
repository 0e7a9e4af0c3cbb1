//! `clawfleet serve`: the HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::idkey::IdKey;
use api::{Api, Tokens};
use cloud::Limits;
use cloud::metrics::AwsRequests;
use cloud::{Calls, Secrets};
use store::Store;
use tracing::{info, warn};

use crate::commands::shutdown_signal;
use crate::failure::{Exit, Failure};

pub struct Options {
    pub listen: SocketAddr,
    pub tokens_file: Option<PathBuf>,
    pub tokens_secret: Option<String>,
    pub rate_limits: String,
    pub tokens_refresh: Duration,
    pub metrics_addr: SocketAddr,
    pub secret_prefix: String,
    pub body_limit: usize,
    pub tenant_rate: api::limit::TenantRate,
    /// Where the id key comes from: this secret, or the table's key item when `None`.
    pub id_key_secret: Option<String>,
    pub connections: api::server::ConnectionLimits,
    /// The agent container's name in the template, whose log lines the logs route reads.
    pub container_name: String,
    /// `--public-url`, as given.
    pub public_url: Option<String>,
    pub console: api::console::session::Lifetimes,
}

/// The id key every replica shares: the secret's value, or the table's key item.
async fn load_id_key(
    store: &Store,
    secrets: &Secrets,
    secret: Option<&str>,
) -> Result<IdKey, Failure> {
    let bytes = match secret {
        Some(name) => secrets
            .get_secret_value(name)
            .await
            .map_err(|e| Failure::Aws(format!("--id-key-secret {name}: {e}")))?
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--id-key-secret {name}: the secret has no string value"
                ))
            })?
            .into_bytes(),
        None => store.id_key().await?.ok_or_else(|| {
            Failure::Usage(format!(
                "table {}: no id key; run clawfleet bootstrap, or give --id-key-secret",
                store.table()
            ))
        })?,
    };
    let origin = secret.map_or_else(
        || "the table's id key".to_owned(),
        |n| format!("--id-key-secret {n}"),
    );
    IdKey::new(&bytes).map_err(|e| Failure::Usage(format!("{origin}: {e}")))
}

/// Where the token hashes come from.
enum TokenSource {
    File(PathBuf),
    Secret(String),
}

impl TokenSource {
    /// Reads and parses the tokens document (GetSecretValue for a secret).
    async fn load(&self, secrets: &Secrets) -> Result<Tokens, Failure> {
        match self {
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::Usage(format!("--tokens-file {}: {e}", path.display()))
                })?;
                Tokens::parse(&path.display().to_string(), &text)
            }
            Self::Secret(name) => {
                let value = secrets
                    .get_secret_value(name)
                    .await
                    .map_err(|e| Failure::Aws(format!("--tokens-secret {name}: {e}")))?
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "--tokens-secret {name}: the secret has no string value"
                        ))
                    })?;
                Tokens::parse(&format!("secret {name}"), &value)
            }
        }
        .map_err(|e| Failure::Usage(e.to_string()))
    }
}

/// Reads the tokens document again every `every`, so that a tenant added to it (or a token
/// revoked) takes effect without a restart. A document that no longer parses is reported and
/// the tokens in force stay.
async fn refresh_tokens(api: Api, source: TokenSource, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match source.load(&api.secrets).await {
            Ok(tokens) if tokens != *api.tokens() => {
                if tokens.is_empty() {
                    warn!("the tokens document is an empty list: every token is revoked");
                }
                info!(tokens = tokens.len(), "tokens reloaded");
                api.set_tokens(tokens);
            }
            Ok(_) => {}
            Err(e) => warn!("tokens not reloaded; the ones in force stay: {e}"),
        }
    }
}

/// A request waits at most this long on one AWS call, and then answers 502 naming it.
const AWS_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    table: &str,
    config: &aws_config::SdkConfig,
    options: Options,
) -> Result<Exit, Failure> {
    let config = &config
        .to_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(AWS_TIMEOUT)
                .build(),
        )
        .build();
    // The controller's buckets, so that a burst of secret writes from tenants waits for
    // Secrets Manager's rates instead of being throttled by it.
    let limits = Limits::parse(&options.rate_limits)
        .map_err(|e| Failure::Usage(format!("--rate-limits: {e}")))?;
    // Every AWS call is counted for /metrics, as the controller counts its own.
    let calls = Calls::default();
    let secrets_client = aws_sdk_secretsmanager::config::Builder::from(config)
        .interceptor(calls.clone())
        .build();
    let gate: cloud::SharedGate = Arc::new(limits);
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::from_conf(secrets_client))
        .with_gate(Arc::clone(&gate));
    let source = match (options.tokens_file, options.tokens_secret) {
        (Some(path), _) => TokenSource::File(path),
        (None, Some(name)) => TokenSource::Secret(name),
        (None, None) => {
            return Err(Failure::Usage(
                "give --tokens-file or --tokens-secret: every request needs a token".into(),
            ));
        }
    };
    let tokens = source.load(&secrets).await?;
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(calls.clone())
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), table);
    let id_key = load_id_key(&store, &secrets, options.id_key_secret.as_deref()).await?;
    // The gate's buckets limit CloudWatch Logs reads too: their rates are account-wide.
    let logs = api::logs::LogReader {
        logs: cloud::Logs::new(aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(config)
                .interceptor(calls.clone())
                .build(),
        ))
        .with_gate(Arc::clone(&gate)),
        ecs: aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(config)
                .interceptor(calls.clone())
                .build(),
        ),
        container: options.container_name,
    };
    let api_config = api::Config {
        secret_prefix: options.secret_prefix,
        body_limit: options.body_limit,
        tenant_rate: Some(options.tenant_rate),
        id_key,
        logs: Some(logs),
        console: api::console::Settings {
            public_url: options
                .public_url
                .as_deref()
                .map(api::console::PublicUrl::parse)
                .transpose()
                .map_err(|e| Failure::Usage(format!("--public-url {e}")))?,
            lifetimes: options.console,
        },
    };
    let metrics = api::metrics::Metrics::new(vec![Box::new(AwsRequests(calls))]);
    let api = Api::with_metrics(store, secrets, tokens, api_config, metrics);
    if !options.tokens_refresh.is_zero() {
        tokio::spawn(refresh_tokens(api.clone(), source, options.tokens_refresh));
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Failure::Usage(format!("--listen {}: {e}", options.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Usage(format!("--listen {}: {e}", options.listen)))?;
    let metrics_listener = tokio::net::TcpListener::bind(options.metrics_addr)
        .await
        .map_err(|e| Failure::Usage(format!("--metrics-addr {}: {e}", options.metrics_addr)))?;
    let metrics_local = metrics_listener
        .local_addr()
        .map_err(|e| Failure::Usage(format!("--metrics-addr {}: {e}", options.metrics_addr)))?;

    // One signal stops both servers; each finishes its requests in flight.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let metrics_server = axum::serve(metrics_listener, api.metrics_router())
        .with_graceful_shutdown(until_stopped(stopped.clone()));
    let metrics_task = tokio::spawn(async move { metrics_server.await });
    // The one line a script waits for before sending requests.
    info!(addr = %local, metrics = %metrics_local, "serving the HTTP API");
    api::server::serve(
        listener,
        api.router(),
        options.connections,
        until_stopped(stopped),
    )
    .await;
    let _ = metrics_task.await;
    info!("stopped: requests in flight were finished");
    Ok(Exit::Success)
}
