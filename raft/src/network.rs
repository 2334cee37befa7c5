//! Node-to-node transport: one tonic service on the node port carries the
//! Raft RPCs of every group (each request names its group), plus forwarded
//! proposals, leader reads and status queries.

use crate::groups::{GroupStatus, ProposeError, Registry};
use crate::peer_auth::PeerSecurity;
use crate::types::{TypeConfig, decode, encode, encoded_len, typ};
use keel_partition::invocation::InvocationKey;
use keel_partition::wait::{WaitPolicy, Waited};
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Generated protobuf and tonic code of `proto/node.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("keel.node");
}

use proto::node_client::NodeClient;
use proto::{GroupRequest, RaftKind, RaftRequest, Reply, StatusRequest};

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

/// The largest gRPC message a node sends or accepts. Replication splits
/// its requests to stay below it (see [`fitting_prefix`]); an authenticated
/// peer is needed to make a node buffer anything at all.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The static peer list, this node's credentials, and a cache of lazily
/// connected channels to the peers.
pub struct Peers {
    addrs: BTreeMap<u64, String>,
    security: PeerSecurity,
    clients: Mutex<HashMap<u64, NodeClient<Channel>>>,
}

impl Peers {
    /// Peers from `node id -> host:port`, reached with `security`.
    pub fn new(addrs: BTreeMap<u64, String>, security: PeerSecurity) -> Self {
        Peers { addrs, security, clients: Mutex::new(HashMap::new()) }
    }

    /// A request to a peer, carrying this node's credentials; `timeout`
    /// `Duration::MAX` sets no deadline.
    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if timeout != Duration::MAX {
            r.set_timeout(timeout);
        }
        self.security.stamp(&mut r);
        r
    }

    /// All node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.addrs.keys().copied().collect()
    }

    /// The address of `node`.
    pub fn addr(&self, node: u64) -> Option<&str> {
        self.addrs.get(&node).map(String::as_str)
    }

    /// A client for `node`; the channel connects on first use and reconnects
    /// by itself after failures.
    pub fn client(&self, node: u64) -> Result<NodeClient<Channel>, PeerError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&node) {
            return Ok(c.clone());
        }
        let addr = self.addrs.get(&node).ok_or(PeerError::UnknownNode(node))?;
        let bad = |reason: String| PeerError::BadAddress { node, reason };
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let tls = self.security.client_tls(host.trim_start_matches('[').trim_end_matches(']'));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| bad(format!("TLS: {e}")))?;
        }
        let client = NodeClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        clients.insert(node, client.clone());
        Ok(client)
    }

    async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: u64,
        group: u32,
        req: &Req,
        timeout: Duration,
        call: Call,
    ) -> Result<Resp, PeerError> {
        let payload = encode(req).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })?;
        let mut client = self.client(node)?;
        // `Duration::MAX`: no deadline (a call without a wait bound lasts as
        // long as its handler runs).
        let r = self.request(GroupRequest { group_id: group, payload }, timeout);
        let reply = match call {
            Call::Propose => client.propose(r).await,
            Call::Read => client.read(r).await,
            Call::Invoke => client.call(r).await,
            Call::Attach => client.attach(r).await,
        }
        .map_err(|status| PeerError::Rpc { node, status })?;
        decode(&reply.into_inner().payload).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })
    }

    /// Forwards a proposal to `node` (the believed leader of `group`).
    pub async fn propose(
        &self,
        node: u64,
        group: u32,
        envelope: &keel_partition::Envelope,
        timeout: Duration,
    ) -> Result<Result<keel_partition::Response, ProposeError>, PeerError> {
        self.unary(node, group, envelope, timeout, Call::Propose).await
    }

    /// Asks `node` (the believed leader of `group`) for a linearizable read.
    pub async fn read(
        &self,
        node: u64,
        group: u32,
        query: &keel_partition::Query,
        timeout: Duration,
    ) -> Result<Result<keel_partition::QueryResult, ProposeError>, PeerError> {
        self.unary(node, group, query, timeout, Call::Read).await
    }

    /// Creates an invocation on `node` (the believed leader of `group`) and
    /// waits for its result as `policy` allows.
    pub async fn call(
        &self,
        node: u64,
        group: u32,
        envelope: &keel_partition::Envelope,
        policy: WaitPolicy,
    ) -> Result<Result<Waited, ProposeError>, PeerError> {
        self.unary(node, group, &(envelope, policy), wait_deadline(policy), Call::Invoke).await
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
        self.unary(node, group, &(id, policy), wait_deadline(policy), Call::Attach).await
    }

    /// Asks `node` for its view of the groups it hosts.
    pub async fn status(&self, node: u64, timeout: Duration) -> Result<Vec<GroupStatus>, PeerError> {
        let mut client = self.client(node)?;
        let reply = client
            .status(self.request(StatusRequest {}, timeout))
            .await
            .map_err(|status| PeerError::Rpc { node, status })?;
        decode(&reply.into_inner().payload).map_err(|e| PeerError::BadReply { node, reason: e.to_string() })
    }
}

/// The RPC deadline of a forwarded wait: the policy's timeout plus a
/// margin for the network, or none (`Duration::MAX`).
fn wait_deadline(policy: WaitPolicy) -> Duration {
    policy.timeout_ms.map_or(Duration::MAX, |ms| Duration::from_millis(ms) + Duration::from_secs(5))
}

#[derive(Clone, Copy)]
enum Call {
    Propose,
    Read,
    Invoke,
    Attach,
}

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
        let mut client = self.peers.client(self.target).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let request =
            self.peers.request(RaftRequest { group_id: self.group, kind: kind as i32, payload }, option.hard_ttl());
        let reply = client.raft(request).await.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&reply.into_inner().payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
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

/// How often the node port pings a connected peer, and how long it waits
/// for the answer before closing the connection.
const PEER_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Above this many encoded bytes an append-entries request is split (one
/// entry alone may be larger: [`crate::groups::MAX_ENTRY_BYTES`] keeps it
/// well below [`MAX_MESSAGE_BYTES`]).
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

/// The server side of the node service.
pub struct NodeService {
    registry: Arc<Registry>,
}

/// Serves the node service on `listener` until `shutdown` resolves, to
/// peers that pass `security` (checked on each request's headers, before
/// its body is read). Accepted connections get `TCP_NODELAY`: Raft RPCs are
/// small request/response exchanges that Nagle's algorithm would delay by
/// tens of milliseconds.
pub async fn serve(
    registry: Arc<Registry>,
    security: PeerSecurity,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Pings find peers that went silent mid-frame (or vanished): one that
    // does not answer within the timeout loses its connection.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(PEER_PING_INTERVAL))
        .http2_keepalive_timeout(Some(PEER_PING_INTERVAL));
    if let Some(tls) = security.server_tls() {
        builder = builder.tls_config(tls)?;
    }
    let service = proto::node_server::NodeServer::new(NodeService { registry })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let checked = tonic::service::interceptor::InterceptedService::new(service, move |r| security.check(r));
    builder.add_service(checked).serve_with_incoming_shutdown(incoming, shutdown).await
}

fn reply<T: Serialize>(value: &T) -> Result<tonic::Response<Reply>, tonic::Status> {
    let payload = encode(value).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(Reply { payload }))
}

fn decode_req<T: DeserializeOwned>(payload: &[u8]) -> Result<T, tonic::Status> {
    decode(payload).map_err(|e| tonic::Status::invalid_argument(format!("undecodable payload: {e}")))
}

#[tonic::async_trait]
impl proto::node_server::Node for NodeService {
    async fn raft(&self, request: tonic::Request<RaftRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let req = request.into_inner();
        let group = self
            .registry
            .group(req.group_id)
            .ok_or_else(|| tonic::Status::not_found(format!("no replica of group {} here", req.group_id)))?;
        let raft: &typ::Raft = &group.raft;
        match RaftKind::try_from(req.kind) {
            Ok(RaftKind::AppendEntries) => reply(&raft.append_entries(decode_req(&req.payload)?).await),
            Ok(RaftKind::Vote) => reply(&raft.vote(decode_req(&req.payload)?).await),
            Ok(RaftKind::InstallSnapshot) => reply(&raft.install_snapshot(decode_req(&req.payload)?).await),
            Err(_) => Err(tonic::Status::invalid_argument(format!("unknown raft rpc kind {}", req.kind))),
        }
    }

    async fn propose(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let req = request.into_inner();
        let envelope = decode_req(&req.payload)?;
        reply(&self.registry.propose_local(req.group_id, envelope).await)
    }

    async fn read(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let req = request.into_inner();
        let query = decode_req(&req.payload)?;
        reply(&self.registry.read_local(req.group_id, &query).await)
    }

    async fn call(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let req = request.into_inner();
        let (envelope, policy) = decode_req(&req.payload)?;
        reply(&self.registry.call_local(req.group_id, envelope, policy).await)
    }

    async fn attach(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let req = request.into_inner();
        let (id, policy) = decode_req(&req.payload)?;
        reply(&self.registry.attach_local(req.group_id, id, policy).await)
    }

    async fn status(&self, _request: tonic::Request<StatusRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        reply(&self.registry.status())
    }
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
