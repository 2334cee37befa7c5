//! `Intervene`: what operators do to invocations (admin API
//! `PATCH /invocations/{id}/…`): cancel, kill (with the child calls it
//! waits on), purge, pause.
//!
//! A paused invocation keeps its journal and its key's lock, but no attempt
//! runs until an operator resumes it (`commands/resume.rs`). It gets there
//! three ways, all through commands: the leader's retry loop exhausted the
//! retry policy with `on_max_attempts = Pause`, the SDK ended an attempt
//! with an `ErrorMessage` whose behavior is PAUSE, or an operator paused it.

use crate::error::ApplyError;
use crate::lifecycle::{finish, notify};
use crate::model::invocation::{Intervention, InvocationKey, InvocationRecord, InvocationResult, SIGNAL_KEY, Status};
use crate::model::message::OutboxMessage;
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{frame, journal, load, outbox_seq, push, store};
use crate::store::StateTxn;
use keel_protocol::Message;
use keel_protocol::ids::CANCEL_SIGNAL_INDEX;
use keel_protocol::proto::{SignalNotificationMessage, Void, signal_notification_message};

/// Applies an [`Intervention`]. Completed invocations can only be purged;
/// only completed ones can be.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    what: Intervention,
    completed_at_ms: u64,
    seq: u64,
) -> Result<Outcome, ApplyError> {
    let Some(record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    let completed = matches!(record.status, Status::Completed(_));
    match what {
        Intervention::Purge if !completed => Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
        Intervention::Purge => {
            crate::expiry::purge(txn, id)?;
            Ok((InvocationOutcome::Completed, Vec::new()))
        }
        _ if completed => Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
        Intervention::Pause => Ok(pause(txn, id, record)),
        Intervention::Cancel if !matches!(record.status, Status::Inboxed { .. } | Status::Scheduled { .. }) => {
            cancel(txn, id, record)
        }
        Intervention::Cancel | Intervention::Kill => {
            let message = if what == Intervention::Kill { "killed" } else { "canceled" };
            let result = InvocationResult::Failure { code: 409, message: message.into() };
            // A kill takes the call tree along (as Restate's does): read the
            // children before completing deletes the journal.
            let children = match what {
                Intervention::Kill => crate::outbox::pending_calls(&journal(txn, id)),
                _ => Vec::new(),
            };
            let ((outcome, mut effects), free_slot) = finish(txn, id, &result, completed_at_ms, seq)?;
            effects.push(InvocationEffect::Stop(*id));
            for (i, child) in children.into_iter().enumerate() {
                let message = OutboxMessage::Kill { id: child };
                effects.push(push(txn, outbox_seq(seq, free_slot + i), message));
            }
            Ok((outcome, effects))
        }
    }
}

/// Pauses a running invocation: its attempt in flight is stopped and no
/// new one starts. Anything else answers `NotRunning` with its status (an
/// already paused one included, which the admin API reports as done).
fn pause(txn: &mut impl StateTxn, id: &InvocationKey, mut record: InvocationRecord) -> Outcome {
    if record.status != Status::Invoked {
        return (InvocationOutcome::NotRunning(record.status), Vec::new());
    }
    record.status = Status::Paused;
    store(txn, id, &record);
    (InvocationOutcome::Paused, vec![InvocationEffect::Stop(*id)])
}

/// Journals the CANCEL signal for a started invocation, once, whoever asks
/// (operator, parent invocation) and however often: its user code sees a
/// terminal "cancelled" error and may clean up.
fn cancel(txn: &mut impl StateTxn, id: &InvocationKey, mut record: InvocationRecord) -> Result<Outcome, ApplyError> {
    let key = SIGNAL_KEY | CANCEL_SIGNAL_INDEX;
    if record.delivered.contains(&key) {
        return Ok((InvocationOutcome::Exists(record.status), Vec::new()));
    }
    record.delivered.push(key);
    store(txn, id, &record);
    let cancel = Message::SignalNotification(SignalNotificationMessage {
        signal_id: Some(signal_notification_message::SignalId::Idx(CANCEL_SIGNAL_INDEX)),
        result: Some(signal_notification_message::Result::Void(Void {})),
    });
    notify(txn, id, &frame(id, cancel)?)
}

#[cfg(test)]
mod tests;
