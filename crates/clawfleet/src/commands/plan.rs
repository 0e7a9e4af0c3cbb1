//! `clawfleet plan [AGENT_ID | --all]`: what the controller would do, without doing it.

use cloud::Aws;
use controller::resync::{fleet_plans, plan_for};
use plan::{Context, Plan};
use spec::render::Settings;
use store::Store;

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
            let status = agent.as_ref().and_then(|a| a.status.as_ref());
            let known_task = status.and_then(|s| s.task_arn.as_deref());
            let known_access_point = status.and_then(|s| s.access_point_id.as_deref());
            let mut observed = aws
                .observe_agent(agent_id, known_task, known_access_point, settings)
                .await
                .map_err(aws_failure)?;
            // A one-shot look at one agent may list the file system, which a reconcile never
            // does: the status may not name an access point the agent has.
            if known_access_point.is_none() {
                observed.access_points = aws
                    .efs
                    .describe_access_points()
                    .await
                    .map_err(aws_failure)?
                    .into_iter()
                    .filter(|a| {
                        a.agent_id() == Some(agent_id)
                            && spec::render::of_installation(&a.tags, settings)
                    })
                    .collect();
            }
            if agent.is_none() && observed.is_empty() {
                return Err(Failure::Invalid(format!("agent {agent_id}: not found")));
            }
            let ctx = Context {
                settings,
                template: &template,
                now,
            };
            let plan = plan_for(agent_id, agent.as_ref(), &observed, &ctx);
            pending |= print_plan(agent_id, agent.is_some_and(|a| a.spec.is_some()), &plan);
        }
        None => {
            let agents = store.list().await?;
            let fleet = aws
                .observe_fleet(template, settings, &controller::resync::recorded(&agents))
                .await
                .map_err(aws_failure)?;
            let ctx = Context {
                settings,
                template: &fleet.template,
                now,
            };
            for entry in fleet_plans(&agents, &fleet, &ctx) {
                let has_spec = entry.agent.is_some_and(|a| a.spec.is_some());
                pending |= print_plan(entry.agent_id, has_spec, &entry.plan);
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
fn print_plan(agent_id: &str, has_spec: bool, plan: &Plan) -> bool {
    let label = if has_spec { "" } else { " (orphaned: no spec)" };
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
