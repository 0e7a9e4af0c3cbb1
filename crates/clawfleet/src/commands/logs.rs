//! `clawfleet logs`: the agent container's CloudWatch Logs stream, from its revision's
//! `awslogs` settings. The task is the one the status names, or the agent's last one when it
//! is stopped. `-f` polls GetLogEvents with the forward token at most once a second (moto and
//! the SDK have no live tail here, and CloudWatch Logs' read rates are low and account-wide),
//! backs off while throttled, and moves to the new task's stream when the status names one.

use std::time::Duration;

use cloud::logs::{LogEvent, LogStreamSource, ReadFrom};
use cloud::{AwsError, Ecs, ErrorClass, Logs};
use store::{Agent, Store};

use crate::failure::{Exit, Failure};

/// What `logs` reads and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub follow: bool,
    pub since: Option<Duration>,
    pub tail: Option<u32>,
    /// The agent container's name in the revision.
    pub container: String,
}

/// How often `-f` reads, and the longest it waits while CloudWatch Logs throttles.
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One task of the agent, and where its container logs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stream {
    task_arn: String,
    source: LogStreamSource,
}

impl Stream {
    fn name(&self) -> String {
        self.source.stream(&self.task_arn)
    }
}

/// Prints the agent's log lines; with `follow`, keeps printing until SIGTERM or Ctrl-C.
///
/// # Errors
/// The agent or its task unknown (1); a failed AWS call, named (2).
pub async fn run(
    store: &Store,
    config: &aws_config::SdkConfig,
    agent_id: &str,
    options: &Options,
) -> Result<Exit, Failure> {
    let logs = Logs::new(aws_sdk_cloudwatchlogs::Client::new(config));
    let ecs = aws_sdk_ecs::Client::new(config);
    let agent = read_agent(store, agent_id).await?;
    let mut stream = current_stream(&ecs, &agent, &options.container).await?;
    if !options.follow {
        let name = stream.name();
        if logs
            .describe_log_streams(&stream.source.group, &name)
            .await
            .map_err(aws)?
            .iter()
            .all(|s| *s != name)
        {
            return Err(Failure::Invalid(format!(
                "agent {agent_id}: no log stream {name} in log group {} yet",
                stream.source.group
            )));
        }
    }
    let start = match (options.tail, options.since) {
        (Some(limit), None) => ReadFrom::Tail {
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
        },
        (_, since) => ReadFrom::Head {
            start_time: since.map(since_millis),
        },
    };
    let mut token = read_to_end(&logs, &stream, start, options.tail).await?;
    if !options.follow {
        return Ok(Exit::Success);
    }

    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    let mut wait = POLL;
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(Exit::Success),
            () = tokio::time::sleep(wait) => {}
        }
        match follow_once(
            store,
            &ecs,
            &logs,
            agent_id,
            options,
            &mut stream,
            &mut token,
        )
        .await
        {
            Ok(()) => wait = POLL,
            Err(Step::Throttled(e)) => {
                wait = (wait * 2).min(MAX_BACKOFF);
                tracing::warn!("{e}; next read in {}s", wait.as_secs());
            }
            Err(Step::Failed(failure)) => return Err(failure),
        }
    }
}

/// Why one step of `-f` did not complete.
enum Step {
    /// CloudWatch Logs (or ECS, or DynamoDB) throttled: wait longer, then carry on.
    Throttled(AwsError),
    Failed(Failure),
}

impl From<Failure> for Step {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

/// One poll of `-f`: a new task named by the status switches to its stream (read from its
/// start); then the new events of the current stream.
async fn follow_once(
    store: &Store,
    ecs: &aws_sdk_ecs::Client,
    logs: &Logs,
    agent_id: &str,
    options: &Options,
    stream: &mut Stream,
    token: &mut Option<String>,
) -> Result<(), Step> {
    let agent = read_agent(store, agent_id).await?;
    let status_task = agent.status.as_ref().and_then(|s| s.task_arn.as_deref());
    if let Some(task_arn) = status_task
        && task_arn != stream.task_arn
    {
        let next = current_stream(ecs, &agent, &options.container).await?;
        eprintln!(
            "--- task {} replaced by {}",
            task_id(&stream.task_arn),
            task_id(&next.task_arn)
        );
        *stream = next;
        *token = None;
    }
    let from = match token.clone() {
        Some(t) => ReadFrom::Token(t),
        None => ReadFrom::Head { start_time: None },
    };
    match logs
        .get_log_events(&stream.source.group, &stream.name(), &from)
        .await
    {
        Ok(Some(page)) => {
            print_events(&page.events);
            if page.next_forward_token.is_some() {
                *token = page.next_forward_token;
            }
            Ok(())
        }
        // The new task has not written its first line yet.
        Ok(None) => Ok(()),
        Err(e) if e.class == ErrorClass::Throttled => Err(Step::Throttled(e)),
        Err(e) => Err(Step::Failed(aws(e))),
    }
}

/// Reads the stream forward from `start` until the token stops moving, printing every event,
/// or only the last `tail` of them. Returns the forward token to follow from.
async fn read_to_end(
    logs: &Logs,
    stream: &Stream,
    start: ReadFrom,
    tail: Option<u32>,
) -> Result<Option<String>, Failure> {
    let name = stream.name();
    let mut from = start;
    let mut kept: Vec<LogEvent> = Vec::new();
    let keep = tail.and_then(|t| usize::try_from(t).ok());
    loop {
        let Some(page) = logs
            .get_log_events(&stream.source.group, &name, &from)
            .await
            .map_err(aws)?
        else {
            return Ok(None);
        };
        let at_end = match (&from, &page.next_forward_token) {
            (ReadFrom::Token(previous), Some(next)) => previous == next,
            (ReadFrom::Tail { .. }, _) | (_, None) => true,
            _ => page.events.is_empty(),
        };
        match keep {
            Some(n) => {
                kept.extend(page.events);
                let excess = kept.len().saturating_sub(n);
                kept.drain(..excess);
            }
            None => print_events(&page.events),
        }
        let next = page.next_forward_token;
        if at_end {
            print_events(&kept);
            return Ok(next);
        }
        match next {
            Some(t) => from = ReadFrom::Token(t),
            None => {
                print_events(&kept);
                return Ok(None);
            }
        }
    }
}

fn print_events(events: &[LogEvent]) {
    for event in events {
        println!("{}", event.message.trim_end_matches('\n'));
    }
}

async fn read_agent(store: &Store, agent_id: &str) -> Result<Agent, Failure> {
    store
        .get(agent_id)
        .await?
        .ok_or_else(|| Failure::Invalid(format!("agent {agent_id}: not found")))
}

/// The task the status names and its revision's log settings (DescribeTaskDefinition); when
/// the status names none (a stopped agent), the agent's most recent task ECS still shows
/// (ListTasks of the cluster, DescribeTasks: stopped tasks stay visible for about an hour).
async fn current_stream(
    client: &aws_sdk_ecs::Client,
    agent: &Agent,
    container: &str,
) -> Result<Stream, Failure> {
    let id = &agent.agent_id;
    let status = agent
        .status
        .as_ref()
        .ok_or_else(|| Failure::Invalid(format!("agent {id}: not reconciled yet, no task")))?;
    let cluster = status
        .cluster
        .as_deref()
        .ok_or_else(|| Failure::Invalid(format!("agent {id}: no task yet")))?;
    let ecs = Ecs::new(client.clone(), cluster);
    let (task_arn, revision_arn) = match (&status.task_arn, &status.task_definition_arn) {
        (Some(task), Some(revision)) => (task.clone(), revision.clone()),
        _ => {
            let arns = ecs.list_tasks().await.map_err(aws)?;
            let last = ecs
                .describe_tasks(&arns)
                .await
                .map_err(aws)?
                .into_iter()
                .filter(|t| t.agent_id() == Some(id.as_str()))
                .max_by_key(|t| (t.stopped_at.is_none(), t.stopped_at, t.started_at))
                .ok_or_else(|| {
                    Failure::Invalid(format!(
                        "agent {id}: no task in cluster {cluster} (ECS shows stopped tasks for about an hour)"
                    ))
                })?;
            (last.arn, last.task_definition_arn)
        }
    };
    let revision = ecs
        .describe_task_definition(&revision_arn)
        .await
        .map_err(aws)?
        .ok_or_else(|| {
            Failure::Invalid(format!(
                "agent {id}: task definition {revision_arn} not found"
            ))
        })?;
    let source = LogStreamSource::of(&revision.content, container)
        .map_err(|e| Failure::Invalid(format!("agent {id}: {revision_arn}: {e}")))?;
    Ok(Stream { task_arn, source })
}

fn since_millis(since: Duration) -> i64 {
    let now = time::OffsetDateTime::now_utc() - since;
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn aws(e: AwsError) -> Failure {
    Failure::Aws(e.to_string())
}
