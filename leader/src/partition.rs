//! The leader-side handle of one hosted partition, and the node-wide
//! services every partition's leader shares.

use crate::catalog_cache::CatalogCache;
use crate::clock::Clock;
use crate::endpoints::Endpoints;
use crate::slots::Slots;
use crate::waiters::Waiters;
use keel_partition::catalog::Catalog;
use keel_partition::{Envelope, Response};
use keel_raft::groups::Group;
use keel_raft::messages::ProposeError;
use keel_raft::router::Router;
use keel_raft::state_machine::GroupView;
use std::sync::Arc;

/// What the leaders of all partitions of a node share.
pub struct Services {
    /// This node's id.
    pub node_id: u64,
    /// Routes proposals to other partitions' leaders (the outbox ships through it).
    pub router: Arc<Router>,
    /// The node's parsed service catalog.
    pub catalog: Arc<CatalogCache>,
    /// Runs attempts against SDK endpoints.
    pub endpoints: Arc<dyn Endpoints>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// The node's slots for invocation attempts in flight (all
    /// partitions), and each deployment's share of them.
    pub slots: Slots,
    /// How long a completed invocation without idempotency key (not a
    /// workflow run) keeps its record: stamped into the invocations this
    /// node's outboxes create ([`keel_partition::idempotency`]).
    pub completed_retention_ms: u64,
}

/// One partition as its leader works with it.
pub struct Partition {
    /// The replicated group.
    pub group: Arc<Group>,
    /// Callers waiting for invocations of this partition, and which of them
    /// parked. Only meaningful on the leader; cleared (so callers retry)
    /// when leadership is lost.
    pub waiters: Waiters,
    /// The node-wide services.
    pub services: Arc<Services>,
}

impl Partition {
    /// The partition id.
    pub fn id(&self) -> u32 {
        self.group.id
    }

    /// Proposes through the local replica, which must lead; see [`Group::propose`].
    pub async fn propose(&self, envelope: Envelope) -> Result<Response, ProposeError> {
        self.group.propose(envelope).await
    }

    /// The local replica's applied state.
    pub fn view(&self) -> GroupView<'_> {
        self.group.view()
    }

    /// Now, from the node's clock.
    pub fn now_ms(&self) -> u64 {
        self.services.clock.now_ms()
    }

    /// The catalog as this node has applied it.
    pub fn catalog(&self) -> Result<Arc<Catalog>, String> {
        self.services.catalog.get()
    }
}
