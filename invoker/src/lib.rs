//! The I/O half of keel's invoker: one attempt of one invocation against an SDK endpoint.
//!
//! An *attempt* is one HTTP request `POST {uri}/invoke/{service}/{handler}`: keel streams a
//! `StartMessage` and the known journal, the SDK replays user code against it and then
//! reports what the code does next: new journal commands, `ctx.run` results, and finally
//! one of End, Suspension or Error. [`run_attempt`] drives that exchange and reports every
//! step as an [`AttemptEvent`], in order; the caller answers with [`AttemptInput`]s.
//!
//! The split of responsibilities is the point of this crate. The partition leader owns
//! durability: it appends every reported command to the journal through Raft *before* it
//! acts on it, and it sends a notification to the SDK only once that notification is
//! durable too. This crate owns none of that. It holds no journal, no clock beyond its
//! timeouts, and no storage; it only moves protocol frames and checks that the SDK plays
//! by the rules. Because of that split an attempt can die at any moment (crash, lost
//! leadership, network) without losing anything: the next attempt replays what was stored.
//!
//! Two transport modes exist (doc §3.2), chosen per deployment:
//! * **bidi streaming** (h2c and a `BIDI_STREAM` deployment): the request body stays open,
//!   so notifications reach a running handler live;
//! * **request/response** (HTTP/1.1, or a `REQUEST_RESPONSE` deployment): Start and the
//!   journal are the whole request body, and whatever the handler waits for ends the
//!   attempt with a suspension.
//!
//! Modules: [`session`] is the pure protocol bookkeeping (command indexes, run-proposal acks,
//! which SDK messages are legal), `request` builds the HTTP request, `attempt` is the
//! async loop, [`error`] says why an attempt failed.
#![deny(missing_docs)]

mod attempt;
mod body;
pub mod error;
mod request;
pub mod session;

use std::time::Duration;

use bytes::Bytes;
use keel_endpoint::HttpVersion;
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{Frame, InvocationId, ServiceProtocolVersion};

pub use attempt::run_attempt;
pub use error::AttemptError;

/// Everything one attempt needs to know; built by the partition leader from the stored
/// invocation and its deployment.
#[derive(Debug, Clone)]
pub struct AttemptParams {
    /// The invocation; its raw bytes go into `StartMessage.id` (the SDK embeds them in
    /// awakeable ids) and its string form into `debug_id` and `x-restate-invocation-id`.
    pub invocation_id: InvocationId,
    /// Service name, the first path segment after `/invoke/`.
    pub service: String,
    /// Handler name, the second path segment.
    pub handler: String,
    /// Virtual-object or workflow key; `None` for plain services. Sent as
    /// `StartMessage.key` and, URL-encoded, as the informational `x-restate-service-key`.
    pub key: Option<String>,
    /// The version negotiated at discovery; sets the content type and which V6/V7
    /// features (random seed, run-proposal acks, suspension shape) apply.
    pub protocol_version: ServiceProtocolVersion,
    /// The HTTP version discovery succeeded with (normally `EndpointAddress::http_version`).
    /// HTTP/1.1 forces request/response mode, since it cannot stream both ways at once.
    pub http_version: HttpVersion,
    /// The deployment's `protocolMode` from its manifest. A `REQUEST_RESPONSE` SDK answers
    /// only once the request body has ended, even over HTTP/2, so the body is closed at once.
    pub protocol_mode: ProtocolMode,
    /// The known journal, in journal order: commands and notifications exactly as stored.
    /// The first entry must be the `InputCommand`. Replayed verbatim after Start, because
    /// the SDK compares replayed commands field by field.
    pub journal: Vec<Frame>,
    /// State of the key loaded for `StartMessage.state_map`. `None` means nothing was
    /// loaded (plain services, lazy state): then `partial_state` is sent as `true` whatever
    /// the field below says, because an empty map claimed complete would make the SDK
    /// answer every read with "absent".
    pub eager_state: Option<Vec<(Bytes, Bytes)>>,
    /// Whether `eager_state` is incomplete (stopped at a size limit), so the SDK must fall
    /// back to lazy reads for keys it does not find.
    pub partial_state: bool,
    /// Attempts made since the last journal entry was stored; the SDK's `ctx.run` retry
    /// policy counts with it.
    pub retry_count_since_last_stored_entry: u32,
    /// Time since the last journal entry was stored (sent in milliseconds), for the same
    /// retry policy.
    pub duration_since_last_stored_entry: Duration,
    /// Seed of the SDK's deterministic RNG (V6+; not sent to V5). Must be the same on
    /// every attempt of the invocation, so the caller derives and stores it.
    pub random_seed: u64,
    /// Extra HTTP headers for the invocation request, e.g. `traceparent`/`tracestate`.
    /// (The handler's own request headers travel inside the `InputCommand`.) Names that
    /// would break the protocol (`content-type`, `accept`, hop-by-hop headers) and invalid
    /// names or values are skipped; the deployment's additional headers are applied last.
    pub headers: Vec<(String, String)>,
    /// How long the attempt may idle.
    pub timeouts: AttemptTimeouts,
}

impl AttemptParams {
    /// Whether the attempt streams both ways, so that inputs reach the SDK while it runs.
    /// In request/response mode every input is dropped: whatever the SDK waits for ends the
    /// attempt with a suspension, and the next attempt replays it from the journal.
    pub fn is_bidi(&self) -> bool {
        request::is_bidi(self)
    }
}

/// The two timers that keep an attempt from hanging forever (doc §3.2). Restate's names
/// and defaults, so manifests and admin overrides mean the same thing in keel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTimeouts {
    /// With the request body open, no traffic in either direction for this long closes
    /// the request body, which asks the SDK to suspend. Zero forces request/response mode
    /// (as Restate does).
    pub inactivity: Duration,
    /// With the request body closed, nothing received from the SDK for this long fails
    /// the attempt with [`AttemptError::AbortTimeout`].
    pub abort: Duration,
}

impl Default for AttemptTimeouts {
    /// Restate's defaults: 1 minute inactivity, 10 minutes abort.
    fn default() -> Self {
        AttemptTimeouts { inactivity: Duration::from_secs(60), abort: Duration::from_secs(600) }
    }
}

/// What the SDK did, in the order it did it. An attempt reports exactly one terminal event
/// (`Suspended`, `Error`, `Ended` or `Failed`) and nothing after it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEvent {
    /// A new journal command. The caller appends `frame` verbatim as the next journal
    /// entry; entries stay in the order events arrive.
    Command {
        /// Command index (0-based, counting commands only, replayed ones included), the
        /// numbering `ErrorMessage.related_command_index` uses (doc §6.1).
        index: u32,
        /// The command exactly as received.
        frame: Frame,
    },
    /// A `ctx.run` result. The caller appends `notification` to the journal and, once it
    /// is durable, sends it back with [`AttemptInput::Notification`] (or
    /// [`AttemptInput::Ack`]); the SDK does not proceed past the run before that.
    ProposeRunCompletion {
        /// The `result_completion_id` of the run.
        completion_id: u32,
        /// The `ProposeRunCompletionMessage` as received (V7: with REQUESTED_ACK).
        frame: Frame,
        /// The `RunCompletionNotificationMessage` to store, built from the proposal.
        notification: Frame,
    },
    /// V7 hint of what user code is blocked on; informational (doc §5.1), stale as soon as
    /// any awaited notification is sent. A caller may use it to suspend early with
    /// [`AttemptInput::Close`] when `executing_side_effects` is false.
    AwaitingOn {
        /// The `AwaitingOnMessage` as received.
        frame: Frame,
    },
    /// Terminal: the SDK suspended (`SuspensionMessage`: V7 future tree or V5/V6 lists,
    /// never empty). Resume with a new attempt once an awaited notification is stored.
    Suspended {
        /// The `SuspensionMessage` as received.
        frame: Frame,
    },
    /// Terminal: the SDK reported a retryable failure (`ErrorMessage`: code, message,
    /// related command, `next_retry_delay`, V7 behavior).
    Error {
        /// The `ErrorMessage` as received.
        frame: Frame,
    },
    /// Terminal: `EndMessage`. The invocation finished; its `OutputCommand` was the
    /// last `Command` event.
    Ended,
    /// Terminal: the attempt broke (transport, HTTP status or content type, undecodable
    /// or illegal frames, timeouts). Everything reported before stays valid; retry.
    Failed(AttemptError),
}

impl AttemptEvent {
    /// Whether this event ends the attempt.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Suspended { .. } | Self::Error { .. } | Self::Ended | Self::Failed(_))
    }
}

/// What the caller sends into a running attempt. Only bidi attempts can deliver anything;
/// in request/response mode (and once the request body is closed) inputs are dropped,
/// which loses nothing because the caller has them in the journal for the next attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptInput {
    /// A durable notification (completion or signal) to stream to the SDK, in journal
    /// order. A `RunCompletionNotification` answering a proposal the SDK made with
    /// REQUESTED_ACK (V7) is sent as `ProposeRunCompletionAck` in its place (doc §8), so
    /// the caller may always send the notification it stored.
    Notification(Frame),
    /// Sends `ProposeRunCompletionAck{completion_id}` for a V7 run proposal made in this
    /// attempt with REQUESTED_ACK; the same as sending its stored notification. The SDKs
    /// know no other ack (`CommandAckMessage` would fail the attempt), so anything else is
    /// rejected with [`AttemptError::InvalidInput`].
    Ack(u32),
    /// Closes the request body: a handler waiting for something then suspends. Dropping
    /// the sender has the same effect.
    Close,
}
