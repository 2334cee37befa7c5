//! Snapshots of a group as files, so that no snapshot is ever held in
//! memory whole, whatever the partition's size.
//!
//! **Format.** A snapshot is an SST file (RocksDB's own table format, LZ4
//! blocks with per-block checksums) holding the group's `state` keys as of
//! one RocksDB snapshot, plus a range deletion of the group's whole key
//! range. Its id ([`SnapshotId`], openraft's `snapshot_id`) carries the
//! file's length and xxh3-64, and the file is named after it, in
//! `<RocksDB dir>/snapshots/<group>/` (RocksDB leaves files it does not
//! know alone). The group's `meta` records only the current snapshot's
//! metadata ([`MetaKind::Snapshot`]).
//!
//! **Build** ([`Snapshots::build`]): on a blocking thread, a RocksDB
//! snapshot's iterator feeds an `SstFileWriter`, which holds one block and
//! the file's index at a time; the applied log id and membership come from
//! the same RocksDB snapshot. The file is synced and renamed into place
//! before the record naming it is written, so a record never names a
//! missing file.
//!
//! **Transfer**: openraft's chunked `install_snapshot`, which reads the
//! file one chunk at a time on the leader and writes it one chunk at a time
//! into a partial file on the follower ([`SnapshotFile`]). The last chunk's
//! answer waits for the install.
//!
//! **Install** ([`Snapshots::install`]), atomic across a crash in three
//! durable steps: (1) the received file is checked against its id and kept
//! under its name; (2) an install marker ([`MetaKind::SnapshotInstall`])
//! names it; (3) the file is ingested into RocksDB, which swaps the group's
//! state for the snapshot's in one step, and one synced batch then writes
//! the applied log id, the membership and the snapshot record and deletes
//! the marker. Readers see the old state or the new one, never a mix (the
//! ingestion is atomic); openraft sees the old applied id until the batch.
//! A crash after (2) leaves the marker, and the next start
//! ([`Snapshots::recover`], before openraft reads the applied id) ingests
//! the file again (harmless if it was ingested already) and writes the
//! batch; a crash before (2) leaves the old state and id untouched.
//! Writing the state in batches instead would expose half-installed state
//! to readers and need the same redo, with twice the disk writes.
//!
//! **Cleanup.** Storing a snapshot removes the file of the one it replaces
//! (a transfer still reading it keeps its open handle). A partial file is
//! removed when its build fails or its transfer is abandoned, and at start
//! every file but the current snapshot's goes.
//!
//! **Earlier versions** kept the snapshot as one value under a retired key
//! ([`MetaKind::InlineSnapshot`]). It is never read: such a node starts
//! with no current snapshot, openraft builds one at start when the log was
//! purged, and storing it deletes the old value. Snapshots are not
//! exchanged with nodes of those versions: a chunk whose id has the old
//! form is refused before anything is written ([`SnapshotId::parse`], in
//! [`crate::handler`]), and those versions cannot read these files.

mod error;
pub mod file;
mod id;
mod sst;
#[cfg(test)]
mod tests;

pub use error::SnapshotError;
pub use file::SnapshotFile;
pub use id::SnapshotId;

use crate::db::{Cf, Db, Op};
use crate::keys::{self, MetaKind};
use crate::types::{CodecError, decode, encode, typ};
use error::io_error;
use file::TempPath;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The snapshots of one group on this node: the current one and those
/// being built or received.
pub struct Snapshots {
    group: u32,
    db: Arc<Db>,
    dir: PathBuf,
    /// Held while the current snapshot is read or replaced: a build may
    /// finish while an install runs, and a file must not go while it is
    /// being opened.
    current: tokio::sync::Mutex<()>,
    /// Numbers the partial files of builds and transfers.
    partials: AtomicU64,
}

impl Snapshots {
    /// The snapshots of `group` in `db`'s directory.
    pub fn new(group: u32, db: Arc<Db>) -> Snapshots {
        let dir = db.raw().path().join("snapshots").join(group.to_string());
        Snapshots { group, db, dir, current: tokio::sync::Mutex::new(()), partials: AtomicU64::new(0) }
    }

    /// Finishes an install a crash interrupted, then removes every file
    /// that is not the current snapshot (partial builds and transfers,
    /// replaced snapshots). Runs when the group starts, before openraft
    /// reads the applied log id and before anything reads the state.
    pub async fn recover(&self) -> Result<(), SnapshotError> {
        if let Some(meta) = read_meta::<typ::SnapshotMeta>(&self.db, self.group, MetaKind::SnapshotInstall)? {
            tracing::info!(partition = self.group, snapshot = %meta.snapshot_id, "finishing an interrupted snapshot install");
            self.switch_to(&meta).await?;
        }
        let keep = self.current_meta()?.map(|(_, id)| id.file_name());
        let dir = self.dir.clone();
        self.db.run_blocking(move |_| remove_all_but(&dir, keep.as_deref())).await
    }

    /// Builds a snapshot of the group's applied state and makes it the
    /// current one, unless a newer one became current meanwhile.
    pub async fn build(&self) -> Result<typ::Snapshot, SnapshotError> {
        let (group, dir, partial) = (self.group, self.dir.clone(), self.partial());
        let (meta, path) = self
            .db
            .run_blocking(move |db| {
                fs::create_dir_all(&dir).map_err(io_error(&dir))?;
                sst::write(db, group, &dir, partial)
            })
            .await?;
        // Opened before it may be replaced: the handle stays readable.
        let file = SnapshotFile::open(path.clone(), self.db.runs_inline()).await.map_err(io_error(&path))?;
        let _current = self.current.lock().await;
        let previous = self.current_meta()?;
        if previous.as_ref().is_some_and(|(p, _)| p.last_log_id > meta.last_log_id) {
            // An install overtook this build: its state is already older
            // than the group's.
            self.remove(path).await;
        } else {
            self.replace(previous, &meta, Vec::new()).await?;
        }
        Ok(typ::Snapshot { meta, snapshot: Box::new(file) })
    }

    /// The current snapshot, open for reading.
    pub async fn current(&self) -> Result<Option<typ::Snapshot>, SnapshotError> {
        let _current = self.current.lock().await;
        let Some((meta, id)) = self.current_meta()? else { return Ok(None) };
        let path = self.dir.join(id.file_name());
        let file = SnapshotFile::open(path.clone(), self.db.runs_inline()).await.map_err(io_error(&path))?;
        Ok(Some(typ::Snapshot { meta, snapshot: Box::new(file) }))
    }

    /// A new partial file to receive a snapshot into.
    pub async fn begin_receiving(&self) -> Result<SnapshotFile, SnapshotError> {
        // Creating a directory is a metadata operation, like the file's own creation.
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let path = self.partial_path();
        SnapshotFile::create(path.clone(), self.db.runs_inline()).await.map_err(io_error(&path))
    }

    /// Replaces the group's state, applied log id and membership with the
    /// snapshot `meta` describes, whose data is `file` (see the module
    /// comment for the steps and why they are atomic). A file that fails
    /// its check against the id changes nothing.
    pub async fn install(&self, meta: &typ::SnapshotMeta, file: SnapshotFile) -> Result<(), SnapshotError> {
        self.stage(meta, file).await?;
        self.switch_to(meta).await
    }

    /// Steps 1 and 2 of an install: checks the file against its id, keeps
    /// it under its name and writes the install marker.
    async fn stage(&self, meta: &typ::SnapshotMeta, file: SnapshotFile) -> Result<(), SnapshotError> {
        let id = SnapshotId::of(meta)?;
        let (source, received) = (file.path().to_owned(), file.close().await);
        let received = received.map_err(io_error(&source))?;
        let (dest, partial) = (self.dir.join(id.file_name()), self.partial());
        self.db
            .run_blocking(move |_| {
                // A file received here is checked and kept as it is; any
                // other (a stored snapshot handed over whole, as openraft's
                // storage tests do) is copied first.
                let file = match received {
                    Some(received) => received,
                    None => {
                        fs::copy(&source, partial.path()).map_err(io_error(partial.path()))?;
                        partial
                    }
                };
                sst::verify(file.path(), id)?;
                file.keep(&dest).map_err(io_error(&dest))
            })
            .await?;
        let marker = meta_put(self.group, MetaKind::SnapshotInstall, meta)?;
        self.db.write_durable(vec![marker]).await.map_err(SnapshotError::Write)
    }

    /// Step 3 of an install: ingests the kept file, then switches the
    /// applied id, membership and current snapshot to it and deletes the
    /// marker, in one synced batch.
    async fn switch_to(&self, meta: &typ::SnapshotMeta) -> Result<(), SnapshotError> {
        let path = self.dir.join(SnapshotId::of(meta)?.file_name());
        self.db.run_blocking(move |db| sst::ingest(db, &path)).await?;
        let switch = vec![
            meta_put(self.group, MetaKind::Applied, &meta.last_log_id)?,
            meta_put(self.group, MetaKind::Membership, &meta.last_membership)?,
            Op::Delete(Cf::Meta, keys::meta_key(self.group, MetaKind::SnapshotInstall).to_vec()),
        ];
        let _current = self.current.lock().await;
        let previous = self.current_meta()?;
        self.replace(previous, meta, switch).await
    }

    /// Makes `meta` the current snapshot in one synced batch with `ops`
    /// (dropping the retired inline snapshot of earlier versions), then
    /// removes the file of `previous` unless it is the same file. The
    /// caller holds `current`.
    async fn replace(
        &self,
        previous: Option<(typ::SnapshotMeta, SnapshotId)>,
        meta: &typ::SnapshotMeta,
        mut ops: Vec<Op>,
    ) -> Result<(), SnapshotError> {
        let name = SnapshotId::of(meta)?.file_name();
        ops.push(meta_put(self.group, MetaKind::Snapshot, meta)?);
        ops.push(Op::Delete(Cf::Meta, keys::meta_key(self.group, MetaKind::InlineSnapshot).to_vec()));
        self.db.write_durable(ops).await.map_err(SnapshotError::Write)?;
        if let Some((_, old)) = previous
            && old.file_name() != name
        {
            self.remove(self.dir.join(old.file_name())).await;
        }
        Ok(())
    }

    /// The current snapshot's metadata and id.
    fn current_meta(&self) -> Result<Option<(typ::SnapshotMeta, SnapshotId)>, SnapshotError> {
        let Some(meta) = read_meta::<typ::SnapshotMeta>(&self.db, self.group, MetaKind::Snapshot)? else {
            return Ok(None);
        };
        let id = SnapshotId::of(&meta)?;
        Ok(Some((meta, id)))
    }

    /// Removes a replaced snapshot's file (freeing a large file's blocks
    /// takes a while). A file that cannot go is only logged: it holds no
    /// state anybody needs, and the next start removes it.
    async fn remove(&self, path: PathBuf) {
        self.db
            .run_blocking(move |_| {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(file = %path.display(), "cannot remove a replaced snapshot file: {e}");
                }
            })
            .await
    }

    /// A fresh partial file's name.
    fn partial_path(&self) -> PathBuf {
        self.dir.join(format!("{}.partial", self.partials.fetch_add(1, Ordering::Relaxed)))
    }

    /// A fresh partial file, removed unless kept.
    fn partial(&self) -> TempPath {
        TempPath::new(self.partial_path())
    }
}

/// Removes every file in `dir` but `keep`.
fn remove_all_but(dir: &Path, keep: Option<&str>) -> Result<(), SnapshotError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_error(dir))?.path();
        if path.file_name().and_then(|n| n.to_str()) != keep {
            tracing::info!(file = %path.display(), "removing a stale snapshot file");
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

/// Reads and decodes one of `group`'s metadata records.
pub(crate) fn read_meta<T: DeserializeOwned>(db: &Db, group: u32, kind: MetaKind) -> Result<Option<T>, SnapshotError> {
    Ok(db.get_meta(group, kind)?.map(|bytes| decode(&bytes)).transpose()?)
}

/// The write of one of `group`'s metadata records.
pub(crate) fn meta_put<T: Serialize>(group: u32, kind: MetaKind, value: &T) -> Result<Op, CodecError> {
    Ok(Op::Put(Cf::Meta, keys::meta_key(group, kind).to_vec(), encode(value)?))
}
