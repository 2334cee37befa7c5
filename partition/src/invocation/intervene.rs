//! What operators do to invocations (admin API `PATCH /invocations/{id}/…`):
//! cancel, kill (with the child calls it waits on), purge, pause and resume.
//!
//! A paused invocation keeps its journal and its key's lock, but no attempt
//! runs until an operator resumes it. It gets there three ways, all through
//! commands: the leader's retry loop exhausted the retry policy with
//! `on_max_attempts = Pause`, the SDK ended an attempt with an
//! `ErrorMessage` whose behavior is PAUSE, or an operator paused it
//! (`PATCH /invocations/{id}/pause`). Resuming starts a new attempt that
//! replays the journal; it also starts an attempt at once for a suspended
//! invocation, or for a running one whose leader is backing off.

use super::{
    InvocationEffect, InvocationKey, InvocationOutcome, InvocationRecord, InvocationResult, Status, load, notify, store,
};
use crate::store::StateTxn;
use keel_protocol::Message;
use serde::{Deserialize, Serialize};

/// Which deployment a resumed invocation runs on
/// (`PATCH /invocations/{id}/resume?deployment=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeDeployment {
    /// The deployment it is pinned to (the default).
    Keep,
    /// The deployment of the service's latest revision: the pin is dropped,
    /// and the next attempt pins the latest one.
    Latest,
    /// This deployment (checked against the catalog by the admin API).
    Id(String),
}

/// Pauses a running invocation: its attempt in flight is stopped and no
/// new one starts. Anything else answers `NotRunning` with its status (an
/// already paused one included, which the admin API reports as done).
fn pause(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    mut record: InvocationRecord,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    if record.status != Status::Invoked {
        return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
    }
    record.status = Status::Paused;
    store(txn, id, &record);
    Ok((InvocationOutcome::Paused, vec![InvocationEffect::Stop(*id)]))
}

/// Resumes a paused, suspended or backing-off invocation with a new attempt,
/// optionally moving it to another deployment. One that has not started
/// (inboxed) or has completed answers `NotRunning` with its status.
pub fn resume(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    deployment: &ResumeDeployment,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    match record.status {
        Status::Paused | Status::Suspended { .. } | Status::Invoked => {}
        Status::Inboxed { .. } | Status::Scheduled { .. } | Status::Completed(_) => {
            return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
        }
    }
    match deployment {
        ResumeDeployment::Keep => {}
        ResumeDeployment::Latest => record.deployment_id = None,
        ResumeDeployment::Id(d) => record.deployment_id = Some(d.clone()),
    }
    record.status = Status::Invoked;
    store(txn, id, &record);
    Ok((InvocationOutcome::Resumed, vec![InvocationEffect::Invoke(*id)]))
}

/// What an operator asked for (admin API `PATCH /invocations/{id}/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intervention {
    /// Graceful: a running invocation gets the CANCEL signal (its user code
    /// sees a terminal "cancelled" error and may clean up); a queued one
    /// completes at once with 409 "canceled".
    Cancel,
    /// Immediate: completes with 409 "killed" without running user code.
    Kill,
    /// Forget a completed invocation (record and result).
    Purge,
    /// Stop a running invocation until it is resumed ([`Status::Paused`]).
    Pause,
}

/// Applies an [`Intervention`]. Completed invocations can only be purged;
/// only completed ones can be.
pub fn intervene(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    what: Intervention,
    completed_at_ms: u64,
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    let completed = matches!(record.status, Status::Completed(_));
    match what {
        Intervention::Purge if !completed => Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
        Intervention::Purge => {
            crate::idempotency::purge(txn, id)?;
            Ok((InvocationOutcome::Completed, Vec::new()))
        }
        _ if completed => Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
        Intervention::Pause => pause(txn, id, record),
        Intervention::Cancel if !matches!(record.status, Status::Inboxed { .. } | Status::Scheduled { .. }) => {
            // Cancelled once only, whoever asks (operator, parent invocation) and however often.
            let key = crate::outbox::SIGNAL_KEY | keel_protocol::ids::CANCEL_SIGNAL_INDEX;
            if record.delivered.contains(&key) {
                return Ok((InvocationOutcome::Exists(record.status), Vec::new()));
            }
            let mut record = record;
            record.delivered.push(key);
            store(txn, id, &record);
            let cancel = Message::SignalNotification(keel_protocol::proto::SignalNotificationMessage {
                signal_id: Some(keel_protocol::proto::signal_notification_message::SignalId::Idx(
                    keel_protocol::ids::CANCEL_SIGNAL_INDEX,
                )),
                result: Some(keel_protocol::proto::signal_notification_message::Result::Void(
                    keel_protocol::proto::Void {},
                )),
            });
            let frame = cancel.to_frame(keel_protocol::Flags::NONE).map_err(|e| e.to_string())?;
            notify(txn, id, &frame.to_bytes())
        }
        Intervention::Cancel | Intervention::Kill => {
            let message = if what == Intervention::Kill { "killed" } else { "canceled" };
            let result = InvocationResult::Failure { code: 409, message: message.into() };
            // A kill takes the call tree along (as Restate's does): read the
            // children before completing deletes the journal.
            let children = match what {
                Intervention::Kill => crate::outbox::pending_calls(&super::journal(txn, id)),
                _ => Vec::new(),
            };
            let ((outcome, mut effects), free_slot) = super::finish(txn, id, &result, completed_at_ms, seq)?;
            effects.push(InvocationEffect::Stop(*id));
            for (i, child) in children.into_iter().enumerate() {
                let message = crate::outbox::OutboxMessage::Kill { id: child };
                effects.push(crate::outbox::push(txn, super::outbox_seq(seq, free_slot + i), message));
            }
            Ok((outcome, effects))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;
    use crate::invocation::tests::{id, record};
    use crate::invocation::{HandlerKind, invoke, journal};

    #[test]
    fn paused_invocations_keep_notifications_and_resume_with_a_new_attempt() {
        let mut s = MemStore::default();
        invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
        let (outcome, effects) = intervene(&mut s, &id(1), Intervention::Pause, 99, 2).unwrap();
        assert_eq!(outcome, InvocationOutcome::Paused);
        assert_eq!(effects, vec![InvocationEffect::Stop(id(1))]);
        assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Paused);
        // Pausing again changes nothing and says so.
        let (outcome, effects) = intervene(&mut s, &id(1), Intervention::Pause, 99, 3).unwrap();
        assert_eq!(outcome, InvocationOutcome::NotRunning(Status::Paused));
        assert!(effects.is_empty());
        // A notification is journaled but wakes nothing.
        let (outcome, effects) = notify(&mut s, &id(1), b"signal").unwrap();
        assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
        assert!(effects.is_empty());
        assert_eq!(journal(&s, &id(1)), vec![b"input".to_vec(), b"signal".to_vec()]);
        assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Paused);
        // Resume with the latest deployment drops the pin and starts an attempt.
        crate::invocation::pin_deployment(&mut s, &id(1), "dp_old").unwrap();
        let (outcome, effects) = resume(&mut s, &id(1), &ResumeDeployment::Latest).unwrap();
        assert_eq!(outcome, InvocationOutcome::Resumed);
        assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
        let resumed = load(&s, &id(1)).unwrap().unwrap();
        assert_eq!((resumed.status, resumed.deployment_id), (Status::Invoked, None));
        let (_, _) = resume(&mut s, &id(1), &ResumeDeployment::Id("dp_new".into())).unwrap();
        assert_eq!(load(&s, &id(1)).unwrap().unwrap().deployment_id.as_deref(), Some("dp_new"));
    }

    #[test]
    fn only_started_unfinished_invocations_pause_or_resume() {
        let mut s = MemStore::default();
        assert_eq!(resume(&mut s, &id(9), &ResumeDeployment::Keep).unwrap().0, InvocationOutcome::NotFound);
        invoke(&mut s, &id(1), record(HandlerKind::Exclusive, Some("k")), b"in", 1).unwrap();
        invoke(&mut s, &id(2), record(HandlerKind::Exclusive, Some("k")), b"in", 2).unwrap();
        // Inboxed behind the lock: neither pause nor resume applies.
        let inboxed = Status::Inboxed { seq: 2 };
        assert_eq!(
            intervene(&mut s, &id(2), Intervention::Pause, 99, 3).unwrap().0,
            InvocationOutcome::NotRunning(inboxed.clone())
        );
        assert_eq!(resume(&mut s, &id(2), &ResumeDeployment::Keep).unwrap().0, InvocationOutcome::NotRunning(inboxed));
        // Killing a running invocation stops its attempt; a completed one does not resume.
        let (_, effects) = intervene(&mut s, &id(1), Intervention::Kill, 99, 4).unwrap();
        assert!(effects.contains(&InvocationEffect::Stop(id(1))));
        let killed = Status::Completed(InvocationResult::Failure { code: 409, message: "killed".into() });
        assert_eq!(resume(&mut s, &id(1), &ResumeDeployment::Keep).unwrap().0, InvocationOutcome::NotRunning(killed));
        // Killing released the key's lock: the inboxed one runs now.
        assert_eq!(load(&s, &id(2)).unwrap().unwrap().status, Status::Invoked);
    }
}
