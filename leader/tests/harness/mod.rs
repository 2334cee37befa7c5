//! An in-process keel cluster for tests of the leader runtime.
//!
//! N nodes run in the test's process, each with its own RocksDB in a temp
//! directory (opened with [`Db::open_inline`]: no syncer thread), its
//! Raft groups, router and leader runtime, exactly as `keel` wires them,
//! but talking through [`net::SimNet`] instead of gRPC and running
//! attempts against [`sdk::FakeSdk`] instead of HTTP. Tests run on a
//! current-thread runtime with paused time: timers, timeouts and elections
//! happen in virtual time, and openraft's election timeouts, the network's
//! losses and delays and the workload all draw from the test's seed, so a
//! seed replays the same run. Crashing a node stops its groups and drops
//! everything it held in memory; restarting it opens its groups again on
//! the same database, as a process restarted on the same disk would.

#![allow(dead_code)]

pub mod net;
pub mod sdk;

use keel_leader::clock::TokioClock;
use keel_leader::{LeaderOptions, Leaders};
use keel_partition::catalog::DeploymentRecord;
use keel_partition::idempotency::{DEFAULT_IDEMPOTENCY_RETENTION_MS, idempotent_id};
use keel_partition::invocation::{HandlerKind, InvocationRecord, Status, Target};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, METADATA_GROUP, Query, QueryResult, partition_for_key, partition_key};
use keel_protocol::proto::{InputCommandMessage, Value};
use keel_protocol::{Flags, InvocationId, Message};
use keel_raft::db::Db;
use keel_raft::groups::{RaftSettings, Registry};
use keel_raft::handler::NodeHandler;
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::router::{RouteError, Router};
use keel_raft::transport::Peers;
use net::SimNet;
use openraft::ServerState;
use sdk::FakeSdk;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Wall-clock time at the start of every run (2026-01-01), so records and
/// timers hold the same times on every run.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// A running node's in-memory parts.
struct Running {
    registry: Arc<Registry>,
    router: Arc<Router>,
    leaders: Arc<Leaders>,
}

struct Node {
    db: Arc<Db>,
    running: Option<Running>,
}

/// An in-process cluster.
pub struct Cluster {
    /// The run's seed.
    pub seed: u64,
    /// The network between the nodes.
    pub net: Arc<SimNet>,
    /// The SDK every node invokes.
    pub sdk: FakeSdk,
    /// The cluster's clock.
    pub clock: TokioClock,
    partitions: u32,
    /// Replicas per partition (the metadata group has one on every node).
    replication: usize,
    /// Slots for attempts in flight per node (keel's `--max-concurrent-invocations`).
    slots: usize,
    nodes: Mutex<BTreeMap<u64, Node>>,
    addrs: BTreeMap<u64, String>,
    settings: RaftSettings,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes with `partitions` partitions, replicated as `keel`
    /// replicates by default (min(3, n)), and registers the fake SDK's
    /// deployment. Must run on a runtime with paused time.
    pub async fn start(n: u64, partitions: u32, seed: u64) -> Cluster {
        Cluster::start_replicated(n, partitions, n.min(3) as usize, seed).await
    }

    /// [`Cluster::start`] with `replication` replicas per partition.
    pub async fn start_replicated(n: u64, partitions: u32, replication: usize, seed: u64) -> Cluster {
        Cluster::boot(n, partitions, replication, seed, 100).await
    }

    /// [`Cluster::start`] with `slots` slots for attempts in flight per node
    /// (keel's `--max-concurrent-invocations`), a deployment's share of
    /// them as keel's default.
    pub async fn start_with_slots(n: u64, partitions: u32, seed: u64, slots: usize) -> Cluster {
        Cluster::boot(n, partitions, n.min(3) as usize, seed, slots).await
    }

    async fn boot(n: u64, partitions: u32, replication: usize, seed: u64, slots: usize) -> Cluster {
        keel_raft::runtime::seed_thread_rng(seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = TokioClock::starting_at(EPOCH_MS);
        let addrs: BTreeMap<u64, String> = (1..=n).map(|id| (id, format!("node-{id}:5122"))).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let db = Db::open_inline(&dir.path().join(format!("node-{id}"))).expect("open db");
            nodes.insert(id, Node { db, running: None });
        }
        let settings = RaftSettings { heartbeat_ms: 50, election_timeout_ms: 300, snapshot_logs: 200, keep_logs: 50 };
        let cluster = Cluster {
            seed,
            net: SimNet::new(seed),
            sdk: FakeSdk::new(clock, seed),
            clock,
            partitions,
            replication,
            slots,
            nodes: Mutex::new(nodes),
            addrs,
            settings,
            _dir: dir,
        };
        for id in 1..=n {
            cluster.restart(id).await;
        }
        cluster.register_sdk().await;
        cluster
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<u64, Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Now on the cluster's clock.
    pub fn clock_now(&self) -> u64 {
        keel_leader::clock::Clock::now_ms(&self.clock)
    }

    /// Node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes().keys().copied().collect()
    }

    /// Nodes that run now.
    pub fn live(&self) -> Vec<u64> {
        self.nodes().iter().filter(|(_, n)| n.running.is_some()).map(|(id, _)| *id).collect()
    }

    /// Starts node `id` on its database (again, after a crash).
    pub async fn restart(&self, id: u64) {
        let db = {
            let nodes = self.nodes();
            let node = nodes.get(&id).expect("known node");
            if node.running.is_some() {
                return;
            }
            node.db.clone()
        };
        let peers = Arc::new(Peers::new(self.addrs.clone(), self.net.transport(id)));
        let metrics = Arc::new(RaftMetricsSet::unregistered());
        let registry =
            Registry::start(id, self.partitions, self.replication, peers.clone(), &self.settings, db, metrics)
                .await
                .expect("groups start");
        let router = Arc::new(Router::new(registry.clone(), peers));
        let options = LeaderOptions {
            max_concurrent_invocations: self.slots,
            max_concurrent_invocations_per_deployment: keel_leader::slots::default_per_deployment(self.slots),
            endpoints: Arc::new(self.sdk.clone()),
            clock: Arc::new(self.clock),
            completed_retention: Duration::from_millis(keel_partition::idempotency::DEFAULT_COMPLETED_RETENTION_MS),
        };
        let leaders = Leaders::start(&registry, router.clone(), options);
        self.net.attach(id, Arc::new(NodeHandler::new(registry.clone(), leaders.clone())));
        if let Some(node) = self.nodes().get_mut(&id) {
            node.running = Some(Running { registry, router, leaders });
        }
    }

    /// Crashes node `id`: it stops answering at once and its groups stop;
    /// what it wrote to its database stays.
    pub async fn crash(&self, id: u64) {
        self.net.detach(id);
        let Some(running) = self.nodes().get_mut(&id).and_then(|n| n.running.take()) else { return };
        for group in running.registry.groups() {
            let _ = group.raft.shutdown().await;
        }
    }

    /// The router of node `id` (which must run).
    pub fn router(&self, id: u64) -> Arc<Router> {
        self.running(id, |r| r.router.clone())
    }

    /// The leader runtime of node `id` (which must run).
    pub fn leaders(&self, id: u64) -> Arc<Leaders> {
        self.running(id, |r| r.leaders.clone())
    }

    /// The registry of node `id`, if it runs.
    pub fn registry(&self, id: u64) -> Option<Arc<Registry>> {
        self.nodes().get(&id).and_then(|n| Some(n.running.as_ref()?.registry.clone()))
    }

    fn running<T>(&self, id: u64, f: impl FnOnce(&Running) -> T) -> T {
        f(self.nodes().get(&id).and_then(|n| n.running.as_ref()).expect("node runs"))
    }

    /// The partition of an invocation.
    pub fn partition_of(&self, id: &InvocationId) -> u32 {
        partition_for_key(id.partition_key, self.partitions)
    }

    /// The partition of an object key.
    pub fn partition_of_key(&self, key: &str) -> u32 {
        partition_for_key(partition_key(key.as_bytes()), self.partitions)
    }

    /// The nodes that hold a replica of `partition` (every node computes
    /// the same placement).
    pub fn replicas(&self, partition: u32) -> Vec<u64> {
        let registry = self.live().into_iter().find_map(|id| self.registry(id));
        registry.map(|r| r.replicas(partition).to_vec()).unwrap_or_default()
    }

    /// The sequence numbers of the messages in node `node`'s replica of
    /// the outbox of `partition` (empty if the node does not run it).
    pub fn outbox(&self, node: u64, partition: u32) -> Vec<u64> {
        let Some(group) = self.registry(node).and_then(|r| r.group(partition).cloned()) else { return Vec::new() };
        keel_partition::outbox::pending(&group.view()).into_iter().map(|(seq, _)| seq).collect()
    }

    /// Whether node `node`'s replica holds invocation `id` (its `Invoke`
    /// applied) within 5 s of virtual time.
    pub async fn holds_invocation(&self, node: u64, id: &InvocationId) -> bool {
        let partition = self.partition_of(id);
        let Some(group) = self.registry(node).and_then(|r| r.group(partition).cloned()) else { return false };
        let held = poll(Duration::from_secs(5), || {
            let record = keel_partition::invocation::load(&group.view(), &id.to_bytes()).ok().flatten();
            std::future::ready(record.map(|_| ()))
        });
        held.await.is_some()
    }

    /// The leader of `group` that every live replica agrees on, once they do.
    pub async fn leader(&self, group: u32) -> u64 {
        poll(Duration::from_secs(60), || {
            let views: Vec<(u64, Option<u64>, ServerState)> = self
                .live()
                .into_iter()
                .filter_map(|id| {
                    let g = self.registry(id)?.group(group)?.clone();
                    let m = g.raft.metrics().borrow().clone();
                    Some((id, m.current_leader, m.state))
                })
                .collect();
            let leader =
                views.iter().find(|(id, _, s)| *s == ServerState::Leader && views.iter().all(|v| v.1 == Some(*id)));
            std::future::ready(leader.map(|(id, _, _)| *id))
        })
        .await
        .unwrap_or_else(|| panic!("seed {}: no agreed leader of group {group}", self.seed))
    }

    /// Registers deployment `name` (at `http://{name}.invalid:9080`, which
    /// the fake SDK serves whatever the address) with `manifest`, through
    /// the first live node; returns once the metadata group applied it.
    pub async fn register(&self, name: &str, manifest: &str) {
        let record = DeploymentRecord {
            id: format!("dp_{name}"),
            uri: format!("http://{name}.invalid:9080"),
            additional_headers: Default::default(),
            metadata: Default::default(),
            use_http_11: false,
            sdk_version: None,
            created_at_ms: EPOCH_MS,
            manifest_json: manifest.as_bytes().to_vec(),
        };
        let command = Command::RegisterDeployment { record, force: true, breaking: false };
        let router = self.router(self.live()[0]);
        retry(|| router.propose(METADATA_GROUP, Envelope::client(command.clone())))
            .await
            .unwrap_or_else(|e| panic!("seed {}: deployment {name} does not register: {e}", self.seed));
    }

    async fn register_sdk(&self) {
        self.register("sim", sdk::MANIFEST).await;
        // Every node's catalog has it before the test starts.
        for id in self.live() {
            let leaders = self.leaders(id);
            poll(Duration::from_secs(30), || {
                std::future::ready(leaders.catalog().ok().and_then(|c| c.service("Counter").map(|_| ())))
            })
            .await
            .expect("catalog replicated");
        }
    }
}

/// An idempotent call: its id derives from the target and `idempotency_key`,
/// so repeating it (after a timeout, on another node) reaches the same invocation.
pub fn call_envelope(
    service: &str,
    key: Option<&str>,
    handler: &str,
    input: &[u8],
    idempotency_key: &str,
    now_ms: u64,
) -> (InvocationId, Envelope) {
    let id = idempotent_id(service, key, handler, idempotency_key);
    let input = InputCommandMessage {
        headers: Vec::new(),
        value: Some(Value { content: input.to_vec().into() }),
        name: String::new(),
    };
    let frame = Message::InputCommand(input).to_frame(Flags::NONE).expect("small input");
    let kind = if key.is_some() { HandlerKind::Exclusive } else { HandlerKind::Service };
    let record = InvocationRecord {
        target: Target { service: service.into(), handler: handler.into(), key: key.map(str::to_string), kind },
        deployment_id: None,
        created_at_ms: now_ms,
        journal_len: 0,
        status: Status::Invoked,
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: DEFAULT_IDEMPOTENCY_RETENTION_MS,
        attached: Vec::new(),
    };
    (id, Envelope::client(Command::Invoke { id: id.to_bytes(), record, input: frame.to_bytes().to_vec() }))
}

impl Cluster {
    /// Calls until a result comes back, through the live nodes in turn (a
    /// client behind a load balancer), each try bounded like an HTTP
    /// client's; gives up after `budget` of virtual time.
    pub async fn call(&self, envelope: &Envelope, id: &InvocationId, budget: Duration) -> Option<Vec<u8>> {
        let partition = self.partition_of(id);
        let deadline = tokio::time::Instant::now() + budget;
        let mut turn = 0usize;
        while tokio::time::Instant::now() < deadline {
            let live = self.live();
            turn += 1;
            let node = live.get(turn % live.len().max(1)).copied();
            let handles = node.and_then(|n| {
                let nodes = self.nodes();
                let running = nodes.get(&n)?.running.as_ref()?;
                Some((running.router.clone(), running.leaders.clone()))
            });
            if let Some((router, leaders)) = handles {
                let attempt = router.call(partition, envelope.clone(), WaitPolicy::UNBOUNDED, leaders.as_ref());
                if let Ok(Ok(Waited::Done(keel_partition::invocation::InvocationResult::Success(out)))) =
                    tokio::time::timeout(Duration::from_secs(30), attempt).await
                {
                    return Some(out);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Cluster {
    /// The count of `Counter` object `key` (0 before its first call), read
    /// through its leader from the first live node; `None` if the read fails.
    pub async fn counter(&self, key: &str) -> Option<u64> {
        self.count("Counter", key).await
    }

    /// [`Cluster::counter`] of a counting object of another service (the
    /// fake SDK counts for `Tally` as for `Counter`).
    pub async fn count(&self, service: &str, key: &str) -> Option<u64> {
        let partition = self.partition_of_key(key);
        let query = Query::GetState { service: service.into(), object_key: key.into() };
        let router = self.router(*self.live().first()?);
        match router.read(partition, &query).await {
            Ok(QueryResult::State { state, .. }) => {
                Some(state.get("count").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0))
            }
            _ => None,
        }
    }
}

/// Retries `f` while routing fails, up to a minute of virtual time.
pub async fn retry<T, F, Fut>(mut f: F) -> Result<T, RouteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RouteError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Polls `check` every 10 ms of virtual time until it yields, or `limit` passes.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The seed of a test: `KEEL_SIM_SEED` if set (to replay a failure), else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("KEEL_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs `test` on a fresh current-thread runtime with paused time.
pub fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(test)
}
