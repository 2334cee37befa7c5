//! The node's attempt slots on the in-process cluster: a deployment whose
//! endpoint never answers holds at most its share of them, so calls to
//! other deployments still run at once. Paused time, seeded
//! (`KEEL_SIM_SEED` overrides the seed).

mod harness;

use harness::{Cluster, call_envelope, poll, run, seed_or};
use std::time::Duration;

#[test]
fn a_hung_deployment_does_not_delay_calls_to_the_others() {
    run(async {
        // One node, so the attempts of every partition share its 4 slots
        // (`--max-concurrent-invocations 4`); a deployment's share is 2.
        let cluster = Cluster::start_with_slots(1, 2, seed_or(301), 4).await;
        cluster.register("hung", harness::sdk::HUNG_MANIFEST).await;
        let leaders = cluster.leaders(1);
        let known = poll(Duration::from_secs(10), || {
            std::future::ready(leaders.catalog().ok().and_then(|c| c.service("Hung").map(|_| ())))
        });
        assert!(known.await.is_some(), "seed {}: Hung is not in the catalog", cluster.seed);
        // More invocations of the endpoint that never answers than the node
        // has slots: those beyond its share wait, holding none.
        let router = cluster.router(1);
        for i in 0..6 {
            let (id, invoke) = call_envelope("Hung", None, "wait", b"", &format!("hung-{i}"), cluster.clock_now());
            let partition = cluster.partition_of(&id);
            let invoked = harness::retry(|| router.propose(partition, invoke.clone())).await;
            assert!(invoked.is_ok(), "seed {}: {invoked:?}", cluster.seed);
        }
        let hung = poll(Duration::from_secs(10), || std::future::ready((cluster.sdk.hung() >= 2).then_some(())));
        assert!(hung.await.is_some(), "seed {}: the hung endpoint got {} attempts", cluster.seed, cluster.sdk.hung());
        // Whatever else could start has started.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (id, add) = call_envelope("Counter", Some("k"), "add", b"", "add", cluster.clock_now());
        let answer =
            tokio::time::timeout(Duration::from_secs(5), cluster.call(&add, &id, Duration::from_secs(5))).await;
        assert_eq!(
            answer.ok().flatten().as_deref(),
            Some(b"1".as_slice()),
            "seed {}: the call to a healthy deployment waited behind the hung one",
            cluster.seed
        );
        assert_eq!(cluster.sdk.hung(), 2, "seed {}: the hung deployment's attempts in flight", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}
