//! The receiving end of node-to-node requests: decodes a [`NodeRequest`],
//! hands it to the local replica of its group (or to the leader runtime
//! for calls and attaches), and encodes the answer. The gRPC server and
//! the test harness's in-process network both deliver here.

use crate::groups::{Group, Registry};
use crate::leader_calls::LeaderCalls;
use crate::snapshot::SnapshotId;
use crate::transport::{GroupCall, NodeRequest, RaftKind};
use crate::types::{TypeConfig, decode, encode, typ};
use openraft::raft::InstallSnapshotRequest;
use serde::{Serialize, de::DeserializeOwned};
use std::sync::Arc;

/// Serves other nodes' requests on this node.
pub struct NodeHandler {
    registry: Arc<Registry>,
    calls: Arc<dyn LeaderCalls>,
}

impl NodeHandler {
    /// A handler over this node's groups and leader runtime.
    pub fn new(registry: Arc<Registry>, calls: Arc<dyn LeaderCalls>) -> Self {
        NodeHandler { registry, calls }
    }

    /// Answers one request with its encoded reply. Errors are statuses as
    /// the node port reports them: a payload that does not decode is
    /// `InvalidArgument`, an unknown group `NotFound`.
    pub async fn handle(&self, request: NodeRequest) -> Result<Vec<u8>, tonic::Status> {
        match request {
            NodeRequest::Raft { group, kind, payload } => {
                // A group not hosted here is refused whatever the request is.
                let raft: &typ::Raft = &self.hosted(group)?.raft;
                let kind = RaftKind::try_from(kind)
                    .map_err(|_| tonic::Status::invalid_argument(format!("unknown raft rpc kind {kind}")))?;
                match kind {
                    RaftKind::AppendEntries => reply(&raft.append_entries(decode_req(&payload)?).await),
                    RaftKind::Vote => reply(&raft.vote(decode_req(&payload)?).await),
                    RaftKind::InstallSnapshot => {
                        let req: InstallSnapshotRequest<TypeConfig> = decode_req(&payload)?;
                        // A snapshot this version cannot read (one from an
                        // earlier version) is refused before any of it is
                        // written; the sender retries later.
                        SnapshotId::parse(&req.meta.snapshot_id)
                            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                        reply(&raft.install_snapshot(req).await)
                    }
                }
            }
            NodeRequest::Group { group, call, payload } => match call {
                GroupCall::Propose => reply(&self.registry.propose_local(group, decode_req(&payload)?).await),
                GroupCall::Read => reply(&self.registry.read_local(group, &decode_req(&payload)?).await),
                GroupCall::Call => {
                    let (envelope, policy) = decode_req(&payload)?;
                    reply(&self.calls.call(group, envelope, policy).await)
                }
                GroupCall::Attach => {
                    let (id, policy) = decode_req(&payload)?;
                    reply(&self.calls.attach(group, id, policy).await)
                }
            },
            NodeRequest::Status => reply(&self.registry.status()),
        }
    }
}

impl NodeHandler {
    /// This node's replica of `group`, else `NotFound`.
    fn hosted(&self, group: u32) -> Result<&Arc<Group>, tonic::Status> {
        self.registry.group(group).ok_or_else(|| tonic::Status::not_found(format!("no replica of group {group} here")))
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    encode(value).map_err(|e| tonic::Status::internal(e.to_string()))
}

fn decode_req<T: DeserializeOwned>(payload: &[u8]) -> Result<T, tonic::Status> {
    decode(payload).map_err(|e| tonic::Status::invalid_argument(format!("undecodable payload: {e}")))
}
