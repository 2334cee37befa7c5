//! The multi-group registry: one openraft instance per partition replica
//! hosted on this node, each with its proposer (group commit) and its
//! leader-side supervisor.

use crate::catalog_cache::CatalogCache;
use crate::db::Db;
use crate::leader;
use crate::log_store::{CommittedIndex, LogStore};
use crate::metrics::{GroupLabel, RaftMetricsSet};
use crate::network::{NetworkFactory, Peers};
use crate::placement::replica_sets;
use crate::router::Router;
use crate::state_machine::{GroupView, StateMachine};
use crate::types::{Batch, encoded_len, typ};
use crate::waiters::Waiters;
use keel_endpoint::EndpointClient;
use keel_partition::invocation::{InvocationKey, InvocationOutcome, Status};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, METADATA_GROUP, Query, QueryResult, Response};
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why a proposal or read did not produce a result. Crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the group; `leader` is its best guess.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader as known to this node.
        leader: Option<u64>,
    },
    /// This node holds no replica of the group.
    #[error("no replica of partition {0} on this node")]
    NoSuchGroup(u32),
    /// The leader could not commit in time (lost quorum, overload, shutdown).
    #[error("{0}")]
    Unavailable(String),
    /// The command alone is larger than one Raft entry may be.
    #[error("the command is {size} bytes encoded, more than the {limit} bytes one log entry may hold")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// [`MAX_ENTRY_BYTES`].
        limit: usize,
    },
}

/// This node's view of one group, reported by `/cluster` and the `Status` RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Partition id.
    pub id: u32,
    /// Replica node ids.
    pub replicas: Vec<u64>,
    /// The leader as known to this node.
    pub leader: Option<u64>,
    /// This node's current term (`None` where it holds no replica).
    pub term: Option<u64>,
    /// Last committed index known to this node.
    pub committed: Option<u64>,
    /// Last applied index.
    pub applied: Option<u64>,
    /// Last log index.
    pub last_log: Option<u64>,
    /// Last purged index.
    pub last_purged: Option<u64>,
    /// Index covered by the latest snapshot.
    pub snapshot: Option<u64>,
    /// Raft role of this replica.
    pub role: String,
}

/// Raft timing and log-compaction settings shared by all groups.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Minimum election timeout; the maximum is twice this.
    pub election_timeout_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_logs: u64,
    /// Entries kept behind the snapshot when purging.
    pub keep_logs: u64,
    /// Invocation attempts in flight at once on this node, over all its
    /// partitions; more wait for a slot (they never fail for it).
    pub max_concurrent_invocations: usize,
}

/// Errors starting the groups.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// openraft refused the configuration.
    #[error("raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// A group could not start (storage unreadable, ...).
    #[error("partition {group}: {reason}")]
    Start {
        /// The group.
        group: u32,
        /// What failed.
        reason: String,
    },
}

/// Upper bound of commands merged into one Raft entry.
const MAX_BATCH: usize = 1024;
/// Upper bound of the encoded commands merged into one Raft entry. Every
/// entry is replicated in one message, so this keeps each far below the
/// gRPC limit ([`crate::network::MAX_MESSAGE_BYTES`]); a single command
/// larger than this is refused ([`ProposeError::TooLarge`]) rather than
/// left to fail replication over and over.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;
/// Encoded bytes of commands that may wait in a group's proposal queue
/// before large commands are refused.
const MAX_QUEUED_BYTES: usize = 2 * MAX_ENTRY_BYTES;
/// Commands up to this size are admitted whatever the queue holds.
const SMALL_COMMAND_BYTES: usize = 64 << 10;
/// How long a leader waits for a proposal or read to commit before answering
/// `Unavailable` (instead of hanging while quorum is lost).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

struct Proposal {
    envelope: Envelope,
    /// The envelope's encoded size.
    size: usize,
    reply: oneshot::Sender<Result<Response, ProposeError>>,
}

/// One hosted replica.
pub struct Group {
    /// Partition id.
    pub id: u32,
    /// The openraft instance.
    pub raft: typ::Raft,
    /// Replica node ids.
    pub replicas: Vec<u64>,
    proposer: mpsc::Sender<Proposal>,
    /// Encoded bytes in the proposal queue (taken off by the proposer).
    queued: Arc<AtomicUsize>,
    committed: Arc<CommittedIndex>,
    /// The node's database, for the leader's local reads.
    pub db: Arc<Db>,
    /// Client for SDK endpoints, shared by the group's invoker attempts.
    pub client: EndpointClient,
    /// The node's parsed service catalog.
    pub catalog: Arc<CatalogCache>,
    /// The node's slots for invocation attempts in flight (shared by all groups).
    pub invocation_slots: Arc<tokio::sync::Semaphore>,
    /// Callers waiting for invocations of this partition, and which of them
    /// parked. Only meaningful on the leader; cleared (so callers retry) when
    /// leadership is lost.
    pub waiters: Waiters,
    /// The node's router (set once it exists), for the outbox shipper.
    router: Arc<OnceLock<Weak<Router>>>,
}

impl Group {
    /// The node's router, once [`Registry::set_router`] was called.
    pub fn router(&self) -> Option<Arc<Router>> {
        self.router.get().and_then(Weak::upgrade)
    }

    /// Proposes through this replica (which must be the leader); resolves once
    /// the command is applied.
    pub async fn propose(&self, envelope: Envelope) -> Result<Response, ProposeError> {
        self.submit(envelope).await?.await
    }

    /// Queues a proposal and returns once it is queued, with a future of its
    /// outcome. Proposals are appended to the log in the order they were
    /// queued, so a caller may queue several and wait for the last one only
    /// when it must (the invoker pipelines an attempt's journal entries).
    pub async fn submit(
        &self,
        envelope: Envelope,
    ) -> Result<impl Future<Output = Result<Response, ProposeError>> + Send + 'static, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let size = encoded_len(&envelope);
        if size > MAX_ENTRY_BYTES {
            return Err(ProposeError::TooLarge { size, limit: MAX_ENTRY_BYTES });
        }
        // Admission by bytes: commands wait in the queue in order, so every
        // queued byte delays whoever comes next. Large commands beyond the
        // budget are refused (the client retries); small ones always get in,
        // so a flood of large requests cannot starve them.
        let queued = self.queued.load(Ordering::Relaxed);
        if size > SMALL_COMMAND_BYTES && queued.saturating_add(size) > MAX_QUEUED_BYTES {
            return Err(ProposeError::Unavailable(format!(
                "partition {} is overloaded: {queued} bytes of commands wait to commit; retry later",
                self.id
            )));
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        self.proposer
            .send(Proposal { envelope, size, reply })
            .await
            .map_err(|_| ProposeError::Unavailable("partition is shutting down".into()))?;
        Ok(async move { rx.await.map_err(|_| ProposeError::Unavailable("partition is shutting down".into()))? })
    }
}

/// All groups hosted on this node.
pub struct Registry {
    node_id: u64,
    db: Arc<Db>,
    placement: Vec<Vec<u64>>,
    metadata_replicas: Vec<u64>,
    router: Arc<OnceLock<Weak<Router>>>,
    groups: BTreeMap<u32, Arc<Group>>,
    catalog: Arc<CatalogCache>,
    metrics: Arc<RaftMetricsSet>,
}

impl Registry {
    /// Starts a Raft instance for every partition this node replicates,
    /// bootstrapping groups that are pristine.
    pub async fn start(
        node_id: u64,
        partitions: u32,
        replication_factor: usize,
        peers: Arc<Peers>,
        settings: &RaftSettings,
        db: Arc<Db>,
        metrics: Arc<RaftMetricsSet>,
    ) -> Result<Arc<Registry>, RegistryError> {
        let config = Arc::new(
            openraft::Config {
                cluster_name: "keel".into(),
                heartbeat_interval: settings.heartbeat_ms,
                election_timeout_min: settings.election_timeout_ms,
                election_timeout_max: settings.election_timeout_ms * 2,
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_logs),
                max_in_snapshot_log_to_keep: settings.keep_logs,
                purge_batch_size: 64,
                max_payload_entries: 256,
                install_snapshot_timeout: 2000,
                ..Default::default()
            }
            .validate()?,
        );
        let placement = replica_sets(&peers.ids(), partitions, replication_factor);
        // The catalog is small, rarely written and read by every node for
        // routing, so every node holds a replica of the metadata group.
        let metadata_replicas = peers.ids();
        let hosted = placement
            .iter()
            .enumerate()
            .map(|(p, replicas)| (p as u32, replicas))
            .chain(std::iter::once((METADATA_GROUP, &metadata_replicas)))
            .filter(|(_, replicas)| replicas.contains(&node_id));
        let mut groups = BTreeMap::new();
        let client = EndpointClient::new();
        let catalog = Arc::new(CatalogCache::new(db.clone()));
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_invocations));
        let router = Arc::new(OnceLock::new());
        for (id, replicas) in hosted {
            let starter = GroupStarter {
                node_id,
                router: &router,
                client: &client,
                catalog: &catalog,
                slots: &slots,
                peers: &peers,
                config: &config,
                settings,
                db: &db,
                metrics: &metrics,
            };
            groups.insert(id, starter.start(id, replicas).await?);
        }
        Ok(Arc::new(Registry { node_id, db, placement, metadata_replicas, groups, metrics, router, catalog }))
    }

    /// Hands the node's router to the groups (their outbox shippers route
    /// through it); the router itself holds the registry, hence the two steps.
    pub fn set_router(&self, router: &Arc<Router>) {
        let _ = self.router.set(Arc::downgrade(router));
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Number of partitions in the cluster.
    pub fn partition_count(&self) -> u32 {
        self.placement.len() as u32
    }

    /// Replica set of a partition (or of the metadata group).
    pub fn replicas(&self, group: u32) -> &[u64] {
        if group == METADATA_GROUP {
            return &self.metadata_replicas;
        }
        self.placement.get(group as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `group` is a partition or the metadata group.
    pub fn is_group(&self, group: u32) -> bool {
        group == METADATA_GROUP || group < self.partition_count()
    }

    /// The local replica of `group`, if hosted here.
    pub fn group(&self, group: u32) -> Option<&Arc<Group>> {
        self.groups.get(&group)
    }

    /// The leader of `group` as this node's replica knows it.
    pub fn local_leader(&self, group: u32) -> Option<u64> {
        self.groups.get(&group).and_then(|g| g.raft.metrics().borrow().current_leader)
    }

    /// Proposes on the local replica, which must lead the group.
    pub async fn propose_local(&self, group: u32, envelope: Envelope) -> Result<Response, ProposeError> {
        let g = self.groups.get(&group).ok_or(ProposeError::NoSuchGroup(group))?;
        g.propose(envelope).await
    }

    /// Creates an invocation on the local replica (which must lead the
    /// group) and waits for its result as `policy` allows. A repeated call
    /// for the same id attaches to the running invocation or returns its
    /// stored result.
    pub async fn call_local(&self, group: u32, envelope: Envelope, policy: WaitPolicy) -> Result<Waited, ProposeError> {
        let g = self.groups.get(&group).ok_or(ProposeError::NoSuchGroup(group))?;
        let Command::Invoke { id, .. } = &envelope.command else {
            return Err(ProposeError::Unavailable("a call must carry an Invoke command".into()));
        };
        let id = *id;
        let rx = g.waiters.register(id, policy.until_parked);
        let status = match g.propose(envelope).await? {
            Response::Invocation(InvocationOutcome::Exists(status)) => Some(status),
            Response::Invocation(_) => None,
            other => return Err(ProposeError::Unavailable(format!("unexpected answer to invoke: {other:?}"))),
        };
        settle_wait(g, id, status, rx, policy).await
    }

    /// Waits for the result of invocation `id` on the local replica (which
    /// must lead the group) as `policy` allows: at once if it completed,
    /// `None` if unknown.
    pub async fn attach_local(
        &self,
        group: u32,
        id: InvocationKey,
        policy: WaitPolicy,
    ) -> Result<Option<Waited>, ProposeError> {
        let g = self.groups.get(&group).ok_or(ProposeError::NoSuchGroup(group))?;
        // Registered before the read, so a completion right after it is not missed.
        let rx = g.waiters.register(id, policy.until_parked);
        let status = match self.read_local(group, &Query::Invocation(id)).await {
            Ok(QueryResult::Invocation(status)) => status,
            Ok(other) => return Err(ProposeError::Unavailable(format!("unexpected answer {other:?}"))),
            Err(e) => return Err(e),
        };
        if status.is_none() {
            drop(rx);
            g.waiters.abandon(&id);
            return Ok(None);
        }
        settle_wait(g, id, status, rx, policy).await.map(Some)
    }

    /// Serves a linearizable read on the local replica, which must lead the group.
    pub async fn read_local(&self, group: u32, query: &Query) -> Result<QueryResult, ProposeError> {
        let g = self.groups.get(&group).ok_or(ProposeError::NoSuchGroup(group))?;
        match tokio::time::timeout(COMMIT_TIMEOUT, g.raft.ensure_linearizable()).await {
            Err(_) => return Err(ProposeError::Unavailable("read timed out waiting for a quorum".into())),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(ProposeError::NotLeader { leader: f.leader_id });
            }
            Ok(Err(e)) => return Err(ProposeError::Unavailable(e.to_string())),
            Ok(Ok(_)) => {}
        }
        let view = GroupView::new(&self.db, group);
        let result = keel_partition::read(&view, query);
        if let Some(e) = view.take_error() {
            return Err(ProposeError::Unavailable(format!("storage read failed: {e}")));
        }
        result.map_err(|e| ProposeError::Unavailable(e.to_string()))
    }

    /// The service catalog as this node's replica of the metadata group
    /// has applied it (not linearizable: it may lag the leader briefly).
    pub fn local_catalog(&self) -> Result<Arc<keel_partition::catalog::Catalog>, String> {
        self.catalog.get()
    }

    /// This node's view of every group it hosts.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups.values().map(|g| group_status(g)).collect()
    }

    /// Refreshes the Prometheus gauges from openraft's metrics.
    pub fn refresh_metrics(&self) {
        for g in self.groups.values() {
            self.metrics.refresh(g.id, &g.raft.metrics().borrow(), g.committed.get());
        }
    }

    /// Stops every group (graceful shutdown).
    pub async fn shutdown(&self) {
        for g in self.groups.values() {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(partition = g.id, "raft shutdown: {e}");
            }
        }
    }
}

/// What starting one group needs.
struct GroupStarter<'a> {
    node_id: u64,
    router: &'a Arc<OnceLock<Weak<Router>>>,
    client: &'a EndpointClient,
    catalog: &'a Arc<CatalogCache>,
    slots: &'a Arc<tokio::sync::Semaphore>,
    peers: &'a Arc<Peers>,
    config: &'a Arc<openraft::Config>,
    settings: &'a RaftSettings,
    db: &'a Arc<Db>,
    metrics: &'a Arc<RaftMetricsSet>,
}

impl GroupStarter<'_> {
    /// Starts the local replica of group `id` with its proposer and leader
    /// supervisor, bootstrapping the group if it is pristine.
    async fn start(&self, id: u32, replicas: &[u64]) -> Result<Arc<Group>, RegistryError> {
        let node_id = self.node_id;
        let start_err = |reason: String| RegistryError::Start { group: id, reason };
        let log = LogStore::new(id, self.db.clone());
        let committed = log.committed();
        let (effects_tx, effects_rx) = mpsc::unbounded_channel();
        let mut sm = StateMachine::new(id, self.db.clone(), effects_tx, self.metrics.clone());
        if id == METADATA_GROUP {
            sm = sm.notify_changes(self.catalog.changes());
        }
        let network = NetworkFactory::new(id, self.peers.clone());
        let raft = typ::Raft::new(node_id, self.config.clone(), network, log, sm)
            .await
            .map_err(|e| start_err(e.to_string()))?;
        if !raft.is_initialized().await.map_err(|e| start_err(e.to_string()))? {
            let members: BTreeMap<u64, BasicNode> =
                replicas.iter().map(|r| (*r, BasicNode::new(self.peers.addr(*r).unwrap_or_default()))).collect();
            // The ring's preferred replica bootstraps at once and so usually
            // wins the first election, which spreads leaders over the nodes.
            // The others bootstrap too, later, in case it is down: openraft
            // documents concurrent `initialize` with equal membership as safe.
            let delay = if replicas.first() == Some(&node_id) {
                Duration::ZERO
            } else {
                Duration::from_millis(self.settings.election_timeout_ms * 4)
            };
            tokio::spawn(bootstrap(raft.clone(), id, members, delay));
        }
        let (proposer, proposals) = mpsc::channel(MAX_BATCH);
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run_proposer(id, raft.clone(), proposals, queued.clone(), self.metrics.clone()));
        let group = Arc::new(Group {
            id,
            raft,
            replicas: replicas.to_vec(),
            proposer,
            queued,
            committed,
            db: self.db.clone(),
            client: self.client.clone(),
            catalog: self.catalog.clone(),
            invocation_slots: self.slots.clone(),
            waiters: Waiters::default(),
            router: self.router.clone(),
        });
        tokio::spawn(leader::supervise(node_id, group.clone(), effects_rx));
        Ok(group)
    }
}

/// Ends a wait registered as `rx` for invocation `id`, whose status (if
/// already known) is `status`: a completed invocation answers at once; one
/// parked (suspended, paused, scheduled, or parked by the invoker) answers
/// `Pending` at once if the caller only waits until it parks; otherwise
/// the wait goes on as `policy` allows.
async fn settle_wait(
    g: &Group,
    id: InvocationKey,
    status: Option<Status>,
    rx: oneshot::Receiver<Waited>,
    policy: WaitPolicy,
) -> Result<Waited, ProposeError> {
    let parked_now = matches!(status, Some(Status::Suspended { .. } | Status::Paused | Status::Scheduled { .. }))
        || g.waiters.is_parked(&id);
    let early = match status {
        Some(Status::Completed(result)) => Some(Waited::Done(result)),
        _ if policy.until_parked && parked_now => Some(Waited::Pending),
        _ => None,
    };
    let outcome = match early {
        Some(w) => {
            drop(rx);
            Ok(w)
        }
        None => crate::waiters::wait(rx, policy).await,
    };
    // Whatever ended the wait, a waiter left behind is now unreachable.
    g.waiters.abandon(&id);
    outcome
}

/// Initializes a pristine group after `delay`, unless a peer's vote or log
/// reached it first (then it is initialized already).
async fn bootstrap(raft: typ::Raft, group: u32, members: BTreeMap<u64, BasicNode>, delay: Duration) {
    tokio::time::sleep(delay).await;
    if matches!(raft.is_initialized().await, Ok(true)) {
        return;
    }
    match raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => tracing::error!(partition = group, "bootstrap failed: {e}"),
    }
}

fn group_status(g: &Group) -> GroupStatus {
    let m = g.raft.metrics().borrow().clone();
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    GroupStatus {
        id: g.id,
        replicas: g.replicas.clone(),
        leader: m.current_leader,
        term: Some(m.current_term),
        committed: g.committed.get(),
        applied: m.last_applied.map(|l| l.index),
        last_log: m.last_log_index,
        last_purged: m.purged.map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        role: role.into(),
    }
}

/// Batches concurrent proposals of one group into single Raft entries
/// (group commit). One batch is in flight at a time: while it commits, new
/// proposals queue up and form the next batch, so batches grow with load
/// (measured: more batches in flight only made them smaller and slower).
async fn run_proposer(
    group: u32,
    raft: typ::Raft,
    mut rx: mpsc::Receiver<Proposal>,
    queued: Arc<AtomicUsize>,
    metrics: Arc<RaftMetricsSet>,
) {
    let label = GroupLabel { partition: group };
    // A proposal that did not fit the previous batch opens the next one
    // (proposals stay in order: an attempt's pipelined entries rely on it).
    let mut carried: Option<Proposal> = None;
    // Cancellation-safe: `recv` loses nothing when the loop ends, and the
    // loop only ends when every sender is gone.
    let take = |p: Proposal| {
        queued.fetch_sub(p.size, Ordering::Relaxed);
        p
    };
    while let Some(first) = match carried.take() {
        Some(p) => Some(p),
        None => rx.recv().await.map(take),
    } {
        let mut bytes = first.size;
        let mut envelopes = vec![first.envelope];
        let mut replies = vec![first.reply];
        while envelopes.len() < MAX_BATCH {
            match rx.try_recv().map(take) {
                Ok(p) if bytes.saturating_add(p.size) <= MAX_ENTRY_BYTES => {
                    bytes += p.size;
                    envelopes.push(p.envelope);
                    replies.push(p.reply);
                }
                Ok(p) => {
                    carried = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        metrics.proposals.get_or_create(&label).inc_by(envelopes.len() as u64);
        metrics.proposal_batches.get_or_create(&label).inc();
        let started = Instant::now();
        let outcome = tokio::time::timeout(COMMIT_TIMEOUT, raft.client_write(Batch(envelopes))).await;
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        let result = match outcome {
            Err(_) => Err(ProposeError::Unavailable("commit timed out waiting for a quorum".into())),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ProposeError::NotLeader { leader: f.leader_id })
            }
            Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
            Ok(Ok(resp)) => Ok(resp.data),
        };
        // A dropped receiver means the caller gave up; nothing to tell it.
        match result {
            Ok(responses) => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
