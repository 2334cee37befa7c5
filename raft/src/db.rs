//! The node's RocksDB and its group-commit WAL syncer.
//!
//! All Raft groups of a node share one RocksDB, hence one write-ahead log, so
//! one `fsync` makes the appends of many groups durable at once. A log write
//! (append, vote, truncate, purge) is written to RocksDB at once, without
//! sync: the entries are readable immediately, which openraft requires
//! (its replication reads entries right after `append` returns). The caller's
//! completion is then queued for the syncer thread, which takes everything
//! that queued up while its previous sync ran, syncs the WAL once, and only
//! then completes each caller. That is group commit, and it keeps openraft's
//! contract: a callback fires only after its data is on disk, and writes are
//! applied in the order they were made. Unsynced state-machine writes share
//! the WAL and become durable with the next sync.
//!
//! A write or sync that fails stops the node ([`Health::stop_node`]): after
//! a failed `fsync` the kernel may have dropped the dirty pages, so retrying
//! could report durable what never reached the disk. Restarting recovers
//! from the WAL, which is the only state known to be on disk.

use crate::health::Health;
use crate::keys::{self, ALL_CFS, CF_LOG, CF_META, CF_STATE, MetaKind};
use crate::metrics::RaftMetricsSet;
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

/// Errors opening or using the node's database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The stored partition count differs from the configured one.
    #[error(
        "this data directory was created with {stored} partitions but {configured} are configured; \
         the partition count is fixed at cluster creation (set partitions = {stored})"
    )]
    PartitionCountMismatch {
        /// What the data directory holds.
        stored: u32,
        /// What the configuration asks for.
        configured: u32,
    },
    /// A stored node-wide record is unreadable.
    #[error("corrupt node metadata: {0}")]
    Corrupt(String),
    /// The syncer thread is gone (the node is shutting down).
    #[error("log syncer stopped")]
    WriterStopped,
}

/// The memory RocksDB may use for the node: one block cache shared by all
/// column families, with the memtables charged to it.
///
/// Without it every column family had RocksDB's defaults (64 MiB
/// memtables, two of them, and a block cache each), so memory grew with
/// the write rate and the number of column families, not with anything an
/// operator set. Here half the budget bounds the memtables of all column
/// families together (a write buffer manager: when they reach it, the
/// largest is flushed) and their memory counts against the block cache,
/// whose capacity is the whole budget; index and filter blocks live in the
/// cache too. Reads and writes slow down when the budget is small; they
/// never make RocksDB's memory grow past it by much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget(pub usize);

impl MemoryBudget {
    /// The default: enough for a small node (see README).
    pub const DEFAULT: MemoryBudget = MemoryBudget(128 << 20);
    /// The least that is accepted, and what deterministic tests use.
    pub const SMALLEST: MemoryBudget = MemoryBudget(16 << 20);

    /// Database and column-family options that keep RocksDB within the budget.
    fn options(self) -> (Options, Options) {
        let budget = self.0.max(Self::SMALLEST.0);
        let cache = rocksdb::Cache::new_lru_cache(budget);
        let buffers =
            rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(budget / 2, false, cache.clone());
        let mut db = Options::default();
        db.set_write_buffer_manager(&buffers);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Most point reads ask for keys that do not exist (a new
        // invocation's id, the running index of a record being stored):
        // without a filter each one reads an index and a data block of
        // every table it might be in, so reads slowed down as the state
        // grew. Ten bits a key answer "not here" for 99% of tables.
        table.set_bloom_filter(10.0, false);
        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table);
        // One column family's memtable may take a third of the memtables'
        // share, so a busy one flushes before it crowds out the others.
        cf.set_write_buffer_size(budget / 6);
        cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
        (db, cf)
    }
}

/// Which column family an operation targets.
#[derive(Debug, Clone, Copy)]
pub enum Cf {
    /// Raft log entries.
    Log,
    /// Raft metadata.
    Meta,
    /// Partition state.
    State,
}

/// One write operation for the writer thread.
#[derive(Debug)]
pub enum Op {
    /// Store a value.
    Put(Cf, Vec<u8>, Vec<u8>),
    /// Delete a key.
    Delete(Cf, Vec<u8>),
    /// Delete `[from, to)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Called on the syncer thread once a write is durable.
pub type Completion = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

struct Job {
    done: Completion,
    submitted: Instant,
}

/// The node's database: RocksDB plus resolved column-family handles and the
/// group-commit writer.
pub struct Db {
    db: Arc<DB>,
    /// `None` while dropping, and in [`Db::open_inline`]'s mode.
    writer: Option<std_mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    /// Completions run inside [`Db::submit`], without a sync.
    inline: bool,
    health: Arc<Health>,
}

impl Drop for Db {
    /// Stops the writer after it has written everything queued, so the
    /// database is closed (and its lock released) when `Db` is gone.
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.writer_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("WAL syncer thread panicked");
        }
    }
}

impl Db {
    /// Opens (or creates) the database at `path` and starts the writer thread.
    /// `fsync` false trades durability for speed (benchmarks of the sync cost).
    /// RocksDB's caches and memtables stay within `memory_budget` bytes
    /// ([`MemoryBudget`]).
    pub fn open(
        path: &Path,
        fsync: bool,
        memory_budget: MemoryBudget,
        metrics: Arc<RaftMetricsSet>,
    ) -> Result<Arc<Db>, DbError> {
        let db = Self::open_rocks(path, memory_budget)?;
        let health = Arc::new(Health::new(path));
        let (tx, rx) = std_mpsc::channel::<Job>();
        let writer = Writer { db: db.clone(), fsync, metrics, health: health.clone() };
        let thread = std::thread::Builder::new()
            .name("keel-wal-sync".into())
            .spawn(move || writer.run_supervised(rx))
            .map_err(|e| DbError::Corrupt(format!("cannot start the WAL syncer thread: {e}")))?;
        Ok(Arc::new(Db { db, writer: Some(tx), writer_thread: Some(thread), inline: false, health }))
    }

    /// Opens the database for a deterministic test: no syncer thread, no
    /// fsync; a write's completion runs inside [`Db::submit`]. A thread
    /// finishing syncs at its own pace would make the order of events
    /// differ from run to run, and let paused test time jump ahead while
    /// nothing but a sync is pending. What was written stays readable
    /// after the `Db` is dropped and reopened, as after a process crash.
    pub fn open_inline(path: &Path) -> Result<Arc<Db>, DbError> {
        let health = Arc::new(Health::new(path));
        let db = Self::open_rocks(path, MemoryBudget::SMALLEST)?;
        Ok(Arc::new(Db { db, writer: None, writer_thread: None, inline: true, health }))
    }

    fn open_rocks(path: &Path, budget: MemoryBudget) -> Result<Arc<DB>, DbError> {
        let (mut opts, cf_opts) = budget.options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        for name in ALL_CFS {
            if db.cf_handle(name).is_none() {
                return Err(DbError::Corrupt(format!("column family {name} missing after open")));
            }
        }
        Ok(db)
    }

    /// The node's health: a failed write stops the node through it.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Whether this database runs in [`Db::open_inline`]'s deterministic
    /// mode, where blocking work runs in place ([`Db::run_blocking`]).
    pub fn runs_inline(&self) -> bool {
        self.inline
    }

    /// The raw RocksDB handle.
    pub fn raw(&self) -> &DB {
        &self.db
    }

    /// Handle of a column family; all were verified at open.
    pub fn cf(&self, cf: Cf) -> &ColumnFamily {
        cf_handle(&self.db, cf)
    }

    /// Writes `ops` now (readable at once) and runs `done` once they are
    /// durable, after the next WAL sync.
    pub fn submit(&self, ops: Vec<Op>, done: Completion) -> Result<(), DbError> {
        let writer = match (&self.writer, self.inline) {
            (Some(writer), _) => Some(writer),
            (None, true) => None,
            (None, false) => return Err(DbError::WriterStopped),
        };
        let mut batch = WriteBatch::default();
        fill_batch(&self.db, &mut batch, &ops);
        if let Err(e) = self.db.write(batch) {
            self.health.stop_node("writing the Raft log", &e);
            return Err(e.into());
        }
        let Some(writer) = writer else {
            done(Ok(()));
            return Ok(());
        };
        writer.send(Job { done, submitted: Instant::now() }).map_err(|_| DbError::WriterStopped)
    }

    /// Runs storage work that may block for long (a scan, a large read)
    /// on tokio's blocking pool, so an async worker thread, and every task
    /// queued on it, does not wait for the disk meanwhile. A database
    /// opened with [`Db::open_inline`] runs it in place instead: a
    /// deterministic test must not depend on when another thread finishes.
    pub async fn run_blocking<T, F>(self: &Arc<Self>, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> T + Send + 'static,
    {
        if self.inline {
            return work(self);
        }
        let db = self.clone();
        match tokio::task::spawn_blocking(move || work(&db)).await {
            Ok(value) => value,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down, and with it the caller.
            Err(_) => std::future::pending().await,
        }
    }

    /// Writes ops and waits until they are durable.
    pub async fn write_durable(&self, ops: Vec<Op>) -> Result<(), std::io::Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(ops, Box::new(move |r| drop(tx.send(r)))).map_err(std::io::Error::other)?;
        rx.await.map_err(|_| std::io::Error::other("log writer stopped"))?
    }

    /// Reads a metadata record.
    pub fn get_meta(&self, group: u32, kind: MetaKind) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.get_cf(self.cf(Cf::Meta), keys::meta_key(group, kind))
    }

    /// Checks the node-wide partition count, storing it on first start.
    pub fn check_partition_count(&self, configured: u32) -> Result<(), DbError> {
        let key = keys::meta_key(keys::NODE_GROUP, MetaKind::PartitionCount);
        match self.db.get_cf(self.cf(Cf::Meta), key)? {
            None => {
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                self.db.put_cf_opt(self.cf(Cf::Meta), key, configured.to_be_bytes(), &wo)?;
                Ok(())
            }
            Some(bytes) => {
                let stored = u32::from_be_bytes(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| DbError::Corrupt(format!("partition count has {} bytes", bytes.len())))?,
                );
                if stored == configured { Ok(()) } else { Err(DbError::PartitionCountMismatch { stored, configured }) }
            }
        }
    }
}

fn cf_handle(db: &DB, cf: Cf) -> &ColumnFamily {
    let name = match cf {
        Cf::Log => CF_LOG,
        Cf::Meta => CF_META,
        Cf::State => CF_STATE,
    };
    // Verified in `Db::open`; column families are never dropped.
    db.cf_handle(name).expect("column family verified at open")
}

/// Adds `ops` to `batch`.
pub fn fill_batch(db: &DB, batch: &mut WriteBatch, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(cf, k, v) => batch.put_cf(cf_handle(db, *cf), k, v),
            Op::Delete(cf, k) => batch.delete_cf(cf_handle(db, *cf), k),
            Op::DeleteRange(cf, from, to) => batch.delete_range_cf(cf_handle(db, *cf), from, to),
        }
    }
}

/// Upper bound of completions served by one sync, so one huge burst cannot
/// delay its first caller unboundedly.
const MAX_JOBS_PER_SYNC: usize = 4096;

/// The syncer thread's side of the database.
struct Writer {
    db: Arc<DB>,
    fsync: bool,
    metrics: Arc<RaftMetricsSet>,
    health: Arc<Health>,
}

impl Writer {
    /// Runs the syncer; a panic in it stops the node, as every caller
    /// waiting for a sync would otherwise wait forever.
    fn run_supervised(self, rx: std_mpsc::Receiver<Job>) {
        let health = self.health.clone();
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(rx))) {
            health.stop_node("the WAL syncer", &format!("it panicked: {}", crate::health::panic_message(&*panic)));
        }
    }

    fn run(self, rx: std_mpsc::Receiver<Job>) {
        // `recv` fails only when every sender is dropped: the node is shutting down.
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_JOBS_PER_SYNC {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            // Syncs every WAL write made before this call, including those of
            // the jobs taken above (they were written before being queued).
            let result = if self.fsync { self.db.flush_wal(true) } else { Ok(()) };
            self.metrics.observe_sync(started.elapsed(), jobs.len());
            if let Err(e) = &result {
                self.health.stop_node("syncing the write-ahead log", e);
            }
            for job in jobs {
                self.metrics.log_write_seconds.observe(job.submitted.elapsed().as_secs_f64());
                let r = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                (job.done)(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocking work leaves the async worker on a real database, and runs
    /// in place (on the caller's thread) on a deterministic test database.
    #[tokio::test]
    async fn blocking_work_runs_off_the_worker_unless_inline() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let metrics = Arc::new(RaftMetricsSet::unregistered());
        let here = std::thread::current().id();
        let db = Db::open(&dir.path().join("real"), false, MemoryBudget::SMALLEST, metrics).expect("open");
        let (there, count) = db
            .run_blocking(|db| (std::thread::current().id(), db.raw().iterator(rocksdb::IteratorMode::Start).count()))
            .await;
        assert_ne!(there, here);
        assert_eq!(count, 0);
        let inline = Db::open_inline(&dir.path().join("inline")).expect("open");
        assert_eq!(inline.run_blocking(|_| std::thread::current().id()).await, here);
    }

    /// Writing four times the budget keeps the memtables of all column
    /// families under their half and the block cache (which the memtables
    /// are charged to) at its capacity.
    #[tokio::test]
    async fn rocksdb_stays_within_its_memory_budget() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let budget = MemoryBudget::SMALLEST;
        let db = Db::open(dir.path(), false, budget, Arc::new(RaftMetricsSet::unregistered())).expect("open");
        let value = vec![7u8; 4096];
        let mut peak_memtables = 0;
        for batch in 0..(4 * budget.0 / (64 * 4096)) {
            let ops =
                (0..64).map(|i| Op::Put(Cf::State, format!("{batch:08}-{i:03}").into_bytes(), value.clone())).collect();
            db.write_durable(ops).await.expect("write");
            let memtables: u64 = [Cf::Log, Cf::Meta, Cf::State]
                .iter()
                .map(|cf| db.raw().property_int_value_cf(db.cf(*cf), "rocksdb.cur-size-all-mem-tables"))
                .map(|v| v.expect("property").unwrap_or(0))
                .sum();
            peak_memtables = peak_memtables.max(memtables);
        }
        let slack = 2 << 20;
        assert!(peak_memtables <= (budget.0 / 2 + slack) as u64, "memtables reached {peak_memtables} bytes");
        let cache = db.raw().property_int_value_cf(db.cf(Cf::State), "rocksdb.block-cache-usage").expect("property");
        assert!(cache.unwrap_or(0) <= (budget.0 + slack) as u64, "the block cache holds {cache:?} bytes");
    }
}
