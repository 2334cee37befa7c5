//! Streaming frame decoder.
//!
//! HTTP/2 DATA frames (or HTTP/1.1 chunks) do not line up with protocol messages: one
//! chunk may hold half a header, or three messages and a bit. The decoder buffers bytes
//! and hands out complete frames, checking the size limit as soon as a header is complete
//! so that a hostile or broken peer cannot make keel buffer gigabytes.

use prost::bytes::{Buf, BytesMut};

use super::{Frame, Message, MessageType};
use crate::header::{HEADER_LEN, MessageHeader};

/// Why bytes could not be turned into a message. Decoding never panics: every malformed
/// input ends up here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type code is neither a known message nor a custom command.
    #[error("unknown message type code 0x{code:04X}")]
    UnknownMessageType {
        /// The offending code.
        code: u16,
    },
    /// The header announces a payload above the configured limit. The stream cannot be
    /// trusted after this, so the decoder keeps returning this error.
    #[error("message 0x{code:04X} announces {length} bytes, above the limit of {max} bytes")]
    MessageTooLarge {
        /// Type code from the header.
        code: u16,
        /// Announced payload length.
        length: u32,
        /// Configured limit.
        max: usize,
    },
    /// The payload is not valid protobuf for its type.
    #[error("invalid {message_type} payload: {source}")]
    Protobuf {
        /// The type the payload claimed to be.
        message_type: MessageType,
        /// What prost reported.
        source: prost::DecodeError,
    },
    /// A notification-range payload that does not fit the shared notification layout.
    #[error("invalid notification payload for code 0x{code:04X}: {source}")]
    NotificationTemplate {
        /// Type code of the frame.
        code: u16,
        /// What prost reported.
        source: prost::DecodeError,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a message: {buffered} bytes buffered, {needed} needed")]
    Truncated {
        /// Bytes left in the buffer.
        buffered: usize,
        /// Bytes the current frame needs (8 while the header is incomplete).
        needed: usize,
    },
}

/// Incremental decoder: [`Decoder::push`] chunks as they arrive, then drain frames with
/// [`Decoder::next_frame`] (or typed messages with [`Decoder::next_message`]) until they
/// return `Ok(None)`; call [`Decoder::finish`] at end of stream to detect truncation.
///
/// Unknown types and protobuf errors are reported by `next_message` after the frame was
/// consumed, so the stream stays aligned and the caller may decide to continue. An
/// oversized frame poisons the decoder.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_message_size: usize,
    poisoned: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// Default payload limit: 32 MiB. Restate warns above 10 MiB and makes its limit
    /// configurable; 32 MiB leaves room for large state maps in StartMessage while still
    /// bounding memory per attempt.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;

    /// A decoder with [`Decoder::DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new() -> Self {
        Decoder::with_max_message_size(Self::DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// A decoder that rejects payloads longer than `max_message_size` bytes.
    pub fn with_max_message_size(max_message_size: usize) -> Self {
        Decoder { buf: BytesMut::new(), max_message_size, poisoned: None }
    }

    /// The configured payload limit.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Appends a chunk of the byte stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let Some(header) = MessageHeader::peek(&self.buf) else {
            return Ok(None);
        };
        // u32 -> usize cannot truncate on the 32/64-bit targets keel supports; the
        // fallback keeps even a 16-bit target from panicking.
        let length = usize::try_from(header.length).unwrap_or(usize::MAX);
        if length > self.max_message_size {
            let err =
                DecodeError::MessageTooLarge { code: header.code, length: header.length, max: self.max_message_size };
            self.poisoned = Some(err.clone());
            return Err(err);
        }
        if self.buf.len() - HEADER_LEN < length {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(length).freeze();
        Ok(Some(Frame { header, payload }))
    }

    /// The next complete message, decoded, with its header (whose flags carry
    /// REQUESTED_ACK). `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<(MessageHeader, Message)>, DecodeError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(frame) => {
                let message = frame.decode_message()?;
                Ok(Some((frame.header, message)))
            }
        }
    }

    /// Checks that the stream ended on a frame boundary. Call it once the peer closed its
    /// side; leftover bytes mean the last message was cut off.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let needed = match MessageHeader::peek(&self.buf) {
            None => HEADER_LEN,
            Some(h) => HEADER_LEN.saturating_add(usize::try_from(h.length).unwrap_or(usize::MAX)),
        };
        Err(DecodeError::Truncated { buffered: self.buf.len(), needed })
    }
}
