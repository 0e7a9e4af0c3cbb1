//! The watcher against a fake stream that splits shards, expires iterators and trims data,
//! as DynamoDB Streams does and moto never shows.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct FakeShard {
    parent: Option<String>,
    records: Vec<Change>,
    closed: bool,
    /// Records before this index are trimmed.
    trimmed_before: usize,
}

#[derive(Default)]
struct Fake {
    shards: Mutex<Vec<(String, FakeShard)>>,
    expire_next_read_of: Mutex<Option<String>>,
    next_sequence: Mutex<u64>,
    /// Sequence numbers of records that make any page holding them unreadable, as a record
    /// the SDK cannot parse fails the whole GetRecords.
    poison: Mutex<Vec<String>>,
    single_reads: Mutex<usize>,
    /// DescribeStream and GetRecords calls.
    describes: Mutex<usize>,
    reads: Mutex<usize>,
}

impl Fake {
    fn shard(&self, id: &str, parent: Option<&str>) {
        self.shards.lock().unwrap().push((
            id.to_owned(),
            FakeShard {
                parent: parent.map(str::to_owned),
                ..FakeShard::default()
            },
        ));
    }

    fn write(&self, shard: &str, agent_id: &str, record: &str) {
        let mut seq = self.next_sequence.lock().unwrap();
        *seq += 1;
        let mut shards = self.shards.lock().unwrap();
        let (_, s) = shards.iter_mut().find(|(id, _)| id == shard).unwrap();
        s.records.push(Change {
            agent_id: agent_id.to_owned(),
            record: record.to_owned(),
            sequence: format!("{:020}", *seq),
        });
    }

    /// Writes a record that no page holding it can be read past.
    fn write_poison(&self, shard: &str, agent_id: &str) {
        self.write(shard, agent_id, "spec");
        let seq = format!("{:020}", *self.next_sequence.lock().unwrap());
        self.poison.lock().unwrap().push(seq);
    }

    fn poisoned(&self, records: &[Change]) -> Result<(), FeedError> {
        let poison = self.poison.lock().unwrap();
        match records.iter().find(|r| poison.contains(&r.sequence)) {
            Some(_) => Err(FeedError::Unreadable {
                sequence: records.first().map(|r| r.sequence.clone()),
                message: "DynamoDB Streams GetRecords: the answer could not be read".into(),
            }),
            None => Ok(()),
        }
    }

    fn close(&self, shard: &str) {
        let mut shards = self.shards.lock().unwrap();
        shards
            .iter_mut()
            .find(|(id, _)| id == shard)
            .unwrap()
            .1
            .closed = true;
    }

    fn trim(&self, shard: &str, before: usize) {
        let mut shards = self.shards.lock().unwrap();
        shards
            .iter_mut()
            .find(|(id, _)| id == shard)
            .unwrap()
            .1
            .trimmed_before = before;
    }
}

impl ChangeFeed for &Fake {
    async fn shards(&self) -> Result<Vec<Shard>, FeedError> {
        *self.describes.lock().unwrap() += 1;
        Ok(self
            .shards
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| Shard {
                id: id.clone(),
                parent: s.parent.clone(),
            })
            .collect())
    }

    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, FeedError> {
        let shards = self.shards.lock().unwrap();
        let (_, s) = shards.iter().find(|(id, _)| id == shard).unwrap();
        let index = match from {
            Position::TrimHorizon => s.trimmed_before,
            Position::Latest => s.records.len(),
            Position::After(seq) => s
                .records
                .iter()
                .position(|r| &r.sequence == seq)
                .map_or(0, |i| i + 1),
        };
        Ok(format!("{shard}|{index}"))
    }

    async fn read(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError> {
        *self.reads.lock().unwrap() += 1;
        let (shard, index) = iterator.split_once('|').unwrap();
        let index: usize = index.parse().unwrap();
        if self.expire_next_read_of.lock().unwrap().as_deref() == Some(shard) {
            *self.expire_next_read_of.lock().unwrap() = None;
            return Err(FeedError::ExpiredIterator);
        }
        let shards = self.shards.lock().unwrap();
        let (_, s) = shards.iter().find(|(id, _)| id == shard).unwrap();
        if index < s.trimmed_before {
            return Err(FeedError::Trimmed);
        }
        let changes = s.records[index..].to_vec();
        self.poisoned(&changes)?;
        let next = if s.closed {
            None
        } else {
            Some(format!("{shard}|{}", s.records.len()))
        };
        Ok((changes, next))
    }

    async fn read_one(&self, iterator: &str) -> Result<(Vec<Change>, Option<String>), FeedError> {
        *self.single_reads.lock().unwrap() += 1;
        let (shard, index) = iterator.split_once('|').unwrap();
        let index: usize = index.parse().unwrap();
        let shards = self.shards.lock().unwrap();
        let (_, s) = shards.iter().find(|(id, _)| id == shard).unwrap();
        let changes: Vec<Change> = s.records.get(index).cloned().into_iter().collect();
        self.poisoned(&changes)?;
        let end = index + changes.len();
        let next = if s.closed && end == s.records.len() {
            None
        } else {
            Some(format!("{shard}|{end}"))
        };
        Ok((changes, next))
    }
}

fn changed(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Changed(id) => Some(id.as_str()),
            Event::Touched(_) | Event::SecretsWritten(_) | Event::Resync => None,
        })
        .collect()
}

#[tokio::test]
async fn spec_changes_enqueue_and_other_agent_items_only_touch() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("s1", "a1", "spec");
    fake.write("s1", "a1", "status");
    fake.write("s1", "a2", "status");
    fake.write("s1", "a2", "activity");
    fake.write("s1", "a1", "spec");
    fake.write("s1", "a3", "status");
    fake.write("s1", "a3", "wake");
    fake.write("s1", "_fleet", "summary");
    fake.write("s1", "_lease", "lease");
    fake.write("s1", "a2", "secret-lock");
    fake.write("s1", "a2", "secret-lock");
    let events = watcher.poll().await.unwrap();
    assert_eq!(
        events,
        [
            Event::Changed("a1".into()),
            Event::Touched("a2".into()),
            Event::Touched("a3".into()),
            Event::Changed("a3".into()),
            Event::SecretsWritten("a2".into()),
        ],
        "each deduplicated; a change covers a touch; a status or activity write never \
         enqueues; records of no agent are no event"
    );
    assert!(watcher.poll().await.unwrap().is_empty(), "nothing new");
}

#[tokio::test]
async fn a_watcher_starting_at_latest_skips_history_but_reads_new_shards_from_their_start() {
    let fake = Fake::default();
    fake.shard("s1", None);
    fake.write("s1", "old", "spec");
    let mut watcher = Watcher::new(&fake, Position::Latest, HashMap::new());
    assert!(watcher.poll().await.unwrap().is_empty());
    fake.write("s1", "new", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["new"]);
}

#[tokio::test]
async fn a_shard_split_is_followed_parent_first_then_children_from_their_start() {
    let fake = Fake::default();
    fake.shard("parent", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("parent", "a1", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["a1"]);
    // The shard splits: the parent gets a last record and closes; children start.
    fake.write("parent", "a2", "spec");
    fake.close("parent");
    fake.shard("child-1", Some("parent"));
    fake.shard("child-2", Some("parent"));
    fake.write("child-1", "a3", "spec");
    fake.write("child-2", "a4", "spec");
    let events = watcher.poll().await.unwrap();
    assert_eq!(
        changed(&events),
        ["a2", "a3", "a4"],
        "parent's last record before the children's"
    );
    fake.write("child-1", "a5", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["a5"]);
}

#[tokio::test]
async fn a_child_waits_until_its_parent_is_read_to_the_end() {
    let fake = Fake::default();
    fake.shard("parent", None);
    fake.shard("child", Some("parent"));
    fake.write("parent", "first", "spec");
    fake.write("child", "second", "spec");
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    // The parent is still open: only its records.
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["first"]);
    fake.close("parent");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["second"]);
}

#[tokio::test]
async fn an_expired_iterator_is_reacquired_at_the_checkpoint_losing_nothing() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("s1", "a1", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["a1"]);
    fake.write("s1", "a2", "spec");
    *fake.expire_next_read_of.lock().unwrap() = Some("s1".into());
    assert!(watcher.poll().await.unwrap().is_empty(), "the read expired");
    assert_eq!(
        changed(&watcher.poll().await.unwrap()),
        ["a2"],
        "read once, after re-acquiring"
    );
    assert!(watcher.poll().await.unwrap().is_empty());
}

#[tokio::test]
async fn trimmed_data_asks_for_a_resync_and_reading_goes_on() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("s1", "a1", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["a1"]);
    // The watcher fell behind by more than a day: its next records are gone.
    fake.write("s1", "lost", "spec");
    fake.write("s1", "kept", "spec");
    fake.trim("s1", 2);
    let _ = watcher.iterators.insert("s1".into(), "s1|1".into());
    let events = watcher.poll().await.unwrap();
    assert_eq!(events, [Event::Resync]);
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["kept"]);
}

#[tokio::test]
async fn a_restart_from_checkpoints_reads_only_what_came_after() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut first = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("s1", "a1", "spec");
    assert_eq!(changed(&first.poll().await.unwrap()), ["a1"]);
    let checkpoints = first.checkpoints().clone();
    drop(first);
    fake.write("s1", "a2", "spec");
    let mut second = Watcher::new(&fake, Position::Latest, checkpoints);
    assert_eq!(changed(&second.poll().await.unwrap()), ["a2"]);
}

#[tokio::test]
async fn a_record_that_fails_its_page_is_skipped_after_five_identical_failures_with_a_resync() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write("s1", "before", "spec");
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["before"]);
    fake.write("s1", "a1", "spec");
    fake.write_poison("s1", "broken");
    fake.write("s1", "a2", "spec");
    for attempt in 1..POISON_AFTER {
        let err = watcher.poll().await.unwrap_err();
        assert!(
            matches!(err, FeedError::Unreadable { .. }),
            "attempt {attempt}: {err}"
        );
        assert_eq!(watcher.records_skipped(), 0);
    }
    let events = watcher.poll().await.unwrap();
    assert_eq!(
        events,
        [Event::Changed("a1".into()), Event::Resync],
        "the records before it are read one by one, then a resync covers the skipped one"
    );
    assert_eq!(watcher.records_skipped(), 1);
    assert_eq!(
        watcher.checkpoints()["s1"],
        Position::After(format!("{:020}", 3)),
        "resumes after the poison record"
    );
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["a2"]);
    assert!(watcher.poll().await.unwrap().is_empty(), "no more failures");
    assert_eq!(watcher.records_skipped(), 1);
    assert_eq!(
        *fake.single_reads.lock().unwrap(),
        2,
        "a1, then the poison record"
    );
}

#[tokio::test]
async fn failures_that_differ_or_that_heal_never_skip_a_record() {
    let fake = Fake::default();
    fake.shard("s1", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    fake.write_poison("s1", "broken");
    for _ in 1..POISON_AFTER {
        assert!(watcher.poll().await.is_err());
    }
    // The page heals (the item was fixed before its record was read again).
    fake.poison.lock().unwrap().clear();
    assert_eq!(changed(&watcher.poll().await.unwrap()), ["broken"]);
    assert_eq!(watcher.records_skipped(), 0);
    assert_eq!(*fake.single_reads.lock().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn shards_are_listed_once_a_minute_while_records_are_read_at_every_poll() {
    let fake = Fake::default();
    fake.shard("s1", None);
    fake.shard("s2", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    let poll_every = std::time::Duration::from_millis(250);
    // A minute of polls at the controller's cadence, with a write now and then.
    for i in 0..240 {
        if i % 40 == 0 {
            fake.write("s1", &format!("a{i}"), "spec");
        }
        let events = watcher.poll().await.unwrap();
        if i % 40 == 0 {
            assert_eq!(changed(&events), [format!("a{i}").as_str()]);
        }
        tokio::time::sleep(poll_every).await;
    }
    assert_eq!(
        *fake.describes.lock().unwrap(),
        1,
        "one DescribeStream a minute"
    );
    assert_eq!(
        *fake.reads.lock().unwrap(),
        2 * 240,
        "GetRecords of each shard, each poll"
    );
    // A minute after the first listing, the next poll lists again.
    watcher.poll().await.unwrap();
    assert_eq!(*fake.describes.lock().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_closed_shard_lists_the_shards_again_in_the_same_poll() {
    let fake = Fake::default();
    fake.shard("parent", None);
    let mut watcher = Watcher::new(&fake, Position::TrimHorizon, HashMap::new());
    watcher.poll().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    watcher.poll().await.unwrap();
    assert_eq!(*fake.describes.lock().unwrap(), 1);
    // The rollover: the parent closes and a child starts, long before the next minutely listing.
    fake.write("parent", "last", "spec");
    fake.close("parent");
    fake.shard("child", Some("parent"));
    fake.write("child", "first", "spec");
    let events = watcher.poll().await.unwrap();
    assert_eq!(changed(&events), ["last", "first"]);
    assert_eq!(
        *fake.describes.lock().unwrap(),
        2,
        "listed again once the parent closed"
    );
    // The closed parent is not read again, and no listing follows until a minute has passed.
    let reads = *fake.reads.lock().unwrap();
    watcher.poll().await.unwrap();
    assert_eq!(*fake.reads.lock().unwrap(), reads + 1, "the child only");
    assert_eq!(*fake.describes.lock().unwrap(), 2);
}
