//! Pagination, batching and error mapping against stubbed SDK responses (moto ignores page sizes).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_task_definitions::{
    ListTaskDefinitionsError, ListTaskDefinitionsOutput,
};
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{DesiredStatus, SortOrder, TaskDefinitionStatus, TaskField};
use aws_sdk_efs::operation::describe_access_points::{
    DescribeAccessPointsError, DescribeAccessPointsOutput,
};
use aws_sdk_efs::types::AccessPointDescription;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
use aws_sdk_secretsmanager::types::{FilterNameStringType, SecretListEntry};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use cloud::{AwsError, DESCRIBE_TASKS_BATCH, Ecs, Efs, ErrorClass, Secrets, all_pages};

const CLUSTER: &str = "dev";
const FS: &str = "fs-12345678";

fn ecs(rules: &[&Rule]) -> Ecs {
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, rules, |c| c
        .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()));
    Ecs::new(client, CLUSTER)
}

fn efs(rules: &[&Rule]) -> Efs {
    let client = mock_client!(aws_sdk_efs, RuleMode::Sequential, rules, |c| c
        .retry_config(aws_sdk_efs::config::retry::RetryConfig::disabled()));
    Efs::new(client, FS)
}

fn secrets(rules: &[&Rule]) -> Secrets {
    let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, rules, |c| c
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
    Secrets::new(client)
}

/// `n` names starting at `from`, e.g. task ARNs.
fn names(prefix: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("{prefix}{i:04}"))
        .collect()
}

fn task_arns(from: usize, n: usize) -> Vec<String> {
    names("arn:aws:ecs:us-east-1:123456789012:task/dev/", from, n)
}

/// A next token as `all_pages` passes it on.
fn token(t: &str) -> Option<String> {
    Some(t.to_owned())
}

fn assert_each_called_once(rules: &[&Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(rule.num_calls(), 1, "page {} was requested once", i + 1);
    }
}

/// An ECS error as the service sends it (awsJson 1.1).
fn ecs_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
}

#[tokio::test]
async fn list_task_definitions_follows_next_tokens_across_three_pages() {
    let family = "clawfleet-agent-acme-support";
    let arn = |n: i32| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{n}");
    let page = |want: Option<&'static str>, arns: Vec<String>, next: Option<&'static str>| {
        mock!(aws_sdk_ecs::Client::list_task_definitions)
            .match_requests(move |r| {
                r.next_token() == want
                    && r.family_prefix() == Some(family)
                    && r.status() == Some(&TaskDefinitionStatus::Active)
                    && r.sort() == Some(&SortOrder::Desc)
            })
            .then_output(move || {
                ListTaskDefinitionsOutput::builder()
                    .set_task_definition_arns(Some(arns.clone()))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    };
    let first = page(None, vec![arn(9), arn(8), arn(7)], Some("t1"));
    let second = page(Some("t1"), vec![arn(6), arn(5)], Some("t2"));
    let third = page(Some("t2"), vec![arn(4)], None);
    let rules = [&first, &second, &third];

    let listed = ecs(&rules)
        .list_task_definitions(Some(family))
        .await
        .unwrap();

    assert_eq!(listed, [9, 8, 7, 6, 5, 4].map(arn));
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn list_tasks_started_by_follows_next_tokens_across_three_pages() {
    let started_by = "clawfleet/acme-support";
    let page = |want: Option<&'static str>, arns: Vec<String>, next: Option<&'static str>| {
        mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(move |r| {
                r.next_token() == want
                    && r.cluster() == Some(CLUSTER)
                    && r.started_by() == Some(started_by)
                    // ECS refuses startedBy together with any other filter.
                    && r.desired_status().is_none()
                    && r.family().is_none()
                    && r.service_name().is_none()
            })
            .then_output(move || {
                ListTasksOutput::builder()
                    .set_task_arns(Some(arns.clone()))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    };
    let first = page(None, task_arns(0, 100), Some("t1"));
    let second = page(Some("t1"), task_arns(100, 100), Some("t2"));
    let third = page(Some("t2"), task_arns(200, 7), None);
    let rules = [&first, &second, &third];

    let listed = ecs(&rules).list_tasks_started_by(started_by).await.unwrap();

    assert_eq!(listed, task_arns(0, 207));
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn list_tasks_lists_running_then_stopped_tasks_each_across_pages() {
    let page = |status: DesiredStatus,
                want: Option<&'static str>,
                arns: Vec<String>,
                next: Option<&'static str>| {
        mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(move |r| {
                r.next_token() == want
                    && r.cluster() == Some(CLUSTER)
                    && r.desired_status() == Some(&status)
                    && r.started_by().is_none()
            })
            .then_output(move || {
                ListTasksOutput::builder()
                    .set_task_arns(Some(arns.clone()))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    };
    let running = [
        page(DesiredStatus::Running, None, task_arns(0, 100), Some("r1")),
        page(
            DesiredStatus::Running,
            Some("r1"),
            task_arns(100, 100),
            Some("r2"),
        ),
        page(DesiredStatus::Running, Some("r2"), task_arns(200, 3), None),
    ];
    // Each status is a listing of its own: its first page carries no token.
    let stopped = [
        page(
            DesiredStatus::Stopped,
            None,
            task_arns(500, 100),
            Some("s1"),
        ),
        page(
            DesiredStatus::Stopped,
            Some("s1"),
            task_arns(600, 100),
            Some("s2"),
        ),
        page(DesiredStatus::Stopped, Some("s2"), task_arns(700, 1), None),
    ];
    let rules: Vec<&Rule> = running.iter().chain(&stopped).collect();

    let listed = ecs(&rules).list_tasks().await.unwrap();

    let mut want = task_arns(0, 203);
    want.extend(task_arns(500, 201));
    assert_eq!(listed, want);
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn describe_access_points_follows_next_tokens_across_three_pages() {
    let ids = |from, n| names("fsap-0000000000000", from, n);
    let page = |want: Option<&'static str>, ids: Vec<String>, next: Option<&'static str>| {
        mock!(aws_sdk_efs::Client::describe_access_points)
            .match_requests(move |r| {
                r.next_token() == want
                    && r.file_system_id() == Some(FS)
                    && r.access_point_id().is_none()
            })
            .then_output(move || {
                DescribeAccessPointsOutput::builder()
                    .set_access_points(Some(
                        ids.iter()
                            .map(|id| {
                                AccessPointDescription::builder()
                                    .access_point_id(id)
                                    .file_system_id(FS)
                                    .build()
                            })
                            .collect(),
                    ))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    };
    let first = page(None, ids(0, 2), Some("t1"));
    let second = page(Some("t1"), ids(2, 2), Some("t2"));
    let third = page(Some("t2"), ids(4, 1), None);
    let rules = [&first, &second, &third];

    let listed = efs(&rules).describe_access_points().await.unwrap();

    let listed: Vec<&str> = listed.iter().map(|ap| ap.id.as_str()).collect();
    assert_eq!(listed, ids(0, 5));
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn list_secrets_follows_next_tokens_across_three_pages() {
    let prefix = "/openclaw/agents/";
    let secret_names = |from, n| names("/openclaw/agents/agent-", from, n);
    let page = |want: Option<&'static str>, names: Vec<String>, next: Option<&'static str>| {
        mock!(aws_sdk_secretsmanager::Client::list_secrets)
            .match_requests(move |r| {
                let filter = r.filters().first();
                r.next_token() == want
                    && r.include_planned_deletion() == Some(true)
                    && filter.and_then(|f| f.key()) == Some(&FilterNameStringType::Name)
                    && filter.map(|f| f.values()) == Some(&[prefix.to_owned()][..])
            })
            .then_output(move || {
                ListSecretsOutput::builder()
                    .set_secret_list(Some(
                        names
                            .iter()
                            .map(|n| {
                                SecretListEntry::builder()
                                    .name(n)
                                    .arn(format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{n}-AbCdEf"))
                                    .description("clawfleet keys: OPENAI_API_KEY")
                                    .build()
                            })
                            .collect(),
                    ))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    };
    let first = page(None, secret_names(0, 3), Some("t1"));
    let second = page(Some("t1"), secret_names(3, 3), Some("t2"));
    let third = page(Some("t2"), secret_names(6, 2), None);
    let rules = [&first, &second, &third];

    let listed = secrets(&rules).list_secrets(prefix).await.unwrap();

    let listed_names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(listed_names, secret_names(0, 8));
    assert!(
        listed
            .iter()
            .all(|s| s.key_names.as_deref() == Some(&["OPENAI_API_KEY".to_owned()][..]))
    );
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn describe_tasks_sends_250_arns_in_three_batches_of_at_most_100_without_repeats() {
    let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = Arc::clone(&batches);
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.cluster() == Some(CLUSTER) && r.include() == [TaskField::Tags])
        .then_compute_output(move |r| {
            let arns = r.tasks().to_vec();
            seen.lock().unwrap().push(arns.clone());
            DescribeTasksOutput::builder()
                .set_tasks(Some(
                    arns.iter()
                        .map(|a| {
                            aws_sdk_ecs::types::Task::builder()
                                .task_arn(a)
                                .last_status("RUNNING")
                                .desired_status("RUNNING")
                                .build()
                        })
                        .collect(),
                ))
                .build()
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]);
    let mut arns = task_arns(0, 250);
    // The same task reached through two listings (startedBy and the status's task ARN).
    arns.extend(task_arns(40, 30));

    let tasks = Ecs::new(client, CLUSTER)
        .describe_tasks(&arns)
        .await
        .unwrap();

    let batches = batches.lock().unwrap();
    assert_eq!(rule.num_calls(), 3);
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|&n| n <= DESCRIBE_TASKS_BATCH),
        "{sizes:?}"
    );
    let mut sent: Vec<&String> = batches.iter().flatten().collect();
    assert_eq!(sent.len(), 250, "every unique ARN is sent once: {sizes:?}");
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 250);
    let mut described: Vec<&str> = tasks.iter().map(|t| t.arn.as_str()).collect();
    described.sort_unstable();
    assert_eq!(described, task_arns(0, 250));
}

#[tokio::test]
async fn describe_tasks_of_no_arns_makes_no_call() {
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .then_output(|| DescribeTasksOutput::builder().build());
    let rules = [&rule];

    let tasks = ecs(&rules).describe_tasks(&[]).await.unwrap();

    assert!(tasks.is_empty());
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn a_repeated_next_token_is_an_error_not_an_endless_loop() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);

    let result: Result<Vec<u32>, AwsError> = all_pages(|token| {
        seen.lock().unwrap().push(token);
        async { Ok((vec![1], Some("again".to_owned()))) }
    })
    .await;

    let err = result.unwrap_err();
    assert!(err.message.contains("again"), "{err}");
    assert_eq!(*calls.lock().unwrap(), [None, token("again")]);
}

#[tokio::test]
async fn a_listing_whose_next_token_repeats_fails_after_two_pages() {
    let first = mock!(aws_sdk_ecs::Client::list_task_definitions)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            ListTaskDefinitionsOutput::builder()
                .task_definition_arns("a")
                .next_token("stuck")
                .build()
        });
    let again = mock!(aws_sdk_ecs::Client::list_task_definitions)
        .match_requests(|r| r.next_token() == Some("stuck"))
        .then_output(|| {
            ListTaskDefinitionsOutput::builder()
                .task_definition_arns("b")
                .next_token("stuck")
                .build()
        });
    let rules = [&first, &again];

    let result = ecs(&rules).list_task_definitions(None).await;

    assert!(result.is_err(), "{result:?}");
    assert_each_called_once(&rules);
}

#[tokio::test]
async fn an_empty_next_token_ends_the_listing() {
    let rule = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:us-east-1:123456789012:task/dev/1")
            .next_token("")
            .build()
    });
    let rules = [&rule];

    let listed = ecs(&rules)
        .list_tasks_started_by("clawfleet/a")
        .await
        .unwrap();

    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn ecs_throttling_is_an_aws_error_naming_ecs_and_the_operation_classed_throttled() {
    let rule = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_http_response(|| ecs_error(400, "ThrottlingException", "Rate exceeded"));
    let rules = [&rule];

    let err = ecs(&rules)
        .list_tasks_started_by("clawfleet/a")
        .await
        .unwrap_err();

    assert_eq!(
        (err.service, err.operation, err.code.as_deref(), err.class),
        (
            "ECS",
            "ListTasks",
            Some("ThrottlingException"),
            ErrorClass::Throttled
        )
    );
    assert_eq!(
        err.to_string(),
        "ECS ListTasks: ThrottlingException: Rate exceeded"
    );
}

#[tokio::test]
async fn a_failed_later_page_fails_the_whole_listing() {
    let first = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:us-east-1:123456789012:task/dev/1")
                .next_token("t1")
                .build()
        });
    let second = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.next_token() == Some("t1"))
        .then_http_response(|| ecs_error(500, "ServerException", "Service unavailable"));
    let rules = [&first, &second];

    let err = ecs(&rules).list_tasks().await.unwrap_err();

    assert_eq!(
        (err.service, err.operation, err.class),
        ("ECS", "ListTasks", ErrorClass::Transient)
    );
    assert_eq!(err.code.as_deref(), Some("ServerException"));
}

#[tokio::test]
async fn an_ecs_client_exception_is_terminal() {
    let rule = mock!(aws_sdk_ecs::Client::list_task_definitions).then_error(|| {
        ListTaskDefinitionsError::ClientException(
            aws_sdk_ecs::types::error::ClientException::builder()
                .message("Invalid family prefix")
                .meta(
                    ErrorMetadata::builder()
                        .code("ClientException")
                        .message("Invalid family prefix")
                        .build(),
                )
                .build(),
        )
    });
    let rules = [&rule];

    let err = ecs(&rules).list_task_definitions(None).await.unwrap_err();

    assert_eq!(
        (err.service, err.operation, err.class),
        ("ECS", "ListTaskDefinitions", ErrorClass::Terminal)
    );
    assert_eq!(err.code.as_deref(), Some("ClientException"));
}

#[tokio::test]
async fn an_unknown_file_system_is_a_terminal_efs_error() {
    let rule = mock!(aws_sdk_efs::Client::describe_access_points).then_error(|| {
        DescribeAccessPointsError::FileSystemNotFound(
            aws_sdk_efs::types::error::FileSystemNotFound::builder()
                .error_code("FileSystemNotFound")
                .message("File system 'fs-12345678' does not exist.")
                .meta(
                    ErrorMetadata::builder()
                        .code("FileSystemNotFound")
                        .message("File system 'fs-12345678' does not exist.")
                        .build(),
                )
                .build()
                .unwrap(),
        )
    });
    let rules = [&rule];

    let err = efs(&rules).describe_access_points().await.unwrap_err();

    assert_eq!(
        (err.service, err.operation, err.class),
        ("EFS", "DescribeAccessPoints", ErrorClass::Terminal)
    );
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_secrets_manager_internal_error_is_transient() {
    let rule = mock!(aws_sdk_secretsmanager::Client::list_secrets).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(500).unwrap(),
            SdkBody::from(r#"{"__type":"InternalServiceError","message":"try again"}"#),
        )
    });
    let rules = [&rule];

    let err = secrets(&rules)
        .list_secrets("/openclaw/agents/")
        .await
        .unwrap_err();

    assert_eq!(
        (err.service, err.operation, err.code.as_deref(), err.class),
        (
            "SecretsManager",
            "ListSecrets",
            Some("InternalServiceError"),
            ErrorClass::Transient
        )
    );
}

#[tokio::test]
async fn calls_count_throttled_answers_apart_from_other_errors_and_successes() {
    let calls = cloud::Calls::default();
    let throttled = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_http_response(|| ecs_error(400, "ThrottlingException", "Rate exceeded"));
    let failed = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_http_response(|| ecs_error(400, "ClientException", "bad request"));
    let ok = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .set_task_arns(Some(Vec::new()))
            .build()
    });
    let rules = [&throttled, &failed, &ok];
    let counter = calls.clone();
    let client = mock_client!(aws_sdk_ecs, RuleMode::Sequential, &rules, |c| c
        .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
        .interceptor(counter.clone()));
    let ecs = Ecs::new(client, CLUSTER);
    for _ in 0..3 {
        let _ = ecs.list_tasks_started_by("clawfleet/a").await;
    }
    let counts = calls.snapshot();
    let count = |outcome: &str| {
        counts
            .get(&("ECS".to_owned(), "ListTasks".to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        (count("throttled"), count("error"), count("success")),
        (1, 1, 1),
        "{counts:?}"
    );
}

/// A gate that records what it was told was throttled.
#[derive(Debug, Default)]
struct Recording {
    throttled: Mutex<Vec<(String, String)>>,
}

impl cloud::Gate for Recording {
    fn pass<'a>(
        &'a self,
        _: &'static str,
        _: &'static str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AwsError>> + Send + 'a>>
    {
        Box::pin(std::future::ready(Ok(())))
    }
    fn throttled(&self, service: &str, operation: &str) {
        self.throttled
            .lock()
            .unwrap()
            .push((service.to_owned(), operation.to_owned()));
    }
}

#[tokio::test]
async fn every_throttled_attempt_reaches_the_gate_not_only_the_last() {
    let throttled = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_http_response(|| ecs_error(400, "ThrottlingException", "Rate exceeded"));
    let ok = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .set_task_arns(Some(Vec::new()))
            .build()
    });
    let rules = [&throttled, &ok];
    let gate = Arc::new(Recording::default());
    let ecs = ecs(&rules).with_gate(gate.clone());
    // The attempt's report (the SDK's retries would each make one), then the call's own.
    assert!(ecs.list_tasks_started_by("clawfleet/a").await.is_err());
    let heard = |n: usize| vec![("ECS".to_owned(), "ListTasks".to_owned()); n];
    assert_eq!(*gate.throttled.lock().unwrap(), heard(2));
    // A successful attempt reports nothing.
    ecs.list_tasks_started_by("clawfleet/a").await.unwrap();
    assert_eq!(*gate.throttled.lock().unwrap(), heard(2));
}
