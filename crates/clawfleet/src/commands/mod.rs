//! One module per command; each returns the exit code or a one-line failure.

mod activity;
mod apply;
mod audit;
mod controller;
mod delete;
mod diff;
mod get;
mod logs;
mod plan;
mod probe;
mod reconcile;
mod secrets;
mod serve;
mod sync;
pub(crate) mod wait;

use aws_config::BehaviorVersion;
use store::Store;

use crate::cli::{Cli, Command};
use crate::failure::{Exit, Failure};

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The standard AWS chain's configuration, shared by every client.
async fn sdk_config() -> Result<aws_config::SdkConfig, Failure> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    if config.region().is_none() {
        return Err(Failure::Usage(
            "AWS region is not set: set AWS_REGION (or a profile with a region)".into(),
        ));
    }
    Ok(config)
}

pub async fn run(cli: Cli) -> Result<Exit, Failure> {
    // A health check needs no AWS configuration.
    if let Command::Probe { url } = &cli.command {
        return probe::run(url).await;
    }
    let config = sdk_config().await?;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&config), &cli.table);
    match cli.command {
        Command::Probe { url } => probe::run(&url).await,
        Command::Bootstrap { id_key_secret } => {
            let outcome = store.bootstrap().await?;
            let verb = match outcome {
                store::BootstrapOutcome::Created => "created",
                store::BootstrapOutcome::AlreadyExisted => "already exists",
            };
            println!("table/{} {verb}", store.table());
            if id_key_secret.is_none() {
                let verb = if store.ensure_id_key().await? {
                    "created"
                } else {
                    "already exists"
                };
                println!(
                    "id-key/{}/{} {verb}",
                    store::ID_KEY_ID,
                    store::ID_KEY_RECORD
                );
            }
            Ok(Exit::Success)
        }
        Command::Apply { paths } => apply::run(&store, &paths).await,
        Command::Get {
            agent_id,
            client_id,
            output: _,
            watch: true,
        } => get::watch(&store, agent_id.as_deref(), client_id.as_deref()).await,
        Command::Get {
            agent_id,
            client_id,
            output,
            watch: false,
        } => get::get(&store, agent_id.as_deref(), client_id.as_deref(), output).await,
        Command::Describe { agent_id } => get::describe(&store, &agent_id).await,
        Command::Logs {
            agent_id,
            follow,
            since,
            tail,
            container_name,
        } => {
            let options = logs::Options {
                follow,
                since,
                tail,
                container: container_name,
            };
            logs::run(&store, &config, &agent_id, &options).await
        }
        Command::Wait {
            agent_ids,
            condition,
            timeout,
        } => wait::run(&store, &agent_ids, condition, timeout).await,
        Command::Delete {
            agent_id,
            purge,
            purge_data,
        } => delete::delete(&store, &agent_id, purge, purge_data).await,
        Command::Restart { agent_id } => delete::restart(&store, &agent_id).await,
        Command::Touch { agent_id } => activity::touch(&store, &agent_id).await,
        Command::Wake { agent_id } => activity::wake(&store, &agent_id).await,
        Command::Reconcile {
            agent_id,
            all: _,
            recovery,
            controller,
        } => {
            reconcile::run(
                &store,
                &config,
                &controller.settings(&cli.table).map_err(Failure::Usage)?,
                &controller.template_task_definition,
                agent_id.as_deref(),
                recovery.secret_recovery_days,
            )
            .await
        }
        Command::Controller {
            controller,
            workers,
            resync_interval,
            metrics_addr,
            max_concurrent_replacements,
            recovery,
            iam_drift_interval,
            iam_role_quota,
            relist_interval,
            task_events_queue,
            rate_limits,
            lease_duration,
            lease_renew,
            replica_id,
        } => {
            controller::run(
                &cli.table,
                &config,
                &controller,
                controller::Options {
                    workers,
                    resync_interval,
                    metrics_addr,
                    max_concurrent_replacements,
                    secret_recovery_days: recovery.secret_recovery_days,
                    iam_drift_interval,
                    iam_role_quota,
                    relist_interval,
                    task_events_queue,
                    rate_limits,
                    lease_duration,
                    lease_renew,
                    replica_id,
                },
            )
            .await
        }
        Command::Secrets { command } => secrets::run(&store, &config, command).await,
        Command::Serve {
            listen,
            metrics_addr,
            tokens_file,
            tokens_secret,
            tokens_refresh,
            body_limit,
            secret_prefix,
            rate_limits,
            tenant_rate_limit,
            id_key_secret,
            header_read_timeout,
            max_connections,
            container_name,
            public_url,
            console_idle_timeout,
            console_session_lifetime,
        } => {
            serve::run(
                &cli.table,
                &config,
                serve::Options {
                    listen,
                    tokens_file,
                    tokens_secret,
                    rate_limits,
                    tokens_refresh,
                    metrics_addr,
                    secret_prefix,
                    body_limit,
                    tenant_rate: tenant_rate_limit,
                    id_key_secret,
                    connections: api::server::ConnectionLimits {
                        header_read_timeout,
                        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                    },
                    container_name,
                    public_url,
                    console: api::console::session::Lifetimes {
                        idle: console_idle_timeout,
                        lifetime: console_session_lifetime,
                    },
                },
            )
            .await
        }
        Command::Plan {
            agent_id,
            all: _,
            controller,
        } => {
            plan::run(
                &store,
                &config,
                &controller.settings(&cli.table).map_err(Failure::Usage)?,
                &controller.template_task_definition,
                agent_id.as_deref(),
            )
            .await
        }
        Command::Audit { controller } => {
            audit::run(
                &store,
                &config,
                &controller.settings(&cli.table).map_err(Failure::Usage)?,
                &controller.template_task_definition,
            )
            .await
        }
        Command::Sync { source, dry_run } => sync::run(&store, &source, dry_run).await,
        Command::Diff { source } => diff::run(&store, &source).await,
    }
}
