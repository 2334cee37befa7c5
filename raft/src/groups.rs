//! The multi-group registry: one openraft instance per partition replica
//! hosted on this node, each with its proposer (group commit).
//!
//! A group's applied entries yield effects (start an invocation, a timer
//! was stored, ...). Replication does not act on them: each [`Group`]
//! holds the receiving end until the partition leader's runtime takes it
//! ([`Group::take_effects`]) and runs whatever the effects ask for while
//! this node leads.

use crate::db::Db;
use crate::health::Health;
use crate::log_store::{CommittedIndex, LogStore};
use crate::messages::{GroupStatus, ProposeError};
use crate::metrics::RaftMetricsSet;
use crate::placement::replica_sets;
use crate::proposer::{COMMIT_TIMEOUT, Proposer};
use crate::raft_network::NetworkFactory;
use crate::state_machine::{GroupView, StateMachine};
use crate::transport::Peers;
use crate::types::typ;
use keel_partition::{Effect, Envelope, METADATA_GROUP, Query, QueryResult, Response};
use openraft::error::Fatal;
use openraft::error::{CheckIsLeaderError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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

/// One hosted replica.
pub struct Group {
    /// Partition id.
    pub id: u32,
    /// The openraft instance.
    pub raft: typ::Raft,
    /// Replica node ids.
    pub replicas: Vec<u64>,
    proposer: Proposer,
    committed: Arc<CommittedIndex>,
    /// The node's database, for the leader's local reads.
    pub db: Arc<Db>,
    /// Effects of applied entries, until the leader runtime takes them.
    effects: Mutex<Option<mpsc::UnboundedReceiver<Vec<Effect>>>>,
    /// Set when the node starts stopping this replica.
    stopping: AtomicBool,
}

impl Group {
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
        self.check_running()?;
        self.proposer.submit(envelope).await
    }

    /// Refuses at once once this replica stopped: after a failed apply with
    /// the cause (every replica stopped, so asking elsewhere is no use);
    /// while the node shuts down as "not the leader", so the caller finds
    /// the partition's next leader instead of waiting for this one.
    fn check_running(&self) -> Result<(), ProposeError> {
        if let Some(stopped) = self.db.health().partition_stopped(self.id) {
            return Err(ProposeError::Unavailable(stopped));
        }
        if !self.is_running() {
            return Err(ProposeError::NotLeader { leader: None });
        }
        Ok(())
    }

    /// Whether this replica takes part in its group: not stopping, not
    /// stopped. A stopped replica's Raft metrics are frozen, so whom they
    /// name as leader means nothing.
    pub fn is_running(&self) -> bool {
        !self.stopping.load(Ordering::Acquire) && self.raft.metrics().borrow().state != ServerState::Shutdown
    }

    /// Serves a linearizable read on this replica, which must lead: it
    /// confirms leadership with a quorum, waits until everything committed
    /// before is applied, then reads the local state.
    pub async fn read(&self, query: &Query) -> Result<QueryResult, ProposeError> {
        self.check_running()?;
        match tokio::time::timeout(COMMIT_TIMEOUT, self.raft.ensure_linearizable()).await {
            Err(_) => return Err(ProposeError::Unavailable("read timed out waiting for a quorum".into())),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(ProposeError::NotLeader { leader: f.leader_id });
            }
            Ok(Err(e)) => return Err(ProposeError::Unavailable(e.to_string())),
            Ok(Ok(_)) => {}
        }
        let query = query.clone();
        self.read_blocking(move |view| {
            let result = keel_partition::read(view, &query);
            if let Some(e) = view.take_error() {
                return Err(ProposeError::Unavailable(format!("storage read failed: {e}")));
            }
            result.map_err(|e| ProposeError::Unavailable(e.to_string()))
        })
        .await
    }

    /// A view of this replica's partition state (applied, not linearizable).
    /// Reads through it block the calling thread: see [`Self::read_blocking`].
    pub fn view(&self) -> GroupView<'_> {
        GroupView::new(&self.db, self.id)
    }

    /// Runs `read` over this replica's applied state off the async workers
    /// ([`Db::run_blocking`]): for scans and reads of unbounded size.
    pub async fn read_blocking<T, F>(&self, read: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&GroupView<'_>) -> T + Send + 'static,
    {
        let id = self.id;
        self.db.run_blocking(move |db| read(&GroupView::new(db, id))).await
    }

    /// The effects of applied entries, in apply order, for the runtime that
    /// acts on them; `None` once taken.
    pub fn take_effects(&self) -> Option<mpsc::UnboundedReceiver<Vec<Effect>>> {
        self.effects.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// All groups hosted on this node.
pub struct Registry {
    node_id: u64,
    db: Arc<Db>,
    placement: Vec<Vec<u64>>,
    metadata_replicas: Vec<u64>,
    groups: BTreeMap<u32, Arc<Group>>,
    /// Bumped after every change the metadata group applies.
    catalog_changes: Arc<AtomicU64>,
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
                // The deadline of each snapshot chunk's RPC (chunks of
                // openraft's default 3 MiB). The last chunk is answered only
                // once the follower has installed the snapshot (checked the
                // whole file, ingested it: about a second for 512 MiB, see
                // BENCHMARKS.md), and a chunk that times out restarts the
                // transfer from the start, so the deadline is generous.
                install_snapshot_timeout: 30_000,
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
        let catalog_changes = Arc::new(AtomicU64::new(0));
        for (id, replicas) in hosted {
            let starter = GroupStarter {
                node_id,
                catalog_changes: &catalog_changes,
                peers: &peers,
                config: &config,
                settings,
                db: &db,
                metrics: &metrics,
            };
            groups.insert(id, starter.start(id, replicas).await?);
        }
        Ok(Arc::new(Registry { node_id, db, placement, metadata_replicas, groups, catalog_changes, metrics }))
    }

    /// A counter the metadata group's state machine bumps after every
    /// applied batch or installed snapshot: a cache of the catalog is stale
    /// when it moved.
    pub fn catalog_changes(&self) -> Arc<AtomicU64> {
        self.catalog_changes.clone()
    }

    /// The node's database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Every group hosted here.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.values()
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

    /// Serves a linearizable read on the local replica, which must lead the group.
    pub async fn read_local(&self, group: u32, query: &Query) -> Result<QueryResult, ProposeError> {
        self.groups.get(&group).ok_or(ProposeError::NoSuchGroup(group))?.read(query).await
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

    /// Stops every group (graceful shutdown). Each refuses new work at once
    /// (see [`Group::is_running`]), then its Raft instance stops: its leader
    /// runtime stops with it and its waiting callers are told to retry
    /// elsewhere, while the other replicas elect a new leader.
    pub async fn shutdown(&self) {
        for g in self.groups.values() {
            g.stopping.store(true, Ordering::Release);
        }
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
    catalog_changes: &'a Arc<AtomicU64>,
    peers: &'a Arc<Peers>,
    config: &'a Arc<openraft::Config>,
    settings: &'a RaftSettings,
    db: &'a Arc<Db>,
    metrics: &'a Arc<RaftMetricsSet>,
}

impl GroupStarter<'_> {
    /// Starts the local replica of group `id` with its proposer,
    /// bootstrapping the group if it is pristine.
    async fn start(&self, id: u32, replicas: &[u64]) -> Result<Arc<Group>, RegistryError> {
        let node_id = self.node_id;
        let start_err = |reason: String| RegistryError::Start { group: id, reason };
        let log = LogStore::new(id, self.db.clone());
        let committed = log.committed();
        let (effects_tx, effects_rx) = mpsc::unbounded_channel();
        let mut sm = StateMachine::new(id, self.db.clone(), effects_tx, self.metrics.clone());
        if id == METADATA_GROUP {
            sm = sm.notify_changes(self.catalog_changes.clone());
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
        tokio::spawn(watch_fatal(raft.metrics(), id, self.db.health().clone()));
        let proposer = Proposer::start(id, raft.clone(), self.metrics.clone());
        Ok(Arc::new(Group {
            id,
            raft,
            replicas: replicas.to_vec(),
            proposer,
            committed,
            db: self.db.clone(),
            effects: Mutex::new(Some(effects_rx)),
            stopping: AtomicBool::new(false),
        }))
    }
}

/// Initializes a pristine group after `delay`, unless a peer's vote or log
/// reached it first (then it is initialized already).
async fn bootstrap(raft: typ::Raft, group: u32, members: BTreeMap<u64, BasicNode>, delay: Duration) {
    tokio::time::sleep(delay).await;
    if matches!(raft.is_initialized().await, Ok(true)) {
        return;
    }
    // A replica that follows a leader belongs to the group already, even
    // while it has nothing stored (it is receiving its first snapshot):
    // initializing it would start a new term and cut that transfer off.
    if raft.metrics().borrow().current_leader.is_some() {
        return;
    }
    match raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => tracing::error!(partition = group, "bootstrap failed: {e}"),
    }
}

/// Waits for the group's Raft core to end and decides what its end means:
/// a normal shutdown nothing; a failed apply (already recorded by the state
/// machine) stops this partition only; anything else (a storage error, a
/// panic in openraft) stops the node, as it cannot be trusted to go on.
async fn watch_fatal(mut metrics: watch::Receiver<typ::RaftMetrics>, group: u32, health: Arc<Health>) {
    let fatal = match metrics.wait_for(|m| m.running_state.is_err()).await {
        Ok(m) => m.running_state.clone().err(),
        // The Raft instance was dropped without reporting an end.
        Err(_) => None,
    };
    match fatal {
        None | Some(Fatal::Stopped) => {}
        Some(_) if health.group_failure(group).is_some() => {}
        Some(e) => health.stop_node(&format!("partition {group}'s Raft core"), &e),
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
        // A stopped replica's view is frozen: it knows no leader any more.
        leader: m.current_leader.filter(|_| g.is_running()),
        term: Some(m.current_term),
        committed: g.committed.get(),
        applied: m.last_applied.map(|l| l.index),
        last_log: m.last_log_index,
        last_purged: m.purged.map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        role: role.into(),
        failure: g.db.health().group_failure(g.id),
    }
}
