//! `clawfleet`: the command line over the Agent store.

mod cli;
mod commands;
mod failure;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

// glibc's malloc spent half of an idle resync of 100,000 agents consolidating free chunks;
// mimalloc halved that resync's CPU (docs/dependencies.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat, serving: bool) {
    // A server logs one access line per request by default; other commands stay quiet.
    let default = if serving {
        "warn,aws_config=error,access=info,clawfleet::commands::serve=info"
    } else {
        "warn,aws_config=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Serve { .. }));
    match commands::run(cli).await {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code().into()
        }
    }
}
