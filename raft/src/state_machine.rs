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
//! Snapshots are files built, shipped and installed by [`crate::snapshot`];
//! this adapter only hands openraft's calls over.

use crate::db::{Cf, Db, Op, fill_batch};
use crate::keys::{self, MetaKind};
use crate::metrics::RaftMetricsSet;
use crate::snapshot::{SnapshotFile, Snapshots, meta_put, read_meta};
use crate::types::{TypeConfig, typ};
use keel_partition::{Effect, RecordMeta, Response, StateTxn, StateView};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::Serialize;
use std::collections::BTreeMap;
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
    snapshots: Arc<Snapshots>,
    /// Whether [`Snapshots::recover`] ran (on the first `applied_state`).
    recovered: bool,
}

impl StateMachine {
    /// The state machine of `group`; applied effects go to `effects`.
    pub fn new(group: u32, db: Arc<Db>, effects: EffectSender, metrics: Arc<RaftMetricsSet>) -> Self {
        let snapshots = Arc::new(Snapshots::new(group, db.clone()));
        StateMachine { group, db, effects, metrics, changes: None, snapshots, recovered: false }
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
        read_meta(&self.db, self.group, kind).map_err(|e| StorageIOError::read_state_machine(&e).into())
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
        self.scan(start, end, usize::MAX)
    }

    fn scan_range_limit(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        self.scan(keys::state_key(self.group, from), Some(keys::state_key(self.group, to)), limit)
    }
}

impl GroupView<'_> {
    /// This group's first `limit` entries from the full key `start` up to
    /// `end` (exclusive; the group's end if `None`), without the group prefix.
    fn scan(&self, start: Vec<u8>, end: Option<Vec<u8>>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
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
        for item in iter.take(limit) {
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
pub(crate) struct Overlay<'a> {
    view: GroupView<'a>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// No writes buffered over `view` yet.
    pub(crate) fn new(view: GroupView<'a>) -> Self {
        Overlay { view, writes: BTreeMap::new() }
    }
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

    fn scan_range_limit(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        // The first `limit` entries of the merged view must not depend on
        // which writes are still buffered (replicas cut apply batches
        // differently): every buffered delete may hide one stored entry,
        // so read that many more before merging.
        let writes = || self.writes.range(from.to_vec()..to.to_vec());
        let hidden = writes().filter(|(_, w)| w.is_none()).count();
        let mut merged = merge(self.view.scan_range_limit(from, to, limit.saturating_add(hidden)), writes());
        merged.truncate(limit);
        merged
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
    /// after a restart. openraft asks first thing when the group starts, so
    /// the first call also finishes a snapshot install that a crash
    /// interrupted (until then the stored applied id would be stale).
    async fn applied_state(&mut self) -> Result<(Option<typ::LogId>, typ::StoredMembership), typ::StorageError> {
        if !self.recovered {
            self.snapshots.recover().await.map_err(|e| StorageIOError::read_snapshot(None, &e))?;
            self.recovered = true;
        }
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
        let mut txn = Overlay::new(GroupView::new(&self.db, self.group));
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
        SnapshotBuilder { group: self.group, snapshots: self.snapshots.clone(), metrics: self.metrics.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, typ::StorageError> {
        Ok(Box::new(self.snapshots.begin_receiving().await.map_err(|e| StorageIOError::write_snapshot(None, &e))?))
    }

    /// Replaces the group's whole state with a snapshot from the leader
    /// (this replica fell behind the leader's purged log). Durable at once:
    /// the log entries it replaces are gone, so nothing could re-derive it.
    async fn install_snapshot(
        &mut self,
        meta: &typ::SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), typ::StorageError> {
        self.snapshots
            .install(meta, *snapshot)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.changed();
        self.metrics.snapshot_installed(self.group);
        Ok(())
    }

    /// The latest snapshot built or installed.
    async fn get_current_snapshot(&mut self) -> Result<Option<typ::Snapshot>, typ::StorageError> {
        self.snapshots.current().await.map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}

/// The write of one metadata record of `group`.
fn meta_op<T: Serialize>(group: u32, kind: MetaKind, value: &T) -> Result<Op, typ::StorageError> {
    meta_put(group, kind, value).map_err(|e| StorageIOError::write_state_machine(&e).into())
}

/// Builds snapshots of a group ([`Snapshots::build`]).
pub struct SnapshotBuilder {
    group: u32,
    snapshots: Arc<Snapshots>,
    metrics: Arc<RaftMetricsSet>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Builds a snapshot and stores it durably before openraft purges the
    /// log it covers. Runs beside applies: it reads one RocksDB snapshot.
    async fn build_snapshot(&mut self) -> Result<typ::Snapshot, typ::StorageError> {
        let snapshot = self.snapshots.build().await.map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        self.metrics.snapshot_built(self.group);
        Ok(snapshot)
    }
}
