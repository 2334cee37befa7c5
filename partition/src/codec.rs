//! The binary encoding of the records this crate stores itself (catalog,
//! invocations, outbox, promises): bincode 2 in its standard configuration.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes a stored record. The records are plain structs and enums, which
/// bincode always encodes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("stored records are plain structs and enums, which bincode always encodes")
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v).map_err(|e| e.to_string())
}
