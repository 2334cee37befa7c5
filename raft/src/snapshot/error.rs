//! What can go wrong with a snapshot.

use crate::types::CodecError;
use std::io;
use std::path::{Path, PathBuf};

/// Errors building, storing, receiving or installing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// RocksDB refused a read, an SST write or an ingestion.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A snapshot file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The durable write of the snapshot's records failed.
    #[error("storing the snapshot record: {0}")]
    Write(#[source] io::Error),
    /// A stored record does not decode.
    #[error("stored snapshot metadata: {0}")]
    Codec(#[from] CodecError),
    /// The id is not one this version writes (an in-memory snapshot of an
    /// earlier version, or garbage).
    #[error("{0:?} is not a snapshot id of this version (term-index-length-checksum)")]
    BadId(String),
    /// The id names another log position than the metadata it came with.
    #[error("snapshot id {0} disagrees with its metadata's last log id")]
    Mismatch(String),
    /// The file is not what its id promises: truncated or damaged.
    #[error(
        "snapshot {id} is damaged or incomplete: its file holds {len} bytes with checksum {checksum:016x}, \
         not what the id promises"
    )]
    Corrupt {
        /// The snapshot's id (it holds the expected length and checksum).
        id: String,
        /// The file's length.
        len: u64,
        /// The file's checksum.
        checksum: u64,
    },
}

/// Turns an I/O error on `path` into a [`SnapshotError`].
pub(crate) fn io_error(path: &Path) -> impl Fn(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_owned(), source }
}
