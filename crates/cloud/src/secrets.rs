//! Secrets Manager: DescribeSecret, ListSecrets, CreateSecret, RestoreSecret, DeleteSecret and
//! tagging. Secret values are never read here: the key names a writer recorded come from the
//! Description.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};
use crate::pages::all_pages;
use plan::observed::Secret;

/// Secrets Manager.
#[derive(Debug, Clone)]
pub struct Secrets {
    client: Client,
    gate: SharedGate,
}

impl Secrets {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self {
            client,
            gate: crate::gate::open(),
        }
    }

    /// The same, every call passing `gate`.
    #[must_use]
    pub fn with_gate(self, gate: SharedGate) -> Self {
        let config = self
            .client
            .config()
            .to_builder()
            .interceptor(crate::gate::ThrottleFeedback::new(
                gate.clone(),
                "SecretsManager",
            ))
            .build();
        Self {
            client: Client::from_conf(config),
            gate,
        }
    }

    /// DescribeSecret; `None` when no secret has that name.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        match self
            .client
            .describe_secret()
            .secret_id(name)
            .send()
            .through(&*self.gate, "SecretsManager", "DescribeSecret")
            .await
        {
            Ok(out) => Ok(Some(secret(
                out.arn(),
                out.name(),
                out.description(),
                out.tags(),
                out.deleted_date().is_some(),
            ))),
            Err(e) => {
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// ListSecrets whose name starts with `prefix`, including those waiting out their
    /// recovery window, all pages.
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_secrets(&self, prefix: &str) -> Result<Vec<Secret>, AwsError> {
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(prefix)
            .build();
        all_pages(|token| {
            let filter = filter.clone();
            async move {
                let out = self
                    .client
                    .list_secrets()
                    .filters(filter)
                    .include_planned_deletion(true)
                    .set_next_token(token)
                    .send()
                    .through(&*self.gate, "SecretsManager", "ListSecrets")
                    .await?;
                let page = out
                    .secret_list()
                    .iter()
                    .map(|s| {
                        secret(
                            s.arn(),
                            s.name(),
                            s.description(),
                            s.tags(),
                            s.deleted_date().is_some(),
                        )
                    })
                    .collect();
                Ok((page, out.next_token))
            }
        })
        .await
    }
}

fn secret(
    arn: Option<&str>,
    name: Option<&str>,
    description: Option<&str>,
    tags: &[aws_sdk_secretsmanager::types::Tag],
    deleted: bool,
) -> Secret {
    Secret {
        arn: arn.unwrap_or_default().to_owned(),
        name: name.unwrap_or_default().to_owned(),
        tags: tags
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        key_names: description.and_then(spec::render::secret_keys_in),
        deleted,
    }
}

/// Writes. Values pass through here only on their way to AWS; they are never logged or
/// returned in an error.
impl Secrets {
    /// CreateSecret with the key names in its Description, tags and a value.
    ///
    /// # Errors
    /// A failed call; ResourceExistsException when the name is taken, and
    /// InvalidRequestException when a secret of that name waits out its recovery window.
    pub async fn create_secret(
        &self,
        request: &spec::render::Secret,
        description: &str,
        value: &str,
    ) -> Result<Secret, AwsError> {
        let mut call = self
            .client
            .create_secret()
            .name(&request.name)
            .description(description)
            .secret_string(value);
        for (k, v) in &request.tags {
            call = call.tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build(),
            );
        }
        let out = call
            .send()
            .through(&*self.gate, "SecretsManager", "CreateSecret")
            .await?;
        Ok(Secret {
            arn: out.arn.unwrap_or_default(),
            name: out.name.unwrap_or_default(),
            tags: request.tags.clone(),
            key_names: spec::render::secret_keys_in(description),
            deleted: false,
        })
    }

    /// RestoreSecret: cancels a scheduled deletion.
    ///
    /// # Errors
    /// A failed call.
    pub async fn restore_secret(&self, arn: &str) -> Result<(), AwsError> {
        self.client
            .restore_secret()
            .secret_id(arn)
            .send()
            .through(&*self.gate, "SecretsManager", "RestoreSecret")
            .await?;
        Ok(())
    }

    /// DeleteSecret with a recovery window, during which RestoreSecret brings it back. A
    /// secret already gone or already scheduled counts as deleted.
    ///
    /// # Errors
    /// A failed call.
    pub async fn delete_secret(&self, arn: &str, recovery_days: i64) -> Result<(), AwsError> {
        match self
            .client
            .delete_secret()
            .secret_id(arn)
            .recovery_window_in_days(recovery_days)
            .send()
            .through(&*self.gate, "SecretsManager", "DeleteSecret")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // InvalidRequestException: already scheduled for deletion (a retry whose
                // first response was lost).
                if e.is_not_found() || e.has_code("InvalidRequestException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// TagResource and UntagResource on a secret.
    ///
    /// # Errors
    /// A failed call.
    pub async fn tag_resource(
        &self,
        arn: &str,
        add: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        if !add.is_empty() {
            let mut call = self.client.tag_resource().secret_id(arn);
            for (k, v) in add {
                call = call.tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build(),
                );
            }
            call.send()
                .through(&*self.gate, "SecretsManager", "TagResource")
                .await?;
        }
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .secret_id(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .through(&*self.gate, "SecretsManager", "UntagResource")
                .await?;
        }
        Ok(())
    }

    /// GetSecretValue, for the writer of values only (merging new keys into old ones).
    ///
    /// # Errors
    /// A failed call.
    pub async fn get_secret_value(&self, arn: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .through(&*self.gate, "SecretsManager", "GetSecretValue")
            .await?;
        Ok(out.secret_string)
    }

    /// UpdateSecret of the value and the Description in one call, so the recorded key names
    /// never disagree with the value.
    ///
    /// # Errors
    /// A failed call.
    pub async fn update_secret(
        &self,
        arn: &str,
        description: &str,
        value: &str,
    ) -> Result<(), AwsError> {
        self.client
            .update_secret()
            .secret_id(arn)
            .description(description)
            .secret_string(value)
            .send()
            .through(&*self.gate, "SecretsManager", "UpdateSecret")
            .await?;
        Ok(())
    }
}
