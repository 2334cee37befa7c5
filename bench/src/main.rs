//! keel benchmarks. `keel-bench raft` measures the replicated command path:
//! commands/s and commit latency (propose → applied, answered) through the
//! router, for 1 and 3 nodes on loopback with fsync on, next to the machine's
//! fdatasync latency for a 4 KiB append (the floor).
//!
//! The nodes run in this process (each with its own RocksDB, Raft groups,
//! gRPC server on 127.0.0.1 and router), so the figures isolate Raft,
//! storage and the node-to-node network from HTTP.

use anyhow::Result;
use clap::Parser;
use keel_partition::{partition_for_key, partition_key, Command, Envelope, Response};
use keel_raft::db::Db;
use keel_raft::groups::{RaftSettings, Registry};
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::network::{NodeService, Peers};
use keel_raft::router::Router;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "keel benchmarks")]
enum Bench {
    /// Replicated commands/s and commit latency for 1 and 3 nodes.
    Raft {
        /// Node counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        nodes: Vec<usize>,
        /// Concurrent writer counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        writers: Vec<usize>,
        /// Measuring time per configuration.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Partitions of the benchmark cluster.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Bench::parse() {
        Bench::Raft { nodes, writers, duration, partitions } => {
            let dir = tempfile::tempdir()?;
            let (p50, p99) = fdatasync_floor(dir.path())?;
            println!("fdatasync of a 4 KiB append: p50 {:.3} ms, p99 {:.3} ms", ms(p50), ms(p99));
            println!();
            println!("| nodes | writers | commands/s | p50 ms | p99 ms |");
            println!("|---|---|---|---|---|");
            for n in nodes {
                let cluster = BenchCluster::start(n, partitions).await?;
                for &w in &writers {
                    let r = cluster.run(w, duration).await?;
                    println!("| {n} | {w} | {:.0} | {:.3} | {:.3} |", r.per_sec, ms(r.p50), ms(r.p99));
                }
                cluster.stop().await;
            }
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Latency of appending 4 KiB to a file and `fdatasync`ing it.
fn fdatasync_floor(dir: &std::path::Path) -> Result<(Duration, Duration)> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("floor"))?;
    let block = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(1000);
    for _ in 0..1000 {
        file.write_all(&block)?;
        let t = Instant::now();
        file.sync_data()?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

struct Outcome {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

struct BenchCluster {
    routers: Vec<Arc<Router>>,
    registries: Vec<Arc<Registry>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl BenchCluster {
    async fn start(n: usize, partitions: u32) -> Result<Self> {
        let mut listeners = Vec::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n as u64 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.insert(id, l.local_addr()?.to_string());
            listeners.push(l);
        }
        let settings = RaftSettings { heartbeat_ms: 100, election_timeout_ms: 1000, snapshot_logs: 50_000, keep_logs: 10_000 };
        let mut routers = Vec::new();
        let mut registries = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tempfile::tempdir()?;
            let metrics = Arc::new(RaftMetricsSet::unregistered());
            let db = Db::open(dir.path(), true, metrics.clone())?;
            let peers = Arc::new(Peers::new(addrs.clone()));
            let registry = Registry::start(id, partitions, n.min(3), peers.clone(), &settings, db, metrics).await?;
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(NodeService::server(registry.clone()))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            routers.push(Arc::new(Router::new(registry.clone(), peers)));
            registries.push(registry);
            dirs.push(dir);
        }
        let cluster = BenchCluster { routers, registries, _dirs: dirs };
        // Warm up: every partition has a leader and a working path.
        for p in 0..partitions {
            cluster.routers[0].propose(p, set_state("warmup", 0)).await?;
        }
        Ok(cluster)
    }

    async fn run(&self, writers: usize, duration: Duration) -> Result<Outcome> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for w in 0..writers {
            // Writers enter through every node, as clients behind a load balancer would.
            let router = self.routers[w % self.routers.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("w{w}-{}", i % 128);
                    let p = partition_for_key(partition_key(key.as_bytes()), router.registry().partition_count());
                    let t = Instant::now();
                    match router.propose(p, set_state(&key, i)).await {
                        Ok(Response::StateSet { .. }) => lat.push(t.elapsed()),
                        other => return Err(anyhow::anyhow!("unexpected outcome {other:?}")),
                    }
                    i += 1;
                }
                Ok(lat)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let elapsed = started.elapsed();
        all.sort();
        Ok(Outcome {
            per_sec: all.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(&all, 0.5),
            p99: percentile(&all, 0.99),
        })
    }

    async fn stop(self) {
        for r in &self.registries {
            r.shutdown().await;
        }
    }
}

fn set_state(key: &str, i: u64) -> Envelope {
    Envelope::client(Command::SetState {
        service: "Bench".into(),
        object_key: key.into(),
        new_state: BTreeMap::from([("n".to_string(), i.to_be_bytes().to_vec())]),
        expected_version: None,
    })
}
