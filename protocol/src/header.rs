//! The 8-byte frame header that precedes every protobuf payload on the wire.
//!
//! Layout (one big-endian u64): message type (u16), flags (u16), payload length (u32).
//! The header layer keeps the type as a raw `u16` on purpose: classifying it (known type,
//! custom command, garbage) is the message layer's job, and journal code that stores frames
//! verbatim must not lose codes it does not understand.

/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 8;

/// The flags half-word of a frame header.
///
/// Only [`Flags::REQUESTED_ACK`] has a meaning in V5+; the other bits are reserved. They are
/// kept as received (rather than masked) so a frame can be re-emitted byte for byte, but
/// senders should leave them zero. The V1..V4 flags ("completed", "requires ack") belong to
/// the old entry model and are intentionally not modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// No flag set: the value every message except a V7 run proposal carries.
    pub const NONE: Flags = Flags(0);
    /// Bit 47 of the header (top bit of the flags): set by V7 SDKs on
    /// `ProposeRunCompletionMessage` to ask for a `ProposeRunCompletionAckMessage` instead
    /// of a full `RunCompletionNotificationMessage`.
    pub const REQUESTED_ACK: Flags = Flags(0x8000);
    /// Mask of the bits that have no meaning yet (send 0, ignore on receipt).
    pub const RESERVED_MASK: u16 = 0x7FFF;

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Convenience for the one meaningful flag, so callers need not spell the mask.
    pub fn requested_ack(self) -> bool {
        self.contains(Flags::REQUESTED_ACK)
    }

    /// Returns `self` with the bits of `other` set.
    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// Raw message type code; see [`crate::MessageType`] for the known ones.
    pub code: u16,
    /// Flag bits.
    pub flags: Flags,
    /// Payload length in bytes, header excluded.
    pub length: u32,
}

impl MessageHeader {
    /// Builds a header with no flags; the common case for every message but run proposals.
    pub fn new(code: u16, length: u32) -> Self {
        MessageHeader { code, flags: Flags::NONE, length }
    }

    /// Serializes the header into its 8 big-endian bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let word = (u64::from(self.code) << 48) | (u64::from(self.flags.0) << 32) | u64::from(self.length);
        word.to_be_bytes()
    }

    /// Parses a header from exactly [`HEADER_LEN`] bytes.
    ///
    /// Infallible because every 8-byte pattern is a syntactically valid header; range
    /// checks (known type, size limit) happen in the decoder, where the policy lives.
    pub fn decode(bytes: [u8; HEADER_LEN]) -> Self {
        let word = u64::from_be_bytes(bytes);
        MessageHeader { code: (word >> 48) as u16, flags: Flags((word >> 32) as u16), length: word as u32 }
    }

    /// Parses a header from the start of `buf`, or `None` if fewer than 8 bytes are there.
    pub fn peek(buf: &[u8]) -> Option<Self> {
        let first: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self::decode(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_layout_matches_the_documented_one() {
        let h = MessageHeader { code: 0x0005, flags: Flags::REQUESTED_ACK, length: 0x0102_0304 };
        assert_eq!(h.encode(), [0x00, 0x05, 0x80, 0x00, 0x01, 0x02, 0x03, 0x04]);
        let h = MessageHeader::new(0xFBFF, 7);
        assert_eq!(h.encode(), [0xFB, 0xFF, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn round_trips_extreme_values() {
        for code in [0u16, 1, 0x0400, 0x8000, 0xFBFF, 0xFFFF] {
            for flags in [0u16, 0x8000, 0x7FFF, 0xFFFF] {
                for length in [0u32, 1, 255, 65_536, u32::MAX] {
                    let h = MessageHeader { code, flags: Flags(flags), length };
                    assert_eq!(MessageHeader::decode(h.encode()), h);
                }
            }
        }
    }

    #[test]
    fn flags_helpers() {
        assert!(!Flags::NONE.requested_ack());
        assert!(Flags::REQUESTED_ACK.requested_ack());
        assert!(Flags(0xFFFF).requested_ack());
        assert!(!Flags(Flags::RESERVED_MASK).requested_ack());
        assert_eq!(Flags::NONE.with(Flags::REQUESTED_ACK), Flags::REQUESTED_ACK);
    }

    #[test]
    fn peek_needs_eight_bytes() {
        assert_eq!(MessageHeader::peek(&[0; 7]), None);
        let bytes = MessageHeader::new(3, 0).encode();
        assert_eq!(MessageHeader::peek(&bytes), Some(MessageHeader::new(3, 0)));
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(b"extra");
        assert_eq!(MessageHeader::peek(&longer), Some(MessageHeader::new(3, 0)));
    }
}
