//! `clawfleet-bench`: the controller against moto behind a proxy that throttles, pages and
//! fails like AWS ([`proxy`]). Three scenarios, each on a development stack of its own (a new
//! cluster, file system and table, the proxy's buckets full again, as a fresh account):
//!
//! 1. Cold start of N agents on a file system that already holds other teams' access points,
//!    against the RegisterTaskDefinition floor; per-agent calls; one idle resync against its
//!    target; console write to RunTask; peak RSS.
//! 2. The same cold start while a competing client spends a share of the RegisterTaskDefinition
//!    bucket: the floor is what is left of it.
//! 3. A cold start with no faults, then another with a share of all calls failing (half before
//!    acting, half after, the answer lost): the ratio of times, and duplicates.
//!
//! See docs/benchmarks.md.

mod call;
mod paging;
mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use clap::{Parser, ValueEnum};
use cloud::{Aws, Calls, Limits};
use controller::metrics::Metrics;
use controller::runtime::{Config, Controller};
use spec::render::{Settings, TaskRole};
use spec::{AgentDocument, Phase};

// The controller's allocator in production (the `clawfleet` binary), so that the RSS and the
// CPU measured here are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use store::Store;
use store::stream::{DynamoStream, Position, Watcher};
use tokio::time::Instant;

use crate::proxy::Proxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    ColdStart,
    Competing,
    Faults,
}

#[derive(Debug, Parser)]
#[command(
    about = "Benchmarks clawfleet's controller against moto behind a proxy that throttles, pages and fails like AWS"
)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Agents in the cold start (scenarios 1 and 2).
    #[arg(long, default_value_t = 60)]
    agents: usize,
    /// Other teams' access points on the file system before the cold start (scenario 1).
    #[arg(long, default_value_t = 240)]
    foreign_access_points: usize,
    /// Console writes timed to their RunTask (scenario 1).
    #[arg(long, default_value_t = 10)]
    writes: usize,
    /// Controller workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Page size of ListTasks, ListTaskDefinitions, DescribeAccessPoints and ListSecrets
    /// (AWS: 100; 0 passes moto's single page through).
    #[arg(long, default_value_t = proxy::AWS_PAGE_SIZE)]
    page_size: usize,
    /// Share of the RegisterTaskDefinition bucket a competing client spends (scenario 2).
    #[arg(long, default_value_t = 0.3)]
    competitor_share: f64,
    /// Share of all AWS and DynamoDB calls answered with a 500 (scenario 3).
    #[arg(long, default_value_t = 0.2)]
    fault_rate: f64,
    /// Agents in each cold start of scenario 3.
    #[arg(long, default_value_t = 30)]
    fault_agents: usize,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 16)]
    seed: u64,
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

/// Calls by (service, operation), every outcome, and how many were throttled or failed.
fn by_operation(calls: &Calls) -> BTreeMap<(String, String), (u64, u64, u64)> {
    let mut out: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    for ((service, operation, outcome), n) in calls.snapshot() {
        let entry = out.entry((service, operation)).or_default();
        entry.0 += n;
        match outcome.as_str() {
            "throttled" => entry.1 += n,
            "error" => entry.2 += n,
            _ => {}
        }
    }
    out
}

fn print_per_agent(title: &str, calls: &Calls, agents: usize) {
    println!(
        "\n{title}\n\n| service | operation | calls | per agent | throttled | errors |\n| --- | --- | --- | --- | --- | --- |"
    );
    let n = agents.max(1) as f64;
    let mut total = 0;
    for ((service, operation), (all, throttled, errors)) in by_operation(calls) {
        total += all;
        println!(
            "| {service} | {operation} | {all} | {:.2} | {throttled} | {errors} |",
            all as f64 / n
        );
    }
    println!("| all | | {total} | {:.2} | | |", total as f64 / n);
}

fn print_calls(title: &str, calls: &Calls) {
    println!("\n{title}\n\n| service | operation | outcome | calls |\n| --- | --- | --- | --- |");
    for ((service, operation, outcome), n) in calls.snapshot() {
        println!("| {service} | {operation} | {outcome} | {n} |");
    }
}

/// The sum of a counter family in the Prometheus text, over the series whose labels contain
/// `with`.
fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One installation of the controller on a development stack of its own, behind the proxy.
struct Installation {
    controller: Arc<Controller>,
    /// The controller's calls (every client, DynamoDB included).
    calls: Calls,
    /// The benchmark's own view of the table, straight to moto: not counted, never failed.
    table: Store,
    /// Straight to moto, for counting what exists.
    moto_aws: Aws,
    moto: aws_config::SdkConfig,
    settings: Settings,
    template: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    watch: tokio::task::JoinHandle<()>,
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::from_keys(
            "testing", "testing", None,
        ))
        .load()
        .await
}

impl Installation {
    async fn start(args: &Args, moto: &str, proxy_url: &str) -> Self {
        let name = local_aws::unique("bench");
        let out = std::process::Command::new(
            std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into()),
        )
        .arg(local_aws::repo_root().join("tools/moto/dev_stack.py"))
        .args(["--endpoint", moto, "--name", &name])
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
        let settings = Settings {
            subnets: var("CLAWFLEET_SUBNETS")
                .split(',')
                .map(str::to_owned)
                .collect(),
            security_groups: vec![var("CLAWFLEET_SECURITY_GROUPS")],
            secret_prefix: format!("/{name}/agents/"),
            // The production default: a task role per agent.
            task_role: TaskRole::PerAgent {
                permissions_boundary: var("CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY"),
            },
            installation: name.trim_start_matches("bench-").chars().take(16).collect(),
            ..Settings::new(&var("CLAWFLEET_CLUSTER"), &var("CLAWFLEET_FILE_SYSTEM_ID"))
        };
        let template = var("CLAWFLEET_TEMPLATE_TASK_DEFINITION");
        let proxied = sdk(proxy_url).await;
        let moto = sdk(moto).await;
        let calls = Calls::default();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&proxied)
            .interceptor(calls.clone())
            .build();
        let table_name = local_aws::unique("bench");
        let table = Store::new(aws_sdk_dynamodb::Client::new(&moto), &table_name);
        table
            .bootstrap()
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let store = Store::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &table_name);
        let aws = Aws::counted(&proxied, &settings, &calls);
        let metrics = Arc::new(Metrics::new(&calls));
        let controller = Controller::new(
            aws,
            store.clone(),
            settings.clone(),
            Config {
                template: template.clone(),
                workers: args.workers,
                resync_interval: Duration::from_secs(60),
                max_concurrent_replacements: 10,
                recovery_days: spec::render::DEFAULT_SECRET_RECOVERY_DAYS,
                iam_drift_interval: Duration::from_secs(3600),
                iam_role_quota: 1000,
                relist_interval: Duration::from_secs(600),
            },
            Arc::new(Limits::default()),
            metrics,
            None,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(Arc::clone(&controller).run(async move {
            let _ = stopped.await;
        }));
        // The stream is read through the proxy too: its calls are DynamoDB calls.
        let feed = DynamoStream::of(
            &store,
            aws_sdk_dynamodbstreams::Client::from_conf(
                aws_sdk_dynamodbstreams::config::Builder::from(&proxied)
                    .interceptor(calls.clone())
                    .build(),
            ),
        )
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
        let watch = tokio::spawn(Arc::clone(&controller).watch(Watcher::new(
            feed,
            Position::Latest,
            Default::default(),
        )));
        // The first resync (an empty fleet) and the stream's first poll.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Self {
            controller,
            calls,
            table,
            moto_aws: Aws::new(&moto, &settings),
            moto,
            settings,
            template,
            stop: Some(stop),
            watch,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.watch.abort();
        // Let in-flight reconciles end before the next scenario's clock starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Other teams' access points: untagged by clawfleet, under a path of their own.
    async fn add_foreign_access_points(&self, n: usize) {
        let efs = aws_sdk_efs::Client::new(&self.moto);
        for i in 0..n {
            efs.create_access_point()
                .file_system_id(&self.settings.file_system_id)
                .client_token(format!("foreign-{i}"))
                .root_directory(
                    aws_sdk_efs::types::RootDirectory::builder()
                        .path(format!("/other-team/{i}"))
                        .build(),
                )
                .tags(
                    aws_sdk_efs::types::Tag::builder()
                        .key("team")
                        .value("other")
                        .build()
                        .unwrap_or_else(|e| fail(e.to_string())),
                )
                .send()
                .await
                .unwrap_or_else(|e| fail(format!("CreateAccessPoint (foreign): {e}")));
        }
    }

    async fn is_running(&self, id: &str) -> bool {
        self.table.get(id).await.is_ok_and(|agent| {
            agent
                .and_then(|a| a.status)
                .is_some_and(|s| s.phase == Phase::Running)
        })
    }

    /// Writes `ids` as the CLI would and waits until every one is Running; returns the time
    /// and the curve of agents Running over time.
    async fn cold_start(&self, ids: &[String]) -> (f64, Vec<(f64, usize)>) {
        let started = Instant::now();
        for id in ids {
            let spec = AgentDocument {
                agent_id: Some(id.clone()),
                client_id: Some("bench".into()),
                ..AgentDocument::default()
            }
            .validate()
            .unwrap_or_else(|e| fail(e.to_string()));
            self.table
                .apply(&spec, "cli")
                .await
                .unwrap_or_else(|e| fail(e.to_string()));
        }
        let mut curve = Vec::new();
        let mut last_report = Instant::now();
        // Each poll reads only the agents not yet seen Running (one Query each): a Scan of the
        // whole table takes moto half a second at the end, which the measured time would add.
        let mut waiting: Vec<&String> = ids.iter().collect();
        loop {
            let mut still = Vec::with_capacity(waiting.len());
            for id in waiting {
                if !self.is_running(id).await {
                    still.push(id);
                }
            }
            waiting = still;
            let n = ids.len() - waiting.len();
            curve.push((started.elapsed().as_secs_f64(), n));
            if n == ids.len() {
                return (started.elapsed().as_secs_f64(), curve);
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  {:>5.0}s: {n}/{} Running",
                    started.elapsed().as_secs_f64(),
                    ids.len()
                );
                last_report = Instant::now();
            }
            if started.elapsed() > Duration::from_secs(1800) {
                fail("cold start did not finish within 30 minutes".into());
            }
            // Finely near the end, whose poll granularity is added to the measured time;
            // coarsely before, so that the polls' Queries do not compete for moto with the
            // controller's calls.
            let pause = if waiting.len() > 8 { 500 } else { 50 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// What exists in moto beyond one per agent: tasks not stopped, access points, revisions.
    async fn leftovers(&self) -> (usize, usize, usize) {
        let fleet = self
            .moto_aws
            .observe_fleet(&self.template, &self.settings, &cloud::Recorded::default())
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let mut extra = (0, 0, 0);
        for agent in fleet.agents.values() {
            extra.0 += agent
                .tasks
                .iter()
                .filter(|t| !t.is_stopped())
                .count()
                .saturating_sub(1);
            extra.1 += agent.access_points.len().saturating_sub(1);
            extra.2 += agent.older_revisions.len();
        }
        extra
    }

    fn reconcile_errors(&self) -> f64 {
        metric_sum(
            &self.controller.metrics().render(),
            "controller_runtime_reconcile_errors_total",
            "",
        )
    }
}

/// The floor of a cold start of `n` agents: RegisterTaskDefinition, one per new agent, at what
/// the bucket holds now and then refills, less what a competitor takes.
fn floor(n: usize, tokens: f64, rate: f64, competitor_share: f64) -> f64 {
    (n as f64 - tokens.floor()).max(0.0) / (rate * (1.0 - competitor_share))
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    ids.sort();
    ids
}

/// Where a cold start's time went: when the first and the last of each create took effect,
/// from the first spec written.
fn print_timeline(proxy: &Proxy, started: Instant) {
    for operation in [
        "CreateSecret",
        "CreateAccessPoint",
        "RegisterTaskDefinition",
        "RunTask",
    ] {
        if let Some((first, last)) = proxy.first_and_last(operation) {
            println!(
                "| {operation}: first, last took effect | {:.2} s, {:.2} s |",
                first.duration_since(started).as_secs_f64(),
                last.duration_since(started).as_secs_f64()
            );
        }
    }
}

fn print_cold_start(seconds: f64, floor: f64, proxy: &proxy::Stats) {
    println!("| measure | value |\n| --- | --- |");
    println!("| seconds until all Running | {seconds:.1} |");
    println!("| floor | {floor:.1} s |");
    println!(
        "| share of the floor's rate (floor / time) | {:.2} |",
        if seconds > 0.0 { floor / seconds } else { 0.0 }
    );
    println!(
        "| throttled responses | {} {:?} |",
        proxy.throttled_total(),
        proxy.throttled
    );
    println!("| listing pages served | {:?} |", proxy.pages);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let moto = local_aws::endpoint();
    let proxy = Proxy::new(&moto, args.page_size, args.seed).unwrap_or_else(|e| fail(e));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(format!("proxy: {e}")));
    let proxy_url = format!(
        "http://{}",
        listener
            .local_addr()
            .unwrap_or_else(|e| fail(format!("proxy: {e}")))
    );
    let router = proxy.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let wall = Instant::now();

    println!(
        "# clawfleet benchmark\n\nagents: {}, foreign access points: {}, page size: {}, workers: {}, per-agent task roles",
        args.agents, args.foreign_access_points, args.page_size, args.workers
    );
    let run = |s: Scenario| args.scenario == Scenario::All || args.scenario == s;

    if run(Scenario::ColdStart) {
        cold_start_scenario(&args, &moto, &proxy_url, &proxy).await;
    }
    if run(Scenario::Competing) {
        competing_scenario(&args, &moto, &proxy_url, &proxy).await;
    }
    if run(Scenario::Faults) {
        faults_scenario(&args, &moto, &proxy_url, &proxy).await;
    }
    println!(
        "\n## Peak RSS\n\n{:.1} MiB (this process: controllers, proxy and the benchmark's own bookkeeping); wall time {:.0} s",
        peak_rss_mib(),
        wall.elapsed().as_secs_f64()
    );
}

async fn cold_start_scenario(args: &Args, moto: &str, proxy_url: &str, proxy: &Arc<Proxy>) {
    let fleet = Installation::start(args, moto, proxy_url).await;
    fleet
        .add_foreign_access_points(args.foreign_access_points)
        .await;
    proxy.reset();
    fleet.calls.reset();
    let ids = ids("cold", args.agents);
    let floor = floor(
        ids.len(),
        proxy.register_tokens(),
        proxy.register_rate(),
        0.0,
    );
    let started = Instant::now();
    let (seconds, _) = fleet.cold_start(&ids).await;
    let stats = proxy.stats();
    println!(
        "\n## 1. Cold start of {} agents, {} access points on the file system in all\n",
        ids.len(),
        ids.len() + args.foreign_access_points
    );
    print_cold_start(seconds, floor, &stats);
    print_timeline(proxy, started);
    println!("| reconcile errors | {} |", fleet.reconcile_errors());
    print_per_agent(
        "Calls during the cold start (the stream's polls included):",
        &fleet.calls,
        ids.len(),
    );

    // One idle resync, in the steady state: the first after the cold start, a full round,
    // reads the whole table (the view of it was cold, or its statuses all changed) and plans
    // every agent whose status changed; the one measured follows it, as the next would with
    // nothing changed: a light round (the running tasks' listing). A full round with nothing
    // changed, the relist every `--relist-interval`, is measured after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.controller.relist();
    fleet
        .controller
        .resync()
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pages = |n: usize, per: usize| n.div_ceil(per).max(1);
    let access_points = ids.len() + args.foreign_access_points;
    let target = 3 * pages(ids.len(), 100) + pages(access_points, 100) + pages(ids.len(), 1000) + 2;
    println!(
        "\n### One idle resync over {} converged agents\n\nTarget: 3·⌈N/100⌉ + ⌈A/100⌉ + ⌈R/1000⌉ + 2 = {target} reads, a listing costing at least one page. Process CPU includes the stream watch's polls.",
        ids.len(),
    );
    for round in ["light", "full (the relist)"] {
        if round != "light" {
            fleet.controller.relist();
        }
        fleet.calls.reset();
        let cpu = cpu_seconds();
        let enqueued = fleet
            .controller
            .resync()
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let cpu = cpu_seconds() - cpu;
        let reads: u64 = fleet
            .calls
            .snapshot()
            .iter()
            .filter(|((_, op, _), _)| !cloud::calls::is_mutating(op) && op != "GetRecords")
            .filter(|((service, op, _), _)| {
                !(service == "DynamoDB Streams"
                    || op == "DescribeStream"
                    || op == "GetShardIterator")
            })
            .map(|(_, n)| n)
            .sum();
        println!(
            "\n{round} round: agents enqueued: {enqueued}; reads: {reads}; process CPU during it: {:.0} ms",
            cpu * 1000.0
        );
        print_calls(
            "Calls (the stream's polls in the same seconds included):",
            &fleet.calls,
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Console writes to RunTask.
    let raw = aws_sdk_dynamodb::Client::new(&fleet.moto);
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let mut latencies = Vec::new();
    for i in 0..args.writes {
        let id = format!("write-{i:03}");
        let written = Instant::now();
        raw.put_item()
            .table_name(fleet.table.table())
            .item("agent_id", s(&id))
            .item("record", s("spec"))
            .item("client_id", s("bench"))
            .send()
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let started_by = spec::render::started_by(&id);
        let deadline = written + Duration::from_secs(120);
        let ran = loop {
            if let Some(at) = proxy.run_task_of(&started_by) {
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
        "\n### Console write to RunTask ({} writes, one after another)\n",
        latencies.len()
    );
    println!("| p50 | p99 | max |\n| --- | --- | --- |");
    println!(
        "| {:.2} s | {:.2} s | {:.2} s |",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );
    fleet.stop().await;
}

async fn competing_scenario(args: &Args, moto: &str, proxy_url: &str, proxy: &Arc<Proxy>) {
    let fleet = Installation::start(args, moto, proxy_url).await;
    proxy.reset();
    fleet.calls.reset();
    let ids = ids("shared", args.agents);
    let floor = floor(
        ids.len(),
        proxy.register_tokens(),
        proxy.register_rate(),
        args.competitor_share,
    );
    proxy.start_competitor(args.competitor_share);
    let (seconds, _) = fleet.cold_start(&ids).await;
    let stats = proxy.stats();
    proxy.reset();
    println!(
        "\n## 2. Cold start of {} agents while another client spends {:.0} % of the RegisterTaskDefinition bucket\n",
        ids.len(),
        args.competitor_share * 100.0
    );
    print_cold_start(seconds, floor, &stats);
    println!(
        "| competitor: tokens taken, throttled | {}, {} |",
        stats.competitor_took, stats.competitor_throttled
    );
    println!(
        "| controller's throttled calls (SDK-counted) | {} |",
        fleet
            .calls
            .snapshot()
            .iter()
            .filter(|((_, _, outcome), _)| outcome == "throttled")
            .map(|(_, n)| n)
            .sum::<u64>()
    );
    println!("| reconcile errors | {} |", fleet.reconcile_errors());
    fleet.stop().await;
}

async fn faults_scenario(args: &Args, moto: &str, proxy_url: &str, proxy: &Arc<Proxy>) {
    let mut rows = Vec::new();
    for (label, rate) in [("clean", 0.0), ("faults", args.fault_rate)] {
        let fleet = Installation::start(args, moto, proxy_url).await;
        proxy.reset();
        fleet.calls.reset();
        proxy.set_fault_rate(rate);
        let ids = ids(label, args.fault_agents);
        let (seconds, _) = fleet.cold_start(&ids).await;
        proxy.set_fault_rate(0.0);
        let stats = proxy.stats();
        let leftovers = fleet.leftovers().await;
        let sdk_errors: u64 = fleet
            .calls
            .snapshot()
            .iter()
            .filter(|((_, _, o), _)| o == "error")
            .map(|(_, n)| n)
            .sum();
        let registers = fleet.calls.total(|_, op| op == "RegisterTaskDefinition");
        rows.push((
            label,
            seconds,
            stats,
            leftovers,
            sdk_errors,
            registers,
            fleet.controller.queue_stats().retries,
            fleet.reconcile_errors(),
        ));
        fleet.stop().await;
    }
    println!(
        "\n## 3. Cold start of {} agents, clean and with {:.0} % of all AWS and DynamoDB calls failing\n",
        args.fault_agents,
        args.fault_rate * 100.0
    );
    println!(
        "| run | seconds | 500s before acting | 500s after acting | token replays | SDK-counted errors | RegisterTaskDefinition calls | queue retries | reconcile errors | creates beyond one per agent | left over (tasks, access points, revisions) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (label, seconds, stats, leftovers, sdk_errors, registers, retries, errors) in &rows {
        println!(
            "| {label} | {seconds:.1} | {} | {} | {} | {sdk_errors} | {registers} | {retries} | {errors} | {:?} | {leftovers:?} |",
            stats.faults_before,
            stats.faults_after,
            stats.replays,
            stats.duplicates()
        );
    }
    if let [(_, clean, ..), (_, faulty, ..)] = rows.as_slice() {
        println!(
            "\ntime under faults / clean time: {:.2}",
            if *clean > 0.0 { faulty / clean } else { 0.0 }
        );
    }
}

/// CPU time of this process so far (user and system), from /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
