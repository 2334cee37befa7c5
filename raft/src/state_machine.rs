//! openraft's `RaftStateMachine` for a partition: a thin adapter that runs
//! [`keel_partition::apply`] over RocksDB and writes the resulting state in
//! one batch together with the applied log id and membership, so a restart
//! resumes exactly where the durable state ends.
//!
//! Three rules keep replicas identical and restarts exact:
//!
//! - **One batch per apply call.** openraft hands over a run of committed
//!   entries; their commands run through an [`Overlay`] (so a command sees
//!   the writes of the commands before it) and everything they wrote goes
//!   to RocksDB in one write batch with the new applied log id. A crash
//!   leaves either all of it or none of it.
//! - **The log is the durable copy.** That batch is not fsynced: entries
//!   are durable in the log before they are applied, and after a crash the
//!   entries past the stored applied id are applied again, from the same
//!   state, to the same result.
//! - **Effects leave only after the write.** Work the entries ask for (run
//!   an attempt, answer a caller) goes to the leader runtime once the state
//!   it refers to is written, so an actor never acts on state it cannot
//!   read back. Followers produce the same effects; their supervisor drops
//!   them.
//!
//! Snapshots are the group's whole key range read from one RocksDB
//! snapshot, so the state, the applied id and the membership in it agree.

use crate::db::{Cf, Db, Op, fill_batch};
use crate::keys::{self, MetaKind};
use crate::metrics::RaftMetricsSet;
use crate::types::{TypeConfig, decode, encode, typ};
use keel_partition::{Effect, RecordMeta, Response, StateTxn, StateView};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Where the effects of applied entries go, one batch per apply call:
/// the group's leader-side supervisor, which passes them to the actor of
/// the current term (or drops them on a follower).
pub type EffectSender = mpsc::UnboundedSender<Vec<Effect>>;

/// The state machine of one partition group.
pub struct StateMachine {
    group: u32,
    db: Arc<Db>,
    effects: EffectSender,
    metrics: Arc<RaftMetricsSet>,
    /// Bumped after every write to the state (the metadata group's feeds
    /// the node's catalog cache); `None` where nobody listens.
    changes: Option<Arc<AtomicU64>>,
}

/// A snapshot as stored and shipped: the partition's keys (without the group
/// prefix) and values, in key order.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The stored latest snapshot of a group.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: typ::SnapshotMeta,
    data: Vec<u8>,
}

impl StateMachine {
    /// The state machine of `group`; applied effects go to `effects`.
    pub fn new(group: u32, db: Arc<Db>, effects: EffectSender, metrics: Arc<RaftMetricsSet>) -> Self {
        StateMachine { group, db, effects, metrics, changes: None }
    }

    /// Bump `changes` after every applied batch and installed snapshot.
    pub fn notify_changes(mut self, changes: Arc<AtomicU64>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// Tells the listener, if any, that the state changed.
    fn changed(&self) {
        if let Some(c) = &self.changes {
            c.fetch_add(1, Ordering::Release);
        }
    }

    /// Reads and decodes one of the group's metadata records.
    fn read_meta<T: serde::de::DeserializeOwned>(&self, kind: MetaKind) -> Result<Option<T>, typ::StorageError> {
        let bytes = self.db.get_meta(self.group, kind).map_err(|e| StorageIOError::read_state_machine(&e))?;
        bytes.map(|b| decode(&b).map_err(|e| StorageIOError::read_state_machine(&e).into())).transpose()
    }
}

/// Partition state of one group read straight from RocksDB; used for
/// linearizable reads on the leader.
pub struct GroupView<'a> {
    db: &'a Db,
    group: u32,
    error: std::cell::RefCell<Option<rocksdb::Error>>,
}

impl<'a> GroupView<'a> {
    /// A view of `group`'s state.
    pub fn new(db: &'a Db, group: u32) -> Self {
        GroupView { db, group, error: Default::default() }
    }

    /// The first read error met, if any: callers must discard results then.
    pub fn take_error(&self) -> Option<rocksdb::Error> {
        self.error.borrow_mut().take()
    }

    fn note<T>(&self, r: Result<T, rocksdb::Error>) -> Option<T> {
        r.map_err(|e| *self.error.borrow_mut() = Some(e)).ok()
    }
}

impl StateView for GroupView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let k = keys::state_key(self.group, key);
        self.note(self.db.raw().get_cf(self.db.cf(Cf::State), k)).flatten()
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let start = keys::state_key(self.group, prefix);
        let end = prefix_successor(&start);
        self.scan(start, end)
    }

    fn scan_range(&self, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        self.scan(keys::state_key(self.group, from), Some(keys::state_key(self.group, to)))
    }
}

impl GroupView<'_> {
    /// This group's entries from the full key `start` up to `end`
    /// (exclusive; the group's end if `None`), without the group prefix.
    fn scan(&self, start: Vec<u8>, end: Option<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
        // The upper bound lets RocksDB stop at the end of the range instead
        // of stepping over the tombstones of deleted keys that follow it
        // (finished invocations leave many), which made scans slow down as
        // the partition aged.
        let end = end.or_else(|| prefix_successor(&self.group.to_be_bytes()));
        let mut options = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            options.set_iterate_upper_bound(end);
        }
        let prefix = self.group.to_be_bytes();
        let iter = self.db.raw().iterator_cf_opt(
            self.db.cf(Cf::State),
            options,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let Some((k, v)) = self.note(item) else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((k[4..].to_vec(), v.to_vec()));
        }
        out
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Writes buffered over a [`GroupView`]: later commands in the same apply
/// batch see earlier commands' writes.
struct Overlay<'a> {
    view: GroupView<'a>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl StateView for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(w) => w.clone(),
            None => self.view.get(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let writes = self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix));
        merge(self.view.scan_prefix(prefix), writes)
    }

    fn scan_range(&self, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        merge(self.view.scan_range(from, to), self.writes.range(from.to_vec()..to.to_vec()))
    }
}

/// Stored entries with the buffered writes over the same range applied.
fn merge<'a>(
    stored: Vec<(Vec<u8>, Vec<u8>)>,
    writes: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
    for (k, w) in writes {
        match w {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    merged.into_iter().collect()
}

impl StateTxn for Overlay<'_> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    /// Where the durable state ends: openraft re-applies the log from here
    /// after a restart.
    async fn applied_state(&mut self) -> Result<(Option<typ::LogId>, typ::StoredMembership), typ::StorageError> {
        let applied = self.read_meta::<Option<typ::LogId>>(MetaKind::Applied)?.flatten();
        let membership = self.read_meta(MetaKind::Membership)?.unwrap_or_default();
        Ok((applied, membership))
    }

    /// Applies a run of committed entries (see the module comment). A
    /// command that makes no sense in the state is answered, not an error;
    /// an [`keel_partition::ApplyError`] means stored state this code cannot
    /// interpret, and it stops the group rather than let this replica skip
    /// an entry the others applied. The entry, the command and the error
    /// go to the node's [`crate::health::Health`], which shows them in the
    /// log, `/cluster` and `/health`; every replica stops at the same entry.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, typ::StorageError>
    where
        I: IntoIterator<Item = typ::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut txn = Overlay { view: GroupView::new(&self.db, self.group), writes: BTreeMap::new() };
        let mut responses = Vec::new();
        let mut effects = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            let log_id = entry.log_id;
            last = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(Vec::new()),
                EntryPayload::Membership(m) => {
                    membership = Some(typ::StoredMembership::new(Some(log_id), m));
                    responses.push(Vec::new());
                }
                EntryPayload::Normal(batch) => {
                    let mut out = Vec::with_capacity(batch.0.len());
                    for (position, envelope) in batch.0.iter().enumerate() {
                        let position = position as u32;
                        let meta = RecordMeta { index: log_id.index, term: log_id.leader_id.term, position };
                        let (response, mut fx) = match keel_partition::apply(&mut txn, envelope, meta) {
                            Ok(applied) => applied,
                            Err(e) => {
                                let reason = format!(
                                    "cannot apply command {} (#{position} of log entry {}, term {}): {e}",
                                    envelope.command.name(),
                                    log_id.index,
                                    log_id.leader_id.term,
                                );
                                self.db.health().group_failed(self.group, reason);
                                return Err(StorageIOError::apply(log_id, &e).into());
                            }
                        };
                        out.push(response);
                        effects.append(&mut fx);
                    }
                    responses.push(out);
                }
            }
        }
        if let Some(e) = txn.view.take_error() {
            return Err(StorageIOError::read_state_machine(&e).into());
        }
        let Some(last) = last else { return Ok(responses) };
        let mut ops: Vec<Op> = txn
            .writes
            .into_iter()
            .map(|(k, w)| match w {
                Some(v) => Op::Put(Cf::State, keys::state_key(self.group, &k), v),
                None => Op::Delete(Cf::State, keys::state_key(self.group, &k)),
            })
            .collect();
        ops.push(meta_op(self.group, MetaKind::Applied, &Some(last))?);
        if let Some(m) = &membership {
            ops.push(meta_op(self.group, MetaKind::Membership, m)?);
        }
        // Not synced: the log holds these entries durably; after a crash the
        // entries past the durable applied id are applied again. RocksDB's
        // single WAL keeps this batch ordered before any later synced append.
        let mut batch = WriteBatch::default();
        fill_batch(self.db.raw(), &mut batch, &ops);
        if let Err(e) = self.db.raw().write(batch) {
            self.db.health().stop_node("writing partition state", &e);
            return Err(StorageIOError::write_state_machine(&e).into());
        }
        self.changed();
        if !effects.is_empty() {
            // The receiver lives as long as the group; a closed channel means
            // the group is shutting down and nobody needs the effects.
            let _ = self.effects.send(effects);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { group: self.group, db: self.db.clone(), metrics: self.metrics.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, typ::StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Replaces the group's whole state with a snapshot from the leader
    /// (this replica fell behind the leader's purged log). Durable at once:
    /// the log entries it replaces are gone, so nothing could re-derive it.
    async fn install_snapshot(
        &mut self,
        meta: &typ::SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), typ::StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData =
            decode(&bytes).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let (start, end) = keys::group_range(self.group);
        let mut ops = vec![Op::DeleteRange(Cf::State, start, end)];
        for (k, v) in data.entries {
            ops.push(Op::Put(Cf::State, keys::state_key(self.group, &k), v));
        }
        ops.push(meta_op(self.group, MetaKind::Applied, &meta.last_log_id)?);
        ops.push(meta_op(self.group, MetaKind::Membership, &meta.last_membership)?);
        ops.push(meta_op(self.group, MetaKind::Snapshot, &StoredSnapshot { meta: meta.clone(), data: bytes })?);
        self.db.write_durable(ops).await.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.changed();
        self.metrics.snapshot_installed(self.group);
        Ok(())
    }

    /// The latest snapshot built or installed, as stored.
    async fn get_current_snapshot(&mut self) -> Result<Option<typ::Snapshot>, typ::StorageError> {
        let stored: Option<StoredSnapshot> = self.read_meta(MetaKind::Snapshot)?;
        Ok(stored.map(|s| typ::Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}

/// The write of one metadata record of `group`.
fn meta_op<T: Serialize>(group: u32, kind: MetaKind, value: &T) -> Result<Op, typ::StorageError> {
    let bytes = encode(value).map_err(|e| StorageIOError::write_state_machine(&e))?;
    Ok(Op::Put(Cf::Meta, keys::meta_key(group, kind).to_vec(), bytes))
}

/// Builds snapshots from a consistent RocksDB snapshot of the group.
pub struct SnapshotBuilder {
    group: u32,
    db: Arc<Db>,
    metrics: Arc<RaftMetricsSet>,
}

impl SnapshotBuilder {
    /// Reads applied id, membership and all state from one RocksDB snapshot,
    /// so the three agree with each other.
    #[allow(clippy::type_complexity)]
    fn read_consistent(
        &self,
    ) -> Result<(Option<typ::LogId>, typ::StoredMembership, Vec<(Vec<u8>, Vec<u8>)>), typ::StorageError> {
        let snap = self.db.raw().snapshot();
        let read_meta = |kind| -> Result<Option<Vec<u8>>, typ::StorageError> {
            snap.get_cf(self.db.cf(Cf::Meta), keys::meta_key(self.group, kind))
                .map_err(|e| StorageIOError::read_state_machine(&e).into())
        };
        let last_log_id: Option<typ::LogId> = match read_meta(MetaKind::Applied)? {
            Some(b) => decode(&b).map_err(|e| StorageIOError::read_state_machine(&e))?,
            None => None,
        };
        let last_membership: typ::StoredMembership = match read_meta(MetaKind::Membership)? {
            Some(b) => decode(&b).map_err(|e| StorageIOError::read_state_machine(&e))?,
            None => Default::default(),
        };
        let (start, _) = keys::group_range(self.group);
        let mut entries = Vec::new();
        let iter = snap.iterator_cf(self.db.cf(Cf::State), IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_state_machine(&e))?;
            if !k.starts_with(&start) {
                break;
            }
            entries.push((k[4..].to_vec(), v.to_vec()));
        }
        Ok((last_log_id, last_membership, entries))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Builds a snapshot and stores it durably before openraft purges the
    /// log it covers.
    async fn build_snapshot(&mut self) -> Result<typ::Snapshot, typ::StorageError> {
        let (last_log_id, last_membership, entries) = self.read_consistent()?;
        let data = encode(&SnapshotData { entries }).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = typ::SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        self.db
            .write_durable(vec![meta_op(self.group, MetaKind::Snapshot, &stored)?])
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.metrics.snapshot_built(self.group);
        Ok(typ::Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}
