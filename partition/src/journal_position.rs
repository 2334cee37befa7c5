//! Where a journal append writes, so that no attempt appends what another
//! already did.
//!
//! An attempt replays the journal it loaded and then reports new entries.
//! If it loaded a stale journal, it reports again what is already there:
//! the leader's commit of an earlier attempt's entries timed out, that
//! attempt was retried from the local replica, and the first entries
//! committed after all. Appended twice, a `ctx.run` result or a call
//! would be in the journal twice, with the same completion id, and the
//! next replay would fail with a journal mismatch.
//!
//! So each append says at which position its first entry goes, and apply
//! refuses it when the journal does not end there. The position cannot be
//! the journal length: keel itself appends notifications (call results,
//! fired timers, signals, the ids of calls made) whenever they happen, so
//! a correct attempt cannot know the exact length when it pipelines an
//! append. Positions count only the entries an attempt *produces*: commands
//! (with entry 0, the input, which the attempt also sees) and `ctx.run`
//! results. Nothing but an attempt appends those, so the count an attempt
//! knows (what it loaded plus what it appended) equals the stored count
//! exactly when no other attempt appended in between.
//!
//! The count is stored per invocation under [`keys::produced_key`]; an
//! invocation journaled before keel kept it has its count computed once
//! from its journal.

use crate::error::ApplyError;
use crate::keys;
use crate::model::invocation::{InvocationKey, InvocationRecord};
use crate::model::storage::{entry_code, journal_of};
use crate::store::{StateTxn, StateView};
use keel_protocol::message::{MessageKind, MessageType};

/// Whether a journal entry of type `code` is one an attempt produces
/// (see the module docs).
pub fn is_produced(code: u16) -> bool {
    MessageKind::of_code(code) == MessageKind::Command || code == MessageType::RunCompletionNotification.code()
}

/// How many produced entries the journal of `id` holds.
pub(crate) fn produced(
    view: &impl StateView,
    id: &InvocationKey,
    record: &InvocationRecord,
) -> Result<u32, ApplyError> {
    let key = keys::produced_key(id);
    match view.get(&key) {
        Some(bytes) => {
            let bytes: [u8; 4] = bytes.as_slice().try_into().map_err(|_| ApplyError::corrupt(key, "not a u32"))?;
            Ok(u32::from_be_bytes(bytes))
        }
        None => {
            let journal = journal_of(view, id, record);
            Ok(journal.iter().filter(|e| entry_code(e).is_some_and(is_produced)).count() as u32)
        }
    }
}

/// Stores the count of produced entries of `id`.
pub(crate) fn set_produced(txn: &mut impl StateTxn, id: &InvocationKey, count: u32) {
    txn.put(keys::produced_key(id), count.to_be_bytes().to_vec());
}

/// Forgets the count (the journal is gone).
pub(crate) fn clear_produced(txn: &mut impl StateTxn, id: &InvocationKey) {
    txn.delete(keys::produced_key(id));
}

#[cfg(test)]
mod tests;
