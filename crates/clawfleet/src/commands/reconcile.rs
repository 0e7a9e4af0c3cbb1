//! `clawfleet reconcile [AGENT_ID | --all]`: one pass of the controller.

use cloud::Aws;
use controller::aws::RealCloud;
use controller::expectations::Expectations;
use controller::reconcile::{Outcome, Reconciler};
use controller::resync::fleet_plans;
use plan::Context;
use spec::render::Settings;
use store::Store;

use crate::failure::{Exit, Failure};

pub async fn run(
    store: &Store,
    config: &aws_config::SdkConfig,
    settings: &Settings,
    template: &str,
    agent_id: Option<&str>,
    recovery_days: i64,
) -> Result<Exit, Failure> {
    let aws = Aws::new(config, settings);
    let (_, template_definition) = aws
        .template(template, settings)
        .await
        .map_err(|e| Failure::Aws(e.to_string()))?;
    let cloud = RealCloud {
        aws: aws.clone(),
        settings: settings.clone(),
    };
    let expectations = Expectations::default();
    let reconciler = Reconciler {
        cloud: &cloud,
        store,
        settings,
        template: &template_definition,
        expectations: &expectations,
        recovery_days,
        rollout: None,
        last_seen: None,
        metrics: None,
    };
    let mut work: Vec<(String, Option<plan::observed::AgentResources>)> = Vec::new();
    match agent_id {
        Some(id) => work.push((id.to_owned(), None)),
        None => {
            let agents = store.list().await?;
            let fleet = aws
                .observe_fleet(template, settings, &controller::resync::recorded(&agents))
                .await
                .map_err(|e| Failure::Aws(e.to_string()))?;
            let ctx = Context {
                settings,
                template: &fleet.template,
                now: time::OffsetDateTime::now_utc().unix_timestamp(),
            };
            // A deliberate full pass observes each agent afresh rather than from the fleet's
            // listings, so that every task role's boundary and policy are read (GetRole,
            // GetRolePolicy) and put back when changed.
            work.extend(fleet_plans(&agents, &fleet, &ctx).map(|e| (e.agent_id.to_owned(), None)));
        }
    }
    let mut exit = Exit::Success;
    for (id, snapshot) in work {
        match reconciler.reconcile(&id, snapshot).await {
            Ok(Outcome::Converged) => println!("agent/{id} converged"),
            Ok(Outcome::Waiting(w)) => println!(
                "agent/{id} in progress: {} (look again in {}s)",
                w.reason, w.after_secs
            ),
            Ok(Outcome::WaitingOnOwner(why)) => println!("agent/{id} waiting on its owner: {why}"),
            Ok(Outcome::Deleted) => println!("agent/{id} deleted"),
            Ok(Outcome::Revisit(after)) => {
                println!("agent/{id} converged; its schedule or idleness changes in {after}s");
            }
            Err(e) => {
                eprintln!("error: agent {id}: {e}");
                exit = Exit::Failed;
            }
        }
    }
    Ok(exit)
}
