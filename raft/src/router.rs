//! Routing of client requests to partition leaders, from any node.
//!
//! A request for partition `p` goes to `p`'s leader: directly if this node
//! leads, otherwise over the node port. The leader is taken from the local
//! replica's Raft metrics, else from a cache filled by redirects, else by
//! asking `p`'s replicas. Redirects and elections are retried transparently
//! until a deadline, after which the caller gets [`RouteError::NoLeader`]
//! (the HTTP layer answers 503 with `Retry-After`) rather than a hang.

use crate::groups::Registry;
use crate::leader_calls::LeaderCalls;
use crate::messages::{GroupStatus, ProposeError};
use crate::proposer::COMMIT_TIMEOUT;
use crate::transport::{PeerError, Peers};
use keel_partition::invocation::InvocationKey;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Envelope, Query, QueryResult, Response};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a request keeps looking for a leader.
const ROUTE_DEADLINE: Duration = Duration::from_secs(10);
/// Timeout of one status query to a peer.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a routed request failed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No leader could be reached before the deadline.
    #[error("partition {partition} has no reachable leader: {last_error}")]
    NoLeader {
        /// The partition.
        partition: u32,
        /// The last failure seen.
        last_error: String,
    },
    /// The leader could not commit in time; the outcome is unknown.
    #[error("partition {partition} is unavailable: {reason}")]
    Unavailable {
        /// The partition.
        partition: u32,
        /// Why.
        reason: String,
    },
    /// The partition id is out of range.
    #[error("no partition {0}")]
    UnknownPartition(u32),
    /// The command cannot fit one log entry.
    #[error("{0}")]
    TooLarge(String),
}

/// Routes proposals and reads to leaders.
pub struct Router {
    registry: Arc<Registry>,
    peers: Arc<Peers>,
    leaders: Mutex<HashMap<u32, u64>>,
}

enum Attempt<T> {
    Done(T),
    Redirect(Option<u64>),
    Failed(String),
}

impl Router {
    /// A router over this node's registry and peer list.
    pub fn new(registry: Arc<Registry>, peers: Arc<Peers>) -> Self {
        Router { registry, peers, leaders: Mutex::new(HashMap::new()) }
    }

    /// The registry of local groups.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Proposes `envelope` to `partition`'s leader and waits for it to be applied.
    pub async fn propose(&self, partition: u32, envelope: Envelope) -> Result<Response, RouteError> {
        self.route(partition, |leader| {
            let envelope = envelope.clone();
            async move {
                if leader == self.registry.node_id() {
                    self.registry.propose_local(partition, envelope).await
                } else {
                    self.peers
                        .propose(leader, partition, &envelope, COMMIT_TIMEOUT + Duration::from_secs(1))
                        .await
                        .unwrap_or_else(forward_failed)
                }
            }
        })
        .await
    }

    /// Creates an invocation on `partition`'s leader and waits for its
    /// result as `policy` allows. Safe to repeat after a leader change: the
    /// invocation id deduplicates, so a retry attaches to the same
    /// invocation. The policy's timeout counts from this call, across retries.
    /// `local` serves the call when this node leads.
    pub async fn call(
        &self,
        partition: u32,
        envelope: Envelope,
        policy: WaitPolicy,
        local: &dyn LeaderCalls,
    ) -> Result<Waited, RouteError> {
        let started = Instant::now();
        self.route(partition, |leader| {
            let envelope = envelope.clone();
            let policy = remaining(policy, started);
            async move {
                if leader == self.registry.node_id() {
                    local.call(partition, envelope, policy).await
                } else {
                    match self.peers.call(leader, partition, &envelope, policy).await {
                        Ok(r) => r,
                        // The invocation id makes a blind retry safe here.
                        Err(_) => Err(ProposeError::NotLeader { leader: None }),
                    }
                }
            }
        })
        .await
    }

    /// Waits for the result of invocation `id` of `partition` as `policy`
    /// allows (`None`: unknown). `local` serves it when this node leads.
    pub async fn attach(
        &self,
        partition: u32,
        id: InvocationKey,
        policy: WaitPolicy,
        local: &dyn LeaderCalls,
    ) -> Result<Option<Waited>, RouteError> {
        let started = Instant::now();
        self.route(partition, |leader| {
            let policy = remaining(policy, started);
            async move {
                if leader == self.registry.node_id() {
                    local.attach(partition, id, policy).await
                } else {
                    match self.peers.attach(leader, partition, &id, policy).await {
                        Ok(r) => r,
                        // Attaching has no effect, so trying again is always safe.
                        Err(_) => Err(ProposeError::NotLeader { leader: None }),
                    }
                }
            }
        })
        .await
    }

    /// Reads from `partition`'s leader after a linearizability check.
    pub async fn read(&self, partition: u32, query: &Query) -> Result<QueryResult, RouteError> {
        self.route(partition, |leader| async move {
            if leader == self.registry.node_id() {
                self.registry.read_local(partition, query).await
            } else {
                self.peers
                    .read(leader, partition, query, COMMIT_TIMEOUT + Duration::from_secs(1))
                    .await
                    .unwrap_or_else(forward_failed)
            }
        })
        .await
    }

    async fn route<T, F, Fut>(&self, partition: u32, mut attempt: F) -> Result<T, RouteError>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<T, ProposeError>>,
    {
        if !self.registry.is_group(partition) {
            return Err(RouteError::UnknownPartition(partition));
        }
        // A partition whose apply failed stopped on every replica: no
        // leader will come, so say why at once.
        if let Some(reason) = self.registry.db().health().partition_stopped(partition) {
            return Err(RouteError::Unavailable { partition, reason });
        }
        let deadline = Instant::now() + ROUTE_DEADLINE;
        let mut backoff = Duration::from_millis(20);
        let mut redirects = 0;
        loop {
            let step = match self.leader_of(partition).await {
                None => Attempt::Failed("no leader elected yet".into()),
                Some(leader) => match attempt(leader).await {
                    Ok(v) => Attempt::Done(v),
                    Err(ProposeError::NotLeader { leader: hint }) => Attempt::Redirect(hint.filter(|h| *h != leader)),
                    Err(ProposeError::NoSuchGroup(_)) => Attempt::Redirect(None),
                    Err(ProposeError::Unavailable(reason)) => {
                        return Err(RouteError::Unavailable { partition, reason });
                    }
                    Err(e @ ProposeError::TooLarge { .. }) => return Err(RouteError::TooLarge(e.to_string())),
                },
            };
            let last_error = match step {
                Attempt::Done(v) => return Ok(v),
                Attempt::Redirect(Some(next)) => {
                    self.cache(partition, Some(next));
                    redirects += 1;
                    // Follow a fresh redirect at once; a chain of them means
                    // views disagree (an election is under way): back off.
                    if redirects <= 2 {
                        continue;
                    }
                    format!("redirected to node {next}")
                }
                Attempt::Redirect(None) => {
                    self.cache(partition, None);
                    "leader unknown or unreachable".to_string()
                }
                Attempt::Failed(e) => e,
            };
            if Instant::now() + backoff > deadline {
                return Err(RouteError::NoLeader { partition, last_error });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    fn cache(&self, partition: u32, leader: Option<u64>) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        match leader {
            Some(l) => leaders.insert(partition, l),
            None => leaders.remove(&partition),
        };
    }

    /// The best known leader of `partition`: local Raft view, then the cache,
    /// then the replicas' own views.
    pub async fn leader_of(&self, partition: u32) -> Option<u64> {
        if self.registry.group(partition).is_some_and(|g| g.is_running()) {
            return self.registry.local_leader(partition);
        }
        if let Some(l) = self.leaders.lock().unwrap_or_else(|e| e.into_inner()).get(&partition) {
            return Some(*l);
        }
        // Not this node: its own view was taken above, or its replica stopped.
        let others = self.registry.replicas(partition).iter().filter(|r| **r != self.registry.node_id());
        for replica in others.copied().collect::<Vec<_>>() {
            let Ok(groups) = self.peers.status(replica, STATUS_TIMEOUT).await else { continue };
            if let Some(leader) = groups.iter().find(|g| g.id == partition).and_then(|g| g.leader) {
                self.cache(partition, Some(leader));
                return Some(leader);
            }
        }
        None
    }

    /// The partition table as seen from this node: local groups with their
    /// Raft details, other partitions with their replicas and known leader.
    pub async fn cluster_status(&self) -> Vec<GroupStatus> {
        let mut out = Vec::new();
        for p in 0..self.registry.partition_count() {
            match self.registry.group(p) {
                Some(_) => out.extend(self.registry.status().into_iter().filter(|g| g.id == p)),
                None => out.push(GroupStatus {
                    id: p,
                    replicas: self.registry.replicas(p).to_vec(),
                    leader: self.leader_of(p).await,
                    term: None,
                    committed: None,
                    applied: None,
                    last_log: None,
                    last_purged: None,
                    snapshot: None,
                    role: "none".into(),
                    failure: None,
                }),
            }
        }
        out
    }
}

/// `policy` with its timeout reduced by the time since `started`.
fn remaining(policy: WaitPolicy, started: Instant) -> WaitPolicy {
    match policy.timeout_ms {
        None => policy,
        Some(ms) => WaitPolicy { timeout_ms: Some(ms.saturating_sub(started.elapsed().as_millis() as u64)), ..policy },
    }
}

/// Maps a failed forward: if the request cannot have reached the leader
/// (unknown node, no connection) another leader may be tried; otherwise the
/// outcome is unknown and must not be retried blindly.
fn forward_failed<T>(e: PeerError) -> Result<T, ProposeError> {
    if e.unreachable() {
        Err(ProposeError::NotLeader { leader: None })
    } else {
        Err(ProposeError::Unavailable(e.to_string()))
    }
}
