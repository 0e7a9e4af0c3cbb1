//! A reconcile that ended waiting on a task reads only the agent's tasks the next time, for at
//! most `last_seen::TTL` after its last full read (against the fake, which counts every request
//! the real adapters would send).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use controller::expectations::Expectations;
use controller::fake::{FakeCloud, FakeStore};
use controller::last_seen::{LastSeen, TTL};
use controller::reconcile::{Outcome, Reconciler};
use plan::fixtures::{self, settings, template};
use spec::AgentDocument;

/// Sets the last status of every task of the fake.
fn tasks_show(fake: &FakeCloud, last_status: &str) {
    for (task, _) in &mut fake.state().tasks {
        task.last_status = last_status.into();
    }
}

/// The requests one reconcile sent, by operation.
async fn reconcile(
    fake: &FakeCloud,
    store: &FakeStore,
    last_seen: &LastSeen,
    agent_id: &str,
) -> (Outcome, BTreeMap<&'static str, u64>) {
    fake.state().counts.clear();
    let (settings, template, expectations) = (settings(), template(), Expectations::default());
    let outcome = Reconciler {
        cloud: fake,
        store,
        settings: &settings,
        template: &template,
        expectations: &expectations,
        recovery_days: 7,
        rollout: None,
        last_seen: Some(last_seen),
        metrics: None,
    }
    .reconcile(agent_id, None)
    .await
    .unwrap();
    (outcome, fake.call_counts())
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_waiting_on_a_task_reads_only_the_tasks_until_the_ttl() {
    let (fake, store, last_seen) = (FakeCloud::new(0), FakeStore::default(), LastSeen::default());
    let agent_id = "agent-1";
    let spec = AgentDocument {
        secret_keys: Vec::new(),
        ..fixtures::document_of(agent_id)
    }
    .validate()
    .unwrap();
    store.apply(&spec, "cli");
    // The first reconcile creates everything; the task is launched, then shows PENDING.
    let (outcome, first) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert!(first.contains_key("RunTask"), "{first:?}");
    tasks_show(&fake, "PENDING");
    let (outcome_pending, full) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert!(
        matches!(outcome, Outcome::Converged | Outcome::Waiting(_)),
        "{outcome:?}"
    );
    assert!(
        matches!(outcome_pending, Outcome::Waiting(_)),
        "{outcome_pending:?}"
    );
    // Right after a wait: the tasks alone.
    let (outcome, polled) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    assert_eq!(
        polled.keys().copied().collect::<Vec<_>>(),
        ["DescribeTasks", "ListTasks"],
        "a wait's next reconcile reads the tasks only (a full read was {full:?})"
    );
    // Past the TTL of the last full read, everything is read again.
    tokio::time::advance(TTL + std::time::Duration::from_secs(1)).await;
    let (_, stale) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert_eq!(stale, full, "past the TTL: a full read");
    // The task starts: the poll sees it with the tasks alone, converges, and nothing is kept.
    tasks_show(&fake, "RUNNING");
    let (outcome, last) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert_eq!(outcome, Outcome::Converged);
    assert_eq!(
        last.keys()
            .copied()
            .filter(|op| *op != "PutItem")
            .collect::<Vec<_>>(),
        ["DescribeTasks", "ListTasks"]
    );
    assert_eq!(last_seen.agents(), 0, "a converged agent keeps nothing");
    let (_, after) = reconcile(&fake, &store, &last_seen, agent_id).await;
    assert_eq!(
        after, full,
        "the reconcile after convergence reads everything"
    );
}
