//! Why an attempt failed.
//!
//! Every failure ends the attempt but none loses data: what was reported before stays
//! valid, and the caller retries according to the retry policy. The variants are kept
//! apart so that operators see *which* side broke the contract, and so that a caller can
//! tell its own bugs ([`AttemptError::is_retryable`] is false for those) from the SDK's.

use std::time::Duration;

use http::StatusCode;
use keel_protocol::DecodeError;

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttemptError {
    /// The request could not be built (bad base URI, names that cannot form a path).
    #[error("cannot build the invocation request: {0}")]
    InvalidRequest(String),
    /// The journal handed to the attempt breaks the protocol's shape (empty, not starting
    /// with the InputCommand, or holding control messages). A caller bug.
    #[error("invalid journal for the attempt: {0}")]
    InvalidJournal(String),
    /// The caller sent an input the protocol has no place for (an ack nobody asked for, a
    /// non-notification frame). A caller bug.
    #[error("invalid input to the attempt: {0}")]
    InvalidInput(String),
    /// No HTTP answer, or the connection broke mid-stream.
    #[error("transport error talking to the deployment: {0}")]
    Transport(String),
    /// The SDK (or a proxy in front of it) answered with a status other than 200.
    #[error("the deployment answered HTTP {status}{hint}; response body: {body_snippet:?}", hint = status_hint(*status))]
    BadStatus {
        /// The status received.
        status: StatusCode,
        /// `Retry-After` in seconds, if sent (429/503 from gateways).
        retry_after: Option<Duration>,
        /// The start of the body (lossy UTF-8), often the SDK's explanation.
        body_snippet: String,
    },
    /// A 200 whose content type is not exactly the invocation protocol's, e.g. an HTML
    /// error page from a proxy; the body cannot be trusted to be frames.
    #[error("the deployment answered content-type {}, expected {expected:?}", shown(content_type.as_deref()))]
    BadContentType {
        /// What was received (lossy UTF-8), if anything.
        content_type: Option<String>,
        /// What the negotiated version requires.
        expected: &'static str,
    },
    /// The response body is not a valid frame stream: unknown message type, malformed
    /// protobuf, oversized or truncated frame.
    #[error("undecodable message from the deployment: {0}")]
    Decode(DecodeError),
    /// A well-formed message the SDK must not send (a runtime-to-SDK message, an
    /// InputCommand, a run proposal without result, an empty suspension).
    #[error("protocol violation by the deployment: {0}")]
    ProtocolViolation(String),
    /// The response ended without End, Suspension or Error.
    #[error("the deployment closed the stream without End, Suspension or Error")]
    UnexpectedEof,
    /// Nothing arrived from the SDK for the abort timeout after the request body closed.
    #[error("no message from the deployment within the abort timeout of {0:?}")]
    AbortTimeout(Duration),
}

impl AttemptError {
    /// Whether retrying can help. False only for caller bugs (`InvalidJournal`,
    /// `InvalidInput`), which a retry would hit again; everything the deployment or the
    /// network did is worth retrying, as Restate does.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::InvalidJournal(_) | Self::InvalidInput(_))
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => " (unknown service or handler: was the deployment changed without registering it again?)",
        415 => " (the SDK does not support the negotiated protocol version)",
        413 => " (request too large)",
        429 | 503 => " (overloaded or unavailable)",
        502 | 504 => " (a gateway could not reach the service)",
        _ => "",
    }
}

fn shown(content_type: Option<&str>) -> String {
    content_type.map_or_else(|| "(none)".to_owned(), |ct| format!("{ct:?}"))
}
