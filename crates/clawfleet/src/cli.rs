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

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the table, its stream and the by-client index if missing. Idempotent.
    Bootstrap,
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
    },
    /// Show an Agent's spec, bookkeeping and status in detail.
    Describe { agent_id: String },
    /// Delete an Agent: the controller stops its task and removes its resources.
    Delete {
        agent_id: String,
        /// Remove the items now, without waiting for the controller to tear down AWS
        /// resources. Anything already created on AWS is left for garbage collection.
        #[arg(long)]
        purge: bool,
    },
    /// Replace the Agent's task with a new one (sets restart_requested_at to now).
    Restart { agent_id: String },
}
