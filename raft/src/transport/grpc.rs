//! The production transport: one tonic client per peer on its node port,
//! carrying this node's credentials ([`PeerSecurity`]).

use super::proto::node_client::NodeClient;
use super::proto::{GroupRequest, RaftRequest, StatusRequest};
use super::{GroupCall, MAX_MESSAGE_BYTES, NodeRequest, PeerError, Transport};
use crate::peer_auth::PeerSecurity;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// gRPC to the peers of a static peer list, with a cache of lazily
/// connected channels.
pub struct GrpcTransport {
    addrs: BTreeMap<u64, String>,
    security: PeerSecurity,
    clients: Mutex<HashMap<u64, NodeClient<Channel>>>,
}

impl GrpcTransport {
    /// A transport to the nodes of `addrs` (`node id -> host:port`), with `security`.
    pub fn new(addrs: BTreeMap<u64, String>, security: PeerSecurity) -> Self {
        GrpcTransport { addrs, security, clients: Mutex::new(HashMap::new()) }
    }

    /// A client for `node`; the channel connects on first use and reconnects
    /// by itself after failures.
    fn client(&self, node: u64) -> Result<NodeClient<Channel>, PeerError> {
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

    /// A request carrying this node's credentials; `timeout`
    /// `Duration::MAX` sets no deadline.
    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if timeout != Duration::MAX {
            r.set_timeout(timeout);
        }
        self.security.stamp(&mut r);
        r
    }
}

impl Transport for GrpcTransport {
    fn send(
        &self,
        node: u64,
        request: NodeRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let client = self.client(node);
        // Built now, so the future borrows nothing from `self`.
        let request = match request {
            NodeRequest::Raft { group, kind, payload } => {
                Rpc::Raft(self.request(RaftRequest { group_id: group, kind, payload }, timeout))
            }
            NodeRequest::Group { group, call, payload } => {
                Rpc::Group(call, self.request(GroupRequest { group_id: group, payload }, timeout))
            }
            NodeRequest::Status => Rpc::Status(self.request(StatusRequest {}, timeout)),
        };
        Box::pin(async move {
            let mut client = client?;
            let reply = match request {
                Rpc::Raft(r) => client.raft(r).await,
                Rpc::Group(GroupCall::Propose, r) => client.propose(r).await,
                Rpc::Group(GroupCall::Read, r) => client.read(r).await,
                Rpc::Group(GroupCall::Call, r) => client.call(r).await,
                Rpc::Group(GroupCall::Attach, r) => client.attach(r).await,
                Rpc::Status(r) => client.status(r).await,
            };
            reply.map(|r| r.into_inner().payload).map_err(|status| PeerError::Rpc { node, status })
        })
    }
}

/// A request ready for one of the node service's RPCs.
enum Rpc {
    Raft(tonic::Request<RaftRequest>),
    Group(GroupCall, tonic::Request<GroupRequest>),
    Status(tonic::Request<StatusRequest>),
}
