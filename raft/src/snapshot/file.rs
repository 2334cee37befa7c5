//! The snapshot data openraft handles: an open snapshot file.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// openraft's `SnapshotData`: a snapshot file, read when a snapshot is sent
/// to a follower and written when one is received. openraft's chunked
/// transfer reads and writes it one chunk at a time
/// (`snapshot_max_chunk_size`, 3 MiB), so neither side ever holds more of
/// a snapshot than one chunk.
///
/// On a node its reads and writes run on tokio's blocking pool (a
/// `tokio::fs::File`), off the async workers. In [`crate::db::Db::open_inline`]'s
/// deterministic mode they run inline instead, as all of that mode's
/// storage work does, so a seeded test replays the same run.
#[derive(Debug)]
pub struct SnapshotFile {
    io: Io,
    path: PathBuf,
    /// Set while the file is being received: it is removed if dropped
    /// before an install took it (a transfer abandoned for a newer one).
    temp: Option<TempPath>,
}

#[derive(Debug)]
enum Io {
    /// Reads and writes on tokio's blocking pool.
    Pool(tokio::fs::File),
    /// Reads and writes inline (deterministic tests).
    Inline(fs::File),
}

impl SnapshotFile {
    /// Opens a stored snapshot for reading.
    pub(super) async fn open(path: PathBuf, inline: bool) -> io::Result<SnapshotFile> {
        let io =
            if inline { Io::Inline(fs::File::open(&path)?) } else { Io::Pool(tokio::fs::File::open(&path).await?) };
        Ok(SnapshotFile { io, path, temp: None })
    }

    /// Creates a file to receive a snapshot into; removed when dropped
    /// unless an install takes it.
    pub(super) async fn create(path: PathBuf, inline: bool) -> io::Result<SnapshotFile> {
        let temp = TempPath::new(path.clone());
        let io =
            if inline { Io::Inline(fs::File::create(&path)?) } else { Io::Pool(tokio::fs::File::create(&path).await?) };
        Ok(SnapshotFile { io, path, temp: Some(temp) })
    }

    /// Where the file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file, once everything written reached the OS. Returns the
    /// file's removal guard if it was being received (the install then
    /// owns the file), `None` for a stored snapshot.
    pub(super) async fn close(mut self) -> io::Result<Option<TempPath>> {
        if let Io::Pool(file) = &mut self.io {
            tokio::io::AsyncWriteExt::flush(file).await?;
        }
        Ok(self.temp.take())
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).poll_read(cx, buf),
            Io::Inline(file) => {
                let n = file.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).poll_write(cx, buf),
            Io::Inline(file) => Poll::Ready(file.write(buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).poll_flush(cx),
            Io::Inline(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).poll_shutdown(cx),
            Io::Inline(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).start_seek(position),
            Io::Inline(file) => file.seek(position).map(drop),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match &mut self.get_mut().io {
            Io::Pool(file) => Pin::new(file).poll_complete(cx),
            Io::Inline(file) => Poll::Ready(file.stream_position()),
        }
    }
}

/// A file that is removed when dropped, unless it was kept under its final
/// name: a snapshot being built or received, which must not outlive a
/// failure.
#[derive(Debug)]
pub(super) struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    /// A guard over `path`.
    pub(super) fn new(path: PathBuf) -> TempPath {
        TempPath { path, armed: true }
    }

    /// The guarded file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `to` durably: the rename is synced with its
    /// directory, so after a crash the file is there under its new name
    /// (the caller synced the file's contents).
    pub(super) fn keep(mut self, to: &Path) -> io::Result<()> {
        fs::rename(&self.path, to)?;
        self.armed = false;
        sync_dir(to)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        // Unlinking is a metadata operation; a file left behind by a failure
        // here is removed at the next start.
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Syncs the directory holding `path`, making a rename or creation in it durable.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
