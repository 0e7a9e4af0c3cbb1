//! Reading and writing Agent items.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use spec::{AgentDocument, AgentSpec, AgentStatus, Meta, ValidationErrors};

use crate::item::{self, Item, Snapshot};
use crate::{
    ACTIVITY_RECORD, BY_CLIENT_INDEX, Record, SPEC_RECORD, STATUS_RECORD, StoreError, WAKE_RECORD,
};

/// The store: one DynamoDB table of Agent items.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) table: String,
}

/// Why a spec item does not yield a spec. Either way the agent can still be deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An attribute is unknown or has the wrong DynamoDB type.
    #[error("{0}")]
    Item(String),
    /// The attributes parse but break spec rules.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// A spec item as read.
#[derive(Debug, Clone)]
pub struct SpecItem {
    pub agent_id: String,
    pub meta: Meta,
    /// The parsed attributes, when they parse.
    pub document: Option<AgentDocument>,
    pub spec: Result<AgentSpec, SpecError>,
    pub snapshot: Snapshot,
}

impl SpecItem {
    /// The tenant, from the parsed document or, for an item that does not parse, the raw
    /// attribute; `None` when the item has none.
    #[must_use]
    pub fn client_id(&self) -> Option<String> {
        self.document
            .as_ref()
            .and_then(|d| d.client_id.clone())
            .or_else(|| {
                self.snapshot
                    .attribute("client_id")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
            })
    }

    /// The error of a spec item that yields no spec, as one line.
    #[must_use]
    pub fn error_text(&self) -> Option<String> {
        self.spec.as_ref().err().map(ToString::to_string)
    }
}

/// An agent's two items, either of which may be missing, and its activity.
#[derive(Debug, Clone)]
pub struct Agent {
    pub agent_id: String,
    pub spec: Option<SpecItem>,
    pub status: Option<AgentStatus>,
    pub activity: Activity,
}

/// When the agent was last used or woken, from its activity and wake items (seconds since the
/// epoch); never part of the spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Activity {
    pub last_activity_at: Option<i64>,
    /// In milliseconds: the wake-to-Running histogram times sub-second wakes.
    pub wake_requested_ms: Option<i64>,
}

impl Agent {
    /// An agent id with no items read.
    #[must_use]
    pub fn absent(agent_id: &str) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            spec: None,
            status: None,
            activity: Activity::default(),
        }
    }

    /// Since when idleness counts: the latest of the last activity, the last wake and the
    /// agent's creation.
    #[must_use]
    pub fn last_activity(&self) -> Option<i64> {
        let created = self
            .spec
            .as_ref()
            .and_then(|s| s.meta.created_at.as_deref())
            .and_then(spec::parse_rfc3339)
            .map(time::OffsetDateTime::unix_timestamp);
        [
            self.activity.last_activity_at,
            self.activity
                .wake_requested_ms
                .map(|ms| ms.div_euclid(1000)),
            created,
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The tenant that owns the agent: the `client_id` the controller recorded in the status at
    /// the first reconcile, or, before that, the spec's. A console edit of the spec's
    /// `client_id` therefore never hands the agent to another tenant.
    #[must_use]
    pub fn owner(&self) -> Option<String> {
        self.status
            .as_ref()
            .and_then(|s| s.client_id.clone())
            .or_else(|| self.spec.as_ref().and_then(SpecItem::client_id))
    }
}

/// Where a page ended: the whole key DynamoDB last evaluated (`agent_id` and `record`, and
/// `client_id` on the `by-client` index), attribute name to string value. It may be the key of
/// an item no listing shows (a status, the lease): the next page starts after it all the same.
pub type PageKey = BTreeMap<String, String>;

/// One page of agents, and where the next starts when there may be more.
#[derive(Debug, Clone)]
pub struct Page {
    pub agents: Vec<Agent>,
    pub next: Option<PageKey>,
}

fn page_key(last: Option<HashMap<String, AttributeValue>>) -> Option<PageKey> {
    let key: PageKey = last?
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_s().ok()?.clone())))
        .collect();
    (!key.is_empty()).then_some(key)
}

fn start_key(key: Option<&PageKey>) -> Option<HashMap<String, AttributeValue>> {
    key.map(|key| {
        key.iter()
            .map(|(name, value)| (name.clone(), s(value)))
            .collect()
    })
}

/// What a spec write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Created,
    Updated,
    Unchanged,
}

impl Write {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Activity is kept to the minute: a report within a minute of the stored one writes nothing.
pub const ACTIVITY_RESOLUTION_SECS: i64 = 60;

/// The spec attribute that asks for the agent's files to be erased before its access point is
/// deleted.
const PURGE_DATA: &str = "purge_data_on_delete";

/// How many BatchGetItem calls one chunk of keys gets before its unprocessed keys are an error.
const BATCH_GET_ATTEMPTS: u32 = 10;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn key(agent_id: &str, record: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("agent_id".to_owned(), s(agent_id)),
        ("record".to_owned(), s(record)),
    ])
}

/// Bookkeeping read straight from the attributes, so that it survives a spec that does not
/// parse.
fn meta_of(item: &Item) -> Meta {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Meta {
        idempotency_fingerprint: text("idempotency_fingerprint"),
        generation: item
            .get("generation")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        managed_by: text("managed_by"),
        created_at: text("created_at"),
        // NULL is absent, as everywhere; any other value asks for deletion, as docs/spec.md
        // promises, whatever its type.
        deletion_requested_at: item
            .get("deletion_requested_at")
            .filter(|v| !v.is_null())
            .map(|v| v.as_s().cloned().unwrap_or_else(|_| "(set)".to_owned())),
    }
}

fn spec_item(agent_id: &str, item: Item) -> SpecItem {
    let document = item::spec_document(&item);
    let spec = match &document {
        Ok(doc) => doc.validate().map_err(SpecError::Invalid),
        Err(message) => Err(SpecError::Item(message.clone())),
    };
    SpecItem {
        agent_id: agent_id.to_owned(),
        meta: meta_of(&item),
        document: document.ok(),
        spec,
        snapshot: Snapshot { item },
    }
}

impl SpecItem {
    /// The spec item `document` is stored as, parsed back, without DynamoDB: what fakes of the
    /// store hand out, so that they parse exactly as the table does.
    #[must_use]
    pub fn of_document(agent_id: &str, document: &AgentDocument) -> Self {
        spec_item(agent_id, item::spec_item(document, agent_id))
    }
}

fn status_of(agent_id: &str, item: &Item) -> Option<AgentStatus> {
    match item::status(item) {
        Ok(status) => Some(status),
        Err(message) => {
            // The controller rewrites a status it cannot read; say so rather than fail a read.
            tracing::warn!(agent_id, "status item unreadable, ignored: {message}");
            None
        }
    }
}

fn record_of(item: &Item) -> Option<&str> {
    item.get("record")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn agent_id_of(item: &Item) -> Option<&str> {
    item.get("agent_id")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// An RFC 3339 attribute as seconds since the epoch.
fn instant_of(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .and_then(|t| spec::parse_rfc3339(t))
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Groups items by agent, in agent id order. An agent is what has a spec or a status item;
/// its activity and wake items ride along, and every other record ([`Record::Other`]: the
/// leader lease, locks, summaries) is skipped, so listings show agents only.
fn group(items: impl IntoIterator<Item = Item>) -> Vec<Agent> {
    let mut agents: BTreeMap<String, Agent> = BTreeMap::new();
    for item in items {
        let Some(agent_id) = agent_id_of(&item).map(str::to_owned) else {
            continue;
        };
        let record = Record::of(record_of(&item).unwrap_or_default());
        if !record.of_agent() {
            continue;
        }
        let agent = agents
            .entry(agent_id.clone())
            .or_insert_with(|| Agent::absent(&agent_id));
        match record {
            Record::Spec => agent.spec = Some(spec_item(&agent_id, item)),
            Record::Status => agent.status = status_of(&agent_id, &item),
            Record::Activity => {
                agent.activity.last_activity_at = instant_of(&item, "last_activity_at");
            }
            Record::Wake => {
                agent.activity.wake_requested_ms = item
                    .get("requested_at")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|t| spec::parse_rfc3339(t))
                    .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
            }
            Record::SecretLock | Record::Other => {}
        }
    }
    agents
        .into_values()
        .filter(|a| a.spec.is_some() || a.status.is_some())
        .collect()
}

impl Store {
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Both items of one agent, read consistently (Query on the partition key).
    ///
    /// # Errors
    /// A failed Query.
    pub async fn get(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("agent_id = :id")
            .expression_attribute_values(":id", s(agent_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", &self.table, &e))?;
        Ok(group(out.items.unwrap_or_default()).into_iter().next())
    }

    /// The spec item of one agent, read consistently (GetItem).
    ///
    /// # Errors
    /// A failed GetItem.
    pub async fn get_spec(&self, agent_id: &str) -> Result<Option<SpecItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(agent_id, SPEC_RECORD)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, &e))?;
        Ok(out.item.map(|item| spec_item(agent_id, item)))
    }

    /// Writes a whole spec item (PutItem), on condition that the item is exactly as read in
    /// `expected`, or still absent when `expected` is `None`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when anyone changed the item since it was read; a failed
    /// PutItem otherwise.
    pub async fn put_spec(
        &self,
        agent_id: &str,
        document: &AgentDocument,
        expected: Option<&Snapshot>,
    ) -> Result<Snapshot, StoreError> {
        let item = item::spec_item(document, agent_id);
        let condition = item::unchanged_since(expected);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(condition.values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Snapshot { item }),
            Err(e) if StoreError::is_condition_failure(&e) => Err(StoreError::Conflict {
                agent_id: agent_id.to_owned(),
            }),
            Err(e) => Err(StoreError::aws("PutItem", &self.table, &e)),
        }
    }

    /// Makes the stored spec equal to `spec`, as `writer` (`cli`, `api`, `gitops:NAME`):
    /// reads the item, writes nothing when the spec is unchanged, and otherwise writes the
    /// whole item with `generation` bumped, on condition that nobody changed it since the read.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item changed between the read and the write (the
    /// caller re-reads and retries, or reports); [`StoreError::Deleting`] for an agent being
    /// deleted; [`StoreError::ClientIdChanged`] when `client_id` differs from the stored one.
    pub async fn apply(&self, spec: &AgentSpec, writer: &str) -> Result<Write, StoreError> {
        let current = self.get_spec(&spec.agent_id).await?;
        self.apply_over(spec, writer, current.as_ref()).await
    }

    /// [`Store::apply`] against a spec item the caller has already read.
    ///
    /// # Errors
    /// As [`Store::apply`].
    pub async fn apply_over(
        &self,
        spec: &AgentSpec,
        writer: &str,
        current: Option<&SpecItem>,
    ) -> Result<Write, StoreError> {
        let agent_id = &spec.agent_id;
        let Some(current) = current else {
            self.create(spec, writer, None).await?;
            return Ok(Write::Created);
        };
        if current.meta.is_deleting() {
            return Err(StoreError::Deleting {
                agent_id: agent_id.clone(),
            });
        }
        if let Some(existing) = current.client_id()
            && existing != spec.client_id
        {
            return Err(StoreError::ClientIdChanged {
                agent_id: agent_id.clone(),
                existing,
            });
        }
        // `restart_requested_at` is an imperative marker (`clawfleet restart`, the API's
        // /restart): a declarative writer whose manifest does not mention it keeps it, as
        // `kubectl apply` keeps the annotation `kubectl rollout restart` sets.
        let kept;
        let spec = match (&spec.restart_requested_at, current.spec.as_ref()) {
            (None, Ok(stored)) if stored.restart_requested_at.is_some() => {
                kept = AgentSpec {
                    restart_requested_at: stored.restart_requested_at.clone(),
                    ..spec.clone()
                };
                &kept
            }
            _ => spec,
        };
        if current.spec.as_ref().is_ok_and(|s| s == spec) {
            return Ok(Write::Unchanged);
        }
        let meta = Meta {
            generation: current.meta.generation + 1,
            managed_by: Some(writer.to_owned()),
            created_at: current.meta.created_at.clone(),
            deletion_requested_at: None,
            idempotency_fingerprint: current.meta.idempotency_fingerprint.clone(),
        };
        self.put_spec(agent_id, &spec.to_document(&meta), Some(&current.snapshot))
            .await?;
        Ok(Write::Updated)
    }

    /// Writes the spec item of a new agent (PutItem on condition that none exists), with the
    /// fingerprint of the API request that made it under an `Idempotency-Key`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the agent id is taken; a failed PutItem otherwise.
    pub async fn create(
        &self,
        spec: &AgentSpec,
        writer: &str,
        idempotency_fingerprint: Option<String>,
    ) -> Result<(), StoreError> {
        let meta = Meta {
            generation: 1,
            managed_by: Some(writer.to_owned()),
            created_at: Some(spec::now_rfc3339_millis()),
            deletion_requested_at: None,
            idempotency_fingerprint,
        };
        self.put_spec(&spec.agent_id, &spec.to_document(&meta), None)
            .await?;
        Ok(())
    }

    /// Sets one string attribute of an existing spec item and bumps `generation`
    /// (UpdateItem), without touching any other attribute, so it cannot lose anyone's edit.
    /// Refused when the agent is being deleted, and, given the item as read, when it is another
    /// incarnation now (deleted and created again, perhaps by another tenant, since the read).
    async fn mark(
        &self,
        agent_id: &str,
        read: Option<&SpecItem>,
        attribute: &str,
        at: &str,
        purge_data: bool,
    ) -> Result<(), StoreError> {
        // NULL is absent everywhere, a deletion request included.
        let mut condition = "attribute_exists(#id) AND (attribute_not_exists(#deleting) OR attribute_type(#deleting, :null))".to_owned();
        let mut request = self.client.update_item();
        if let Some(read) = read {
            for (name, value) in [
                ("client_id", read.client_id()),
                ("created_at", read.meta.created_at.clone()),
            ] {
                let placeholder = format!("#{name}");
                condition.push_str(&match &value {
                    Some(_) => format!(" AND {placeholder} = :{name}"),
                    None => format!(" AND attribute_not_exists({placeholder})"),
                });
                request = request.expression_attribute_names(placeholder, name);
                if let Some(value) = value {
                    request = request.expression_attribute_values(format!(":{name}"), s(&value));
                }
            }
        }
        let mut update = "SET #at = :at, #gen = if_not_exists(#gen, :zero) + :one".to_owned();
        if purge_data {
            // In the same UpdateItem: the controller never sees the deletion without the purge.
            update.push_str(", #purge = :purge");
            request = request
                .expression_attribute_names("#purge", PURGE_DATA)
                .expression_attribute_values(":purge", AttributeValue::Bool(true));
        }
        let result = request
            .table_name(&self.table)
            .set_key(Some(key(agent_id, SPEC_RECORD)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#at", attribute)
            .expression_attribute_names("#gen", "generation")
            .expression_attribute_names("#id", "agent_id")
            .expression_attribute_names("#deleting", "deletion_requested_at")
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":null", s("NULL"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if StoreError::is_condition_failure(&e) => Err(StoreError::Conflict {
                agent_id: agent_id.to_owned(),
            }),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }

    /// Asks for a new task (`restart_requested_at = at`), like `kubectl rollout restart`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the agent does not exist or is being deleted.
    pub async fn request_restart(&self, agent_id: &str, at: &str) -> Result<(), StoreError> {
        self.mark(agent_id, None, "restart_requested_at", at, false)
            .await
    }

    /// [`Store::request_restart`] of the incarnation the caller read: refused when the agent
    /// was deleted and created again since.
    ///
    /// # Errors
    /// As [`Store::request_restart`].
    pub async fn request_restart_of(&self, read: &SpecItem, at: &str) -> Result<(), StoreError> {
        self.mark(
            &read.agent_id,
            Some(read),
            "restart_requested_at",
            at,
            false,
        )
        .await
    }

    /// Sets `desired_state` alone (UpdateItem), leaving every other attribute and `managed_by`
    /// as they are: starting or stopping is an imperative toggle, like `clawfleet restart`,
    /// not a takeover of a spec someone else manages. Only on the incarnation the caller read.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the agent no longer exists, is being deleted, or is another
    /// incarnation now.
    pub async fn set_desired_state(
        &self,
        read: &SpecItem,
        state: spec::DesiredState,
    ) -> Result<(), StoreError> {
        self.mark(
            &read.agent_id,
            Some(read),
            "desired_state",
            state.as_str(),
            false,
        )
        .await
    }

    /// Soft-deletes the agent (`deletion_requested_at = at`). The controller tears down its
    /// resources and then removes its items. Works for a spec that does not validate.
    /// `purge_data` also sets `purge_data_on_delete` in the same UpdateItem, so the controller
    /// empties the agent's directory before deleting its access point.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the agent does not exist or is already being deleted.
    pub async fn request_deletion(
        &self,
        agent_id: &str,
        at: &str,
        purge_data: bool,
    ) -> Result<(), StoreError> {
        self.mark(agent_id, None, "deletion_requested_at", at, purge_data)
            .await
    }

    /// [`Store::apply_over`] that also takes the agent over: a spec equal to the stored one is
    /// still written, with `managed_by = writer` and `generation` bumped, when someone else (or
    /// nobody) manages it. GitOps `--adopt` uses it.
    ///
    /// # Errors
    /// As [`Store::apply`].
    pub async fn claim_over(
        &self,
        spec: &AgentSpec,
        writer: &str,
        current: &SpecItem,
    ) -> Result<Write, StoreError> {
        let write = self.apply_over(spec, writer, Some(current)).await?;
        if write != Write::Unchanged || current.meta.managed_by.as_deref() == Some(writer) {
            return Ok(write);
        }
        // Unchanged means the stored spec is valid and equal to `spec`, restart marker included.
        let Ok(stored) = &current.spec else {
            return Ok(write);
        };
        let meta = Meta {
            generation: current.meta.generation + 1,
            managed_by: Some(writer.to_owned()),
            created_at: current.meta.created_at.clone(),
            deletion_requested_at: None,
            idempotency_fingerprint: current.meta.idempotency_fingerprint.clone(),
        };
        self.put_spec(
            &spec.agent_id,
            &stored.to_document(&meta),
            Some(&current.snapshot),
        )
        .await?;
        Ok(Write::Updated)
    }

    /// Soft-deletes an agent whose spec item the caller has read (UpdateItem of
    /// `deletion_requested_at` and `generation`), on condition that the item is still exactly as
    /// read: unlike [`Store::request_deletion`], a prune never removes an agent that someone
    /// edited or took over since the read. Works for a spec that does not validate.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the item changed or disappeared since it was read;
    /// [`StoreError::Deleting`] when it was already being deleted.
    pub async fn request_deletion_over(
        &self,
        current: &SpecItem,
        at: &str,
        purge_data: bool,
    ) -> Result<(), StoreError> {
        if current.meta.is_deleting() {
            return Err(StoreError::Deleting {
                agent_id: current.agent_id.clone(),
            });
        }
        let condition = item::unchanged_since(Some(&current.snapshot));
        let mut names = condition.names;
        names.insert("#deleting".to_owned(), "deletion_requested_at".to_owned());
        names.insert("#gen".to_owned(), "generation".to_owned());
        let mut values = condition.values.unwrap_or_default();
        values.insert(":deleting".to_owned(), s(at));
        values.insert(
            ":gen".to_owned(),
            AttributeValue::N((current.meta.generation + 1).to_string()),
        );
        if purge_data {
            names.insert("#purge".to_owned(), PURGE_DATA.to_owned());
            values.insert(":purge".to_owned(), AttributeValue::Bool(true));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&current.agent_id, SPEC_RECORD)))
            .update_expression(if purge_data {
                "SET #deleting = :deleting, #gen = :gen, #purge = :purge"
            } else {
                "SET #deleting = :deleting, #gen = :gen"
            })
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if StoreError::is_condition_failure(&e) => Err(StoreError::Conflict {
                agent_id: current.agent_id.clone(),
            }),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }

    /// Every spec item in the table, read consistently (Scan, all pages, status items filtered
    /// out). GitOps needs them all: which agents a source owns is known only from the items.
    ///
    /// # Errors
    /// A failed Scan page.
    pub async fn list_specs(&self) -> Result<Vec<SpecItem>, StoreError> {
        let mut specs: Vec<SpecItem> = self
            .scan(true, true)
            .await?
            .into_iter()
            .filter_map(|item| {
                let agent_id = agent_id_of(&item)?.to_owned();
                Some(spec_item(&agent_id, item))
            })
            .collect();
        specs.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(specs)
    }

    /// Removes an agent's items (DeleteItem of the spec, on condition it is exactly as read, of
    /// the status, and of any secret-writer lock).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the spec changed since it was read.
    pub async fn delete_items(
        &self,
        agent_id: &str,
        expected: &Snapshot,
    ) -> Result<(), StoreError> {
        let condition = item::unchanged_since(Some(expected));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(agent_id, SPEC_RECORD)))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(condition.values)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if StoreError::is_condition_failure(&e) => {
                return Err(StoreError::Conflict {
                    agent_id: agent_id.to_owned(),
                });
            }
            Err(e) => return Err(StoreError::aws("DeleteItem", &self.table, &e)),
        }
        // The status, activity, and a secret-writer lock a crashed writer may have left.
        for record in [
            STATUS_RECORD,
            ACTIVITY_RECORD,
            WAKE_RECORD,
            crate::lease::SECRET_LOCK_RECORD,
        ] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(agent_id, record)))
                .send()
                .await
                .map_err(|e| StoreError::aws("DeleteItem", &self.table, &e))?;
        }
        Ok(())
    }

    /// Removes the status item alone (DeleteItem): the end of garbage collection for an
    /// agent whose spec is already gone.
    ///
    /// # Errors
    /// A failed DeleteItem.
    pub async fn delete_status(&self, agent_id: &str) -> Result<(), StoreError> {
        // Activity and wakes go too: one reported while the agent was being deleted would
        // otherwise stay behind.
        for record in [STATUS_RECORD, ACTIVITY_RECORD, WAKE_RECORD] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(agent_id, record)))
                .send()
                .await
                .map_err(|e| StoreError::aws("DeleteItem", &self.table, &e))?;
        }
        Ok(())
    }

    /// Records activity of `agent` (as just read) at `now`, only when its `last_activity_at`
    /// is older than [`ACTIVITY_RESOLUTION_SECS`]: a fresh one as read costs no write at all,
    /// and the UpdateItem is conditioned on the stored value being that old, so concurrent
    /// reporters (several API replicas) still write at most once a minute per agent. Returns
    /// whether it wrote.
    ///
    /// # Errors
    /// A failed UpdateItem (a coalesced report is not an error).
    pub async fn record_activity(&self, agent: &Agent, now: i64) -> Result<bool, StoreError> {
        if agent
            .activity
            .last_activity_at
            .is_some_and(|at| at > now - ACTIVITY_RESOLUTION_SECS)
        {
            return Ok(false);
        }
        let agent_id = agent.agent_id.as_str();
        let at = |secs: i64| {
            time::OffsetDateTime::from_unix_timestamp(secs)
                .map(spec::format_rfc3339)
                .unwrap_or_default()
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(agent_id, ACTIVITY_RECORD)))
            .update_expression("SET last_activity_at = :now")
            .condition_expression(
                "attribute_not_exists(last_activity_at) OR last_activity_at < :cutoff",
            )
            .expression_attribute_values(":now", s(&at(now)))
            .expression_attribute_values(":cutoff", s(&at(now - ACTIVITY_RESOLUTION_SECS + 1)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("UpdateItem", &self.table, &e)),
        }
    }

    /// Asks the controller to wake the agent (PutItem of the wake item with `requested_at`):
    /// the stream watch enqueues the agent within a second, and the wake counts as activity.
    ///
    /// # Errors
    /// A failed PutItem.
    pub async fn request_wake(&self, agent_id: &str, at: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("agent_id", s(agent_id))
            .item("record", s(WAKE_RECORD))
            .item("requested_at", s(at))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", &self.table, &e))?;
        Ok(())
    }

    /// Writes the status item (PutItem) unless it says the same as `previous`.
    /// Returns whether it wrote.
    ///
    /// # Errors
    /// A failed PutItem.
    pub async fn put_status(
        &self,
        agent_id: &str,
        status: &AgentStatus,
        previous: Option<&AgentStatus>,
    ) -> Result<bool, StoreError> {
        if previous.is_some_and(|p| p.same_as(status)) {
            return Ok(false);
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::status_item(status, agent_id)))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", &self.table, &e))?;
        Ok(true)
    }

    /// Every agent in the table, spec and status, in agent id order (Scan, all pages).
    ///
    /// # Errors
    /// A failed Scan page.
    pub async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        Ok(group(self.scan(false, false).await?))
    }

    /// [`Store::list`], read consistently: the controller's view of the table trusts what it
    /// read until the stream shows a change, so an item written just before the Scan must not
    /// show its previous version.
    ///
    /// # Errors
    /// A failed Scan page.
    pub async fn list_consistent(&self) -> Result<Vec<Agent>, StoreError> {
        Ok(group(self.scan(false, true).await?))
    }

    /// Every item of the table (Scan, all pages), or only spec items.
    async fn scan(&self, specs_only: bool, consistent: bool) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(consistent)
                .set_exclusive_start_key(start);
            if specs_only {
                request = request
                    .filter_expression("#record = :spec")
                    .expression_attribute_names("#record", "record")
                    .expression_attribute_values(":spec", s(SPEC_RECORD));
            }
            let out = request
                .send()
                .await
                .map_err(|e| StoreError::aws("Scan", &self.table, &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// One page of a tenant's agents, in agent id order after `after`: Query on the
    /// `by-client` index with a Limit, then their statuses (BatchGetItem).
    ///
    /// # Errors
    /// A failed Query or BatchGetItem.
    pub async fn page_by_client(
        &self,
        client_id: &str,
        limit: i32,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        let (items, last) = self
            .query_by_client(client_id, Some(limit), start_key(after))
            .await?;
        self.page_of(items, page_key(last)).await
    }

    /// One Query page of the `by-client` index, and where the next starts.
    async fn query_by_client(
        &self,
        client_id: &str,
        limit: Option<i32>,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<Item>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CLIENT_INDEX)
            .key_condition_expression("client_id = :c")
            .expression_attribute_values(":c", s(client_id))
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query", &self.table, &e))?;
        Ok((
            out.items.unwrap_or_default(),
            out.last_evaluated_key.filter(|k| !k.is_empty()),
        ))
    }

    /// One page of every tenant's agents, in table order after `after`, then their statuses.
    ///
    /// A Scan's Limit counts the items it evaluates, statuses and the lease included, so one
    /// Scan may find fewer spec items than asked: Scans go on from where the last stopped until
    /// the page holds `limit` agents or the table ends. The next page starts after the whole
    /// key the last Scan evaluated, so every agent is listed once, whatever ends a page.
    ///
    /// # Errors
    /// A failed Scan or BatchGetItem.
    pub async fn page_all(&self, limit: i32, after: Option<&PageKey>) -> Result<Page, StoreError> {
        let want = usize::try_from(limit.max(1)).unwrap_or(1);
        let mut items = Vec::new();
        let mut start = start_key(after);
        loop {
            let remaining = i32::try_from(want - items.len()).unwrap_or(limit);
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#record = :spec")
                .expression_attribute_names("#record", "record")
                .expression_attribute_values(":spec", s(SPEC_RECORD))
                .limit(remaining)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Scan", &self.table, &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || items.len() >= want {
                break;
            }
        }
        self.page_of(items, page_key(start)).await
    }

    async fn page_of(
        &self,
        mut items: Vec<Item>,
        next: Option<PageKey>,
    ) -> Result<Page, StoreError> {
        let ids: Vec<String> = items
            .iter()
            .filter_map(|i| agent_id_of(i).map(str::to_owned))
            .collect();
        items.extend(self.batch_get(&ids, STATUS_RECORD).await?);
        Ok(Page {
            agents: group(items),
            next,
        })
    }

    /// One tenant's agents: Query on the `by-client` index (all pages), then their statuses
    /// (BatchGetItem, 100 keys a call).
    ///
    /// # Errors
    /// A failed Query or BatchGetItem.
    pub async fn list_by_client(&self, client_id: &str) -> Result<Vec<Agent>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.query_by_client(client_id, None, start).await?;
            items.extend(page);
            start = next;
            if start.is_none() {
                break;
            }
        }
        Ok(self.page_of(items, None).await?.agents)
    }

    /// BatchGetItem of one record kind for many agents, retrying unprocessed keys.
    ///
    /// # Errors
    /// A failed BatchGetItem, or [`StoreError::Incomplete`] when DynamoDB still left keys
    /// unprocessed after every retry: a partial answer would show agents without their status.
    async fn batch_get(&self, agent_ids: &[String], record: &str) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in agent_ids.chunks(100) {
            let keys = chunk.iter().map(|id| key(id, record)).collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| StoreError::TableShape {
                    table: self.table.clone(),
                    problem: format!("BatchGetItem request: {e}"),
                })?;
            let mut attempt = 0u32;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchGetItem", &self.table, &e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt + 1 >= BATCH_GET_ATTEMPTS {
                            return Err(StoreError::Incomplete {
                                operation: "BatchGetItem",
                                table: self.table.clone(),
                                missing: rest.keys().len(),
                            });
                        }
                        request = rest;
                        let pause = std::time::Duration::from_millis(50 << attempt.min(6));
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(agent_id: &str, record: &str, extra: &[(&str, &str)]) -> Item {
        let mut item = key(agent_id, record);
        for (name, value) in extra {
            item.insert((*name).to_owned(), s(value));
        }
        item
    }

    #[test]
    fn listings_show_agents_with_their_activity_and_skip_every_other_record() {
        let agents = group([
            item("a1", SPEC_RECORD, &[("client_id", "acme")]),
            item(
                "a1",
                ACTIVITY_RECORD,
                &[("last_activity_at", "2026-06-01T10:00:00Z")],
            ),
            item(
                "a1",
                WAKE_RECORD,
                &[("requested_at", "2026-06-01T10:05:00.250Z")],
            ),
            // Activity left behind by an agent already gone is not an agent.
            item(
                "gone",
                ACTIVITY_RECORD,
                &[("last_activity_at", "2026-06-01T10:00:00Z")],
            ),
            item("_leader", "lease", &[]),
            item("_fleet", "summary", &[]),
        ]);
        let ids: Vec<&str> = agents.iter().map(|a| a.agent_id.as_str()).collect();
        assert_eq!(ids, ["a1"]);
        let activity = agents[0].activity;
        assert_eq!(activity.last_activity_at, Some(1_780_308_000));
        assert_eq!(activity.wake_requested_ms, Some(1_780_308_300_250));
        assert_eq!(agents[0].last_activity(), Some(1_780_308_300));
    }

    #[test]
    fn only_spec_changes_and_wakes_enqueue() {
        let enqueues: Vec<&str> = [
            SPEC_RECORD,
            STATUS_RECORD,
            ACTIVITY_RECORD,
            WAKE_RECORD,
            crate::lease::SECRET_LOCK_RECORD,
            "lease",
        ]
        .into_iter()
        .filter(|r| Record::of(r).enqueues())
        .collect();
        assert_eq!(enqueues, [SPEC_RECORD, WAKE_RECORD]);
    }
}
