//! The controller: what to do about one agent, decided as a pure function of what it should be
//! and what AWS shows ([`plan()`]), with the typed [`delta`] that decides replacements, and the
//! reconciler that carries a plan out ([`reconcile`]).

pub mod act;
pub mod action;
pub mod delta;
pub mod expectations;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod queue;
pub mod ratelimit;
pub mod reconcile;
pub mod runtime;
pub mod token;

pub use action::{Action, Plan, Wait};
pub use plan::{Context, Desired, plan};
