//! The fleet summary: one item (`_fleet` / `summary`) the controller writes at each resync from
//! the snapshot it reads anyway, so that the admin console reads one item per page view instead
//! of scanning the table. Its id is not a valid agent id (`_`), and listings keep only spec and
//! status records ([`crate::Record`]), so no listing ever shows it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use spec::{ConditionKind, ConditionStatus, DesiredState, Phase};

use crate::{Agent, Store, StoreError};

/// The partition key of the fleet summary item.
pub const SUMMARY_ID: &str = "_fleet";
/// Its sort key.
pub const SUMMARY_RECORD: &str = "summary";

/// The most agents listed as not Ready, and tenants listed: the item stays far below
/// DynamoDB's 400 KB whatever the fleet's size. The counts stay exact.
pub const MAX_NOT_READY: usize = 50;
pub const MAX_TENANTS: usize = 500;
pub const MAX_REASONS: usize = 10;

/// What on-call sees of the whole fleet, as of the last resync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// When the resync that wrote it read the table (RFC 3339).
    pub written_at: String,
    /// The replica that holds the leader lease and wrote this; `None` for a single replica
    /// without election.
    pub leader: Option<String>,
    /// Agents with a spec item.
    pub agents: u64,
    /// Agents by phase; an agent the controller has not reported on yet counts as `Pending`.
    pub phases: BTreeMap<String, u64>,
    /// How many agents that should run are not Ready.
    pub not_ready_count: u64,
    /// Agents that should run and are not Ready, the longest not Ready first.
    pub not_ready: Vec<NotReady>,
    /// The reasons of False conditions, the most frequent first, counted once per agent; a
    /// stopped agent's `Ready=False` is not counted.
    pub error_reasons: Vec<ReasonCount>,
    /// Tenants by agent count, the largest first.
    pub tenants: Vec<TenantCount>,
    /// How many tenants have agents.
    pub tenant_count: u64,
}

/// One agent that should be Ready and is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotReady {
    pub agent_id: String,
    pub client_id: Option<String>,
    pub phase: String,
    /// Since when it is not Ready: the Ready condition's last change, or the spec's creation.
    pub since: Option<String>,
    pub reason: String,
    pub message: String,
}

/// How many agents have a False condition with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub reason: String,
    pub agents: u64,
}

/// A tenant and how many agents it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCount {
    pub client_id: String,
    pub agents: u64,
}

/// What one agent adds to the fleet summary, kept by the controller between reads of its
/// items: the resync sums these instead of reading every agent's items again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    phase: &'static str,
    owner: Option<String>,
    /// Its False conditions' reasons, each once.
    reasons: Vec<String>,
    /// Boxed: most agents are Ready, and the controller holds one `Part` per agent.
    not_ready: Option<Box<NotReady>>,
}

impl Part {
    /// What `agent` adds; `None` for an agent with no spec item (not counted).
    #[must_use]
    pub fn of(agent: &Agent) -> Option<Self> {
        let item = agent.spec.as_ref()?;
        let status = agent.status.as_ref();
        let phase = status.map_or("Pending", |s| s.phase.as_str());
        // A schedule or idleness stops an agent on purpose: like a stopped one, it is not
        // expected to be Ready (the not-Ready alert leaves it out too).
        let stopped_on_purpose =
            status.is_some_and(|s| matches!(s.phase, Phase::Scheduled | Phase::Idle));
        let should_run = !item.meta.is_deleting()
            && !stopped_on_purpose
            && item
                .spec
                .as_ref()
                .map_or(true, |s| s.desired_state == DesiredState::Running);
        let mut reasons: Vec<String> = Vec::new();
        for condition in status.map(|s| s.conditions.as_slice()).unwrap_or_default() {
            // Not Ready is what a stopped agent should be, not an error.
            let expected = condition.kind == ConditionKind::Ready && !should_run;
            if condition.status == ConditionStatus::False
                && !expected
                && !condition.reason.is_empty()
                && !reasons.contains(&condition.reason)
            {
                reasons.push(condition.reason.clone());
            }
        }
        let ready = status
            .and_then(|s| s.condition(ConditionKind::Ready))
            .filter(|c| c.status == ConditionStatus::True);
        let not_ready = (should_run && ready.is_none()).then(|| {
            let condition = status.and_then(|s| s.condition(ConditionKind::Ready));
            // The first False condition says best why it is not Ready.
            let cause = status
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.status == ConditionStatus::False && !c.reason.is_empty())
                })
                .or(condition);
            Box::new(NotReady {
                agent_id: agent.agent_id.clone(),
                client_id: agent.owner(),
                phase: phase.to_owned(),
                since: condition
                    .map(|c| c.time.clone())
                    .filter(|t| !t.is_empty())
                    .or_else(|| item.meta.created_at.clone()),
                reason: cause.map_or_else(|| "NotReconciled".to_owned(), |c| c.reason.clone()),
                message: cause.map(|c| c.message.clone()).unwrap_or_default(),
            })
        });
        Some(Self {
            phase,
            owner: agent.owner(),
            reasons,
            not_ready,
        })
    }
}

impl FleetSummary {
    /// The summary of `agents` as read at `now` by `leader`. Pure.
    #[must_use]
    pub fn of(agents: &[Agent], leader: Option<&str>, now: &str) -> Self {
        let parts: Vec<Part> = agents.iter().filter_map(Part::of).collect();
        Self::of_parts(parts.iter(), leader, now)
    }

    /// The summary of the agents whose parts these are. Pure.
    #[must_use]
    pub fn of_parts<'a>(
        parts: impl IntoIterator<Item = &'a Part>,
        leader: Option<&str>,
        now: &str,
    ) -> Self {
        let mut summary = Self {
            written_at: now.to_owned(),
            leader: leader.map(str::to_owned),
            ..Self::default()
        };
        let mut reasons: HashMap<String, u64> = HashMap::new();
        let mut tenants: HashMap<String, u64> = HashMap::new();
        let mut not_ready: Vec<NotReady> = Vec::new();
        for part in parts {
            summary.agents += 1;
            *summary.phases.entry(part.phase.to_owned()).or_default() += 1;
            if let Some(client) = &part.owner {
                *tenants.entry(client.clone()).or_default() += 1;
            }
            for reason in &part.reasons {
                *reasons.entry(reason.clone()).or_default() += 1;
            }
            if let Some(line) = &part.not_ready {
                not_ready.push(NotReady::clone(line));
            }
        }
        // RFC 3339 times in UTC sort as text; an unknown start goes last.
        not_ready.sort_by(|a, b| match (&a.since, &b.since) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a.agent_id.cmp(&b.agent_id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.agent_id.cmp(&b.agent_id),
        });
        summary.not_ready_count = not_ready.len() as u64;
        not_ready.truncate(MAX_NOT_READY);
        summary.not_ready = not_ready;
        let mut reasons: Vec<ReasonCount> = reasons
            .into_iter()
            .map(|(reason, agents)| ReasonCount { reason, agents })
            .collect();
        reasons.sort_by(|a, b| {
            b.agents
                .cmp(&a.agents)
                .then_with(|| a.reason.cmp(&b.reason))
        });
        reasons.truncate(MAX_REASONS);
        summary.error_reasons = reasons;
        summary.tenant_count = tenants.len() as u64;
        let mut tenants: Vec<TenantCount> = tenants
            .into_iter()
            .map(|(client_id, agents)| TenantCount { client_id, agents })
            .collect();
        tenants.sort_by(|a, b| {
            b.agents
                .cmp(&a.agents)
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        tenants.truncate(MAX_TENANTS);
        summary.tenants = tenants;
        summary
    }
}

impl Store {
    /// Writes the fleet summary item (PutItem), replacing the last one.
    ///
    /// # Errors
    /// A failed PutItem.
    pub async fn put_fleet_summary(&self, summary: &FleetSummary) -> Result<(), StoreError> {
        let document = serde_json::to_string(summary).unwrap_or_default();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("agent_id", AttributeValue::S(SUMMARY_ID.to_owned()))
            .item("record", AttributeValue::S(SUMMARY_RECORD.to_owned()))
            .item("document", AttributeValue::S(document))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", &self.table, &e))?;
        Ok(())
    }

    /// The fleet summary the controller last wrote (GetItem); `None` before its first resync.
    ///
    /// # Errors
    /// A failed GetItem, or an item whose `document` does not parse.
    pub async fn fleet_summary(&self) -> Result<Option<FleetSummary>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("agent_id", AttributeValue::S(SUMMARY_ID.to_owned()))
            .key("record", AttributeValue::S(SUMMARY_RECORD.to_owned()))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &self.table, &e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = item
            .get("document")
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| StoreError::TableShape {
                table: self.table.clone(),
                problem: format!("item {SUMMARY_ID}/{SUMMARY_RECORD}: document: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpecItem;
    use spec::{AgentDocument, AgentStatus, Condition, Phase};

    fn agent(id: &str, client: &str, desired: &str, status: Option<AgentStatus>) -> Agent {
        let document: AgentDocument = serde_json::from_value(serde_json::json!({
            "agent_id": id, "client_id": client, "image": "ghcr.io/openclaw/agent:1",
            "desired_state": desired, "plan": "small",
        }))
        .unwrap();
        Agent {
            spec: Some(SpecItem::of_document(id, &document)),
            status,
            ..Agent::absent(id)
        }
    }

    fn status(phase: Phase, ready: ConditionStatus, reason: &str, time: &str) -> AgentStatus {
        AgentStatus {
            phase,
            conditions: vec![Condition {
                kind: ConditionKind::Ready,
                status: ready,
                reason: reason.to_owned(),
                message: format!("{reason} happened"),
                time: time.to_owned(),
            }],
            ..AgentStatus::default()
        }
    }

    #[test]
    fn the_summary_counts_phases_tenants_and_reasons_and_lists_not_ready_longest_first() {
        let agents = vec![
            agent(
                "acme-1",
                "acme",
                "running",
                Some(status(
                    Phase::Running,
                    ConditionStatus::True,
                    "TaskRunning",
                    "t",
                )),
            ),
            agent(
                "acme-2",
                "acme",
                "running",
                Some(status(
                    Phase::Provisioning,
                    ConditionStatus::False,
                    "SecretsMissing",
                    "2026-11-29T10:00:00Z",
                )),
            ),
            agent(
                "globex-1",
                "globex",
                "running",
                Some(status(
                    Phase::Failed,
                    ConditionStatus::False,
                    "SecretsMissing",
                    "2026-11-29T09:00:00Z",
                )),
            ),
            // Stopped on purpose: not Ready, and rightly so.
            agent(
                "globex-2",
                "globex",
                "stopped",
                Some(status(
                    Phase::Stopped,
                    ConditionStatus::False,
                    "Stopped",
                    "t",
                )),
            ),
            // Stopped by its schedule: desired running, yet not Ready on purpose.
            agent(
                "initech-2",
                "initech",
                "running",
                Some(status(
                    Phase::Scheduled,
                    ConditionStatus::False,
                    "OutsideSchedule",
                    "t",
                )),
            ),
            // Not reconciled yet.
            agent("initech-1", "initech", "running", None),
        ];
        let summary = FleetSummary::of(&agents, Some("controller-a"), "2026-11-29T12:00:00Z");
        assert_eq!(summary.agents, 6);
        assert_eq!(summary.leader.as_deref(), Some("controller-a"));
        assert_eq!(
            summary.phases,
            [
                ("Failed".to_owned(), 1),
                ("Pending".to_owned(), 1),
                ("Provisioning".to_owned(), 1),
                ("Running".to_owned(), 1),
                ("Scheduled".to_owned(), 1),
                ("Stopped".to_owned(), 1)
            ]
            .into()
        );
        let ids: Vec<&str> = summary
            .not_ready
            .iter()
            .map(|n| n.agent_id.as_str())
            .collect();
        assert_eq!(ids, ["globex-1", "acme-2", "initech-1"]);
        assert_eq!(summary.not_ready_count, 3);
        assert_eq!(summary.not_ready[0].reason, "SecretsMissing");
        assert_eq!(summary.not_ready[2].reason, "NotReconciled");
        // The stopped agent's Ready=False is no error.
        assert_eq!(
            summary.error_reasons,
            vec![ReasonCount {
                reason: "SecretsMissing".into(),
                agents: 2
            }]
        );
        assert_eq!(summary.tenant_count, 3);
        assert_eq!(
            summary.tenants[0],
            TenantCount {
                client_id: "acme".into(),
                agents: 2
            }
        );
    }

    #[test]
    fn long_lists_are_capped_but_the_counts_stay_exact() {
        let agents: Vec<Agent> = (0..MAX_NOT_READY + 7)
            .map(|i| agent(&format!("t{i}-a"), &format!("t{i}"), "running", None))
            .collect();
        let summary = FleetSummary::of(&agents, None, "now");
        assert_eq!(summary.not_ready.len(), MAX_NOT_READY);
        assert_eq!(summary.not_ready_count, (MAX_NOT_READY + 7) as u64);
        assert_eq!(summary.tenant_count, (MAX_NOT_READY + 7) as u64);
    }
}
