//! The table's shape, and `bootstrap`, which creates it when missing.

use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, TableStatus,
};

use crate::{BY_CLIENT_INDEX, Store, StoreError};

/// The table name unless configured otherwise.
pub const DEFAULT_TABLE: &str = "clawfleet-agents";

/// The reserved item holding the API's id key: `agent_id = "_clawfleet"`, which no agent can be
/// called (ids are DNS labels), `record = "id-key"`, which no listing reads (they read spec and
/// status records only).
pub const ID_KEY_ID: &str = "_clawfleet";
/// See [`ID_KEY_ID`].
pub const ID_KEY_RECORD: &str = "id-key";

/// What `bootstrap` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    Created,
    AlreadyExisted,
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| shape_error(name, &e))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| shape_error(name, &e))
}

fn shape_error(name: &str, e: &dyn std::error::Error) -> StoreError {
    StoreError::TableShape {
        table: String::new(),
        problem: format!("{name}: {e}"),
    }
}

impl Store {
    /// Creates the table, its stream and the `by-client` index when missing, then waits until
    /// it is ACTIVE. Idempotent: an existing table is checked, never changed.
    ///
    /// # Errors
    /// A failed DescribeTable or CreateTable, or an existing table with another shape.
    pub async fn bootstrap(&self) -> Result<BootstrapOutcome, StoreError> {
        let outcome = match self.describe_table().await? {
            Some(table) => {
                self.check_shape(&table)?;
                BootstrapOutcome::AlreadyExisted
            }
            None => self.create_table().await?,
        };
        self.wait_active().await?;
        Ok(outcome)
    }

    /// Creates the API's id key once, at random (PutItem of 64 random bytes on condition the
    /// item is absent), so that every `serve` replica shares it and it survives restarts.
    /// Returns whether it created it; an existing key is never replaced, since ids and cursors
    /// made with it would change meaning.
    ///
    /// # Errors
    /// A failed PutItem.
    pub async fn ensure_id_key(&self) -> Result<bool, StoreError> {
        let key: [u8; 64] = rand::random();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("agent_id", AttributeValue::S(ID_KEY_ID.to_owned()))
            .item("record", AttributeValue::S(ID_KEY_RECORD.to_owned()))
            .item("key", AttributeValue::B(Blob::new(key.to_vec())))
            .condition_expression("attribute_not_exists(agent_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if StoreError::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("PutItem", &self.table, &e)),
        }
    }

    /// The API's id key (GetItem, consistent); `None` until `bootstrap` made it.
    ///
    /// # Errors
    /// A failed GetItem, or a key item without a binary `key`.
    pub async fn id_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("agent_id", AttributeValue::S(ID_KEY_ID.to_owned()))
            .key("record", AttributeValue::S(ID_KEY_RECORD.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, &e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        match item.get("key") {
            Some(AttributeValue::B(blob)) => Ok(Some(blob.as_ref().to_vec())),
            _ => Err(StoreError::TableShape {
                table: self.table.clone(),
                problem: format!(
                    "the item {ID_KEY_ID}/{ID_KEY_RECORD} has no binary key attribute"
                ),
            }),
        }
    }

    /// DescribeTable; `None` when the table does not exist.
    async fn describe_table(&self) -> Result<Option<TableDescription>, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::aws("DescribeTable", &self.table, &e)),
        }
    }

    /// CreateTable with the contract's keys, stream and index. A concurrent creator wins
    /// harmlessly (ResourceInUseException).
    async fn create_table(&self) -> Result<BootstrapOutcome, StoreError> {
        let index = GlobalSecondaryIndex::builder()
            .index_name(BY_CLIENT_INDEX)
            .key_schema(key("client_id", KeyType::Hash)?)
            .key_schema(key("agent_id", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| shape_error(BY_CLIENT_INDEX, &e))?;
        let stream = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .map_err(|e| shape_error("stream", &e))?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute("agent_id")?)
            .attribute_definitions(string_attribute("record")?)
            .attribute_definitions(string_attribute("client_id")?)
            .key_schema(key("agent_id", KeyType::Hash)?)
            .key_schema(key("record", KeyType::Range)?)
            .global_secondary_indexes(index)
            .stream_specification(stream)
            .send()
            .await;
        match result {
            Ok(_) => Ok(BootstrapOutcome::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(BootstrapOutcome::AlreadyExisted)
            }
            Err(e) => Err(StoreError::aws("CreateTable", &self.table, &e)),
        }
    }

    fn check_shape(&self, table: &TableDescription) -> Result<(), StoreError> {
        let problem = |problem: &str| StoreError::TableShape {
            table: self.table.clone(),
            problem: problem.to_owned(),
        };
        let keys: Vec<(&str, &KeyType)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        if keys != [("agent_id", &KeyType::Hash), ("record", &KeyType::Range)] {
            return Err(problem(
                "key schema must be agent_id (partition) and record (sort)",
            ));
        }
        let has_index = table
            .global_secondary_indexes()
            .iter()
            .any(|i| i.index_name() == Some(BY_CLIENT_INDEX));
        if !has_index {
            return Err(problem("the by-client global secondary index is missing"));
        }
        let stream_on = table
            .stream_specification()
            .is_some_and(|s| s.stream_enabled());
        if !stream_on {
            return Err(problem("the stream (NEW_AND_OLD_IMAGES) is not enabled"));
        }
        Ok(())
    }

    async fn wait_active(&self) -> Result<(), StoreError> {
        for _ in 0..120 {
            let status = self
                .describe_table()
                .await?
                .and_then(|t| t.table_status().cloned());
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::TableShape {
            table: self.table.clone(),
            problem: "did not become ACTIVE within 60 s".into(),
        })
    }
}
