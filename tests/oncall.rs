//! The on-call commands end to end against moto: `wait`, `get --watch` and `logs`. Statuses are
//! written with the store, as the controller would, so each test controls what the agent says.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};
use spec::{AgentStatus, Condition, ConditionKind, ConditionStatus, Phase};
use support::{Fleet, terminate};

/// The table prefix of this binary's fleets.
const PREFIX: &str = "oncall";

impl Fleet {
    async fn store(&self) -> store::Store {
        store::Store::new(self.dynamodb().await, &self.table)
    }

    fn apply_agent(&self, agent_id: &str) {
        let manifest = format!("agent_id: {agent_id}\nclient_id: acme\n");
        let run = self.run_with_stdin(&["apply", "-f", "-"], &manifest);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
}

fn status(phase: Phase, ready: bool) -> AgentStatus {
    AgentStatus {
        phase,
        conditions: vec![Condition {
            kind: ConditionKind::Ready,
            status: if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: "Test".into(),
            message: String::new(),
            time: "2026-01-01T00:00:00Z".into(),
        }],
        ..AgentStatus::default()
    }
}

/// The child's stdout, line by line, on a channel (a reader thread per child).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// Reads lines until one satisfies `wanted`, at most `within`; returns every line read.
fn read_until(
    lines: &mpsc::Receiver<String>,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = wanted(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("no wanted line within {within:?}; read: {seen:#?}"),
        }
    }
}

#[tokio::test]
async fn wait_exits_0_once_the_agent_is_running_and_1_naming_it_on_timeout() {
    let fleet = Fleet::new(PREFIX);
    fleet.apply_agent("w1");
    let store = fleet.store().await;
    store
        .put_status("w1", &status(Phase::Provisioning, false), None)
        .await
        .unwrap();

    let run = fleet.run(&["wait", "w1", "--for", "phase=Running", "--timeout", "2s"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "error: timed out after 2s waiting for phase=Running: w1 (Provisioning)"
    );

    let child = fleet
        .command(&["wait", "w1", "--for", "phase=Running", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wait");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store
        .put_status("w1", &status(Phase::Running, true), None)
        .await
        .unwrap();
    let out = child.wait_with_output().expect("wait output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "agent/w1 phase=Running"
    );

    let ready = fleet.run(&["wait", "w1", "--for", "condition=Ready", "--timeout", "5s"]);
    assert_eq!(ready.code, 0, "{}", ready.stderr);
    let ghost = fleet.run(&[
        "wait",
        "w1",
        "ghost",
        "--for",
        "condition=Ready",
        "--timeout",
        "1s",
    ]);
    assert_eq!(ghost.code, 1);
    assert!(
        ghost.stderr.ends_with(": ghost (not found)\n"),
        "{}",
        ghost.stderr
    );

    let bad = fleet.run(&["wait", "w1", "--for", "phase=Runing"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--for"), "{}", bad.stderr);
}

#[tokio::test]
async fn get_watch_prints_a_line_when_the_phase_changes() {
    let fleet = Fleet::new(PREFIX);
    fleet.apply_agent("watched");
    let store = fleet.store().await;
    let mut child = fleet
        .command(&["get", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn get --watch");
    let lines = lines_of(&mut child);
    let table = read_until(&lines, Duration::from_secs(10), |l| {
        l.starts_with("watched")
    });
    assert!(table[0].starts_with("AGENT ID"), "{table:?}");
    assert!(table[1].contains("Pending"), "{table:?}");

    store
        .put_status("watched", &status(Phase::Running, true), None)
        .await
        .unwrap();
    let changed = read_until(&lines, Duration::from_secs(10), |l| {
        l.contains("phase Pending -> Running")
    });
    let line = changed.last().unwrap();
    assert!(line.starts_with("watched"), "{line}");
    assert!(line.contains("ready - -> True"), "{line}");

    fleet.apply_agent("another");
    read_until(&lines, Duration::from_secs(10), |l| {
        l.starts_with("another") && l.ends_with("added")
    });
    let status = terminate(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

/// A revision whose agent container logs with `awslogs` to `group`, registered on moto.
async fn register_revision(family: &str, group: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(&local_aws::sdk_config().await);
    let container = ContainerDefinition::builder()
        .name("agent")
        .image("openclaw/openclaw:test")
        .memory_reservation(512)
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", group)
                .options("awslogs-region", "us-east-1")
                .options("awslogs-stream-prefix", "agent")
                .build()
                .unwrap(),
        )
        .build();
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container)
        .cpu("512")
        .memory("1024")
        .send()
        .await
        .unwrap()
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .unwrap()
}

async fn put_lines(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    lines: &[&str],
) {
    logs.create_log_stream()
        .log_group_name(group)
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
    let mut request = logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream);
    for (i, line) in lines.iter().enumerate() {
        request = request.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i64::try_from(i).unwrap())
                .message(*line)
                .build()
                .unwrap(),
        );
    }
    request.send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_prints_the_tasks_lines_and_follows_a_replacement_task() {
    let fleet = Fleet::new(PREFIX);
    fleet.apply_agent("talker");
    let group = format!("/clawfleet/{}/agents", fleet.table);
    let revision = register_revision(&fleet.table, &group).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&local_aws::sdk_config().await);
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let task = |id: &str| {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task/{}/{id}",
            fleet.table
        )
    };
    put_lines(
        &logs,
        &group,
        "agent/agent/first0001",
        &["booting", "listening on 8080"],
    )
    .await;
    let store = fleet.store().await;
    let running = |task_arn: String| AgentStatus {
        cluster: Some(fleet.table.clone()),
        task_arn: Some(task_arn),
        task_definition_arn: Some(revision.clone()),
        ..status(Phase::Running, true)
    };
    store
        .put_status("talker", &running(task("first0001")), None)
        .await
        .unwrap();

    assert_eq!(
        fleet.ok(&["logs", "talker"]),
        "booting\nlistening on 8080\n"
    );
    assert_eq!(
        fleet.ok(&["logs", "talker", "--tail", "1"]),
        "listening on 8080\n"
    );
    assert_eq!(
        fleet.ok(&["logs", "talker", "--since", "10m"]),
        "booting\nlistening on 8080\n"
    );
    let unknown = fleet.run(&["logs", "ghost"]);
    assert_eq!(unknown.code, 1);
    assert_eq!(unknown.stderr.trim(), "error: agent ghost: not found");

    let mut child = fleet
        .command(&["logs", "talker", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    let lines = lines_of(&mut child);
    read_until(&lines, Duration::from_secs(10), |l| {
        l == "listening on 8080"
    });

    // The controller replaces the task: the status names the new one, which logs to its stream.
    put_lines(
        &logs,
        &group,
        "agent/agent/second002",
        &["booting again", "replacement ready"],
    )
    .await;
    store
        .put_status("talker", &running(task("second002")), None)
        .await
        .unwrap();
    let read = read_until(&lines, Duration::from_secs(15), |l| {
        l == "replacement ready"
    });
    assert!(read.contains(&"booting again".to_owned()), "{read:?}");
    let status = terminate(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}
