//! Snapshots on real RocksDB instances in temp directories: build, chunked
//! transfer and install; damaged files; installs interrupted by a crash;
//! stale files; the retired inline snapshot.

use super::*;
use crate::db::MemoryBudget;
use crate::metrics::RaftMetricsSet;
use crate::state_machine::GroupView;
use keel_partition::StateView;
use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership};
use std::collections::BTreeSet;
use std::io::SeekFrom;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const GROUP: u32 = 7;

/// openraft's default `snapshot_max_chunk_size`.
const CHUNK: usize = 3 << 20;

fn open(dir: &Path, inline: bool) -> Arc<Db> {
    if inline {
        Db::open_inline(dir).expect("open db")
    } else {
        Db::open(dir, true, MemoryBudget::SMALLEST, Arc::new(RaftMetricsSet::unregistered())).expect("open db")
    }
}

fn log_id(term: u64, index: u64) -> typ::LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// Writes `entries` state records of `value_len` bytes (prefix `prefix`)
/// and `applied` as the applied id, with a membership of node 1.
async fn fill(db: &Db, prefix: &str, entries: usize, value_len: usize, applied: typ::LogId) {
    let membership: typ::StoredMembership =
        StoredMembership::new(Some(log_id(1, 1)), Membership::new(vec![BTreeSet::from([1u64])], None));
    let mut ops = vec![
        meta_put(GROUP, MetaKind::Applied, &Some(applied)).expect("encode"),
        meta_put(GROUP, MetaKind::Membership, &membership).expect("encode"),
    ];
    for i in 0..entries {
        let value = keel_testkit::noise(i as u64 + 1, value_len);
        ops.push(Op::Put(Cf::State, keys::state_key(GROUP, format!("{prefix}/{i:08}").as_bytes()), value));
    }
    // Another group's state, which no snapshot of GROUP may touch.
    ops.push(Op::Put(Cf::State, keys::state_key(GROUP + 1, b"neighbour"), prefix.as_bytes().to_vec()));
    db.write_durable(ops).await.expect("write");
}

/// The group's whole state.
fn dump(db: &Db, group: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let view = GroupView::new(db, group);
    let all = view.scan_prefix(&[]);
    assert!(view.take_error().is_none());
    all
}

fn applied(db: &Db) -> Option<typ::LogId> {
    read_meta::<Option<typ::LogId>>(db, GROUP, MetaKind::Applied).expect("read").flatten()
}

/// Files in the group's snapshot directory.
fn files(snapshots: &Snapshots) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(&snapshots.dir)
        .map(|d| d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Copies `from` into `to` as openraft's chunked transfer does: one chunk
/// at a time, each written at its offset; the first chunk is sent twice
/// (its answer was lost), which makes the receiver seek back.
async fn transfer(from: &mut SnapshotFile, to: &mut SnapshotFile) {
    let mut offset = 0u64;
    let mut resent = false;
    loop {
        from.seek(SeekFrom::Start(offset)).await.expect("seek");
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            if from.read_buf(&mut chunk).await.expect("read") == 0 {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        to.seek(SeekFrom::Start(offset)).await.expect("seek");
        to.write_all(&chunk).await.expect("write");
        if !resent {
            resent = true;
            continue;
        }
        offset += chunk.len() as u64;
    }
    to.shutdown().await.expect("shutdown");
}

/// Builds a snapshot on `source` and receives it on `receiver` (not installed).
async fn ship(source: &Snapshots, receiver: &Snapshots) -> (typ::SnapshotMeta, SnapshotFile) {
    let mut built = source.build().await.expect("build");
    let mut received = receiver.begin_receiving().await.expect("begin");
    transfer(&mut built.snapshot, &mut received).await;
    (built.meta, received)
}

#[tokio::test]
async fn state_larger_than_a_chunk_round_trips_and_replaces_the_receivers() {
    for inline in [false, true] {
        let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let (leader, follower) = (open(a.path(), inline), open(b.path(), inline));
        // About 10 MiB: several chunks.
        fill(&leader, "fresh", 2500, 4096, log_id(2, 40)).await;
        fill(&follower, "stale", 300, 100, log_id(1, 5)).await;
        let (source, receiver) = (Snapshots::new(GROUP, leader.clone()), Snapshots::new(GROUP, follower.clone()));
        let (meta, file) = ship(&source, &receiver).await;
        assert!(SnapshotId::of(&meta).expect("id").len > 3 * CHUNK as u64, "the snapshot spans several chunks");
        receiver.install(&meta, file).await.expect("install");

        assert_eq!(dump(&follower, GROUP), dump(&leader, GROUP));
        assert_eq!(dump(&follower, GROUP).len(), 2500);
        assert_eq!(applied(&follower), Some(log_id(2, 40)));
        // Another group's keys are untouched.
        assert_eq!(dump(&follower, GROUP + 1), vec![(b"neighbour".to_vec(), b"stale".to_vec())]);
        // The installed snapshot is the follower's current one, and its only file.
        let current = receiver.current().await.expect("current").expect("some");
        assert_eq!(current.meta, meta);
        assert_eq!(files(&receiver), vec![SnapshotId::of(&meta).expect("id").file_name()]);
        assert_eq!(read_meta::<typ::SnapshotMeta>(&follower, GROUP, MetaKind::SnapshotInstall).expect("read"), None);
    }
}

#[tokio::test]
async fn an_empty_group_round_trips() {
    let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (leader, follower) = (open(a.path(), false), open(b.path(), false));
    fill(&follower, "stale", 10, 10, log_id(1, 5)).await;
    let (source, receiver) = (Snapshots::new(GROUP, leader.clone()), Snapshots::new(GROUP, follower.clone()));
    let (meta, file) = ship(&source, &receiver).await;
    assert_eq!(meta.last_log_id, None);
    assert!(meta.snapshot_id.starts_with("none-"), "{}", meta.snapshot_id);
    receiver.install(&meta, file).await.expect("install");
    assert!(dump(&follower, GROUP).is_empty());
    assert_eq!(applied(&follower), None);
}

#[tokio::test]
async fn a_truncated_or_damaged_snapshot_is_refused_and_changes_nothing() {
    let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (leader, follower) = (open(a.path(), false), open(b.path(), false));
    fill(&leader, "fresh", 500, 1000, log_id(2, 40)).await;
    fill(&follower, "stale", 30, 100, log_id(1, 5)).await;
    let before = dump(&follower, GROUP);
    let (source, receiver) = (Snapshots::new(GROUP, leader.clone()), Snapshots::new(GROUP, follower.clone()));
    for damage in ["truncate", "flip"] {
        let (meta, file) = ship(&source, &receiver).await;
        let path = file.path().to_owned();
        let mut bytes = fs::read(&path).expect("read");
        match damage {
            "truncate" => bytes.truncate(bytes.len() - 100),
            _ => bytes[1000] ^= 0x40,
        }
        fs::write(&path, &bytes).expect("write");
        let err = receiver.install(&meta, file).await.expect_err("a damaged snapshot installs");
        assert!(matches!(err, SnapshotError::Corrupt { .. }), "{damage}: {err}");
        assert!(err.to_string().contains("damaged or incomplete"), "{err}");
        assert_eq!(dump(&follower, GROUP), before, "{damage}");
        assert_eq!(applied(&follower), Some(log_id(1, 5)));
        assert!(files(&receiver).is_empty(), "{damage}: the refused file is gone: {:?}", files(&receiver));
    }
}

/// How far an install got before the crash.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// The file is kept, the marker not written yet.
    BeforeMarker,
    /// The marker is written, nothing ingested.
    AfterMarker,
    /// The file is ingested, the applied id not switched.
    AfterIngest,
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_leaves_the_old_state_or_finishes_on_restart() {
    for crash in [Crash::BeforeMarker, Crash::AfterMarker, Crash::AfterIngest] {
        let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let leader = open(a.path(), false);
        fill(&leader, "fresh", 400, 1000, log_id(2, 40)).await;
        let expected = dump(&leader, GROUP);
        let old = {
            let follower = open(b.path(), false);
            fill(&follower, "stale", 30, 100, log_id(1, 5)).await;
            let old = dump(&follower, GROUP);
            let receiver = Snapshots::new(GROUP, follower.clone());
            let (meta, file) = ship(&Snapshots::new(GROUP, leader.clone()), &receiver).await;
            match crash {
                Crash::BeforeMarker => {
                    let id = SnapshotId::of(&meta).expect("id");
                    let received = file.close().await.expect("close").expect("a received file");
                    received.keep(&receiver.dir.join(id.file_name())).expect("keep");
                }
                Crash::AfterMarker => receiver.stage(&meta, file).await.expect("stage"),
                Crash::AfterIngest => {
                    receiver.stage(&meta, file).await.expect("stage");
                    let path = receiver.dir.join(SnapshotId::of(&meta).expect("id").file_name());
                    sst::ingest(&follower, &path).expect("ingest");
                    // Readers already see the whole new state.
                    assert_eq!(dump(&follower, GROUP), expected);
                }
            }
            old
            // The crash: everything in memory is dropped.
        };
        let follower = open(b.path(), false);
        let receiver = Snapshots::new(GROUP, follower.clone());
        receiver.recover().await.expect("recover");
        let state = dump(&follower, GROUP);
        match crash {
            Crash::BeforeMarker => {
                assert_eq!(state, old, "{crash:?}");
                assert_eq!(applied(&follower), Some(log_id(1, 5)), "{crash:?}");
                assert!(receiver.current().await.expect("current").is_none());
            }
            Crash::AfterMarker | Crash::AfterIngest => {
                assert_eq!(state, expected, "{crash:?}");
                assert_eq!(applied(&follower), Some(log_id(2, 40)), "{crash:?}");
                assert!(receiver.current().await.expect("current").is_some());
            }
        }
        // Only the current snapshot's file (if any) is left.
        assert!(files(&receiver).len() <= 1, "{crash:?}: {:?}", files(&receiver));
    }
}

#[tokio::test]
async fn replaced_and_partial_files_are_removed() {
    let a = tempfile::tempdir().expect("dir");
    let db = open(a.path(), false);
    fill(&db, "one", 10, 10, log_id(1, 10)).await;
    let snapshots = Snapshots::new(GROUP, db.clone());
    let first = snapshots.build().await.expect("build").meta;
    fill(&db, "two", 10, 10, log_id(1, 20)).await;
    let second = snapshots.build().await.expect("build").meta;
    // Building the second removed the first.
    assert_eq!(files(&snapshots), vec![SnapshotId::of(&second).expect("id").file_name()]);
    assert_ne!(first.snapshot_id, second.snapshot_id);
    // An abandoned transfer removes its file when dropped.
    drop(snapshots.begin_receiving().await.expect("begin"));
    assert_eq!(files(&snapshots).len(), 1);
    // What a crash leaves behind goes at the next start.
    fs::write(snapshots.dir.join("9.partial"), b"half a snapshot").expect("write");
    fs::write(snapshots.dir.join("1-5-10-0000000000000001.sst"), b"an old one").expect("write");
    snapshots.recover().await.expect("recover");
    assert_eq!(files(&snapshots), vec![SnapshotId::of(&second).expect("id").file_name()]);
}

#[tokio::test]
async fn the_inline_snapshot_of_earlier_versions_is_ignored_then_dropped() {
    let a = tempfile::tempdir().expect("dir");
    let db = open(a.path(), false);
    fill(&db, "one", 10, 10, log_id(1, 10)).await;
    let legacy = Op::Put(Cf::Meta, keys::meta_key(GROUP, MetaKind::InlineSnapshot).to_vec(), vec![1, 2, 3]);
    db.write_durable(vec![legacy]).await.expect("write");
    let snapshots = Snapshots::new(GROUP, db.clone());
    snapshots.recover().await.expect("recover");
    assert!(snapshots.current().await.expect("current").is_none());
    snapshots.build().await.expect("build");
    assert_eq!(db.get_meta(GROUP, MetaKind::InlineSnapshot).expect("read"), None);
}
