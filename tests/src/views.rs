//! Typed bodies of the admin API's answers: `GET /cluster` and
//! `GET /services/{service}/state/{key}`.

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

use crate::model::State;

/// `GET /cluster`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    pub node_id: u64,
    pub partitions: Vec<PartitionView>,
}

/// One partition in `GET /cluster`. `role`..`snapshot` are the answering
/// node's local view of the partition's Raft group and are null (or absent)
/// on nodes that do not replicate it, except `role`, which is `"none"` there
/// (see [`PartitionView::check_local_state`]). `leader` is the leader as known to
/// the answering node; a non-replica learns it from the replicas.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionView {
    pub id: u32,
    pub replicas: Vec<u64>,
    #[serde(default)]
    pub leader: Option<u64>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub committed: Option<u64>,
    #[serde(default)]
    pub applied: Option<u64>,
    #[serde(default)]
    pub last_log: Option<u64>,
    #[serde(default)]
    pub last_purged: Option<u64>,
    #[serde(default)]
    pub snapshot: Option<u64>,
}

impl PartitionView {
    /// Checks that this entry, as reported by node `node_id`, shows local
    /// Raft state exactly if that node replicates the partition.
    ///
    /// A replica reports a role other than `"none"` and a term, committed and
    /// applied index. Any other node reports role `"none"` and no term and no
    /// index (committed, applied, last log, last purged, snapshot). A known
    /// leader is always one of the replicas.
    pub fn check_local_state(&self, node_id: u64) -> Result<()> {
        if let Some(leader) = self.leader {
            ensure!(
                self.replicas.contains(&leader),
                "node {node_id} names node {leader}, not a replica, leader of partition {}: {self:?}",
                self.id
            );
        }
        if self.replicas.contains(&node_id) {
            ensure!(
                self.role.as_deref().is_some_and(|r| r != "none"),
                "node {node_id} replicates partition {} but reports role {:?}: {self:?}",
                self.id,
                self.role
            );
            ensure!(
                [self.term, self.committed, self.applied].iter().all(Option::is_some),
                "node {node_id} replicates partition {} but reports no term/committed/applied: {self:?}",
                self.id
            );
        } else {
            ensure!(
                self.role.as_deref() == Some("none"),
                "node {node_id} does not replicate partition {} but reports role {:?}: {self:?}",
                self.id,
                self.role
            );
            ensure!(
                [self.term, self.committed, self.applied, self.last_log, self.last_purged, self.snapshot]
                    .iter()
                    .all(Option::is_none),
                "node {node_id} does not replicate partition {} but reports Raft state: {self:?}",
                self.id
            );
        }
        Ok(())
    }
}

impl ClusterView {
    /// The entry of partition `id`.
    pub fn partition(&self, id: u32) -> Result<&PartitionView> {
        self.partitions
            .iter()
            .find(|p| p.id == id)
            .with_context(|| format!("node {} reports no partition {id}: {self:?}", self.node_id))
    }
}

/// `GET /services/{service}/state/{key}`.
#[derive(Debug, Clone, Deserialize)]
pub struct StateView {
    pub service: String,
    pub object_key: String,
    pub version: String,
    pub state: State,
    /// The partition holding the key (the test suite's extension of the
    /// spec: the key → partition hash cannot be computed from outside).
    pub partition: u32,
}
