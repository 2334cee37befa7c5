//! keel benchmarks. `keel-bench raft` measures the replicated command path:
//! commands/s and commit latency (propose → applied, answered) through the
//! router, for 1 and 3 nodes on loopback with fsync on, next to the machine's
//! fdatasync latency for a 4 KiB append (the floor).
//!
//! The nodes run in this process (each with its own RocksDB, Raft groups,
//! gRPC server on 127.0.0.1 and router), so the figures isolate Raft,
//! storage and the node-to-node network from HTTP.
//!
//! `keel-bench http` drives a running ingress (keel's or Restate's) over HTTP
//! with SDK invocations; see `http.rs`. `keel-bench soak` keeps a mixed load
//! on one for a long time and `keel-bench soak-chart` draws what it recorded;
//! see `soak/mod.rs`.

mod delayed;
mod http;
mod soak;

use anyhow::Result;
use clap::Parser;
use keel_leader::clock::SystemClock;
use keel_leader::endpoints::HttpEndpoints;
use keel_leader::{LeaderOptions, Leaders};
use keel_partition::{Command, Envelope, Response, partition_for_key, partition_key};
use keel_raft::db::{Db, MemoryBudget};
use keel_raft::groups::{RaftSettings, Registry};
use keel_raft::handler::NodeHandler;
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::peer_auth::PeerSecurity;
use keel_raft::router::Router;
use keel_raft::transport::grpc::GrpcTransport;
use keel_raft::transport::{self, Peers};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
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
        /// Turn fsync off (to see what durability costs; not the headline figure).
        #[arg(long)]
        no_fsync: bool,
    },
    /// Invocations/s and latency through a running HTTP ingress (keel or Restate)
    /// against the TS test service.
    Http {
        /// Ingress base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url_base: String,
        /// Scenarios to run.
        #[arg(long, value_delimiter = ',', default_value = "noop,counter,workflow")]
        scenario: Vec<http::Scenario>,
        /// Concurrent connection (worker) counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        connections: Vec<usize>,
        /// Measuring time per configuration.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// `delayed-send`: how many delayed sends to fire.
        #[arg(long, default_value_t = 2000)]
        delayed_count: usize,
        /// `delayed-send`: their delay (all are due this long after the first send).
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        delay: Duration,
    },
    /// A mixed load (greet, counter, workflow, idempotent send) through a running
    /// ingress for a long time: a row per interval with throughput, latency, the
    /// server's RSS and its data directory's size.
    Soak {
        /// Ingress base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url_base: String,
        /// How long to keep the load on.
        #[arg(long, default_value = "60m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Length of one row.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Concurrent workers (one connection each), spread evenly over the four kinds.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// Idempotent sends per second over all send workers (0: as fast as they
        /// are accepted, which lets their handlers' backlog starve the other kinds).
        #[arg(long, default_value_t = 100.0)]
        send_rate: f64,
        /// The server's process id (its RSS is read from /proc/<pid>/status).
        #[arg(long)]
        pid: u32,
        /// The server's data directory (its size is the sum of its files' sizes).
        #[arg(long)]
        data_dir: PathBuf,
        /// Where to write the rows as CSV.
        #[arg(long)]
        csv: PathBuf,
    },
    /// Draws PNG charts (throughput, p50, p99, RSS, data directory) from soak CSVs,
    /// one line per system.
    SoakChart {
        /// The systems to compare, as LABEL=CSV, e.g. keel=bench/results/soak-keel.csv.
        #[arg(required = true)]
        series: Vec<String>,
        /// Directory to write the PNGs into.
        #[arg(long, default_value = "bench/results")]
        out_dir: PathBuf,
        /// TrueType font for the text (Debian package fonts-dejavu-core).
        #[arg(long, default_value = soak::chart::DEFAULT_FONT)]
        font: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    // Logs of the nodes under test, off unless KEEL_BENCH_LOG is set (e.g. `openraft=warn`).
    if let Ok(filter) = std::env::var("KEEL_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    match Bench::parse() {
        Bench::Http { url_base, scenario, connections, duration, delayed_count, delay } => {
            let delayed = delayed::Settings { count: delayed_count, delay };
            http::main(url_base, scenario, connections, duration, delayed).await?;
        }
        Bench::Soak { url_base, duration, interval, workers, send_rate, pid, data_dir, csv } => {
            anyhow::ensure!(workers > 0 && !interval.is_zero(), "need at least one worker and a non-zero interval");
            anyhow::ensure!(send_rate.is_finite() && send_rate >= 0.0, "--send-rate must be a rate ≥ 0");
            soak::run(soak::Settings { url_base, duration, interval, workers, send_rate, pid, data_dir, csv }).await?;
        }
        Bench::SoakChart { series, out_dir, font } => {
            soak::chart::load_font(&font)?;
            let series = series.iter().map(|s| soak::chart::Series::load(s)).collect::<Result<Vec<_>>>()?;
            for path in soak::chart::draw_all(&series, &out_dir)? {
                println!("{}", path.display());
            }
        }
        Bench::Raft { nodes, writers, duration, partitions, no_fsync } => {
            let dir = tempfile::tempdir()?;
            let (p50, p99) = fdatasync_floor(dir.path())?;
            println!("fdatasync of a 4 KiB append: p50 {:.3} ms, p99 {:.3} ms", ms(p50), ms(p99));
            println!();
            println!("| nodes | writers | commands/s | p50 ms | p99 ms | log sync mean ms | writes/sync |");
            println!("|---|---|---|---|---|---|---|");
            for n in nodes {
                let cluster = BenchCluster::start(n, partitions, !no_fsync).await?;
                for &w in &writers {
                    let before = cluster.sync_stats();
                    let r = cluster.run(w, duration).await?;
                    let after = cluster.sync_stats();
                    let syncs = after.count - before.count;
                    let sync_ms = (after.seconds - before.seconds) / syncs.max(1.0) * 1000.0;
                    let per_sync = (after.writes - before.writes) / syncs.max(1.0);
                    let batches = after.commits - before.commits;
                    eprintln!(
                        "  raft entries/s {:.0}, mean proposal-to-apply {:.3} ms",
                        batches / duration.as_secs_f64(),
                        (after.commit_seconds - before.commit_seconds) / batches.max(1.0) * 1000.0
                    );
                    println!(
                        "| {n} | {w} | {:.0} | {:.3} | {:.3} | {sync_ms:.3} | {per_sync:.1} |",
                        r.per_sec,
                        ms(r.p50),
                        ms(r.p99)
                    );
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

/// Totals of the group-commit histograms of all nodes.
#[derive(Default)]
struct SyncStats {
    count: f64,
    seconds: f64,
    writes: f64,
    commits: f64,
    commit_seconds: f64,
}

struct BenchCluster {
    metrics: Vec<prometheus_client::registry::Registry>,
    routers: Vec<Arc<Router>>,
    registries: Vec<Arc<Registry>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl BenchCluster {
    async fn start(n: usize, partitions: u32, fsync: bool) -> Result<Self> {
        let mut listeners = Vec::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n as u64 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.insert(id, l.local_addr()?.to_string());
            listeners.push(l);
        }
        let settings =
            RaftSettings { heartbeat_ms: 100, election_timeout_ms: 1000, snapshot_logs: 50_000, keep_logs: 10_000 };
        let mut routers = Vec::new();
        let mut registries = Vec::new();
        let mut dirs = Vec::new();
        let mut metric_registries = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tempfile::tempdir()?;
            let mut registry = prometheus_client::registry::Registry::default();
            let metrics = Arc::new(RaftMetricsSet::register(&mut registry));
            metric_registries.push(registry);
            let db = Db::open(dir.path(), fsync, MemoryBudget::DEFAULT, metrics.clone())?;
            // A cluster secret, as a real cluster has: its check is part of every RPC.
            let security = PeerSecurity::new(Some("keel-bench-cluster-secret".into()), None);
            let grpc = Arc::new(GrpcTransport::new(addrs.clone(), security.clone()));
            let peers = Arc::new(Peers::new(addrs.clone(), grpc));
            let registry = Registry::start(id, partitions, n.min(3), peers.clone(), &settings, db, metrics).await?;
            let router = Arc::new(Router::new(registry.clone(), peers));
            let options = LeaderOptions {
                max_concurrent_invocations: 1000,
                max_concurrent_invocations_per_deployment: keel_leader::slots::default_per_deployment(1000),
                endpoints: Arc::new(HttpEndpoints::default()),
                clock: Arc::new(SystemClock),
                completed_retention: Duration::from_millis(keel_partition::idempotency::DEFAULT_COMPLETED_RETENTION_MS),
            };
            let leaders = Leaders::start(&registry, router.clone(), options);
            let handler = Arc::new(NodeHandler::new(registry.clone(), leaders));
            tokio::spawn(transport::server::serve(handler, security, listener, std::future::pending()));
            routers.push(router);
            registries.push(registry);
            dirs.push(dir);
        }
        let cluster = BenchCluster { metrics: metric_registries, routers, registries, _dirs: dirs };
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

    fn sync_stats(&self) -> SyncStats {
        let mut stats = SyncStats::default();
        for registry in &self.metrics {
            let mut text = String::new();
            if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
                continue;
            }
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                let (Some(name), Some(value)) = (parts.next(), parts.next()) else { continue };
                let value: f64 = value.parse().unwrap_or(0.0);
                match name {
                    "keel_raft_append_sync_seconds_count" => stats.count += value,
                    "keel_raft_append_sync_seconds_sum" => stats.seconds += value,
                    "keel_raft_writes_per_sync_sum" => stats.writes += value,
                    "keel_raft_commit_seconds_sum" => stats.commit_seconds += value,
                    "keel_raft_commit_seconds_count" => stats.commits += value,
                    _ => {}
                }
            }
        }
        stats
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
