//! The data purge of a deletion that asks for it (`purge_data_on_delete`): once the agent's
//! task is STOPPED, a one-off task of the agent's purge revision erases everything under its
//! access point; only when that task's container exits 0 may the access point go. A purge
//! that cannot finish keeps the access point, because deleting it would leave the files with
//! no way to reach them, and says why in the status and as a Warning event.
//!
//! Everything a controller restart needs is in the status ([`spec::Purge`]): the attempt (the
//! launch token), the task of that attempt, when it was launched (the timeout), the failures
//! (the backoff) and when it succeeded.

use spec::render::tag;
use spec::{EventType, purge};

use crate::action::{Action, StopReason, Wait};
use crate::observed::{AgentResources, Task};
use crate::plan::{Context, Desired, StatusDraft, rfc3339};

/// How often a running purge is looked at; the task's stop event wakes the agent sooner.
pub const PURGE_POLL_SECS: u64 = 30;
/// A failed purge is retried after this...
pub const PURGE_BACKOFF_MIN_SECS: i64 = 30;
/// ...doubling up to this.
pub const PURGE_BACKOFF_MAX_SECS: i64 = 1800;
/// How long to wait before looking again when the purge cannot run (no `--purge-image`).
const NOT_CONFIGURED_RECHECK_SECS: u64 = 300;

/// Where the purge stands after this plan.
pub(crate) enum Step {
    /// The files are erased (or nothing can hold them): the teardown goes on.
    Done,
    /// The purge is under way, backing off or cannot run: the access point stays.
    Waiting,
}

fn parse(at: Option<&str>) -> Option<i64> {
    at.and_then(spec::parse_rfc3339).map(|t| t.unix_timestamp())
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The backoff after `failures` failed attempts.
fn backoff(failures: u32) -> i64 {
    let exponent = failures.saturating_sub(1).min(16);
    (PURGE_BACKOFF_MIN_SECS << exponent).min(PURGE_BACKOFF_MAX_SECS)
}

/// Why a stopped purge task did not purge, or `None` when its container exited 0.
fn failure(task: &Task) -> Option<String> {
    let timed_out =
        task.stopped_reason.as_deref() == Some(StopReason::PurgeTimeout.to_string().as_str());
    if timed_out {
        return Some("it ran beyond --purge-timeout and was stopped".into());
    }
    match task.exit_codes.get(purge::CONTAINER) {
        Some(0) => None,
        Some(code) => Some(format!("its container exited with code {code}")),
        None => Some(format!(
            "its container never exited: {}{}",
            task.stopped_reason.as_deref().unwrap_or("no reason given"),
            task.stop_code
                .as_deref()
                .map(|c| format!(" (stop code {c})"))
                .unwrap_or_default()
        )),
    }
}

fn wait(plan: &mut crate::Plan, after_secs: u64, reason: &str) {
    plan.wait = Some(Wait {
        after_secs,
        reason: reason.into(),
    });
}

/// One step of the purge: called by the teardown once the agent's tasks are STOPPED.
pub(crate) fn step(
    desired: &Desired<'_>,
    observed: &AgentResources,
    ctx: &Context<'_>,
    draft: &mut StatusDraft,
    plan: &mut crate::Plan,
) -> Step {
    let settings = ctx.settings;
    let agent_id = desired.agent_id;
    if draft.status.purge.purged_at.is_some() {
        return Step::Done;
    }
    let Some(access_point) = observed.access_points.iter().find(|a| a.is_usable()) else {
        // Nothing can reach the files any more (no access point was ever made, or it was
        // deleted behind clawfleet's back): say so rather than pretend they were erased.
        draft.observe(
            EventType::Warning,
            "PurgeImpossible",
            "no access point is left to reach the agent's directory: whatever it holds stays on the file system (docs/operations.md, Retention)".into(),
        );
        return Step::Done;
    };
    let Some(image) = settings.purge_image.as_deref() else {
        let message = "purge_data_on_delete is set but the controller has no --purge-image: the access point is kept until one is configured";
        if desired.status.and_then(|s| s.message.as_deref()) != Some(message) {
            draft.observe(EventType::Warning, "PurgeNotConfigured", message.into());
        }
        draft.status.message = Some(message.into());
        wait(plan, NOT_CONFIGURED_RECHECK_SECS, "purge not configured");
        return Step::Waiting;
    };
    let client_id = draft
        .status
        .client_id
        .clone()
        .or_else(|| access_point.tags.get(tag::CLIENT_ID).cloned())
        .unwrap_or_default();
    let cost_tags = match desired.spec {
        Some(Ok(spec)) => spec.tags.clone(),
        _ => std::collections::BTreeMap::new(),
    };
    let tags = purge::tags(agent_id, &client_id, &cost_tags, settings);

    // The purge revision: registered once per image (the access point and role do not change
    // while the agent is deleted); a new `--purge-image` gets a new revision.
    let revision = observed
        .purge_revisions
        .first()
        .filter(|_| draft.status.purge.image.as_deref() == Some(image));
    let Some(revision) = revision else {
        let role = match settings.task_role {
            spec::render::TaskRole::PerAgent { .. } => {
                observed.role.as_ref().map(|r| r.arn.as_str())
            }
            spec::render::TaskRole::Template => None,
        };
        match purge::definition(
            ctx.template,
            settings,
            agent_id,
            &access_point.id,
            role,
            image,
        ) {
            Ok(definition) => {
                let mut revision_tags = tags.clone();
                for key in cost_tags.keys() {
                    revision_tags.remove(key);
                }
                plan.actions.push(Action::RegisterPurgeTaskDefinition {
                    definition,
                    tags: revision_tags,
                });
                draft.status.purge.image = Some(image.to_owned());
                draft.status.message = Some("registering the purge task definition".into());
            }
            Err(e) => {
                draft.status.message = Some(format!("the purge cannot run: {e}"));
                wait(plan, NOT_CONFIGURED_RECHECK_SECS, "purge template unusable");
            }
        }
        return Step::Waiting;
    };

    let state = draft.status.purge.clone();
    let attempt_tag = state.attempt.to_string();
    let current = (state.attempt > 0)
        .then(|| {
            observed
                .purge_tasks
                .iter()
                .find(|t| t.tags.get(tag::LAUNCH_ATTEMPT) == Some(&attempt_tag))
        })
        .flatten();
    match current {
        Some(task) if !task.is_stopped() => {
            draft.status.purge.task_arn = Some(task.arn.clone());
            let started = parse(state.started_at.as_deref()).unwrap_or(ctx.now);
            let ran = ctx.now.saturating_sub(started);
            if ran >= settings.purge_timeout_secs && task.is_live() {
                plan.actions.push(Action::StopTask {
                    task_arn: task.arn.clone(),
                    reason: StopReason::PurgeTimeout,
                });
                draft.status.message = Some(format!(
                    "purge task {} ran {ran}s, beyond --purge-timeout ({}s): stopping it",
                    short(&task.arn),
                    settings.purge_timeout_secs
                ));
                wait(plan, crate::POLL_SECS, "purge task stopping");
            } else {
                draft.status.message = Some(format!(
                    "erasing the agent's files: purge task {} is {} (attempt {})",
                    short(&task.arn),
                    task.last_status,
                    state.attempt
                ));
                let left = u64::try_from(settings.purge_timeout_secs - ran).unwrap_or(1);
                wait(plan, PURGE_POLL_SECS.min(left.max(1)), "purge task running");
            }
            Step::Waiting
        }
        Some(task) => {
            draft.status.purge.task_arn = Some(task.arn.clone());
            match failure(task) {
                None => {
                    draft.status.purge.purged_at = Some(rfc3339(ctx.now));
                    draft.status.message =
                        Some("the agent's files are erased; deleting the access point".into());
                    draft.observe(
                        EventType::Normal,
                        "Purged",
                        format!(
                            "purge task {} exited 0: everything under the agent's access point is erased",
                            short(&task.arn)
                        ),
                    );
                    Step::Done
                }
                Some(why) => {
                    if u64::from(state.failures) < state.attempt {
                        // First sight of this attempt's failure: counted and reported once.
                        draft.status.purge.failures = state.failures + 1;
                        draft.status.purge.failed_at = Some(rfc3339(ctx.now));
                        draft.observe(
                            EventType::Warning,
                            "PurgeFailed",
                            format!(
                                "purge task {} failed: {why}; the access point is kept and the purge is retried",
                                short(&task.arn)
                            ),
                        );
                    }
                    relaunch(desired, ctx, draft, plan, revision, tags, Some(why))
                }
            }
        }
        None => relaunch(desired, ctx, draft, plan, revision, tags, None),
    }
}

/// Launches the next attempt, or waits out the backoff after a failure.
fn relaunch(
    desired: &Desired<'_>,
    ctx: &Context<'_>,
    draft: &mut StatusDraft,
    plan: &mut crate::Plan,
    revision: &str,
    tags: std::collections::BTreeMap<String, String>,
    why: Option<String>,
) -> Step {
    let state = draft.status.purge.clone();
    // An attempt whose task was never seen may have lost its RunTask answer: the retry reuses
    // its token, so ECS replays it instead of starting a second purge.
    let failed = u64::from(state.failures) >= state.attempt;
    let attempt = if state.attempt == 0 || failed {
        state.attempt + 1
    } else {
        state.attempt
    };
    if failed && state.failures > 0 {
        let failed_at = parse(state.failed_at.as_deref()).unwrap_or(ctx.now);
        let ready_at = failed_at + backoff(state.failures);
        if ctx.now < ready_at {
            let left = ready_at - ctx.now;
            draft.status.message = Some(format!(
                "the purge failed{}; retrying in {left}s; the access point is kept until the files are erased",
                why.map(|w| format!(": {w}")).unwrap_or_default()
            ));
            wait(plan, u64::try_from(left).unwrap_or(1), "purge backoff");
            return Step::Waiting;
        }
    }
    if attempt != state.attempt {
        draft.status.purge.attempt = attempt;
        draft.status.purge.started_at = Some(rfc3339(ctx.now));
        draft.status.purge.task_arn = None;
        // Stored before RunTask, so a retry after a lost answer reuses the launch token.
        plan.actions
            .push(Action::UpdateStatus(draft.status.clone()));
    }
    draft.status.message = Some(format!(
        "erasing the agent's files: launching purge task (attempt {attempt})"
    ));
    plan.actions.push(Action::RunPurgeTask {
        request: purge::run_task(ctx.settings, desired.agent_id, revision, tags, attempt),
        attempt,
    });
    wait(plan, crate::POLL_SECS, "purge task starting");
    Step::Waiting
}

#[cfg(test)]
#[path = "purge_tests.rs"]
mod tests;
