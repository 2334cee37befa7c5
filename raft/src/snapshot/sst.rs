//! The blocking halves of snapshots: writing a group's state from a RocksDB
//! snapshot into an SST file, checking a file against its id, and
//! ingesting it. Each runs on a blocking thread
//! ([`crate::db::Db::run_blocking`]) and holds at most one SST block, one
//! read buffer and the file's index in memory (the index grows with the
//! state, at about 0.2% of it: see [`BLOCK_BYTES`]).

use super::error::{SnapshotError, io_error};
use super::file::{TempPath, sync_dir};
use super::id::SnapshotId;
use crate::db::{Cf, Db};
use crate::keys::{self, MetaKind};
use crate::types::{decode, typ};
use rocksdb::{BlockBasedOptions, IngestExternalFileOptions, Options, ReadOptions, SstFileWriter};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Uncompressed size of an SST data block. The writer keeps one index entry
/// per block in memory until the file is finished: 16 KiB blocks keep that
/// near 0.2% of the state (about 1 MiB for 500 MiB).
const BLOCK_BYTES: usize = 16 << 10;

/// Bytes read at once when checksumming a file.
const READ_BYTES: usize = 1 << 20;

/// Writes `group`'s state as of one RocksDB snapshot into `partial`, then
/// keeps it in `dir` under its id's name. The applied log id and the
/// membership are read from the same RocksDB snapshot, so the three agree.
///
/// The file starts with a range deletion of the group's whole key range:
/// ingested, it removes every key the group had and puts the snapshot's
/// in one step (a range deletion in an SST does not delete the file's own
/// keys).
pub(super) fn write(
    db: &Db,
    group: u32,
    dir: &Path,
    partial: TempPath,
) -> Result<(typ::SnapshotMeta, PathBuf), SnapshotError> {
    let snap = db.raw().snapshot();
    let read_meta = |kind| snap.get_cf(db.cf(Cf::Meta), keys::meta_key(group, kind));
    let last_log_id: Option<typ::LogId> = match read_meta(MetaKind::Applied)? {
        Some(bytes) => decode(&bytes)?,
        None => None,
    };
    let last_membership: typ::StoredMembership = match read_meta(MetaKind::Membership)? {
        Some(bytes) => decode(&bytes)?,
        None => Default::default(),
    };

    let options = sst_options();
    let mut writer = SstFileWriter::create(&options);
    writer.open(partial.path())?;
    let (start, end) = keys::group_range(group);
    writer.delete_range(&start, &end)?;
    let mut read = ReadOptions::default();
    read.set_iterate_upper_bound(end);
    // One pass over everything: caching its blocks would only evict what
    // the node reads.
    read.fill_cache(false);
    let mut iter = snap.raw_iterator_cf_opt(db.cf(Cf::State), read);
    iter.seek(&start);
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        writer.put(key, value)?;
        iter.next();
    }
    iter.status()?;
    writer.finish()?;

    let (len, checksum) = sum(partial.path())?;
    let id = SnapshotId { last: last_log_id.map(|l| (l.leader_id.term, l.index)), len, checksum };
    let path = dir.join(id.file_name());
    partial.keep(&path).map_err(io_error(&path))?;
    Ok((typ::SnapshotMeta { last_log_id, last_membership, snapshot_id: id.to_string() }, path))
}

/// Options of snapshot SST files: the state column family's comparator
/// (the default) and compression.
fn sst_options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_size(BLOCK_BYTES);
    let mut options = Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_block_based_table_factory(&table);
    options
}

/// Checks that the file at `path` is the one `id` names (its length and
/// checksum), and syncs it: a received file is verified before it may
/// replace anything.
pub(super) fn verify(path: &Path, id: SnapshotId) -> Result<(), SnapshotError> {
    let (len, checksum) = sum(path)?;
    if (len, checksum) != (id.len, id.checksum) {
        return Err(SnapshotError::Corrupt { id: id.to_string(), len, checksum });
    }
    Ok(())
}

/// The length and xxh3-64 of the file at `path`, read in bounded pieces;
/// syncs the file on the way, as its sum is about to be relied on.
fn sum(path: &Path) -> Result<(u64, u64), SnapshotError> {
    let error = io_error(path);
    let mut file = fs::File::open(path).map_err(&error)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; READ_BYTES];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(&error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    file.sync_all().map_err(&error)?;
    Ok((len, hasher.digest()))
}

/// Ingests the snapshot file at `path` into the state column family. The
/// ingestion is atomic: readers see the group's old state or the
/// snapshot's, never a mix (the file's range deletion and its keys get one
/// sequence number). RocksDB takes the file over through a hard link of
/// its own (the file is not copied, and the snapshot's file stays as it
/// is: RocksDB never writes to an ingested file), and the ingestion is
/// durable when this returns. Repeating it is harmless: the state is the
/// snapshot's either way.
pub(super) fn ingest(db: &Db, path: &Path) -> Result<(), SnapshotError> {
    // RocksDB "moves" the file it is given: links it into the database and
    // unlinks the name it was given, so it is given a second name.
    let link = path.with_extension("ingest");
    let error = io_error(&link);
    match fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(error(e)),
        _ => {}
    }
    fs::hard_link(path, &link).map_err(&error)?;
    sync_dir(&link).map_err(&error)?;
    let mut options = IngestExternalFileOptions::default();
    options.set_move_files(true);
    db.raw().ingest_external_file_cf_opts(db.cf(Cf::State), &options, vec![&link])?;
    Ok(())
}
