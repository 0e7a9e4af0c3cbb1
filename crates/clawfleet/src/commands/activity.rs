//! `clawfleet touch` and `clawfleet wake`: activity and wakes, written apart from the spec so
//! that neither bumps `generation` nor looks like a spec change.

use spec::lifecycle::WakeAnswer;
use store::Store;

use crate::failure::{Exit, Failure};

fn not_found(agent_id: &str) -> Failure {
    Failure::Invalid(format!("agent {agent_id}: not found"))
}

/// Reads an agent that has a spec and is not being deleted.
async fn live(store: &Store, agent_id: &str) -> Result<store::Agent, Failure> {
    let agent = store
        .get(agent_id)
        .await?
        .filter(|a| a.spec.is_some())
        .ok_or_else(|| not_found(agent_id))?;
    if agent.spec.as_ref().is_some_and(|s| s.meta.is_deleting()) {
        return Err(Failure::Invalid(format!(
            "agent {agent_id}: conflict: the agent is being deleted"
        )));
    }
    Ok(agent)
}

/// Records activity now: resets the agent's `idle_stop_after` timer, at most one write a
/// minute. It starts nothing (`wake` does).
pub async fn touch(store: &Store, agent_id: &str) -> Result<Exit, Failure> {
    let agent = live(store, agent_id).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if store.record_activity(&agent, now).await? {
        println!("agent/{agent_id} activity recorded");
    } else {
        println!("agent/{agent_id} activity recorded less than a minute ago; nothing written");
    }
    Ok(Exit::Success)
}

/// Asks the controller to start an idle agent; exit 1 when `desired_state` is stopped or the
/// agent is outside its schedule's windows, which a wake does not override.
pub async fn wake(store: &Store, agent_id: &str) -> Result<Exit, Failure> {
    let agent = live(store, agent_id).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let spec = agent.spec.as_ref().and_then(|item| item.spec.as_ref().ok());
    match spec.map(|s| spec::lifecycle::wake(s, now)) {
        Some(WakeAnswer::Stopped) => Err(Failure::Invalid(format!(
            "agent {agent_id}: desired_state is stopped; a wake does not start it (clawfleet apply with desired_state: running does)"
        ))),
        Some(WakeAnswer::OutsideSchedule { next_start }) => {
            let at = time::OffsetDateTime::from_unix_timestamp(next_start)
                .map(spec::format_rfc3339)
                .unwrap_or_default();
            Err(Failure::Invalid(format!(
                "agent {agent_id}: outside its schedule's windows; nothing starts before {at}"
            )))
        }
        Some(WakeAnswer::Wakes) | None => {
            let at = spec::now_rfc3339_millis();
            store.request_wake(agent_id, &at).await?;
            println!(
                "agent/{agent_id} wake requested at {at}; clawfleet wait {agent_id} --for condition=Ready"
            );
            Ok(Exit::Success)
        }
    }
}
