//! `clawfleet secrets set|keys`: the command-line front of the secret intake
//! ([`api::intake`], shared with `PUT /v1/agents/{id}/secrets`).
//!
//! Values come from a file or a literal and are never printed, logged or put in an error; a
//! bad line is named by file and line, never by its value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api::intake::{self, IntakeError};
use cloud::Secrets;
use store::{SpecItem, Store};

use crate::cli::SecretsCommand;
use crate::failure::{Exit, Failure};

/// `KEY=VALUE` lines; the error names the file and line, never the value.
fn parse_env_file(path: &Path, values: &mut BTreeMap<String, String>) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::Invalid(format!(
                "{}:{}: expected KEY=VALUE",
                path.display(),
                n + 1
            )));
        };
        let key = key.trim();
        if let Some(problem) = spec::secret_key_problem(key) {
            return Err(Failure::Invalid(format!(
                "{}:{}: key {key:?} {problem}",
                path.display(),
                n + 1
            )));
        }
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        values.insert(key.to_owned(), unquoted.to_owned());
    }
    Ok(())
}

fn parse_literals(
    literals: &[String],
    values: &mut BTreeMap<String, String>,
) -> Result<(), Failure> {
    for (i, literal) in literals.iter().enumerate() {
        let Some((key, value)) = literal.split_once('=') else {
            return Err(Failure::Usage(format!(
                "--from-literal #{}: expected KEY=VALUE",
                i + 1
            )));
        };
        if let Some(problem) = spec::secret_key_problem(key) {
            return Err(Failure::Invalid(format!(
                "--from-literal #{}: key {key:?} {problem}",
                i + 1
            )));
        }
        values.insert(key.to_owned(), value.to_owned());
    }
    Ok(())
}

/// The agent's spec item, which must exist.
async fn agent(store: &Store, agent_id: &str) -> Result<SpecItem, Failure> {
    store.get_spec(agent_id).await?.ok_or_else(|| {
        Failure::Invalid(format!(
            "agent {agent_id}: not found; secrets are set only for an existing agent"
        ))
    })
}

fn intake_failure(e: IntakeError) -> Failure {
    match e {
        IntakeError::Aws(_) => Failure::Aws(e.to_string()),
        IntakeError::Store(e) => e.into(),
        _ => Failure::Invalid(e.to_string()),
    }
}

pub async fn run(
    store: &Store,
    config: &aws_config::SdkConfig,
    command: SecretsCommand,
) -> Result<Exit, Failure> {
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(config));
    match command {
        SecretsCommand::Set {
            agent_id,
            from_env_file,
            from_literal,
            restart,
            secret_prefix,
        } => {
            set(
                store,
                &secrets,
                &agent_id,
                &from_env_file,
                &from_literal,
                restart,
                &secret_prefix,
            )
            .await
        }
        SecretsCommand::Keys {
            agent_id,
            secret_prefix,
        } => {
            let item = agent(store, &agent_id).await?;
            match intake::key_names(&secrets, &item, &secret_prefix)
                .await
                .map_err(intake_failure)?
            {
                Some(keys) => {
                    for key in keys {
                        println!("{key}");
                    }
                    Ok(Exit::Success)
                }
                None => Err(Failure::Invalid(format!(
                    "secret {}: not found",
                    spec::render::secret_name_under(&secret_prefix, &agent_id)
                ))),
            }
        }
    }
}

async fn set(
    store: &Store,
    secrets: &Secrets,
    agent_id: &str,
    files: &[PathBuf],
    literals: &[String],
    restart: bool,
    prefix: &str,
) -> Result<Exit, Failure> {
    let mut values = BTreeMap::new();
    for file in files {
        parse_env_file(file, &mut values)?;
    }
    parse_literals(literals, &mut values)?;
    if values.is_empty() {
        return Err(Failure::Usage(
            "nothing to set: give --from-env-file FILE or --from-literal KEY=VALUE".into(),
        ));
    }
    let item = agent(store, agent_id).await?;
    let written = intake::set_values(store, secrets, &item, prefix, values)
        .await
        .map_err(intake_failure)?;
    println!(
        "secret/{}: set {} ({} keys in all; values not shown)",
        written.name,
        written.set.join(", "),
        written.keys.len()
    );
    if restart {
        let at = spec::now_rfc3339();
        store.request_restart(agent_id, &at).await?;
        println!("agent/{agent_id} restart requested at {at}");
    }
    Ok(Exit::Success)
}
