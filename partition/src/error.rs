//! Why applying a command can fail, and what a failure carries.
//!
//! A command that does not make sense in the current state (an unknown
//! invocation, a completed one that is asked to suspend) is *not* an error:
//! it is answered with a [`Response`](crate::Response) and every replica
//! answers it the same way. An [`ApplyError`] means something else: the
//! stored state is not what this code can interpret (corruption, a format
//! change without a migration) or a value cannot be represented at all.
//! Continuing could make replicas diverge, so the caller stops the
//! partition. Each error names the stored key or the invocation it is
//! about, so an operator can find the record that stopped it.

use keel_protocol::{EncodeError, InvocationId};
use std::fmt;

/// Errors that stop the partition (see the module docs). User-level
/// failures are [`Response`](crate::Response)s instead.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A stored value could not be decoded, or contradicts the state around
    /// it. The key is shown with printable ASCII as is and other bytes as
    /// `\xNN`, so an operator can find it in the log and in `/cluster`.
    #[error("corrupt partition state under key \"{}\": {reason}", key.escape_ascii())]
    Corrupt {
        /// The key whose value is unreadable or inconsistent.
        key: Vec<u8>,
        /// What was wrong with it.
        reason: String,
    },
    /// A notification for invocation `id` does not fit a protocol frame.
    #[error("a notification for invocation {} does not fit a frame: {source}", Id(id))]
    Frame {
        /// The invocation the notification is journaled for or sent to.
        id: [u8; 24],
        /// Why the frame could not be built.
        source: EncodeError,
    },
    /// An invocation waiting for another one's result was to be answered
    /// without one: only a get-output request may be told "not ready".
    #[error("invocation {} waits for a result under completion id {completion_id}, not a \"not ready\"", Id(id))]
    NoResult {
        /// The waiting invocation.
        id: [u8; 24],
        /// The completion id it waits under.
        completion_id: u32,
    },
}

impl ApplyError {
    /// The value under `key` does not decode.
    pub(crate) fn corrupt(key: Vec<u8>, reason: impl fmt::Display) -> Self {
        ApplyError::Corrupt { key, reason: reason.to_string() }
    }
}

/// Callers that report failures as text (the leader's outbox shipper, the
/// ingress) use `?` on the helpers that build outbox messages.
impl From<ApplyError> for String {
    fn from(e: ApplyError) -> String {
        e.to_string()
    }
}

/// Shows a raw invocation id as `inv_…`, the way operators see it.
struct Id<'a>(&'a [u8; 24]);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match InvocationId::from_bytes(self.0) {
            Ok(id) => id.fmt(f),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApplyError;

    /// The key of corrupt state reads as text where it is text, with the
    /// other bytes escaped: it ends up in the log and in `/cluster`.
    #[test]
    fn a_corrupt_key_is_shown_readably() {
        let e = ApplyError::corrupt(b"\x01Counter\x00k\xff".to_vec(), "3 bytes, expected 8");
        assert_eq!(e.to_string(), r#"corrupt partition state under key "\x01Counter\x00k\xff": 3 bytes, expected 8"#);
    }
}
