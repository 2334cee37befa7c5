//! The transitions that several commands share: admitting an invocation
//! (lock or inbox), journaling a notification and waking its invocation,
//! finishing an invocation (result, lock release, answers to whoever
//! waits), and registering a waiter.
//!
//! Pure state transitions, like everything in apply: they read and write
//! the transaction and return effects for the leader. The handlers in
//! `commands/` decide *when* to make them; this module only knows how.

use crate::attach::{MAX_ATTACHERS, answer};
use crate::error::ApplyError;
use crate::journal_position;
use crate::keys;
use crate::model::invocation::{Attached, Reply};
use crate::model::invocation::{Caller, InvocationKey, InvocationRecord, InvocationResult, Status};
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{journal_append, load, outbox_seq, push, store};
use crate::store::StateTxn;
use keel_protocol::InvocationId;

/// Starts a new invocation, or queues it in its key's inbox if an exclusive
/// or workflow-run handler must wait for the key's lock. `seq` (the
/// command's log position) orders the inbox, so every replica queues alike.
pub(crate) fn admit(txn: &mut impl StateTxn, id: &InvocationKey, mut record: InvocationRecord, seq: u64) -> Outcome {
    let locked_by_other = match (&record.target.key, record.target.kind.locks()) {
        (Some(key), true) => {
            let lock = keys::lock_key(&record.target.service, key);
            if txn.get(&lock).is_some() {
                true
            } else {
                txn.put(lock, id.to_vec());
                false
            }
        }
        _ => false,
    };
    if locked_by_other {
        let key = record.target.key.as_deref().unwrap_or_default();
        txn.put(keys::inbox_key(&record.target.service, key, seq), id.to_vec());
        record.status = Status::Inboxed { seq };
        store(txn, id, &record);
        return (InvocationOutcome::Inboxed, Vec::new());
    }
    record.status = Status::Invoked;
    store(txn, id, &record);
    (InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(*id)])
}

/// Journals a notification (a completion produced by keel, e.g. a fired
/// timer) and wakes the invocation: a suspended one is invoked again (its
/// next attempt replays the notification), a running one gets it live.
pub(crate) fn notify(txn: &mut impl StateTxn, id: &InvocationKey, notification: &[u8]) -> Result<Outcome, ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    let effect = match record.status {
        Status::Invoked => Some(InvocationEffect::Notify(*id, notification.to_vec())),
        // Any new notification may be what the handler waits for; if not,
        // the SDK simply suspends again.
        Status::Suspended { .. } => Some(InvocationEffect::Invoke(*id)),
        // Journaled for the attempt that follows the resume; wakes nothing.
        Status::Paused => None,
        _ => return Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
    };
    journal_append(txn, id, &mut record, notification.to_vec());
    if effect.is_some() {
        record.status = Status::Invoked;
    }
    let journal_len = record.journal_len;
    store(txn, id, &record);
    Ok((InvocationOutcome::Appended { journal_len }, effect.into_iter().collect()))
}

/// Completes an invocation: records the result, releases its key's lock
/// and starts the next invocation from the key's inbox, and answers its
/// caller and whoever attached (outbox slots 0, then 1…). The journal and
/// pending timers go; the record stays until it expires `retention_ms`
/// after `completed_at_ms` (stamped by the proposer, since apply reads no
/// clock; see [`crate::expiry`]). Also returns the first outbox slot of
/// command `seq` it left free.
pub(crate) fn finish(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    result: &InvocationResult,
    completed_at_ms: u64,
    seq: u64,
) -> Result<(Outcome, usize), ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok(((InvocationOutcome::NotFound, Vec::new()), 0)) };
    if let Status::Completed(_) = record.status {
        return Ok(((InvocationOutcome::NotRunning(record.status), Vec::new()), 0));
    }
    // The journal has served its purpose; the record (with the result) is
    // kept for its retention so that idempotent requests and workflow runs
    // are answered with it and that retried deliveries of the same
    // invocation id (a caller retrying on a new leader) are deduplicated.
    for index in 0..record.journal_len {
        txn.delete(keys::journal_key(id, index));
    }
    journal_position::clear_produced(txn, id);
    for (fire_at_ms, completion_id) in record.timers.drain(..) {
        txn.delete(keys::timer_key(fire_at_ms, id, completion_id));
    }
    let expires_at_ms = completed_at_ms.saturating_add(record.retention_ms);
    crate::expiry::file(txn, id, &mut record, expires_at_ms)?;
    let mut effects = vec![InvocationEffect::Completed(*id, result.clone())];
    if let Some(caller) = &record.caller {
        effects.push(push(txn, outbox_seq(seq, 0), answer(caller, Reply::Call, Some(result))?));
    }
    let mut next_slot = 1;
    for attached in std::mem::take(&mut record.attached) {
        let message = answer(&attached.caller, attached.reply, Some(result))?;
        effects.push(push(txn, outbox_seq(seq, next_slot), message));
        next_slot += 1;
    }
    let was_inboxed = matches!(record.status, Status::Inboxed { .. });
    if let (Some(key), true) = (record.target.key.clone(), record.target.kind.locks()) {
        if let Status::Inboxed { seq } = record.status {
            // Completed (e.g. cancelled) while queued: just leave the inbox.
            txn.delete(keys::inbox_key(&record.target.service, &key, seq));
        }
        let lock = keys::lock_key(&record.target.service, &key);
        if !was_inboxed && txn.get(&lock).as_deref() == Some(id.as_slice()) {
            txn.delete(lock.clone());
            effects.extend(start_next(txn, &record.target.service, &key, &lock)?);
        }
    }
    record.status = Status::Completed(result.clone());
    store(txn, id, &record);
    Ok(((InvocationOutcome::Completed, effects), next_slot))
}

/// Hands the free lock of `service`/`key` to the first inboxed invocation.
fn start_next(
    txn: &mut impl StateTxn,
    service: &str,
    key: &str,
    lock: &[u8],
) -> Result<Vec<InvocationEffect>, ApplyError> {
    let Some((inbox_entry, next)) = txn.scan_prefix(&keys::inbox_prefix(service, key)).into_iter().next() else {
        return Ok(Vec::new());
    };
    let next: InvocationKey = next.as_slice().try_into().map_err(|_| {
        ApplyError::corrupt(inbox_entry.clone(), format!("inbox entry holds {} bytes, not an id", next.len()))
    })?;
    txn.delete(inbox_entry);
    txn.put(lock.to_vec(), next.to_vec());
    let mut record = load(txn, &next)?
        .ok_or_else(|| ApplyError::corrupt(keys::invocation_key(&next), "inboxed invocation has no record"))?;
    record.status = Status::Invoked;
    store(txn, &next, &record);
    Ok(vec![InvocationEffect::Invoke(next)])
}

/// `caller` asks for the result of invocation `target`: answered at once
/// if it has completed (or is unknown: 404, or `reply` is
/// [`Reply::Output`]: "not ready"), else registered and answered when it
/// completes. Registering twice is harmless (a re-shipped request).
pub(crate) fn wait_for(
    txn: &mut impl StateTxn,
    target: &InvocationKey,
    caller: &Caller,
    reply: Reply,
    seq: u64,
) -> Result<Outcome, ApplyError> {
    let answer_now = |txn: &mut _, result: Option<&InvocationResult>| -> Result<_, ApplyError> {
        Ok(vec![push(txn, outbox_seq(seq, 0), answer(caller, reply, result)?)])
    };
    let Some(mut record) = load(txn, target)? else {
        let name = InvocationId::from_bytes(target).map(|id| id.to_string()).unwrap_or_default();
        let not_found = InvocationResult::Failure { code: 404, message: format!("invocation {name} not found") };
        return Ok((InvocationOutcome::NotFound, answer_now(txn, Some(&not_found))?));
    };
    let outcome = InvocationOutcome::Exists(record.status.clone());
    match &record.status {
        Status::Completed(result) => Ok((outcome, answer_now(txn, Some(result))?)),
        _ if reply == Reply::Output => Ok((outcome, answer_now(txn, None)?)),
        _ if record.attached.iter().any(|a| a.caller == *caller) => Ok((outcome, Vec::new())),
        _ if record.attached.len() >= MAX_ATTACHERS => {
            let busy = InvocationResult::Failure {
                code: 429,
                message: format!("more than {MAX_ATTACHERS} invocations wait for this one already"),
            };
            Ok((outcome, answer_now(txn, Some(&busy))?))
        }
        _ => {
            record.attached.push(Attached { caller: caller.clone(), reply });
            store(txn, target, &record);
            Ok((outcome, Vec::new()))
        }
    }
}

#[cfg(test)]
mod tests;
