//! The partition leader's runtime: everything a node does for the
//! partitions it leads, on top of replication (`keel-raft`).
//!
//! Replication turns proposals into applied entries, and applied entries
//! into effects. This crate acts on the effects, and only on the leader:
//! it runs invocation attempts against SDK endpoints, fires durable timers,
//! ships outbox messages to other partitions and answers the callers
//! waiting for results. Each of those side effects becomes durable only by
//! being proposed back through Raft, fenced with the leader's term, so a
//! deposed leader's late work is refused by the state machine instead of
//! applied twice.
//!
//! - [`Leaders`]: the runtime of one node, started over its registry and
//!   router; it serves [`keel_raft::leader_calls::LeaderCalls`];
//! - [`partition`]: the leader-side handle of one hosted partition and the
//!   node-wide services it uses;
//! - [`supervisor`], [`actor`]: one leader actor per term, started and
//!   stopped as leadership comes and goes;
//! - [`invocations`]: the run loop of invocations (attempts, frames,
//!   retries, timeouts), with [`retry`] its policy and [`lease`] the
//!   quorum contact it needs to start attempts;
//! - [`timers`], [`outbox`], [`waiters`], [`calls`]: durable timers, the
//!   outbox shipper, callers waiting for results, and calls themselves;
//! - [`expiry`]: removing completed invocations whose retention ended;
//! - [`catalog_cache`]: the node's parsed service catalog, and
//!   [`catalog_lookup`] the metadata group's when the node's lags;
//! - [`slots`]: the node's slots for attempts in flight, and each
//!   deployment's share of them;
//! - `backoff`: the doubling pause of work retried until it succeeds;
//! - `panics`: catching a loop's panic so it is logged and acted on;
//! - [`clock`], [`endpoints`]: where "now" and SDK attempts come from, so
//!   a test can replace both.
#![deny(missing_docs)]

pub mod actor;
mod backoff;
pub mod calls;
pub mod catalog_cache;
pub mod catalog_lookup;
pub mod clock;
pub mod endpoints;
pub mod expiry;
pub mod invocations;
pub mod lease;
pub mod outbox;
mod panics;
pub mod partition;
pub mod retry;
pub mod slots;
pub mod supervisor;
pub mod timers;
pub mod waiters;

mod leaders;
pub use leaders::{LeaderOptions, Leaders};
