//! EFS: DescribeAccessPoints, CreateAccessPoint, DeleteAccessPoint and tagging; for the audit,
//! DescribeFileSystems, DescribeFileSystemPolicy, DescribeMountTargets and
//! DescribeMountTargetSecurityGroups. Each function names the operation it calls.

use aws_sdk_efs::Client;

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};
use crate::pages::all_pages;
use plan::observed::AccessPoint;

/// EFS on one file system.
#[derive(Debug, Clone)]
pub struct Efs {
    client: Client,
    file_system_id: String,
    gate: SharedGate,
}

impl Efs {
    #[must_use]
    pub fn new(client: Client, file_system_id: impl Into<String>) -> Self {
        Self {
            client,
            file_system_id: file_system_id.into(),
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
            .interceptor(crate::gate::ThrottleFeedback::new(gate.clone(), "EFS"))
            .build();
        Self {
            client: Client::from_conf(config),
            gate,
            ..self
        }
    }

    #[must_use]
    pub fn file_system_id(&self) -> &str {
        &self.file_system_id
    }

    /// DescribeAccessPoints of the file system, all pages.
    ///
    /// # Errors
    /// A failed page.
    pub async fn describe_access_points(&self) -> Result<Vec<AccessPoint>, AwsError> {
        all_pages(|token| async move {
            let out = self
                .client
                .describe_access_points()
                .file_system_id(&self.file_system_id)
                .set_next_token(token)
                .send()
                .through(&*self.gate, "EFS", "DescribeAccessPoints")
                .await?;
            let page = out.access_points().iter().map(access_point).collect();
            Ok((page, out.next_token))
        })
        .await
    }

    /// DescribeAccessPoints of one access point; `None` when it does not exist.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn describe_access_point(&self, id: &str) -> Result<Option<AccessPoint>, AwsError> {
        match self
            .client
            .describe_access_points()
            .access_point_id(id)
            .send()
            .through(&*self.gate, "EFS", "DescribeAccessPoints")
            .await
        {
            Ok(out) => Ok(out.access_points().first().map(access_point)),
            Err(e) => {
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Reads for `clawfleet audit`.
impl Efs {
    /// DescribeFileSystems of the configured file system: its ARN, `None` when it does not
    /// exist.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn describe_file_system_arn(&self) -> Result<Option<String>, AwsError> {
        match self
            .client
            .describe_file_systems()
            .file_system_id(&self.file_system_id)
            .send()
            .through(&*self.gate, "EFS", "DescribeFileSystems")
            .await
        {
            Ok(out) => Ok(out
                .file_systems()
                .first()
                .and_then(|fs| fs.file_system_arn())
                .map(str::to_owned)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DescribeFileSystemPolicy: the policy (JSON), `None` when the file system has none
    /// (PolicyNotFound), which leaves it open to every client that reaches a mount target.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn describe_file_system_policy(&self) -> Result<Option<String>, AwsError> {
        match self
            .client
            .describe_file_system_policy()
            .file_system_id(&self.file_system_id)
            .send()
            .through(&*self.gate, "EFS", "DescribeFileSystemPolicy")
            .await
        {
            Ok(out) => Ok(out.policy),
            Err(e) if e.has_code("PolicyNotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DescribeMountTargets of the file system, all pages: their ids.
    ///
    /// # Errors
    /// A failed page.
    pub async fn describe_mount_targets(&self) -> Result<Vec<String>, AwsError> {
        all_pages(|marker| async move {
            let out = self
                .client
                .describe_mount_targets()
                .file_system_id(&self.file_system_id)
                .set_marker(marker)
                .send()
                .through(&*self.gate, "EFS", "DescribeMountTargets")
                .await?;
            let page = out
                .mount_targets()
                .iter()
                .map(|t| t.mount_target_id().to_owned())
                .collect();
            Ok((page, out.next_marker))
        })
        .await
    }

    /// DescribeMountTargetSecurityGroups of one mount target.
    ///
    /// # Errors
    /// The call's failure.
    pub async fn describe_mount_target_security_groups(
        &self,
        mount_target_id: &str,
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_mount_target_security_groups()
            .mount_target_id(mount_target_id)
            .send()
            .through(&*self.gate, "EFS", "DescribeMountTargetSecurityGroups")
            .await?;
        Ok(out.security_groups)
    }
}

fn access_point(ap: &aws_sdk_efs::types::AccessPointDescription) -> AccessPoint {
    AccessPoint {
        id: ap.access_point_id().unwrap_or_default().to_owned(),
        arn: ap.access_point_arn().unwrap_or_default().to_owned(),
        file_system_id: ap.file_system_id().unwrap_or_default().to_owned(),
        root_path: ap
            .root_directory()
            .and_then(|r| r.path())
            .map(str::to_owned),
        posix_uid: ap.posix_user().map(|p| p.uid()),
        posix_gid: ap.posix_user().map(|p| p.gid()),
        tags: ap
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        life_cycle_state: ap
            .life_cycle_state()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// Writes.
impl Efs {
    /// CreateAccessPoint with an idempotency token. An AccessPointAlreadyExists answer (the
    /// token was used before) is adopted: the existing access point is described and returned.
    ///
    /// # Errors
    /// A failed call.
    pub async fn create_access_point(
        &self,
        request: &spec::render::AccessPoint,
        client_token: &str,
    ) -> Result<AccessPoint, AwsError> {
        use aws_sdk_efs::types::{CreationInfo, PosixUser, RootDirectory, Tag};
        let bad = |e: &dyn std::fmt::Display| AwsError {
            service: "EFS",
            operation: "CreateAccessPoint",
            code: None,
            message: e.to_string(),
            class: crate::ErrorClass::Terminal,
        };
        let posix = PosixUser::builder()
            .uid(i64::from(request.posix_uid))
            .gid(i64::from(request.posix_gid))
            .build()
            .map_err(|e| bad(&e))?;
        let creation = CreationInfo::builder()
            .owner_uid(i64::from(request.posix_uid))
            .owner_gid(i64::from(request.posix_gid))
            .permissions(&request.creation_permissions)
            .build()
            .map_err(|e| bad(&e))?;
        let mut call = self
            .client
            .create_access_point()
            .client_token(client_token)
            .file_system_id(&request.file_system_id)
            .posix_user(posix)
            .root_directory(
                RootDirectory::builder()
                    .path(&request.root_path)
                    .creation_info(creation)
                    .build(),
            );
        for (k, v) in &request.tags {
            call = call.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| bad(&e))?,
            );
        }
        // Not through `Through`: AccessPointAlreadyExists carries the id to adopt.
        self.gate.pass("EFS", "CreateAccessPoint").await?;
        match call.send().await {
            Ok(out) => Ok(AccessPoint {
                id: out.access_point_id.unwrap_or_default(),
                arn: out.access_point_arn.unwrap_or_default(),
                file_system_id: out.file_system_id.unwrap_or_default(),
                root_path: out.root_directory.and_then(|r| r.path),
                posix_uid: Some(i64::from(request.posix_uid)),
                posix_gid: Some(i64::from(request.posix_gid)),
                tags: request.tags.clone(),
                life_cycle_state: out
                    .life_cycle_state
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            }),
            Err(e) => {
                let existing = e
                    .as_service_error()
                    .and_then(|s| match s {
                        aws_sdk_efs::operation::create_access_point::CreateAccessPointError::AccessPointAlreadyExists(x) => {
                            Some(x.access_point_id().to_owned())
                        }
                        _ => None,
                    });
                match existing {
                    Some(id) => self
                        .describe_access_point(&id)
                        .await?
                        .ok_or_else(|| AwsError::from_sdk("EFS", "CreateAccessPoint", &e)),
                    None => {
                        let e = AwsError::from_sdk("EFS", "CreateAccessPoint", &e);
                        if e.class == crate::ErrorClass::Throttled {
                            self.gate.throttled("EFS", "CreateAccessPoint");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// DeleteAccessPoint. The files under it stay on the file system. An access point that is
    /// already gone counts as deleted.
    ///
    /// # Errors
    /// A failed call.
    pub async fn delete_access_point(&self, id: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_access_point()
            .access_point_id(id)
            .send()
            .through(&*self.gate, "EFS", "DeleteAccessPoint")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// TagResource and UntagResource on an access point.
    ///
    /// # Errors
    /// A failed call.
    pub async fn tag_resource(
        &self,
        id: &str,
        add: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), AwsError> {
        if !add.is_empty() {
            let mut call = self.client.tag_resource().resource_id(id);
            for (k, v) in add {
                let tag = aws_sdk_efs::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| AwsError {
                        service: "EFS",
                        operation: "TagResource",
                        code: None,
                        message: e.to_string(),
                        class: crate::ErrorClass::Terminal,
                    })?;
                call = call.tags(tag);
            }
            call.send()
                .through(&*self.gate, "EFS", "TagResource")
                .await?;
        }
        if !remove.is_empty() {
            self.client
                .untag_resource()
                .resource_id(id)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .through(&*self.gate, "EFS", "UntagResource")
                .await?;
        }
        Ok(())
    }
}
