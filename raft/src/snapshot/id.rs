//! Snapshot ids: what names a snapshot file and lets a receiver check it.

use super::error::SnapshotError;
use crate::types::typ;
use std::fmt;

/// openraft's `snapshot_id` of a keel snapshot: the log position it covers
/// plus the length and xxh3-64 of its file, as
/// `<term>-<index>-<length>-<checksum>` (`none-<length>-<checksum>` for a
/// group with nothing applied). The id travels with every chunk of a
/// transfer, so the receiver knows what the file it assembled must hold,
/// and it names the file on disk. Ids are parsed before they name
/// anything, and file names are built from the parsed numbers, so a
/// peer's id can never reach outside the snapshot directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotId {
    /// Term and index of the last log entry the snapshot covers.
    pub last: Option<(u64, u64)>,
    /// Length of the file in bytes.
    pub len: u64,
    /// xxh3-64 of the file.
    pub checksum: u64,
}

impl SnapshotId {
    /// Parses an id as [`fmt::Display`] writes it, and only that way: ids of
    /// other formats (the in-memory snapshots of earlier versions) are
    /// refused.
    pub fn parse(id: &str) -> Result<SnapshotId, SnapshotError> {
        let bad = || SnapshotError::BadId(id.to_string());
        let parts: Vec<&str> = id.split('-').collect();
        let (last, len, checksum) = match parts.as_slice() {
            ["none", len, checksum] => (None, len, checksum),
            [term, index, len, checksum] => {
                (Some((term.parse().map_err(|_| bad())?, index.parse().map_err(|_| bad())?)), len, checksum)
            }
            _ => return Err(bad()),
        };
        let parsed = SnapshotId {
            last,
            len: len.parse().map_err(|_| bad())?,
            checksum: u64::from_str_radix(checksum, 16).map_err(|_| bad())?,
        };
        // One spelling per id ("+1", "01" or upper-case hex would parse too).
        if parsed.to_string() != id {
            return Err(bad());
        }
        Ok(parsed)
    }

    /// The id of `meta`, which must cover the log position its id names.
    pub fn of(meta: &typ::SnapshotMeta) -> Result<SnapshotId, SnapshotError> {
        let id = SnapshotId::parse(&meta.snapshot_id)?;
        if id.last != meta.last_log_id.map(|l| (l.leader_id.term, l.index)) {
            return Err(SnapshotError::Mismatch(meta.snapshot_id.clone()));
        }
        Ok(id)
    }

    /// The name of the snapshot's file.
    pub fn file_name(&self) -> String {
        format!("{self}.sst")
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last {
            Some((term, index)) => write!(f, "{term}-{index}-{}-{:016x}", self.len, self.checksum),
            None => write!(f, "none-{}-{:016x}", self.len, self.checksum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_name_files() {
        let id = SnapshotId { last: Some((3, 120)), len: 4096, checksum: 0xab };
        assert_eq!(id.to_string(), "3-120-4096-00000000000000ab");
        assert_eq!(SnapshotId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(id.file_name(), "3-120-4096-00000000000000ab.sst");
        let empty = SnapshotId { last: None, len: 10, checksum: u64::MAX };
        assert_eq!(SnapshotId::parse(&empty.to_string()).unwrap(), empty);
    }

    #[test]
    fn foreign_and_hostile_ids_are_refused() {
        for id in [
            "3-120-5000",                       // an in-memory snapshot of an earlier version
            "empty-5000",                       // its empty form
            "3-120-4096-+0000000000000ab",      // a second spelling
            "3-120-4096-00000000000000AB",      // upper-case hex
            "../../etc/passwd",                 // a path
            "3-120-4096-00000000000000ab/../x", // a path behind a valid prefix
            "",
        ] {
            assert!(matches!(SnapshotId::parse(id), Err(SnapshotError::BadId(_))), "{id:?} was accepted");
        }
    }
}
