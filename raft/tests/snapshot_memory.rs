//! Snapshot build, chunked transfer and install of a 200 MiB partition
//! state hold a few MiB of heap at most: the state streams through files
//! and RocksDB, never through memory whole.
//!
//! Counted: Rust's heap, over all threads (the work runs on tokio's
//! blocking pool), with the allocation-counting global allocator; RocksDB's
//! own C++ allocations (its block cache, memtables, the SST writer's
//! buffers) are not, and are bounded by its configuration. The process's
//! peak RSS for a 500 MiB state is measured by `bench/snapshot.sh`
//! (BENCHMARKS.md).

use keel_raft::db::{Cf, Db, MemoryBudget, Op};
use keel_raft::keys;
use keel_raft::metrics::RaftMetricsSet;
use keel_raft::snapshot::{SnapshotFile, Snapshots};
use keel_testkit::PeakWatch;
use std::io::SeekFrom;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[global_allocator]
static ALLOCATOR: keel_testkit::CountingAlloc = keel_testkit::CountingAlloc;

const GROUP: u32 = 2;
const STATE_BYTES: usize = 200 << 20;
const VALUE_BYTES: usize = 16 << 10;
/// openraft's default `snapshot_max_chunk_size`.
const CHUNK: usize = 3 << 20;
/// What build, or transfer and install, may hold at once: a chunk, a read
/// buffer and the SST writer's index, with room to spare; 1/12 of the state.
const BUDGET: usize = 16 << 20;

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(dir, false, MemoryBudget::SMALLEST, Arc::new(RaftMetricsSet::unregistered())).expect("open db")
}

/// Writes `STATE_BYTES` of incompressible state in 4 MiB batches.
async fn fill(db: &Db) {
    let per_batch = (4 << 20) / VALUE_BYTES;
    for batch in 0..STATE_BYTES / VALUE_BYTES / per_batch {
        let ops = (0..per_batch)
            .map(|i| {
                let n = (batch * per_batch + i) as u64;
                Op::Put(Cf::State, keys::state_key(GROUP, &n.to_be_bytes()), keel_testkit::noise(n + 1, VALUE_BYTES))
            })
            .collect();
        db.write_durable(ops).await.expect("write");
    }
}

/// openraft's chunked transfer: one chunk in memory at a time.
async fn transfer(from: &mut SnapshotFile, to: &mut SnapshotFile) {
    let mut offset = 0u64;
    loop {
        from.seek(SeekFrom::Start(offset)).await.expect("seek");
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK && from.read_buf(&mut chunk).await.expect("read") > 0 {}
        if chunk.is_empty() {
            break;
        }
        to.write_all(&chunk).await.expect("write");
        offset += chunk.len() as u64;
    }
    to.shutdown().await.expect("shutdown");
}

/// Whether both databases hold the same state for the group, compared
/// entry by entry.
fn same_state(a: &Db, b: &Db) -> usize {
    let (start, _) = keys::group_range(GROUP);
    let mut left = a.raw().raw_iterator_cf(a.cf(Cf::State));
    let mut right = b.raw().raw_iterator_cf(b.cf(Cf::State));
    left.seek(&start);
    right.seek(&start);
    let mut n = 0;
    while left.key().is_some_and(|k| k.starts_with(&start)) {
        assert_eq!((left.key(), left.value()), (right.key(), right.value()), "entry {n}");
        left.next();
        right.next();
        n += 1;
    }
    assert!(right.key().is_none_or(|k| !k.starts_with(&start)), "the receiver has more entries");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_state_is_built_shipped_and_installed_in_bounded_memory() {
    let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (leader, follower) = (open(a.path()), open(b.path()));
    fill(&leader).await;
    let (source, receiver) = (Snapshots::new(GROUP, leader.clone()), Snapshots::new(GROUP, follower.clone()));

    let watch = PeakWatch::start();
    let mut built = source.build().await.expect("build");
    let build_peak = watch.peak();

    let watch = PeakWatch::start();
    let mut received = receiver.begin_receiving().await.expect("begin");
    transfer(&mut built.snapshot, &mut received).await;
    receiver.install(&built.meta, received).await.expect("install");
    let install_peak = watch.peak();

    eprintln!("state {} MiB: peak heap build {build_peak} B, transfer+install {install_peak} B", STATE_BYTES >> 20);
    assert!(build_peak < BUDGET, "building held {build_peak} bytes at once");
    assert!(install_peak < BUDGET, "transfer and install held {install_peak} bytes at once");
    assert_eq!(same_state(&leader, &follower), STATE_BYTES / VALUE_BYTES);
}
