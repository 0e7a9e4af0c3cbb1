//! CloudWatch Logs reads, for `clawfleet logs`: an agent container's `awslogs` stream
//! (GetLogEvents) and whether it exists yet (DescribeLogStreams). Nothing here writes.

use aws_sdk_cloudwatchlogs::Client;

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub message: String,
}

/// One answer of GetLogEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    /// In time order.
    pub events: Vec<LogEvent>,
    /// Where the next read forward starts; the same token again means the end for now.
    pub next_forward_token: Option<String>,
}

/// Where a GetLogEvents read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest event at or after this time (milliseconds since the epoch), or the first.
    Head { start_time: Option<i64> },
    /// The newest `limit` events.
    Tail { limit: i32 },
    /// Where a previous page's forward token points.
    Token(String),
}

/// CloudWatch Logs.
#[derive(Debug, Clone)]
pub struct Logs {
    client: Client,
    gate: SharedGate,
}

impl Logs {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self {
            client,
            gate: crate::gate::open(),
        }
    }

    /// The same, every call passing `gate`.
    #[must_use]
    pub fn with_gate(self, gate: SharedGate) -> Self {
        Self { gate, ..self }
    }

    /// GetLogEvents of one stream, from `from`. `None` when the group or the stream does not
    /// exist (yet: a task writes its first line after it starts).
    ///
    /// # Errors
    /// Any other failure of GetLogEvents; throttling is [`crate::ErrorClass::Throttled`].
    pub async fn get_log_events(
        &self,
        group: &str,
        stream: &str,
        from: &ReadFrom,
    ) -> Result<Option<LogPage>, AwsError> {
        let mut request = self
            .client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream);
        request = match from {
            ReadFrom::Head { start_time } => {
                request.start_from_head(true).set_start_time(*start_time)
            }
            ReadFrom::Tail { limit } => request.start_from_head(false).limit(*limit),
            ReadFrom::Token(token) => request.start_from_head(true).next_token(token),
        };
        match request
            .send()
            .through(&*self.gate, "CloudWatchLogs", "GetLogEvents")
            .await
        {
            Ok(out) => Ok(Some(LogPage {
                events: out
                    .events
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| LogEvent {
                        timestamp: e.timestamp.unwrap_or_default(),
                        message: e.message.unwrap_or_default(),
                    })
                    .collect(),
                next_forward_token: out.next_forward_token,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DescribeLogStreams of `group` whose names start with `prefix` (first page: a stream
    /// name asked for exactly matches at most a few). Empty when the group does not exist.
    ///
    /// # Errors
    /// Any other failure of DescribeLogStreams.
    pub async fn describe_log_streams(
        &self,
        group: &str,
        prefix: &str,
    ) -> Result<Vec<String>, AwsError> {
        match self
            .client
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(prefix)
            .send()
            .through(&*self.gate, "CloudWatchLogs", "DescribeLogStreams")
            .await
        {
            Ok(out) => Ok(out
                .log_streams
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.log_stream_name)
                .collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// Where an agent container's `awslogs` driver writes: from the container's
/// `logConfiguration` in the agent's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamSource {
    pub group: String,
    pub stream_prefix: String,
    pub container: String,
}

impl LogStreamSource {
    /// The `awslogs` settings of `container` in `definition`.
    ///
    /// # Errors
    /// The container is missing, or logs with another driver or without a group or prefix;
    /// the message says which.
    pub fn of(definition: &spec::render::TaskDefinition, container: &str) -> Result<Self, String> {
        let found = definition
            .container_definitions
            .iter()
            .find(|c| c.name == container)
            .ok_or_else(|| format!("no container \"{container}\""))?;
        let config = found
            .log_configuration
            .as_ref()
            .ok_or_else(|| format!("container \"{container}\" has no logConfiguration"))?;
        if config.log_driver != "awslogs" {
            return Err(format!(
                "container \"{container}\" logs with {}, not awslogs",
                config.log_driver
            ));
        }
        let option = |name: &str| {
            config
                .options
                .get(name)
                .cloned()
                .ok_or_else(|| format!("container \"{container}\" has no {name} option"))
        };
        Ok(Self {
            group: option("awslogs-group")?,
            stream_prefix: option("awslogs-stream-prefix")?,
            container: container.to_owned(),
        })
    }

    /// The stream of one task: `prefix/container/task-id`.
    #[must_use]
    pub fn stream(&self, task_arn: &str) -> String {
        let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
        format!("{}/{}/{task_id}", self.stream_prefix, self.container)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spec::render::{Container, LogConfiguration, TaskDefinition};

    fn definition(config: Option<LogConfiguration>) -> TaskDefinition {
        TaskDefinition {
            container_definitions: vec![Container {
                name: "agent".into(),
                log_configuration: config,
                ..Container::default()
            }],
            ..TaskDefinition::default()
        }
    }

    #[test]
    fn the_stream_is_prefix_container_and_task_id() {
        let config = LogConfiguration {
            log_driver: "awslogs".into(),
            options: [
                ("awslogs-group".to_owned(), "/clawfleet/agents".to_owned()),
                ("awslogs-stream-prefix".to_owned(), "agent".to_owned()),
            ]
            .into(),
        };
        let source = LogStreamSource::of(&definition(Some(config)), "agent").unwrap();
        assert_eq!(source.group, "/clawfleet/agents");
        assert_eq!(
            source.stream("arn:aws:ecs:us-east-1:1:task/fleet/0123abcd"),
            "agent/agent/0123abcd"
        );
    }

    #[test]
    fn another_driver_or_a_missing_container_is_named() {
        let config = LogConfiguration {
            log_driver: "json-file".into(),
            options: Default::default(),
        };
        let err = LogStreamSource::of(&definition(Some(config)), "agent").unwrap_err();
        assert!(err.contains("json-file, not awslogs"), "{err}");
        let err = LogStreamSource::of(&definition(None), "sidecar").unwrap_err();
        assert_eq!(err, "no container \"sidecar\"");
    }
}
