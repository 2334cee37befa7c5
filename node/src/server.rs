//! Startup, serving and graceful shutdown of one node.

use crate::cluster::NodeCluster;
use crate::config::Config;
use crate::lock::lock_data_dir;
use anyhow::{Context, Result};
use keel_raft::db::Db;
use keel_raft::groups::{RaftSettings, Registry};
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::network::{self, Peers};
use keel_raft::router::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Runs the node until SIGTERM or SIGINT, then stops gracefully.
pub async fn run(config: Config) -> Result<()> {
    let _lock = lock_data_dir(&config.data_dir)?;
    let node_listener = bind("node-to-node gRPC", config.node_addr).await?;
    let admin_listener = bind("admin HTTP", config.admin_addr).await?;
    let ingress_listener = bind("ingress HTTP", config.ingress_addr).await?;

    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let raft_metrics = Arc::new(RaftMetricsSet::register(&mut metrics_registry));
    let db = Db::open(&config.data_dir.join("db"), config.fsync, raft_metrics.clone())
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    db.check_partition_count(config.partitions)?;

    let peers = Arc::new(Peers::new(config.peers.clone()));
    let settings = RaftSettings {
        heartbeat_ms: config.heartbeat_ms,
        election_timeout_ms: config.election_timeout_ms,
        snapshot_logs: config.snapshot_logs,
        keep_logs: config.keep_logs,
        max_concurrent_invocations: config.max_concurrent_invocations,
    };
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
    registry.set_router(&router);
    let cluster = Arc::new(NodeCluster { router, metrics: Arc::new(metrics_registry) });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let node_server = tokio::spawn(network::serve(registry.clone(), node_listener, stopped(stop_rx.clone())));
    let admin = keel_ingress::admin_router(cluster.clone(), config.max_body_bytes);
    let admin_server =
        tokio::spawn(axum::serve(admin_listener, admin).with_graceful_shutdown(stopped(stop_rx.clone())).into_future());
    let options = keel_ingress::IngressOptions {
        max_body_bytes: config.max_body_bytes,
        max_inflight_requests: config.max_inflight_requests,
        attach_timeout: config.attach_timeout,
    };
    let ingress = keel_ingress::ingress_router(cluster.clone(), options);
    let ingress_server = tokio::spawn(
        axum::serve(ingress_listener, ingress).with_graceful_shutdown(stopped(stop_rx.clone())).into_future(),
    );
    tracing::info!(
        node_id = config.node_id,
        ingress = %config.ingress_addr,
        admin = %config.admin_addr,
        node = %config.node_addr,
        partitions = config.partitions,
        "keel is running"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let (a, b) = (admin_server.await, ingress_server.await);
    registry.shutdown().await;
    let c = node_server.await;
    a??;
    b??;
    c??;
    tracing::info!("stopped");
    Ok(())
}

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
