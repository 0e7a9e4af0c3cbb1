//! Every metric the alert rules and the Grafana dashboard query is exported by a running
//! controller or API: a rule on a metric that does not exist is an alert that never fires.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Fleet, free_addr, http_get};

const PREFIXES: [&str; 4] = [
    "controller_runtime_",
    "workqueue_",
    "clawfleet_",
    "leader_election_",
];

/// Waits until `addr` answers `path` with 200 and returns the body.
fn scrape(addr: SocketAddr, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(response) = http_get(addr, path)
            && response.starts_with("HTTP/1.1 200")
        {
            return response;
        }
        assert!(Instant::now() < deadline, "{addr}{path} never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The metric names a PromQL-bearing file uses.
fn used_metrics(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| PREFIXES.iter().any(|p| word.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_exported_by_a_running_controller_or_api() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut used = BTreeSet::new();
    for file in [
        "deploy/monitoring/clawfleet.rules.yaml",
        "deploy/monitoring/clawfleet.dashboard.json",
    ] {
        used.extend(used_metrics(
            &std::fs::read_to_string(root.join(file)).expect(file),
        ));
    }
    assert!(
        used.len() > 10,
        "metrics found in the rules and dashboard: {used:?}"
    );

    let name = local_aws::unique("mon");
    let mut fleet = Fleet::new("mon").env("CLAWFLEET_SECRET_PREFIX", format!("/{name}/agents/"));
    for (k, v) in local_aws::dev_stack(&name) {
        fleet = fleet.env(k, v);
    }
    let controller_addr = free_addr();
    let _controller = Killed(
        fleet
            .command(&[
                "controller",
                "--resync-interval",
                "1s",
                "--metrics-addr",
                &controller_addr.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tokens = std::env::temp_dir().join(format!("{name}-tokens.yaml"));
    std::fs::write(
        &tokens,
        format!("- sha256: {}\n  tenant: acme\n", "ab".repeat(32)),
    )
    .unwrap();
    let (api_addr, api_metrics) = (free_addr(), free_addr());
    let _api = Killed(
        fleet
            .command(&[
                "serve",
                "--listen",
                &api_addr.to_string(),
                "--metrics-addr",
                &api_metrics.to_string(),
                "--tokens-file",
                tokens.to_str().unwrap(),
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // One request, so that the API's request series exist; nothing is needed of the controller.
    scrape(api_addr, "/healthz");
    let exported = format!(
        "{}\n{}",
        scrape(controller_addr, "/metrics"),
        scrape(api_metrics, "/metrics")
    );
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            !exported.lines().any(|line| {
                line.strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "used by deploy/monitoring but not exported: {missing:?}"
    );
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn probe_exits_0_on_a_healthy_endpoint_and_1_otherwise() {
    let fleet = Fleet::unbootstrapped("probe");
    // Something that answers 200 on /healthz and 503 on /readyz: a standby controller.
    let name = local_aws::unique("probe");
    let mut stack = Fleet::new("probe").env("CLAWFLEET_SECRET_PREFIX", format!("/{name}/agents/"));
    for (k, v) in local_aws::dev_stack(&name) {
        stack = stack.env(k, v);
    }
    let addr = free_addr();
    let _controller = Killed(
        stack
            .command(&["controller", "--metrics-addr", &addr.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    scrape(addr, "/healthz");
    let healthy = fleet.run(&["probe", &format!("http://{addr}/healthz")]);
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    let missing = fleet.run(&["probe", &format!("http://{addr}/nothing-here")]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
    let closed = fleet.run(&["probe", &format!("http://{}/healthz", free_addr())]);
    assert_eq!(closed.code, 1, "{}", closed.stderr);
    let wrong = fleet.run(&["probe", "https://127.0.0.1/healthz"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
}
