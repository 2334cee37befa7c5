//! End-to-end test of request routing: with more nodes than replicas per
//! partition, every node serves every partition, forwarding requests for
//! partitions it does not replicate to their leader (which it finds by asking
//! the replicas over the Status RPC).
//!
//! Build the binary first (`cargo build -p keel`); see the crate docs of
//! `keel_e2e` for the knobs.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use keel_e2e::{
    Acked, Cluster, LEADER_TIMEOUT, Model, make_state, poll_until, run_test, state_diff, verify_everywhere,
};

const SVC: &str = "routing";
const PARTITIONS: u32 = 8;
const REPLICATION_FACTOR: usize = 3;
const ARGS: &[&str] = &["--partitions", "8", "--replication-factor", "3"];
const KEYS: usize = 40;

/// Which node a write is sent to, relative to its key's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    /// A node that does not replicate the partition: it must forward.
    NonReplica,
    /// A replica that did not lead the partition when leaders settled.
    Follower,
    /// The partition's leader when leaders settled.
    Leader,
}

/// The node a write goes through, cycling so that half the writes go
/// through a non-replica.
const VIA_CYCLE: [Via; 4] = [Via::NonReplica, Via::Follower, Via::NonReplica, Via::Leader];

/// Four nodes, eight partitions, replication factor 3.
///
/// 1. Waits until every partition has one leader its replicas agree on and
///    checks `GET /cluster` on every node: each partition lists exactly 3
///    distinct replicas, the table is the same everywhere, each node shows
///    Raft state exactly for the partitions it replicates (role `"none"`,
///    term 0 or null and no indexes elsewhere), and each node is not a
///    replica of at least one partition.
/// 2. Writes 40 keys. Before each write, a read of the still unwritten key
///    (state `{}`) tells its partition; the write then goes through the
///    partition's non-replica, a follower or the leader in turn (half of the
///    writes through the non-replica), and a read through the same node must
///    return exactly the write, in the same partition.
/// 3. Reads every key back through all four nodes: exact bytes, version and
///    partition.
/// 4. Every node, replica or not, names for every partition the leader its
///    replicas agree on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_any_node_serves_every_partition() {
    run_test("four_nodes_any_node_serves_every_partition", routing_scenario()).await;
}

async fn routing_scenario() -> Result<()> {
    let c = Cluster::start(4, ARGS).await?;
    let all = c.all();
    let apis = c.apis(&all);
    let ids: Vec<u64> = c.nodes.iter().map(|n| n.id).collect();

    // 1. Leaders and the partition table.
    let leaders = c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    ensure!(leaders.len() == PARTITIONS as usize, "expected leaders for {PARTITIONS} partitions, got {leaders:?}");
    let table = c.check_topology(&all, PARTITIONS, REPLICATION_FACTOR).await?;
    for &id in &ids {
        ensure!(
            table.values().any(|replicas| !replicas.contains(&id)),
            "node {id} replicates every partition: {table:?}"
        );
    }
    eprintln!("partition table {table:?}, leaders {leaders:?}");

    // 2. Forty keys, each through a node chosen by its partition.
    let mut model = Model::new();
    let mut partition_of = BTreeMap::new();
    let mut writes_via: BTreeMap<Via, usize> = BTreeMap::new();
    for i in 0..KEYS {
        let key = format!("route-{i:02}");
        let probe = apis[i % apis.len()].get_state(SVC, &key).await?;
        ensure!(probe.state.is_empty(), "unwritten key {key} has state {:?}", probe.state);
        let p = probe.partition;
        let replicas =
            table.get(&p).with_context(|| format!("{key} is in partition {p}, not in the table {table:?}"))?;
        let leader = *leaders.get(&p).with_context(|| format!("no leader of partition {p} in {leaders:?}"))?;
        let via = VIA_CYCLE[i % VIA_CYCLE.len()];
        let writer_id = match via {
            Via::NonReplica => ids.iter().copied().find(|id| !replicas.contains(id)),
            Via::Follower => replicas.iter().copied().find(|&r| r != leader),
            Via::Leader => Some(leader),
        }
        .with_context(|| format!("partition {p} (replicas {replicas:?}) has no {via:?} node"))?;
        let writer = &apis[c.index_of(writer_id)?];
        let state = make_state(&key, i as u32);
        let version = writer.set_state_ok(SVC, &key, &state, None).await.with_context(|| {
            format!("write of {key} (partition {p}, replicas {replicas:?}) through node {writer_id} ({via:?})")
        })?;
        let view = writer.get_state(SVC, &key).await?;
        ensure!(
            view.partition == p && view.state == state && view.version == version,
            "{key} written through node {writer_id} ({via:?}) with version {version:?} in \
             partition {p} reads back through it as partition {}, version {:?}, {}",
            view.partition,
            view.version,
            state_diff(&state, &view.state)
        );
        model.insert(key.clone(), Acked { state, version });
        partition_of.insert(key, p);
        *writes_via.entry(via).or_default() += 1;
    }
    eprintln!("writes by route: {writes_via:?}");
    ensure!(
        writes_via.get(&Via::NonReplica) == Some(&(KEYS / 2)),
        "expected {} writes through non-replicas, got {writes_via:?}",
        KEYS / 2
    );
    let written: Vec<u32> = table.keys().copied().filter(|p| partition_of.values().any(|q| q == p)).collect();
    ensure!(
        written.len() == PARTITIONS as usize,
        "the {KEYS} keys cover only partitions {written:?}: {partition_of:?}"
    );

    // 3. Every key through every node.
    let read_partitions = verify_everywhere(&apis, SVC, &model).await?;
    ensure!(
        read_partitions == partition_of,
        "keys read back in other partitions than first reported: {read_partitions:?} vs {partition_of:?}"
    );

    // 4. Every node knows every partition's leader; non-replicas learnt it
    // from the replicas (and the forwarded requests above).
    let leaders = c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    poll_until(LEADER_TIMEOUT, &format!("every node to name the leaders {leaders:?}"), async || {
        for api in &apis {
            let view = api.cluster_view().await?;
            for (&p, &leader) in &leaders {
                let named = view.partition(p)?.leader;
                ensure!(
                    named == Some(leader),
                    "node {} names {named:?} leader of partition {p}, its replicas agree on {leader}",
                    api.node_id
                );
            }
        }
        Ok(Some(()))
    })
    .await?;
    c.finish();
    Ok(())
}
