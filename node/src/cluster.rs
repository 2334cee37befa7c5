//! The real cluster behind the HTTP layer: routes to Raft leaders.

use keel_ingress::{ClusterApi, ClusterError};
use keel_leader::Leaders;
use keel_partition::catalog::Catalog;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Envelope, Query, QueryResult, Response};
use keel_raft::router::{RouteError, Router};
use prometheus_client::registry::Registry as MetricsRegistry;
use std::sync::Arc;

/// [`ClusterApi`] over this node's router and metrics.
pub struct NodeCluster {
    /// Routes requests to partition leaders.
    pub router: Arc<Router>,
    /// The leader runtime of this node's groups (local calls, the catalog).
    pub leaders: Arc<Leaders>,
    /// All metrics of the node.
    pub metrics: Arc<MetricsRegistry>,
}

fn map_route_error(e: RouteError) -> ClusterError {
    match e {
        RouteError::NoLeader { .. } | RouteError::Unavailable { .. } => {
            ClusterError::Unavailable { message: e.to_string(), retry_after_secs: 1 }
        }
        RouteError::UnknownPartition(_) => ClusterError::Internal(e.to_string()),
        RouteError::TooLarge(message) => ClusterError::TooLarge(message),
    }
}

impl ClusterApi for NodeCluster {
    fn partition_count(&self) -> u32 {
        self.router.registry().partition_count()
    }

    async fn propose(&self, partition: u32, envelope: Envelope) -> Result<Response, ClusterError> {
        self.router.propose(partition, envelope).await.map_err(map_route_error)
    }

    async fn call(&self, partition: u32, envelope: Envelope, policy: WaitPolicy) -> Result<Waited, ClusterError> {
        self.router.call(partition, envelope, policy, self.leaders.as_ref()).await.map_err(map_route_error)
    }

    async fn attach(&self, partition: u32, id: [u8; 24], policy: WaitPolicy) -> Result<Option<Waited>, ClusterError> {
        self.router.attach(partition, id, policy, self.leaders.as_ref()).await.map_err(map_route_error)
    }

    fn local_catalog(&self) -> Result<Arc<Catalog>, ClusterError> {
        self.leaders.catalog().map_err(ClusterError::Internal)
    }

    async fn read(&self, partition: u32, query: Query) -> Result<QueryResult, ClusterError> {
        self.router.read(partition, &query).await.map_err(map_route_error)
    }

    async fn cluster(&self) -> serde_json::Value {
        let registry = self.router.registry();
        let metadata = registry.status().into_iter().find(|g| g.id == keel_partition::METADATA_GROUP);
        serde_json::json!({
            "node_id": registry.node_id(),
            "partitions": self.router.cluster_status().await,
            "metadata": metadata,
        })
    }

    fn problems(&self) -> Vec<String> {
        self.router.registry().db().health().problems()
    }

    fn metrics_text(&self) -> String {
        self.router.registry().refresh_metrics();
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.metrics) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}
