//! `clawfleet plan [AGENT_ID | --all]`: what the controller would do, without doing it.

use std::collections::BTreeSet;

use cloud::Aws;
use cloud::observed::AgentResources;
use controller::{Context, Desired, Plan};
use spec::render::Settings;
use store::{Agent, Store};

use crate::failure::{Exit, Failure};

fn aws_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Aws(e.to_string())
}

pub async fn run(
    store: &Store,
    config: &aws_config::SdkConfig,
    settings: &Settings,
    template: &str,
    agent_id: Option<&str>,
) -> Result<Exit, Failure> {
    let aws = Aws::new(config, settings);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut pending = false;
    match agent_id {
        Some(agent_id) => {
            let (_, template) = aws
                .template(template, settings)
                .await
                .map_err(aws_failure)?;
            let agent = store.get(agent_id).await?;
            let known_task = agent
                .as_ref()
                .and_then(|a| a.status.as_ref())
                .and_then(|s| s.task_arn.clone());
            let observed = aws
                .observe_agent(agent_id, known_task.as_deref(), settings)
                .await
                .map_err(aws_failure)?;
            if agent.is_none() && observed.is_empty() {
                return Err(Failure::Invalid(format!("agent {agent_id}: not found")));
            }
            let ctx = Context {
                settings,
                template: &template,
                now,
            };
            pending |= print_plan(agent_id, agent.as_ref(), &observed, &ctx);
        }
        None => {
            let fleet = aws
                .observe_fleet(template, settings)
                .await
                .map_err(aws_failure)?;
            let agents = store.list().await?;
            let ctx = Context {
                settings,
                template: &fleet.template,
                now,
            };
            let known: BTreeSet<&str> = agents.iter().map(|a| a.agent_id.as_str()).collect();
            for agent in &agents {
                let observed = fleet.agent(&agent.agent_id);
                pending |= print_plan(&agent.agent_id, Some(agent), &observed, &ctx);
            }
            for (agent_id, observed) in &fleet.agents {
                if !known.contains(agent_id.as_str()) && observed.has_live_resources() {
                    pending |= print_plan(agent_id, None, observed, &ctx);
                }
            }
        }
    }
    Ok(if pending {
        Exit::NotAsItShouldBe
    } else {
        Exit::Success
    })
}

/// Prints one agent's plan; returns whether it has actions.
fn print_plan(
    agent_id: &str,
    agent: Option<&Agent>,
    observed: &AgentResources,
    ctx: &Context<'_>,
) -> bool {
    let spec_item = agent.and_then(|a| a.spec.as_ref());
    let error = spec_item.and_then(store::SpecItem::error_text);
    let desired = Desired::of(
        agent_id,
        spec_item,
        error.as_deref(),
        agent.and_then(|a| a.status.as_ref()),
    );
    let plan: Plan = controller::plan(&desired, observed, ctx);
    let label = if spec_item.is_none() {
        " (orphaned: no spec)"
    } else {
        ""
    };
    if plan.is_empty() {
        match &plan.wait {
            Some(w) => println!(
                "agent/{agent_id}{label}: nothing to do now; waiting: {}",
                w.reason
            ),
            None => println!("agent/{agent_id}{label}: nothing to do"),
        }
        return false;
    }
    println!("agent/{agent_id}{label}:");
    for (i, action) in plan.actions.iter().enumerate() {
        println!("  {}. {action}", i + 1);
    }
    if let Some(w) = &plan.wait {
        println!("  then wait {}s: {}", w.after_secs, w.reason);
    }
    true
}
