//! EFS reads: each function names the operation it calls.

use aws_sdk_efs::Client;

use crate::error::AwsError;
use crate::observed::AccessPoint;
use crate::pages::all_pages;

/// EFS on one file system.
#[derive(Debug, Clone)]
pub struct Efs {
    client: Client,
    file_system_id: String,
}

impl Efs {
    #[must_use]
    pub fn new(client: Client, file_system_id: impl Into<String>) -> Self {
        Self {
            client,
            file_system_id: file_system_id.into(),
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
                .await
                .map_err(|e| AwsError::from_sdk("EFS", "DescribeAccessPoints", &e))?;
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
            .await
        {
            Ok(out) => Ok(out.access_points().first().map(access_point)),
            Err(e) => {
                let e = AwsError::from_sdk("EFS", "DescribeAccessPoints", &e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
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
