//! The leader-side supervisor of a partition.
//!
//! It watches the group's Raft metrics: when this node becomes leader in a
//! term, it starts a leader actor ([`crate::actor`]) for that term; when
//! leadership is lost (or a new term begins) it stops the old actor and
//! drops the waiting callers, who retry on the new leader. Effects of
//! applied entries are routed to the running actor; on followers they are
//! dropped (a follower acts on nothing).
//!
//! It also watches the actor itself: an actor that panics, or ends while
//! this node still leads its term, is logged and started again for the
//! same term after a backoff. The new actor announces itself again and, on
//! `LeaderReady`, reloads everything from the applied state (running
//! invocations, timers, outbox), so what the dead actor dropped is picked
//! up. Waiting callers are released meanwhile, as on a leader change: the
//! completions the dead actor would have answered them with are gone, and
//! a retried call attaches to the stored result.

use crate::actor;
use crate::backoff::Backoff;
use crate::panics::caught;
use crate::partition::Partition;
use keel_partition::Effect;
use openraft::ServerState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

struct RunningActor {
    term: u64,
    effects: mpsc::UnboundedSender<Vec<Effect>>,
    task: JoinHandle<()>,
}

impl Drop for RunningActor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Stops a deposed actor: aborting its task aborts its attempts, timers
/// and outbox shipper at their next await.
///
/// The abort is not instant in production either: it takes effect when the
/// actor's task next yields, so a worker thread stalled inside one of its
/// polls (a slow disk read, the process descheduled) lets it go on
/// proposing with its old term, possibly after this node has won a newer
/// one. The state machine's fence makes those proposals no-ops. The
/// failpoint `deposed-actor-lingers` (its value: milliseconds) widens that
/// window for the simulation, which must still find every promise kept.
fn stop(actor: RunningActor) {
    match linger() {
        Some(linger) => {
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                drop(actor);
            });
        }
        None => drop(actor),
    }
}

/// How long failpoint `deposed-actor-lingers` keeps a deposed actor going.
fn linger() -> Option<std::time::Duration> {
    fail::fail_point!("deposed-actor-lingers", |ms: Option<String>| {
        ms.and_then(|ms| ms.parse().ok()).map(std::time::Duration::from_millis)
    });
    None
}

/// Answers every waiting caller when the supervisor ends, however it ends
/// (the group shut down, or the task was aborted or panicked): the callers
/// get a retryable error and try the group's new leader, instead of
/// waiting for an answer nobody will send.
struct ReleaseWaiters(Arc<Partition>);

impl Drop for ReleaseWaiters {
    fn drop(&mut self) {
        self.0.waiters.abandon_all();
    }
}

/// Runs until the group's Raft instance shuts down.
pub async fn supervise(partition: Arc<Partition>, mut effects: mpsc::UnboundedReceiver<Vec<Effect>>) {
    // Declared before the actor, so it is dropped after it: the actor stops
    // first, then its callers are released.
    let _release = ReleaseWaiters(partition.clone());
    let node_id = partition.services.node_id;
    // Server metrics change only with role, vote, leader or membership, not
    // with every commit, so this loop wakes only when leadership may change.
    let mut metrics = partition.group.raft.server_metrics();
    let mut running: Option<RunningActor> = None;
    // Actors report here when they end by themselves (a panic, or a return
    // while still leading); a stopped actor is aborted and reports nothing.
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<(u64, String)>();
    let mut restarts = actor_restarts();
    let mut delay = Duration::ZERO;
    loop {
        let (leading_term, shut_down) = {
            let m = metrics.borrow_and_update();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(node_id);
            (leading.then_some(m.vote.leader_id().get_term()), m.state == ServerState::Shutdown)
        };
        if shut_down {
            return;
        }
        match (leading_term, running.as_ref().map(|a| a.term)) {
            (Some(term), Some(current)) if term == current => {}
            (Some(term), _) => {
                tracing::info!(partition = partition.id(), term, "became leader; starting leader actor");
                if let Some(old) = running.take() {
                    stop(old);
                }
                if delay.is_zero() {
                    // A new term, not a restart: restarts count afresh.
                    restarts = actor_restarts();
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let task =
                    tokio::spawn(watched(term, partition.clone(), rx, std::mem::take(&mut delay), ended_tx.clone()));
                running = Some(RunningActor { term, effects: tx, task });
            }
            (None, Some(term)) => {
                tracing::info!(partition = partition.id(), term, "lost leadership; stopping leader actor");
                if let Some(old) = running.take() {
                    stop(old);
                }
                partition.waiters.abandon_all();
            }
            (None, None) => {}
        }
        tokio::select! {
            // Leadership changes first: effects applied after a step-down
            // must not reach the deposed actor.
            biased;
            // Cancellation-safe: `changed` only marks the watch as seen.
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // Cancellation-safe: a message is only removed when this arm runs.
            batch = effects.recv() => {
                let Some(batch) = batch else { return };
                if let Some(a) = &running {
                    let _ = a.effects.send(batch);
                }
            }
            // Cancellation-safe: as above. The sender lives in this function.
            Some((term, why)) = ended.recv() => {
                if running.as_ref().is_some_and(|a| a.term == term) {
                    delay = restarts.next();
                    tracing::error!(partition = partition.id(), term, "the leader actor {why}; starting it again in {delay:?}");
                    running = None;
                    partition.waiters.abandon_all();
                }
            }
        }
    }
}

/// The pauses before an actor of one term is started again.
fn actor_restarts() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
}

/// Runs the actor of `term` after `delay`, and reports on `ended` how it
/// ended if it ends by itself.
async fn watched(
    term: u64,
    partition: Arc<Partition>,
    effects: mpsc::UnboundedReceiver<Vec<Effect>>,
    delay: Duration,
    ended: mpsc::UnboundedSender<(u64, String)>,
) {
    tokio::time::sleep(delay).await;
    let why = match caught(actor::run(term, partition, effects)).await {
        Ok(()) => "ended while this node still leads its term".to_string(),
        Err(panic) => format!("panicked: {panic}"),
    };
    let _ = ended.send((term, why));
}
