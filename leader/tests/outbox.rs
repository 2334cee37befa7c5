//! The outbox shipper on the in-process cluster: a partition that cannot
//! be reached delays only the messages to it, and a message to a handler
//! that this node's catalog does not know is delivered once the metadata
//! group confirms the handler, or fails the call with 404, never dropped.
//! Each test runs in paused time on its own seed (`KEEL_SIM_SEED`
//! overrides it).

mod harness;

use harness::{Cluster, call_envelope, poll, run, seed_or};
use keel_partition::{Envelope, METADATA_GROUP};
use keel_protocol::InvocationId;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(300);
/// Partitions of the clusters with one replica each.
const PARTITIONS: u32 = 8;

/// The first node besides `other` that holds a partition.
fn node_besides(cluster: &Cluster, other: u64) -> u64 {
    let holds = |node: &u64| (0..PARTITIONS).any(|p| cluster.replicas(p).contains(node));
    cluster.ids().into_iter().find(|n| *n != other && holds(n)).expect("a second node with a partition")
}

/// A call of `Sender/send` with `input` whose invocation runs in a
/// partition that `node` holds (the idempotency key is searched for it).
fn send_on(cluster: &Cluster, node: u64, input: &str) -> (InvocationId, Envelope) {
    (0..1000)
        .map(|i| call_envelope("Sender", None, "send", input.as_bytes(), &format!("send-{i}"), cluster.clock_now()))
        .find(|(id, _)| cluster.replicas(cluster.partition_of(id)).contains(&node))
        .unwrap_or_else(|| panic!("no partition on node {node}"))
}

/// An object key whose partition's only replica is on a node that
/// `wanted` accepts, and that node.
fn key_on(cluster: &Cluster, prefix: &str, wanted: impl Fn(u64) -> bool) -> (String, u64) {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find_map(|key| match cluster.replicas(cluster.partition_of_key(&key))[..] {
            [node] if wanted(node) => Some((key, node)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no partition for {prefix} on a wanted node"))
}

/// Whether `node`'s outbox of `partition` empties within 30 s of virtual time.
async fn outbox_empties(cluster: &Cluster, node: u64, partition: u32) -> bool {
    let empty = || std::future::ready(cluster.outbox(node, partition).is_empty().then_some(()));
    poll(Duration::from_secs(30), empty).await.is_some()
}

/// A cluster with one replica per partition whose node `lagging` (returned)
/// follows the metadata group's leader but gets no new entries from it,
/// and [`harness::sdk::LATE_MANIFEST`] registered meanwhile: its catalog
/// lacks `Tally` and `Flow` while the group has them.
async fn lagging_catalog(seed: u64) -> (Cluster, u64) {
    let cluster = Cluster::start_replicated(3, PARTITIONS, 1, seed).await;
    let lagging = node_besides(&cluster, cluster.leader(METADATA_GROUP).await);
    cluster.net.starve(METADATA_GROUP, lagging);
    cluster.register("late", harness::sdk::LATE_MANIFEST).await;
    (cluster, lagging)
}

/// The count of `service` object `key` once it reads `want`, within `limit`
/// of virtual time; else what it last read.
async fn count_reaches(cluster: &Cluster, service: &str, key: &str, want: u64, limit: Duration) -> Option<u64> {
    let reached = poll(limit, || async move { cluster.count(service, key).await.filter(|c| *c == want) }).await;
    match reached {
        Some(count) => Some(count),
        None => cluster.count(service, key).await,
    }
}

#[test]
fn a_partition_that_is_down_delays_only_the_messages_to_it() {
    run(async {
        // One replica per partition: a crashed node takes its partitions down.
        let cluster = Cluster::start_replicated(3, PARTITIONS, 1, seed_or(201)).await;
        let (a, down) = key_on(&cluster, "a", |_| true);
        let (b, _) = key_on(&cluster, "b", |node| node != down);
        let sender = node_besides(&cluster, down);
        // The handler sends to `a`'s partition first, then to `b`'s.
        let (id, envelope) = send_on(&cluster, sender, &format!("{a} {b}"));
        cluster.crash(down).await;
        assert_eq!(cluster.call(&envelope, &id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        let got = count_reaches(&cluster, "Counter", &b, 1, Duration::from_secs(5)).await;
        assert_eq!(got, Some(1), "seed {}: the send to {b} waited for the one to {a}", cluster.seed);
        // Its node is down for a while; the send to it stays in the outbox.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let outbox = cluster.outbox(sender, cluster.partition_of(&id));
        assert_eq!(outbox.len(), 1, "seed {}: the outbox holds {outbox:?}", cluster.seed);
        cluster.restart(down).await;
        let got = count_reaches(&cluster, "Counter", &a, 1, Duration::from_secs(60)).await;
        assert_eq!(got, Some(1), "seed {}: the send to {a} after its node came back", cluster.seed);
        let emptied = outbox_empties(&cluster, sender, cluster.partition_of(&id)).await;
        assert!(emptied, "seed {}: the outbox was not emptied", cluster.seed);
        // Each send took effect once, however often it was shipped.
        assert_eq!(cluster.count("Counter", &a).await, Some(1), "seed {}", cluster.seed);
        assert_eq!(cluster.count("Counter", &b).await, Some(1), "seed {}", cluster.seed);
    });
}

#[test]
fn a_send_to_a_service_the_local_catalog_lacks_yet_is_delivered() {
    run(async {
        let (cluster, sender) = lagging_catalog(seed_or(202)).await;
        // The target's partition is on a node whose catalog knows it.
        let (target, _) = key_on(&cluster, "t", |node| node != sender);
        let (id, envelope) = send_on(&cluster, sender, &format!("Tally/{target}"));
        assert_eq!(cluster.call(&envelope, &id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        let got = count_reaches(&cluster, "Tally", &target, 1, Duration::from_secs(30)).await;
        assert_eq!(got, Some(1), "seed {}: the send to Tally/{target} was not delivered", cluster.seed);
        let catalog = cluster.leaders(sender).catalog().expect("the sender's catalog");
        assert!(catalog.service("Tally").is_none(), "seed {}: the sender's catalog did not lag", cluster.seed);
        cluster.net.heal();
        let emptied = outbox_empties(&cluster, sender, cluster.partition_of(&id)).await;
        assert!(emptied, "seed {}: the outbox was not emptied", cluster.seed);
        assert_eq!(cluster.count("Tally", &target).await, Some(1), "seed {}", cluster.seed);
    });
}

#[test]
fn a_call_to_an_unknown_handler_fails_with_404() {
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(203)).await;
        let (id, envelope) = call_envelope("Caller", None, "call", b"Nowhere/none", "call", cluster.clock_now());
        let answer = cluster.call(&envelope, &id, BUDGET).await;
        let answer = answer.map(|a| String::from_utf8_lossy(&a).into_owned());
        assert_eq!(answer.as_deref(), Some("failed 404: handler 'Nowhere/none' not found"), "seed {}", cluster.seed);
        // A one-way send has no one to answer: it fails (loudly, in the log)
        // and leaves the outbox.
        let (id, envelope) = call_envelope("Sender", None, "send", b"Nowhere/k", "send", cluster.clock_now());
        assert_eq!(cluster.call(&envelope, &id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        let emptied = outbox_empties(&cluster, leader, partition).await;
        assert!(emptied, "seed {}: the send to Nowhere stayed in the outbox", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}

/// Two sends to the same workflow's run handler from a node whose catalog
/// does not know the workflow yet: each must get the workflow run's id
/// (looked up in the metadata group's catalog), so the run happens once.
/// Deciding on the stale catalog gave each send an id of its own, and the
/// workflow ran twice.
#[test]
fn sends_to_a_workflow_the_local_catalog_lacks_yet_run_it_once() {
    run(async {
        let (cluster, sender) = lagging_catalog(seed_or(204)).await;
        // The workflow's partition is on a node whose catalog knows it.
        let (workflow, home) = key_on(&cluster, "w", |node| node != sender);
        let input = format!("Flow/{workflow}");
        let sends: Vec<(InvocationId, Envelope)> = (0..1000)
            .map(|i| call_envelope("Sender", None, "send", input.as_bytes(), &format!("flow-{i}"), cluster.clock_now()))
            .filter(|(id, _)| cluster.replicas(cluster.partition_of(id)).contains(&sender))
            .take(2)
            .collect();
        assert_eq!(sends.len(), 2, "two sends on node {sender}");
        for (id, envelope) in &sends {
            assert_eq!(cluster.call(envelope, id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        }
        let catalog = cluster.leaders(sender).catalog().expect("the sender's catalog");
        assert!(catalog.service("Flow").is_none(), "seed {}: the sender's catalog did not lag", cluster.seed);
        let got = count_reaches(&cluster, "Flow", &workflow, 1, Duration::from_secs(30)).await;
        assert_eq!(got, Some(1), "seed {}: the workflow did not run", cluster.seed);
        cluster.net.heal();
        for (id, _) in &sends {
            let emptied = outbox_empties(&cluster, sender, cluster.partition_of(id)).await;
            assert!(emptied, "seed {}: the outbox was not emptied", cluster.seed);
        }
        // Both sends went to the workflow run's own invocation.
        let run = keel_partition::idempotency::workflow_run_id("Flow", &workflow);
        assert!(cluster.holds_invocation(home, &run).await, "seed {}: the sends missed the workflow run", cluster.seed);
        assert_eq!(cluster.count("Flow", &workflow).await, Some(1), "seed {}: the workflow ran twice", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}

/// An invocation of a service this node's catalog does not know yet (it
/// was registered through another node) runs at once on the catalog of
/// the metadata group, instead of failing until the node catches up.
#[test]
fn an_invocation_of_a_service_the_local_catalog_lacks_yet_runs() {
    run(async {
        let (cluster, lagging) = lagging_catalog(seed_or(205)).await;
        // Both the sender and the target run on the lagging node.
        let (target, _) = key_on(&cluster, "t", |node| node == lagging);
        let (id, envelope) = send_on(&cluster, lagging, &format!("Tally/{target}"));
        assert_eq!(cluster.call(&envelope, &id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        let got = count_reaches(&cluster, "Tally", &target, 1, Duration::from_secs(10)).await;
        assert_eq!(got, Some(1), "seed {}: Tally/{target} did not run", cluster.seed);
        let catalog = cluster.leaders(lagging).catalog().expect("the node's catalog");
        assert!(catalog.service("Tally").is_none(), "seed {}: the node's catalog did not lag", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}
