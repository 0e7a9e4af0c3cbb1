//! What the end-to-end test binaries share: the `clawfleet` binary cargo built, and a runner
//! that points it at one table on the shared local AWS.
// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The binary cargo built next to this test (target/<profile>/clawfleet).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join("clawfleet");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        bin.display()
    );
    bin
}

/// The repository's example manifests, as a path argument.
pub fn examples() -> String {
    local_aws::repo_root()
        .join("examples")
        .display()
        .to_string()
}

/// How one run of the binary ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The binary, run against one isolated table on the shared local AWS.
pub struct Fleet {
    pub table: String,
    endpoint: String,
    env: Vec<(OsString, OsString)>,
}

impl Fleet {
    /// A fresh table named after `prefix`, bootstrapped.
    pub fn new(prefix: &str) -> Self {
        let fleet = Self::unbootstrapped(prefix);
        let run = fleet.run(&["bootstrap"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        fleet
    }

    /// A fresh table named after `prefix`, not made yet.
    pub fn unbootstrapped(prefix: &str) -> Self {
        Self {
            table: local_aws::unique(prefix),
            endpoint: local_aws::endpoint(),
            env: Vec::new(),
        }
    }

    /// One more variable for every run, set after (so able to override) the table and AWS ones.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// `clawfleet ARGS` with the table, the local AWS, test credentials and the extra variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env("CLAWFLEET_TABLE", &self.table)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `clawfleet ARGS` with an empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    /// Runs `clawfleet ARGS` with `stdin` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clawfleet");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("clawfleet output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `clawfleet ARGS`, which must succeed, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "clawfleet {args:?}: {}", run.stderr);
        run.stdout
    }

    /// A fresh bootstrapped table on a development stack of its own (tools/moto/dev_stack.py),
    /// with the secret prefix scoped to it, so the controller's commands run as in the demo.
    pub fn on_dev_stack(prefix: &str) -> Self {
        let name = local_aws::unique(prefix);
        let mut fleet =
            Self::new(prefix).env("CLAWFLEET_SECRET_PREFIX", format!("/{name}/agents/"));
        for (k, v) in local_aws::dev_stack(&name) {
            fleet = fleet.env(k, v);
        }
        fleet
    }

    /// The value of an extra variable (one set with [`Fleet::env`]).
    pub fn var(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string_lossy().into_owned())
    }

    /// The local AWS endpoint the binary talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A DynamoDB client for the local AWS, to read or write the table behind the binary's back.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&local_aws::sdk_config().await)
    }
}

/// Sends SIGTERM and waits for the process to exit, at most `within`.
pub fn terminate(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process did not exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A free loopback address to listen on.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// One HTTP/1.1 GET of `path` on `addr`, the whole response (status line, headers, body);
/// `None` when nothing answers.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
