//! The controller running against moto: it converges agents, corrects drift made behind its
//! back on the next resync, counts it in metrics, and an idle resync costs only reads.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloud::Limits;
use cloud::{Aws, Calls};
use controller::leader::Elector;
use controller::metrics::Metrics;
use controller::runtime::{Config, Controller};
use plan::observed::Task;
use spec::render::{self, Settings};
use spec::{AgentDocument, AgentSpec, Phase};
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running {
    elector: Option<Arc<Elector>>,
    lease_task: Option<tokio::task::JoinHandle<()>>,
    controller: Arc<Controller>,
    calls: Calls,
    store: Store,
    settings: Settings,
    aws: Aws,
    ecs: aws_sdk_ecs::Client,
    efs: aws_sdk_efs::Client,
    metrics_addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The development stack and a table, shared by the controllers of one test.
struct Stack {
    vars: BTreeMap<String, String>,
    settings: Settings,
    table: String,
    /// The controller's `relist_interval`: zero, a full round at every resync, unless a test
    /// is about the light ones.
    relist: Duration,
}

async fn stack() -> Stack {
    let name = local_aws::unique("rt");
    let vars = local_aws::dev_stack(&name);
    let settings = Settings {
        subnets: vars["CLAWFLEET_SUBNETS"]
            .split(',')
            .map(str::to_owned)
            .collect(),
        security_groups: vec![vars["CLAWFLEET_SECURITY_GROUPS"].clone()],
        secret_prefix: format!("/{name}/agents/"),
        ..Settings::new(
            &vars["CLAWFLEET_CLUSTER"],
            &vars["CLAWFLEET_FILE_SYSTEM_ID"],
        )
    };
    let table = local_aws::unique("rt");
    let config = local_aws::sdk_config().await;
    Store::new(aws_sdk_dynamodb::Client::new(&config), &table)
        .bootstrap()
        .await
        .unwrap();
    Stack {
        vars,
        settings,
        table,
        relist: Duration::ZERO,
    }
}

async fn start(resync: Duration) -> Running {
    launch(&stack().await, resync, None).await
}

/// A controller on `stack`; with `lease = Some((holder, duration, renew))` it elects a leader.
async fn launch(
    stack: &Stack,
    resync: Duration,
    lease: Option<(&str, Duration, Duration)>,
) -> Running {
    let settings = stack.settings.clone();
    let config = local_aws::sdk_config().await;
    let calls = Calls::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(calls.clone())
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), &stack.table);
    let aws = Aws::counted(&config, &settings, &calls);
    let metrics = Arc::new(Metrics::new(&calls));
    let elector = lease.map(|(holder, duration, renew)| {
        Elector::new(
            store.clone(),
            holder,
            duration,
            renew,
            Some(Arc::clone(&metrics)),
        )
    });
    let controller = Controller::new(
        aws.clone(),
        store.clone(),
        settings.clone(),
        Config {
            template: stack.vars["CLAWFLEET_TEMPLATE_TASK_DEFINITION"].clone(),
            workers: 2,
            resync_interval: resync,
            max_concurrent_replacements: 10,
            recovery_days: 7,
            iam_drift_interval: std::time::Duration::from_secs(3600),
            iam_role_quota: 1000,
            relist_interval: stack.relist,
        },
        Arc::new(Limits::default()),
        metrics,
        elector.clone(),
    );
    let lease_task = elector
        .clone()
        .map(|e| tokio::spawn(e.run(std::future::pending::<()>())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let router = controller.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Arc::clone(&controller).run(async {
        let _ = stopped.await;
    }));
    Running {
        elector,
        lease_task,
        controller,
        calls,
        store,
        settings,
        aws,
        ecs: aws_sdk_ecs::Client::new(&config),
        efs: aws_sdk_efs::Client::new(&config),
        metrics_addr,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Running {
    /// As SIGKILL would: everything stops at once, the lease is not released.
    fn kill(mut self) {
        if let Some(t) = self.lease_task.take() {
            t.abort();
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    fn reconciles(&self) -> f64 {
        let text = self.controller.metrics().render();
        ["success", "requeue_after", "error"]
            .iter()
            .map(|r| {
                metric(
                    &text,
                    &format!(
                        "controller_runtime_reconcile_total{{controller=\"agent\",result=\"{r}\"}}"
                    ),
                )
            })
            .sum()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    async fn live_tasks(&self, agent_id: &str) -> Vec<Task> {
        let resources = self
            .aws
            .observe_agent(agent_id, None, None, &self.settings)
            .await
            .unwrap();
        resources.tasks.into_iter().filter(Task::is_live).collect()
    }

    async fn status(&self, agent_id: &str) -> Option<spec::AgentStatus> {
        self.store
            .get(agent_id)
            .await
            .unwrap()
            .and_then(|a| a.status)
    }

    /// Waits until the agent runs exactly one task other than `not`, and says so.
    /// Starts the stream watch, as `clawfleet controller` does, and lets its first poll fix
    /// its starting point at the stream's end.
    async fn follow_stream(&self) {
        use store::stream::{DynamoStream, Position, Watcher};
        let config = local_aws::sdk_config().await;
        let feed = DynamoStream::of(&self.store, aws_sdk_dynamodbstreams::Client::new(&config))
            .await
            .unwrap();
        tokio::spawn(Arc::clone(&self.controller).watch(Watcher::new(
            feed,
            Position::Latest,
            Default::default(),
        )));
        tokio::time::sleep(Duration::from_millis(800)).await;
    }

    async fn running_one_task(&self, agent_id: &str, not: Option<&str>) -> Task {
        for _ in 0..200 {
            let live = self.live_tasks(agent_id).await;
            let status = self.status(agent_id).await;
            if live.len() == 1
                && Some(live[0].arn.as_str()) != not
                && status.as_ref().is_some_and(|s| {
                    s.phase == Phase::Running && s.task_arn.as_deref() == Some(live[0].arn.as_str())
                })
            {
                return live[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{agent_id}: not running exactly one new task; live: {:?}",
            self.live_tasks(agent_id).await
        )
    }

    async fn scrape(&self) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }
}

fn agent(agent_id: &str) -> AgentSpec {
    AgentDocument {
        agent_id: Some(agent_id.into()),
        client_id: Some("acme".into()),
        ..AgentDocument::default()
    }
    .validate()
    .unwrap()
}

/// The value of one sample line, e.g. `metric(&text, "workqueue_depth{name=\"agent\"}")`.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_converges_agents_and_corrects_drift_behind_its_back() {
    let run = start(Duration::from_secs(1)).await;
    let ids = [local_aws::unique("agent"), local_aws::unique("agent")];
    for id in &ids {
        run.store.apply(&agent(id), "cli").await.unwrap();
    }
    let first = run.running_one_task(&ids[0], None).await;
    run.running_one_task(&ids[1], None).await;

    // A task stopped behind its back is replaced on the next resync.
    run.ecs
        .stop_task()
        .cluster(&run.settings.cluster)
        .task(&first.arn)
        .reason("chaos")
        .send()
        .await
        .unwrap();
    let second = run.running_one_task(&ids[0], Some(&first.arn)).await;

    // An access point deleted behind its back is recreated.
    let ap = run.status(&ids[0]).await.unwrap().access_point_id.unwrap();
    run.efs
        .delete_access_point()
        .access_point_id(&ap)
        .send()
        .await
        .unwrap();
    let mut recreated = None;
    for _ in 0..200 {
        let status = run.status(&ids[0]).await.unwrap();
        if status.access_point_id.as_deref().is_some_and(|id| id != ap)
            && status.phase == Phase::Running
        {
            recreated = status.access_point_id;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recreated = recreated.expect("the access point is recreated");
    let aps = run
        .efs
        .describe_access_points()
        .access_point_id(&recreated)
        .send()
        .await
        .unwrap();
    assert_eq!(
        aps.access_points()[0].root_directory().unwrap().path(),
        Some(format!("/agents/acme/{}", ids[0]).as_str())
    );
    // The task moved to a revision with the new access point.
    let third = run.running_one_task(&ids[0], Some(&second.arn)).await;

    // An extra task started by hand with clawfleet's tags is stopped.
    let want = render::run_task(&agent(&ids[0]), &run.settings, &third.task_definition_arn);
    let extra = run.aws.ecs.run_task(&want, "by-hand").await.unwrap();
    let mut stopped = false;
    for _ in 0..200 {
        let live = run.live_tasks(&ids[0]).await;
        if live.len() == 1 && !live.iter().any(|t| t.arn == extra.arn) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the extra task is stopped");

    let text = run.scrape().await;
    assert!(
        metric(
            &text,
            "controller_runtime_reconcile_total{controller=\"agent\",result=\"success\"}"
        ) >= 2.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "clawfleet_drift_corrections_total{resource=\"task\"}"
        ) >= 2.0,
        "restart and extra task: {text}"
    );
    assert!(
        metric(
            &text,
            "clawfleet_drift_corrections_total{resource=\"access_point\"}"
        ) >= 1.0,
        "{text}"
    );
    for histogram in [
        "controller_runtime_reconcile_time_seconds_count{controller=\"agent\"}",
        "workqueue_queue_duration_seconds_count{name=\"agent\"}",
        "workqueue_work_duration_seconds_count{name=\"agent\"}",
        "clawfleet_spec_to_running_seconds_count",
    ] {
        assert!(metric(&text, histogram) > 0.0, "{histogram}: {text}");
    }
    for operation in [
        "RunTask",
        "DescribeTasks",
        "ListTasks",
        "CreateAccessPoint",
        "RegisterTaskDefinition",
        "PutItem",
    ] {
        assert!(
            text.contains(&format!("operation=\"{operation}\",outcome=\"success\"")),
            "clawfleet_aws_requests_total has {operation}: {text}"
        );
    }
    assert_eq!(
        metric(&text, "clawfleet_agents{phase=\"Running\"}"),
        2.0,
        "{text}"
    );
    // Converged: the queue drains.
    let mut depth = f64::MAX;
    for _ in 0..50 {
        depth = metric(&run.scrape().await, "workqueue_depth{name=\"agent\"}");
        if depth == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(depth, 0.0);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resync_over_converged_agents_makes_no_mutating_call_and_no_write() {
    // A resync interval longer than the test: resyncs are made by hand.
    let run = start(Duration::from_secs(3600)).await;
    let ids: Vec<String> = (0..3).map(|_| local_aws::unique("agent")).collect();
    for id in &ids {
        run.store.apply(&agent(id), "cli").await.unwrap();
        run.controller.enqueue(id);
    }
    for id in &ids {
        run.running_one_task(id, None).await;
    }
    // Let the last status writes land, then measure one resync.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.calls.reset();
    let enqueued = run.controller.resync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(enqueued, 0, "nothing to do for converged agents");
    // The one write is the fleet summary the admin console reads (one PutItem a resync).
    assert_eq!(run.calls.mutating(), 1, "{:?}", run.calls.snapshot());
    assert_eq!(
        run.calls
            .total(|service, op| service == "DynamoDB" && op == "PutItem"),
        1,
        "{:?}",
        run.calls.snapshot()
    );
    let snapshot = run.calls.snapshot();
    let mut by_operation: BTreeMap<&str, u64> = BTreeMap::new();
    for ((service, operation, _), n) in &snapshot {
        if service != "DynamoDB" {
            *by_operation.entry(operation.as_str()).or_default() += n;
        }
    }
    // moto answers every listing in one page, so with N agents, A access points and R roles
    // each ⌈·/100⌉ (⌈R/1000⌉) is 1: the template, one ListTasks (RUNNING: no stopped task is
    // listed, and none vanished), one DescribeTasks, DescribeAccessPoints, ListSecrets and
    // ListRoles. The revisions were listed by the controller's first resync, ten minutes ago
    // at most, so this one lists none; and no IAM drift read.
    assert_eq!(
        by_operation,
        BTreeMap::from([
            ("DescribeAccessPoints", 1),
            ("DescribeTaskDefinition", 1),
            ("DescribeTasks", 1),
            ("ListRoles", 1),
            ("ListSecrets", 1),
            ("ListTasks", 1),
        ]),
        "{snapshot:?}"
    );
    // 3·⌈N/100⌉ + ⌈A/100⌉ + ⌈R/1000⌉ + 2, every ceiling 1 here.
    let (pages_n, pages_a, pages_r) = (1, 1, 1);
    let target = 3 * pages_n + pages_a + pages_r + 2;
    assert!(by_operation.values().sum::<u64>() <= target);
    let summary = run.store.fleet_summary().await.unwrap().expect("written");
    assert_eq!(summary.agents, 3, "{summary:?}");
    assert_eq!(
        summary.phases.get("Running").copied().unwrap_or(0),
        summary.agents
    );
    assert_eq!(summary.not_ready_count, 0, "{summary:?}");
    // The next resync plans none of them: nothing changed since plans that found no work.
    assert_eq!(run.controller.resync().await.unwrap(), 0);
    let text = run.scrape().await;
    assert_eq!(
        metric(&text, "clawfleet_resync_agents_planned "),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "clawfleet_resync_agents_unchanged "),
        3.0,
        "{text}"
    );
    assert!(
        metric(&text, "clawfleet_resync_seconds_count ") >= 2.0,
        "{text}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_followed_an_idle_resync_reads_no_item_and_a_status_edit_reads_one() {
    let run = start(Duration::from_secs(3600)).await;
    run.follow_stream().await;
    let config = local_aws::sdk_config().await;
    let ids: Vec<String> = (0..2).map(|_| local_aws::unique("agent")).collect();
    for id in &ids {
        run.store.apply(&agent(id), "cli").await.unwrap();
    }
    for id in &ids {
        run.running_one_task(id, None).await;
    }
    let table_reads = |run: &Running| {
        let count = |op: &str| {
            run.calls
                .total(|service, operation| service == "DynamoDB" && operation == op)
        };
        (count("Scan"), count("Query"))
    };
    // The first resync reads the whole table (the view is cold); once the stream's records of
    // the last status writes are in, an idle resync reads no item at all. (A failed poll of
    // the stream makes the next resync read the whole table again: a few tries.)
    run.controller.resync().await.unwrap();
    let mut reads = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        run.calls.reset();
        assert_eq!(run.controller.resync().await.unwrap(), 0);
        reads.push(table_reads(&run));
        if reads.last() == Some(&(0, 0)) {
            break;
        }
    }
    assert_eq!(
        reads.last(),
        Some(&(0, 0)),
        "Scans and Queries by resync: {reads:?}"
    );

    // A status edited by hand: the stream shows it, and the next resync reads that agent
    // alone, sees the status is not what its plan writes, and enqueues it.
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    aws_sdk_dynamodb::Client::new(&config)
        .update_item()
        .table_name(run.store.table())
        .key("agent_id", s(&ids[0]))
        .key("record", s("status"))
        .update_expression("SET phase = :p")
        .expression_attribute_values(":p", s("Failed"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.calls.reset();
    assert_eq!(run.controller.resync().await.unwrap(), 1);
    // The resync's Query, and the reconcile's own of the agent it enqueued.
    let (scans, queries) = table_reads(&run);
    assert_eq!(scans, 0, "{:?}", run.calls.snapshot());
    assert!((1..=2).contains(&queries), "{:?}", run.calls.snapshot());
    let mut phase = None;
    for _ in 0..50 {
        phase = run.status(&ids[0]).await.map(|st| st.phase);
        if phase == Some(spec::Phase::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        phase,
        Some(spec::Phase::Running),
        "put back by the reconcile"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_relists_a_resync_lists_the_running_tasks_alone_and_relaunches_a_stopped_one() {
    let mut stack = stack().await;
    stack.relist = Duration::from_secs(3600);
    let run = launch(&stack, Duration::from_secs(3600), None).await;
    run.follow_stream().await;
    let ids: Vec<String> = (0..2).map(|_| local_aws::unique("agent")).collect();
    for id in &ids {
        run.store.apply(&agent(id), "cli").await.unwrap();
    }
    let mut tasks = Vec::new();
    for id in &ids {
        tasks.push(run.running_one_task(id, None).await);
    }
    // A full round (the view is cold), then light ones once the stream's records of the last
    // status writes are in: a template and a running-task listing, no item read.
    run.controller.resync().await.unwrap();
    // AWS's reads; the table's and the stream's are the other tests'.
    let reads = |run: &Running| {
        let mut calls: BTreeMap<String, u64> = BTreeMap::new();
        for ((service, operation, _), n) in run.calls.snapshot() {
            if !service.starts_with("DynamoDB") && !cloud::calls::is_mutating(&operation) {
                *calls.entry(operation).or_default() += n;
            }
        }
        calls
    };
    let light: BTreeMap<String, u64> = [
        ("DescribeTaskDefinition".to_owned(), 1),
        ("ListTasks".to_owned(), 1),
    ]
    .into();
    let mut seen = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        run.calls.reset();
        assert_eq!(run.controller.resync().await.unwrap(), 0);
        seen.push(reads(&run));
        if seen.last() == Some(&light) {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&light), "reads by resync: {seen:?}");

    // A task stopped behind its back, with no task event to say so: the next light round
    // sees it leave the listing and enqueues its agent alone, which relaunches it.
    run.ecs
        .stop_task()
        .cluster(&run.settings.cluster)
        .task(&tasks[0].arn)
        .reason("chaos")
        .send()
        .await
        .unwrap();
    run.calls.reset();
    assert_eq!(run.controller.resync().await.unwrap(), 1);
    // A light round still: no fleet listing (the reconcile it started reads by id).
    let after = reads(&run);
    for op in ["ListSecrets", "ListRoles"] {
        assert!(!after.contains_key(op), "{op} in {after:?}");
    }
    run.running_one_task(&ids[0], Some(&tasks[0].arn)).await;
    assert_eq!(run.live_tasks(&ids[1]).await.len(), 1);
    // A relist asked for: the next round lists the whole fleet again.
    run.controller.relist();
    run.calls.reset();
    run.controller.resync().await.unwrap();
    let full = reads(&run);
    for op in ["DescribeAccessPoints", "ListSecrets", "DescribeTasks"] {
        assert!(full.contains_key(op), "{op} in {full:?}");
    }
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_waiting_for_its_secrets_starts_when_a_writer_sets_them_without_a_resync() {
    let mut stack = stack().await;
    stack.relist = Duration::from_secs(3600);
    let run = launch(&stack, Duration::from_secs(3600), None).await;
    run.follow_stream().await;
    let id = local_aws::unique("agent");
    let spec = AgentDocument {
        agent_id: Some(id.clone()),
        client_id: Some("acme".into()),
        secret_keys: vec!["OPENAI_API_KEY".into()],
        ..AgentDocument::default()
    }
    .validate()
    .unwrap();
    run.store.apply(&spec, "cli").await.unwrap();
    let mut waiting = None;
    for _ in 0..100 {
        waiting = run.status(&id).await.filter(|s| {
            s.condition(spec::ConditionKind::Ready)
                .is_some_and(|c| c.reason == "WaitingForSecrets")
        });
        if waiting.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secret_arn = waiting
        .and_then(|s| s.secret_arn)
        .expect("waiting for its secrets, with its secret created");
    // A writer, as `clawfleet secrets set` and the API write values: under the agent's lock,
    // the value and the key names in the Description. Neither is a spec change; the lock's
    // release is what the stream shows.
    assert!(
        run.store
            .lock_secret(&id, "writer", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let secrets = aws_sdk_secretsmanager::Client::new(&local_aws::sdk_config().await);
    secrets
        .put_secret_value()
        .secret_id(&secret_arn)
        .secret_string(r#"{"OPENAI_API_KEY":"not-a-real-key"}"#)
        .send()
        .await
        .unwrap();
    secrets
        .update_secret()
        .secret_id(&secret_arn)
        .description(spec::render::secret_description(&["OPENAI_API_KEY".into()]))
        .send()
        .await
        .unwrap();
    run.store.unlock_secret(&id, "writer").await.unwrap();
    // No resync comes within the hour: the stream's record of the lock starts it.
    run.running_one_task(&id, None).await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_written_in_the_console_is_reconciled_within_two_seconds_without_a_resync() {
    // Five minutes between resyncs: only the stream can make this fast.
    let run = start(Duration::from_secs(300)).await;
    run.follow_stream().await;
    let config = local_aws::sdk_config().await;

    let id = local_aws::unique("agent");
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let written = std::time::Instant::now();
    dynamodb
        .put_item()
        .table_name(run.store.table())
        .item("agent_id", s(&id))
        .item("record", s("spec"))
        .item("client_id", s("acme"))
        .send()
        .await
        .unwrap();
    let mut reconciled = None;
    while written.elapsed() < Duration::from_secs(5) {
        if run.status(&id).await.is_some() {
            reconciled = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = reconciled.expect("the console write was reconciled");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    run.running_one_task(&id, None).await;

    // A status write (the controller's own, or anyone's) enqueues nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let adds = run.controller.queue_stats().adds;
    dynamodb
        .update_item()
        .table_name(run.store.table())
        .key("agent_id", s(&id))
        .key("record", s("status"))
        .update_expression("SET message = :m")
        .expression_attribute_values(":m", s("touched"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        run.controller.queue_stats().adds,
        adds,
        "a status write is not a reconcile trigger"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let stack = stack().await;
    let lease = |holder| Some((holder, Duration::from_secs(2), Duration::from_millis(400)));
    let a = launch(&stack, Duration::from_secs(1), lease("replica-a")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = launch(&stack, Duration::from_secs(1), lease("replica-b")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let a_leads = a.elector.as_ref().unwrap().is_leader();
    let b_leads = b.elector.as_ref().unwrap().is_leader();
    assert!(
        a_leads ^ b_leads,
        "exactly one leader: a={a_leads} b={b_leads}"
    );
    let (leader, standby) = if a_leads { (a, b) } else { (b, a) };
    assert_eq!(
        metric(
            &leader.controller.metrics().render(),
            "leader_election_master_status"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &standby.controller.metrics().render(),
            "leader_election_master_status"
        ),
        0.0
    );

    let first = local_aws::unique("agent");
    leader.store.apply(&agent(&first), "cli").await.unwrap();
    leader.running_one_task(&first, None).await;
    assert!(leader.reconciles() > 0.0);
    assert_eq!(standby.reconciles(), 0.0, "a standby reconciles nothing");

    // The leader dies without releasing its lease; the standby takes over once it expires.
    leader.kill();
    let second = local_aws::unique("agent");
    standby.store.apply(&agent(&second), "cli").await.unwrap();
    let started = std::time::Instant::now();
    standby.running_one_task(&second, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took over in {:?}",
        started.elapsed()
    );
    assert!(standby.elector.as_ref().unwrap().is_leader());
    for id in [&first, &second] {
        assert_eq!(
            standby.live_tasks(id).await.len(),
            1,
            "{id} never has two tasks"
        );
    }
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_makes_no_mutating_call_after_its_lease_deadline() {
    let stack = stack().await;
    let lease = Some(("paused", Duration::from_secs(2), Duration::from_millis(400)));
    let run = launch(&stack, Duration::from_secs(3600), lease).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elector = run.elector.clone().unwrap();
    assert!(elector.is_leader());
    let id = local_aws::unique("agent");
    run.store.apply(&agent(&id), "cli").await.unwrap();
    run.controller.enqueue(&id);
    let task = run.running_one_task(&id, None).await;
    // Freeze its renewals, as a SIGSTOP or a network partition would.
    if let Some(t) = run.lease_task.as_ref() {
        t.abort();
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        !elector.is_leader(),
        "no renewal: the lease is over on its own clock"
    );
    run.calls.reset();
    // Work arrives: its task is stopped behind its back, and it is asked to act.
    run.ecs
        .stop_task()
        .cluster(&run.settings.cluster)
        .task(&task.arn)
        .send()
        .await
        .unwrap();
    run.controller.enqueue(&id);
    let _ = run.controller.resync().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(run.calls.mutating(), 0, "{:?}", run.calls.snapshot());
    // Even a direct call through its fenced gate is refused before it is sent.
    let gate: cloud::SharedGate = Arc::new(controller::leader::Fence {
        limits: Arc::new(Limits::default()),
        elector: Arc::clone(&elector),
    });
    let want = render::run_task(&agent(&id), &run.settings, &task.task_definition_arn);
    let refused = run
        .aws
        .clone()
        .with_gate(&gate)
        .ecs
        .run_task(&want, "after-deadline")
        .await;
    assert!(refused.is_err_and(|e| e.has_code("NotLeader")));
    assert_eq!(run.calls.mutating(), 0);
    run.kill();
}

/// The documented ECS task state change sample, as the event of `task` of `agent_id` in the
/// stack's cluster, at `version`.
fn task_event(
    cluster_arn: &str,
    task_arn: &str,
    agent_id: &str,
    last_status: &str,
    version: u64,
) -> String {
    let sample = include_str!("../fixtures/ecs-task-state-change.json");
    let mut event: serde_json::Value = serde_json::from_str(sample).unwrap();
    let detail = &mut event["detail"];
    detail["clusterArn"] = cluster_arn.into();
    detail["taskArn"] = task_arn.into();
    detail["startedBy"] = render::started_by(agent_id).into();
    detail["lastStatus"] = last_status.into();
    detail["desiredStatus"] = "STOPPED".into();
    detail["stoppedReason"] = "Essential container in task exited".into();
    detail["version"] = version.into();
    event.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_stops_is_relaunched_within_five_seconds_of_its_event_without_a_resync() {
    let stack = stack().await;
    // Five minutes between resyncs: only the event can make this fast.
    let run = launch(&stack, Duration::from_secs(300), None).await;
    let config = local_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = stack.vars["CLAWFLEET_TASK_EVENTS_QUEUE"].clone();
    tokio::spawn(
        Arc::clone(&run.controller)
            .consume_task_events(cloud::sqs::Queue::new(sqs.clone(), &queue_url)),
    );
    let id = local_aws::unique("agent");
    run.store.apply(&agent(&id), "cli").await.unwrap();
    run.controller.enqueue(&id);
    let first = run.running_one_task(&id, None).await;
    let cluster_arn = run
        .ecs
        .describe_clusters()
        .clusters(&run.settings.cluster)
        .send()
        .await
        .unwrap()
        .clusters()[0]
        .cluster_arn()
        .unwrap()
        .to_owned();

    // The task dies; ECS says so through EventBridge.
    run.ecs
        .stop_task()
        .cluster(&run.settings.cluster)
        .task(&first.arn)
        .reason("Essential container in task exited")
        .send()
        .await
        .unwrap();
    let stopped = std::time::Instant::now();
    let event = task_event(&cluster_arn, &first.arn, &id, "STOPPED", 7);
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(&event)
        .send()
        .await
        .unwrap();
    let second = run.running_one_task(&id, Some(&first.arn)).await;
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(5), "relaunched after {took:?}");

    // The same event again (at least once delivery), an older one, and a malformed one
    // change nothing and are counted.
    let launches = |run: &Running| {
        run.calls
            .total(|service, op| service == "ECS" && op == "RunTask")
    };
    let before = launches(&run);
    for body in [
        event.clone(),
        task_event(&cluster_arn, &first.arn, &id, "STOPPING", 6),
        "{not an event".to_owned(),
    ] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let mut dropped = 0.0;
    for _ in 0..100 {
        let text = run.controller.metrics().render();
        dropped = metric(
            &text,
            "clawfleet_task_events_dropped_total{reason=\"stale\"}",
        ) + metric(
            &text,
            "clawfleet_task_events_dropped_total{reason=\"malformed\"}",
        );
        if dropped >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, 3.0, "two stale and one malformed event counted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(launches(&run), before, "no relaunch for a stale event");
    assert_eq!(run.live_tasks(&id).await, vec![second.clone()]);
    let text = run.controller.metrics().render();
    assert_eq!(
        metric(
            &text,
            "clawfleet_task_events_total{last_status=\"STOPPED\"}"
        ),
        1.0
    );
    // moto reports no stoppedAt, so clawfleet_task_relaunch_seconds is tested on the fake
    // (interruption.rs).
    // Every message was deleted once handled.
    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    let left = left
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .cloned();
    assert_eq!(left.as_deref(), Some("0"));
    run.stop().await;
}

#[tokio::test]
async fn the_documented_sample_sent_with_put_events_reaches_the_queue_through_the_rule() {
    let stack = stack().await;
    let config = local_aws::sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let cluster_arn = ecs
        .describe_clusters()
        .clusters(&stack.settings.cluster)
        .send()
        .await
        .unwrap()
        .clusters()[0]
        .cluster_arn()
        .unwrap()
        .to_owned();
    let sample = include_str!("../fixtures/ecs-task-state-change.json");
    let mut event: serde_json::Value = serde_json::from_str(sample).unwrap();
    event["detail"]["clusterArn"] = cluster_arn.clone().into();
    let events = aws_sdk_eventbridge::Client::new(&config);
    let put = |detail: serde_json::Value| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("aws.ecs")
            .detail_type("ECS Task State Change")
            .detail(detail.to_string())
            .build()
    };
    let mut other = event["detail"].clone();
    other["clusterArn"] = "arn:aws:ecs:us-east-1:123456789012:cluster/someone-elses".into();
    events
        .put_events()
        .entries(put(event["detail"].clone()))
        .entries(put(other))
        .send()
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = cloud::sqs::Queue::new(sqs, &stack.vars["CLAWFLEET_TASK_EVENTS_QUEUE"]);
    let mut received = Vec::new();
    for _ in 0..5 {
        received.extend(queue.receive(1).await.unwrap());
        if !received.is_empty() {
            break;
        }
    }
    assert_eq!(
        received.len(),
        1,
        "only the agents' cluster's event: {received:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(
        body["detail"]["clusterArn"],
        serde_json::Value::String(cluster_arn)
    );
    assert_eq!(body["detail-type"], "ECS Task State Change");
    assert_eq!(body["detail"]["version"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_is_woken_with_run_task_within_a_second_and_activity_enqueues_nothing() {
    let run = start(Duration::from_secs(300)).await;
    run.follow_stream().await;
    let config = local_aws::sdk_config().await;

    // Created an hour ago and never used: idle at once, with everything but the task made.
    let id = local_aws::unique("idle");
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let an_hour_ago =
        spec::format_rfc3339(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    dynamodb
        .put_item()
        .table_name(run.store.table())
        .item("agent_id", s(&id))
        .item("record", s("spec"))
        .item("client_id", s("acme"))
        .item("idle_stop_after", s("5m"))
        .item("created_at", s(&an_hour_ago))
        .send()
        .await
        .unwrap();
    let mut idle = None;
    for _ in 0..100 {
        if let Some(status) = run.status(&id).await
            && status.phase == Phase::Idle
            && status.task_definition_arn.is_some()
        {
            idle = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = idle.expect("the agent goes Idle");
    assert_eq!(
        idle.condition(spec::ConditionKind::Ready).unwrap().reason,
        "Idle"
    );
    assert!(
        idle.events
            .iter()
            .any(|e| e.reason == "Idle" && e.kind == spec::EventType::Normal),
        "{:?}",
        idle.events
    );
    assert!(run.live_tasks(&id).await.is_empty());

    // Activity alone enqueues nothing (it only moves the idle timer).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let adds = run.controller.queue_stats().adds;
    let agent = run.store.get(&id).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(run.store.record_activity(&agent, now - 600).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        run.controller.queue_stats().adds,
        adds,
        "activity is not a trigger"
    );

    // A wake: RunTask within a second, through the stream, with no new revision.
    let revisions = run
        .calls
        .total(|s, o| s == "ECS" && o == "RegisterTaskDefinition");
    let asked = std::time::Instant::now();
    run.store
        .request_wake(&id, &spec::now_rfc3339_millis())
        .await
        .unwrap();
    let mut launched = None;
    while asked.elapsed() < Duration::from_secs(5) {
        if run.calls.total(|s, o| s == "ECS" && o == "RunTask") > 0 {
            launched = Some(asked.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = launched.expect("the wake launched a task");
    assert!(
        took < Duration::from_secs(1),
        "RunTask {took:?} after the wake"
    );
    assert_eq!(
        run.calls
            .total(|s, o| s == "ECS" && o == "RegisterTaskDefinition"),
        revisions
    );
    run.running_one_task(&id, None).await;
    let text = run.controller.metrics().render();
    assert_eq!(metric(&text, "clawfleet_wakes_total"), 1.0, "{text}");
    assert_eq!(
        metric(&text, "clawfleet_wake_to_running_seconds_count"),
        1.0
    );
    run.stop().await;
}
