//! Secret intake: the one writer of secret values, shared by `clawfleet secrets set` and
//! `PUT /v1/agents/{id}/secrets`.
//!
//! Values go straight into Secrets Manager. They are never logged, put in an error, or written
//! to DynamoDB; the key names (only) are recorded in the secret's Description in the same call,
//! so the controller can check `secret_keys` without reading values.

use std::collections::BTreeMap;

use cloud::{AwsError, Secrets};
use spec::render::{self, tag};
use std::time::Duration;

use store::{SpecItem, Store};

/// Why secret values were not written. No variant carries a value.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("agent {agent_id}: conflict: the agent is being deleted")]
    Deleting { agent_id: String },
    #[error("agent {agent_id}: client_id: is required before secrets can be set")]
    NoClient { agent_id: String },
    /// A key that cannot be an environment variable a user sets; `problem` says why.
    #[error("key {key:?}: {problem}")]
    BadKey { key: String, problem: String },
    #[error("nothing to set: no keys were given")]
    Empty,
    #[error(
        "secret {name}: exists and is not this agent's; clawfleet never writes another tenant's secret"
    )]
    Foreign { name: String },
    #[error("secret {name}: its value is not a JSON object of strings; fix or delete it first")]
    Unreadable { name: String },
    #[error(
        "the key names take {size} characters in the secret's Description; Secrets Manager allows {}",
        render::SECRET_DESCRIPTION_LIMIT
    )]
    TooManyKeys { size: usize },
    #[error("the secret would hold {size} bytes; Secrets Manager allows {SECRET_LIMIT}")]
    TooLarge { size: usize },
    #[error("secret {name}: another write of its values is in progress; retry")]
    Busy { name: String },
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

/// Secrets Manager's limit on a SecretString, in bytes.
pub const SECRET_LIMIT: usize = 65_536;

/// What a write left in the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub name: String,
    /// The keys this write set.
    pub set: Vec<String>,
    /// Every key the secret now holds.
    pub keys: Vec<String>,
}

/// Merges `values` into the agent's secret under the agent's writer lock (PutItem and
/// DeleteItem of the lock item; DescribeSecret, then CreateSecret, or RestoreSecret if needed,
/// GetSecretValue and UpdateSecret), recording every key name in the Description in the same
/// call. A secret is written only for an existing agent that is not
/// being deleted, and only when it carries this agent's and this tenant's tags.
///
/// # Errors
/// [`IntakeError`]; none carries a value.
pub async fn set_values(
    store: &Store,
    secrets: &Secrets,
    item: &SpecItem,
    prefix: &str,
    values: BTreeMap<String, String>,
) -> Result<Written, IntakeError> {
    let agent_id = item.agent_id.as_str();
    if values.is_empty() {
        return Err(IntakeError::Empty);
    }
    if let Some((key, problem)) = values
        .keys()
        .find_map(|k| spec::secret_key_problem(k).map(|p| (k, p)))
    {
        return Err(IntakeError::BadKey {
            key: key.clone(),
            problem,
        });
    }
    if item.meta.is_deleting() {
        return Err(IntakeError::Deleting {
            agent_id: agent_id.to_owned(),
        });
    }
    let client = item.client_id().ok_or_else(|| IntakeError::NoClient {
        agent_id: agent_id.to_owned(),
    })?;
    let name = render::secret_name_under(prefix, agent_id);
    let request = render::Secret {
        name: name.clone(),
        tags: match &item.spec {
            Ok(spec) => render::resource_tags(spec),
            Err(_) => render::identity_tags(agent_id, &client),
        },
    };
    // Secrets Manager has no conditional write: two writers that read the same value and each
    // wrote it back merged with their own keys would leave only the later one's. Writers take
    // the agent's lock in the table for the read, merge and write.
    let holder = hex::encode(rand::random::<[u8; 16]>());
    let waited = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    while !store.lock_secret(agent_id, &holder, LOCK_LEASE).await? {
        if waited.elapsed() >= LOCK_WAIT {
            return Err(IntakeError::Busy { name });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(400));
    }
    let written = merge(secrets, &request, agent_id, &client, values).await;
    if let Err(e) = store.unlock_secret(agent_id, &holder).await {
        // The lock expires by itself; the write itself is done.
        tracing::warn!(agent_id, "secret lock not released: {e}");
    }
    written
}

/// How long a writer may hold an agent's secret lock before another may take it: more than
/// the four calls of a write at their timeout.
const LOCK_LEASE: Duration = Duration::from_secs(60);

/// How long a writer waits for the lock before answering that the secret is busy.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The read, merge and write, under the lock.
async fn merge(
    secrets: &Secrets,
    request: &render::Secret,
    agent_id: &str,
    client: &str,
    values: BTreeMap<String, String>,
) -> Result<Written, IntakeError> {
    let name = request.name.clone();
    let set: Vec<String> = values.keys().cloned().collect();
    // Twice at most: a secret created meanwhile (the controller creates an empty one for a new
    // agent) is merged into on the second pass.
    for _ in 0..2 {
        match secrets.describe_secret(&name).await? {
            None => {
                let value = within_limit(json(&values))?;
                match secrets
                    .create_secret(request, &description(&set)?, &value)
                    .await
                {
                    Ok(_) => {
                        return Ok(Written {
                            name,
                            keys: set.clone(),
                            set,
                        });
                    }
                    Err(e) if e.code.as_deref() == Some("ResourceExistsException") => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(secret) => {
                let ours = secret.agent_id() == Some(agent_id)
                    && secret.tags.get(tag::CLIENT_ID).map(String::as_str) == Some(client);
                if !ours {
                    return Err(IntakeError::Foreign { name });
                }
                if secret.deleted {
                    secrets.restore_secret(&secret.arn).await?;
                }
                let mut merged = read_values(secrets, &secret.arn, &name).await?;
                merged.extend(values);
                let keys: Vec<String> = merged.keys().cloned().collect();
                let value = within_limit(json(&merged))?;
                secrets
                    .update_secret(&secret.arn, &description(&keys)?, &value)
                    .await?;
                return Ok(Written { name, set, keys });
            }
        }
    }
    Err(IntakeError::Busy { name })
}

/// The secret's value as a map (GetSecretValue); an empty secret is an empty map.
async fn read_values(
    secrets: &Secrets,
    arn: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, IntakeError> {
    match secrets.get_secret_value(arn).await?.as_deref() {
        None | Some("") => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|_| IntakeError::Unreadable {
            name: name.to_owned(),
        }),
    }
}

/// The key names of the agent's secret (DescribeSecret; never GetSecretValue), or `None` when
/// it has no secret that carries this agent's and tenant's tags.
///
/// # Errors
/// A failed DescribeSecret.
pub async fn key_names(
    secrets: &Secrets,
    item: &SpecItem,
    prefix: &str,
) -> Result<Option<Vec<String>>, IntakeError> {
    let name = render::secret_name_under(prefix, &item.agent_id);
    let client = item.client_id();
    Ok(secrets.describe_secret(&name).await?.and_then(|s| {
        let ours = s.agent_id() == Some(item.agent_id.as_str())
            && client.is_some()
            && s.tags.get(tag::CLIENT_ID) == client.as_ref();
        (ours && !s.deleted).then(|| s.key_names.unwrap_or_default())
    }))
}

fn description(keys: &[String]) -> Result<String, IntakeError> {
    let description = render::secret_description(keys);
    if description.chars().count() > render::SECRET_DESCRIPTION_LIMIT {
        return Err(IntakeError::TooManyKeys {
            size: description.chars().count(),
        });
    }
    Ok(description)
}

fn within_limit(value: String) -> Result<String, IntakeError> {
    if value.len() > SECRET_LIMIT {
        return Err(IntakeError::TooLarge { size: value.len() });
    }
    Ok(value)
}

/// A JSON object of strings; serializing one cannot fail, and an empty object would only mean
/// the keys are lost, never that a value leaks.
fn json(values: &BTreeMap<String, String>) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned())
}
