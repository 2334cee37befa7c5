//! The node port: one tonic service carrying the Raft RPCs of every group
//! (each request names its group), forwarded client requests and status
//! queries, for peers that pass [`PeerSecurity`]. Each RPC becomes a
//! [`NodeRequest`] for the node's [`NodeHandler`], the same entry point an
//! in-process test network uses.

use super::proto::{self, GroupRequest, RaftRequest, Reply, StatusRequest};
use super::{GroupCall, MAX_MESSAGE_BYTES, NodeRequest};
use crate::handler::NodeHandler;
use crate::peer_auth::PeerSecurity;
use std::sync::Arc;
use std::time::Duration;

/// How often the node port pings a connected peer, and how long it waits
/// for the answer before closing the connection.
const PEER_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Serves the node service on `listener` until `shutdown` resolves, to
/// peers that pass `security` (checked on each request's headers, before
/// its body is read). Accepted connections get `TCP_NODELAY`: Raft RPCs are
/// small request/response exchanges that Nagle's algorithm would delay by
/// tens of milliseconds.
pub async fn serve(
    handler: Arc<NodeHandler>,
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
    let service = proto::node_server::NodeServer::new(NodeService { handler })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let checked = tonic::service::interceptor::InterceptedService::new(service, move |r| security.check(r));
    builder.add_service(checked).serve_with_incoming_shutdown(incoming, shutdown).await
}

/// The tonic face of a [`NodeHandler`].
struct NodeService {
    handler: Arc<NodeHandler>,
}

impl NodeService {
    async fn group(
        &self,
        call: GroupCall,
        request: tonic::Request<GroupRequest>,
    ) -> Result<tonic::Response<Reply>, tonic::Status> {
        let GroupRequest { group_id, payload } = request.into_inner();
        self.answer(NodeRequest::Group { group: group_id, call, payload }).await
    }

    async fn answer(&self, request: NodeRequest) -> Result<tonic::Response<Reply>, tonic::Status> {
        let payload = self.handler.handle(request).await?;
        Ok(tonic::Response::new(Reply { payload }))
    }
}

#[tonic::async_trait]
impl proto::node_server::Node for NodeService {
    async fn raft(&self, request: tonic::Request<RaftRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        let RaftRequest { group_id, kind, payload } = request.into_inner();
        self.answer(NodeRequest::Raft { group: group_id, kind, payload }).await
    }

    async fn propose(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        self.group(GroupCall::Propose, request).await
    }

    async fn read(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        self.group(GroupCall::Read, request).await
    }

    async fn call(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        self.group(GroupCall::Call, request).await
    }

    async fn attach(&self, request: tonic::Request<GroupRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        self.group(GroupCall::Attach, request).await
    }

    async fn status(&self, _request: tonic::Request<StatusRequest>) -> Result<tonic::Response<Reply>, tonic::Status> {
        self.answer(NodeRequest::Status).await
    }
}
