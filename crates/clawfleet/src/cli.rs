//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "clawfleet",
    version,
    about = "Keeps one isolated OpenClaw agent per customer running on AWS ECS Fargate",
    long_about = "Keeps one isolated OpenClaw agent per customer running on AWS ECS Fargate.\n\
                  AWS region, endpoint and credentials come from the standard AWS chain \
                  (AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, ...)."
)]
pub struct Cli {
    /// DynamoDB table that holds Agent specs and statuses.
    #[arg(long, env = "CLAWFLEET_TABLE", default_value = store::DEFAULT_TABLE, global = true)]
    pub table: String,

    /// Log format on stderr (the level comes from RUST_LOG, default warn).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set keys in the agent's secret, creating it when missing. Values come from a file or
    /// from literals, never from positional arguments, and are never printed. ECS injects
    /// secrets only when a task starts: use --restart to apply them now.
    Set {
        agent_id: String,
        /// A file of KEY=VALUE lines (blank lines and # comments are skipped). Repeatable.
        #[arg(long, value_name = "FILE")]
        from_env_file: Vec<PathBuf>,
        /// One KEY=VALUE. Repeatable. Beware: shell history keeps it; prefer --from-env-file.
        #[arg(long, value_name = "KEY=VALUE")]
        from_literal: Vec<String>,
        /// Replace the agent's task so it starts with the new values.
        #[arg(long)]
        restart: bool,
        /// Prefix of the agents' secret names.
        #[arg(long, env = "CLAWFLEET_SECRET_PREFIX", default_value = spec::render::DEFAULT_SECRET_PREFIX)]
        secret_prefix: String,
    },
    /// List the key names set in the agent's secret (never the values).
    Keys {
        agent_id: String,
        /// Prefix of the agents' secret names.
        #[arg(long, env = "CLAWFLEET_SECRET_PREFIX", default_value = spec::render::DEFAULT_SECRET_PREFIX)]
        secret_prefix: String,
    },
}

/// How long deleted agents' secrets stay restorable: one definition for every command that
/// deletes them.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoveryArgs {
    /// Days a deleted agent's secret can still be restored (Secrets Manager allows 7 to 30).
    #[arg(long, env = "CLAWFLEET_SECRET_RECOVERY_DAYS", default_value_t = spec::render::DEFAULT_SECRET_RECOVERY_DAYS, value_parser = clap::value_parser!(i64).range(7..=30))]
    pub secret_recovery_days: i64,
}

/// Where and how agents run: shared by every command that plans or reconciles.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// ECS cluster the agents run in.
    #[arg(long, env = "CLAWFLEET_CLUSTER")]
    pub cluster: String,
    /// Private subnets for the agents' tasks, comma separated.
    #[arg(
        long,
        env = "CLAWFLEET_SUBNETS",
        value_delimiter = ',',
        required = true
    )]
    pub subnets: Vec<String>,
    /// Security groups for the agents' tasks, comma separated.
    #[arg(
        long,
        env = "CLAWFLEET_SECURITY_GROUPS",
        value_delimiter = ',',
        required = true
    )]
    pub security_groups: Vec<String>,
    /// EFS file system that holds every agent's memory.
    #[arg(long, env = "CLAWFLEET_FILE_SYSTEM_ID")]
    pub file_system_id: String,
    /// Template task definition: a family (its latest ACTIVE revision) or family:revision.
    #[arg(long, env = "CLAWFLEET_TEMPLATE_TASK_DEFINITION")]
    pub template_task_definition: String,
    /// Image for agents whose spec names none (default: the template's).
    #[arg(long, env = "CLAWFLEET_DEFAULT_IMAGE")]
    pub default_image: Option<String>,
    /// Prefix of the agents' secret names.
    #[arg(long, env = "CLAWFLEET_SECRET_PREFIX", default_value = spec::render::DEFAULT_SECRET_PREFIX)]
    pub secret_prefix: String,
    /// POSIX user id forced on the agents' access points.
    #[arg(long, env = "CLAWFLEET_POSIX_UID", default_value_t = 1000)]
    pub posix_uid: u32,
    /// POSIX group id forced on the agents' access points.
    #[arg(long, env = "CLAWFLEET_POSIX_GID", default_value_t = 1000)]
    pub posix_gid: u32,
    /// The agent container's name in the template.
    #[arg(long, env = "CLAWFLEET_CONTAINER_NAME", default_value = spec::render::DEFAULT_CONTAINER)]
    pub container_name: String,
    /// Where the agent's EFS access point is mounted in its container.
    #[arg(long, env = "CLAWFLEET_MOUNT_PATH", default_value = spec::render::DEFAULT_MOUNT_PATH)]
    pub mount_path: String,
    /// This installation's name (1-16 of a-z, 0-9, -), carried by agent role names and their
    /// IAM path, so two installations in one account never touch each other's roles. Default:
    /// a stable id derived from the table name.
    #[arg(long, env = "CLAWFLEET_INSTALLATION")]
    pub installation: Option<String>,
    /// `per-agent`: a task role per agent that may mount only its own access point (needs
    /// --agent-permissions-boundary). `template`: every agent shares the template's task role,
    /// so any agent may mount any access point that role may.
    #[arg(long, env = "CLAWFLEET_TASK_ROLE", value_enum, default_value_t = TaskRoleMode::PerAgent)]
    pub task_role: TaskRoleMode,
    /// The permissions boundary every per-agent task role is created under.
    #[arg(long, env = "CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY")]
    pub agent_permissions_boundary: Option<String>,
    /// How long an agent's task may report UNHEALTHY (when the template has a health check)
    /// before it is replaced, counted as a crash.
    #[arg(long, env = "CLAWFLEET_UNHEALTHY_GRACE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub unhealthy_grace: std::time::Duration,
    /// How long before a schedule window opens its agent is started (each agent takes up to
    /// half of it off, so that windows opening at the same minute spread their launches).
    #[arg(long, env = "CLAWFLEET_SCHEDULE_LEAD", default_value = "2m", value_parser = humantime::parse_duration)]
    pub schedule_lead: std::time::Duration,
    /// The image of the one-off task that erases a deleted agent's files when its deletion
    /// asks for it (`delete --purge-data`, `purge_data_on_delete`), pinned by digest
    /// (NAME@sha256:...): a small image with `sh`, `find` and `ls`, e.g. busybox. Without it a
    /// purge cannot run, and the agent's access point is kept until it is set.
    #[arg(long, env = "CLAWFLEET_PURGE_IMAGE")]
    pub purge_image: Option<String>,
    /// How long a purge task may run before it is stopped and counted failed (then retried
    /// with backoff).
    #[arg(long, env = "CLAWFLEET_PURGE_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub purge_timeout: std::time::Duration,
}

/// Which task role agents run with.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TaskRoleMode {
    PerAgent,
    Template,
}

impl ControllerArgs {
    /// The settings rendering depends on, for the agents of `table`.
    ///
    /// # Errors
    /// A per-agent task role without its boundary, or an installation name IAM cannot carry;
    /// each names the flag.
    pub fn settings(&self, table: &str) -> Result<spec::render::Settings, String> {
        let installation = match &self.installation {
            Some(name) => name.clone(),
            None => spec::render::default_installation(table),
        };
        let valid = !installation.is_empty()
            && installation.len() <= 16
            && installation
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "--installation: \"{installation}\" must be 1-16 characters of a-z, 0-9 and -"
            ));
        }
        let task_role = match (self.task_role, &self.agent_permissions_boundary) {
            (TaskRoleMode::Template, _) => spec::render::TaskRole::Template,
            (TaskRoleMode::PerAgent, Some(boundary)) if !boundary.is_empty() => {
                spec::render::TaskRole::PerAgent {
                    permissions_boundary: boundary.clone(),
                }
            }
            (TaskRoleMode::PerAgent, _) => {
                return Err("--agent-permissions-boundary (CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY): required with --task-role per-agent, the default; every agent role is created under it".into());
            }
        };
        if let Some(image) = &self.purge_image {
            spec::purge::check_image(image).map_err(|e| e.to_string())?;
        }
        Ok(spec::render::Settings {
            cluster: self.cluster.clone(),
            subnets: self.subnets.clone(),
            security_groups: self.security_groups.clone(),
            file_system_id: self.file_system_id.clone(),
            container: self.container_name.clone(),
            mount_path: self.mount_path.clone(),
            posix_uid: self.posix_uid,
            posix_gid: self.posix_gid,
            secret_prefix: self.secret_prefix.clone(),
            default_image: self.default_image.clone(),
            installation,
            task_role,
            unhealthy_grace_secs: i64::try_from(self.unhealthy_grace.as_secs()).unwrap_or(i64::MAX),
            schedule_lead_secs: i64::try_from(self.schedule_lead.as_secs()).unwrap_or(i64::MAX),
            purge_image: self.purge_image.clone(),
            purge_timeout_secs: i64::try_from(self.purge_timeout.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// GET a URL and exit 0 on a 2xx answer: the container health check of the image, which
    /// has no shell (e.g. `clawfleet probe http://127.0.0.1:9090/healthz`).
    Probe { url: String },
    /// Create the table, its stream and the by-client index if missing, and the API's id key
    /// (a random key in a reserved item of the table) unless it comes from Secrets Manager.
    /// Idempotent: an existing table or key is kept.
    Bootstrap {
        /// The API's id key lives in this Secrets Manager secret (serve's --id-key-secret);
        /// no key item is made in the table.
        #[arg(long, env = "CLAWFLEET_ID_KEY_SECRET", value_name = "ARN")]
        id_key_secret: Option<String>,
    },
    /// Create or update Agents from manifests (YAML or JSON).
    Apply {
        /// A manifest file, a directory of manifests, or - for stdin. May be repeated.
        #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// List Agents, or show one.
    Get {
        /// Show only this agent.
        agent_id: Option<String>,
        /// Show only this tenant's agents (queries the by-client index).
        #[arg(long = "client", value_name = "CLIENT_ID", conflicts_with = "agent_id")]
        client_id: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Print the table, then a line per change (reading the store every second) until
        /// Ctrl-C or SIGTERM.
        #[arg(short = 'w', long, conflicts_with = "output")]
        watch: bool,
    },
    /// Show an Agent's spec, bookkeeping and status in detail.
    Describe { agent_id: String },
    /// Wait until every agent meets a condition, reading the store at most once a second.
    /// Exit code 0 when all do, 1 on timeout (naming the agents that did not), 2 on error.
    Wait {
        #[arg(required = true, value_name = "AGENT_ID")]
        agent_ids: Vec<String>,
        /// `phase=<Phase>` (Pending, Provisioning, Running, Stopping, Stopped, Failed,
        /// Deleting) or `condition=<Kind>` (SpecValid, SecretsReady, Synced, Ready) being True.
        #[arg(long = "for", value_name = "phase=PHASE|condition=KIND", value_parser = crate::commands::wait::Condition::parse)]
        condition: crate::commands::wait::Condition,
        /// How long to wait, e.g. 90s or 5m.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Print the agent container's log lines from CloudWatch Logs (its task's `awslogs`
    /// stream; the last task's when the agent is stopped).
    Logs {
        agent_id: String,
        /// Keep printing new lines (read once a second), following the agent to a replacement
        /// task, until Ctrl-C or SIGTERM.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines newer than this, e.g. 10m or 2h.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// The agent container's name in the template.
        #[arg(long, env = "CLAWFLEET_CONTAINER_NAME", default_value = spec::render::DEFAULT_CONTAINER)]
        container_name: String,
    },
    /// Delete an Agent: the controller stops its task and removes its resources.
    Delete {
        agent_id: String,
        /// Remove the items now, without waiting for the controller to tear down AWS
        /// resources. Anything already created on AWS is left for garbage collection.
        #[arg(long)]
        purge: bool,
        /// Erase the agent's files on EFS (a one-off purge task) before its access point is
        /// deleted. Not `--purge`, which removes the items at once and leaves nothing to drive
        /// the purge: the two together are a usage error.
        #[arg(long, conflicts_with = "purge")]
        purge_data: bool,
    },
    /// Replace the Agent's task with a new one (sets restart_requested_at to now).
    Restart { agent_id: String },
    /// Record activity: resets the Agent's idle_stop_after timer (at most one write a
    /// minute; it starts nothing).
    Touch { agent_id: String },
    /// Wake an idle Agent: the controller starts it within about a second. Exit 1 when
    /// desired_state is stopped or the Agent is outside its schedule's windows.
    Wake { agent_id: String },
    /// Converge agents once: create, replace, restart or delete what their specs ask for.
    /// Exit code 0 when every agent was processed (waiting on its owner included), 2 when a
    /// reconcile failed.
    Reconcile {
        /// Reconcile this agent only.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        agent_id: Option<String>,
        /// Reconcile every agent, and collect orphaned resources.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        recovery: RecoveryArgs,
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Run the controller: resync, work queue, rate limits, metrics and health, until
    /// SIGTERM or Ctrl-C, which finish in-flight reconciles first.
    Controller {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Agents reconciled at once (never the same agent twice).
        #[arg(long, env = "CLAWFLEET_WORKERS", default_value_t = 4)]
        workers: usize,
        /// How often the whole fleet is compared with AWS, e.g. 30s or 5m.
        #[arg(long, env = "CLAWFLEET_RESYNC_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
        resync_interval: std::time::Duration,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, env = "CLAWFLEET_METRICS_ADDR", default_value = "127.0.0.1:9090")]
        metrics_addr: std::net::SocketAddr,
        /// Running agents replaced at once during a fleet-wide change; new agents are not held.
        #[arg(
            long,
            env = "CLAWFLEET_MAX_CONCURRENT_REPLACEMENTS",
            default_value_t = 10
        )]
        max_concurrent_replacements: usize,
        #[command(flatten)]
        recovery: RecoveryArgs,
        /// How often every agent's task role is read and put back when changed, spread over
        /// the interval, outside the resync (IAM publishes no rates; reads are cheap but
        /// ListRoles returns neither boundaries nor policies).
        #[arg(long, env = "CLAWFLEET_IAM_DRIFT_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
        iam_drift_interval: std::time::Duration,
        /// IAM's role quota of the account (1,000 by default, 5,000 at most), exported as
        /// clawfleet_agent_roles_quota for the near-quota alert.
        #[arg(long, env = "CLAWFLEET_IAM_ROLE_QUOTA", default_value_t = 1000)]
        iam_role_quota: u64,
        /// How often a resync lists every resource of the fleet and plans the agents whose
        /// inputs changed; the resyncs in between list the running tasks alone, and enqueue
        /// the agents whose task left that listing. Set it to the resync interval for a full
        /// listing at every resync.
        #[arg(long, env = "CLAWFLEET_RELIST_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
        relist_interval: std::time::Duration,
        /// The SQS queue EventBridge fills with ECS task-state events of the agents' cluster;
        /// a task that stops is then seen in seconds rather than at the next resync.
        #[arg(long, env = "CLAWFLEET_TASK_EVENTS_QUEUE")]
        task_events_queue: Option<String>,
        /// How long a leader's lease lasts without renewal; a standby takes over after it.
        #[arg(long, env = "CLAWFLEET_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
        lease_duration: std::time::Duration,
        /// How often the leader renews its lease (and a standby tries to take it).
        #[arg(long, env = "CLAWFLEET_LEASE_RENEW", default_value = "5s", value_parser = humantime::parse_duration)]
        lease_renew: std::time::Duration,
        /// This replica's name in the lease (default: host name and process id).
        #[arg(long, env = "CLAWFLEET_REPLICA_ID")]
        replica_id: Option<String>,
        /// Client-side rate limits, e.g. `ECS:RegisterTaskDefinition=20/1,EFS:CreateAccessPoint=5/2`
        /// (capacity/refill per second); unlisted operations keep the defaults (docs/controller.md).
        #[arg(long, env = "CLAWFLEET_RATE_LIMITS", default_value = "")]
        rate_limits: String,
    },
    /// Serve the HTTP API (/v1/agents, /openapi.json, /healthz) until SIGTERM or Ctrl-C,
    /// which finish the requests in flight first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CLAWFLEET_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where /metrics is served (no token: keep it on a private address).
        #[arg(
            long,
            env = "CLAWFLEET_API_METRICS_ADDR",
            default_value = "127.0.0.1:9091"
        )]
        metrics_addr: std::net::SocketAddr,
        /// YAML list of `{sha256: HEX, tenant: CLIENT_ID}` or `{sha256: HEX, admin: true}`:
        /// SHA-256 hashes of the bearer tokens, never the tokens.
        #[arg(
            long,
            env = "CLAWFLEET_TOKENS_FILE",
            value_name = "FILE",
            required_unless_present = "tokens_secret",
            conflicts_with = "tokens_secret"
        )]
        tokens_file: Option<PathBuf>,
        /// The same document, as the value of this Secrets Manager secret.
        #[arg(long, env = "CLAWFLEET_TOKENS_SECRET", value_name = "NAME")]
        tokens_secret: Option<String>,
        /// How often the tokens document is read again (new tenants, revoked tokens); 0s never.
        #[arg(long, env = "CLAWFLEET_TOKENS_REFRESH", default_value = "30s", value_parser = humantime::parse_duration)]
        tokens_refresh: std::time::Duration,
        /// Larger request bodies get a 413.
        #[arg(long, env = "CLAWFLEET_BODY_LIMIT", default_value_t = api::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Each tenant's request budget, CAPACITY/RATE: a burst of CAPACITY requests refilled
        /// at RATE a second; beyond it a 429 with Retry-After. The admin scope is not limited.
        #[arg(long, env = "CLAWFLEET_TENANT_RATE_LIMIT", default_value = "50/10")]
        tenant_rate_limit: api::limit::TenantRate,
        /// Prefix of the agents' secret names.
        #[arg(long, env = "CLAWFLEET_SECRET_PREFIX", default_value = spec::render::DEFAULT_SECRET_PREFIX)]
        secret_prefix: String,
        /// Client-side rate limits for the API's Secrets Manager calls, in the controller's
        /// syntax (docs/controller.md); a burst of secret writes waits instead of throttling.
        #[arg(long, env = "CLAWFLEET_API_RATE_LIMITS", default_value = "")]
        rate_limits: String,
        /// Take the id key (keyed agent ids, listing cursors) from this Secrets Manager secret,
        /// whose string value holds at least 32 bytes, instead of the table's key item that
        /// `bootstrap` makes.
        #[arg(long, env = "CLAWFLEET_ID_KEY_SECRET", value_name = "ARN")]
        id_key_secret: Option<String>,
        /// A connection that has not sent its request headers within this is closed.
        #[arg(long, env = "CLAWFLEET_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
        header_read_timeout: std::time::Duration,
        /// Connections served at once; more wait in the listen backlog.
        #[arg(long, env = "CLAWFLEET_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// The agent container's name in the template: `GET /v1/agents/{id}/logs` reads its
        /// CloudWatch Logs stream.
        #[arg(long, env = "CLAWFLEET_CONTAINER_NAME", default_value = spec::render::DEFAULT_CONTAINER)]
        container_name: String,
        /// The web console's public address (https://HOST[:PORT]): its session cookie is then
        /// `Secure`, and this origin is the only one accepted for console form posts. Without
        /// it (development), the origin matching the request's Host is accepted.
        #[arg(long, env = "CLAWFLEET_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
        /// A console session unused this long ends.
        #[arg(long, env = "CLAWFLEET_CONSOLE_IDLE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
        console_idle_timeout: std::time::Duration,
        /// A console session ends this long after sign-in, however busy.
        #[arg(long, env = "CLAWFLEET_CONSOLE_SESSION_LIFETIME", default_value = "12h", value_parser = humantime::parse_duration)]
        console_session_lifetime: std::time::Duration,
    },
    /// Manage an agent's secret values (never printed).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Print what the controller would do, one line per action, without doing it.
    /// Exit code 0 when there is nothing to do, 1 when changes are pending, 2 on error.
    Plan {
        /// Plan for this agent only.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        agent_id: Option<String>,
        /// Plan for every agent, and for orphaned resources.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Check, read-only, that the live configuration isolates every agent: the file-system
    /// policy, the agents' security groups, the execution role, every agent's task role,
    /// revision and access point. One line per finding, naming the resource and the rule.
    /// Exit code 0 when clean, 1 with findings, 2 on error.
    Audit {
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Make the table match a directory of manifests, for the Agents this source manages.
    Sync {
        #[command(flatten)]
        source: GitopsSource,
        /// Print what would be done; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show, field by field, how the table differs from a directory of manifests.
    /// Exit code 0 in sync, 1 differences (or conflicts, or invalid manifests), 2 errors.
    Diff {
        #[command(flatten)]
        source: GitopsSource,
    },
}

/// What `sync` and `diff` compare: a directory of manifests, as one GitOps source.
/// Give `diff` the flags given to `sync`, so that it shows exactly what `sync` would do.
#[derive(Debug, clap::Args)]
pub struct GitopsSource {
    /// Directory of manifests (searched recursively for .yaml, .yml and .json), or one file.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Name of this source; it owns the Agents whose managed_by is gitops:NAME.
    #[arg(long, value_name = "NAME", value_parser = source_name)]
    pub source: String,
    /// Soft-delete the Agents this source manages that are no longer in DIR.
    #[arg(long)]
    pub prune: bool,
    /// Allow --prune to remove every Agent this source manages (refused otherwise, in case DIR
    /// is an empty or wrong checkout).
    #[arg(long, requires = "prune")]
    pub allow_empty: bool,
    /// Take over Agents that no one manages (written in the DynamoDB console).
    #[arg(long)]
    pub adopt: bool,
}

/// A source name: 1 to 63 of a-z, 0-9, '-', '_', '.', so that `gitops:NAME` reads plainly.
fn source_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if valid {
        Ok(name.to_owned())
    } else {
        Err("must be 1 to 63 characters of a-z, 0-9, '-', '_' and '.'".to_owned())
    }
}
