//! Completed invocations leave once their retention ends: the leader's
//! expiry removes them on its clock, and a new leader removes what its
//! deposed predecessor left. Paused time, one seed per test
//! (`KEEL_SIM_SEED` overrides it).

mod harness;

use harness::{Cluster, call_envelope, poll, run, seed_or};
use keel_partition::{Command, Envelope, Query, QueryResult};
use keel_protocol::InvocationId;
use std::sync::Arc;
use std::time::Duration;

/// The retention the calls below are stamped with.
const RETENTION: Duration = Duration::from_secs(30);

/// Call `n`: `Counter/add` on key `k{n}`, with a short retention.
fn call(cluster: &Cluster, n: u32) -> (InvocationId, Envelope) {
    let key = format!("k{n}");
    let (id, mut envelope) = call_envelope("Counter", Some(&key), "add", b"", &key, cluster.clock_now());
    if let Command::Invoke { record, .. } = &mut envelope.command {
        record.retention_ms = RETENTION.as_millis() as u64;
    }
    (id, envelope)
}

/// When `id`'s record expires per the first live node's reading through
/// the partition's leader: `Some(None)` once there is no completed record.
async fn expiry(cluster: &Cluster, id: &InvocationId) -> Option<Option<u64>> {
    let router = cluster.router(*cluster.live().first()?);
    match router.read(cluster.partition_of(id), &Query::Expiry(id.to_bytes())).await {
        Ok(QueryResult::Expiry(at)) => Some(at),
        _ => None,
    }
}

#[test]
fn completed_invocations_expire_after_their_retention_also_across_a_leader_change() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(1701)).await);
        let calls: Vec<_> = (0..40).map(|n| call(&cluster, n)).collect();
        let outs = futures::future::join_all(calls.iter().map(|(id, e)| cluster.call(e, id, Duration::from_secs(20))));
        for ((id, _), out) in calls.iter().zip(outs.await) {
            assert!(out.is_some(), "seed {}: call {id} did not complete", cluster.seed);
        }
        // Each completed record is kept, due its retention after completing.
        let now = cluster.clock_now();
        for (id, _) in &calls {
            let at = poll(Duration::from_secs(10), || expiry(&cluster, id)).await.flatten();
            let at = at.unwrap_or_else(|| panic!("seed {}: {id} has no expiry", cluster.seed));
            assert!(at <= now + RETENTION.as_millis() as u64, "seed {}: {id} expires at {at}", cluster.seed);
        }
        // Both partitions' leaders die before the records are due: the new
        // leaders expire them.
        for partition in 0..2 {
            let leader = cluster.leader(partition).await;
            if cluster.live().contains(&leader) && cluster.live().len() == 3 {
                cluster.crash(leader).await;
            }
        }
        for (id, _) in &calls {
            let gone =
                poll(Duration::from_secs(60), || async { expiry(&cluster, id).await?.is_none().then_some(()) }).await;
            assert!(gone.is_some(), "seed {}: {id} was not expired", cluster.seed);
        }
        // A repeat of a call now is a new invocation: it runs again.
        let (id, envelope) = &calls[0];
        assert!(cluster.call(envelope, id, Duration::from_secs(60)).await.is_some());
        assert_eq!(cluster.counter("k0").await, Some(2), "seed {}", cluster.seed);
    });
}
