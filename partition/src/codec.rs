//! The binary encoding of everything keel stores or sends between nodes:
//! bincode 2 in its standard configuration, decoded with a size limit.
//!
//! # Why a limit
//!
//! bincode writes a collection or string as a length followed by its
//! elements, and its decoder allocates for that length *before* it reads the
//! elements. Without a limit, a handful of forged bytes ("a string of 2⁶²
//! bytes follows") makes the decoder ask for exabytes and aborts the whole
//! process. bincode's configured limit bounds the bytes a decode may claim,
//! so a lying length fails with `LimitExceeded` instead.
//!
//! The limit is a type parameter in bincode, but what a legitimate value may
//! claim depends on its input: a decoded value claims the in-memory size of
//! every field it reads (8 bytes for a `u64` that a varint stored in one), so
//! an honest value claims at most about [`CLAIM_PER_INPUT_BYTE`] times its
//! encoded length. [`decode_bounded`] therefore picks the smallest limit tier
//! that admits that much for the given input: a forged 19-byte payload may
//! claim at most a megabyte, a real 200 MiB replication message what it needs.

use bincode::config::standard;
use bincode::error::DecodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes an honest decode may claim per input byte (a one-byte varint
/// decoded into a `u64` or `usize` claims 8; enum tags claim 4).
pub const CLAIM_PER_INPUT_BYTE: usize = 16;

/// Encodes a stored record. The records are plain structs and enums, which
/// bincode always encodes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, standard())
        .expect("stored records are plain structs and enums, which bincode always encodes")
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_bounded(bytes).map_err(|e| e.to_string())
}

/// Decodes a bincode (standard configuration) value from `bytes`, refusing
/// any value that claims more memory than an honest encoding of that length
/// could (see the module docs). Trailing bytes are ignored, as bincode does.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let claim = bytes.len().saturating_mul(CLAIM_PER_INPUT_BYTE);
    // Tiers rather than one limit: the limit is a const generic, and a
    // single large one would let any tiny forged input allocate that much.
    if claim <= 1 << 20 {
        with_limit::<T, { 1 << 20 }>(bytes)
    } else if claim <= 16 << 20 {
        with_limit::<T, { 16 << 20 }>(bytes)
    } else if claim <= 256 << 20 {
        with_limit::<T, { 256 << 20 }>(bytes)
    } else if claim <= 1 << 30 {
        with_limit::<T, { 1 << 30 }>(bytes)
    } else {
        with_limit::<T, { 4 << 30 }>(bytes)
    }
}

fn with_limit<T: DeserializeOwned, const N: usize>(bytes: &[u8]) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice(bytes, standard().with_limit::<N>()).map(|(value, _)| value)
}

/// `#[serde(with)]` for a list of byte strings: each one written as a
/// block, which bincode copies in one go (a plain `Vec<u8>` goes through
/// serde byte by byte). The encoding is the same as the plain list's.
pub(crate) mod byte_list {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(crate) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| Bytes::new(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// `#[serde(with)]` for a map of names to byte strings (object state), each
/// value written as a block; the same encoding as the plain map's.
pub(crate) mod byte_map {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};
    use std::collections::BTreeMap;

    pub(crate) fn serialize<S: Serializer>(map: &BTreeMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k, Bytes::new(v))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        Ok(BTreeMap::<String, ByteBuf>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.into_vec())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_values() {
        let value = (42u64, "hello".to_string(), vec![1u8, 2, 3], Some(vec![7u32; 1000]));
        let back: (u64, String, Vec<u8>, Option<Vec<u32>>) = decode_bounded(&encode(&value)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn byte_blocks_encode_like_plain_byte_lists() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Blocks {
            #[serde(with = "serde_bytes")]
            one: Vec<u8>,
            #[serde(with = "byte_list")]
            list: Vec<Vec<u8>>,
            #[serde(with = "byte_map")]
            map: std::collections::BTreeMap<String, Vec<u8>>,
        }
        type Plain = (Vec<u8>, Vec<Vec<u8>>, std::collections::BTreeMap<String, Vec<u8>>);
        let plain: Plain = (vec![1, 2, 255], vec![vec![], vec![7; 300]], [("a".to_string(), vec![9; 5])].into());
        let blocks = Blocks { one: plain.0.clone(), list: plain.1.clone(), map: plain.2.clone() };
        // Stored records and log entries written before keep decoding.
        assert_eq!(encode(&blocks), encode(&plain));
        assert_eq!(decode_bounded::<Blocks>(&encode(&plain)).unwrap(), blocks);
    }

    #[test]
    fn large_honest_values_fit_their_tier() {
        // A 20 MiB byte string and a long vector of small integers (each a
        // one-byte varint that decodes into 8 bytes).
        let blob = vec![7u8; 20 << 20];
        assert_eq!(decode_bounded::<Vec<u8>>(&encode(&blob)).unwrap().len(), blob.len());
        let small = vec![1u64; 1 << 20];
        assert_eq!(decode_bounded::<Vec<u64>>(&encode(&small)).unwrap(), small);
    }

    #[test]
    fn forged_lengths_are_refused_without_allocating() {
        // A varint length marker 0xFD followed by a u64 of 2^62: a string or
        // byte vector that long would abort the process if allocated.
        let mut forged = vec![0xFD];
        forged.extend_from_slice(&(1u64 << 62).to_le_bytes());
        forged.extend_from_slice(&[0u8; 10]);
        // Strings (and serde byte buffers) allocate their length up front: the limit
        // refuses them. (A `Vec` goes through serde's sequence visitor, which
        // preallocates cautiously and then runs out of input.)
        assert!(matches!(decode_bounded::<String>(&forged), Err(DecodeError::LimitExceeded)));
        assert!(decode_bounded::<Vec<u8>>(&forged).is_err());
        // Nested: a vector of vectors each claiming a megabyte.
        let mut nested = vec![10u8];
        for _ in 0..10 {
            nested.push(0xFC);
            nested.extend_from_slice(&(1u32 << 20).to_le_bytes());
        }
        assert!(decode_bounded::<Vec<Vec<u8>>>(&nested).is_err());
    }

    #[test]
    fn truncated_and_random_input_is_an_error() {
        let full = encode(&("a string".to_string(), vec![5u64; 50]));
        for cut in 0..full.len() {
            assert!(decode_bounded::<(String, Vec<u64>)>(&full[..cut]).is_err(), "cut at {cut}");
        }
        for seed in 0..2000u64 {
            let bytes = keel_testkit::noise(0x9E37_79B9_7F4A_7C15 ^ seed, 64);
            let _ = decode_bounded::<(String, Vec<Vec<u8>>, Option<u64>)>(&bytes);
        }
    }
}
