//! The leader's side of the expiry index ([`keel_partition::expiry`]):
//! removing completed invocations whose retention ended.
//!
//! Once a second the leader reads the first entry of the index — one read,
//! however many records are filed — and when it is due proposes `Expire`
//! with its clock's time, again at once while the command reports a full
//! batch. Removing records costs a few log entries a second however busy the
//! partition is, where a purge timer per invocation cost a log entry each
//! and a timer in the leader's memory for every record in its window.
//!
//! Nothing here must run exactly once: a deposed leader's `Expire` is fenced,
//! and one that races another removes what is left.

use crate::partition::Partition;
use keel_partition::invocation::InvocationOutcome;
use keel_partition::{Command, Envelope, Response, expiry};
use keel_raft::messages::ProposeError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often the leader looks for records due. Records outlive their
/// retention by up to this much.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Removes the partition's expired records while this leader's `term` lasts
/// (the actor aborts the task when it ends).
pub async fn run(partition: Arc<Partition>, term: u64) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = partition.now_ms();
        if !due(&partition, now).await {
            continue;
        }
        loop {
            match partition.propose(Envelope::fenced(term, Command::Expire { up_to_ms: now })).await {
                Ok(Response::Invocation(InvocationOutcome::Expired { more: true, .. })) => {}
                // Done, or fenced: the supervisor ends this actor then.
                Ok(_) => break,
                Err(ProposeError::NotLeader { .. } | ProposeError::NoSuchGroup(_)) => return,
                Err(e) => {
                    tracing::warn!(partition = partition.id(), "expiring completed invocations failed: {e}");
                    break;
                }
            }
        }
    }
}

/// Whether the first record in the index is due at `now`.
async fn due(partition: &Partition, now: u64) -> bool {
    let first = partition
        .group
        .read_blocking(|view| {
            let first = expiry::next_expiry(view).map_err(|e| e.to_string());
            match view.take_error() {
                Some(e) => Err(e.to_string()),
                None => first,
            }
        })
        .await;
    match first {
        Ok(first) => first.is_some_and(|at| at <= now),
        Err(e) => {
            tracing::warn!(partition = partition.id(), "reading the expiry index failed: {e}");
            false
        }
    }
}
