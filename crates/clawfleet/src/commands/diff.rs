//! `clawfleet diff DIR --source NAME`: what `clawfleet sync` with the same flags would change,
//! field by field. Exit code 0 in sync, 1 differences, 2 errors (see docs/gitops.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use spec::{AgentDocument, Meta};
use store::Store;

use crate::cli::GitopsSource;
use crate::commands::apply;
use crate::commands::sync;
use crate::failure::{Exit, Failure};
use plan::gitops::{Action, Stored, owner, plan};
use store::SpecItem;

/// One field that differs between the table and DIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Attribute name, or `env.NAME` / `tags.KEY` inside a map.
    pub field: String,
    pub stored: Option<Value>,
    pub desired: Option<Value>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_owned(), Value::to_string);
        write!(
            f,
            "{}: {} -> {}",
            self.field,
            side(&self.stored),
            side(&self.desired)
        )
    }
}

/// The user fields of a document as JSON, bookkeeping left out.
fn user_fields(document: &AgentDocument) -> serde_json::Map<String, Value> {
    let user = AgentDocument {
        generation: None,
        managed_by: None,
        created_at: None,
        deletion_requested_at: None,
        ..document.clone()
    };
    match serde_json::to_value(user) {
        Ok(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// The entries of a map attribute. An empty map is left out of a document, so absent counts
/// as empty; `None` for a value that is not a map.
fn entries(value: Option<&Value>) -> Option<BTreeMap<&str, &Value>> {
    match value {
        None => Some(BTreeMap::new()),
        Some(Value::Object(map)) => Some(map.iter().map(|(k, v)| (k.as_str(), v)).collect()),
        Some(_) => None,
    }
}

/// The differences between a stored document (`None` when the item does not parse) and the
/// desired one, in attribute order; maps (`env`, `tags`) are compared key by key.
#[must_use]
pub fn changes(stored: Option<&AgentDocument>, desired: &AgentDocument) -> Vec<Change> {
    let stored = stored.map(user_fields).unwrap_or_default();
    let desired = user_fields(desired);
    let mut changes = Vec::new();
    for name in AgentDocument::ATTRIBUTES {
        let (old, new) = (stored.get(name), desired.get(name));
        if old == new {
            continue;
        }
        let is_map = matches!(old, Some(Value::Object(_))) || matches!(new, Some(Value::Object(_)));
        match (entries(old), entries(new)) {
            (Some(old), Some(new)) if is_map => {
                let keys: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
                for key in keys {
                    let (was, will) = (old.get(key), new.get(key));
                    if was != will {
                        changes.push(Change {
                            field: format!("{name}.{key}"),
                            stored: was.map(|v| (*v).clone()),
                            desired: will.map(|v| (*v).clone()),
                        });
                    }
                }
            }
            _ => changes.push(Change {
                field: name.to_owned(),
                stored: old.cloned(),
                desired: new.cloned(),
            }),
        }
    }
    changes
}

/// The lines `diff` prints for an update: the fields, the owner when adopting, and why a
/// stored spec that does not validate will be rewritten.
fn update_lines(
    current: &SpecItem,
    desired: &AgentDocument,
    owner: &str,
    adopt: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let stored = match &current.spec {
        Ok(spec) => Some(spec.to_document(&Meta::default())),
        Err(error) => {
            lines.push(format!("the stored spec is invalid ({error})"));
            current.document.clone()
        }
    };
    if adopt {
        let takeover = Change {
            field: "managed_by".into(),
            stored: current.meta.managed_by.clone().map(Value::String),
            desired: Some(Value::String(owner.to_owned())),
        };
        lines.push(takeover.to_string());
    }
    lines.extend(
        changes(stored.as_ref(), desired)
            .iter()
            .map(ToString::to_string),
    );
    lines
}

pub async fn run(store: &Store, source: &GitopsSource) -> Result<Exit, Failure> {
    let manifests = apply::load(std::slice::from_ref(&source.dir))?;
    let owner = owner(&source.source);
    let options = sync::options(source);
    let items = store.list_specs().await?;
    let stored: Vec<Stored<'_>> = items.iter().map(sync::stored).collect();
    let plan = plan(&manifests, &stored, &owner, options);
    let by_id: BTreeMap<&str, &SpecItem> = items.iter().map(|s| (s.agent_id.as_str(), s)).collect();

    let mut differs = false;
    for step in &plan.steps {
        let id = &step.agent_id;
        let lines = match (&step.action, by_id.get(id.as_str())) {
            (Action::Unchanged, _) => continue,
            (Action::Create(_), _) => vec![format!("+ agent/{id} (not in table)")],
            (Action::Prune, _) => vec![format!("- agent/{id} (would be pruned)")],
            (Action::Conflict(conflict), _) => vec![format!("! agent/{id} conflict: {conflict}")],
            (Action::Update { spec, adopt }, Some(current)) => {
                let desired = spec.to_document(&Meta::default());
                let fields = update_lines(current, &desired, &owner, *adopt);
                if fields.is_empty() {
                    vec![format!("~ agent/{id}")]
                } else {
                    fields
                        .into_iter()
                        .map(|f| format!("~ agent/{id}: {f}"))
                        .collect()
                }
            }
            (Action::Update { .. }, None) => vec![format!("~ agent/{id}")],
        };
        differs = true;
        for line in lines {
            println!("{line}");
        }
    }
    if let Err(refusal) = plan.check_prune_guard(&owner, options) {
        eprintln!("error: {refusal}");
        return Ok(Exit::NotAsItShouldBe);
    }
    Ok(if differs {
        Exit::NotAsItShouldBe
    } else {
        Exit::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(yaml: &str) -> AgentDocument {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn lines(stored: Option<&AgentDocument>, desired: &AgentDocument) -> Vec<String> {
        changes(stored, desired)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn equal_documents_have_no_changes() {
        let doc = document("agent_id: a1\nclient_id: acme\nplan: small\nenv: {A: '1'}\n");
        assert!(changes(Some(&doc), &doc).is_empty());
    }

    #[test]
    fn a_changed_scalar_shows_both_values() {
        let old = document("agent_id: a1\nclient_id: acme\nplan: small\n");
        let new = document("agent_id: a1\nclient_id: acme\nplan: medium\n");
        assert_eq!(lines(Some(&old), &new), [r#"plan: "small" -> "medium""#]);
    }

    #[test]
    fn fields_that_appear_or_disappear_are_absent_on_one_side() {
        let old = document("agent_id: a1\nclient_id: acme\nplan: small\n");
        let new = document("agent_id: a1\nclient_id: acme\ncpu: 1024\nmemory: 3072\n");
        assert_eq!(
            lines(Some(&old), &new),
            [
                r#"plan: "small" -> (absent)"#,
                "cpu: (absent) -> 1024",
                "memory: (absent) -> 3072"
            ]
        );
    }

    #[test]
    fn maps_are_compared_key_by_key_and_lists_whole() {
        let old = document(
            "agent_id: a1\nclient_id: acme\nskills: [web]\nenv: {A: '1', B: '2'}\ntags: {CostCenter: acme}\n",
        );
        let new = document(
            "agent_id: a1\nclient_id: acme\nskills: [web, voice]\nenv: {A: '1', B: '3', C: '4'}\n",
        );
        assert_eq!(
            lines(Some(&old), &new),
            [
                r#"skills: ["web"] -> ["web","voice"]"#,
                r#"env.B: "2" -> "3""#,
                r#"env.C: (absent) -> "4""#,
                r#"tags.CostCenter: "acme" -> (absent)"#,
            ]
        );
    }

    #[test]
    fn a_schedule_change_names_the_part_that_changed() {
        let old = document(
            "agent_id: a1\nclient_id: acme\nschedule:\n  timezone: Europe/Madrid\n  windows:\n    - {days: [mon], start: '08:00', end: '20:00'}\n",
        );
        let new = document(
            "agent_id: a1\nclient_id: acme\nschedule:\n  timezone: Europe/Madrid\n  windows:\n    - {days: [mon, tue], start: '08:00', end: '20:00'}\nidle_stop_after: 30m\n",
        );
        let changes = changes(Some(&old), &new);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["schedule.windows", "idle_stop_after"]);
        let window =
            |days: &[&str]| serde_json::json!([{"days": days, "start": "08:00", "end": "20:00"}]);
        assert_eq!(changes[0].stored, Some(window(&["mon"])));
        assert_eq!(changes[0].desired, Some(window(&["mon", "tue"])));
    }

    #[test]
    fn bookkeeping_is_not_a_change() {
        let old = document(
            "agent_id: a1\nclient_id: acme\ngeneration: 7\nmanaged_by: cli\ncreated_at: '2026-01-01T00:00:00Z'\n",
        );
        let new = document("agent_id: a1\nclient_id: acme\n");
        assert!(changes(Some(&old), &new).is_empty());
    }

    #[test]
    fn an_item_that_does_not_parse_differs_in_every_field_set() {
        let new = document("agent_id: a1\nclient_id: acme\n");
        assert_eq!(
            lines(None, &new),
            [
                r#"agent_id: (absent) -> "a1""#,
                r#"client_id: (absent) -> "acme""#
            ]
        );
    }
}
