//! `GET /v1/agents/{agent_id}/logs?tail=N`: the newest lines of the agent container's
//! CloudWatch Logs stream, read on demand (one DescribeTaskDefinition and one GetLogEvents)
//! through the adapter `clawfleet logs` uses. CloudWatch Logs' read rates are low and
//! account-wide, so nothing polls this: the console asks only when a person clicks.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cloud::logs::{LogStreamSource, ReadFrom};
use cloud::{Ecs, Logs};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agents::{AgentId, respond, visible};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::{Api, body};

/// Lines given when `tail` is not.
pub const DEFAULT_TAIL: u32 = 100;
/// The most lines one request reads (one GetLogEvents page holds up to 10,000).
pub const MAX_TAIL: u32 = 1000;

/// Where the API reads agents' logs.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub logs: Logs,
    pub ecs: aws_sdk_ecs::Client,
    /// The agent container's name in the template.
    pub container: String,
}

/// The newest lines of an agent's current task.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentLogs {
    pub agent_id: String,
    /// The task the lines come from; `null` while the agent has no task.
    pub task_arn: Option<String>,
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

/// One log line.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub message: String,
}

/// `tail` from the query: 1 to [`MAX_TAIL`].
fn tail(query: Option<&str>) -> Result<u32, ApiError> {
    let mut tail = DEFAULT_TAIL;
    for (_, value) in body::query(query, &["tail"])? {
        tail = value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TAIL).contains(n))
            .ok_or_else(|| ApiError::BadParameter {
                field: "tail".into(),
                message: format!("must be an integer from 1 to {MAX_TAIL}"),
            })?;
    }
    Ok(tail)
}

/// The newest `tail` lines of the agent the caller may see.
///
/// # Errors
/// 404 for an agent the caller may not see; 503/502 naming the AWS call that failed.
pub async fn recent_lines(
    api: &Api,
    caller: &Caller,
    agent_id: &str,
    tail: u32,
) -> Result<AgentLogs, ApiError> {
    let agent = visible(api, caller, agent_id).await?;
    let empty = |task_arn: Option<String>| AgentLogs {
        agent_id: agent_id.to_owned(),
        task_arn,
        lines: Vec::new(),
    };
    let Some(status) = agent.status else {
        return Ok(empty(None));
    };
    let (Some(cluster), Some(task_arn), Some(revision_arn)) =
        (status.cluster, status.task_arn, status.task_definition_arn)
    else {
        return Ok(empty(None));
    };
    let Some(reader) = &api.config.logs else {
        return Err(ApiError::Upstream {
            status: StatusCode::SERVICE_UNAVAILABLE,
            call: "CloudWatchLogs GetLogEvents".to_owned(),
            code: Some("NotConfigured".to_owned()),
            log: "this server was started without a CloudWatch Logs client".to_owned(),
        });
    };
    let ecs = Ecs::new(reader.ecs.clone(), &cluster);
    let Some(revision) = ecs.describe_task_definition(&revision_arn).await? else {
        return Ok(empty(Some(task_arn)));
    };
    let source = LogStreamSource::of(&revision.content, &reader.container).map_err(|e| {
        ApiError::Upstream {
            status: StatusCode::BAD_GATEWAY,
            call: "ECS DescribeTaskDefinition".to_owned(),
            code: Some("NoAwsLogs".to_owned()),
            log: format!("{revision_arn}: {e}"),
        }
    })?;
    let page = reader
        .logs
        .get_log_events(
            &source.group,
            &source.stream(&task_arn),
            &ReadFrom::Tail {
                limit: i32::try_from(tail).unwrap_or(i32::MAX),
            },
        )
        .await?;
    Ok(AgentLogs {
        agent_id: agent_id.to_owned(),
        lines: page
            .map(|p| p.events)
            .unwrap_or_default()
            .into_iter()
            .map(|e| LogLine {
                timestamp: e.timestamp,
                message: e.message.trim_end_matches('\n').to_owned(),
            })
            .collect(),
        task_arn: Some(task_arn),
    })
}

pub async fn get_logs(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    AgentId(agent_id): AgentId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let tail = tail(query.as_deref())?;
    let logs = recent_lines(&api, &caller, &agent_id, tail).await?;
    Ok(respond(StatusCode::OK, &logs, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_one_to_the_maximum_and_defaults_to_a_hundred() {
        assert_eq!(tail(None).unwrap(), DEFAULT_TAIL);
        assert_eq!(tail(Some("tail=5")).unwrap(), 5);
        assert_eq!(tail(Some("tail=1000")).unwrap(), 1000);
        for bad in ["tail=0", "tail=1001", "tail=x", "tail=-1", "lines=3"] {
            assert!(tail(Some(bad)).is_err(), "{bad}");
        }
    }
}
