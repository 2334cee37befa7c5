//! String and byte formats of invocation ids (`inv_1…`) and awakeable ids (`sign_1…`).
//!
//! keel uses Restate's layouts so that ids look and decode the same as Restate's: tools
//! and users can move between the two, and awakeable ids built by the SDKs (which embed
//! `StartMessage.id`) decode back to the right invocation.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Signal index of the built-in CANCEL signal.
pub const CANCEL_SIGNAL_INDEX: u32 = 1;
/// Signal indexes below this are reserved for built-ins; SDK awakeables start here.
pub const FIRST_AWAKEABLE_SIGNAL_INDEX: u32 = 17;

/// Why an id string or byte slice was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not start with the expected resource prefix.
    #[error("expected an id starting with {expected:?}")]
    WrongPrefix {
        /// The prefix that was expected (`inv_1`, `sign_1`).
        expected: &'static str,
    },
    /// An old-protocol awakeable id (`prom_1…`, `awk_1…`); keel only runs V5+ invocations.
    #[error("legacy awakeable id format (prom_1/awk_1) is not supported")]
    LegacyAwakeable,
    /// Wrong number of characters or bytes.
    #[error("expected {expected} {unit}, got {actual}")]
    WrongLength {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
        /// `"characters"` or `"bytes"`.
        unit: &'static str,
    },
    /// A character outside the base62 alphabet.
    #[error("invalid base62 character {0:?}")]
    InvalidCharacter(char),
    /// A base62 group encodes a number too large for its integer.
    #[error("base62 value out of range")]
    Overflow,
    /// The awakeable payload is not valid base64url.
    #[error("invalid base64url: {0}")]
    Base64(String),
}

/// An invocation id: the partition key routes the invocation, the UUID makes it unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvocationId {
    /// Partition key: a hash of the object/workflow key, so one key stays on one partition.
    pub partition_key: u64,
    /// Unique part (a ULID, or a hash for workflow runs and idempotent requests).
    pub uuid: u128,
}

impl InvocationId {
    /// Length of the raw form sent in `StartMessage.id`.
    pub const RAW_LEN: usize = 24;
    /// Resource prefix plus id-scheme version.
    pub const PREFIX: &'static str = "inv_1";
    /// Length of the string form: prefix + 11 + 22 base62 characters.
    pub const STRING_LEN: usize = 5 + 11 + 22;

    /// Builds an id from its parts.
    pub fn new(partition_key: u64, uuid: u128) -> Self {
        InvocationId { partition_key, uuid }
    }

    /// Raw form: partition key then UUID, both big-endian.
    pub fn to_bytes(&self) -> [u8; Self::RAW_LEN] {
        let mut out = [0u8; Self::RAW_LEN];
        out[..8].copy_from_slice(&self.partition_key.to_be_bytes());
        out[8..].copy_from_slice(&self.uuid.to_be_bytes());
        out
    }

    /// Parses the raw form; the slice must be exactly 24 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let raw: &[u8; Self::RAW_LEN] = bytes.try_into().map_err(|_| IdError::WrongLength {
            expected: Self::RAW_LEN,
            actual: bytes.len(),
            unit: "bytes",
        })?;
        Ok(Self::from_raw(raw))
    }

    /// The id whose raw form is `raw` (any 24 bytes are one).
    pub fn from_raw(raw: &[u8; Self::RAW_LEN]) -> Self {
        let (mut pk, mut uuid) = ([0u8; 8], [0u8; 16]);
        pk.copy_from_slice(&raw[..8]);
        uuid.copy_from_slice(&raw[8..]);
        InvocationId { partition_key: u64::from_be_bytes(pk), uuid: u128::from_be_bytes(uuid) }
    }
}

impl fmt::Display for InvocationId {
    /// Restate encodes each integer after swapping its bytes (`to_be()` on a little-endian
    /// host); `swap_bytes` reproduces that on every host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::STRING_LEN);
        s.push_str(Self::PREFIX);
        push_base62(&mut s, u128::from(self.partition_key.swap_bytes()), 11);
        push_base62(&mut s, self.uuid.swap_bytes(), 22);
        f.write_str(&s)
    }
}

impl FromStr for InvocationId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let body = s.strip_prefix(Self::PREFIX).ok_or(IdError::WrongPrefix { expected: Self::PREFIX })?;
        if body.len() != Self::STRING_LEN - Self::PREFIX.len() || !body.is_ascii() {
            return Err(IdError::WrongLength {
                expected: Self::STRING_LEN,
                actual: s.chars().count(),
                unit: "characters",
            });
        }
        let (pk, uuid) = body.split_at(11);
        let pk = u64::try_from(parse_base62(pk)?).map_err(|_| IdError::Overflow)?;
        let uuid = parse_base62(uuid)?;
        Ok(InvocationId { partition_key: pk.swap_bytes(), uuid: uuid.swap_bytes() })
    }
}

const BASE62: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Appends `n` in base62, most significant digit first, left-padded with '0' to `width`.
fn push_base62(out: &mut String, mut n: u128, width: usize) {
    let mut digits = [b'0'; 22];
    let mut i = digits.len();
    while n > 0 && i > 0 {
        i -= 1;
        digits[i] = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let start = digits.len().saturating_sub(width).min(i);
    out.extend(digits[start..].iter().map(|&b| char::from(b)));
}

fn parse_base62(s: &str) -> Result<u128, IdError> {
    s.chars().try_fold(0u128, |acc, c| {
        let digit = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 10,
            'A'..='Z' => c as u32 - 'A' as u32 + 36,
            _ => return Err(IdError::InvalidCharacter(c)),
        };
        acc.checked_mul(62).and_then(|v| v.checked_add(u128::from(digit))).ok_or(IdError::Overflow)
    })
}

/// base64url without padding on output; padding optional on input, as Restate accepts.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An awakeable id: which invocation to signal, and with which signal index. The SDK
/// builds these; keel parses them when a `CompleteAwakeableCommand` or an ingress request
/// resolves one, and appends a `SignalNotification{idx}` to the target's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AwakeableId {
    /// The invocation that created the awakeable.
    pub invocation_id: InvocationId,
    /// Its signal index (17 and up for SDK awakeables).
    pub signal_index: u32,
}

impl AwakeableId {
    /// Prefix of V5+ awakeable ids.
    pub const PREFIX: &'static str = "sign_1";
    /// Length of the decoded payload: raw invocation id plus u32 index.
    pub const RAW_LEN: usize = InvocationId::RAW_LEN + 4;
    /// Length of the string form (6 + 38).
    pub const STRING_LEN: usize = 44;

    /// Builds an id from its parts.
    pub fn new(invocation_id: InvocationId, signal_index: u32) -> Self {
        AwakeableId { invocation_id, signal_index }
    }
}

impl fmt::Display for AwakeableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; Self::RAW_LEN];
        raw[..InvocationId::RAW_LEN].copy_from_slice(&self.invocation_id.to_bytes());
        raw[InvocationId::RAW_LEN..].copy_from_slice(&self.signal_index.to_be_bytes());
        write!(f, "{}{}", Self::PREFIX, BASE64URL.encode(raw))
    }
}

impl FromStr for AwakeableId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.starts_with("prom_1") || s.starts_with("awk_1") {
            return Err(IdError::LegacyAwakeable);
        }
        let body = s.strip_prefix(Self::PREFIX).ok_or(IdError::WrongPrefix { expected: Self::PREFIX })?;
        let raw = BASE64URL.decode(body).map_err(|e| IdError::Base64(e.to_string()))?;
        if raw.len() != Self::RAW_LEN {
            return Err(IdError::WrongLength { expected: Self::RAW_LEN, actual: raw.len(), unit: "bytes" });
        }
        let (id, idx) = raw.split_at(InvocationId::RAW_LEN);
        let idx: [u8; 4] = idx.try_into().map_err(|_| IdError::WrongLength {
            expected: Self::RAW_LEN,
            actual: raw.len(),
            unit: "bytes",
        })?;
        Ok(AwakeableId { invocation_id: InvocationId::from_bytes(id)?, signal_index: u32::from_be_bytes(idx) })
    }
}

#[cfg(test)]
mod tests;
