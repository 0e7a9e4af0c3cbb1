//! Watching the table's stream: every spec change is enqueued at once, and data lost before it
//! was read, or a record skipped because no page holding it could be read
//! (`clawfleet_stream_records_skipped_total`), triggers a resync. Every change of an agent's
//! items, its status and activity too, marks it in the [`crate::view::TableView`] for the next
//! resync to read. Only the leader reads: DynamoDB allows about two readers per shard, and the
//! resync converges everything (reading the whole table) while the stream is unavailable.

use std::sync::Arc;
use std::time::Duration;

use store::stream::{ChangeFeed, Event, Watcher};
use tracing::{error, info, warn};

use crate::runtime::Controller;

/// How often the stream is read: well within a second, and within DynamoDB Streams' five
/// GetRecords per second per shard.
pub const STREAM_POLL: Duration = Duration::from_millis(250);

impl Controller {
    /// Follows the table's stream until the task is dropped.
    pub async fn watch<F: ChangeFeed>(self: Arc<Self>, mut watcher: Watcher<F>) {
        let mut skipped = watcher.records_skipped();
        loop {
            if !self.is_leader() {
                // A standby reads no record: what it holds of the table is stale the moment
                // it leads.
                self.view.invalidate();
                tokio::time::sleep(STREAM_POLL).await;
                continue;
            }
            let polled = watcher.poll().await;
            let now_skipped = watcher.records_skipped();
            self.metrics
                .stream_records_skipped(now_skipped.saturating_sub(skipped));
            skipped = now_skipped;
            match polled {
                Ok(events) => {
                    for event in events {
                        match event {
                            Event::Changed(agent_id) => {
                                info!(agent_id = %agent_id, "spec changed");
                                self.view.changed(&agent_id);
                                self.enqueue(&agent_id);
                            }
                            Event::Touched(agent_id) => self.view.changed(&agent_id),
                            // A running agent takes new values at its next start (or a restart
                            // asked for with them); one waiting for them may start now.
                            Event::SecretsWritten(agent_id) => {
                                if !self.view.is_ready(&agent_id) {
                                    self.enqueue(&agent_id);
                                }
                            }
                            Event::Resync => {
                                self.view.invalidate();
                                warn!(
                                    "stream records were lost (trimmed before being read, or one that could not be read was skipped); resyncing"
                                );
                                if let Err(e) = self.resync().await {
                                    error!(error = %e, "resync failed; the next one retries");
                                }
                            }
                        }
                    }
                    self.view.polled();
                    tokio::time::sleep(STREAM_POLL).await;
                }
                Err(e) => {
                    // Records wait in the stream for a day, but while none are read the
                    // resync reads the whole table.
                    self.view.invalidate();
                    warn!(error = %e, "stream unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
