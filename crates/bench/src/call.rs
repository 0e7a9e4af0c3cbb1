//! Which AWS service and operation a request through the proxy is, read as AWS's own front end
//! reads it: the `X-Amz-Target` header (JSON protocols), the method and path (EFS's REST
//! protocol), or the `Action` of a form body (IAM's query protocol).

/// The services the controller talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Ecs,
    Efs,
    SecretsManager,
    Iam,
    DynamoDb,
    DynamoDbStreams,
    Sqs,
    Other,
}

/// One request's service and operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub service: Service,
    pub operation: String,
}

impl Call {
    /// Reads a request's service and operation from its target header, method, path and body.
    #[must_use]
    pub fn of(target: Option<&str>, method: &str, path: &str, body: &[u8]) -> Self {
        if let Some(target) = target.filter(|t| !t.is_empty()) {
            let (prefix, operation) = target.rsplit_once('.').unwrap_or(("", target));
            let service = match prefix {
                p if p.starts_with("AmazonEC2ContainerService") => Service::Ecs,
                p if p.starts_with("DynamoDBStreams") => Service::DynamoDbStreams,
                p if p.starts_with("DynamoDB") => Service::DynamoDb,
                "secretsmanager" => Service::SecretsManager,
                "AmazonSQS" => Service::Sqs,
                _ => Service::Other,
            };
            return Self {
                service,
                operation: operation.to_owned(),
            };
        }
        if let Some(rest) = path.strip_prefix("/2015-02-01/") {
            return Self {
                service: Service::Efs,
                operation: efs_operation(method, rest).to_owned(),
            };
        }
        let action = std::str::from_utf8(body)
            .ok()
            .and_then(|b| form_value(b, "Action"))
            .unwrap_or_default();
        Self {
            service: if action.is_empty() {
                Service::Other
            } else {
                Service::Iam
            },
            operation: action,
        }
    }
}

/// EFS's REST routes, as its API reference lists them (path after the version).
fn efs_operation(method: &str, rest: &str) -> &'static str {
    let resource = rest.split(['/', '?']).next().unwrap_or_default();
    let has_id = rest.split('?').next().unwrap_or_default().contains('/');
    match (method, resource, has_id) {
        ("GET", "access-points", false) => "DescribeAccessPoints",
        ("POST", "access-points", false) => "CreateAccessPoint",
        ("DELETE", "access-points", true) => "DeleteAccessPoint",
        ("POST", "resource-tags", true) => "TagResource",
        ("DELETE", "resource-tags", true) => "UntagResource",
        ("GET", "resource-tags", true) => "ListTagsForResource",
        ("GET", "file-systems", _) => "DescribeFileSystems",
        ("GET", "mount-targets", _) => "DescribeMountTargets",
        _ => "Other",
    }
}

/// One value of an `application/x-www-form-urlencoded` body, decoded.
#[must_use]
pub fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_names_its_service_and_operation() {
        let of = |target, method, path, body: &str| Call::of(target, method, path, body.as_bytes());
        assert_eq!(
            of(
                Some("AmazonEC2ContainerServiceV20141113.ListTasks"),
                "POST",
                "/",
                ""
            ),
            Call {
                service: Service::Ecs,
                operation: "ListTasks".into()
            }
        );
        assert_eq!(
            of(Some("DynamoDBStreams_20120810.GetRecords"), "POST", "/", "").service,
            Service::DynamoDbStreams
        );
        assert_eq!(
            of(Some("DynamoDB_20120810.PutItem"), "POST", "/", "").service,
            Service::DynamoDb
        );
        assert_eq!(
            of(None, "GET", "/2015-02-01/access-points", "").operation,
            "DescribeAccessPoints"
        );
        assert_eq!(
            of(None, "POST", "/2015-02-01/access-points", "").operation,
            "CreateAccessPoint"
        );
        assert_eq!(
            of(None, "DELETE", "/2015-02-01/access-points/fsap-1", "").operation,
            "DeleteAccessPoint"
        );
        let iam = of(
            None,
            "POST",
            "/",
            "Action=CreateRole&RoleName=cf-a%2Db&Version=1",
        );
        assert_eq!(
            (iam.service, iam.operation.as_str()),
            (Service::Iam, "CreateRole")
        );
        assert_eq!(
            form_value("Action=CreateRole&RoleName=cf-a%2Db", "RoleName").as_deref(),
            Some("cf-a-b")
        );
    }
}
