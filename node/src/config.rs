//! Node configuration: where every tunable of a `keel` node comes from.
//!
//! Each setting is taken from the first source that provides it, in exactly
//! this precedence order (highest first):
//!
//! 1. command-line flags (`--node-id 2`),
//! 2. the TOML file named by `--config PATH` (`node_id = 2`),
//! 3. `KEEL_*` environment variables (`KEEL_NODE_ID=2`; empty counts as unset),
//! 4. built-in defaults.
//!
//! The file outranks the environment so a checked-in file pins a deployment
//! regardless of ambient variables, while ad-hoc flags still win. TOML values
//! may be native TOML types or strings in the flag syntax.
//!
//! Derived defaults: an empty peer list means a single-node cluster of this
//! node only; `advertised_addr` defaults to this node's entry in the peer list,
//! else `127.0.0.1:<node_addr port>`; `replication_factor` defaults to
//! `min(3, peers)`. Everything is parsed and validated here, once, so the rest
//! of the node can trust [`Config`]; every problem becomes a [`ConfigError`]
//! naming the flag, TOML key or env var exactly as the operator wrote it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use keel_raft::db::MemoryBudget;

/// Default log filter: keel at info; openraft's info level logs every
/// election and startup state dump, so it is kept at warn.
const DEFAULT_LOG: &str = "info,openraft=warn";

/// Every TOML key (and, as `--kebab-case` / `KEEL_UPPER_CASE`, every flag and env var).
const KEYS: &[&str] = &[
    "node_id",
    "data_dir",
    "ingress_addr",
    "admin_addr",
    "node_addr",
    "advertised_addr",
    "peers",
    "partitions",
    "replication_factor",
    "fsync",
    "snapshot_logs",
    "keep_logs",
    "heartbeat_ms",
    "election_timeout_ms",
    "max_body_bytes",
    "max_concurrent_invocations",
    "max_concurrent_invocations_per_deployment",
    "max_inflight_requests",
    "attach_timeout",
    "http_header_timeout",
    "http_body_timeout",
    "max_connections",
    "shutdown_timeout",
    "completed_retention",
    "rocksdb_memory_budget",
    "cluster_secret_file",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "insecure_cluster",
    "admin_token_file",
    "ingress_token_file",
    "log",
];

/// Fully resolved and validated node settings; the only configuration type the
/// rest of the node sees, so no other code needs to know about flags/env/files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's Raft/cluster id (≥1).
    pub node_id: u64,
    /// Directory holding RocksDB, Raft logs and snapshots.
    pub data_dir: PathBuf,
    /// Listen address of the public HTTP ingress (invocations).
    pub ingress_addr: SocketAddr,
    /// Listen address of the admin/metrics HTTP API.
    pub admin_addr: SocketAddr,
    /// Listen address of node-to-node gRPC (Raft traffic).
    pub node_addr: SocketAddr,
    /// `host:port` other nodes use to reach this node's `node_addr`.
    pub advertised_addr: String,
    /// Static cluster membership: node id → `host:port`; always contains `node_id`.
    pub peers: BTreeMap<u64, String>,
    /// Number of partitions (1..=1024); fixed for the cluster's lifetime.
    pub partitions: u32,
    /// Replicas per partition (1..=peers.len()).
    pub replication_factor: usize,
    /// Whether log/state writes are fsynced before acknowledging.
    pub fsync: bool,
    /// Build a Raft snapshot after this many applied entries since the last one (≥1).
    pub snapshot_logs: u64,
    /// Log entries kept behind the snapshot when purging (helps lagging followers).
    pub keep_logs: u64,
    /// Raft heartbeat interval in milliseconds.
    pub heartbeat_ms: u64,
    /// Minimum Raft election timeout in ms (> heartbeat); the maximum is twice this.
    pub election_timeout_ms: u64,
    /// Largest accepted HTTP request body in bytes.
    pub max_body_bytes: usize,
    /// Invocation attempts in flight at once on this node (≥1); more wait.
    pub max_concurrent_invocations: usize,
    /// Of those, the attempts of one deployment (≥1), so that a deployment
    /// that stops answering leaves the other slots to the rest; at or above
    /// `max_concurrent_invocations` one deployment may take every slot.
    pub max_concurrent_invocations_per_deployment: usize,
    /// Ingress requests served at once on this node (≥1); more get 429.
    pub max_inflight_requests: usize,
    /// How long an attach request blocks before answering 202 with the
    /// same `Location` (`None`: until the result is there).
    pub attach_timeout: Option<Duration>,
    /// How long an HTTP client may take to send a request's headers.
    pub http_header_timeout: Duration,
    /// How long an HTTP client may take to send a request's body.
    pub http_body_timeout: Duration,
    /// Open HTTP connections per server (admin, ingress) at once.
    pub max_connections: usize,
    /// How long a graceful stop (SIGTERM) may take before the node exits anyway.
    pub shutdown_timeout: Duration,
    /// How long a completed invocation without idempotency key (not a
    /// workflow run) keeps its record, to deduplicate keel's own retries.
    pub completed_retention: Duration,
    /// RocksDB's block cache and memtables together.
    pub rocksdb_memory_budget: keel_raft::db::MemoryBudget,
    /// Node authentication and client tokens.
    pub security: Security,
    /// `tracing` EnvFilter directive string, e.g. `info` or `keel=debug,info`.
    pub log: String,
    /// The TOML file that was loaded, if any (for diagnostics).
    pub config_file: Option<PathBuf>,
}

impl Config {
    /// Parses the process arguments and environment. Clap handles its own
    /// errors (`--help`/`--version` exit 0, usage errors exit 2) so users get
    /// clap's usual output; everything else is returned as a [`ConfigError`].
    pub fn load() -> Result<Config, ConfigError> {
        let cli = Cli::parse();
        build(cli, &|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Testable core of [`Config::load`]: `args` includes the program name as
    /// its first item, and `env` looks up environment variables. Never exits
    /// the process; clap errors (including `--help`) become field `args`.
    #[cfg_attr(not(test), allow(dead_code))] // the binary itself uses `load`
    pub fn load_from<I, T>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| err("args", e.to_string().trim()))?;
        build(cli, env)
    }
}

/// Flags are taken as raw strings and parsed by [`Sources`], so flag, file and
/// env values share one parser and errors name the flag rather than "args".
#[derive(Parser, Debug)]
#[command(name = "keel", version, about = "keel durable-execution node")]
struct Cli {
    /// TOML config file; flags override it, it overrides KEEL_* env vars
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// This node's id, ≥1 [env: KEEL_NODE_ID] [default: 1]
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Data directory [env: KEEL_DATA_DIR] [default: ./keel-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Ingress HTTP listen address [env: KEEL_INGRESS_ADDR] [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    ingress_addr: Option<String>,
    /// Admin HTTP listen address [env: KEEL_ADMIN_ADDR] [default: 0.0.0.0:9070]
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<String>,
    /// Node-to-node gRPC listen address [env: KEEL_NODE_ADDR] [default: 0.0.0.0:5122 with
    /// peers, 127.0.0.1:5122 for a single node]
    #[arg(long, value_name = "ADDR")]
    node_addr: Option<String>,
    /// HOST:PORT peers use to reach this node [env: KEEL_ADVERTISED_ADDR] [default: own peers entry, else 127.0.0.1:<node-addr port>]
    #[arg(long, value_name = "HOST:PORT")]
    advertised_addr: Option<String>,
    /// Static peers, e.g. 1=10.0.0.1:5122,2=10.0.0.2:5122 [env: KEEL_PEERS] [default: this node only]
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// Number of partitions, 1..=1024 [env: KEEL_PARTITIONS] [default: 8]
    #[arg(long, value_name = "N")]
    partitions: Option<String>,
    /// Replicas per partition [env: KEEL_REPLICATION_FACTOR] [default: min(3, peers)]
    #[arg(long, value_name = "N")]
    replication_factor: Option<String>,
    /// Fsync writes: --fsync, --fsync=false [env: KEEL_FSYNC] [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    fsync: Option<String>,
    /// Snapshot after this many applied entries [env: KEEL_SNAPSHOT_LOGS] [default: 5000]
    #[arg(long, value_name = "N")]
    snapshot_logs: Option<String>,
    /// Log entries kept behind a snapshot [env: KEEL_KEEP_LOGS] [default: 1000]
    #[arg(long, value_name = "N")]
    keep_logs: Option<String>,
    /// Raft heartbeat interval in ms [env: KEEL_HEARTBEAT_MS] [default: 100]
    #[arg(long, value_name = "MS")]
    heartbeat_ms: Option<String>,
    /// Minimum election timeout in ms; max is 2x [env: KEEL_ELECTION_TIMEOUT_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    election_timeout_ms: Option<String>,
    /// Max HTTP request body in bytes [env: KEEL_MAX_BODY_BYTES] [default: 10485760]
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<String>,
    /// Invocation attempts in flight at once on this node; more wait
    /// [env: KEEL_MAX_CONCURRENT_INVOCATIONS] [default: 1000]
    #[arg(long, value_name = "N")]
    max_concurrent_invocations: Option<String>,
    /// Of those, the attempts of one deployment, so that one that stops
    /// answering cannot hold every slot [env:
    /// KEEL_MAX_CONCURRENT_INVOCATIONS_PER_DEPLOYMENT] [default: half of
    /// --max-concurrent-invocations, rounded up]
    #[arg(long, value_name = "N")]
    max_concurrent_invocations_per_deployment: Option<String>,
    /// Ingress requests served at once on this node; more are refused with
    /// 429 [env: KEEL_MAX_INFLIGHT_REQUESTS] [default: 10000]
    #[arg(long, value_name = "N")]
    max_inflight_requests: Option<String>,
    /// How long `…/attach` blocks before answering 202 with the same
    /// Location (e.g. 5m, PT30S; 0 = no bound) [env: KEEL_ATTACH_TIMEOUT] [default: 5m]
    #[arg(long, value_name = "DURATION")]
    attach_timeout: Option<String>,
    /// Time a client has to send a request's headers [env: KEEL_HTTP_HEADER_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    http_header_timeout: Option<String>,
    /// Time a client has to send a request's body [env: KEEL_HTTP_BODY_TIMEOUT] [default: 60s]
    #[arg(long, value_name = "DURATION")]
    http_body_timeout: Option<String>,
    /// Open connections per HTTP server (admin, ingress) [env: KEEL_MAX_CONNECTIONS] [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,
    /// How long a graceful stop on SIGTERM may take before the node exits
    /// anyway [env: KEEL_SHUTDOWN_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// How long a completed invocation without an idempotency key (and not
    /// a workflow run) keeps its result, so that keel's own retries of it
    /// (after a leader change, a lost acknowledgement) are answered instead
    /// of run again; between 1s and 1 day, the same on every node
    /// [env: KEEL_COMPLETED_RETENTION] [default: 5m]
    #[arg(long, value_name = "DURATION")]
    completed_retention: Option<String>,
    /// Memory for RocksDB's block cache and memtables together, e.g. 128MiB
    /// or 1GiB [env: KEEL_ROCKSDB_MEMORY_BUDGET] [default: 128MiB]
    #[arg(long, value_name = "SIZE")]
    rocksdb_memory_budget: Option<String>,
    /// File holding the secret every node of the cluster shares and checks on
    /// every node RPC (or its value in KEEL_CLUSTER_SECRET)
    #[arg(long, value_name = "PATH")]
    cluster_secret_file: Option<String>,
    /// This node's TLS certificate (PEM) for mutual TLS on the node port
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<String>,
    /// This node's TLS private key (PEM)
    #[arg(long, value_name = "PATH")]
    tls_key: Option<String>,
    /// The CA (PEM) that signed every node's certificate
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<String>,
    /// Run a multi-node cluster with neither a secret nor TLS: anyone who
    /// reaches the node port can take it over [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    insecure_cluster: Option<String>,
    /// File holding the bearer token the admin API requires (or its value in
    /// KEEL_ADMIN_TOKEN) [default: none, no authentication]
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<String>,
    /// File holding the bearer token the ingress requires (or its value in
    /// KEEL_INGRESS_TOKEN) [default: none, no authentication]
    #[arg(long, value_name = "PATH")]
    ingress_token_file: Option<String>,
    /// tracing EnvFilter directives [env: KEEL_LOG] [default: info]
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

impl Cli {
    fn flags(&self) -> BTreeMap<&'static str, String> {
        let all = [
            ("node_id", &self.node_id),
            ("data_dir", &self.data_dir),
            ("ingress_addr", &self.ingress_addr),
            ("admin_addr", &self.admin_addr),
            ("node_addr", &self.node_addr),
            ("advertised_addr", &self.advertised_addr),
            ("peers", &self.peers),
            ("partitions", &self.partitions),
            ("replication_factor", &self.replication_factor),
            ("fsync", &self.fsync),
            ("snapshot_logs", &self.snapshot_logs),
            ("keep_logs", &self.keep_logs),
            ("heartbeat_ms", &self.heartbeat_ms),
            ("election_timeout_ms", &self.election_timeout_ms),
            ("max_body_bytes", &self.max_body_bytes),
            ("max_concurrent_invocations", &self.max_concurrent_invocations),
            ("max_concurrent_invocations_per_deployment", &self.max_concurrent_invocations_per_deployment),
            ("max_inflight_requests", &self.max_inflight_requests),
            ("attach_timeout", &self.attach_timeout),
            ("http_header_timeout", &self.http_header_timeout),
            ("http_body_timeout", &self.http_body_timeout),
            ("max_connections", &self.max_connections),
            ("shutdown_timeout", &self.shutdown_timeout),
            ("completed_retention", &self.completed_retention),
            ("rocksdb_memory_budget", &self.rocksdb_memory_budget),
            ("cluster_secret_file", &self.cluster_secret_file),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_ca", &self.tls_ca),
            ("insecure_cluster", &self.insecure_cluster),
            ("admin_token_file", &self.admin_token_file),
            ("ingress_token_file", &self.ingress_token_file),
            ("log", &self.log),
        ];
        all.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
    }
}

/// Loads the `--config` file. Unknown keys are rejected, as serde's
/// `deny_unknown_fields` would, but checked by hand so the error names the key.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| err("--config", format!("cannot read {shown}: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().and_then(|s| text.get(..s.start)).map(|t| t.matches('\n').count() + 1);
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        err("--config", format!("{shown}{at}: {}", e.message().trim()))
    })?;
    if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(key.as_str(), format!("unknown key in {shown}; valid keys: {}", KEYS.join(", "))));
    }
    Ok(table)
}

fn build(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let file = match &cli.config {
        Some(p) => read_file(p)?,
        None => toml::Table::new(),
    };
    let src = Sources { flags: cli.flags(), file, env };

    let node_id = src.value("node_id", num::<u64>, 1)?;
    node_id.check(|v| *v >= 1, "must be at least 1")?;
    let data_dir = src.value("data_dir", |s| Ok(PathBuf::from(s)), PathBuf::from("./keel-data"))?;
    data_dir.check(|p| !p.as_os_str().is_empty(), "must not be empty")?;
    let ingress_addr = src.value("ingress_addr", num::<SocketAddr>, SocketAddr::from(([0, 0, 0, 0], 8080)))?;
    let admin_addr = src.value("admin_addr", num::<SocketAddr>, SocketAddr::from(([0, 0, 0, 0], 9070)))?;
    let peers = src.peers()?.filter(|p| !p.value.is_empty());
    // A node without peers needs no one to reach its node port, so by
    // default it listens on loopback only.
    let alone = peers.as_ref().is_none_or(|p| p.value.len() <= 1);
    let node_ip = if alone { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
    let node_addr = src.value("node_addr", num::<SocketAddr>, SocketAddr::from((node_ip, 5122)))?;
    let advertised_addr = match src.get("advertised_addr", host_port)? {
        Some(v) => v.value,
        None => match peers.as_ref().and_then(|p| p.value.get(&node_id.value)) {
            Some(own) => own.clone(),
            None => format!("127.0.0.1:{}", node_addr.value.port()),
        },
    };
    let peers = match peers {
        Some(p) => {
            p.check(
                |m| m.contains_key(&node_id.value),
                format!("does not contain this node's id {} ({})", node_id.value, node_id.field),
            )?;
            p.value
        }
        None => BTreeMap::from([(node_id.value, advertised_addr.clone())]),
    };
    let partitions = src.value("partitions", num::<u32>, 8)?;
    partitions.check(|v| (1..=1024).contains(v), "must be between 1 and 1024")?;
    let replication_factor = src.value("replication_factor", num::<usize>, peers.len().min(3))?;
    replication_factor.check(
        |v| (1..=peers.len()).contains(v),
        format!("must be between 1 and {} (the number of peers)", peers.len()),
    )?;
    let fsync = src.value("fsync", boolean, true)?;
    let snapshot_logs = src.value("snapshot_logs", num::<u64>, 5000)?;
    snapshot_logs.check(|v| *v >= 1, "must be at least 1")?;
    let keep_logs = src.value("keep_logs", num::<u64>, 1000)?;
    let heartbeat_ms = src.value("heartbeat_ms", num::<u64>, 100)?;
    heartbeat_ms.check(|v| *v >= 1, "must be at least 1")?;
    let election = src.value("election_timeout_ms", num::<u64>, 1000)?;
    election.check(
        |v| *v > heartbeat_ms.value,
        format!("must be greater than {} ({})", heartbeat_ms.field, heartbeat_ms.value),
    )?;
    let max_body_bytes = src.value("max_body_bytes", num::<usize>, 10 * 1024 * 1024)?;
    // A request becomes one command in one Raft entry, with its headers
    // and the invocation's fields beside the body: leave room for them.
    let body_limit = keel_raft::proposer::MAX_ENTRY_BYTES - (1 << 20);
    max_body_bytes.check(|v| (1..=body_limit).contains(v), format!("must be between 1 and {body_limit}"))?;
    let max_invocations = src.value("max_concurrent_invocations", num::<usize>, 1000)?;
    permits(&max_invocations)?;
    let per_deployment = src.value(
        "max_concurrent_invocations_per_deployment",
        num::<usize>,
        keel_leader::slots::default_per_deployment(max_invocations.value),
    )?;
    permits(&per_deployment)?;
    let max_inflight = src.value("max_inflight_requests", num::<usize>, 10_000)?;
    permits(&max_inflight)?;
    let attach_timeout = src.value("attach_timeout", keel_ingress::parse_duration, Duration::from_secs(300))?;
    let header_timeout = src.value("http_header_timeout", bounded_duration, Duration::from_secs(30))?;
    let body_timeout = src.value("http_body_timeout", bounded_duration, Duration::from_secs(60))?;
    let max_connections = src.value("max_connections", num::<usize>, 10_000)?;
    max_connections.check(|v| (1..=1_000_000).contains(v), "must be between 1 and 1000000")?;
    let shutdown_timeout = src.value("shutdown_timeout", bounded_duration, Duration::from_secs(30))?;
    let completed_ms = keel_partition::idempotency::DEFAULT_COMPLETED_RETENTION_MS;
    let completed_retention =
        src.value("completed_retention", bounded_duration, Duration::from_millis(completed_ms))?;
    completed_retention.check(|d| *d >= Duration::from_secs(1), "must be at least 1s")?;
    let memory_budget = src.value("rocksdb_memory_budget", memory_size, MemoryBudget::DEFAULT.0)?;
    let security = security::load(&src, peers.len())?;
    let log = src.value("log", |s| Ok(s.to_string()), DEFAULT_LOG.to_string())?;
    tracing_subscriber::EnvFilter::try_new(&log.value).map_err(|e| err(&log.field, e))?;

    Ok(Config {
        node_id: node_id.value,
        data_dir: data_dir.value,
        ingress_addr: ingress_addr.value,
        admin_addr: admin_addr.value,
        node_addr: node_addr.value,
        advertised_addr,
        peers,
        partitions: partitions.value,
        replication_factor: replication_factor.value,
        fsync: fsync.value,
        snapshot_logs: snapshot_logs.value,
        keep_logs: keep_logs.value,
        heartbeat_ms: heartbeat_ms.value,
        election_timeout_ms: election.value,
        max_body_bytes: max_body_bytes.value,
        max_concurrent_invocations: max_invocations.value,
        max_concurrent_invocations_per_deployment: per_deployment.value,
        max_inflight_requests: max_inflight.value,
        attach_timeout: Some(attach_timeout.value).filter(|d| !d.is_zero()),
        http_header_timeout: header_timeout.value,
        http_body_timeout: body_timeout.value,
        max_connections: max_connections.value,
        shutdown_timeout: shutdown_timeout.value,
        completed_retention: completed_retention.value,
        rocksdb_memory_budget: MemoryBudget(memory_budget.value),
        security,
        log: log.value,
        config_file: cli.config,
    })
}

/// A count of semaphore permits (slots, requests in flight): at least 1,
/// and no more than a semaphore holds.
fn permits(count: &Val<usize>) -> Result<(), ConfigError> {
    count.check(|v| (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(v), "must be at least 1 (and fit a semaphore)")
}

/// A timeout between 1 ms and a day: zero would refuse every request (or
/// stop without handing anything over), and anything longer is no
/// protection against a slow client (or no bound on a stop).
fn bounded_duration(s: &str) -> Result<Duration, String> {
    let d = keel_ingress::parse_duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
        return Err(format!("{s:?} must be between 1ms and 1 day"));
    }
    Ok(d)
}

/// A memory size such as `128MiB`, `1 GiB` or `134217728` (bytes), at
/// least [`MemoryBudget::SMALLEST`].
fn memory_size(s: &str) -> Result<usize, String> {
    let bytes = byte_unit::Byte::parse_str(s, true).map_err(|e| format!("{s:?} is not a size like 128MiB: {e}"))?;
    let bytes = usize::try_from(bytes.as_u64()).map_err(|_| format!("{s:?} is too large"))?;
    if bytes < MemoryBudget::SMALLEST.0 {
        return Err(format!("{s:?} is less than the smallest budget, 16MiB"));
    }
    Ok(bytes)
}

mod security;
mod sources;
pub use security::{Secret, Security};
pub use sources::ConfigError;
use sources::{Sources, Val, boolean, err, host_port, num};

#[cfg(test)]
mod tests;
