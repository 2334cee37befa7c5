//! Storage tests: openraft's own conformance suite over keel's log store and
//! state machine, plus keel-specific checks (durability across reopen,
//! purge/truncate, snapshot round trip between two stores).

use crate::db::{Db, MemoryBudget};
use crate::log_store::LogStore;
use crate::metrics::RaftMetricsSet;
use crate::state_machine::{GroupView, Overlay, StateMachine};
use crate::types::{Batch, TypeConfig, typ};
use keel_partition::{Command, Effect, Envelope, MemStore, Query, QueryResult, Response, StateTxn, StateView};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StorageError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(dir, true, MemoryBudget::SMALLEST, Arc::new(RaftMetricsSet::unregistered())).expect("open db")
}

fn stores(db: &Arc<Db>, group: u32) -> (LogStore, StateMachine, mpsc::UnboundedReceiver<Vec<Effect>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sm = StateMachine::new(group, db.clone(), tx, Arc::new(RaftMetricsSet::unregistered()));
    (LogStore::new(group, db.clone()), sm, rx)
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, (tempfile::TempDir, mpsc::UnboundedReceiver<Vec<Effect>>)>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<((tempfile::TempDir, mpsc::UnboundedReceiver<Vec<Effect>>), LogStore, StateMachine), StorageError<u64>>
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        // A group id other than 0 checks that keys are prefixed properly.
        let (log, sm, rx) = stores(&db, 3);
        Ok(((dir, rx), log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

fn log_id(term: u64, index: u64) -> typ::LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn set_entry(term: u64, index: u64, key: &str, value: u8) -> typ::Entry {
    let cmd = Command::SetState {
        service: "S".into(),
        object_key: key.into(),
        new_state: BTreeMap::from([("v".to_string(), vec![value])]),
        expected_version: None,
    };
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(Batch(vec![Envelope::client(cmd)])) }
}

fn membership_entry(term: u64, index: u64) -> typ::Entry {
    let m = Membership::new(vec![BTreeSet::from([1u64])], None);
    Entry { log_id: log_id(term, index), payload: EntryPayload::Membership(m) }
}

/// Appends and waits for the flush callback.
async fn append(log: &mut LogStore, entries: Vec<typ::Entry>) {
    log.blocking_append(entries).await.expect("append");
}

fn read_value(db: &Db, group: u32, key: &str) -> Option<Vec<u8>> {
    let view = GroupView::new(db, group);
    let QueryResult::State { state, .. } =
        keel_partition::read(&view, &Query::GetState { service: "S".into(), object_key: key.into() }).expect("read")
    else {
        panic!("a state query answers with state")
    };
    assert!(view.take_error().is_none());
    state.get("v").cloned()
}

#[tokio::test]
async fn log_survives_reopen_and_truncate_purge_keep_state_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        let (mut log, _, _) = stores(&db, 1);
        let entries = (1..=10).map(|i| set_entry(1, i, "k", i as u8)).collect();
        append(&mut log, entries).await;
        log.save_vote(&typ::Vote::new(2, 1)).await.expect("vote");
        // Truncate from 8 on, then purge up to 3.
        log.truncate(log_id(1, 8)).await.expect("truncate");
        log.purge(log_id(1, 3)).await.expect("purge");
    }
    // Reopen: everything above was written synced, so it must all be there.
    let db = open(dir.path());
    let (mut log, _, _) = stores(&db, 1);
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 7)));
    assert_eq!(log.read_vote().await.expect("vote"), Some(typ::Vote::new(2, 1)));
    let got = log.try_get_log_entries(0..100).await.expect("entries");
    assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    // Another group in the same DB is untouched and empty.
    let (mut other, _, _) = stores(&db, 2);
    assert_eq!(other.get_log_state().await.expect("state").last_log_id, None);
    // Purging everything leaves last_log_id at the purge point.
    log.purge(log_id(1, 7)).await.expect("purge all");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 7)));
    assert!(log.try_get_log_entries(0..100).await.expect("entries").is_empty());
}

#[tokio::test]
async fn applied_state_is_atomic_with_state_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        let (_, mut sm, _) = stores(&db, 5);
        let responses = sm
            .apply(vec![membership_entry(1, 1), set_entry(1, 2, "a", 7), set_entry(1, 3, "a", 9)])
            .await
            .expect("apply");
        assert_eq!(responses.len(), 3);
        assert!(matches!(responses[2].as_slice(), [Response::StateSet { .. }]));
        db.raw().flush_wal(true).expect("flush");
    }
    let db = open(dir.path());
    let (_, mut sm, _) = stores(&db, 5);
    let (applied, membership) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 3)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
    assert_eq!(read_value(&db, 5, "a"), Some(vec![9]));
}

#[tokio::test]
async fn snapshot_round_trip_replaces_receiver_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let (_, mut source, _) = stores(&db, 1);
    source.apply(vec![membership_entry(1, 1), set_entry(1, 2, "a", 1), set_entry(1, 3, "b", 2)]).await.expect("apply");
    let snapshot = source.get_snapshot_builder().await.build_snapshot().await.expect("build");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));
    // The current snapshot is what was built.
    let mut current = source.get_current_snapshot().await.expect("current").expect("some");
    assert_eq!(current.meta, snapshot.meta);

    // The receiver (another group, another DB) has stale state of its own.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let db2 = open(dir2.path());
    let (_, mut receiver, _) = stores(&db2, 1);
    receiver.apply(vec![set_entry(1, 1, "stale", 5)]).await.expect("apply");
    let mut data = receiver.begin_receiving_snapshot().await.expect("begin");
    tokio::io::copy(&mut current.snapshot, &mut data).await.expect("transfer");
    receiver.install_snapshot(&snapshot.meta, data).await.expect("install");

    assert_eq!(read_value(&db2, 1, "a"), Some(vec![1]));
    assert_eq!(read_value(&db2, 1, "b"), Some(vec![2]));
    assert_eq!(read_value(&db2, 1, "stale"), None);
    let (applied, membership) = receiver.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 3)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
    // Byte-identical partition state on both sides.
    let dump = |db: &Db| GroupView::new(db, 1).scan_prefix(&[]);
    assert_eq!(dump(&db), dump(&db2));
}

#[tokio::test]
async fn effects_are_emitted_after_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let (_, mut sm, mut effects) = stores(&db, 1);
    let announce = Envelope::fenced(4, Command::AnnounceLeader { node_id: 1, term: 4 });
    let entry = Entry { log_id: log_id(4, 1), payload: EntryPayload::Normal(Batch(vec![announce])) };
    sm.apply(vec![entry]).await.expect("apply");
    assert_eq!(effects.try_recv().expect("effects"), vec![Effect::LeaderReady { term: 4 }]);
}

/// Replicas cut apply batches differently, so a limited scan inside a batch
/// must give the first entries of the state as it would be with every
/// buffered write stored: buffered deletes must not make it stop short,
/// nor buffered puts beyond what it read slip in.
#[test]
fn a_limited_scan_reads_alike_whatever_is_still_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let key = |n: u8| vec![0x70, n];
    {
        let mut stored = Overlay::new(GroupView::new(&db, 5));
        for n in 0..10 {
            stored.put(key(n), vec![n]);
        }
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in stored.scan_range(&key(0), &key(255)) {
            batch.put_cf(db.cf(crate::db::Cf::State), crate::keys::state_key(5, &k), v);
        }
        db.raw().write(batch).expect("write");
    }
    let mut overlay = Overlay::new(GroupView::new(&db, 5));
    let mut expected = MemStore::default();
    for n in 0..10 {
        expected.put(key(n), vec![n]);
    }
    buffered_writes(&mut overlay);
    buffered_writes(&mut expected);
    for limit in [1, 3, 6, 7, 100] {
        assert_eq!(
            overlay.scan_range_limit(&key(0), &key(255), limit),
            expected.scan_range_limit(&key(0), &key(255), limit),
            "limit {limit}"
        );
    }
    assert_eq!(overlay.scan_range_limit(&key(0), &key(255), 2), vec![(key(3), vec![33]), (key(5), vec![5])]);
}

/// The writes of the batch in the test above: deletes in front of and
/// among the stored entries, a put beyond them and one over a stored entry.
fn buffered_writes(txn: &mut impl StateTxn) {
    for n in [0, 1, 2, 4] {
        txn.delete(vec![0x70, n]);
    }
    txn.put(vec![0x70, 20], vec![20]);
    txn.put(vec![0x70, 3], vec![33]);
}
