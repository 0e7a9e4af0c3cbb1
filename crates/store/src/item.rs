//! DynamoDB items <-> spec documents and statuses, and the whole-item write condition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use spec::{AgentDocument, AgentStatus};

use crate::{SPEC_RECORD, STATUS_RECORD};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// An item exactly as it was read: the basis of a conditional write and of an HTTP ETag.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub(crate) item: Item,
}

impl Snapshot {
    /// A stable hash of the item as read, for HTTP `ETag`s.
    ///
    /// Any change to any attribute, including one made in the console without bumping
    /// `generation`, changes it.
    #[must_use]
    pub fn etag(&self) -> String {
        let mut bytes = Vec::new();
        canonical(&AttributeValue::M(self.item.clone()), &mut bytes);
        hex::encode(&Sha256::digest(&bytes)[..16])
    }

    /// The raw attribute, for diagnostics.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&AttributeValue> {
        self.item.get(name)
    }
}

/// A deterministic encoding of an attribute value: maps by sorted key, sets sorted.
fn canonical(value: &AttributeValue, out: &mut Vec<u8>) {
    fn push(out: &mut Vec<u8>, tag: &str, text: &str) {
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(&(text.len() as u64).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    match value {
        AttributeValue::S(s) => push(out, "S", s),
        AttributeValue::N(n) => push(out, "N", n),
        AttributeValue::Bool(b) => push(out, "BOOL", if *b { "1" } else { "0" }),
        AttributeValue::Null(_) => push(out, "NULL", ""),
        AttributeValue::B(b) => push(out, "B", &hex::encode(b.as_ref())),
        AttributeValue::Ss(set) | AttributeValue::Ns(set) => {
            let mut set = set.clone();
            set.sort();
            push(
                out,
                if matches!(value, AttributeValue::Ss(_)) {
                    "SS"
                } else {
                    "NS"
                },
                &set.len().to_string(),
            );
            for s in &set {
                push(out, "", s);
            }
        }
        AttributeValue::Bs(set) => {
            let mut set: Vec<String> = set.iter().map(|b| hex::encode(b.as_ref())).collect();
            set.sort();
            push(out, "BS", &set.len().to_string());
            for s in &set {
                push(out, "", s);
            }
        }
        AttributeValue::L(list) => {
            push(out, "L", &list.len().to_string());
            for v in list {
                canonical(v, out);
            }
        }
        AttributeValue::M(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            push(out, "M", &keys.len().to_string());
            for k in keys {
                push(out, "", k);
                canonical(&map[k], out);
            }
        }
        _ => push(out, "?", ""),
    }
}

/// The DynamoDB type name of a value, for error messages.
fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::B(_) => "B",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        _ => "an unknown type",
    }
}

/// Whether the value holds a type this SDK does not know (from a newer DynamoDB); such values
/// are refused before deserialization.
fn has_unknown_type(value: &AttributeValue) -> bool {
    match value {
        AttributeValue::L(list) => list.iter().any(has_unknown_type),
        AttributeValue::M(map) => map.values().any(has_unknown_type),
        AttributeValue::S(_)
        | AttributeValue::N(_)
        | AttributeValue::Bool(_)
        | AttributeValue::Null(_)
        | AttributeValue::B(_)
        | AttributeValue::Ss(_)
        | AttributeValue::Ns(_)
        | AttributeValue::Bs(_) => false,
        _ => true,
    }
}

/// Drops NULL attributes, at the top and inside maps: NULL means absent everywhere, so that a
/// value typed as NULL in the console never counts as set (`deletion_requested_at` included).
fn without_nulls(item: Item) -> Item {
    item.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                AttributeValue::M(map) => AttributeValue::M(without_nulls(map)),
                AttributeValue::L(list) => AttributeValue::L(
                    list.into_iter()
                        .map(|v| match v {
                            AttributeValue::M(map) => AttributeValue::M(without_nulls(map)),
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            };
            (k, v)
        })
        .collect()
}

/// The value at a serde path (`env.FOO`, `plugins[0].source`) of an item, for error messages.
fn value_at<'a>(item: &'a Item, path: &str) -> Option<&'a AttributeValue> {
    let mut segments = path.split('.').flat_map(|part| {
        let mut pieces = part.split('[');
        let head = pieces.next().map(|h| (h, None));
        head.into_iter()
            .chain(pieces.map(|index| ("", index.trim_end_matches(']').parse::<usize>().ok())))
    });
    let (first, _) = segments.next()?;
    let mut value = item.get(first)?;
    for (key, index) in segments {
        value = match (value, index) {
            (AttributeValue::L(list), Some(i)) => list.get(i)?,
            (AttributeValue::M(map), None) => map.get(key)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Parses an item into `T`, naming the attribute path and its DynamoDB type on failure.
fn from_item<T: serde::de::DeserializeOwned>(mut item: Item) -> Result<T, String> {
    item.remove("record");
    let item = without_nulls(item);
    if let Some((name, _)) = item.iter().find(|(_, v)| has_unknown_type(v)) {
        return Err(format!(
            "{name}: holds an attribute type clawfleet does not read"
        ));
    }
    let de =
        serde_dynamo::Deserializer::from_attribute_value(AttributeValue::M(item.clone()).into());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if inner.starts_with("unknown field") {
            let name = inner.split('`').nth(1).unwrap_or(&path);
            // The path ends at the unknown key inside a nested map; at the top it is the key.
            let field = if path == "." || path.is_empty() || !path.ends_with(name) {
                name.to_owned()
            } else {
                path
            };
            return format!("{field}: unknown attribute (a typo?)");
        }
        let found = value_at(&item, &path)
            .map(|v| format!(" (found type {})", type_name(v)))
            .unwrap_or_default();
        spec::manifest::path_message(&path, &format!("{}{found}", inner.to_lowercase()))
    })
}

/// Parses a spec item as read.
pub(crate) fn spec_document(item: &Item) -> Result<AgentDocument, String> {
    from_item(item.clone())
}

/// The status item's attribute for [`AgentStatus::client_id`]. Not `client_id`: the sparse
/// `by-client` index keys on that name, and only spec items may populate it.
pub(crate) const STATUS_OWNER: &str = "owner_client_id";

/// Parses a status item as read.
pub(crate) fn status(item: &Item) -> Result<AgentStatus, String> {
    let mut item = item.clone();
    item.remove("agent_id");
    // Only the controller writes statuses; a `client_id` typed into one is not the owner.
    item.remove("client_id");
    if let Some(owner) = item.remove(STATUS_OWNER) {
        item.insert("client_id".to_owned(), owner);
    }
    from_item(item)
}

fn to_item<T: serde::Serialize>(value: &T, agent_id: &str, record: &str) -> Item {
    // Both types serialize to maps of strings, numbers, lists and maps, which cannot fail.
    let mut item: Item = serde_dynamo::to_item(value).unwrap_or_default();
    item.insert("agent_id".into(), AttributeValue::S(agent_id.to_owned()));
    item.insert("record".into(), AttributeValue::S(record.to_owned()));
    item
}

pub(crate) fn spec_item(document: &AgentDocument, agent_id: &str) -> Item {
    to_item(document, agent_id, SPEC_RECORD)
}

pub(crate) fn status_item(status: &AgentStatus, agent_id: &str) -> Item {
    let mut item = to_item(status, agent_id, STATUS_RECORD);
    if let Some(owner) = item.remove("client_id") {
        item.insert(STATUS_OWNER.to_owned(), owner);
    }
    item
}

/// A condition expression with its names and values.
pub(crate) struct Condition {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: Option<HashMap<String, AttributeValue>>,
}

/// The condition that the spec item is exactly as read (or still absent when `expected` is
/// `None`): every attribute read is unchanged, and every known attribute that was absent is
/// still absent.
pub(crate) fn unchanged_since(expected: Option<&Snapshot>) -> Condition {
    let mut names = HashMap::from([("#id".to_owned(), "agent_id".to_owned())]);
    let Some(snapshot) = expected else {
        return Condition {
            expression: "attribute_not_exists(#id)".into(),
            names,
            values: None,
        };
    };
    let mut clauses = vec!["attribute_exists(#id)".to_owned()];
    let mut values = HashMap::new();
    let mut attributes: Vec<(&String, &AttributeValue)> = snapshot
        .item
        .iter()
        .filter(|(k, _)| k.as_str() != "agent_id" && k.as_str() != "record")
        .collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in attributes.into_iter().enumerate() {
        names.insert(format!("#a{i}"), name.clone());
        values.insert(format!(":a{i}"), value.clone());
        clauses.push(format!("#a{i} = :a{i}"));
    }
    for (i, name) in AgentDocument::ATTRIBUTES
        .iter()
        .filter(|n| **n != "agent_id" && !snapshot.item.contains_key(**n))
        .enumerate()
    {
        names.insert(format!("#n{i}"), (*name).to_owned());
        clauses.push(format!("attribute_not_exists(#n{i})"));
    }
    Condition {
        expression: clauses.join(" AND "),
        names,
        values: Some(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    /// An item as a person types it in the console: numbers as N, lists as L, a string set,
    /// optional fields absent.
    fn console_item() -> Item {
        HashMap::from([
            ("agent_id".into(), s("acme-support")),
            ("record".into(), s("spec")),
            ("client_id".into(), s("acme")),
            ("cpu".into(), n("1024")),
            ("memory".into(), n("2048")),
            (
                "skills".into(),
                AttributeValue::L(vec![s("web"), s("voice")]),
            ),
            (
                "secret_keys".into(),
                AttributeValue::Ss(vec!["OPENAI_API_KEY".into()]),
            ),
            (
                "plugins".into(),
                AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                    ("name".into(), s("calendar")),
                    ("source".into(), s("https://github.com/openclaw/calendar")),
                    ("version".into(), s("1.4.0")),
                ]))]),
            ),
            (
                "tags".into(),
                AttributeValue::M(HashMap::from([("CostCenter".into(), s("acme"))])),
            ),
        ])
    }

    #[test]
    fn console_typed_item_parses() {
        let doc = spec_document(&console_item()).unwrap_or_else(|e| panic!("{e}"));
        let spec = doc.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.resources().cpu, 1024);
        assert_eq!(spec.skills, ["web", "voice"]);
        assert_eq!(spec.secret_keys, ["OPENAI_API_KEY"]);
        assert_eq!(spec.plugins[0].name, "calendar");
        assert_eq!(spec.tags["CostCenter"], "acme");
        assert_eq!(spec.image, None);
        assert_eq!(doc.generation, None);
    }

    #[test]
    fn spec_to_item_to_spec_is_identity() {
        let doc = spec_document(&console_item()).unwrap_or_else(|e| panic!("{e}"));
        let spec = doc.validate().unwrap_or_else(|e| panic!("{e}"));
        let meta = spec::Meta {
            generation: 4,
            managed_by: Some("cli".into()),
            created_at: Some("2026-11-25T10:00:00Z".into()),
            deletion_requested_at: None,
            idempotency_fingerprint: None,
        };
        let item = spec_item(&spec.to_document(&meta), &spec.agent_id);
        assert_eq!(item["cpu"], n("1024"), "numbers are written as N");
        assert_eq!(item["record"], s("spec"));
        let back = spec_document(&item).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.validate().unwrap_or_else(|e| panic!("{e}")), spec);
        assert_eq!(spec::Meta::of(&back), meta);
    }

    #[test]
    fn unknown_attribute_is_named() {
        let mut item = console_item();
        item.insert("imgae".into(), s("openclaw/openclaw:v1"));
        let err = spec_document(&item).expect_err("must be refused");
        assert_eq!(err, "imgae: unknown attribute (a typo?)");
    }

    #[test]
    fn wrong_type_names_the_attribute_and_the_type_found() {
        let mut item = console_item();
        item.insert("cpu".into(), s("1024"));
        let err = spec_document(&item).expect_err("must be refused");
        assert!(err.starts_with("cpu: "), "{err}");
        assert!(err.contains("found type S"), "{err}");
    }

    #[test]
    fn wrong_type_inside_a_list_names_the_path() {
        let mut item = console_item();
        item.insert(
            "plugins".into(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("name".into(), s("calendar")),
                ("source".into(), n("5")),
                ("version".into(), s("1")),
            ]))]),
        );
        let err = spec_document(&item).expect_err("must be refused");
        assert!(err.starts_with("plugins[0].source: "), "{err}");
    }

    #[test]
    fn status_round_trips() {
        let status = AgentStatus {
            phase: spec::Phase::Running,
            client_id: Some("acme".into()),
            task_arn: Some("arn:aws:ecs:us-east-1:123:task/c/abc".into()),
            restarts: 2,
            conditions: vec![spec::Condition {
                kind: spec::ConditionKind::Ready,
                status: spec::ConditionStatus::True,
                reason: "TaskRunning".into(),
                message: String::new(),
                time: "2026-11-25T10:00:00Z".into(),
            }],
            ..AgentStatus::default()
        };
        let item = status_item(&status, "a1");
        assert_eq!(item["phase"], s("Running"));
        assert_eq!(item["owner_client_id"], s("acme"), "a plain S attribute");
        assert!(
            !item.contains_key("client_id"),
            "status items stay out of the by-client index"
        );
        assert_eq!(item["conditions"].as_l().map(Vec::len), Ok(1));
        assert_eq!(super::status(&item), Ok(status));
    }

    #[test]
    fn etag_changes_with_any_attribute_and_ignores_set_order() {
        let a = Snapshot {
            item: console_item(),
        };
        let mut edited = console_item();
        edited.insert("memory".into(), n("3072"));
        let b = Snapshot { item: edited };
        assert_ne!(a.etag(), b.etag());
        let mut reordered = console_item();
        reordered.insert(
            "secret_keys".into(),
            AttributeValue::Ss(vec!["B".into(), "A".into()]),
        );
        let mut ordered = console_item();
        ordered.insert(
            "secret_keys".into(),
            AttributeValue::Ss(vec!["A".into(), "B".into()]),
        );
        assert_eq!(
            Snapshot { item: reordered }.etag(),
            Snapshot { item: ordered }.etag()
        );
    }

    #[test]
    fn condition_covers_every_attribute_read_and_every_known_absent_one() {
        let snapshot = Snapshot {
            item: console_item(),
        };
        let c = unchanged_since(Some(&snapshot));
        let compared = c.values.as_ref().map_or(0, HashMap::len);
        assert_eq!(compared, console_item().len() - 2, "all but the keys");
        assert!(c.names.values().any(|n| n == "image"));
        assert!(c.expression.contains("attribute_not_exists"));
        let fresh = unchanged_since(None);
        assert_eq!(fresh.expression, "attribute_not_exists(#id)");
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn item(extra: &[(&str, AttributeValue)]) -> Item {
        let mut item: Item = HashMap::from([
            ("agent_id".into(), s("acme-support")),
            ("record".into(), s("spec")),
            ("client_id".into(), s("acme")),
        ]);
        for (k, v) in extra {
            item.insert((*k).to_owned(), v.clone());
        }
        item
    }

    #[test]
    fn a_wrong_type_inside_a_map_names_the_whole_path_and_the_type_found_there() {
        let env = AttributeValue::M(HashMap::from([(
            "FOO".to_owned(),
            AttributeValue::N("5".into()),
        )]));
        let err = spec_document(&item(&[("env", env)])).expect_err("must be refused");
        assert!(err.starts_with("env.FOO: "), "{err}");
        assert!(err.contains("found type N"), "{err}");
    }

    #[test]
    fn an_unknown_attribute_inside_a_plugin_is_named_with_its_path() {
        let plugins = AttributeValue::L(vec![AttributeValue::M(HashMap::from([
            ("name".into(), s("calendar")),
            ("source".into(), s("https://github.com/openclaw/calendar")),
            ("version".into(), s("1.4.0")),
            ("evil".into(), s("x")),
        ]))]);
        let err = spec_document(&item(&[("plugins", plugins)])).expect_err("must be refused");
        assert_eq!(err, "plugins[0].evil: unknown attribute (a typo?)");
    }

    #[test]
    fn null_attributes_are_absent_at_the_top_and_inside_maps() {
        let null = AttributeValue::Null(true);
        let env = AttributeValue::M(HashMap::from([
            ("FOO".to_owned(), null.clone()),
            ("BAR".to_owned(), s("1")),
        ]));
        let doc = spec_document(&item(&[
            ("plan", null.clone()),
            ("deletion_requested_at", null.clone()),
            ("created_at", null),
            ("env", env),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc.deletion_requested_at, None);
        assert_eq!(doc.plan, None);
        assert_eq!(doc.env.keys().collect::<Vec<_>>(), ["BAR"]);
    }
}
