//! Exclusive ownership of the data directory.
//!
//! Two keel processes on one data directory would corrupt each other's Raft
//! logs, so the first one takes an advisory lock on `keel.lock` for its whole
//! life (the OS drops it when the process dies, even on `kill -9`), and a
//! second one fails at startup with a clear message.

use anyhow::{Context, Result, bail};
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Holds the lock until dropped.
pub struct DataDirLock {
    _file: File,
}

/// Creates `dir` if needed and locks it.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("keel.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "data directory {} is locked by another running keel (pid {}); stop it or use another --data-dir",
            dir.display(),
            holder.trim()
        );
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    write!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_dir_fails_with_clear_message() {
        let dir = std::env::temp_dir().join(format!("keel-lock-test-{}", std::process::id()));
        let first = lock_data_dir(&dir).expect("first lock");
        let err = lock_data_dir(&dir).err().expect("second lock must fail").to_string();
        assert!(err.contains("locked by another running keel"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        lock_data_dir(&dir).expect("lock again after release");
        std::fs::remove_dir_all(&dir).ok();
    }
}
