//! keel's replication layer: openraft groups on one RocksDB per node.
//!
//! - [`types`]: the openraft type configuration and the versioned codec;
//! - [`keys`]: the key layout of the node's RocksDB;
//! - [`db`]: opening RocksDB and the group-commit log writer;
//! - [`log_store`], [`state_machine`]: openraft storage adapters per group;
//! - [`network`]: the node-to-node tonic service carrying every group;
//! - [`placement`]: replica sets of partitions over the static peer list;
//! - [`groups`]: the registry of hosted groups, proposer and reads;
//! - [`leader`]: the leader-side supervisor and actor per group;
//! - [`router`]: routing client requests to partition leaders from any node;
//! - [`metrics`]: Prometheus metrics of all of the above.
#![deny(missing_docs)]
// openraft's `StorageError` is large by design, and its storage traits require it.
#![allow(clippy::result_large_err)]

pub mod catalog_cache;
pub mod db;
pub mod groups;
pub mod invocations;
pub mod keys;
pub mod leader;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod outbox;
pub mod peer_auth;
pub mod placement;
pub mod retry;
pub mod router;
pub mod state_machine;
pub mod timers;
pub mod types;
pub mod waiters;

#[cfg(test)]
mod storage_tests;
