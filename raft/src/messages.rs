//! What nodes tell each other about groups, apart from Raft's own messages:
//! why a forwarded request failed, and a node's view of a group. Both cross
//! the wire (bincode), so their encoding is part of the node protocol.

use serde::{Deserialize, Serialize};

/// Why a proposal or read did not produce a result. Crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the group; `leader` is its best guess.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader as known to this node.
        leader: Option<u64>,
    },
    /// This node holds no replica of the group.
    #[error("no replica of partition {0} on this node")]
    NoSuchGroup(u32),
    /// The leader could not commit in time (lost quorum, overload, shutdown).
    #[error("{0}")]
    Unavailable(String),
    /// The command alone is larger than one Raft entry may be.
    #[error("the command is {size} bytes encoded, more than the {limit} bytes one log entry may hold")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// [`crate::proposer::MAX_ENTRY_BYTES`].
        limit: usize,
    },
}

/// This node's view of one group, reported by `/cluster` and the `Status` RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Partition id.
    pub id: u32,
    /// Replica node ids.
    pub replicas: Vec<u64>,
    /// The leader as known to this node.
    pub leader: Option<u64>,
    /// This node's current term (`None` where it holds no replica).
    pub term: Option<u64>,
    /// Last committed index known to this node.
    pub committed: Option<u64>,
    /// Last applied index.
    pub applied: Option<u64>,
    /// Last log index.
    pub last_log: Option<u64>,
    /// Last purged index.
    pub last_purged: Option<u64>,
    /// Index covered by the latest snapshot.
    pub snapshot: Option<u64>,
    /// Raft role of this replica.
    pub role: String,
    /// Why this replica stopped applying, if it did (see
    /// [`crate::health`]); the partition is unavailable until it is fixed.
    pub failure: Option<String>,
}
