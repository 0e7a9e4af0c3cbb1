//! IAM: the agents' task roles. GetRole, GetRolePolicy, ListRoles (by the installation's path),
//! CreateRole, PutRolePolicy, PutRolePermissionsBoundary, TagRole, UntagRole,
//! DeleteRolePolicy and DeleteRole; for the audit, everything that grants a role permissions
//! (ListRolePolicies, ListAttachedRolePolicies, GetPolicy, GetPolicyVersion). Each function
//! names the operation it calls.

use std::collections::BTreeMap;

use aws_sdk_iam::Client;
use plan::audit::{NamedPolicy, RolePolicies};
use plan::observed::{Role, RoleDetails};
use spec::render;

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};

/// IAM for the agents' roles.
#[derive(Debug, Clone)]
pub struct Iam {
    client: Client,
    gate: SharedGate,
}

/// IAM answers that say the role or policy does not exist.
fn is_missing(e: &AwsError) -> bool {
    e.has_code("NoSuchEntity") || e.has_code("NoSuchEntityException")
}

fn build_error(operation: &'static str, e: impl std::fmt::Display) -> AwsError {
    AwsError {
        service: "IAM",
        operation,
        code: None,
        message: e.to_string(),
        class: crate::ErrorClass::Terminal,
    }
}

/// Policy documents come back URL-encoded (RFC 3986) from GetRole and GetRolePolicy.
fn decode(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

impl Iam {
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
            .interceptor(crate::gate::ThrottleFeedback::new(gate.clone(), "IAM"))
            .build();
        Self {
            client: Client::from_conf(config),
            gate,
        }
    }

    /// GetRole; `None` when the role does not exist.
    async fn role_of(&self, name: &str) -> Result<Option<aws_sdk_iam::types::Role>, AwsError> {
        match self
            .client
            .get_role()
            .role_name(name)
            .send()
            .through(&*self.gate, "IAM", "GetRole")
            .await
        {
            Ok(out) => Ok(out.role),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GetRole and GetRolePolicy of the agent's one inline policy; `None` when the role does
    /// not exist.
    ///
    /// # Errors
    /// Any failure but a missing role or policy.
    pub async fn get_role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        let Some(role) = self.role_of(name).await? else {
            return Ok(None);
        };
        let policy = match self
            .client
            .get_role_policy()
            .role_name(name)
            .policy_name(render::ROLE_POLICY_NAME)
            .send()
            .through(&*self.gate, "IAM", "GetRolePolicy")
            .await
        {
            Ok(out) => Some(decode(out.policy_document())),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(e),
        };
        Ok(Some(Role {
            name: role.role_name().to_owned(),
            arn: role.arn().to_owned(),
            path: role.path().to_owned(),
            details: Some(RoleDetails {
                permissions_boundary: role
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_owned),
                policy,
                tags: role
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            }),
        }))
    }

    /// ListRoles under `path`, all pages (1,000 a page). Listed roles carry no details: IAM
    /// returns neither boundaries nor tags nor inline policies in a listing.
    ///
    /// # Errors
    /// A failed page.
    pub async fn list_roles(&self, path: &str) -> Result<Vec<Role>, AwsError> {
        crate::all_pages(|marker| async move {
            let out = self
                .client
                .list_roles()
                .path_prefix(path)
                .max_items(1000)
                .set_marker(marker)
                .send()
                .through(&*self.gate, "IAM", "ListRoles")
                .await?;
            let page = out
                .roles()
                .iter()
                .map(|r| Role {
                    name: r.role_name().to_owned(),
                    arn: r.arn().to_owned(),
                    path: r.path().to_owned(),
                    details: None,
                })
                .collect();
            let next = if out.is_truncated() { out.marker } else { None };
            Ok((page, next))
        })
        .await
    }

    /// CreateRole under the permissions boundary, with its tags, then PutRolePolicy of its one
    /// inline policy.
    ///
    /// # Errors
    /// The first failed call (EntityAlreadyExists when the name is taken, LimitExceeded at the
    /// account's role quota).
    pub async fn create_role(&self, request: &render::Role) -> Result<Role, AwsError> {
        let mut call = self
            .client
            .create_role()
            .role_name(&request.name)
            .path(&request.path)
            .assume_role_policy_document(&request.trust_policy)
            .permissions_boundary(&request.permissions_boundary)
            .description("clawfleet agent task role: mounts only its own EFS access point");
        for (k, v) in &request.tags {
            let tag = aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| build_error("CreateRole", e))?;
            call = call.tags(tag);
        }
        let out = call
            .send()
            .through(&*self.gate, "IAM", "CreateRole")
            .await?;
        let arn = out.role().map(|r| r.arn().to_owned()).unwrap_or_default();
        self.put_role_policy(&request.name, &request.policy).await?;
        Ok(Role {
            name: request.name.clone(),
            arn,
            path: request.path.clone(),
            details: Some(RoleDetails {
                permissions_boundary: Some(request.permissions_boundary.clone()),
                policy: Some(request.policy.clone()),
                tags: request.tags.clone(),
            }),
        })
    }

    /// PutRolePolicy of the agent's one inline policy.
    ///
    /// # Errors
    /// The call's failure.
    pub async fn put_role_policy(&self, name: &str, policy: &str) -> Result<(), AwsError> {
        self.client
            .put_role_policy()
            .role_name(name)
            .policy_name(render::ROLE_POLICY_NAME)
            .policy_document(policy)
            .send()
            .through(&*self.gate, "IAM", "PutRolePolicy")
            .await?;
        Ok(())
    }

    /// PutRolePermissionsBoundary.
    ///
    /// # Errors
    /// The call's failure.
    pub async fn put_role_permissions_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> Result<(), AwsError> {
        self.client
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(boundary)
            .send()
            .through(&*self.gate, "IAM", "PutRolePermissionsBoundary")
            .await?;
        Ok(())
    }

    /// TagRole and UntagRole.
    ///
    /// # Errors
    /// The first failed call.
    pub async fn tag_role(
        &self,
        name: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        if !add.is_empty() {
            let mut call = self.client.tag_role().role_name(name);
            for (k, v) in add {
                let tag = aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| build_error("TagRole", e))?;
                call = call.tags(tag);
            }
            call.send().through(&*self.gate, "IAM", "TagRole").await?;
        }
        if !remove.is_empty() {
            self.client
                .untag_role()
                .role_name(name)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .through(&*self.gate, "IAM", "UntagRole")
                .await?;
        }
        Ok(())
    }

    /// DeleteRolePolicy of the agent's inline policy, then DeleteRole; a role or policy
    /// already gone is no error.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_role_policy()
            .role_name(name)
            .policy_name(render::ROLE_POLICY_NAME)
            .send()
            .through(&*self.gate, "IAM", "DeleteRolePolicy")
            .await
        {
            Ok(_) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(e),
        }
        match self
            .client
            .delete_role()
            .role_name(name)
            .send()
            .through(&*self.gate, "IAM", "DeleteRole")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Reads for `clawfleet audit`.
impl Iam {
    /// Everything that grants role `name` permissions: GetRole (trust policy, boundary),
    /// ListRolePolicies and GetRolePolicy of each inline policy, ListAttachedRolePolicies and
    /// GetPolicy + GetPolicyVersion of each attached one. `None` when the role does not exist.
    ///
    /// # Errors
    /// The first failed call but a missing role.
    pub async fn role_policies(&self, name: &str) -> Result<Option<RolePolicies>, AwsError> {
        let Some(role) = self.role_of(name).await? else {
            return Ok(None);
        };
        let mut inline = Vec::new();
        for policy in self.list_role_policies(name).await? {
            let document = self.get_role_policy(name, &policy).await?;
            inline.push(NamedPolicy {
                name: policy,
                document,
            });
        }
        let mut attached = Vec::new();
        for arn in self.list_attached_role_policies(name).await? {
            let document = self.get_policy_version(&arn).await?;
            attached.push(NamedPolicy {
                name: arn,
                document,
            });
        }
        Ok(Some(RolePolicies {
            name: role.role_name().to_owned(),
            arn: role.arn().to_owned(),
            trust: role
                .assume_role_policy_document()
                .map(decode)
                .unwrap_or_default(),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_owned),
            inline,
            attached,
        }))
    }

    /// ListRolePolicies, all pages: the names of the role's inline policies.
    async fn list_role_policies(&self, name: &str) -> Result<Vec<String>, AwsError> {
        crate::all_pages(|marker| async move {
            let out = self
                .client
                .list_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .through(&*self.gate, "IAM", "ListRolePolicies")
                .await?;
            let next = if out.is_truncated() { out.marker } else { None };
            Ok((out.policy_names, next))
        })
        .await
    }

    /// GetRolePolicy: one inline policy's document, URL-decoded. A policy deleted since it was
    /// listed reads as an empty document, which grants nothing.
    async fn get_role_policy(&self, name: &str, policy: &str) -> Result<String, AwsError> {
        match self
            .client
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .through(&*self.gate, "IAM", "GetRolePolicy")
            .await
        {
            Ok(out) => Ok(decode(out.policy_document())),
            Err(e) if is_missing(&e) => Ok(r#"{"Statement":[]}"#.to_owned()),
            Err(e) => Err(e),
        }
    }

    /// ListAttachedRolePolicies, all pages: the ARNs of the managed policies attached.
    async fn list_attached_role_policies(&self, name: &str) -> Result<Vec<String>, AwsError> {
        crate::all_pages(|marker| async move {
            let out = self
                .client
                .list_attached_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .through(&*self.gate, "IAM", "ListAttachedRolePolicies")
                .await?;
            let page = out
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_owned))
                .collect();
            let next = if out.is_truncated() { out.marker } else { None };
            Ok((page, next))
        })
        .await
    }

    /// GetPolicy for its default version, then GetPolicyVersion: the managed policy's
    /// document in force, URL-decoded.
    async fn get_policy_version(&self, arn: &str) -> Result<String, AwsError> {
        let policy = self
            .client
            .get_policy()
            .policy_arn(arn)
            .send()
            .through(&*self.gate, "IAM", "GetPolicy")
            .await?;
        let version = policy
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap_or("v1")
            .to_owned();
        let out = self
            .client
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .through(&*self.gate, "IAM", "GetPolicyVersion")
            .await?;
        Ok(out
            .policy_version()
            .and_then(|v| v.document())
            .map(decode)
            .unwrap_or_default())
    }
}
