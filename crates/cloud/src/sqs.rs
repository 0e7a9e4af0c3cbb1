//! SQS: the task-events queue that EventBridge fills with ECS task state changes.
//! ReceiveMessage (long poll) and DeleteMessageBatch; each function names the operation.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

use crate::error::AwsError;
use crate::gate::{SharedGate, Through};

/// How long one ReceiveMessage waits for a message: SQS's maximum, so an idle queue costs
/// three calls a minute.
pub const LONG_POLL_SECS: i32 = 20;
/// Messages per ReceiveMessage and per DeleteMessageBatch: SQS's maximum.
pub const BATCH: i32 = 10;

/// One message as received: its body (the event JSON) and the handle that deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub receipt_handle: String,
    pub body: String,
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    url: String,
    gate: SharedGate,
}

impl Queue {
    #[must_use]
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            gate: crate::gate::open(),
        }
    }

    /// The same, every call passing `gate`.
    #[must_use]
    pub fn with_gate(self, gate: SharedGate) -> Self {
        Self { gate, ..self }
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// ReceiveMessage: up to [`BATCH`] messages, waiting up to `wait_secs` for the first.
    ///
    /// # Errors
    /// The call's failure.
    pub async fn receive(&self, wait_secs: i32) -> Result<Vec<Message>, AwsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(wait_secs)
            .send()
            .through(&*self.gate, "SQS", "ReceiveMessage")
            .await?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Message {
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// DeleteMessageBatch of up to [`BATCH`] messages; returns how many SQS could not delete
    /// (they come back after their visibility timeout, and are handled again harmlessly).
    ///
    /// # Errors
    /// The call's failure.
    pub async fn delete(&self, receipt_handles: &[String]) -> Result<usize, AwsError> {
        if receipt_handles.is_empty() {
            return Ok(0);
        }
        let mut call = self.client.delete_message_batch().queue_url(&self.url);
        for (i, handle) in receipt_handles.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| AwsError {
                    service: "SQS",
                    operation: "DeleteMessageBatch",
                    code: None,
                    message: e.to_string(),
                    class: crate::ErrorClass::Terminal,
                })?;
            call = call.entries(entry);
        }
        let out = call
            .send()
            .through(&*self.gate, "SQS", "DeleteMessageBatch")
            .await?;
        Ok(out.failed().len())
    }
}
