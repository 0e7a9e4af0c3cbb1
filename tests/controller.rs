//! `clawfleet controller` as a process: ready after its first resync, JSON logs that carry
//! the agent id, and SIGTERM finishing in-flight work before a clean exit.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Fleet;

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn the_controller_serves_health_logs_agent_ids_and_stops_cleanly_on_sigterm() {
    let name = local_aws::unique("proc");
    let out = Command::new(std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(local_aws::repo_root().join("tools/moto/dev_stack.py"))
        .args(["--endpoint", &local_aws::endpoint(), "--name", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut fleet = Fleet::new("proc").env("CLAWFLEET_SECRET_PREFIX", format!("/{name}/agents/"));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            fleet = fleet.env(k, v);
        }
    }
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

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped_by = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < stopped_by,
            "the controller did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
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
