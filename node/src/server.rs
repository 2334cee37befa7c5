//! Startup, serving and graceful shutdown of one node.
//!
//! Start-up goes from what can fail cheaply to what costs: the data
//! directory's lock (two processes on one RocksDB would corrupt it), then
//! the three listeners (a taken port fails before any Raft group starts and
//! votes), then the database, whose partition count must match the flag
//! (the keyspace is sharded by it, so a different count would route keys to
//! the wrong partitions).
//!
//! The parts are built in dependency order, each handed what it needs:
//!
//! ```text
//! GrpcTransport -> Peers -> Registry (Raft groups) -> Router -> Leaders -> NodeHandler -> node port
//!                                                          \-> NodeCluster -> ingress, admin
//! ```
//!
//! Shutdown (SIGTERM, SIGINT) runs the other way, within
//! `--shutdown-timeout`: the HTTP servers stop accepting; the Raft groups
//! stop at once, so their leader actors stop and every caller waiting on
//! this node's leaders is told to retry elsewhere (a forwarded call goes
//! back to its ingress, which finds the partition's next leader; a call
//! through this node's own ingress is re-routed the same way, as the
//! router no longer trusts the stopped replicas); then the HTTP requests in
//! flight finish, and only then the node port closes, so peers can reach
//! this node while its groups hand over. Whatever is still running at the
//! timeout is dropped, and the process exits.

use crate::cluster::NodeCluster;
use crate::config::{Config, Secret};
use crate::lock::lock_data_dir;
use anyhow::{Context, Result};
use keel_ingress::{AdminOptions, IngressOptions, ServeOptions};
use keel_leader::clock::SystemClock;
use keel_leader::endpoints::HttpEndpoints;
use keel_leader::{LeaderOptions, Leaders};
use keel_raft::db::Db;
use keel_raft::groups::{RaftSettings, Registry};
use keel_raft::handler::NodeHandler;
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::peer_auth::PeerSecurity;
use keel_raft::router::Router;
use keel_raft::transport::grpc::GrpcTransport;
use keel_raft::transport::{self, Peers};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

/// Binds `addr`, naming the listener in the error.
async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// How a node that ran ends.
pub enum Exit {
    /// SIGTERM or SIGINT: stopped gracefully.
    Graceful,
    /// Its storage failed (see `keel_raft::health`): it must stop at once,
    /// without the graceful path, whose writes would fail or hang too.
    Failed(String),
}

/// Runs the node until SIGTERM or SIGINT, then stops gracefully; or until
/// its storage fails, then returns at once.
pub async fn run(config: Config) -> Result<Exit> {
    let _lock = lock_data_dir(&config.data_dir)?;
    let node_listener = bind("node-to-node gRPC", config.node_addr).await?;
    let admin_listener = bind("admin HTTP", config.admin_addr).await?;
    let ingress_listener = bind("ingress HTTP", config.ingress_addr).await?;

    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let raft_metrics = Arc::new(RaftMetricsSet::register(&mut metrics_registry));
    let db = Db::open(&config.data_dir.join("db"), config.fsync, config.rocksdb_memory_budget, raft_metrics.clone())
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    db.check_partition_count(config.partitions)?;

    // Replication first: the groups, and the router that finds their
    // leaders from any node. Then the leader runtime, which acts on the
    // groups' effects while this node leads them and routes through the
    // router; then the node port, which serves peers with both.
    let security = peer_security(&config);
    let grpc = Arc::new(GrpcTransport::new(config.peers.clone(), security.clone()));
    let peers = Arc::new(Peers::new(config.peers.clone(), grpc));
    let settings = RaftSettings {
        heartbeat_ms: config.heartbeat_ms,
        election_timeout_ms: config.election_timeout_ms,
        snapshot_logs: config.snapshot_logs,
        keep_logs: config.keep_logs,
    };
    let health = db.health().clone();
    let registry = Registry::start(
        config.node_id,
        config.partitions,
        config.replication_factor,
        peers.clone(),
        &settings,
        db,
        raft_metrics,
    )
    .await?;
    let router = Arc::new(Router::new(registry.clone(), peers));
    let leader_options = LeaderOptions {
        max_concurrent_invocations: config.max_concurrent_invocations,
        max_concurrent_invocations_per_deployment: config.max_concurrent_invocations_per_deployment,
        endpoints: Arc::new(HttpEndpoints::default()),
        clock: Arc::new(SystemClock),
        completed_retention: config.completed_retention,
    };
    let leaders = Leaders::start(&registry, router.clone(), leader_options);
    let handler = Arc::new(NodeHandler::new(registry.clone(), leaders.clone()));
    let cluster = Arc::new(NodeCluster { router, leaders, metrics: Arc::new(metrics_registry) });

    let (node_stop, node_stop_rx) = watch::channel(false);
    let (http_stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let node_server = tokio::spawn(transport::server::serve(handler, security, node_listener, stopped(node_stop_rx)));
    let admin_options =
        AdminOptions { max_body_bytes: config.max_body_bytes, token: token(&config.security.admin_token) };
    let admin = keel_ingress::admin_router(cluster.clone(), admin_options);
    let serve_options = ServeOptions {
        header_read_timeout: config.http_header_timeout,
        body_read_timeout: config.http_body_timeout,
        max_connections: config.max_connections,
        shutdown_timeout: config.shutdown_timeout,
    };
    let admin_server =
        tokio::spawn(keel_ingress::serve(admin_listener, admin, serve_options.clone(), stopped(stop_rx.clone())));
    let options = IngressOptions {
        max_body_bytes: config.max_body_bytes,
        max_inflight_requests: config.max_inflight_requests,
        attach_timeout: config.attach_timeout,
        token: token(&config.security.ingress_token),
        completed_retention: config.completed_retention,
    };
    let ingress = keel_ingress::ingress_router(cluster.clone(), options);
    let ingress_server =
        tokio::spawn(keel_ingress::serve(ingress_listener, ingress, serve_options, stopped(stop_rx.clone())));
    tracing::info!(
        node_id = config.node_id,
        ingress = %config.ingress_addr,
        admin = %config.admin_addr,
        node = %config.node_addr,
        partitions = config.partitions,
        "keel is running"
    );

    tokio::select! {
        signal = wait_for_signal() => signal?,
        reason = health.node_stopping() => return Ok(Exit::Failed(reason)),
    }
    tracing::info!(timeout = ?config.shutdown_timeout, "shutting down");
    let deadline = Instant::now() + config.shutdown_timeout;
    let _ = http_stop.send(true);
    if timeout_at(deadline, registry.shutdown()).await.is_err() {
        tracing::warn!("the Raft groups did not stop within the shutdown timeout");
    }
    match timeout_at(deadline, async { (admin_server.await, ingress_server.await) }).await {
        Ok((a, b)) => {
            a?;
            b?;
        }
        Err(_) => tracing::warn!("HTTP requests still in flight at the shutdown timeout are dropped"),
    }
    let _ = node_stop.send(true);
    match timeout_at(deadline, node_server).await {
        Ok(node) => node??,
        Err(_) => tracing::warn!("node-port requests still in flight at the shutdown timeout are dropped"),
    }
    tracing::info!("stopped");
    Ok(Exit::Graceful)
}

/// A configured secret's value, as the servers take it.
fn token(secret: &Option<Secret>) -> Option<String> {
    secret.as_ref().map(|s| s.0.clone())
}

/// This node's credentials towards its peers, from the configuration.
fn peer_security(config: &Config) -> PeerSecurity {
    let s = &config.security;
    if s.insecure_cluster && s.cluster_secret.is_none() && s.tls.is_none() {
        tracing::warn!(
            "--insecure-cluster: the node port accepts any peer; anyone who reaches {} can take the cluster over",
            config.node_addr
        );
    }
    PeerSecurity::new(token(&s.cluster_secret), s.tls.clone())
}

/// Waits for SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
