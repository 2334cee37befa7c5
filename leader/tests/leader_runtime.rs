//! The leader runtime on the in-process cluster, one failure at a time:
//! each test runs in paused time on its own seed (`KEEL_SIM_SEED`
//! overrides it) and checks that the failure costs nothing but time.

mod harness;

use harness::{Cluster, call_envelope, run, seed_or};
use keel_partition::invocation::Intervention;
use keel_partition::wait::WaitPolicy;
use keel_partition::{Command, Envelope, Query, QueryResult, Response, StateMap, partition_for_key, partition_key};
use keel_raft::db::Cf;
use keel_raft::leader_calls::LeaderCalls;
use keel_raft::messages::ProposeError;
use keel_raft::router::RouteError;
use std::sync::Arc;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(300);

/// The count of counter `key`, once it can be read.
async fn count(cluster: &Cluster, key: &str) -> u64 {
    let count = harness::poll(Duration::from_secs(60), || cluster.counter(key)).await;
    count.unwrap_or_else(|| panic!("seed {}: counter {key} unreadable", cluster.seed))
}

#[test]
fn a_leader_change_during_an_invocation_completes_it_once() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(101)).await);
        let (id, envelope) = call_envelope("Sleeper", None, "nap", b"2000", "nap", cluster.clock_now());
        let leader = cluster.leader(cluster.partition_of(&id)).await;
        let call = tokio::spawn({
            let cluster = cluster.clone();
            async move { cluster.call(&envelope, &id, BUDGET).await }
        });
        // The nap is running (suspended, waiting for its timer) when its leader dies.
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.crash(leader).await;
        assert_eq!(call.await.expect("call task").as_deref(), Some(b"woke".as_slice()), "seed {}", cluster.seed);
        assert_ne!(cluster.leader(cluster.partition_of(&id)).await, leader);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}

#[test]
fn a_deposed_leaders_late_proposal_is_fenced() {
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(102)).await;
        let old = cluster.leader(0).await;
        let old_term = cluster.registry(old).and_then(|r| r.group(0).map(|g| g.raft.metrics().borrow().current_term));
        let old_term = old_term.expect("the leader's term");
        cluster.net.isolate(&[old], &cluster.ids());
        let new = harness::poll(Duration::from_secs(30), || {
            let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
            std::future::ready(others.into_iter().find(|id| {
                cluster.registry(*id).and_then(|r| r.group(0).map(|g| g.raft.metrics().borrow().current_leader))
                    == Some(Some(*id))
            }))
        })
        .await
        .expect("a new leader among the majority");
        // What the old leader's actor would still propose, stamped with its term.
        let state: StateMap = [("count".to_string(), b"999".to_vec())].into();
        let late = Envelope::fenced(
            old_term,
            Command::SetState {
                service: "Counter".into(),
                object_key: "k".into(),
                new_state: state,
                expected_version: None,
            },
        );
        let router = cluster.router(new);
        let answer = harness::retry(|| router.propose(0, late.clone())).await;
        assert!(matches!(answer, Ok(Response::Fenced { .. })), "seed {}: {answer:?}", cluster.seed);
        cluster.net.heal();
        let query = Query::GetState { service: "Counter".into(), object_key: "k".into() };
        let state = harness::retry(|| router.read(0, &query)).await;
        assert!(
            matches!(&state, Ok(QueryResult::State { state, .. }) if state.is_empty()),
            "seed {}: {state:?}",
            cluster.seed
        );
    });
}

#[test]
fn a_timer_fires_once_after_failover() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(103)).await);
        let (id, envelope) = call_envelope("Sleeper", None, "nap", b"5000", "nap", cluster.clock_now());
        let leader = cluster.leader(cluster.partition_of(&id)).await;
        let call = tokio::spawn({
            let cluster = cluster.clone();
            async move { cluster.call(&envelope, &id, BUDGET).await }
        });
        // Just before the timer is due, its leader dies; the new one loads it.
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        cluster.crash(leader).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.restart(leader).await;
        assert_eq!(call.await.expect("call task").as_deref(), Some(b"woke".as_slice()), "seed {}", cluster.seed);
        // The SDK saw exactly one completion, and not before the wake-up time.
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}

#[test]
fn an_outbox_message_is_delivered_once_across_a_leader_change() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(104)).await);
        let (id, envelope) = call_envelope("Sender", None, "send", b"target", "send", cluster.clock_now());
        let sender_leader = cluster.leader(cluster.partition_of(&id)).await;
        assert_eq!(cluster.call(&envelope, &id, BUDGET).await.as_deref(), Some(b"sent".as_slice()));
        // The send's outbox message may not be shipped (or removed) yet.
        cluster.crash(sender_leader).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        cluster.restart(sender_leader).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(count(&cluster, "target").await, 1, "seed {}", cluster.seed);
    });
}

#[test]
fn a_commit_timeout_does_not_apply_a_call_twice() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(105)).await);
        let (id, envelope) = call_envelope("Counter", Some("k"), "add", b"", "once", cluster.clock_now());
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        // The leader loses its followers while the call's entries are proposed:
        // its proposals time out (5 s) and the call is retried elsewhere.
        cluster.net.isolate(&[leader], &cluster.ids());
        let call = tokio::spawn({
            let cluster = cluster.clone();
            async move { cluster.call(&envelope, &id, BUDGET).await }
        });
        tokio::time::sleep(Duration::from_secs(8)).await;
        cluster.net.heal();
        assert_eq!(call.await.expect("call task").as_deref(), Some(b"1".as_slice()), "seed {}", cluster.seed);
        assert_eq!(count(&cluster, "k").await, 1, "seed {}", cluster.seed);
    });
}

#[test]
fn a_step_whose_commit_timed_out_runs_once() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(106)).await);
        let (id, envelope) = call_envelope("Runner", None, "step", b"", "step", cluster.clock_now());
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        let call = tokio::spawn({
            let cluster = cluster.clone();
            async move { cluster.call(&envelope, &id, BUDGET).await }
        });
        // Once the invocation runs (its first attempt is starting)...
        assert!(cluster.holds_invocation(leader, &id).await, "seed {}: the invocation never started", cluster.seed);
        // ...the followers store what the leader sends, but their answers
        // are lost: the leader keeps its term and cannot commit. The step's
        // entries time out (5 s), and commit in the same term after all.
        for follower in cluster.ids().into_iter().filter(|n| *n != leader) {
            cluster.net.mute(follower);
        }
        tokio::time::sleep(Duration::from_secs(12)).await;
        cluster.net.heal();
        let answer = call.await.expect("call task");
        assert_eq!(answer.as_deref(), Some(b"1".as_slice()), "seed {}", cluster.seed);
        assert_eq!(cluster.sdk.executions(&id.to_string()), 1, "seed {}: the step ran again", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
}

#[test]
fn a_waiting_caller_is_released_when_its_leader_shuts_down() {
    run(async {
        let cluster = Arc::new(Cluster::start(3, 2, seed_or(107)).await);
        let (id, envelope) = call_envelope("Sleeper", None, "nap", b"60000", "long", cluster.clock_now());
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        let leaders = cluster.leaders(leader);
        let call = tokio::spawn(async move { leaders.call(partition, envelope, WaitPolicy::UNBOUNDED).await });
        assert!(cluster.holds_invocation(leader, &id).await, "seed {}: the nap never started", cluster.seed);
        // The node stops while the caller waits for a result due in a minute.
        cluster.crash(leader).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(
            matches!(answer, Ok(Ok(Err(ProposeError::NotLeader { .. })))),
            "seed {}: the caller was not told to retry elsewhere: {answer:?}",
            cluster.seed
        );
    });
}

/// A command that cannot be applied to the stored state (here: an
/// invocation record corrupted on every replica, as a bug could leave it)
/// stops its partition on every replica at the same entry. Each node
/// reports why, naming the command, in its health and its status, and
/// refuses the partition's requests at once; the node itself keeps
/// running, and its other partition goes on serving.
#[test]
fn a_failed_apply_stops_only_its_partition() {
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(108)).await;
        let now = cluster.clock_now();
        let (id, _) = call_envelope("Counter", Some("broken"), "add", b"", "corrupt", now);
        let partition = cluster.partition_of(&id);
        let record_key = keel_raft::keys::state_key(partition, &keel_partition::keys::invocation_key(&id.to_bytes()));
        for node in cluster.ids() {
            let registry = cluster.registry(node).expect("a running node");
            let db = registry.db();
            db.raw().put_cf(db.cf(Cf::State), &record_key, b"\xff not a record").expect("a raw write");
        }
        let kill = Command::Intervene { id: id.to_bytes(), what: Intervention::Kill, completed_at_ms: now };
        let leader = cluster.leader(partition).await;
        let answer = cluster.router(leader).propose(partition, Envelope::client(kill)).await;
        assert!(answer.is_err(), "seed {}: the corrupt record was applied: {answer:?}", cluster.seed);
        for node in cluster.ids() {
            let registry = cluster.registry(node).expect("a running node");
            let health = registry.db().health().clone();
            let failure =
                harness::poll(Duration::from_secs(10), || std::future::ready(health.group_failure(partition)))
                    .await
                    .unwrap_or_else(|| panic!("seed {}: node {node} did not stop partition {partition}", cluster.seed));
            assert!(failure.contains("intervene") && failure.contains("corrupt"), "node {node}: {failure}");
            let status = registry.status().into_iter().find(|g| g.id == partition).expect("a hosted partition");
            assert_eq!(status.failure.as_deref(), Some(failure.as_str()), "node {node}");
            assert_eq!(health.problems(), vec![format!("partition {partition} stopped: {failure}")], "node {node}");
        }
        let read = Query::Invocation(id.to_bytes());
        match cluster.router(leader).read(partition, &read).await {
            Err(RouteError::Unavailable { reason, .. }) => assert!(reason.contains("stopped"), "{reason}"),
            other => panic!("seed {}: a read of the stopped partition answered {other:?}", cluster.seed),
        }
        let other_key =
            (0..).map(|i| format!("k{i}")).find(|k| partition_for_key(partition_key(k.as_bytes()), 2) != partition);
        let other_key = other_key.expect("a key of the other partition");
        let (id, add) = call_envelope("Counter", Some(&other_key), "add", b"", "after", now);
        assert!(cluster.call(&add, &id, BUDGET).await.is_some(), "seed {}: the other partition stopped", cluster.seed);
        assert_eq!(count(&cluster, &other_key).await, 1);
    });
}

/// A leader that has lost its quorum but not its term (its followers hear
/// it, their answers are lost) starts no attempts: each attempt of
/// `Runner/flaky` does something outside the journal and fails, so without
/// the lease the retries would repeat that side effect every backoff. It
/// runs while the quorum answers, never while it does not (a minute, in
/// which the retry policy would have tried several times), and again once
/// the quorum is back.
#[test]
fn a_leader_without_a_quorum_starts_no_attempts() {
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(109)).await;
        let (id, invoke) = call_envelope("Runner", None, "flaky", b"", "flaky", cluster.clock_now());
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        let router = cluster.router(leader);
        harness::retry(|| router.propose(partition, invoke.clone())).await.expect("invoked");
        let runs = || cluster.sdk.executions(&id.to_string());
        let retried = harness::poll(Duration::from_secs(30), || std::future::ready((runs() >= 2).then_some(()))).await;
        assert!(retried.is_some(), "seed {}: the attempts were not retried", cluster.seed);

        for follower in cluster.ids().into_iter().filter(|n| *n != leader) {
            cluster.net.mute(follower);
        }
        // An attempt under way, if any, ends (a flaky one fails within its
        // think time); the lease (300 ms) runs out meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = runs();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(runs(), before, "seed {}: attempts ran without a quorum", cluster.seed);
        let group = cluster.registry(leader).and_then(|r| r.group(partition).cloned()).expect("the leader's replica");
        assert_eq!(group.raft.metrics().borrow().current_leader, Some(leader), "seed {}: deposed", cluster.seed);

        cluster.net.heal();
        let resumed =
            harness::poll(Duration::from_secs(120), || std::future::ready((runs() > before).then_some(()))).await;
        assert!(resumed.is_some(), "seed {}: no attempt once the quorum was back", cluster.seed);
    });
}
