//! Test support: one moto_server per test run, and SDK configuration that reaches it.
//!
//! The README's test command starts a single server and passes its address in
//! `CLAWFLEET_TEST_AWS_ENDPOINT`; a test binary run on its own starts a private server, which
//! exits with the binary. Tests share a server, so they isolate themselves with [`unique`]
//! names and never reset it.
#![allow(clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The variable that carries a shared server's address.
pub const ENDPOINT_VAR: &str = "CLAWFLEET_TEST_AWS_ENDPOINT";

static PRIVATE: OnceLock<String> = OnceLock::new();

/// The moto endpoint for this test process: the shared one, or a private one started now.
///
/// # Panics
/// When no server is configured and none can be started; the message says how to fix it.
#[must_use]
pub fn endpoint() -> String {
    if let Ok(shared) = std::env::var(ENDPOINT_VAR)
        && !shared.is_empty()
    {
        return shared;
    }
    PRIVATE.get_or_init(start_private).clone()
}

/// The repository root, for tests that run the project's tools.
#[must_use]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_private() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port for moto");
    let launcher = repo_root().join("tools/moto/launcher.py");
    let python = std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(&launcher)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", launcher.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = ([127, 0, 0, 1], port).into();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // The child is not waited for: it exits when this process does (see launcher.py).
            return format!("http://127.0.0.1:{port}");
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "moto exited with {status}; install it with `tools/moto/start.sh` or \
                 `pip install -r tools/moto/requirements.txt`"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not listen on 127.0.0.1:{port} within 30 s");
}

/// SDK configuration for the local AWS: its endpoint, a fixed region and test credentials.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::from_keys("testing", "testing", None))
        .load()
        .await
}

/// A name no other test in this run uses: `prefix-` plus 10 random lowercase characters.
#[must_use]
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let suffix: String = (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26)))
        .collect();
    format!("{prefix}-{suffix}")
}

/// Creates a development stack named `name` on the local AWS with the project's own tooling
/// (`tools/moto/dev_stack.py`: VPC with DNS hostnames, private subnets, security group, ECS
/// cluster, EFS file system, template task definition) and returns the variables it prints:
/// `CLAWFLEET_CLUSTER`, `CLAWFLEET_SUBNETS`, `CLAWFLEET_SECURITY_GROUPS`,
/// `CLAWFLEET_FILE_SYSTEM_ID`, `CLAWFLEET_TEMPLATE_TASK_DEFINITION`, ...
///
/// # Panics
/// When the tooling fails; the message carries its error.
#[must_use]
pub fn dev_stack(name: &str) -> std::collections::BTreeMap<String, String> {
    let python = std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(repo_root().join("tools/moto/dev_stack.py"))
        .args(["--endpoint", &endpoint(), "--name", name])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} tools/moto/dev_stack.py: {e}"));
    assert!(
        out.status.success(),
        "dev_stack.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
