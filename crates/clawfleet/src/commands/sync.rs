//! `clawfleet sync DIR --source NAME`: makes the table match a directory of manifests, for the
//! Agents that source manages, with the conventions of Flux and Argo CD.
//!
//! A source owns the Agents whose `managed_by` is `gitops:NAME`. Another writer's Agents (the
//! API's, the CLI's, the console's, another source's) are conflicts and are never written;
//! `--adopt` takes over the ones no one manages. Prune is opt-in and refuses to empty the
//! source. The whole sync is planned by [`plan`], a pure function of the manifests and one
//! consistent read of the table, before anything is written; every write is then conditioned
//! on the item as read, so an edit made in between is reported, never overwritten.

use std::collections::BTreeMap;

use plan::gitops::{Action, Conflict, Options, Stored, owner, plan};
use store::{SpecItem, Store, StoreError, Write};

use crate::cli::GitopsSource;
use crate::commands::apply;
use crate::failure::{Exit, Failure};

/// What the GitOps plan needs of a stored spec item; `client_id` is read even from an item
/// that does not parse.
pub fn stored(item: &SpecItem) -> Stored<'_> {
    Stored {
        agent_id: &item.agent_id,
        meta: &item.meta,
        client_id: item.client_id(),
        spec: item.spec.as_ref().ok(),
    }
}

/// The options a source's flags ask for.
pub fn options(source: &GitopsSource) -> Options {
    Options {
        prune: source.prune,
        allow_empty: source.allow_empty,
        adopt: source.adopt,
    }
}

/// What happened to one Agent, as the sync prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Create,
    Update { adopted: bool },
    Unchanged,
    Prune,
    Conflict(Conflict),
}

impl Outcome {
    /// What a dry run reports for a planned action.
    fn planned(action: &Action) -> Self {
        match action {
            Action::Create(_) => Self::Create,
            Action::Update { adopt, .. } => Self::Update { adopted: *adopt },
            Action::Unchanged => Self::Unchanged,
            Action::Prune => Self::Prune,
            Action::Conflict(conflict) => Self::Conflict(conflict.clone()),
        }
    }

    fn line(&self, agent_id: &str, dry_run: bool) -> String {
        let mut notes = Vec::new();
        let word = match self {
            Self::Create => "create",
            Self::Update { adopted } => {
                if *adopted {
                    notes.push("adopted");
                }
                "update"
            }
            Self::Unchanged => "unchanged",
            Self::Prune => "prune",
            Self::Conflict(conflict) => return format!("agent/{agent_id} conflict: {conflict}"),
        };
        if dry_run && *self != Self::Unchanged {
            notes.push("dry run");
        }
        if notes.is_empty() {
            format!("agent/{agent_id} {word}")
        } else {
            format!("agent/{agent_id} {word} ({})", notes.join(", "))
        }
    }
}

pub async fn run(store: &Store, source: &GitopsSource, dry_run: bool) -> Result<Exit, Failure> {
    let manifests = apply::load(std::slice::from_ref(&source.dir))?;
    let owner = owner(&source.source);
    let options = options(source);
    let items = store.list_specs().await?;
    let stored: Vec<Stored<'_>> = items.iter().map(stored).collect();
    let plan = plan(&manifests, &stored, &owner, options);
    plan.check_prune_guard(&owner, options)
        .map_err(|e| Failure::Invalid(e.to_string()))?;

    let by_id: BTreeMap<&str, &SpecItem> = items.iter().map(|i| (i.agent_id.as_str(), i)).collect();
    let mut exit = Exit::Success;
    for step in &plan.steps {
        let outcome = if dry_run {
            Outcome::planned(&step.action)
        } else {
            let current = by_id.get(step.agent_id.as_str()).copied();
            match execute(store, &owner, &step.action, current).await {
                Ok(outcome) => outcome,
                Err(error) => match conflict_of(error) {
                    Ok(conflict) => Outcome::Conflict(conflict),
                    // AWS is failing: stop rather than repeat the same error per agent.
                    Err(failure) => {
                        eprintln!("error: agent/{}: {failure}", step.agent_id);
                        return Ok(failure.exit_code());
                    }
                },
            }
        };
        if matches!(outcome, Outcome::Conflict(_)) {
            exit = exit.max(Exit::NotAsItShouldBe);
        }
        println!("{}", outcome.line(&step.agent_id, dry_run));
    }
    Ok(exit)
}

/// Carries out one step: each write is conditioned on the item as read when planning.
async fn execute(
    store: &Store,
    owner: &str,
    action: &Action,
    current: Option<&SpecItem>,
) -> Result<Outcome, StoreError> {
    let written = |write: Write, adopted: bool| match write {
        Write::Created => Outcome::Create,
        Write::Updated => Outcome::Update { adopted },
        Write::Unchanged => Outcome::Unchanged,
    };
    match (action, current) {
        (Action::Create(spec), _) => Ok(written(store.apply_over(spec, owner, None).await?, false)),
        (Action::Update { spec, adopt: true }, Some(current)) => {
            Ok(written(store.claim_over(spec, owner, current).await?, true))
        }
        (Action::Update { spec, adopt: false }, Some(current)) => Ok(written(
            store.apply_over(spec, owner, Some(current)).await?,
            false,
        )),
        (Action::Prune, Some(current)) => {
            store
                .request_deletion_over(current, &spec::now_rfc3339(), false)
                .await?;
            Ok(Outcome::Prune)
        }
        (Action::Unchanged, _) => Ok(Outcome::Unchanged),
        (Action::Conflict(conflict), _) => Ok(Outcome::Conflict(conflict.clone())),
        // Planned updates and prunes come from items that were read; there is always one.
        (Action::Update { .. } | Action::Prune, None) => Ok(Outcome::Conflict(Conflict::Changed)),
    }
}

/// The conflicts a write can still meet after planning; any other error ends the sync.
fn conflict_of(error: StoreError) -> Result<Conflict, Failure> {
    match error {
        StoreError::Conflict { .. } => Ok(Conflict::Changed),
        StoreError::Deleting { .. } => Ok(Conflict::Deleting),
        StoreError::ClientIdChanged { existing, .. } => Ok(Conflict::ClientId { stored: existing }),
        other => Err(Failure::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_agent_and_one_word() {
        assert_eq!(Outcome::Create.line("a1", false), "agent/a1 create");
        assert_eq!(
            Outcome::Update { adopted: true }.line("a1", true),
            "agent/a1 update (adopted, dry run)"
        );
        assert_eq!(Outcome::Unchanged.line("a1", true), "agent/a1 unchanged");
        assert_eq!(Outcome::Prune.line("a1", true), "agent/a1 prune (dry run)");
        assert_eq!(
            Outcome::Conflict(Conflict::ManagedBy("cli".into())).line("x", false),
            "agent/x conflict: managed by cli"
        );
    }
}
