//! The controller: what to do about one agent, decided as a pure function of what it should be
//! and what AWS shows ([`plan()`]), with the typed [`delta`] that decides replacements.

pub mod action;
pub mod delta;
pub mod plan;

pub use action::{Action, Plan, Wait};
pub use plan::{Context, Desired, plan};
