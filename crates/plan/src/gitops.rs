//! The GitOps plan: what `clawfleet sync` and `clawfleet diff` do for each Agent, as a pure
//! function of the valid manifests of one source and one consistent read of the table, with the
//! conventions of Flux and Argo CD.
//!
//! A source owns the Agents whose `managed_by` is `gitops:NAME`. Another writer's Agents (the
//! API's, the CLI's, the console's, another source's) are conflicts and are never written;
//! `adopt` takes over the ones no one manages. Prune is opt-in and refuses to empty the source.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use spec::manifest::ValidManifest;
use spec::{AgentSpec, Meta};

/// The writer a source records in `managed_by`.
#[must_use]
pub fn owner(source: &str) -> String {
    format!("gitops:{source}")
}

/// How the sync may treat Agents beyond creating and updating its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Soft-delete owned Agents that are no longer in DIR.
    pub prune: bool,
    /// Let prune remove every owned Agent.
    pub allow_empty: bool,
    /// Take over Agents that no one manages.
    pub adopt: bool,
}

/// What the planner needs of a stored spec item.
#[derive(Debug, Clone)]
pub struct Stored<'a> {
    pub agent_id: &'a str,
    pub meta: &'a Meta,
    /// The stored `client_id`, read even from an item that does not parse.
    pub client_id: Option<String>,
    /// The spec, when the item parses and validates.
    pub spec: Option<&'a AgentSpec>,
}

/// Why a source may not write an Agent. Reported per Agent; the rest of the sync goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another writer manages it: `api`, `cli` or another source.
    ManagedBy(String),
    /// No one manages it (a console write) and `--adopt` was not given.
    Unmanaged,
    /// It is being deleted; writing its spec would undelete it.
    Deleting,
    /// The manifest changes `client_id`, which is immutable.
    ClientId { stored: String },
    /// Someone wrote the item between the sync's read and its write.
    Changed,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManagedBy(writer) => write!(f, "managed by {writer}"),
            Self::Unmanaged => {
                f.write_str("managed by no one (written in the console); --adopt takes it over")
            }
            Self::Deleting => f.write_str("being deleted"),
            Self::ClientId { stored } => write!(
                f,
                "client_id: cannot change once the agent exists (it is \"{stored}\")"
            ),
            Self::Changed => f.write_str(
                "the item changed since it was read (an API, CLI or console write); run again",
            ),
        }
    }
}

/// What the sync does for one Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create(AgentSpec),
    /// Write `spec`; `adopt` when the source takes the Agent over.
    Update {
        spec: AgentSpec,
        adopt: bool,
    },
    Unchanged,
    Prune,
    Conflict(Conflict),
}

/// One Agent's part of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub agent_id: String,
    pub action: Action,
}

/// Prune would remove every Agent the source manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRefused {
    pub owner: String,
    pub prunes: usize,
}

impl fmt::Display for PruneRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--prune would remove every agent {} manages ({}), as an empty or wrong checkout of \
             DIR would; refused: pass --allow-empty if that is meant",
            self.owner, self.prunes
        )
    }
}

impl std::error::Error for PruneRefused {}

/// A whole sync, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Agents in DIR in agent id order, then the ones to prune.
    pub steps: Vec<Step>,
    /// Agents the source managed when the table was read, not counting those being deleted.
    pub managed: usize,
}

impl SyncPlan {
    /// Prune must not remove every Agent the source manages unless told to: an empty or wrong
    /// checkout would otherwise delete a whole fleet.
    ///
    /// # Errors
    /// [`PruneRefused`] when it would, without `--allow-empty`.
    pub fn check_prune_guard(&self, owner: &str, options: Options) -> Result<(), PruneRefused> {
        let prunes = self
            .steps
            .iter()
            .filter(|s| s.action == Action::Prune)
            .count();
        if options.allow_empty || prunes == 0 || prunes < self.managed {
            return Ok(());
        }
        Err(PruneRefused {
            owner: owner.to_owned(),
            prunes,
        })
    }
}

/// Decides what a sync does, from the valid manifests and the spec items read from the table.
#[must_use]
pub fn plan(
    manifests: &[ValidManifest],
    stored: &[Stored<'_>],
    owner: &str,
    options: Options,
) -> SyncPlan {
    let by_id: BTreeMap<&str, &Stored<'_>> = stored.iter().map(|s| (s.agent_id, s)).collect();
    let mut ordered: Vec<&ValidManifest> = manifests.iter().collect();
    ordered.sort_by(|a, b| a.spec.agent_id.cmp(&b.spec.agent_id));
    let mut steps: Vec<Step> = ordered
        .into_iter()
        .map(|m| Step {
            agent_id: m.spec.agent_id.clone(),
            action: match by_id.get(m.spec.agent_id.as_str()) {
                None => Action::Create(m.spec.clone()),
                Some(current) => decide(&m.spec, current, owner, options.adopt),
            },
        })
        .collect();
    let in_dir: BTreeSet<&str> = manifests.iter().map(|m| m.spec.agent_id.as_str()).collect();
    let managed: Vec<&Stored<'_>> = stored
        .iter()
        .filter(|s| s.meta.managed_by.as_deref() == Some(owner) && !s.meta.is_deleting())
        .collect();
    if options.prune {
        steps.extend(
            managed
                .iter()
                .filter(|s| !in_dir.contains(s.agent_id))
                .map(|s| Step {
                    agent_id: s.agent_id.to_owned(),
                    action: Action::Prune,
                }),
        );
    }
    SyncPlan {
        steps,
        managed: managed.len(),
    }
}

fn decide(desired: &AgentSpec, current: &Stored<'_>, owner: &str, adopt: bool) -> Action {
    let adopting = match current.meta.managed_by.as_deref() {
        Some(writer) if writer == owner => false,
        Some(writer) => return Action::Conflict(Conflict::ManagedBy(writer.to_owned())),
        None if adopt => true,
        None => return Action::Conflict(Conflict::Unmanaged),
    };
    if current.meta.is_deleting() {
        return Action::Conflict(Conflict::Deleting);
    }
    if let Some(stored) = &current.client_id
        && *stored != desired.client_id
    {
        return Action::Conflict(Conflict::ClientId {
            stored: stored.clone(),
        });
    }
    let spec = keep_restart_marker(desired, current.spec);
    if !adopting && current.spec.is_some_and(|stored| *stored == spec) {
        Action::Unchanged
    } else {
        Action::Update {
            spec,
            adopt: adopting,
        }
    }
}

/// The spec to write: a manifest that does not mention `restart_requested_at` keeps the stored
/// one, as `Store::apply_over` does, because it is an imperative marker (`clawfleet restart`)
/// that would otherwise make every sync after a restart an update.
fn keep_restart_marker(desired: &AgentSpec, stored: Option<&AgentSpec>) -> AgentSpec {
    match (&desired.restart_requested_at, stored) {
        (None, Some(stored)) if stored.restart_requested_at.is_some() => AgentSpec {
            restart_requested_at: stored.restart_requested_at.clone(),
            ..desired.clone()
        },
        _ => desired.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::AgentDocument;
    use spec::manifest::Origin;

    const OWNER: &str = "gitops:platform";

    fn spec(agent_id: &str, plan: &str) -> AgentSpec {
        AgentDocument {
            agent_id: Some(agent_id.into()),
            client_id: Some("acme".into()),
            plan: Some(plan.into()),
            ..AgentDocument::default()
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn manifest(spec: AgentSpec) -> ValidManifest {
        ValidManifest {
            origin: Origin {
                file: "agents.yaml".into(),
                document: 1,
                line: Some(1),
            },
            spec,
        }
    }

    /// An owned, stored copy of a spec item, for [`Stored`] to borrow from.
    struct Item {
        agent_id: String,
        meta: Meta,
        spec: Option<AgentSpec>,
    }

    impl Item {
        fn new(spec: AgentSpec, managed_by: Option<&str>) -> Self {
            Self {
                agent_id: spec.agent_id.clone(),
                meta: Meta {
                    generation: 1,
                    managed_by: managed_by.map(str::to_owned),
                    ..Meta::default()
                },
                spec: Some(spec),
            }
        }

        fn deleting(mut self) -> Self {
            self.meta.deletion_requested_at = Some("2026-11-25T10:00:00Z".into());
            self
        }

        fn stored(&self) -> Stored<'_> {
            Stored {
                agent_id: &self.agent_id,
                meta: &self.meta,
                client_id: self.spec.as_ref().map(|s| s.client_id.clone()),
                spec: self.spec.as_ref(),
            }
        }
    }

    fn plan_of(manifests: &[ValidManifest], items: &[Item], options: Options) -> SyncPlan {
        let stored: Vec<Stored<'_>> = items.iter().map(Item::stored).collect();
        plan(manifests, &stored, OWNER, options)
    }

    fn actions(plan: &SyncPlan) -> Vec<(&str, &Action)> {
        plan.steps
            .iter()
            .map(|s| (s.agent_id.as_str(), &s.action))
            .collect()
    }

    #[test]
    fn agents_missing_from_the_table_are_created() {
        let plan = plan_of(&[manifest(spec("a1", "small"))], &[], Options::default());
        assert_eq!(
            actions(&plan),
            [("a1", &Action::Create(spec("a1", "small")))]
        );
    }

    #[test]
    fn an_owned_agent_is_unchanged_when_equal_and_updated_when_not() {
        let items = [
            Item::new(spec("a1", "small"), Some(OWNER)),
            Item::new(spec("a2", "small"), Some(OWNER)),
        ];
        let manifests = [manifest(spec("a1", "small")), manifest(spec("a2", "large"))];
        let plan = plan_of(&manifests, &items, Options::default());
        assert_eq!(
            actions(&plan),
            [
                ("a1", &Action::Unchanged),
                (
                    "a2",
                    &Action::Update {
                        spec: spec("a2", "large"),
                        adopt: false
                    }
                )
            ]
        );
    }

    #[test]
    fn another_writers_agents_are_conflicts_whatever_the_flags() {
        let items = [
            Item::new(spec("api1", "small"), Some("api")),
            Item::new(spec("cli1", "small"), Some("cli")),
            Item::new(spec("other1", "small"), Some("gitops:other")),
        ];
        let manifests = [
            manifest(spec("api1", "large")),
            manifest(spec("cli1", "small")),
            manifest(spec("other1", "small")),
        ];
        let all = Options {
            prune: true,
            allow_empty: true,
            adopt: true,
        };
        let plan = plan_of(&manifests, &items, all);
        assert_eq!(
            actions(&plan),
            [
                ("api1", &Action::Conflict(Conflict::ManagedBy("api".into()))),
                ("cli1", &Action::Conflict(Conflict::ManagedBy("cli".into()))),
                (
                    "other1",
                    &Action::Conflict(Conflict::ManagedBy("gitops:other".into()))
                ),
            ]
        );
    }

    #[test]
    fn unmanaged_agents_are_conflicts_unless_adopted_even_when_equal() {
        let items = [Item::new(spec("c1", "small"), None)];
        let manifests = [manifest(spec("c1", "small"))];
        let plan = plan_of(&manifests, &items, Options::default());
        assert_eq!(
            actions(&plan),
            [("c1", &Action::Conflict(Conflict::Unmanaged))]
        );
        let adopt = Options {
            adopt: true,
            ..Options::default()
        };
        let plan = plan_of(&manifests, &items, adopt);
        assert_eq!(
            actions(&plan),
            [(
                "c1",
                &Action::Update {
                    spec: spec("c1", "small"),
                    adopt: true
                }
            )]
        );
    }

    #[test]
    fn an_agent_being_deleted_is_a_conflict_not_an_undelete() {
        let items = [Item::new(spec("a1", "small"), Some(OWNER)).deleting()];
        let plan = plan_of(&[manifest(spec("a1", "large"))], &items, Options::default());
        assert_eq!(
            actions(&plan),
            [("a1", &Action::Conflict(Conflict::Deleting))]
        );
    }

    #[test]
    fn a_changed_client_id_is_a_conflict_naming_client_id() {
        let items = [Item::new(spec("a1", "small"), Some(OWNER))];
        let mut moved = spec("a1", "small");
        moved.client_id = "globex".into();
        let plan = plan_of(&[manifest(moved)], &items, Options::default());
        let [(_, Action::Conflict(conflict))] = actions(&plan)[..] else {
            panic!("{plan:?}")
        };
        assert!(
            conflict.to_string().starts_with("client_id: "),
            "{conflict}"
        );
        assert!(conflict.to_string().contains("\"acme\""), "{conflict}");
    }

    #[test]
    fn a_restart_marker_set_by_clawfleet_restart_is_kept() {
        let mut restarted = spec("a1", "small");
        restarted.restart_requested_at = Some("2026-11-25T10:00:00Z".into());
        let items = [Item::new(restarted, Some(OWNER))];
        let plan = plan_of(&[manifest(spec("a1", "small"))], &items, Options::default());
        assert_eq!(actions(&plan), [("a1", &Action::Unchanged)]);
    }

    #[test]
    fn an_invalid_stored_spec_of_an_owned_agent_is_rewritten() {
        let mut item = Item::new(spec("a1", "small"), Some(OWNER));
        // A stored item that does not parse (an `imgae` typed in the console) has no spec.
        item.spec = None;
        let plan = plan_of(
            &[manifest(spec("a1", "small"))],
            &[item],
            Options::default(),
        );
        assert!(matches!(
            actions(&plan)[..],
            [("a1", Action::Update { adopt: false, .. })]
        ));
    }

    #[test]
    fn prune_is_opt_in_and_touches_only_owned_live_agents() {
        let items = [
            Item::new(spec("keep", "small"), Some(OWNER)),
            Item::new(spec("gone", "small"), Some(OWNER)),
            Item::new(spec("going", "small"), Some(OWNER)).deleting(),
            Item::new(spec("theirs", "small"), Some("gitops:other")),
            Item::new(spec("console", "small"), None),
            Item::new(spec("api1", "small"), Some("api")),
        ];
        let manifests = [manifest(spec("keep", "small"))];
        let plan = plan_of(&manifests, &items, Options::default());
        assert_eq!(actions(&plan), [("keep", &Action::Unchanged)]);
        let prune = Options {
            prune: true,
            ..Options::default()
        };
        let plan = plan_of(&manifests, &items, prune);
        assert_eq!(
            actions(&plan),
            [("keep", &Action::Unchanged), ("gone", &Action::Prune)]
        );
        assert_eq!(plan.managed, 2);
        assert!(plan.check_prune_guard(OWNER, prune).is_ok());
    }

    #[test]
    fn prune_refuses_to_remove_every_owned_agent_unless_allowed() {
        let items = [
            Item::new(spec("a1", "small"), Some(OWNER)),
            Item::new(spec("a2", "small"), Some(OWNER)),
        ];
        let prune = Options {
            prune: true,
            ..Options::default()
        };
        let plan = plan_of(&[], &items, prune);
        let Err(refusal) = plan.check_prune_guard(OWNER, prune) else {
            panic!("an empty DIR must not prune everything")
        };
        assert!(refusal.to_string().contains("--allow-empty"), "{refusal}");
        assert_eq!(refusal.prunes, 2);
        let allowed = Options {
            allow_empty: true,
            ..prune
        };
        assert!(plan.check_prune_guard(OWNER, allowed).is_ok());
        // A new agent in DIR does not make the removal of every owned one less suspicious.
        let renamed = plan_of(&[manifest(spec("b1", "small"))], &items, prune);
        assert!(renamed.check_prune_guard(OWNER, prune).is_err());
        // A source that manages nothing has nothing to guard.
        let fresh = plan_of(&[], &[], prune);
        assert!(fresh.check_prune_guard(OWNER, prune).is_ok());
    }
}
