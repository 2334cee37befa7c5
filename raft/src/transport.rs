//! How a node reaches its peers.
//!
//! Everything one node asks of another is a [`NodeRequest`]: a Raft RPC of
//! one group, a client request forwarded to a group's leader (propose,
//! read, call, attach), or a status query. Payloads are bincode, the same
//! bytes whichever way they travel. A [`Transport`] carries a request to a
//! node and brings back the encoded reply: gRPC on the node port in
//! production ([`grpc::GrpcTransport`], served by [`server::serve`]), or an
//! in-process network that a test drops, delays and partitions. Either
//! way the receiving side is the same [`crate::handler::NodeHandler`], so a
//! simulated cluster runs the same code as a real one from the encoded
//! request onwards.
//!
//! [`Peers`] puts types on top: it encodes requests, decodes replies, and
//! knows the peer list.

pub mod grpc;
pub mod server;

use crate::messages::{GroupStatus, ProposeError};
use crate::types::{decode, encode};
use futures::future::BoxFuture;
use keel_partition::invocation::InvocationKey;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Envelope, Query, QueryResult, Response};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Generated protobuf and tonic code of `proto/node.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("keel.node");
}

pub use proto::RaftKind;

/// The largest gRPC message a node sends or accepts. Replication splits
/// its requests to stay below it (see [`crate::raft_network`]); an
/// authenticated peer is needed to make a node buffer anything at all.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// What a request forwarded to a group's leader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCall {
    /// Propose an envelope; the reply is its response.
    Propose,
    /// A linearizable read of a query.
    Read,
    /// Create an invocation and wait for its result.
    Call,
    /// Wait for the result of an existing invocation.
    Attach,
}

/// One request from one node to another, its payload encoded.
#[derive(Debug, Clone)]
pub enum NodeRequest {
    /// A Raft RPC between replicas of `group`.
    Raft {
        /// The group.
        group: u32,
        /// Which RPC: a [`RaftKind`] as it travels (the receiver checks the
        /// group first, then the kind).
        kind: i32,
        /// The encoded openraft request.
        payload: Vec<u8>,
    },
    /// A client request for `group`'s leader.
    Group {
        /// The group.
        group: u32,
        /// What it asks.
        call: GroupCall,
        /// The encoded request.
        payload: Vec<u8>,
    },
    /// The node's view of the groups it hosts.
    Status,
}

/// Errors talking to another node.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The node id is not in the peer list.
    #[error("unknown node {0}")]
    UnknownNode(u64),
    /// The address cannot be used as an endpoint.
    #[error("bad address for node {node}: {reason}")]
    BadAddress {
        /// The node.
        node: u64,
        /// Why.
        reason: String,
    },
    /// The RPC failed (connection refused, timeout, remote status).
    #[error("rpc to node {node} failed: {status}")]
    Rpc {
        /// The node.
        node: u64,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// The reply could not be decoded.
    #[error("bad reply from node {node}: {reason}")]
    BadReply {
        /// The node.
        node: u64,
        /// Why.
        reason: String,
    },
}

impl PeerError {
    /// Whether the request certainly did not reach the node (unknown node,
    /// no connection): then another node may be tried without risk.
    pub fn unreachable(&self) -> bool {
        match self {
            PeerError::UnknownNode(_) | PeerError::BadAddress { .. } => true,
            PeerError::Rpc { status, .. } => status.code() == tonic::Code::Unavailable,
            PeerError::BadReply { .. } => false,
        }
    }
}

/// Carries requests to other nodes. `timeout` `Duration::MAX` sets no
/// deadline (a call without a wait bound lasts as long as its handler).
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to `node` and returns its encoded reply.
    fn send(
        &self,
        node: u64,
        request: NodeRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>>;
}

/// The peer list and typed requests over a [`Transport`].
pub struct Peers {
    addrs: BTreeMap<u64, String>,
    transport: Arc<dyn Transport>,
}

impl Peers {
    /// Peers from `node id -> host:port`, reached over `transport`.
    pub fn new(addrs: BTreeMap<u64, String>, transport: Arc<dyn Transport>) -> Self {
        Peers { addrs, transport }
    }

    /// All node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.addrs.keys().copied().collect()
    }

    /// The address of `node`.
    pub fn addr(&self, node: u64) -> Option<&str> {
        self.addrs.get(&node).map(String::as_str)
    }

    /// Sends one Raft RPC of `group` to `node`; the encoded reply.
    pub async fn raft(
        &self,
        node: u64,
        group: u32,
        kind: RaftKind,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        self.transport.send(node, NodeRequest::Raft { group, kind: kind as i32, payload }, timeout).await
    }

    async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: u64,
        group: u32,
        call: GroupCall,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let payload = encode(req).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })?;
        let reply = self.transport.send(node, NodeRequest::Group { group, call, payload }, timeout).await?;
        decode(&reply).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })
    }

    /// Forwards a proposal to `node` (the believed leader of `group`).
    pub async fn propose(
        &self,
        node: u64,
        group: u32,
        envelope: &Envelope,
        timeout: Duration,
    ) -> Result<Result<Response, ProposeError>, PeerError> {
        self.unary(node, group, GroupCall::Propose, envelope, timeout).await
    }

    /// Asks `node` (the believed leader of `group`) for a linearizable read.
    pub async fn read(
        &self,
        node: u64,
        group: u32,
        query: &Query,
        timeout: Duration,
    ) -> Result<Result<QueryResult, ProposeError>, PeerError> {
        self.unary(node, group, GroupCall::Read, query, timeout).await
    }

    /// Creates an invocation on `node` (the believed leader of `group`) and
    /// waits for its result as `policy` allows.
    pub async fn call(
        &self,
        node: u64,
        group: u32,
        envelope: &Envelope,
        policy: WaitPolicy,
    ) -> Result<Result<Waited, ProposeError>, PeerError> {
        self.unary(node, group, GroupCall::Call, &(envelope, policy), wait_deadline(policy)).await
    }

    /// Waits on `node` (the believed leader of `group`) for the result of
    /// invocation `id` as `policy` allows.
    pub async fn attach(
        &self,
        node: u64,
        group: u32,
        id: &InvocationKey,
        policy: WaitPolicy,
    ) -> Result<Result<Option<Waited>, ProposeError>, PeerError> {
        self.unary(node, group, GroupCall::Attach, &(id, policy), wait_deadline(policy)).await
    }

    /// Asks `node` for its view of the groups it hosts.
    pub async fn status(&self, node: u64, timeout: Duration) -> Result<Vec<GroupStatus>, PeerError> {
        let reply = self.transport.send(node, NodeRequest::Status, timeout).await?;
        decode(&reply).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })
    }
}

/// The RPC deadline of a forwarded wait: the policy's timeout plus a
/// margin for the network, or none (`Duration::MAX`).
fn wait_deadline(policy: WaitPolicy) -> Duration {
    policy.timeout_ms.map_or(Duration::MAX, |ms| Duration::from_millis(ms) + Duration::from_secs(5))
}
