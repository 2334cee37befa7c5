//! Key layout of a partition's state, and the mapping of user keys to partitions.
//!
//! Every key stored by a partition starts with a one-byte *kind*; the storage
//! layer (the `raft` crate) prefixes all of them with the partition's group id.
//! Integers are big-endian so that lexicographic order equals numeric order.
//! Variable-length parts are length-prefixed (u32 BE) so that one object's
//! prefix can never be a prefix of another object's keys. Kinds are never
//! reused once retired.

use xxhash_rust::xxh3::xxh3_64;

/// Index of a partition, `0..partition_count`.
pub type PartitionId = u32;

/// Virtual-object state: `[KIND_STATE][len service][service][len key][key][name]`.
pub const KIND_STATE: u8 = 0x01;
/// The current leader epoch (term) announced to the partition: `[KIND_LEADER_EPOCH]`.
pub const KIND_LEADER_EPOCH: u8 = 0x02;
/// A registered deployment (metadata group only): `[KIND_DEPLOYMENT][id]`.
pub const KIND_DEPLOYMENT: u8 = 0x10;
/// A registered service (metadata group only): `[KIND_SERVICE][name]`.
pub const KIND_SERVICE: u8 = 0x11;

/// An invocation's record: `[KIND_INVOCATION][invocation id: 24 bytes]`.
pub const KIND_INVOCATION: u8 = 0x20;
/// A journal entry: `[KIND_JOURNAL][invocation id][index: u32 BE]`.
pub const KIND_JOURNAL: u8 = 0x21;
/// The exclusive lock of a virtual object or workflow key:
/// `[KIND_LOCK][len service][service][len key][key]` → holding invocation id.
pub const KIND_LOCK: u8 = 0x22;
/// A queued invocation of a locked key:
/// `[KIND_INBOX][len service][service][len key][key][seq: u64 BE]` → invocation id.
pub const KIND_INBOX: u8 = 0x23;

/// A durable timer: `[KIND_TIMER][fire_at ms: u64 BE][invocation id][completion id: u32 BE]`,
/// so a scan yields timers in firing order.
pub const KIND_TIMER: u8 = 0x24;

/// A message waiting to be shipped: `[KIND_OUTBOX][seq: u64 BE]`.
pub const KIND_OUTBOX: u8 = 0x25;

/// A completed workflow promise:
/// `[KIND_PROMISE][len service][service][len key][key][name]`.
pub const KIND_PROMISE: u8 = 0x26;
/// An invocation waiting for a workflow promise:
/// `[KIND_PROMISE_WAITER][len service][service][len key][key][len name][name][invocation id][completion id: u32 BE]`.
pub const KIND_PROMISE_WAITER: u8 = 0x27;
/// How many entries of an invocation's journal its attempts produced
/// (commands and `ctx.run` results), a big-endian u32:
/// `[KIND_PRODUCED][invocation id]`. The position a journal append is
/// checked against ([`crate::journal_position`]).
pub const KIND_PRODUCED: u8 = 0x28;

/// A completed invocation's entry in the expiry index:
/// `[KIND_EXPIRY][expires at ms: u64 BE][invocation id]` → one byte
/// ([`crate::expiry`]), so the records due go first in key order.
pub const KIND_EXPIRY: u8 = 0x29;
/// Where the live part of the expiry index starts (every entry before it
/// was removed): `[KIND_EXPIRY_FLOOR]` → ms, u64 BE.
pub const KIND_EXPIRY_FLOOR: u8 = 0x2A;

/// An invocation in `Invoked` state: `[KIND_RUNNING][invocation id]`. A new
/// leader resumes these without reading every invocation record (completed
/// ones are retained for a while and would make every failover slower).
pub const KIND_RUNNING: u8 = 0x2F;

/// Raft group id of the metadata group, which holds the service catalog
/// (deployments and services) and is replicated on every node. Partition
/// groups use ids `0..partitions`; `u32::MAX` is reserved for node-local
/// records.
pub const METADATA_GROUP: u32 = u32::MAX - 1;

/// Hashes a key's bytes to the stable 64-bit *partition key*.
///
/// xxh3 with the default seed is specified byte-for-byte, so every node, on
/// every platform and Rust release, computes the same value (unlike
/// `std::hash`, whose output is not guaranteed to be stable).
pub fn partition_key(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Maps a partition key to its partition: the 64-bit space is cut into
/// `partition_count` equal, fixed ranges, partition `p` owning
/// `[p * 2^64 / n, (p + 1) * 2^64 / n)`.
pub fn partition_for_key(partition_key: u64, partition_count: u32) -> PartitionId {
    assert!(partition_count > 0, "partition count must be positive");
    ((u128::from(partition_key) * u128::from(partition_count)) >> 64) as PartitionId
}

fn push_len_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).expect("key parts are bounded far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
}

/// The prefix under which all state entries of one virtual object live.
pub fn state_prefix(service: &str, object_key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + service.len() + object_key.len());
    out.push(KIND_STATE);
    push_len_prefixed(&mut out, service.as_bytes());
    push_len_prefixed(&mut out, object_key.as_bytes());
    out
}

/// The key of one named state entry of a virtual object.
pub fn state_key(service: &str, object_key: &str, name: &str) -> Vec<u8> {
    let mut out = state_prefix(service, object_key);
    out.extend_from_slice(name.as_bytes());
    out
}

/// Splits a key produced by [`state_key`] under `prefix` back into its name.
pub fn state_name<'a>(prefix: &[u8], key: &'a [u8]) -> Option<&'a str> {
    key.strip_prefix(prefix).and_then(|n| std::str::from_utf8(n).ok())
}

/// The key of a deployment record.
pub fn deployment_key(id: &str) -> Vec<u8> {
    let mut out = vec![KIND_DEPLOYMENT];
    out.extend_from_slice(id.as_bytes());
    out
}

/// The key of a service record.
pub fn service_key(name: &str) -> Vec<u8> {
    let mut out = vec![KIND_SERVICE];
    out.extend_from_slice(name.as_bytes());
    out
}

/// The key of an invocation record.
pub fn invocation_key(id: &[u8; 24]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.push(KIND_INVOCATION);
    out.extend_from_slice(id);
    out
}

/// Index entry of a running invocation.
pub fn running_key(id: &[u8; 24]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.push(KIND_RUNNING);
    out.extend_from_slice(id);
    out
}

/// The key of an invocation's count of produced journal entries.
pub fn produced_key(id: &[u8; 24]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.push(KIND_PRODUCED);
    out.extend_from_slice(id);
    out
}

/// Where the timers due at `fire_at_ms` start in key order (a range scan
/// between two of these yields the timers of a time window).
pub fn timers_from(fire_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(KIND_TIMER);
    out.extend_from_slice(&fire_at_ms.to_be_bytes());
    out
}

/// The key of a completed invocation's entry in the expiry index.
pub fn expiry_key(expires_at_ms: u64, id: &[u8; 24]) -> Vec<u8> {
    let mut out = expiries_from(expires_at_ms);
    out.extend_from_slice(id);
    out
}

/// Where the expiry index entries of `expires_at_ms` start in key order.
pub fn expiries_from(expires_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(KIND_EXPIRY);
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out
}

/// Splits an [`expiry_key`] into (expiry time, invocation id).
pub fn parse_expiry_key(key: &[u8]) -> Option<(u64, [u8; 24])> {
    if key.len() != 33 || key[0] != KIND_EXPIRY {
        return None;
    }
    Some((u64::from_be_bytes(key[1..9].try_into().ok()?), key[9..33].try_into().ok()?))
}

/// The key of the expiry index's floor.
pub fn expiry_floor_key() -> Vec<u8> {
    vec![KIND_EXPIRY_FLOOR]
}

/// The prefix of an invocation's journal.
pub fn journal_prefix(id: &[u8; 24]) -> Vec<u8> {
    let mut out = Vec::with_capacity(29);
    out.push(KIND_JOURNAL);
    out.extend_from_slice(id);
    out
}

/// The key of one journal entry.
pub fn journal_key(id: &[u8; 24], index: u32) -> Vec<u8> {
    let mut out = journal_prefix(id);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

fn keyed(kind: u8, service: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + service.len() + key.len());
    out.push(kind);
    push_len_prefixed(&mut out, service.as_bytes());
    push_len_prefixed(&mut out, key.as_bytes());
    out
}

/// The lock key of a virtual object or workflow instance.
pub fn lock_key(service: &str, key: &str) -> Vec<u8> {
    keyed(KIND_LOCK, service, key)
}

/// The prefix of a key's inbox; entries follow in `seq` order.
pub fn inbox_prefix(service: &str, key: &str) -> Vec<u8> {
    keyed(KIND_INBOX, service, key)
}

/// The key of one inbox entry.
pub fn inbox_key(service: &str, key: &str, seq: u64) -> Vec<u8> {
    let mut out = inbox_prefix(service, key);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The key of a sleep timer.
pub fn timer_key(fire_at_ms: u64, id: &[u8; 24], completion_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(37);
    out.push(KIND_TIMER);
    out.extend_from_slice(&fire_at_ms.to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&completion_id.to_be_bytes());
    out
}

/// Splits a [`timer_key`] into (fire time, invocation id, completion id).
pub fn parse_timer_key(key: &[u8]) -> Option<(u64, [u8; 24], u32)> {
    if key.len() != 37 || key[0] != KIND_TIMER {
        return None;
    }
    let fire_at = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let id: [u8; 24] = key[9..33].try_into().ok()?;
    let completion = u32::from_be_bytes(key[33..37].try_into().ok()?);
    Some((fire_at, id, completion))
}

/// The prefix of all completed promises of one workflow instance.
pub fn promises_prefix(service: &str, key: &str) -> Vec<u8> {
    keyed(KIND_PROMISE, service, key)
}

/// The key of a completed workflow promise.
pub fn promise_key(service: &str, key: &str, name: &str) -> Vec<u8> {
    let mut out = promises_prefix(service, key);
    out.extend_from_slice(name.as_bytes());
    out
}

/// The prefix of the invocations waiting for one workflow promise.
pub fn promise_waiters_prefix(service: &str, key: &str, name: &str) -> Vec<u8> {
    let mut out = keyed(KIND_PROMISE_WAITER, service, key);
    push_len_prefixed(&mut out, name.as_bytes());
    out
}

/// The key of one invocation waiting for a workflow promise.
pub fn promise_waiter_key(service: &str, key: &str, name: &str, id: &[u8; 24], completion_id: u32) -> Vec<u8> {
    let mut out = promise_waiters_prefix(service, key, name);
    out.extend_from_slice(id);
    out.extend_from_slice(&completion_id.to_be_bytes());
    out
}

/// The key of an outbox message.
pub fn outbox_key(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(KIND_OUTBOX);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The key holding the announced leader epoch.
pub fn leader_epoch_key() -> Vec<u8> {
    vec![KIND_LEADER_EPOCH]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ranges_cover_the_space_evenly() {
        assert_eq!(partition_for_key(0, 8), 0);
        assert_eq!(partition_for_key(u64::MAX, 8), 7);
        assert_eq!(partition_for_key(1u64 << 63, 2), 1);
        assert_eq!(partition_for_key((1u64 << 63) - 1, 2), 0);
        assert_eq!(partition_for_key(u64::MAX, 1), 0);
    }

    #[test]
    fn partition_key_is_stable() {
        // Pinned values: changing the hash would move every key to another partition.
        assert_eq!(partition_key(b""), 0x2d06800538d394c2);
        assert_eq!(partition_key(b"counter-1"), partition_key(b"counter-1"));
        assert_ne!(partition_key(b"a"), partition_key(b"b"));
    }

    #[test]
    fn state_keys_round_trip_and_do_not_alias() {
        let prefix = state_prefix("svc", "k");
        let key = state_key("svc", "k", "count");
        assert_eq!(state_name(&prefix, &key), Some("count"));
        // "svc"/"k1" must not fall under the prefix of "svc"/"k".
        let other = state_key("svc", "k1", "count");
        assert!(!other.starts_with(&prefix));
        assert_eq!(leader_epoch_key(), vec![KIND_LEADER_EPOCH]);
    }

    #[test]
    fn invocation_keys_order_and_do_not_alias() {
        let id = [7u8; 24];
        assert!(journal_key(&id, 9) < journal_key(&id, 10));
        assert!(journal_key(&id, 0).starts_with(&journal_prefix(&id)));
        assert!(inbox_key("Obj", "k", 1) < inbox_key("Obj", "k", 2));
        assert!(!inbox_key("Obj", "k1", 0).starts_with(&inbox_prefix("Obj", "k")));
        assert_ne!(lock_key("Obj", "k")[0], inbox_prefix("Obj", "k")[0]);
        assert_eq!(invocation_key(&id).len(), 25);
        assert!(timer_key(5, &[9; 24], 1) < timer_key(6, &[0; 24], 0));
        assert_eq!(parse_timer_key(&timer_key(7, &id, 3)), Some((7, id, 3)));
        assert!(expiry_key(5, &[9; 24]) < expiry_key(6, &[0; 24]));
        assert!(expiry_key(u64::MAX, &[9; 24]) < expiry_floor_key());
        assert_eq!(parse_expiry_key(&expiry_key(7, &id)), Some((7, id)));
        assert_eq!(parse_expiry_key(&timer_key(7, &id, 3)), None);
    }
}
