//! The leader lease: a leader acts on the outside world only while a
//! quorum has recently acknowledged it.
//!
//! openraft 0.9 has no check-quorum: a leader cut off from its followers
//! stays leader of its term until it hears of a newer one. Its proposals
//! cannot commit, so nothing wrong becomes durable, but an attempt it runs
//! still reaches the SDK, whose side effects (an email, a payment) happen
//! outside the log, every time an attempt is retried. So the invocation
//! run loops ask the lease first: a leader whose last quorum
//! acknowledgement (openraft's `millis_since_quorum_ack`) is older than
//! the minimum election timeout starts no attempt until a quorum answers
//! again. By then the followers may have elected another leader, which is
//! who should act.
//!
//! An attempt already in flight goes on: the SDK waits for each `ctx.run`
//! result to be stored before it goes past it, and without a quorum
//! nothing is stored, so the attempt does no further side effect. Ending
//! it would only throw away the result of the step it is in, which would
//! then run again, although a quorum back within the commit timeout
//! (followers paused for a second) would have stored it.
//!
//! One watcher per leader term samples the metric every heartbeat interval
//! and publishes only changes, so the run loops waiting for the lease are
//! woken when it is regained, not on every metrics update.

use crate::partition::Partition;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Whether this term's leader holds its lease (see the module docs).
#[derive(Clone)]
pub struct Lease(watch::Receiver<bool>);

impl Lease {
    /// The lease of `partition`'s leader, and the watcher that keeps it
    /// current; the watcher runs until the lease's receivers are gone (the
    /// actor and its attempts stopped).
    pub fn watch(partition: &Arc<Partition>) -> (Lease, impl Future<Output = ()> + Send + 'static) {
        let raft = partition.group.raft.clone();
        let length_ms = raft.config().election_timeout_min;
        let interval = Duration::from_millis(raft.config().heartbeat_interval.max(1));
        let held = move || raft.data_metrics().borrow().millis_since_quorum_ack.is_some_and(|ms| ms < length_ms);
        let (tx, rx) = watch::channel(held());
        let watcher = async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !tx.is_closed() {
                tick.tick().await;
                tx.send_if_modified(|was| std::mem::replace(was, held()) != *was);
            }
        };
        (Lease(rx), watcher)
    }

    /// Whether the lease is held now.
    pub fn held(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the lease is held.
    pub async fn acquired(&self) {
        let mut rx = self.0.clone();
        // An error means the watcher is gone: the actor is stopping.
        let _ = rx.wait_for(|held| *held).await;
    }
}
