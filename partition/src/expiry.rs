//! The expiry index: completed invocations by the time their records go.
//!
//! A completed record is kept for its retention (see [`crate::idempotency`])
//! and then removed. Giving each one a durable timer would make a busy
//! partition hold, load and fire one timer — and commit one log entry — per
//! invocation. Instead, finishing an invocation files it in a time-ordered
//! index (`[KIND_EXPIRY][expires at][id]`), and the leader proposes one
//! `Expire` command now and then that removes every record due, up to
//! [`EXPIRE_BATCH`] at a time (`commands/expire.rs`).
//!
//! The index is a queue in an LSM tree: its head is always being deleted.
//! A scan from the start of the kind would step over the tombstones of
//! every entry removed since the last compaction, which grows with traffic.
//! So the index keeps a *floor* (`[KIND_EXPIRY_FLOOR]`): every entry before
//! it is gone, scans start there, and an entry is never filed below it (a
//! record whose expiry is already past is filed at the floor, and goes with
//! the next `Expire`). The floor is part of the state, so every replica
//! files alike.

use crate::error::ApplyError;
use crate::keys;
use crate::model::invocation::{HandlerKind, InvocationKey, InvocationRecord, PURGE_TIMER};
use crate::model::storage::load;
use crate::store::{StateTxn, StateView};

/// Most records one `Expire` command removes: bounds the command's batch
/// (and the time it holds the apply loop) when a backlog is due at once,
/// e.g. after the partition had no leader for a while.
pub const EXPIRE_BATCH: usize = 1024;

/// Index value of a record that goes alone.
const RECORD_ONLY: u8 = 0;
/// Index value of a workflow run's record, whose workflow instance (state
/// and promises) goes with it.
const WITH_INSTANCE: u8 = 1;

/// The index floor: no entry lies before it.
pub(crate) fn floor(view: &impl StateView) -> Result<u64, ApplyError> {
    let key = keys::expiry_floor_key();
    match view.get(&key) {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(ms) => Ok(u64::from_be_bytes(ms)),
            Err(_) => Err(ApplyError::corrupt(key, format!("the expiry floor holds {} bytes, not 8", bytes.len()))),
        },
    }
}

/// Files completed `record` to expire at `expires_at_ms` (or at the floor,
/// if that is later), noting the time in its timers as its purge (which is
/// where [`expires_at`] and [`unfile`] find it).
pub(crate) fn file(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    record: &mut InvocationRecord,
    expires_at_ms: u64,
) -> Result<(), ApplyError> {
    let at = expires_at_ms.max(floor(txn)?);
    let value = match (record.target.kind, &record.target.key) {
        (HandlerKind::Workflow, Some(_)) => WITH_INSTANCE,
        _ => RECORD_ONLY,
    };
    txn.put(keys::expiry_key(at, id), vec![value]);
    record.timers.push((at, PURGE_TIMER));
    Ok(())
}

/// Takes `record`'s entry out of the index (it is purged before it expires).
pub(crate) fn unfile(txn: &mut impl StateTxn, id: &InvocationKey, record: &InvocationRecord) {
    if let Some(at) = expires_at(record) {
        txn.delete(keys::expiry_key(at, id));
    }
}

/// When the first filed record expires, if any is filed: the leader asks
/// this to know whether an `Expire` is due. Reads one entry.
pub fn next_expiry(view: &impl StateView) -> Result<Option<u64>, ApplyError> {
    let first = view.scan_range_limit(&keys::expiries_from(floor(view)?), &keys::expiry_floor_key(), 1);
    Ok(first.first().and_then(|(k, _)| keys::parse_expiry_key(k)).map(|(at, _)| at))
}

/// Removes the records due at `up_to_ms` (at most [`EXPIRE_BATCH`]) and
/// raises the floor past them. Returns how many went and whether more are
/// due.
pub(crate) fn expire(txn: &mut impl StateTxn, up_to_ms: u64) -> Result<(u32, bool), ApplyError> {
    let floor = floor(txn)?;
    let end = keys::expiries_from(up_to_ms.saturating_add(1));
    let due = txn.scan_range_limit(&keys::expiries_from(floor), &end, EXPIRE_BATCH);
    let more = due.len() == EXPIRE_BATCH;
    let mut last = floor;
    for (key, value) in &due {
        let (at, id) = keys::parse_expiry_key(key)
            .ok_or_else(|| ApplyError::corrupt(key.clone(), "an expiry index key of the wrong length"))?;
        txn.delete(key.clone());
        match value.as_slice() {
            [WITH_INSTANCE] => purge(txn, &id)?,
            [RECORD_ONLY] => txn.delete(keys::invocation_key(&id)),
            _ => return Err(ApplyError::corrupt(key.clone(), format!("an expiry index value of {value:?}"))),
        }
        last = at;
    }
    // With the batch full, entries of the last one's time may remain, so
    // the floor stops there; otherwise everything due is gone.
    let new_floor = if more { last } else { up_to_ms.saturating_add(1) };
    if new_floor > floor {
        txn.put(keys::expiry_floor_key(), new_floor.to_be_bytes().to_vec());
    }
    Ok((due.len() as u32, more))
}

/// When a completed invocation's record is purged (filed in the expiry
/// index under this time); `None` while it has not completed.
pub fn expires_at(record: &InvocationRecord) -> Option<u64> {
    record.timers.iter().find(|(_, c)| *c == PURGE_TIMER).map(|(at, _)| *at)
}

/// Forgets an invocation when its retention ends (or an operator purges
/// it): its record, its expiry index entry and any timers left. A workflow
/// run takes its instance with it: the workflow's state and promises were
/// kept for the shared handlers only as long as the run's result.
pub(crate) fn purge(txn: &mut impl StateTxn, id: &InvocationKey) -> Result<(), ApplyError> {
    let Some(record) = load(txn, id)? else { return Ok(()) };
    txn.delete(keys::invocation_key(id));
    txn.delete(keys::running_key(id));
    unfile(txn, id, &record);
    for (fire_at_ms, completion_id) in record.timers.iter().filter(|(_, c)| *c != PURGE_TIMER) {
        txn.delete(keys::timer_key(*fire_at_ms, id, *completion_id));
    }
    if let (HandlerKind::Workflow, Some(key)) = (record.target.kind, &record.target.key) {
        let service = &record.target.service;
        for prefix in [keys::state_prefix(service, key), keys::promises_prefix(service, key)] {
            for (k, _) in txn.scan_prefix(&prefix) {
                txn.delete(k);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
