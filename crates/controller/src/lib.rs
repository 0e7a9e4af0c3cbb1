//! The controller, in the order a change flows through it:
//!
//! 1. [`watch`]: the table's stream, so a spec written anywhere is enqueued within a second;
//!    [`events`]: ECS task-state events from EventBridge through SQS, so a crash is seen in seconds;
//!    [`resync`]: the periodic snapshot of the whole fleet that enqueues every agent with work,
//!    over the [`view`] of the table the stream keeps current.
//! 2. [`queue`]: client-go's work queue (one worker per agent at a time, coalesced adds,
//!    per-agent backoff), which owns its metrics.
//! 3. [`reconcile`]: read one agent, `plan::plan` it (the pure planner in the `plan` crate),
//!    and [`execute`] the actions through the [`aws`] and [`status`] ports, with
//!    [`expectations`] for lagging listings, launch [`token`]s, [`rollout`] pacing, and
//!    [`last_seen`] so that a reconcile waiting on a task reads only the tasks again.
//! 4. [`policy`]: the result of a reconcile decides the queue's next step.
//! 5. [`status`]: the status item, written at the end of each reconcile.
//!
//! Around them: [`runtime`] (the workers and the resync loop), [`leader`] (the lease),
//! [`metrics`] and [`health`] (`/metrics`, `/healthz`, `/readyz`).

// 1. Changes come in.
pub mod watch;

pub mod events;

pub mod resync;

pub mod view;

// 2. Queued.
pub mod queue;

// 3. Planned and carried out.
pub mod reconcile;

pub mod execute;

pub mod aws;

pub mod status;

pub mod expectations;

pub mod last_seen;

pub mod token;

pub mod rollout;

// 4. Requeued.
pub mod policy;

// Around them.
pub mod runtime;

pub mod leader;

pub mod metrics;

pub mod health;

#[cfg(any(test, feature = "fixtures"))]
pub mod fake;
