//! openraft's `RaftLogStorage` over the shared RocksDB: one instance per group.

use crate::db::{Cf, Db, Op};
use crate::keys::{self, MetaKind};
use crate::types::{TypeConfig, decode, encode, typ};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError};
use rocksdb::{Direction, IteratorMode};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The Raft log of one group. Cheap to clone (it is also its own reader).
#[derive(Clone)]
pub struct LogStore {
    group: u32,
    db: Arc<Db>,
    committed: Arc<CommittedIndex>,
}

/// The group's last committed index as openraft reports it to the log store
/// (openraft's metrics do not carry it); shown in `/cluster` and `/metrics`.
#[derive(Debug, Default)]
pub struct CommittedIndex(AtomicU64);

impl CommittedIndex {
    /// The last committed index, if any entry was committed.
    pub fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }

    fn set(&self, committed: Option<typ::LogId>) {
        self.0.store(committed.map_or(0, |l| l.index.saturating_add(1)), Ordering::Relaxed);
    }
}

impl LogStore {
    /// The log of `group` in `db`.
    pub fn new(group: u32, db: Arc<Db>) -> Self {
        LogStore { group, db, committed: Arc::default() }
    }

    /// Shared handle to the group's committed index.
    pub fn committed(&self) -> Arc<CommittedIndex> {
        self.committed.clone()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, kind: MetaKind) -> Result<Option<T>, typ::StorageError> {
        let bytes = self.db.get_meta(self.group, kind).map_err(|e| StorageIOError::read(&e))?;
        bytes.map(|b| decode(&b).map_err(|e| StorageIOError::read(&e).into())).transpose()
    }

    fn last_entry_id(&self) -> Result<Option<typ::LogId>, typ::StorageError> {
        let upper = keys::log_key(self.group, u64::MAX);
        // The lower bound keeps a group whose log is entirely purged from
        // stepping back over the purged entries into the previous group.
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_lower_bound(keys::log_key(self.group, 0));
        let mut iter =
            self.db.raw().iterator_cf_opt(self.db.cf(Cf::Log), options, IteratorMode::From(&upper, Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                if keys::log_index(self.group, &key).is_none() {
                    return Ok(None);
                }
                let entry: typ::Entry = decode(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }

    async fn write_durable(&self, ops: Vec<Op>) -> Result<(), typ::StorageError> {
        self.db.write_durable(ops).await.map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

fn put_meta<T: serde::Serialize>(group: u32, kind: MetaKind, value: &T) -> Result<Op, typ::StorageError> {
    let bytes = encode(value).map_err(|e| StorageIOError::write(&e))?;
    Ok(Op::Put(Cf::Meta, keys::meta_key(group, kind).to_vec(), bytes))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<typ::Entry>, typ::StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = keys::log_key(self.group, start);
        // Without an upper bound, reading up to the group's last entry makes
        // RocksDB step on into the next group's keys and over every entry
        // that group purged (a range tombstone hides them, but the iterator
        // still walks them until compaction drops them): this was half of
        // keel's CPU under load.
        let end = match range.end_bound() {
            Bound::Included(i) => i.checked_add(1).map(|e| keys::log_key(self.group, e)),
            Bound::Excluded(i) => Some(keys::log_key(self.group, *i)),
            Bound::Unbounded => None,
        };
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(end.unwrap_or_else(|| keys::log_key(self.group, u64::MAX)));
        let iter =
            self.db.raw().iterator_cf_opt(self.db.cf(Cf::Log), options, IteratorMode::From(&from, Direction::Forward));
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let Some(index) = keys::log_index(self.group, &key) else { break };
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, typ::StorageError> {
        let last_purged_log_id: Option<typ::LogId> = self.read_meta(MetaKind::LastPurged)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &typ::Vote) -> Result<(), typ::StorageError> {
        let op = put_meta(self.group, MetaKind::Vote, vote)?;
        self.db.write_durable(vec![op]).await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<typ::Vote>, typ::StorageError> {
        self.read_meta(MetaKind::Vote)
    }

    async fn save_committed(&mut self, committed: Option<typ::LogId>) -> Result<(), typ::StorageError> {
        // Kept in memory only (for `/cluster` and metrics): persisting it
        // would cost a write per commit, and openraft re-learns the committed
        // index from the leader after a restart.
        self.committed.set(committed);
        Ok(())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), typ::StorageError>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for entry in entries {
            let bytes = encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            ops.push(Op::Put(Cf::Log, keys::log_key(self.group, entry.log_id.index).to_vec(), bytes));
        }
        self.db
            .submit(ops, Box::new(move |r| callback.log_io_completed(r)))
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        let from = keys::log_key(self.group, log_id.index).to_vec();
        let to = keys::group_range(self.group).1;
        self.write_durable(vec![Op::DeleteRange(Cf::Log, from, to)]).await
    }

    async fn purge(&mut self, log_id: typ::LogId) -> Result<(), typ::StorageError> {
        // Record the purge point first (same batch), so a crash can never
        // leave a hole that `get_log_state` would not know about.
        let mark = put_meta(self.group, MetaKind::LastPurged, &log_id)?;
        let from = keys::log_key(self.group, 0).to_vec();
        let to = keys::log_key(self.group, log_id.index.saturating_add(1)).to_vec();
        self.write_durable(vec![mark, Op::DeleteRange(Cf::Log, from, to)]).await
    }
}
