//! openraft's network for one group: its RPCs to each replica go over
//! the node's [`Peers`], encoded with keel's codec. An append-entries
//! request too large for one message is split here (openraft sends what
//! its `max_payload_entries` allows, whatever the entries weigh).

use crate::transport::{PeerError, Peers, RaftKind};
use crate::types::{TypeConfig, decode, encode, encoded_len, typ};
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};
use std::sync::Arc;

/// Creates the per-target network clients of one group.
pub struct NetworkFactory {
    group: u32,
    peers: Arc<Peers>,
}

impl NetworkFactory {
    /// The network of `group`.
    pub fn new(group: u32, peers: Arc<Peers>) -> Self {
        NetworkFactory { group, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        GroupNetwork { group: self.group, target, peers: self.peers.clone() }
    }
}

/// Raft RPCs of one group to one target node.
pub struct GroupNetwork {
    group: u32,
    target: u64,
    peers: Arc<Peers>,
}

impl GroupNetwork {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RaftKind,
        req: &Req,
        option: RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call_encoded(kind, payload, option).await
    }

    async fn call_encoded<Resp, E>(
        &mut self,
        kind: RaftKind,
        payload: Vec<u8>,
        option: RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply =
            self.peers.raft(self.target, self.group, kind, payload, option.hard_ttl()).await.map_err(unreachable)?;
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for GroupNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let payload = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if payload.len() <= MAX_APPEND_BYTES || rpc.entries.len() <= 1 {
            return self.call_encoded(RaftKind::AppendEntries, payload, option).await;
        }
        // Too big for one message: send the entries that fit and report a
        // partial success, which openraft documents for exactly this; its
        // next round sends the rest.
        let head = fitting_prefix(rpc, MAX_APPEND_BYTES, encoded_len);
        let sent = head.entries.last().map(|e| e.log_id);
        match self.call(RaftKind::AppendEntries, &head, option).await? {
            AppendEntriesResponse::Success => Ok(AppendEntriesResponse::PartialSuccess(sent)),
            other => Ok(other),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.call(RaftKind::InstallSnapshot, &rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RaftKind::Vote, &rpc, option).await
    }
}

/// Above this many encoded bytes an append-entries request is split (one
/// entry alone may be larger: [`crate::proposer::MAX_ENTRY_BYTES`] keeps it
/// well below [`crate::transport::MAX_MESSAGE_BYTES`]).
const MAX_APPEND_BYTES: usize = 16 << 20;

/// The longest prefix of `rpc`'s entries whose sizes (by `size`) add up to
/// at most `limit`, and at least one entry, as a request of its own. Its
/// `leader_commit` is capped at its last entry: a follower must not take
/// an index it has not received as committed on the strength of this
/// request (the leader's entries up to its commit index are committed, so
/// the capped id still is).
fn fitting_prefix(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    limit: usize,
    size: impl Fn(&typ::Entry) -> usize,
) -> AppendEntriesRequest<TypeConfig> {
    let mut total = 0usize;
    let keep = rpc
        .entries
        .iter()
        .position(|e| {
            total = total.saturating_add(size(e));
            total > limit
        })
        .map_or(rpc.entries.len(), |first_over| first_over.max(1));
    rpc.entries.truncate(keep);
    if let (Some(last), Some(commit)) = (rpc.entries.last(), rpc.leader_commit)
        && commit.index > last.log_id.index
    {
        rpc.leader_commit = Some(last.log_id);
    }
    rpc
}

/// An RPC that failed in transit: openraft backs off from an unreachable
/// node, and retries other failures at once.
fn unreachable<E: std::error::Error>(e: PeerError) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    if e.unreachable() { RPCError::Unreachable(Unreachable::new(&e)) } else { RPCError::Network(NetworkError::new(&e)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload, LogId, Vote};

    fn log_id(index: u64) -> typ::LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn request(entries: u64, commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(10)),
            entries: (11..11 + entries)
                .map(|i| typ::Entry { log_id: log_id(i), payload: EntryPayload::Blank })
                .collect(),
            leader_commit: Some(log_id(commit)),
        }
    }

    #[test]
    fn a_prefix_fits_the_limit_and_caps_the_commit() {
        // Ten entries of 30 bytes, limit 100: three fit.
        let head = fitting_prefix(request(10, 18), 100, |_| 30);
        assert_eq!(head.entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![11, 12, 13]);
        assert_eq!(head.prev_log_id, Some(log_id(10)));
        assert_eq!(head.leader_commit, Some(log_id(13)));
        // A commit index below the prefix's end stays as it is.
        assert_eq!(fitting_prefix(request(10, 12), 100, |_| 30).leader_commit, Some(log_id(12)));
    }

    #[test]
    fn entries_are_measured_as_encoded() {
        for entry in request(3, 13).entries {
            assert_eq!(encoded_len(&entry), encode(&entry).unwrap().len());
        }
        let rpc = request(5, 13);
        assert_eq!(encoded_len(&rpc), encode(&rpc).unwrap().len());
    }

    #[test]
    fn one_oversized_entry_still_goes_alone() {
        let head = fitting_prefix(request(3, 13), 100, |_| 500);
        assert_eq!(head.entries.len(), 1);
        assert_eq!(head.leader_commit, Some(log_id(11)));
        // Everything fits: nothing changes.
        let all = fitting_prefix(request(3, 13), 100, |_| 10);
        assert_eq!((all.entries.len(), all.leader_commit), (3, Some(log_id(13))));
    }
}
