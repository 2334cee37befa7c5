//! Panics in the leader runtime's loops, injected through failpoints: each
//! is caught, logged and followed by a new loop, and the work goes on.
//!
//! The failpoints are process-wide, so the tests of this file take turns.

mod harness;

use harness::{Cluster, call_envelope, run, seed_or};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(300);

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes failpoint `name` panic the first time it is reached; returns how
/// often it was reached.
fn panic_once(name: &str) -> Arc<AtomicU32> {
    let reached = Arc::new(AtomicU32::new(0));
    let counter = reached.clone();
    let message = format!("injected by failpoint {name}");
    fail::cfg_callback(name, move || {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("{message}");
        }
    })
    .expect("a valid failpoint");
    reached
}

/// The run loop of a counter call panics before its first attempt: the
/// loop is started again and the call completes, counted once.
#[test]
fn a_run_loop_that_panics_runs_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reached = panic_once("run-loop-panics");
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(201)).await;
        let (id, add) = call_envelope("Counter", Some("p"), "add", b"", "once", cluster.clock_now());
        let out = cluster.call(&add, &id, BUDGET).await;
        assert_eq!(out.as_deref(), Some(b"1".as_slice()), "seed {}", cluster.seed);
        assert!(reached.load(Ordering::SeqCst) >= 2, "seed {}: the run loop did not run again", cluster.seed);
        assert_eq!(cluster.counter("p").await, Some(1), "seed {}", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
    fail::remove("run-loop-panics");
}

/// The leader actor panics while it handles a new invocation: the
/// supervisor starts a new actor for the same term, which resumes the
/// invocation from the applied state, and the call completes once.
#[test]
fn a_leader_actor_that_panics_is_started_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reached = panic_once("leader-actor-panics");
    run(async {
        let cluster = Cluster::start(3, 2, seed_or(202)).await;
        let (id, add) = call_envelope("Counter", Some("a"), "add", b"", "once", cluster.clock_now());
        let partition = cluster.partition_of(&id);
        let leader = cluster.leader(partition).await;
        let out = cluster.call(&add, &id, BUDGET).await;
        assert_eq!(out.as_deref(), Some(b"1".as_slice()), "seed {}", cluster.seed);
        assert!(reached.load(Ordering::SeqCst) >= 1, "seed {}: the failpoint was not reached", cluster.seed);
        assert_eq!(cluster.leader(partition).await, leader, "seed {}: the restart changed the leader", cluster.seed);
        assert_eq!(cluster.counter("a").await, Some(1), "seed {}", cluster.seed);
        assert_eq!(cluster.sdk.violations(), Vec::<String>::new(), "seed {}", cluster.seed);
    });
    fail::remove("leader-actor-panics");
}
