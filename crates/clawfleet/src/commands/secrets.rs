//! `clawfleet secrets set|keys`: the writer of secret values.
//!
//! Values go from a file or a literal straight into Secrets Manager. They are never printed,
//! logged, put in an error, or written to DynamoDB; the key names (only) are recorded in the
//! secret's Description in the same call, so the controller can check `secret_keys` without
//! reading values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cloud::Secrets;
use spec::render::{self, tag};
use store::{SpecItem, Store};

use crate::cli::SecretsCommand;
use crate::failure::{Exit, Failure};

fn aws(e: impl std::fmt::Display) -> Failure {
    Failure::Aws(e.to_string())
}

fn is_key(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

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
        if !is_key(key) {
            return Err(Failure::Invalid(format!(
                "{}:{}: key {key:?} must match [A-Z_][A-Z0-9_]*",
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
        if !is_key(key) {
            return Err(Failure::Invalid(format!(
                "--from-literal #{}: key {key:?} must match [A-Z_][A-Z0-9_]*",
                i + 1
            )));
        }
        values.insert(key.to_owned(), value.to_owned());
    }
    Ok(())
}

/// The agent's spec item, which must exist and not be deleting, and its tenant.
async fn agent(store: &Store, agent_id: &str) -> Result<(SpecItem, String), Failure> {
    let Some(item) = store.get_spec(agent_id).await? else {
        return Err(Failure::Invalid(format!(
            "agent {agent_id}: not found; secrets are set only for an existing agent"
        )));
    };
    if item.meta.is_deleting() {
        return Err(Failure::Invalid(format!(
            "agent {agent_id}: conflict: the agent is being deleted"
        )));
    }
    let client = item
        .document
        .as_ref()
        .and_then(|d| d.client_id.clone())
        .ok_or_else(|| Failure::Invalid(format!("agent {agent_id}: client_id: is required")))?;
    Ok((item, client))
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
            let (_, client) = agent(store, &agent_id).await?;
            let name = format!("{secret_prefix}{agent_id}/secrets");
            match secrets.describe_secret(&name).await.map_err(aws)? {
                Some(s)
                    if s.agent_id() == Some(agent_id.as_str())
                        && s.tags.get(tag::CLIENT_ID) == Some(&client) =>
                {
                    for key in s.key_names.unwrap_or_default() {
                        println!("{key}");
                    }
                    Ok(Exit::Success)
                }
                _ => Err(Failure::Invalid(format!("secret {name}: not found"))),
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
    let (item, client) = agent(store, agent_id).await?;
    let tags = match &item.spec {
        Ok(spec) => render::resource_tags(spec),
        Err(_) => render::identity_tags(agent_id, &client),
    };
    let name = format!("{prefix}{agent_id}/secrets");
    let request = render::Secret {
        name: name.clone(),
        tags,
    };
    let existing = secrets.describe_secret(&name).await.map_err(aws)?;
    let keys: Vec<String>;
    match existing {
        None => {
            keys = values.keys().cloned().collect();
            let value =
                serde_json::to_string(&values).map_err(|e| Failure::Usage(e.to_string()))?;
            secrets
                .create_secret(&request, &render::secret_description(&keys), &value)
                .await
                .map_err(aws)?;
        }
        Some(secret) => {
            let ours = secret.agent_id() == Some(agent_id)
                && secret.tags.get(tag::CLIENT_ID) == Some(&client);
            if !ours {
                return Err(Failure::Invalid(format!(
                    "secret {name}: exists and is not this agent's; clawfleet never writes another tenant's secret"
                )));
            }
            if secret.deleted {
                secrets.restore_secret(&secret.arn).await.map_err(aws)?;
            }
            let current = secrets.get_secret_value(&secret.arn).await.map_err(aws)?;
            let mut merged: BTreeMap<String, String> = match current.as_deref() {
                None | Some("") => BTreeMap::new(),
                Some(text) => serde_json::from_str(text).map_err(|_| {
                    Failure::Invalid(format!(
                        "secret {name}: its value is not a JSON object of strings; fix or delete it first"
                    ))
                })?,
            };
            merged.extend(values.clone());
            keys = merged.keys().cloned().collect();
            let value =
                serde_json::to_string(&merged).map_err(|e| Failure::Usage(e.to_string()))?;
            secrets
                .update_secret(&secret.arn, &render::secret_description(&keys), &value)
                .await
                .map_err(aws)?;
        }
    }
    let set: Vec<&str> = values.keys().map(String::as_str).collect();
    println!(
        "secret/{name}: set {} ({} keys in all; values not shown)",
        set.join(", "),
        keys.len()
    );
    if restart {
        let at = spec::now_rfc3339();
        store.request_restart(agent_id, &at).await?;
        println!("agent/{agent_id} restart requested at {at}");
    }
    Ok(Exit::Success)
}
