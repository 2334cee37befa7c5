//! Suspending a running invocation, without sleeping through what it waits for.
//!
//! An attempt ends with a `SuspensionMessage` naming what user code waits
//! for: completion ids, signal indexes, signal names (V7 as a tree of
//! futures, V6 as flat lists). Between the SDK deciding to suspend and the
//! `Suspend` command being applied, notifications may have been journaled
//! that the SDK never received: delivered after keel closed the stream
//! (inactivity timeout), dropped by a request/response attempt, or arrived
//! while the proposal was in flight. If one of them is awaited, suspending
//! would wait forever, so the invocation is invoked again instead: the next
//! attempt replays it. Restate's simple rule is kept: any awaited leaf that
//! has a notification wakes it (the SDK suspends again if that was not enough).

use super::{InvocationEffect, InvocationKey, InvocationOutcome, Status, journal, load, store};
use crate::outbox::{NAMED_SIGNAL_KEY, SIGNAL_KEY};
use crate::store::StateTxn;
use keel_protocol::message::NotificationId;
use keel_protocol::{Frame, HEADER_LEN, MessageHeader};

/// The key of an awaited notification in [`Status::Suspended`]: completion
/// ids as they are, signal indexes with [`SIGNAL_KEY`], signal names as
/// [`NAMED_SIGNAL_KEY`] with 30 bits of the name's hash (a collision only
/// costs a spurious attempt).
pub fn awaited_key(id: &NotificationId) -> u32 {
    match id {
        NotificationId::Completion(c) => *c,
        NotificationId::Signal(s) => SIGNAL_KEY | s,
        NotificationId::SignalName(name) => {
            NAMED_SIGNAL_KEY | (xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32 & 0x3fff_ffff)
        }
    }
}

/// The id a stored journal entry answers, if it is a notification.
fn notification_of(entry: &[u8]) -> Option<NotificationId> {
    let header = MessageHeader::decode(entry.get(..HEADER_LEN)?.try_into().ok()?);
    let payload = bytes::Bytes::copy_from_slice(&entry[HEADER_LEN..]);
    Frame::new(header.code, header.flags, payload).ok()?.notification_id().ok()?
}

/// Suspends a running invocation until one of `awaiting` (keys as in
/// [`awaited_key`]) arrives. Entries from `attempt_start` on were journaled
/// while (or after) the suspending attempt ran, so the SDK may not know
/// them: if one of them is awaited, the invocation is invoked again
/// instead. Without a known `awaiting` set, any entry beyond
/// `journal_len_seen` (what the attempt knew) does the same.
pub fn suspend(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    awaiting: &[u32],
    journal_len_seen: u32,
    attempt_start: u32,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    if record.status != Status::Invoked {
        return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
    }
    let arrived = if awaiting.is_empty() {
        record.journal_len > journal_len_seen
    } else {
        journal(txn, id)
            .iter()
            .skip(attempt_start as usize)
            .filter_map(|entry| notification_of(entry))
            .any(|n| awaiting.contains(&awaited_key(&n)))
    };
    if arrived {
        return Ok((InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(*id)]));
    }
    record.status = Status::Suspended { awaiting: awaiting.to_vec() };
    store(txn, id, &record);
    Ok((InvocationOutcome::Suspended, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;
    use crate::invocation::tests::{id, record};
    use crate::invocation::{HandlerKind, invoke, notify};
    use keel_protocol::proto::{
        SignalNotificationMessage, SleepCompletionNotificationMessage, Void, signal_notification_message,
    };
    use keel_protocol::{Flags, Message};

    fn frame(message: Message) -> Vec<u8> {
        message.to_frame(Flags::NONE).unwrap().to_bytes().to_vec()
    }

    fn sleep_done(completion_id: u32) -> Vec<u8> {
        frame(Message::SleepCompletionNotification(SleepCompletionNotificationMessage {
            completion_id,
            void: Some(Void {}),
        }))
    }

    fn named(name: &str) -> Vec<u8> {
        frame(Message::SignalNotification(SignalNotificationMessage {
            signal_id: Some(signal_notification_message::SignalId::Name(name.into())),
            result: Some(signal_notification_message::Result::Void(Void {})),
        }))
    }

    #[test]
    fn an_awaited_notification_the_attempt_may_have_missed_invokes_again() {
        let mut s = MemStore::default();
        invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
        // Journaled while the attempt (which started with 1 entry) ran.
        notify(&mut s, &id(1), &sleep_done(4)).unwrap();
        notify(&mut s, &id(1), &named("go")).unwrap();
        let go = awaited_key(&NotificationId::SignalName("go".into()));
        // Waiting for something else: suspended, even though the attempt "saw" less.
        assert_eq!(suspend(&mut s, &id(1), &[7, SIGNAL_KEY | 17], 1, 1).unwrap().0, InvocationOutcome::Suspended);
        crate::invocation::resume(&mut s, &id(1), &crate::invocation::ResumeDeployment::Keep).unwrap();
        // Waiting for completion 4 or the signal "go": both are there.
        for awaiting in [vec![4], vec![go]] {
            let (outcome, effects) = suspend(&mut s, &id(1), &awaiting, 3, 1).unwrap();
            assert_eq!((outcome, effects), (InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(id(1))]));
        }
        // Known to the attempt from its start: not new.
        assert_eq!(suspend(&mut s, &id(1), &[4, go], 3, 3).unwrap().0, InvocationOutcome::Suspended);
        assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Suspended { awaiting: vec![4, go] });
    }

    #[test]
    fn without_an_awaiting_set_any_unseen_entry_invokes_again() {
        let mut s = MemStore::default();
        invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
        notify(&mut s, &id(1), &sleep_done(4)).unwrap();
        assert_eq!(suspend(&mut s, &id(1), &[], 1, 1).unwrap().0, InvocationOutcome::Invoked);
        assert_eq!(suspend(&mut s, &id(1), &[], 2, 1).unwrap().0, InvocationOutcome::Suspended);
    }
}
