//! `Suspend`: a running invocation stops until what it waits for arrives,
//! without sleeping through it.
//!
//! An attempt ends with a `SuspensionMessage` naming what user code waits
//! for: completion ids, signal indexes, signal names (V7 as a tree of
//! futures, V6 as flat lists), as keys ([`awaited_key`]). Between the SDK
//! deciding to suspend and the `Suspend` command being applied,
//! notifications may have been journaled that the SDK never received:
//! delivered after keel closed the stream (inactivity timeout), dropped by
//! a request/response attempt, or arrived while the proposal was in
//! flight. If one of them is awaited, suspending would wait forever, so the
//! invocation is invoked again instead: the next attempt replays it.
//! Restate's simple rule is kept: any awaited leaf that has a notification
//! wakes it (the SDK suspends again if that was not enough).
//!
//! [`awaited_key`]: crate::invocation::awaited_key

use crate::error::ApplyError;
use crate::model::invocation::{InvocationKey, Status, awaited_key};
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{journal, load, store};
use crate::store::StateTxn;
use keel_protocol::message::NotificationId;
use keel_protocol::{Frame, HEADER_LEN, MessageHeader};

/// The id a stored journal entry answers, if it is a notification.
fn notification_of(entry: &[u8]) -> Option<NotificationId> {
    let header = MessageHeader::decode(entry.get(..HEADER_LEN)?.try_into().ok()?);
    let payload = bytes::Bytes::copy_from_slice(&entry[HEADER_LEN..]);
    Frame::new(header.code, header.flags, payload).ok()?.notification_id().ok()?
}

/// Suspends `id` until one of `awaiting` arrives. Entries from
/// `attempt_start` on were journaled while (or after) the suspending
/// attempt ran, so the SDK may not know them: if one of them is awaited,
/// the invocation is invoked again instead. Without a known `awaiting`
/// set, any entry beyond `journal_len_seen` (what the attempt knew) does
/// the same.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    awaiting: &[u32],
    journal_len_seen: u32,
    attempt_start: u32,
) -> Result<Outcome, ApplyError> {
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
mod tests;
