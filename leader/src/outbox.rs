//! The leader's outbox shipper: delivers the partition's outbox messages
//! (new invocations from calls and sends, call results back to callers,
//! attaches, kills of child calls) to the partitions that apply them,
//! through the router, then removes them.
//!
//! Messages travel in *lanes*, one per receiving partition. A lane ships
//! one message at a time, in the order the messages reach the shipper
//! (outbox order), retrying each with a backoff until it is delivered; the
//! lanes ship concurrently. So a partition without a leader or a quorum
//! holds up only the messages to it, while calls and results to every other
//! partition go on, and the messages to one partition still arrive in the
//! order they were written (a call's result before a later message to the
//! same caller, say).
//!
//! Delivery is at least once (a message may be re-shipped after a crash or a
//! leader change, before its removal was committed); the receivers make it
//! exactly once: `Invoke` deduplicates by the derived invocation id,
//! `Deliver` by the caller's completion id, `Attach` by the waiting
//! invocation and completion id.
//!
//! A delayed one-way send is shipped at once too, as a *scheduled*
//! invocation: the target partition stores it and starts it with a durable
//! timer, exactly like a delayed send from the ingress.

use crate::backoff::Backoff;
use crate::partition::Partition;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use keel_partition::outbox::OutboxMessage;
use keel_partition::{Command, Envelope};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod deliver;

/// Ships messages from `queue` until the leader actor stops (this task is
/// aborted with it, and its lanes with it); the next leader reloads what was
/// not removed.
pub async fn ship(partition: Arc<Partition>, term: u64, mut queue: mpsc::UnboundedReceiver<(u64, OutboxMessage)>) {
    let mut lanes = Lanes::default();
    // One future per busy lane: its head message, until delivered and removed.
    let mut shipping = FuturesUnordered::new();
    loop {
        tokio::select! {
            // Deterministic order, so a seed replays (and a free lane takes
            // its next message before more are queued behind it).
            biased;
            // Cancellation-safe: a finished shipment is only taken when this arm runs.
            Some(target) = shipping.next() => {
                if let Some((seq, message)) = lanes.next(target) {
                    shipping.push(ship_and_remove(partition.clone(), term, target, seq, message));
                }
            }
            // Cancellation-safe: a message is only taken when this arm runs.
            received = queue.recv() => {
                let Some((seq, message)) = received else { return };
                let target = deliver::partition_of(&partition, message.recipient());
                if let Some((seq, message)) = lanes.push(target, (seq, message)) {
                    shipping.push(ship_and_remove(partition.clone(), term, target, seq, message));
                }
            }
        }
    }
}

/// Delivers `message` (to partition `target`), retrying until it is, then
/// removes it from the outbox; returns `target`, whose lane is free again.
async fn ship_and_remove(partition: Arc<Partition>, term: u64, target: u32, seq: u64, message: OutboxMessage) -> u32 {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    while let Err(e) = deliver::ship_one(&partition, &message).await {
        tracing::warn!(
            partition = partition.id(),
            target,
            seq,
            "shipping an outbox message failed, retrying in {:?}: {e}",
            backoff.delay()
        );
        backoff.wait().await;
    }
    // If this fails the message stays and is shipped again later, which the
    // receiver deduplicates.
    let _ = partition.propose(Envelope::fenced(term, Command::OutboxDone { seq })).await;
    target
}

/// The messages per receiving partition that wait behind the one in flight.
struct Lanes<T> {
    /// A partition is here exactly while a message to it is in flight.
    waiting: HashMap<u32, VecDeque<T>>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes { waiting: HashMap::new() }
    }
}

impl<T> Lanes<T> {
    /// Queues `message` for partition `target`, or hands it back if that
    /// lane is free: it is then in flight, to be shipped at once.
    fn push(&mut self, target: u32, message: T) -> Option<T> {
        match self.waiting.get_mut(&target) {
            Some(queue) => {
                queue.push_back(message);
                None
            }
            None => {
                self.waiting.insert(target, VecDeque::new());
                Some(message)
            }
        }
    }

    /// The message in flight to `target` was delivered: the next one to
    /// ship there, now in flight; `None` frees the lane.
    fn next(&mut self, target: u32) -> Option<T> {
        let next = self.waiting.get_mut(&target).and_then(VecDeque::pop_front);
        if next.is_none() {
            self.waiting.remove(&target);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::Lanes;

    #[test]
    fn a_lane_ships_one_message_at_a_time_in_order() {
        let mut lanes = Lanes::default();
        assert_eq!(lanes.push(0, "a1"), Some("a1"), "a free lane ships at once");
        assert_eq!(lanes.push(0, "a2"), None, "behind the one in flight");
        assert_eq!(lanes.push(0, "a3"), None);
        assert_eq!(lanes.next(0), Some("a2"));
        assert_eq!(lanes.push(0, "a4"), None, "still busy with a2");
        assert_eq!(lanes.next(0), Some("a3"));
        assert_eq!(lanes.next(0), Some("a4"));
        assert_eq!(lanes.next(0), None, "drained: the lane is free");
        assert_eq!(lanes.push(0, "a5"), Some("a5"));
    }

    #[test]
    fn a_busy_lane_does_not_hold_up_another() {
        let mut lanes = Lanes::default();
        assert_eq!(lanes.push(0, "a1"), Some("a1"));
        assert_eq!(lanes.push(0, "a2"), None);
        // Partition 0 never answers; partition 1's messages flow.
        assert_eq!(lanes.push(1, "b1"), Some("b1"));
        assert_eq!(lanes.push(1, "b2"), None);
        assert_eq!(lanes.next(1), Some("b2"));
        assert_eq!(lanes.next(1), None);
        assert_eq!(lanes.push(1, "b3"), Some("b3"));
        // Partition 0 comes back: its queue is intact, in order.
        assert_eq!(lanes.next(0), Some("a2"));
        assert_eq!(lanes.next(0), None);
    }
}
