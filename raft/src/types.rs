//! openraft type configuration and the codec used for everything keel stores
//! or sends about Raft.

use keel_partition::{Envelope, Response};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The payload of one Raft log entry: a batch of commands proposed together.
/// Batching concurrent proposals into one entry is what lets many writers
/// share one fsync (group commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Envelope>);

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {}", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Raft types of every keel group.
    pub TypeConfig:
        D = Batch,
        R = Vec<Response>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = crate::snapshot::file::SnapshotFile,
        AsyncRuntime = crate::runtime::KeelRuntime,
);

/// Shorthands for openraft types instantiated with [`TypeConfig`].
pub mod typ {
    use super::TypeConfig;
    /// A Raft instance of one group.
    pub type Raft = openraft::Raft<TypeConfig>;
    /// A log entry.
    pub type Entry = openraft::Entry<TypeConfig>;
    /// A log id.
    pub type LogId = openraft::LogId<u64>;
    /// A vote.
    pub type Vote = openraft::Vote<u64>;
    /// Membership as stored with its log id.
    pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
    /// A snapshot.
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    /// Storage errors as openraft wants them.
    pub type StorageError = openraft::StorageError<u64>;
    /// Raft metrics.
    pub type RaftMetrics = openraft::RaftMetrics<u64, openraft::BasicNode>;
}

/// First byte of every stored value: lets a future format coexist with this one.
const FORMAT_V1: u8 = 1;

/// Errors of the stored/wire codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed (a type that bincode cannot represent).
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid value of the expected type.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The format version byte is unknown.
    #[error("unknown format version {0}")]
    Version(u8),
}

/// Encodes a value with the version byte and bincode's standard config.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())?;
    Ok(out)
}

/// The length of [`encode`]'s output for `value`, without building it.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    let mut count = bincode::enc::write::SizeWriter::default();
    // Counting cannot fail; a value bincode cannot encode fails later, in
    // `encode`, with its real error.
    let _ = bincode::serde::encode_into_writer(value, &mut count, bincode::config::standard());
    1 + count.bytes_written
}

/// Decodes a value written by [`encode`]. The bytes may come from a peer
/// that lies, so lengths inside are bounded by the input's size
/// ([`keel_partition::codec::decode_bounded`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => Ok(keel_partition::codec::decode_bounded(rest)?),
        Some((&v, _)) => Err(CodecError::Version(v)),
        None => Err(CodecError::Version(0)),
    }
}
