//! The leader-side supervisor of a partition.
//!
//! It watches the group's Raft metrics: when this node becomes leader in a
//! term, it starts a leader actor for that term; when leadership is lost (or
//! a new term begins) it stops the old actor. Effects of applied entries are
//! routed to the running actor; on followers they are dropped.
//!
//! The actor first proposes `AnnounceLeader` fenced with its term. When that
//! entry is applied, every entry of earlier terms is applied too, so the
//! partition state the actor sees is complete: only then does it start work
//! (later issues hang the invoker, timers and outbox here). Everything it
//! proposes carries its term, so a deposed actor's late proposals are fenced
//! off by the state machine.

use crate::groups::{Group, ProposeError};
use crate::invocations::{Invoker, now_ms};
use crate::state_machine::GroupView;
use crate::timers::Timers;
use keel_partition::invocation::{self, InvocationEffect};
use keel_partition::outbox::{self, OutboxMessage};
use keel_partition::{Command, Effect, Envelope, Response};
use openraft::ServerState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

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

/// Runs until the group's Raft instance shuts down.
pub async fn supervise(node_id: u64, group: Arc<Group>, mut effects: mpsc::UnboundedReceiver<Vec<Effect>>) {
    // Server metrics change only with role, vote, leader or membership, not
    // with every commit, so this loop wakes only when leadership may change.
    let mut metrics = group.raft.server_metrics();
    let mut actor: Option<RunningActor> = None;
    loop {
        let (leading_term, shut_down) = {
            let m = metrics.borrow_and_update();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(node_id);
            (leading.then_some(m.vote.leader_id().get_term()), m.state == ServerState::Shutdown)
        };
        if shut_down {
            return;
        }
        match (leading_term, actor.as_ref().map(|a| a.term)) {
            (Some(term), Some(running)) if term == running => {}
            (Some(term), _) => {
                tracing::info!(partition = group.id, term, "became leader; starting leader actor");
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(run_actor(node_id, term, group.clone(), rx));
                actor = Some(RunningActor { term, effects: tx, task });
            }
            (None, Some(term)) => {
                tracing::info!(partition = group.id, term, "lost leadership; stopping leader actor");
                actor = None;
                group.waiters.abandon_all();
            }
            (None, None) => {}
        }
        tokio::select! {
            // Cancellation-safe: `changed` only marks the watch as seen.
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // Cancellation-safe: a message is only removed when this arm runs.
            batch = effects.recv() => {
                let Some(batch) = batch else { return };
                if let Some(a) = &actor {
                    let _ = a.effects.send(batch);
                }
            }
        }
    }
}

/// The leader actor of one term.
async fn run_actor(node_id: u64, term: u64, group: Arc<Group>, mut effects: mpsc::UnboundedReceiver<Vec<Effect>>) {
    let announce = Envelope::fenced(term, Command::AnnounceLeader { node_id, term });
    let mut backoff = Duration::from_millis(50);
    loop {
        match group.propose(announce.clone()).await {
            Ok(Response::LeaderAnnounced) => break,
            Ok(Response::Fenced { .. }) | Err(ProposeError::NotLeader { .. }) => {
                // Deposed before the announcement committed; the supervisor
                // stops this actor when it sees the new term.
                return;
            }
            Ok(other) => {
                tracing::error!(partition = group.id, "unexpected response to leader announcement: {other:?}");
                return;
            }
            Err(e) => {
                tracing::warn!(partition = group.id, term, "leader announcement failed, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    let invoker = Arc::new(Invoker::new(group.clone(), term));
    // Attempts and the outbox shipper die with the actor (the JoinSet aborts
    // them when dropped).
    let mut attempts = JoinSet::new();
    let (shipper, queue) = mpsc::unbounded_channel();
    attempts.spawn(crate::outbox::ship(group.clone(), term, queue));
    // Durable timers of this partition due soon, in firing order; the first
    // window is loaded once the epoch is established.
    let mut timers = Timers::default();
    loop {
        let next_fire = timers.next_wake();
        tokio::select! {
            // Cancellation-safe: a batch is only removed when this arm runs.
            batch = effects.recv() => {
                let Some(batch) = batch else { return };
                for effect in batch {
                    handle_effect(&group, &invoker, &mut attempts, &mut timers, &shipper, effect);
                }
            }
            // Cancellation-safe: sleeping holds no state.
            _ = sleep_until_ms(next_fire) => timers.fire_due(&group, term, &mut attempts),
        }
        // Reap finished attempts so the set does not grow without bound.
        while attempts.try_join_next().is_some() {}
    }
}

fn handle_effect(
    group: &Arc<Group>,
    invoker: &Arc<Invoker>,
    attempts: &mut JoinSet<()>,
    timers: &mut Timers,
    shipper: &mpsc::UnboundedSender<(u64, OutboxMessage)>,
    effect: Effect,
) {
    match effect {
        Effect::LeaderReady { term } if term == invoker.term() => {
            tracing::info!(partition = group.id, term, "leader epoch established");
            // Resume what the previous leader left running, and its timers.
            let view = GroupView::new(&group.db, group.id);
            for id in invocation::running(&view) {
                attempts.spawn(invoker.clone().run(id));
            }
            timers.load(group, now_ms());
            for message in outbox::pending(&view) {
                let _ = shipper.send(message);
            }
        }
        Effect::LeaderReady { .. } => {}
        Effect::Invocation(InvocationEffect::Invoke(id)) => {
            attempts.spawn(invoker.clone().run(id));
        }
        Effect::Invocation(InvocationEffect::Notify(id, notification)) => invoker.deliver(&id, &notification),
        Effect::Invocation(InvocationEffect::TimerRegistered { fire_at_ms, id, completion_id }) => {
            timers.register((fire_at_ms, id, completion_id));
        }
        Effect::Invocation(InvocationEffect::Completed(id, result)) => group.waiters.resolve(&id, &result),
        Effect::Invocation(InvocationEffect::Outbox(seq, message)) => {
            let _ = shipper.send((seq, message));
        }
        Effect::Invocation(InvocationEffect::Stop(id)) => invoker.stop(&id),
    }
}

/// Sleeps until the wall-clock time `at` (ms since the Unix epoch); forever if `None`.
async fn sleep_until_ms(at: Option<u64>) {
    match at {
        Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
        None => std::future::pending().await,
    }
}
