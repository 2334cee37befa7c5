//! keel's replication layer: openraft groups on one RocksDB per node.
//!
//! It replicates and stores; it runs no invocations. The partition
//! leader's runtime (crate `keel-leader`) takes each group's applied
//! effects and acts on them, and serves calls through [`leader_calls`].
//!
//! - [`types`]: the openraft type configuration and the versioned codec;
//! - [`runtime`]: the async runtime openraft runs on (tokio, seedable);
//! - [`keys`]: the key layout of the node's RocksDB;
//! - [`db`]: opening RocksDB and the group-commit log writer;
//! - [`log_store`], [`state_machine`]: openraft storage adapters per group;
//! - [`snapshot`]: snapshots as files, built, shipped and installed in bounded memory;
//! - [`transport`]: requests between nodes, over gRPC ([`transport::grpc`],
//!   [`transport::server`]) or a test's in-process network;
//! - [`handler`]: the receiving end of those requests;
//! - [`health`]: failures that stop the node or one partition;
//! - [`raft_network`]: openraft's network of one group over the transport;
//! - [`peer_auth`]: the cluster secret and mutual TLS on the node port;
//! - [`placement`]: replica sets of partitions over the static peer list;
//! - [`groups`]: the registry of hosted groups and their local reads;
//! - [`messages`]: failures and group views that cross the wire;
//! - [`proposer`]: group commit, one proposer per group;
//! - [`leader_calls`]: what replication needs from the leader runtime;
//! - [`router`]: routing client requests to partition leaders from any node;
//! - [`metrics`]: Prometheus metrics of all of the above.
#![deny(missing_docs)]
// openraft's `StorageError` is large by design, and its storage traits require it.
#![allow(clippy::result_large_err)]

pub mod db;
pub mod groups;
pub mod handler;
pub mod health;
pub mod keys;
pub mod leader_calls;
pub mod log_store;
pub mod messages;
pub mod metrics;
pub mod peer_auth;
pub mod placement;
pub mod proposer;
pub mod raft_network;
pub mod router;
pub mod runtime;
pub mod snapshot;
pub mod state_machine;
pub mod transport;
pub mod types;

#[cfg(test)]
mod storage_tests;
