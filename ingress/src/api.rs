//! What the HTTP layer needs from the cluster.

use keel_partition::catalog::Catalog;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Envelope, Query, QueryResult, Response};
use std::future::Future;
use std::sync::Arc;

/// Failures of the cluster that the HTTP layer maps to statuses.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader or no quorum right now: 503 with `Retry-After`.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable and why.
        message: String,
        /// Suggested seconds before retrying.
        retry_after_secs: u32,
    },
    /// A bug or storage failure: 500.
    #[error("{0}")]
    Internal(String),
    /// The request cannot fit one replicated log entry: 413.
    #[error("{0}")]
    TooLarge(String),
}

/// The cluster as seen by the HTTP handlers.
pub trait ClusterApi: Send + Sync + 'static {
    /// Number of partitions (fixed at cluster creation).
    fn partition_count(&self) -> u32;
    /// Proposes a command to a partition's leader; resolves once applied.
    fn propose(
        &self,
        partition: u32,
        envelope: Envelope,
    ) -> impl Future<Output = Result<Response, ClusterError>> + Send;
    /// A linearizable read from a partition's leader.
    fn read(&self, partition: u32, query: Query) -> impl Future<Output = Result<QueryResult, ClusterError>> + Send;
    /// Creates an invocation (an `Invoke` command) on a partition's leader
    /// and waits for its result as `policy` allows.
    fn call(
        &self,
        partition: u32,
        envelope: Envelope,
        policy: WaitPolicy,
    ) -> impl Future<Output = Result<Waited, ClusterError>> + Send;
    /// Waits for the result of an existing invocation as `policy` allows
    /// (`None`: unknown).
    fn attach(
        &self,
        partition: u32,
        id: [u8; 24],
        policy: WaitPolicy,
    ) -> impl Future<Output = Result<Option<Waited>, ClusterError>> + Send;
    /// The service catalog from this node's replica (fast: parsed once per
    /// change, shared; may lag the leader briefly).
    fn local_catalog(&self) -> Result<Arc<Catalog>, ClusterError>;
    /// The partition table as JSON (`GET /cluster`).
    fn cluster(&self) -> impl Future<Output = serde_json::Value> + Send;
    /// Prometheus text exposition (`GET /metrics`).
    fn metrics_text(&self) -> String;
    /// What is wrong with this node (a partition it hosts stopped, its
    /// storage failed), one line each; empty when it is healthy. The health
    /// checks answer 503 with these, so a load balancer or orchestrator
    /// takes the node out.
    fn problems(&self) -> Vec<String>;
}
