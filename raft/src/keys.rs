//! Where everything lives in the node's single RocksDB.
//!
//! Three column families, each keyed by `[group_id: u32 BE][...]` so one
//! group's data is one contiguous range (cheap range deletes and scans):
//!
//! | CF | key | value |
//! |---|---|---|
//! | `log` | `[group][index: u64 BE]` | a Raft log entry |
//! | `meta` | `[group][kind: u8]` | vote, last purged, applied, membership, snapshot record |
//! | `state` | `[group][partition key…]` | the partition state machine's own keys |
//!
//! Node-wide facts (the cluster's partition count) live in `meta` under the
//! reserved group id [`NODE_GROUP`]. Big-endian integers make byte order
//! equal numeric order. A retired `kind` byte is never reused.

/// Column family of Raft log entries.
pub const CF_LOG: &str = "log";
/// Column family of per-group Raft metadata.
pub const CF_META: &str = "meta";
/// Column family of partition state.
pub const CF_STATE: &str = "state";
/// All column families, in the order they are opened.
pub const ALL_CFS: [&str; 3] = [CF_LOG, CF_META, CF_STATE];

/// Reserved group id for node-wide metadata; never a Raft group.
pub const NODE_GROUP: u32 = u32::MAX;

/// Kinds of keys in `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MetaKind {
    /// The persisted vote.
    Vote = 1,
    // 2 is reserved (was: committed log id, never persisted in a release).
    /// The last purged log id.
    LastPurged = 3,
    /// The last applied log id; written in the same batch as the state.
    Applied = 4,
    /// The last applied membership; written in the same batch as the state.
    Membership = 5,
    /// Retired: the latest snapshot as one value (meta and data), from
    /// before snapshots were files. Never read; deleted with the first
    /// snapshot stored in its place.
    InlineSnapshot = 6,
    /// Node-wide (under [`NODE_GROUP`]): the cluster's partition count.
    PartitionCount = 7,
    /// The current snapshot's metadata; its data is a file named by its id
    /// (see [`crate::snapshot`]).
    Snapshot = 8,
    /// A snapshot install under way: its metadata, written before the
    /// state is replaced and deleted with the switch to it, so a restart
    /// finishes what a crash interrupted.
    SnapshotInstall = 9,
}

/// Key of a log entry.
pub fn log_key(group: u32, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Index of a log key, if it belongs to `group`.
pub fn log_index(group: u32, key: &[u8]) -> Option<u64> {
    if key.len() != 12 || key[..4] != group.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(key[4..].try_into().ok()?))
}

/// Key of a metadata record.
pub fn meta_key(group: u32, kind: MetaKind) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4] = kind as u8;
    k
}

/// Key of a partition-state record.
pub fn state_key(group: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The range `[start, end)` covering all of a group's keys in any CF.
pub fn group_range(group: u32) -> (Vec<u8>, Vec<u8>) {
    let start = group.to_be_bytes().to_vec();
    let end = match group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 5],
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_round_trip_and_sort_numerically() {
        let a = log_key(3, 9);
        let b = log_key(3, 10);
        let c = log_key(4, 0);
        assert!(a < b && b < c);
        assert_eq!(log_index(3, &b), Some(10));
        assert_eq!(log_index(4, &b), None);
    }

    #[test]
    fn meta_and_state_keys_stay_inside_the_group_range() {
        let (start, end) = group_range(7);
        for key in [meta_key(7, MetaKind::Vote).to_vec(), state_key(7, &[0xff; 8]), log_key(7, u64::MAX).to_vec()] {
            assert!(key.as_slice() >= start.as_slice() && key.as_slice() < end.as_slice());
        }
        assert_eq!(meta_key(NODE_GROUP, MetaKind::PartitionCount)[4], 7);
    }
}
