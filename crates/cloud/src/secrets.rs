//! Secrets Manager reads. Secret values are never read here: the key names a writer recorded
//! come from the Description.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use crate::error::AwsError;
use crate::observed::Secret;
use crate::pages::all_pages;

/// Secrets Manager.
#[derive(Debug, Clone)]
pub struct Secrets {
    client: Client,
}

impl Secrets {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// DescribeSecret; `None` when no secret has that name.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn describe_secret(&self, name: &str) -> Result<Option<Secret>, AwsError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(Some(secret(
                out.arn(),
                out.name(),
                out.description(),
                out.tags(),
                out.deleted_date().is_some(),
            ))),
            Err(e) => {
                let e = AwsError::from_sdk("SecretsManager", "DescribeSecret", &e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
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
                    .await
                    .map_err(|e| AwsError::from_sdk("SecretsManager", "ListSecrets", &e))?;
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
