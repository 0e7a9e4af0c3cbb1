//! The fleet simulation: the controller's real pieces (work queue, reconciler, planner,
//! executor, resync, rate limits) against the controller library's in-memory fake AWS,
//! extended with AWS's buckets, quotas, paging and latencies ([`account`]), and an in-memory
//! table ([`table`]), on tokio's paused clock, so that a cold start of thousands of agents
//! takes virtual hours and real seconds. [`scenario`] runs and measures; [`plot`] draws;
//! [`heap`] tells the controller's memory from the fakes'.

pub mod account;
pub mod assembled;
pub mod heap;
pub mod plot;
pub mod scenario;
pub mod table;
