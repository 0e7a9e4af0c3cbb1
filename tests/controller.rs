//! `clawfleet controller` as a process: ready after its first resync, JSON logs that carry
//! the agent id, and SIGTERM finishing in-flight work before a clean exit.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Fleet, free_addr, http_get};

#[test]
fn the_controller_serves_health_logs_agent_ids_and_stops_cleanly_on_sigterm() {
    let fleet = Fleet::on_dev_stack("proc");
    let agent = local_aws::unique("agent");
    let run = fleet.run_with_stdin(
        &["apply", "-f", "-"],
        &format!("agent_id: {agent}\nclient_id: acme\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    let addr = free_addr();
    let mut child = fleet
        .command(&[
            "--log-format",
            "json",
            "controller",
            "--resync-interval",
            "1s",
            "--metrics-addr",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = false;
    while Instant::now() < deadline {
        if http_get(addr, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "/readyz answers 200 after the first resync");
    assert!(
        http_get(addr, "/healthz")
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    let mut running = false;
    while Instant::now() < deadline {
        if fleet.ok(&["get", &agent]).contains("Running") {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running, "the agent goes Running under the controller");
    // describe tells the story as events, as `kubectl describe` does.
    let described = fleet.ok(&["describe", &agent]);
    let events = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section: {described}"));
    for reason in [
        "AccessPointCreated",
        "TaskRoleCreated",
        "SecretCreated",
        "RevisionRegistered",
        "TaskLaunched",
        // The development stack's template has a health check: Ready waits for HEALTHY.
        "Healthy",
    ] {
        assert!(events.contains(reason), "{reason} missing: {described}");
    }

    let status = support::terminate(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit after SIGTERM: {status}");

    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let acting: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "acting")
        .collect();
    assert!(!acting.is_empty(), "{logs}");
    for line in &acting {
        let text = line.to_string();
        assert!(
            text.contains("agent_id"),
            "every line of a reconcile carries agent_id: {text}"
        );
    }
    assert!(logs.contains("shutting down"), "{logs}");
    let _ = std::io::stdout().flush();
}

/// Starts `clawfleet controller` on `fleet`, serving health on a free port.
fn spawn_controller(fleet: &Fleet, replica: &str) -> (std::process::Child, SocketAddr) {
    let addr = free_addr();
    let child = fleet
        .command(&[
            "controller",
            "--resync-interval",
            "1s",
            "--lease-duration",
            "2s",
            "--lease-renew",
            "500ms",
            "--replica-id",
            replica,
            "--metrics-addr",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, addr)
}

#[test]
fn a_controller_killed_mid_convergence_and_restarted_converges_without_duplicates() {
    let fleet = Fleet::on_dev_stack("kill");
    let ids: Vec<String> = (0..20)
        .map(|i| format!("{}-{i:02}", local_aws::unique("k")))
        .collect();
    let manifests: String = ids
        .iter()
        .map(|id| format!("agent_id: {id}\nclient_id: acme\n---\n"))
        .collect();
    let run = fleet.run_with_stdin(&["apply", "-f", "-"], &manifests);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let (mut first, _) = spawn_controller(&fleet, "first");
    // Kill it while it converges: once some, not all, agents have a status.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = fleet.ok(&["get"]);
        let started = table
            .lines()
            .skip(1)
            .filter(|l| !l.contains("Pending"))
            .count();
        if started >= 3 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, _) = spawn_controller(&fleet, "second");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all_running = false;
    while Instant::now() < deadline {
        let table = fleet.ok(&["get"]);
        if table
            .lines()
            .skip(1)
            .filter(|l| l.contains("Running"))
            .count()
            == ids.len()
        {
            all_running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        Command::new("kill")
            .args(["-TERM", &second.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    second.wait().unwrap();
    assert!(all_running, "{}", fleet.ok(&["get"]));

    // Exactly one task, access point, secret and revision per agent.
    let plan = fleet.run(&["plan", "--all"]);
    assert_eq!(
        plan.code, 0,
        "converged, nothing left to do: {}",
        plan.stdout
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = local_aws::sdk_config().await;
        let ecs = aws_sdk_ecs::Client::new(&config);
        let cluster = fleet_env(&fleet, "CLAWFLEET_CLUSTER");
        let mut live: Vec<String> = Vec::new();
        let mut token = None;
        loop {
            let page = ecs
                .list_tasks()
                .cluster(&cluster)
                .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            live.extend(page.task_arns().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let described = ecs
            .describe_tasks()
            .cluster(&cluster)
            .set_tasks(Some(live))
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
            .await
            .unwrap();
        for id in &ids {
            let n = described
                .tasks()
                .iter()
                .filter(|t| {
                    t.tags().iter().any(|g| {
                        g.key() == Some("clawfleet:agent-id") && g.value() == Some(id.as_str())
                    })
                })
                .count();
            assert_eq!(n, 1, "{id} has {n} live tasks");
        }
        let efs = aws_sdk_efs::Client::new(&config);
        let aps = efs
            .describe_access_points()
            .file_system_id(fleet_env(&fleet, "CLAWFLEET_FILE_SYSTEM_ID"))
            .send()
            .await
            .unwrap();
        for id in &ids {
            let n = aps
                .access_points()
                .iter()
                .filter(|a| {
                    a.tags()
                        .iter()
                        .any(|g| g.key() == "clawfleet:agent-id" && g.value() == id.as_str())
                })
                .count();
            assert_eq!(n, 1, "{id} has {n} access points");
        }
    });
}

fn fleet_env(fleet: &Fleet, key: &str) -> String {
    let cmd = fleet.command(&[]);
    cmd.get_envs()
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        .last()
        .unwrap_or_default()
}
