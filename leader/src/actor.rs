//! The leader actor of one term.
//!
//! It first proposes `AnnounceLeader` fenced with its term. When that entry
//! is applied, every entry of earlier terms is applied too, so the
//! partition state the actor sees is complete: only then (on
//! `LeaderReady`) does it resume the invocations, timers and outbox
//! messages the previous leader left. Everything it proposes carries its
//! term, so a deposed actor's late proposals are fenced off by the state
//! machine.

use crate::backoff::Backoff;
use crate::invocations::Invoker;
use crate::lease::Lease;
use crate::partition::Partition;
use crate::timers::Timers;
use keel_partition::invocation::{self, InvocationEffect};
use keel_partition::outbox::{self, OutboxMessage};
use keel_partition::{Command, Effect, Envelope, Response};
use keel_raft::messages::ProposeError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Runs the actor of `term` until it is aborted (the supervisor saw the
/// term end) or its effects stream closes.
pub async fn run(term: u64, partition: Arc<Partition>, mut effects: mpsc::UnboundedReceiver<Vec<Effect>>) {
    let node_id = partition.services.node_id;
    let announce = Envelope::fenced(term, Command::AnnounceLeader { node_id, term });
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        match partition.propose(announce.clone()).await {
            Ok(Response::LeaderAnnounced) => break,
            Ok(Response::Fenced { .. }) | Err(ProposeError::NotLeader { .. }) => {
                // Deposed before the announcement committed; the supervisor
                // stops this actor when it sees the new term.
                return;
            }
            Ok(other) => {
                tracing::error!(partition = partition.id(), "unexpected response to leader announcement: {other:?}");
                return;
            }
            Err(e) => {
                tracing::warn!(partition = partition.id(), term, "leader announcement failed, retrying: {e}");
                backoff.wait().await;
            }
        }
    }
    // Attempts, the outbox shipper and the lease's watcher die with the
    // actor (the JoinSet aborts them when dropped).
    let mut tasks = JoinSet::new();
    let (lease, watcher) = Lease::watch(&partition);
    tasks.spawn(watcher);
    let invoker = Arc::new(Invoker::new(partition.clone(), term, lease));
    let (shipper, queue) = mpsc::unbounded_channel();
    tasks.spawn(crate::outbox::ship(partition.clone(), term, queue));
    // Durable timers of this partition due soon, in firing order; the first
    // window is loaded once the epoch is established.
    let mut timers = Timers::default();
    let mut actor = Actor { partition: &partition, invoker: &invoker, tasks: &mut tasks, shipper: &shipper };
    loop {
        let next_fire = timers.next_wake();
        tokio::select! {
            // Effects before timers: a timer registered by an applied entry
            // is in the window before the actor decides what is due.
            biased;
            // Cancellation-safe: a batch is only removed when this arm runs.
            batch = effects.recv() => {
                let Some(batch) = batch else { return };
                for effect in batch {
                    actor.handle(&mut timers, effect).await;
                }
            }
            // Cancellation-safe: sleeping holds no state.
            _ = sleep_until_ms(&partition, next_fire) => timers.fire_due(&partition, term, actor.tasks).await,
            // Cancellation-safe: a finished task is only taken when this arm runs.
            Some(done) = actor.tasks.join_next(), if !actor.tasks.is_empty() => reap(done),
        }
        // Reap finished tasks so the set does not grow without bound.
        while let Some(done) = actor.tasks.try_join_next() {
            reap(done);
        }
    }
}

/// Takes a finished task of the actor. A panic in one (the outbox shipper,
/// a timer firing; run loops catch their own) would leave its work undone
/// for the rest of the term, so it panics the actor too: the supervisor
/// starts a new actor, which reloads that work from the applied state.
fn reap(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// What the actor's effect handling works on.
struct Actor<'a> {
    partition: &'a Arc<Partition>,
    invoker: &'a Arc<Invoker>,
    tasks: &'a mut JoinSet<()>,
    shipper: &'a mpsc::UnboundedSender<(u64, OutboxMessage)>,
}

impl Actor<'_> {
    async fn handle(&mut self, timers: &mut Timers, effect: Effect) {
        let partition = self.partition;
        match effect {
            Effect::LeaderReady { term } if term == self.invoker.term() => {
                tracing::info!(partition = partition.id(), term, "leader epoch established");
                // Resume what the previous leader left running, and its
                // timers; the scans run off the async workers.
                let (running, pending) =
                    partition.group.read_blocking(|view| (invocation::running(view), outbox::pending(view))).await;
                for id in running {
                    self.tasks.spawn(self.invoker.clone().run(id));
                }
                timers.load(partition, partition.now_ms()).await;
                self.tasks.spawn(crate::expiry::run(partition.clone(), term));
                for message in pending {
                    let _ = self.shipper.send(message);
                }
            }
            Effect::LeaderReady { .. } => {}
            Effect::Invocation(InvocationEffect::Invoke(id)) => {
                fail::fail_point!("leader-actor-panics");
                self.tasks.spawn(self.invoker.clone().run(id));
            }
            Effect::Invocation(InvocationEffect::Notify(id, notification)) => self.invoker.deliver(&id, &notification),
            Effect::Invocation(InvocationEffect::TimerRegistered { fire_at_ms, id, completion_id }) => {
                timers.register((fire_at_ms, id, completion_id));
            }
            Effect::Invocation(InvocationEffect::Completed(id, result)) => partition.waiters.resolve(&id, &result),
            Effect::Invocation(InvocationEffect::Outbox(seq, message)) => {
                let _ = self.shipper.send((seq, message));
            }
            Effect::Invocation(InvocationEffect::Stop(id)) => self.invoker.stop(&id),
        }
    }
}

/// Sleeps until the wall-clock time `at` (ms since the Unix epoch, on the
/// partition's clock); forever if `None`.
async fn sleep_until_ms(partition: &Partition, at: Option<u64>) {
    match at {
        Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(partition.now_ms()))).await,
        None => std::future::pending().await,
    }
}
