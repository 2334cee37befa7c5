//! The leader runtime of one node: a supervisor per hosted group, and the
//! calls served on the leaders this node holds.

use crate::calls;
use crate::catalog_cache::CatalogCache;
use crate::clock::Clock;
use crate::endpoints::Endpoints;
use crate::panics::caught;
use crate::partition::{Partition, Services};
use crate::slots::Slots;
use crate::supervisor;
use crate::waiters::Waiters;
use futures::future::BoxFuture;
use keel_partition::catalog::Catalog;
use keel_partition::invocation::InvocationKey;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Effect, Envelope};
use keel_raft::groups::Registry;
use keel_raft::health::Health;
use keel_raft::leader_calls::LeaderCalls;
use keel_raft::messages::ProposeError;
use keel_raft::router::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How the leader runtime runs.
pub struct LeaderOptions {
    /// Invocation attempts in flight at once on this node, over all its
    /// partitions; more wait for a slot (they never fail for it).
    pub max_concurrent_invocations: usize,
    /// How many of those slots the attempts of one deployment may hold at
    /// once, so that a deployment that stops answering leaves the rest to
    /// the others ([`crate::slots`]; usually
    /// [`crate::slots::default_per_deployment`]).
    pub max_concurrent_invocations_per_deployment: usize,
    /// Runs attempts against SDK endpoints.
    pub endpoints: Arc<dyn Endpoints>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// How long a completed invocation without idempotency key (not a
    /// workflow run) keeps its record ([`keel_partition::idempotency`]).
    pub completed_retention: Duration,
}

/// The leader runtime of every group hosted on one node.
pub struct Leaders {
    partitions: BTreeMap<u32, Arc<Partition>>,
    services: Arc<Services>,
}

impl Leaders {
    /// Starts a supervisor for every group of `registry`: while this node
    /// leads a group, it acts on the group's effects. Each group's effects
    /// can be taken once, so a registry gets one runtime.
    pub fn start(registry: &Registry, router: Arc<Router>, options: LeaderOptions) -> Arc<Leaders> {
        let catalog = Arc::new(CatalogCache::new(registry.db().clone(), registry.catalog_changes()));
        let services = Arc::new(Services {
            node_id: registry.node_id(),
            router,
            catalog,
            endpoints: options.endpoints,
            clock: options.clock,
            slots: Slots::new(options.max_concurrent_invocations, options.max_concurrent_invocations_per_deployment),
            completed_retention_ms: u64::try_from(options.completed_retention.as_millis()).unwrap_or(u64::MAX),
        });
        let mut partitions = BTreeMap::new();
        for group in registry.groups() {
            let partition =
                Arc::new(Partition { group: group.clone(), waiters: Waiters::default(), services: services.clone() });
            match group.take_effects() {
                Some(effects) => {
                    tokio::spawn(supervised(partition.clone(), effects, registry.db().health().clone()));
                }
                None => tracing::error!(partition = group.id, "effects already taken; no leader runtime for it"),
            }
            partitions.insert(group.id, partition);
        }
        Arc::new(Leaders { partitions, services })
    }

    /// The service catalog as this node's replica of the metadata group
    /// has applied it (not linearizable: it may lag the leader briefly).
    pub fn catalog(&self) -> Result<Arc<Catalog>, String> {
        self.services.catalog.get()
    }

    fn partition(&self, group: u32) -> Result<&Arc<Partition>, ProposeError> {
        self.partitions.get(&group).ok_or(ProposeError::NoSuchGroup(group))
    }
}

/// Runs a partition's supervisor; if it panics, the partition would have
/// no leader runtime on this node for good, so the node stops.
async fn supervised(partition: Arc<Partition>, effects: UnboundedReceiver<Vec<Effect>>, health: Arc<Health>) {
    let id = partition.id();
    if let Err(panic) = caught(supervisor::supervise(partition, effects)).await {
        health.stop_node(&format!("the leader supervisor of partition {id}"), &format!("it panicked: {panic}"));
    }
}

impl LeaderCalls for Leaders {
    fn call(&self, group: u32, envelope: Envelope, policy: WaitPolicy) -> BoxFuture<'_, Result<Waited, ProposeError>> {
        Box::pin(async move { calls::call(self.partition(group)?, envelope, policy).await })
    }

    fn attach(
        &self,
        group: u32,
        id: InvocationKey,
        policy: WaitPolicy,
    ) -> BoxFuture<'_, Result<Option<Waited>, ProposeError>> {
        Box::pin(async move { calls::attach(self.partition(group)?, id, policy).await })
    }
}
