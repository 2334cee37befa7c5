//! `FireTimer`: a durable timer is due.
//!
//! The leader's timer actor proposes it when the time (its clock) has
//! come; apply only trusts the log. Two kinds share the timer keys: a
//! sleep's (journals the sleep's completion) and a delayed invocation's
//! start ([`START_TIMER`]). A third, a completed record's purge
//! ([`PURGE_TIMER`]), is what records completed before the expiry index
//! ([`crate::expiry`]) still carry in stored state; it purges the record.
//! Firing removes the timer key, so a second proposal (a new leader that
//! loaded the timer before the first applied) finds nothing and does
//! nothing: every timer fires once.

use crate::error::ApplyError;
use crate::keys;
use crate::lifecycle::{admit, notify};
use crate::model::invocation::{InvocationKey, PURGE_TIMER, START_TIMER, Status};
use crate::model::outcome::{InvocationOutcome, Outcome};
use crate::model::storage::{frame, load, store};
use crate::store::StateTxn;
use keel_protocol::Message;
use keel_protocol::proto::{SleepCompletionNotificationMessage, Void};

/// Fires the timer `(fire_at_ms, id, completion_id)` if it is still there.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    fire_at_ms: u64,
    id: &InvocationKey,
    completion_id: u32,
    seq: u64,
) -> Result<Outcome, ApplyError> {
    let key = keys::timer_key(fire_at_ms, id, completion_id);
    if txn.get(&key).is_none() {
        // Fired already (a repeated proposal after a leader change).
        return Ok((InvocationOutcome::NotFound, Vec::new()));
    }
    txn.delete(key);
    if completion_id == PURGE_TIMER {
        crate::expiry::purge(txn, id)?;
        return Ok((InvocationOutcome::Completed, Vec::new()));
    }
    if let Some(mut record) = load(txn, id)? {
        record.timers.retain(|t| *t != (fire_at_ms, completion_id));
        if completion_id == START_TIMER {
            if let Status::Scheduled { .. } = record.status {
                return Ok(admit(txn, id, record, seq));
            }
            store(txn, id, &record);
            return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
        }
        store(txn, id, &record);
    }
    let notification = frame(
        id,
        Message::SleepCompletionNotification(SleepCompletionNotificationMessage { completion_id, void: Some(Void {}) }),
    )?;
    notify(txn, id, &notification)
}
