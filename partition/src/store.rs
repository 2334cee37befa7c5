//! The storage interface that [`crate::apply`] and [`crate::read`] run against.
//!
//! The traits are deliberately tiny: point reads, ordered prefix and range
//! scans and buffered writes. The `raft` crate implements them over a RocksDB snapshot
//! plus a write batch; [`MemStore`] implements them in memory for tests and
//! for the determinism check.

use std::collections::BTreeMap;

/// Read access to a partition's state.
pub trait StateView {
    /// Returns the value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Returns every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Returns the first `limit` entries with `from <= key < to`, in key order.
    fn scan_range_limit(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Returns every entry with `from <= key < to`, in key order.
    fn scan_range(&self, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.scan_range_limit(from, to, usize::MAX)
    }
}

/// Read-write access used while applying commands. Writes must be visible to
/// later reads of the same transaction (several commands share one batch).
pub trait StateTxn: StateView {
    /// Stores `value` under `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// Removes `key`.
    fn delete(&mut self, key: Vec<u8>);
}

/// An ordered in-memory store. Its [`MemStore::dump`] is the byte-exact state
/// used by the determinism tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    /// All entries, ordered like RocksDB orders them (bytewise).
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    /// Serializes the whole store: length-prefixed keys and values in key order.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            out.extend_from_slice(&(k.len() as u64).to_be_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u64).to_be_bytes());
            out.extend_from_slice(v);
        }
        out
    }
}

impl StateView for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn scan_range_limit(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        self.entries.range(from.to_vec()..to.to_vec()).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl StateTxn for MemStore {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.entries.remove(&key);
    }
}
