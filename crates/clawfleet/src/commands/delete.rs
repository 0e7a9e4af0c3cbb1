//! `clawfleet delete` and `clawfleet restart`: single-attribute writes that cannot lose edits.

use store::{Store, StoreError};

use crate::failure::{Exit, Failure};

fn not_found(agent_id: &str) -> Failure {
    Failure::Invalid(format!("agent {agent_id}: not found"))
}

pub async fn delete(
    store: &Store,
    agent_id: &str,
    purge: bool,
    purge_data: bool,
) -> Result<Exit, Failure> {
    let Some(item) = store.get_spec(agent_id).await? else {
        return Err(not_found(agent_id));
    };
    if purge {
        store.delete_items(agent_id, &item.snapshot).await?;
        println!("agent/{agent_id} purged");
        return Ok(Exit::Success);
    }
    let purges = item
        .document
        .as_ref()
        .is_some_and(|d| d.purge_data_on_delete == Some(true));
    if item.meta.is_deleting() && purge_data && !purges {
        // The teardown may already have deleted the access point.
        return Err(Failure::Invalid(format!(
            "agent {agent_id}: conflict: already being deleted without --purge-data"
        )));
    }
    if item.meta.is_deleting() {
        println!("agent/{agent_id} already being deleted");
        return Ok(Exit::Success);
    }
    match store
        .request_deletion(agent_id, &spec::now_rfc3339(), purge_data)
        .await
    {
        Ok(()) => {
            if purge_data {
                println!("agent/{agent_id} deletion requested; its files are erased first");
            } else {
                println!("agent/{agent_id} deletion requested");
            }
            Ok(Exit::Success)
        }
        // Deleted, or marked for deletion, by someone else since the read.
        Err(StoreError::Conflict { .. }) => match store.get_spec(agent_id).await? {
            Some(i) if i.meta.is_deleting() => {
                println!("agent/{agent_id} already being deleted");
                Ok(Exit::Success)
            }
            _ => Err(not_found(agent_id)),
        },
        Err(e) => Err(e.into()),
    }
}

pub async fn restart(store: &Store, agent_id: &str) -> Result<Exit, Failure> {
    let at = spec::now_rfc3339();
    match store.request_restart(agent_id, &at).await {
        Ok(()) => {
            println!("agent/{agent_id} restart requested at {at}");
            Ok(Exit::Success)
        }
        Err(StoreError::Conflict { .. }) => match store.get_spec(agent_id).await? {
            Some(i) if i.meta.is_deleting() => Err(Failure::Invalid(format!(
                "agent {agent_id}: conflict: the agent is being deleted"
            ))),
            _ => Err(not_found(agent_id)),
        },
        Err(e) => Err(e.into()),
    }
}
