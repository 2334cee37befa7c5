//! What the soak samples from the server besides its answers: the resident
//! memory of its process and the size of its data directory. Both come from
//! the outside (`/proc` and the file system), so keel and Restate are
//! measured the same way, with nothing asked of either server.

use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::path::Path;

const MIB: f64 = 1024.0 * 1024.0;

/// The server's footprint at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Resident set size of the server process, MiB.
    pub rss_mib: f64,
    /// Sum of the sizes of the files under the data directory, MiB.
    pub data_mib: f64,
}

/// Samples process `pid` and directory `data_dir`. A process that is gone is
/// an error: a server that died under the soak must stop it loudly.
pub fn sample(pid: u32, data_dir: &Path) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status: is the server still running?"))?;
    let rss_kib = vm_rss_kib(&status).with_context(|| format!("no VmRSS line in /proc/{pid}/status"))?;
    let data = dir_bytes(data_dir).with_context(|| format!("measuring {}", data_dir.display()))?;
    Ok(Sample { rss_mib: rss_kib as f64 * 1024.0 / MIB, data_mib: data as f64 / MIB })
}

/// The `VmRSS` of a `/proc/<pid>/status` text, in KiB (the kernel writes
/// "kB" but means 1024 bytes).
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Apparent size of everything under `dir`: the bytes the files hold, not
/// the blocks they occupy, so RocksDB's preallocated WAL tail does not count
/// as data. Symbolic links are not followed. Files that vanish during the
/// walk (compactions delete SST files all the time) are skipped.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let meta = match std::fs::symlink_metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_its_line() {
        let status = "Name:\tkeel\nVmPeak:\t  900000 kB\nVmHWM:\t  120000 kB\nVmRSS:\t   93184 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(vm_rss_kib(status), Some(93184));
        assert_eq!(vm_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn own_process_has_a_resident_size() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = sample(std::process::id(), dir.path())?;
        assert!(s.rss_mib > 1.0, "{s:?}");
        assert_eq!(s.data_mib, 0.0);
        Ok(())
    }

    #[test]
    fn gone_process_is_an_error() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // Above the kernel's pid_max limit (2^22), so no process has it.
        assert!(sample(u32::MAX - 1, dir.path()).is_err());
        Ok(())
    }

    #[test]
    fn dir_bytes_sums_nested_files_and_skips_links() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), vec![0u8; 1000])?;
        std::fs::create_dir_all(dir.path().join("x/y"))?;
        std::fs::write(dir.path().join("x/b"), vec![0u8; 24])?;
        std::fs::write(dir.path().join("x/y/c"), vec![0u8; 3 * 1024 * 1024])?;
        std::os::unix::fs::symlink(dir.path().join("x"), dir.path().join("loop"))?;
        assert_eq!(dir_bytes(dir.path())?, 1000 + 24 + 3 * 1024 * 1024);
        assert_eq!(dir_bytes(&dir.path().join("missing"))?, 0);
        Ok(())
    }
}
