//! Reading and writing the records of [`crate::model`] under their keys
//! ([`crate::keys`]).
//!
//! Every read that decodes goes through here, so a value that does not
//! decode becomes an [`ApplyError::Corrupt`] naming the key it was read
//! from. The writers keep the secondary indexes (the running index, timer
//! keys, the outbox) in step with the records.

use crate::codec::{decode, encode};
use crate::error::ApplyError;
use crate::keys;
use crate::model::invocation::{InvocationKey, InvocationRecord, Status};
use crate::model::message::OutboxMessage;
use crate::model::outcome::InvocationEffect;
use crate::store::{StateTxn, StateView};
use keel_protocol::Message;
use serde::de::DeserializeOwned;

/// Reads and decodes the value under `key`.
pub(crate) fn get<T: DeserializeOwned>(view: &impl StateView, key: Vec<u8>) -> Result<Option<T>, ApplyError> {
    match view.get(&key) {
        None => Ok(None),
        Some(bytes) => decode(&bytes).map(Some).map_err(|reason| ApplyError::corrupt(key, reason)),
    }
}

/// Reads an invocation record.
pub fn load(view: &impl StateView, id: &InvocationKey) -> Result<Option<InvocationRecord>, ApplyError> {
    get(view, keys::invocation_key(id))
}

/// Stores `record`, keeping the running index in step with its status (the
/// index entry is written only when that changes, not on every append).
pub(crate) fn store(txn: &mut impl StateTxn, id: &InvocationKey, record: &InvocationRecord) {
    txn.put(keys::invocation_key(id), encode(record));
    let index = keys::running_key(id);
    match (record.status == Status::Invoked, txn.get(&index).is_some()) {
        (true, false) => txn.put(index, Vec::new()),
        (false, true) => txn.delete(index),
        _ => {}
    }
}

/// Reads an invocation's journal, in order.
pub fn journal(view: &impl StateView, id: &InvocationKey) -> Vec<Vec<u8>> {
    view.scan_prefix(&keys::journal_prefix(id)).into_iter().map(|(_, v)| v).collect()
}

/// Reads the journal of `record`, whose length it knows: a short one (as
/// most are when an attempt starts) with point reads, which cost less than
/// setting up a scan.
pub fn journal_of(view: &impl StateView, id: &InvocationKey, record: &InvocationRecord) -> Vec<Vec<u8>> {
    if record.journal_len > 8 {
        return journal(view, id);
    }
    (0..record.journal_len).map_while(|index| view.get(&keys::journal_key(id, index))).collect()
}

/// Appends `entry` to the journal of `record`.
pub(crate) fn journal_append(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    record: &mut InvocationRecord,
    entry: Vec<u8>,
) {
    txn.put(keys::journal_key(id, record.journal_len), entry);
    record.journal_len += 1;
}

/// The message type code of a stored journal entry (header and payload),
/// read from its header alone; `None` if it has no header.
pub(crate) fn entry_code(entry: &[u8]) -> Option<u16> {
    use keel_protocol::{HEADER_LEN, MessageHeader};
    Some(MessageHeader::decode(entry.get(..HEADER_LEN)?.try_into().ok()?).code)
}

/// Decodes a stored journal entry (header and payload); `None` if it does not decode.
pub(crate) fn decode_entry(entry: &[u8]) -> Option<Message> {
    let code = entry_code(entry)?;
    Message::decode_payload(code, bytes::Bytes::copy_from_slice(&entry[keel_protocol::HEADER_LEN..])).ok()
}

/// Ids of all invocations in `Invoked` state (a new leader resumes them),
/// from the running index.
pub fn running(view: &impl StateView) -> Vec<InvocationKey> {
    view.scan_prefix(&[keys::KIND_RUNNING]).into_iter().filter_map(|(k, _)| k.get(1..)?.try_into().ok()).collect()
}

/// Registers a durable timer of invocation `id` in `record` and under its
/// timer key, and tells the leader to arm it.
pub(crate) fn add_timer(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    record: &mut InvocationRecord,
    fire_at_ms: u64,
    completion_id: u32,
) -> InvocationEffect {
    txn.put(keys::timer_key(fire_at_ms, id, completion_id), Vec::new());
    record.timers.push((fire_at_ms, completion_id));
    InvocationEffect::TimerRegistered { fire_at_ms, id: *id, completion_id }
}

/// The timers due in `[from_ms, to_ms)`, in firing order: (fire time,
/// invocation, completion id). The leader loads them a time window at a time.
pub fn timers(view: &impl StateView, from_ms: u64, to_ms: u64) -> Vec<(u64, InvocationKey, u32)> {
    view.scan_range(&keys::timers_from(from_ms), &keys::timers_from(to_ms))
        .into_iter()
        .filter_map(|(k, _)| keys::parse_timer_key(&k))
        .collect()
}

/// Outbox sequence number of the `i`-th message of the command with
/// sequence `seq` (a command has 1024 outbox slots): derived from the log
/// position, so every replica stores a message under the same key.
pub(crate) fn outbox_seq(seq: u64, i: usize) -> u64 {
    (seq << 10) | (i as u64 & 0x3ff)
}

/// Stores `message` in the outbox under `seq` and tells the leader.
pub fn push(txn: &mut impl StateTxn, seq: u64, message: OutboxMessage) -> InvocationEffect {
    txn.put(keys::outbox_key(seq), encode(&message));
    InvocationEffect::Outbox(seq, message)
}

/// Every message in the outbox, in order.
pub fn pending(view: &impl StateView) -> Vec<(u64, OutboxMessage)> {
    view.scan_prefix(&[keys::KIND_OUTBOX])
        .into_iter()
        .filter_map(|(k, v)| {
            let seq = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
            let message = decode(&v).ok()?;
            Some((seq, message))
        })
        .collect()
}

/// Encodes `message` as a journal entry or notification of invocation `id`.
pub(crate) fn frame(id: &InvocationKey, message: Message) -> Result<Vec<u8>, ApplyError> {
    let frame = message.to_frame(keel_protocol::Flags::NONE).map_err(|source| ApplyError::Frame { id: *id, source })?;
    Ok(frame.to_bytes().to_vec())
}
