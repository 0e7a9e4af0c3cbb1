//! `GET /v1/agents/{agent_id}/logs`: the newest lines of the agent's task, through the
//! CloudWatch Logs adapter `clawfleet logs` uses, against moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};
use axum::http::StatusCode;
use spec::{AgentStatus, Phase};
use support::{ACME, GLOBEX, Harness};

#[tokio::test]
async fn a_tenant_reads_the_newest_lines_of_its_agents_task_and_nobody_elses() {
    let h = Harness::new("api-logs").await;
    h.create(ACME, r#"{"agent_id": "acme-logs"}"#).await;

    // Before the controller has launched anything: no task, no lines.
    let reply = h
        .call("GET", "/v1/agents/acme-logs/logs", Some(ACME), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["task_arn"], serde_json::Value::Null);
    assert_eq!(reply.json["lines"], serde_json::json!([]));

    // The agent's revision logs with awslogs, as the template's container does.
    let config = local_aws::sdk_config().await;
    let group = format!("/{}/agents", h.table);
    let ecs = aws_sdk_ecs::Client::new(&config);
    let revision = ecs
        .register_task_definition()
        .family(&h.table)
        .container_definitions(
            ContainerDefinition::builder()
                .name("agent")
                .image("ghcr.io/openclaw/agent:1")
                .memory(512)
                .log_configuration(
                    LogConfiguration::builder()
                        .log_driver(LogDriver::Awslogs)
                        .options("awslogs-group", &group)
                        .options("awslogs-region", "us-east-1")
                        .options("awslogs-stream-prefix", "agent")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap()
        .task_definition_arn
        .unwrap();
    let task_arn = "arn:aws:ecs:us-east-1:123456789012:task/fleet/0123abcd".to_owned();
    let status = AgentStatus {
        phase: Phase::Running,
        client_id: Some("acme".into()),
        cluster: Some("fleet".into()),
        task_arn: Some(task_arn.clone()),
        task_definition_arn: Some(revision),
        ..AgentStatus::default()
    };
    h.store
        .put_status("acme-logs", &status, None)
        .await
        .unwrap();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let stream = "agent/agent/0123abcd";
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let mut put = logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(stream);
    for (i, line) in ["booting", "listening on :8080", "ready"]
        .iter()
        .enumerate()
    {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i64::try_from(i).unwrap())
                .message(*line)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();

    let reply = h
        .call(
            "GET",
            "/v1/agents/acme-logs/logs?tail=2",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["task_arn"], task_arn.as_str());
    let lines: Vec<&str> = reply.json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["listening on :8080", "ready"]);

    let reply = h
        .call("GET", "/v1/agents/acme-logs/logs", Some(GLOBEX), None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert!(!reply.text.contains("ready"), "{}", reply.text);

    let reply = h
        .call(
            "GET",
            "/v1/agents/acme-logs/logs?tail=0",
            Some(ACME),
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json["errors"][0]["field"], "tail");
}
