//! `clawfleet_aws_requests_total{service,operation,outcome}`: every request the SDK sent
//! (retries included), read from the [`Calls`] interceptor's counts at each scrape. The
//! controller and the HTTP API both export it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use crate::Calls;

/// The outcomes every operation is reported with, at 0 before the first call of each.
pub const OUTCOMES: [&str; 3] = ["success", "throttled", "error"];

/// Every `(service, operation)` clawfleet calls, as the SDK names them: each exists at 0 from
/// the start, so that `rate()` and `absent()` work before the first call.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("ECS", "ListTasks"),
    ("ECS", "DescribeTasks"),
    ("ECS", "DescribeTaskDefinition"),
    ("ECS", "ListTaskDefinitions"),
    ("ECS", "RegisterTaskDefinition"),
    ("ECS", "DeregisterTaskDefinition"),
    ("ECS", "RunTask"),
    ("ECS", "StopTask"),
    ("ECS", "TagResource"),
    ("ECS", "UntagResource"),
    ("EFS", "DescribeAccessPoints"),
    ("EFS", "CreateAccessPoint"),
    ("EFS", "DeleteAccessPoint"),
    ("EFS", "TagResource"),
    ("EFS", "UntagResource"),
    ("Secrets Manager", "DescribeSecret"),
    ("Secrets Manager", "ListSecrets"),
    ("Secrets Manager", "CreateSecret"),
    ("Secrets Manager", "UpdateSecret"),
    ("Secrets Manager", "GetSecretValue"),
    ("Secrets Manager", "RestoreSecret"),
    ("Secrets Manager", "DeleteSecret"),
    ("Secrets Manager", "TagResource"),
    ("Secrets Manager", "UntagResource"),
    ("DynamoDB", "GetItem"),
    ("DynamoDB", "PutItem"),
    ("DynamoDB", "UpdateItem"),
    ("DynamoDB", "DeleteItem"),
    ("DynamoDB", "Query"),
    ("DynamoDB", "Scan"),
    ("DynamoDB", "BatchGetItem"),
    ("DynamoDB Streams", "DescribeStream"),
    ("DynamoDB Streams", "GetShardIterator"),
    ("DynamoDB Streams", "GetRecords"),
    ("IAM", "GetRole"),
    ("IAM", "GetRolePolicy"),
    ("IAM", "ListRoles"),
    ("IAM", "CreateRole"),
    ("IAM", "PutRolePolicy"),
    ("IAM", "PutRolePermissionsBoundary"),
    ("IAM", "DeleteRolePolicy"),
    ("IAM", "DeleteRole"),
    ("SQS", "ReceiveMessage"),
    ("SQS", "DeleteMessageBatch"),
];

/// A Prometheus collector over the shared call counts.
#[derive(Debug)]
pub struct AwsRequests(pub Calls);

impl Collector for AwsRequests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "clawfleet_aws_requests",
            "AWS requests by service, operation and outcome (success, throttled or error), retries included",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut counts = self.0.snapshot();
        for (service, operation) in OPERATIONS {
            for outcome in OUTCOMES {
                counts
                    .entry((
                        (*service).to_owned(),
                        (*operation).to_owned(),
                        outcome.to_owned(),
                    ))
                    .or_insert(0);
            }
        }
        for ((service, operation, outcome), count) in counts {
            let labels = [
                ("service", service),
                ("operation", operation),
                ("outcome", outcome),
            ];
            let family = metric.encode_family(&labels)?;
            ConstCounter::new(count).encode(family)?;
        }
        Ok(())
    }
}
