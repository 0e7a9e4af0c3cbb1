//! `clawfleet serve` as a process at RUST_LOG=trace: a tenant's walk through the README's curl
//! section, one access line per request, no secret value or token in any log line or in the
//! table, and SIGTERM finishing cleanly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Fleet;

/// One HTTP/1.1 exchange; returns the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn sha256_hex(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `clawfleet serve` on a free port, its stderr drained on a thread.
struct Server {
    child: Option<std::process::Child>,
    addr: SocketAddr,
    metrics: SocketAddr,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    fn start(fleet: &Fleet, args: &[&str], log_level: &str) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let listen = addr.to_string();
        let metrics = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let metrics_addr = metrics.to_string();
        let mut all = vec![
            "serve",
            "--listen",
            &listen,
            "--metrics-addr",
            &metrics_addr,
        ];
        all.extend_from_slice(args);
        let mut child = fleet
            .command(&all)
            .env("CLAWFLEET_SECRET_PREFIX", format!("/{}/", fleet.table))
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Trace logs are large: drain them while the server runs, or it blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).unwrap();
            text
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            addr,
            metrics,
            logs: Some(logs),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_hashes_come_from_a_secret_and_a_broken_document_stops_serve_with_its_entry() {
    let fleet = Fleet::new("serve-secret");
    let secrets = aws_sdk_secretsmanager::Client::new(&local_aws::sdk_config().await);
    let name = format!("/{}/api-tokens", fleet.table);
    secrets
        .create_secret()
        .name(&name)
        .secret_string(format!(
            "- sha256: {}\n  tenant: acme\n",
            sha256_hex("tok-from-secret")
        ))
        .send()
        .await
        .unwrap();
    let mut server = Server::start(&fleet, &["--tokens-secret", &name], "warn");
    assert_eq!(
        http(server.addr, "GET", "/v1/agents", "tok-from-secret", None).0,
        200
    );
    assert_eq!(
        http(server.addr, "GET", "/v1/agents", "tok-other", None).0,
        401
    );
    let exit = support::terminate(server.child.as_mut().unwrap(), Duration::from_secs(20));
    assert!(exit.success(), "{exit}");

    let broken = format!("/{}/broken-tokens", fleet.table);
    secrets
        .create_secret()
        .name(&broken)
        .secret_string("- sha256: not-hex\n  tenant: acme\n")
        .send()
        .await
        .unwrap();
    let run = fleet.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-secret",
        &broken,
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim(),
        format!("error: secret {broken}: entry 1: sha256: must be 64 hex digits")
    );
    let run = fleet.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        "/nonexistent/tokens.yaml",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: --tokens-file /nonexistent/tokens.yaml: "),
        "{}",
        run.stderr
    );
    let run = fleet.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, 2, "no tokens, no server: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_id_key_comes_from_the_table_or_a_secret_and_a_short_one_stops_serve() {
    let fleet = Fleet::new("serve-idkey");
    let secrets = aws_sdk_secretsmanager::Client::new(&local_aws::sdk_config().await);
    let tokens = std::env::temp_dir().join(local_aws::unique("tokens"));
    std::fs::write(
        &tokens,
        format!("- sha256: {}\n  tenant: acme\n", sha256_hex("tok-acme")),
    )
    .unwrap();
    let tokens = tokens.to_str().unwrap();
    let short = format!("/{}/short-id-key", fleet.table);
    let long = format!("/{}/id-key", fleet.table);
    for (name, value) in [(&short, "too short"), (&long, &"k".repeat(48) as &str)] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let run = fleet.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        tokens,
        "--id-key-secret",
        &short,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!("error: --id-key-secret {short}: the id key has 9 bytes; at least 32 are needed")
    );
    let mut server = Server::start(
        &fleet,
        &["--tokens-file", tokens, "--id-key-secret", &long],
        "warn",
    );
    assert_eq!(
        http(server.addr, "GET", "/v1/agents", "tok-acme", None).0,
        200
    );
    let exit = support::terminate(server.child.as_mut().unwrap(), Duration::from_secs(20));
    assert!(exit.success(), "{exit}");
}

/// Polls `check` for up to 10 s.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tokens_added_or_revoked_in_the_file_take_effect_without_a_restart() {
    let fleet = Fleet::new("serve-refresh");
    let dir = std::env::temp_dir().join(local_aws::unique("tokens"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.yaml");
    let entry = |token: &str, tenant: &str| {
        format!("- sha256: {}\n  tenant: {tenant}\n", sha256_hex(token))
    };
    std::fs::write(&file, entry("tok-acme", "acme")).unwrap();
    let mut server = Server::start(
        &fleet,
        &[
            "--tokens-file",
            file.to_str().unwrap(),
            "--tokens-refresh",
            "200ms",
        ],
        "warn,clawfleet::commands::serve=info",
    );
    let status = |token: &str| http(server.addr, "GET", "/v1/agents", token, None).0;
    assert_eq!(status("tok-acme"), 200);
    assert_eq!(status("tok-globex"), 401);

    // A new tenant is onboarded.
    std::fs::write(
        &file,
        entry("tok-acme", "acme") + &entry("tok-globex", "globex"),
    )
    .unwrap();
    eventually("the added token was not picked up", || {
        status("tok-globex") == 200
    });
    // A broken edit changes nothing: the tokens in force stay.
    std::fs::write(&file, "- sha256: nonsense\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(status("tok-acme"), 200);
    assert_eq!(status("tok-globex"), 200);
    // A revoked token stops working.
    std::fs::write(&file, entry("tok-globex", "globex")).unwrap();
    eventually("the revoked token still works", || {
        status("tok-acme") == 401
    });
    assert_eq!(status("tok-globex"), 200);
    // A document giving one hash twice is refused whole: the tokens in force stay.
    std::fs::write(
        &file,
        entry("tok-globex", "globex")
            + &format!("- sha256: {}\n  admin: true\n", sha256_hex("tok-globex")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(status("tok-globex"), 200);
    // An empty list is deliberate: it revokes everyone.
    std::fs::write(&file, "[]\n").unwrap();
    eventually("the empty list did not revoke every token", || {
        status("tok-globex") == 401
    });

    let exit = support::terminate(server.child.as_mut().unwrap(), Duration::from_secs(20));
    assert!(exit.success(), "{exit}");
    let logs = server.logs.take().unwrap().join().unwrap();
    assert!(logs.contains("tokens reloaded"), "{logs}");
    assert!(logs.contains("entries 1 and 2: the same sha256"), "{logs}");
    assert!(
        logs.contains("tokens not reloaded; the ones in force stay: ")
            && logs.contains("entry 1: sha256: must be 64 hex digits"),
        "{logs}"
    );
    assert!(
        !logs.contains("tok-acme") && !logs.contains(&sha256_hex("tok-acme")),
        "{logs}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_drives_an_agent_over_http_and_no_secret_reaches_a_log_or_the_table() {
    let fleet = Fleet::new("serve");
    let token = "tok-acme-7f3e9a21c4";
    let secret = "sk-live-DO-NOT-LOG-58d1f2";
    let dir = std::env::temp_dir().join(local_aws::unique("tokens"));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("- sha256: {}\n  tenant: acme\n", sha256_hex(token)),
    )
    .unwrap();

    let mut server = Server::start(
        &fleet,
        &["--tokens-file", tokens.to_str().unwrap()],
        "trace",
    );
    let (mut child, addr) = (server.child.take().unwrap(), server.addr);

    // The README's walk: create, set secrets, start, watch status, stop.
    let (status, body) = http(
        addr,
        "POST",
        "/v1/agents",
        token,
        Some(
            r#"{"agent_id": "acme-walk", "desired_state": "stopped", "secret_keys": ["OPENAI_API_KEY"]}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    let put = format!(r#"{{"OPENAI_API_KEY": "{secret}"}}"#);
    let (status, body) = http(
        addr,
        "PUT",
        "/v1/agents/acme-walk/secrets",
        token,
        Some(&put),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(secret));
    let (status, body) = http(addr, "POST", "/v1/agents/acme-walk/start", token, None);
    assert_eq!(status, 202, "{body}");
    let (status, body) = http(addr, "GET", "/v1/agents/acme-walk/status", token, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"phase\""), "{body}");
    let (status, _) = http(addr, "POST", "/v1/agents/acme-walk/stop", token, None);
    assert_eq!(status, 202);
    let (status, _) = http(
        addr,
        "GET",
        "/v1/agents/acme-walk/secrets",
        "not-a-token",
        None,
    );
    assert_eq!(status, 401);

    // The same requests, counted for Prometheus on the metrics address, with no token.
    let (status, metrics) = http(server.metrics, "GET", "/metrics", "", None);
    assert_eq!(status, 200);
    for line in [
        r#"clawfleet_api_requests_total{method="POST",route="/v1/agents",status="201"} 1"#,
        r#"clawfleet_api_requests_total{method="PUT",route="/v1/agents/{agent_id}/secrets",status="200"} 1"#,
        r#"clawfleet_api_requests_total{method="GET",route="/v1/agents/{agent_id}/secrets",status="401"} 1"#,
        r#"clawfleet_api_request_duration_seconds_count{method="GET",route="/v1/agents/{agent_id}/status"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains("clawfleet_aws_requests_total{service="),
        "{metrics}"
    );
    assert!(
        !metrics.contains("acme-walk"),
        "agent ids are not label values"
    );

    let exit = support::terminate(&mut child, Duration::from_secs(20));
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let logs = server.logs.take().unwrap().join().unwrap();

    assert!(
        logs.contains("GetSecretValue") || logs.contains("CreateSecret"),
        "trace logs were captured"
    );
    assert!(!logs.contains(secret), "a secret value reached the logs");
    assert!(!logs.contains(token), "a token reached the logs");
    let access: Vec<&str> = logs.lines().filter(|l| l.contains(" access:")).collect();
    assert_eq!(
        access.len(),
        6,
        "one access line per request:\n{}",
        access.join("\n")
    );
    assert!(
        access[1].contains("method=PUT")
            && access[1].contains("route=\"/v1/agents/{agent_id}/secrets\""),
        "{}",
        access[1]
    );
    assert!(
        access[1].contains("status=200")
            && access[1].contains("tenant=\"acme\"")
            && access[1].contains("latency_ms="),
        "{}",
        access[1]
    );
    assert!(
        access[5].contains("status=401") && access[5].contains("tenant=\"-\""),
        "{}",
        access[5]
    );

    // The value is in Secrets Manager, and nowhere in the table.
    let config = local_aws::sdk_config().await;
    let value = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(format!("/{}/acme-walk/secrets", fleet.table))
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    assert!(value.contains(secret));
    let items = fleet
        .dynamodb()
        .await
        .scan()
        .table_name(&fleet.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(!items.is_empty());
    assert!(
        !format!("{items:?}").contains(secret),
        "a secret value reached the table"
    );
    std::fs::remove_dir_all(dir).ok();
}
