//! `clawfleet-bench`: the controller against moto behind a proxy that throttles ECS like AWS.
//!
//! Measures (a) a cold start of N agents against the RegisterTaskDefinition floor, (b) one idle
//! resync over the converged fleet, (c) the time from a console write to its RunTask, and (d)
//! the peak RSS of this process (controller and proxy). See docs/benchmarks.md.

mod proxy;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use cloud::Limits;
use cloud::{Aws, Calls};
use controller::metrics::Metrics;
use controller::runtime::{Config, Controller};
use spec::render::Settings;
use spec::{AgentDocument, Phase};
use store::Store;
use store::stream::{DynamoStream, Position, Watcher};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    about = "Benchmarks clawfleet's controller against moto behind an AWS-like throttling proxy"
)]
struct Args {
    /// Agents in the cold start.
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// Console writes timed to their RunTask.
    #[arg(long, default_value_t = 50)]
    writes: usize,
    /// Controller workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn print_calls(title: &str, calls: &Calls) {
    println!("\n{title}\n\n| service | operation | outcome | calls |\n| --- | --- | --- | --- |");
    for ((service, operation, outcome), n) in calls.snapshot() {
        println!("| {service} | {operation} | {outcome} | {n} |");
    }
    println!(
        "\nmutating calls (AWS and DynamoDB writes): {}",
        calls.mutating()
    );
}

async fn running(store: &Store, ids: &[String]) -> usize {
    match store.list().await {
        Ok(agents) => agents
            .iter()
            .filter(|a| ids.contains(&a.agent_id))
            .filter(|a| a.status.as_ref().is_some_and(|s| s.phase == Phase::Running))
            .count(),
        Err(_) => 0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let moto = local_aws::endpoint();
    let name = local_aws::unique("bench");
    let out = Command::new(std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(local_aws::repo_root().join("tools/moto/dev_stack.py"))
        .args(["--endpoint", &moto, "--name", &name])
        .output()
        .unwrap_or_else(|e| fail(format!("dev_stack.py: {e}")));
    if !out.status.success() {
        fail(format!(
            "dev_stack.py: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let var = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| fail(format!("dev stack: {k} missing")))
    };

    let proxy = proxy::Proxy::new(&moto).unwrap_or_else(|e| fail(e));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(format!("proxy: {e}")));
    let proxy_addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(format!("proxy: {e}")));
    let router = proxy.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{proxy_addr}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::from_keys(
            "testing", "testing", None,
        ))
        .load()
        .await;
    let settings = Settings {
        subnets: var("CLAWFLEET_SUBNETS")
            .split(',')
            .map(str::to_owned)
            .collect(),
        security_groups: vec![var("CLAWFLEET_SECURITY_GROUPS")],
        secret_prefix: format!("/{name}/agents/"),
        ..Settings::new(&var("CLAWFLEET_CLUSTER"), &var("CLAWFLEET_FILE_SYSTEM_ID"))
    };
    let calls = Calls::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(calls.clone())
        .build();
    let table = local_aws::unique("bench");
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &table);
    store
        .bootstrap()
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    // The benchmark's own reads and writes go uncounted: only the controller's calls are shown.
    let bench_store = Store::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let aws = Aws::counted(&config, &settings, &calls);
    let metrics = Arc::new(Metrics::new(&calls));
    let controller = Controller::new(
        aws,
        store.clone(),
        settings.clone(),
        Config {
            template: var("CLAWFLEET_TEMPLATE_TASK_DEFINITION"),
            workers: args.workers,
            resync_interval: Duration::from_secs(60),
            max_concurrent_replacements: 10,
            recovery_days: spec::render::DEFAULT_SECRET_RECOVERY_DAYS,
            iam_drift_interval: std::time::Duration::from_secs(3600),
            iam_role_quota: 1000,
        },
        Arc::new(Limits::default()),
        metrics,
        None,
    );
    tokio::spawn(Arc::clone(&controller).run(std::future::pending::<()>()));
    let feed = DynamoStream::of(&store, aws_sdk_dynamodbstreams::Client::new(&config))
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    tokio::spawn(Arc::clone(&controller).watch(Watcher::new(
        feed,
        Position::Latest,
        Default::default(),
    )));
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "# clawfleet benchmark\n\nagents: {}, console writes: {}, workers: {}",
        args.agents, args.writes, args.workers
    );

    // (a) Cold start.
    let ids: Vec<String> = (0..args.agents).map(|i| format!("cold-{i:04}")).collect();
    calls.reset();
    let started = Instant::now();
    for id in &ids {
        let spec = AgentDocument {
            agent_id: Some(id.clone()),
            client_id: Some("bench".into()),
            ..AgentDocument::default()
        }
        .validate()
        .unwrap_or_else(|e| fail(e.to_string()));
        bench_store
            .apply(&spec, "cli")
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
    }
    let mut last_report = Instant::now();
    loop {
        let n = running(&bench_store, &ids).await;
        if n == ids.len() {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "  {:>5.0}s: {n}/{} Running",
                started.elapsed().as_secs_f64(),
                ids.len()
            );
            last_report = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(3600) {
            fail("cold start did not finish within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cold = started.elapsed().as_secs_f64();
    let floor = ids.len().saturating_sub(20) as f64;
    println!("\n## (a) Cold start\n");
    println!("| measure | value |\n| --- | --- |");
    println!("| seconds until all Running | {cold:.1} |");
    println!("| floor (RegisterTaskDefinition: 20 burst, then 1/s) | {floor:.1} |");
    println!(
        "| ratio | {:.2} |",
        if floor > 0.0 { cold / floor } else { 0.0 }
    );
    println!(
        "| throttled responses | {} |",
        proxy.throttled.load(Ordering::Relaxed)
    );
    print_calls("Calls during the cold start:", &calls);

    // (b) One idle resync.
    tokio::time::sleep(Duration::from_secs(2)).await;
    calls.reset();
    let enqueued = controller
        .resync()
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "\n## (b) One idle resync over {} converged agents\n\nagents enqueued: {enqueued}",
        ids.len()
    );
    print_calls("Calls:", &calls);

    // (c) Console write to RunTask.
    let raw = aws_sdk_dynamodb::Client::new(&config);
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let mut latencies = Vec::new();
    for i in 0..args.writes {
        let id = format!("write-{i:03}");
        let written = Instant::now();
        raw.put_item()
            .table_name(store.table())
            .item("agent_id", s(&id))
            .item("record", s("spec"))
            .item("client_id", s("bench"))
            .send()
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let started_by = spec::render::started_by(&id);
        let deadline = written + Duration::from_secs(120);
        let ran = loop {
            let found = proxy
                .run_tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|(_, by)| *by == started_by)
                .map(|(at, _)| *at);
            if let Some(at) = found {
                break at;
            }
            if Instant::now() > deadline {
                fail(format!("{id}: no RunTask within 120 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        latencies.push(ran.duration_since(written).as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "\n## (c) Console write to RunTask ({} writes, one after another)\n",
        latencies.len()
    );
    println!("| p50 | p99 | max |\n| --- | --- | --- |");
    println!(
        "| {:.2} s | {:.2} s | {:.2} s |",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );

    // (d) Memory.
    println!(
        "\n## (d) Peak RSS\n\n{:.1} MiB (this process: controller, proxy and the benchmark's own bookkeeping)",
        peak_rss_mib()
    );
}
