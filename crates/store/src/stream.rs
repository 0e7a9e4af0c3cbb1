//! The change feed: the table's DynamoDB Stream, so a spec written anywhere (API, CLI, GitOps,
//! the console) is reconciled within a second instead of at the next resync.
//!
//! - [`ChangeFeed`] is the stream behind a trait: the behaviours moto never shows (shard
//!   splits, expired iterators, trimmed data) are tested with a fake.
//! - [`Watcher`] follows every shard, parents before children (records of one item are ordered
//!   within the lineage), keeps a checkpoint per shard, re-acquires an expired iterator at its
//!   checkpoint, and asks for a resync when data was trimmed before it was read.
//! - Shard discovery (DescribeStream) is slow, reading (GetRecords) is at the poll's cadence:
//!   the shard list is kept and read again every [`SHARD_DISCOVERY_INTERVAL`] (a minute, as
//!   KCL does), and at once when a shard is read to its end, since a closed shard is how a
//!   split or a rollover shows its children. A poll then costs one GetRecords per open shard.
//! - Only spec items produce events; status writes never cause a reconcile.
//! - A page that keeps failing the same way (one record the SDK cannot parse fails the whole
//!   GetRecords) is narrowed down record by record after [`POISON_AFTER`] identical failures;
//!   the record that fails alone is skipped, logged once with its sequence number, counted
//!   ([`Watcher::records_skipped`]) and answered with a resync, which reads the table instead.

use std::collections::{BTreeSet, HashMap, HashSet};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use crate::StoreError;

/// One shard of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parent: Option<String>,
}

/// Where to start reading a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still kept (24 h).
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// After the record with this sequence number: a checkpoint.
    After(String),
}

/// One item change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub agent_id: String,
    pub record: String,
    pub sequence: String,
}

/// Why reading the feed failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The iterator is older than 15 minutes.
    #[error("DynamoDB Streams GetRecords: ExpiredIteratorException")]
    ExpiredIterator,
    /// The records at the position were trimmed (older than 24 h) before being read.
    #[error("DynamoDB Streams: TrimmedDataAccessException")]
    Trimmed,
    /// GetRecords answered, but with a page the SDK could not parse. `sequence` is the first
    /// record's sequence number, taken from the raw answer when it has one.
    #[error("{message}")]
    Unreadable {
        sequence: Option<String>,
        message: String,
    },
    /// Any other failure, one line naming the operation.
    #[error("{0}")]
    Other(String),
}

/// How often the watcher lists the stream's shards (DescribeStream) when none closed meanwhile:
/// a minute, as KCL's shard sync. Streams add shards only when one closes (a split or the
/// rollover every few hours), which is discovered at once; this interval is the safety net.
pub const SHARD_DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How many identical failures of one shard's read make the watcher look for a poison record.
pub const POISON_AFTER: u32 = 5;

/// The most single-record reads one narrowing makes: a GetRecords page holds at most 1,000.
const NARROW_LIMIT: usize = 1_000;

/// The stream of one table.
#[allow(async_fn_in_trait)]
pub trait ChangeFeed: Sync {
    /// Every shard the stream keeps (DescribeStream).
    async fn shards(&self) -> Result<Vec<Shard>, FeedError>;
    /// An iterator at `from` in `shard` (GetShardIterator).
    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, FeedError>;
    /// The next records and the next iterator, `None` once a closed shard is read to its end
    /// (GetRecords).
    async fn read(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError>;
    /// [`ChangeFeed::read`] of at most one record (GetRecords with `Limit = 1`), to find the
    /// record a failing page trips on: it fails with [`FeedError::Unreadable`] naming the
    /// record's sequence number.
    async fn read_one(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError>;
}

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A spec item changed (INSERT, MODIFY or REMOVE), or a wake was asked for: the agent is
    /// reconciled.
    Changed(String),
    /// A writer of the agent's secret values took or gave up its lock: none of its items
    /// changed, but an agent waiting for its secrets may start.
    SecretsWritten(String),
    /// Another of the agent's items changed (its status, its activity): nothing to reconcile,
    /// but what the controller holds of it is stale.
    Touched(String),
    /// Records were lost before they were read: compare everything.
    Resync,
}

/// The agents a poll already has an event for.
#[derive(Debug, Default)]
struct Seen {
    changed: BTreeSet<String>,
    touched: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

/// Follows every shard of a feed.
#[derive(Debug)]
pub struct Watcher<F> {
    feed: F,
    /// Where shards first seen in the first poll start; shards that appear later (children of
    /// a split) always start at their beginning.
    start: Position,
    first_poll: bool,
    checkpoints: HashMap<String, Position>,
    iterators: HashMap<String, String>,
    finished: HashSet<String>,
    /// Per shard, the last read failure and how many times in a row it happened.
    failures: HashMap<String, (String, u32)>,
    skipped: u64,
    /// The shards as last listed, and when; `None` until the first listing.
    shards: Option<(Vec<Shard>, tokio::time::Instant)>,
}

impl<F: ChangeFeed> Watcher<F> {
    /// A watcher starting at `start` for shards it has no checkpoint for.
    #[must_use]
    pub fn new(feed: F, start: Position, checkpoints: HashMap<String, Position>) -> Self {
        Self {
            feed,
            start,
            first_poll: true,
            checkpoints,
            iterators: HashMap::new(),
            finished: HashSet::new(),
            failures: HashMap::new(),
            skipped: 0,
            shards: None,
        }
    }

    /// How many stream records were skipped because they could not be read, since start
    /// (`clawfleet_stream_records_skipped_total`).
    #[must_use]
    pub fn records_skipped(&self) -> u64 {
        self.skipped
    }

    /// Where each shard has been read to, to restart from after a restart.
    #[must_use]
    pub fn checkpoints(&self) -> &HashMap<String, Position> {
        &self.checkpoints
    }

    /// The shards: as last listed, or listed again (DescribeStream) when `refresh` or when
    /// [`SHARD_DISCOVERY_INTERVAL`] has passed.
    async fn shards(&mut self, refresh: bool) -> Result<Vec<Shard>, FeedError> {
        let now = tokio::time::Instant::now();
        if !refresh
            && let Some((shards, at)) = &self.shards
            && now.saturating_duration_since(*at) < SHARD_DISCOVERY_INTERVAL
        {
            return Ok(shards.clone());
        }
        let shards = self.feed.shards().await?;
        self.shards = Some((shards.clone(), now));
        Ok(shards)
    }

    /// Reads every readable shard once. Events are deduplicated, in first-seen order. A shard
    /// read to its end lists the shards again, in the same poll, so its children are read
    /// right after it.
    ///
    /// # Errors
    /// A failure listing shards or acquiring an iterator; expired iterators and trimmed data
    /// are handled, not returned.
    pub async fn poll(&mut self) -> Result<Vec<Event>, FeedError> {
        let mut events = Vec::new();
        let mut seen = Seen::default();
        let mut read: HashSet<String> = HashSet::new();
        let mut shards = self.shards(false).await?;
        loop {
            let finished = self.finished.len();
            self.read_shards(&shards, &mut read, &mut events, &mut seen)
                .await?;
            if self.finished.len() == finished {
                break;
            }
            shards = self.shards(true).await?;
        }
        self.first_poll = false;
        Ok(events)
    }

    /// Reads each shard of `shards` not in `read` yet (and adds it there), parents before
    /// children.
    async fn read_shards(
        &mut self,
        shards: &[Shard],
        read: &mut HashSet<String>,
        events: &mut Vec<Event>,
        seen: &mut Seen,
    ) -> Result<(), FeedError> {
        let known: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for shard in shards {
            if self.finished.contains(&shard.id) || read.contains(&shard.id) {
                continue;
            }
            // Lineage: a child is read only once its parent is read to its end.
            if let Some(parent) = &shard.parent
                && known.contains(parent.as_str())
                && !self.finished.contains(parent)
            {
                continue;
            }
            read.insert(shard.id.clone());
            let iterator = match self.iterators.remove(&shard.id) {
                Some(it) => it,
                None => {
                    let from = self.checkpoints.get(&shard.id).cloned().unwrap_or_else(|| {
                        if self.first_poll {
                            self.start.clone()
                        } else {
                            Position::TrimHorizon
                        }
                    });
                    match self.feed.iterator(&shard.id, &from).await {
                        Ok(it) => it,
                        Err(FeedError::Trimmed) => {
                            self.lost(&shard.id, events);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match self.feed.read(&iterator).await {
                Ok((changes, next)) => {
                    self.failures.remove(&shard.id);
                    self.take(&shard.id, changes, next, events, seen);
                }
                // Re-acquired at the checkpoint on the next poll: nothing is lost.
                Err(FeedError::ExpiredIterator) => {}
                Err(FeedError::Trimmed) => self.lost(&shard.id, events),
                Err(e) => {
                    if self.failed(&shard.id, &e) < POISON_AFTER {
                        return Err(e);
                    }
                    self.narrow(&shard.id, events, seen).await?;
                }
            }
        }
        Ok(())
    }

    /// Records what one read of `shard` returned: checkpoints, events, the next iterator.
    fn take(
        &mut self,
        shard: &str,
        changes: Vec<Change>,
        next: Option<String>,
        events: &mut Vec<Event>,
        seen: &mut Seen,
    ) {
        for change in changes {
            self.checkpoints
                .insert(shard.to_owned(), Position::After(change.sequence.clone()));
            let record = crate::Record::of(&change.record);
            if record.enqueues() {
                if seen.changed.insert(change.agent_id.clone()) {
                    events.push(Event::Changed(change.agent_id));
                }
            } else if record == crate::Record::SecretLock {
                if seen.secrets.insert(change.agent_id.clone()) {
                    events.push(Event::SecretsWritten(change.agent_id));
                }
            } else if record != crate::Record::Other
                && !seen.changed.contains(&change.agent_id)
                && seen.touched.insert(change.agent_id.clone())
            {
                events.push(Event::Touched(change.agent_id));
            }
        }
        match next {
            Some(next) => {
                self.iterators.insert(shard.to_owned(), next);
            }
            None => {
                self.finished.insert(shard.to_owned());
            }
        }
    }

    /// Counts a failed read of `shard`; returns how many times in a row it failed this way.
    fn failed(&mut self, shard: &str, error: &FeedError) -> u32 {
        let text = error.to_string();
        let entry = self
            .failures
            .entry(shard.to_owned())
            .or_insert_with(|| (text.clone(), 0));
        if entry.0 != text {
            *entry = (text, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// Reads `shard` one record at a time from its checkpoint until the record that fails
    /// alone, and moves the checkpoint past it. Records read on the way are taken as usual.
    ///
    /// # Errors
    /// A single-record read that fails without naming its record, or a failure to acquire an
    /// iterator: the next poll tries again.
    async fn narrow(
        &mut self,
        shard: &str,
        events: &mut Vec<Event>,
        seen: &mut Seen,
    ) -> Result<(), FeedError> {
        let from = self
            .checkpoints
            .get(shard)
            .cloned()
            .unwrap_or(Position::TrimHorizon);
        let mut iterator = self.feed.iterator(shard, &from).await?;
        for _ in 0..NARROW_LIMIT {
            match self.feed.read_one(&iterator).await {
                Ok((changes, next)) => {
                    let progressed = !changes.is_empty();
                    self.take(shard, changes, next.clone(), events, seen);
                    match next {
                        Some(next) if progressed || next != iterator => iterator = next,
                        // Read to the end without a failure: it was not one record after all.
                        _ => break,
                    }
                }
                Err(FeedError::Unreadable {
                    sequence: Some(sequence),
                    message,
                }) => {
                    tracing::warn!(
                        shard,
                        sequence = %sequence,
                        error = %message,
                        "skipping a stream record that cannot be read; resyncing, which reads the table instead"
                    );
                    self.skipped += 1;
                    self.failures.remove(shard);
                    self.iterators.remove(shard);
                    self.checkpoints
                        .insert(shard.to_owned(), Position::After(sequence));
                    if !events.contains(&Event::Resync) {
                        events.push(Event::Resync);
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.failures.remove(shard);
        Ok(())
    }

    fn lost(&mut self, shard: &str, events: &mut Vec<Event>) {
        self.checkpoints
            .insert(shard.to_owned(), Position::TrimHorizon);
        if !events.contains(&Event::Resync) {
            events.push(Event::Resync);
        }
    }
}

/// The real stream (aws-sdk-dynamodbstreams).
#[derive(Debug, Clone)]
pub struct DynamoStream {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
}

/// A GetRecords failure. A successful answer the SDK could not parse (it reports that as an
/// unhandled service error) is [`FeedError::Unreadable`], with the first record's sequence
/// number read from the raw JSON.
fn get_records_error<E>(
    e: &aws_sdk_dynamodbstreams::error::SdkError<
        E,
        aws_sdk_dynamodbstreams::config::http::HttpResponse,
    >,
) -> FeedError
where
    E: aws_sdk_dynamodbstreams::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
    if let Some(raw) = e.raw_response()
        && raw.status().is_success()
    {
        let sequence = raw
            .body()
            .bytes()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
            .and_then(|page| {
                page.pointer("/Records/0/dynamodb/SequenceNumber")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            });
        return FeedError::Unreadable {
            sequence,
            message: format!(
                "DynamoDB Streams GetRecords: the answer could not be read: {}",
                spec::failure::error_chain(e)
            ),
        };
    }
    streams_error("GetRecords", e, e.code())
}

fn streams_error(
    operation: &str,
    e: &(dyn std::error::Error + 'static),
    code: Option<&str>,
) -> FeedError {
    match code {
        Some("ExpiredIteratorException") => FeedError::ExpiredIterator,
        Some("TrimmedDataAccessException") => FeedError::Trimmed,
        _ => FeedError::Other(format!(
            "DynamoDB Streams {operation}: {}",
            spec::failure::error_chain(e)
        )),
    }
}

impl DynamoStream {
    /// The stream of `store`'s table (DescribeTable for its LatestStreamArn).
    ///
    /// # Errors
    /// A failed DescribeTable, or a table without a stream.
    pub async fn of(
        store: &crate::Store,
        client: aws_sdk_dynamodbstreams::Client,
    ) -> Result<Self, StoreError> {
        let table = store
            .client
            .describe_table()
            .table_name(&store.table)
            .send()
            .await
            .map_err(|e| StoreError::aws("DescribeTable", &store.table, &e))?;
        let stream_arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| StoreError::TableShape {
                table: store.table.clone(),
                problem: "has no stream (run clawfleet bootstrap)".into(),
            })?;
        Ok(Self { client, stream_arn })
    }
}

impl ChangeFeed for DynamoStream {
    async fn shards(&self) -> Result<Vec<Shard>, FeedError> {
        use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| streams_error("DescribeStream", &e, e.code()))?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    shards.push(Shard {
                        id: id.to_owned(),
                        parent: shard.parent_shard_id().map(str::to_owned),
                    });
                }
            }
            match description.last_evaluated_shard_id {
                Some(last) if Some(&last) != start.as_ref() => start = Some(last),
                _ => break,
            }
        }
        Ok(shards)
    }

    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, FeedError> {
        use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
        let request = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard);
        let request = match from {
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::After(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
        };
        let out = request
            .send()
            .await
            .map_err(|e| streams_error("GetShardIterator", &e, e.code()))?;
        out.shard_iterator.ok_or_else(|| {
            FeedError::Other("DynamoDB Streams GetShardIterator: no iterator".into())
        })
    }

    async fn read(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError> {
        self.get_records(iterator, None).await
    }

    async fn read_one(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError> {
        self.get_records(iterator, Some(1)).await
    }
}

impl DynamoStream {
    /// GetRecords of at most `limit` records (1,000 when `None`).
    async fn get_records(
        &self,
        iterator: &str,
        limit: Option<i32>,
    ) -> Result<(Vec<Change>, Option<String>), FeedError> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .set_limit(limit)
            .send()
            .await
            .map_err(|e| get_records_error(&e))?;
        let changes = out
            .records()
            .iter()
            .filter_map(|r| {
                let data = r.dynamodb()?;
                let keys = data.keys()?;
                let text = |k: &str| keys.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(Change {
                    agent_id: text("agent_id")?,
                    record: text("record")?,
                    sequence: data.sequence_number()?.to_owned(),
                })
            })
            .collect();
        Ok((changes, out.next_shard_iterator))
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
