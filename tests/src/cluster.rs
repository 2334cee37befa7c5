//! [`Cluster`]: `n` nodes that know each other, waiting for their leaders
//! and checking their partition table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::api::{Api, http_client};
use crate::binary::{free_ports, loopback, peers_arg};
use crate::limits::{LEADER_TIMEOUT, LOG_TAIL_LINES, STARTUP_TIMEOUT};
use crate::node::KeelNode;
use crate::poll::poll_until;
use crate::views::PartitionView;

/// `n` nodes with ids `1..=n` that know each other through `--peers`, each
/// with a data dir and logs in one temporary directory.
///
/// Dropping the cluster kills every process; if the test is panicking or
/// [`Cluster::finish`] was not called, it first prints the tail of every
/// node's logs.
pub struct Cluster {
    // Field order matters: the nodes (processes) go before the directory.
    pub nodes: Vec<KeelNode>,
    pub client: reqwest::Client,
    ok: bool,
    tmp: Option<TempDir>,
}

impl Cluster {
    /// Creates the nodes (all ports allocated up front) without starting
    /// them.
    pub fn new(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let tmp =
            tempfile::Builder::new().prefix("keel-e2e-").tempdir().context("cannot create a temporary directory")?;
        let client = http_client();
        let ports = free_ports(3 * n);
        let addrs: Vec<(SocketAddr, SocketAddr, SocketAddr)> =
            ports.chunks(3).map(|p| (loopback(p[0]), loopback(p[1]), loopback(p[2]))).collect();
        let peers = peers_arg(&addrs.iter().enumerate().map(|(i, a)| (i as u64 + 1, a.2)).collect::<Vec<_>>());
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, &addrs)| {
                KeelNode::new(i as u64 + 1, tmp.path(), addrs, peers.clone(), extra_args, client.clone())
            })
            .collect();
        Ok(Cluster { nodes, client, ok: false, tmp: Some(tmp) })
    }

    /// Creates and starts `n` nodes (all spawned first, so they can find
    /// each other), and waits until every one is healthy. Leaders are not
    /// awaited: see [`Cluster::wait_for_leaders`].
    pub async fn start(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let mut c = Cluster::new(n, extra_args)?;
        for node in &mut c.nodes {
            node.spawn()?;
        }
        for node in &mut c.nodes {
            node.wait_ready(STARTUP_TIMEOUT).await?;
        }
        Ok(c)
    }

    /// The temporary directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.tmp.as_ref().expect("temporary directory already released").path()
    }

    /// Indices (into `nodes`) of all nodes.
    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// Index (into `nodes`) of node `id`.
    pub fn index_of(&self, id: u64) -> Result<usize> {
        self.nodes.iter().position(|n| n.id == id).with_context(|| format!("no node with id {id}"))
    }

    /// Clients of the nodes at `indices`.
    pub fn apis(&self, indices: &[usize]) -> Vec<Api> {
        indices.iter().map(|&i| self.nodes[i].api.clone()).collect()
    }

    /// Polls `GET /cluster` on the nodes at `on` until, for every partition,
    /// each of them that replicates it reports a leader, that leader is one
    /// of the nodes at `on`, and they all name the same one. Returns
    /// partition → leader id.
    pub async fn wait_for_leaders(&self, on: &[usize], timeout: Duration) -> Result<BTreeMap<u32, u64>> {
        let live: Vec<u64> = on.iter().map(|&i| self.nodes[i].id).collect();
        let what = format!("every partition to have one agreed leader among nodes {live:?}");
        poll_until(timeout, &what, async || {
            let mut agreed: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for &i in on {
                let view = self.nodes[i].api.cluster_view().await?;
                ensure!(!view.partitions.is_empty(), "node {} reports no partitions", view.node_id);
                for p in &view.partitions {
                    if !p.replicas.contains(&view.node_id) {
                        continue;
                    }
                    let Some(leader) = p.leader else {
                        bail!("node {} sees no leader for partition {}", view.node_id, p.id);
                    };
                    ensure!(
                        live.contains(&leader),
                        "node {} sees node {leader} (not among {live:?}) as leader of partition {}",
                        view.node_id,
                        p.id
                    );
                    match agreed.get(&p.id) {
                        None => {
                            agreed.insert(p.id, (leader, view.node_id));
                        }
                        Some(&(other_leader, other_node)) => ensure!(
                            other_leader == leader,
                            "partition {}: node {other_node} sees leader {other_leader}, node {} sees {leader}",
                            p.id,
                            view.node_id
                        ),
                    }
                }
            }
            Ok(Some(agreed.into_iter().map(|(p, (l, _))| (p, l)).collect()))
        })
        .await
    }

    /// Checks the static shape of `GET /cluster` on the nodes at `on`:
    /// partitions `0..partitions`, each with `replication_factor` distinct
    /// replicas that are cluster members, identical on every node; each node
    /// reports local Raft state (role, term/committed/applied) exactly for
    /// the partitions it replicates ([`PartitionView::check_local_state`]).
    /// Returns the partition table: partition → sorted replica ids.
    pub async fn check_topology(
        &self,
        on: &[usize],
        partitions: u32,
        replication_factor: usize,
    ) -> Result<BTreeMap<u32, Vec<u64>>> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        // (node id, sorted (partition, sorted replicas)) of the first node.
        type Shape = Vec<(u32, Vec<u64>)>;
        let mut first: Option<(u64, Shape)> = None;
        for &i in on {
            // Right after an election a leader may have committed its first
            // entry without having applied it yet (`applied` still null):
            // wait for the local state to settle.
            let what = format!("node {}'s local Raft state of every partition it replicates", self.nodes[i].id);
            let view = poll_until(LEADER_TIMEOUT, &what, async || {
                let view = self.nodes[i].api.cluster_view().await?;
                for p in &view.partitions {
                    p.check_local_state(view.node_id)?;
                }
                Ok(Some(view))
            })
            .await?;
            let mut shape: Shape = view
                .partitions
                .iter()
                .map(|p| {
                    let mut r = p.replicas.clone();
                    r.sort_unstable();
                    (p.id, r)
                })
                .collect();
            shape.sort();
            let got_ids: Vec<u32> = shape.iter().map(|(id, _)| *id).collect();
            ensure!(
                got_ids == (0..partitions).collect::<Vec<_>>(),
                "node {} reports partitions {got_ids:?}, expected 0..{partitions}",
                view.node_id
            );
            for (id, replicas) in &shape {
                let mut distinct = replicas.clone();
                distinct.dedup();
                ensure!(
                    distinct.len() == replication_factor && replicas.len() == replication_factor,
                    "partition {id} has replicas {replicas:?}, expected {replication_factor} distinct"
                );
                ensure!(
                    replicas.iter().all(|r| ids.contains(r)),
                    "partition {id} has replicas {replicas:?} outside the cluster {ids:?}"
                );
            }
            match &first {
                None => first = Some((view.node_id, shape)),
                Some((other, s)) => ensure!(
                    *s == shape,
                    "nodes {other} and {} disagree on the partition table: {s:?} vs {shape:?}",
                    view.node_id
                ),
            }
        }
        let (_, shape) = first.context("check_topology needs at least one node")?;
        Ok(shape.into_iter().collect())
    }

    /// The current leader of `partition` and that leader's own view of the
    /// partition: asks `on[0]` who leads (it must be one of `on`), then asks
    /// that node, which must agree that it leads. Retried (up to
    /// [`LEADER_TIMEOUT`]) while an election is settling.
    pub async fn leader_view(&self, on: &[usize], partition: u32) -> Result<(usize, PartitionView)> {
        let first = *on.first().context("leader_view needs at least one node")?;
        let what = format!("a settled leader of partition {partition} among nodes at {on:?}");
        poll_until(LEADER_TIMEOUT, &what, async || {
            let view = self.nodes[first].api.cluster_view().await?;
            let leader = view
                .partition(partition)?
                .leader
                .with_context(|| format!("node {} knows no leader of partition {partition}", view.node_id))?;
            let li = self.index_of(leader)?;
            ensure!(
                on.contains(&li),
                "node {} names node {leader}, not a live node, leader of partition {partition}",
                view.node_id
            );
            let own = self.nodes[li].api.cluster_view().await?;
            let p = own.partition(partition)?.clone();
            ensure!(
                p.leader == Some(leader),
                "node {leader} is named leader of partition {partition} but reports {:?}",
                p.leader
            );
            Ok(Some((li, p)))
        })
        .await
    }

    /// Marks the test as passed (no log dump) and shuts every node down.
    pub fn finish(mut self) {
        self.ok = true;
    }

    /// Prints the tail of every node's logs to stderr.
    pub fn print_logs(&self) {
        eprintln!(
            "===== keel-e2e: logs of {} node(s) in {} =====",
            self.nodes.len(),
            self.tmp.as_ref().map(|t| t.path().display().to_string()).unwrap_or_default()
        );
        for node in &self.nodes {
            eprintln!("{}", node.log_tail(LOG_TAIL_LINES));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.start_kill();
        }
        if std::thread::panicking() || !self.ok {
            self.print_logs();
        }
        if std::env::var_os("KEEL_E2E_KEEP_TMP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("keel-e2e: keeping {}", tmp.keep().display());
        }
    }
}
