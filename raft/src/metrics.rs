//! Prometheus metrics of the Raft layer.
//!
//! Gauges that mirror openraft's own metrics (term, leader flag, indexes) are
//! refreshed when `/metrics` is scraped; counters and histograms are updated
//! on the hot paths.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Label identifying a partition's Raft group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// The partition id.
    pub partition: u32,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// All Raft-layer metrics of a node.
pub struct RaftMetricsSet {
    /// Current term per group.
    pub term: Family<GroupLabel, Gauge>,
    /// 1 if this node leads the group.
    pub leader: Family<GroupLabel, Gauge>,
    /// Last committed index per group (as known to this node).
    pub commit_index: Family<GroupLabel, Gauge>,
    /// Last applied index per group.
    pub applied_index: Family<GroupLabel, Gauge>,
    /// Last log index per group.
    pub last_log_index: Family<GroupLabel, Gauge>,
    /// Commands proposed on this node (as leader).
    pub proposals: Family<GroupLabel, Counter>,
    /// Raft entries (batches of commands) proposed on this node.
    pub proposal_batches: Family<GroupLabel, Counter>,
    /// Snapshots built.
    pub snapshots_built: Family<GroupLabel, Counter>,
    /// Snapshots installed from a leader.
    pub snapshots_installed: Family<GroupLabel, Counter>,
    /// Time from proposal to applied response.
    pub commit_seconds: Histogram,
    /// Duration of one synced log write (the group-commit fsync).
    pub append_sync_seconds: Histogram,
    /// Time from submitting a log write (append, vote, purge) until it is
    /// durable: queueing behind the current sync plus the sync itself.
    pub log_write_seconds: Histogram,
    /// Number of queued writes merged into one synced log write.
    pub writes_per_sync: Histogram,
}

impl RaftMetricsSet {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let set = RaftMetricsSet {
            term: Family::default(),
            leader: Family::default(),
            commit_index: Family::default(),
            applied_index: Family::default(),
            last_log_index: Family::default(),
            proposals: Family::default(),
            proposal_batches: Family::default(),
            snapshots_built: Family::default(),
            snapshots_installed: Family::default(),
            commit_seconds: latency_histogram(),
            append_sync_seconds: latency_histogram(),
            log_write_seconds: latency_histogram(),
            writes_per_sync: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
        };
        registry.register("keel_raft_term", "Current Raft term of the partition", set.term.clone());
        registry.register("keel_raft_leader", "1 if this node leads the partition", set.leader.clone());
        registry.register("keel_raft_commit_index", "Last committed log index", set.commit_index.clone());
        registry.register("keel_raft_applied_index", "Last applied log index", set.applied_index.clone());
        registry.register("keel_raft_last_log_index", "Last log index", set.last_log_index.clone());
        registry.register("keel_raft_proposals", "Commands proposed as leader", set.proposals.clone());
        registry.register(
            "keel_raft_proposal_batches",
            "Raft entries proposed as leader",
            set.proposal_batches.clone(),
        );
        registry.register("keel_raft_snapshots_built", "Snapshots built", set.snapshots_built.clone());
        registry.register("keel_raft_snapshots_installed", "Snapshots installed", set.snapshots_installed.clone());
        registry.register("keel_raft_commit_seconds", "Proposal to applied latency", set.commit_seconds.clone());
        registry.register(
            "keel_raft_append_sync_seconds",
            "Duration of one synced log write",
            set.append_sync_seconds.clone(),
        );
        registry.register(
            "keel_raft_log_write_seconds",
            "Log write submit-to-durable latency",
            set.log_write_seconds.clone(),
        );
        registry.register("keel_raft_writes_per_sync", "Log writes merged into one sync", set.writes_per_sync.clone());
        set
    }

    /// Metrics that are not exported anywhere (tests, tools).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Records one group-commit write.
    pub fn observe_sync(&self, took: Duration, jobs: usize) {
        self.append_sync_seconds.observe(took.as_secs_f64());
        self.writes_per_sync.observe(jobs as f64);
    }

    /// Counts a built snapshot.
    pub fn snapshot_built(&self, partition: u32) {
        self.snapshots_built.get_or_create(&GroupLabel { partition }).inc();
    }

    /// Counts an installed snapshot.
    pub fn snapshot_installed(&self, partition: u32) {
        self.snapshots_installed.get_or_create(&GroupLabel { partition }).inc();
    }

    /// Mirrors openraft's metrics of one group into the gauges.
    pub fn refresh(&self, partition: u32, m: &crate::types::typ::RaftMetrics, committed: Option<u64>) {
        let label = GroupLabel { partition };
        let as_i64 = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        self.term.get_or_create(&label).set(as_i64(Some(m.current_term)));
        self.leader.get_or_create(&label).set(i64::from(m.current_leader == Some(m.id)));
        self.applied_index.get_or_create(&label).set(as_i64(m.last_applied.map(|l| l.index)));
        self.last_log_index.get_or_create(&label).set(as_i64(m.last_log_index));
        self.commit_index.get_or_create(&label).set(as_i64(committed));
    }
}
