//! Messages between invocations, as they wait in the outbox.

use crate::model::invocation::{Caller, InvocationKey, Reply};
use serde::{Deserialize, Serialize};

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxMessage {
    /// Create an invocation (the shipper resolves the handler's kind from
    /// the catalog, which the state machine cannot read).
    Invoke {
        /// The new invocation's id (derived from the caller's id and the
        /// command's completion index, so it is the same on every replica).
        id: InvocationKey,
        /// Target service.
        service: String,
        /// Target handler.
        handler: String,
        /// Object or workflow key.
        key: Option<String>,
        /// The raw `InputCommand` frame.
        input: Vec<u8>,
        /// The caller to answer, for request-response calls.
        caller: Option<Caller>,
        /// A delayed send: not before this time (ms since the Unix epoch).
        not_before_ms: u64,
        /// The call carries an idempotency key (its result is kept for the
        /// idempotency retention).
        idempotent: bool,
    },
    /// Ask for another invocation's result (attach, get output).
    Attach {
        /// The invocation whose result is wanted.
        target: InvocationKey,
        /// Who asks, and under which completion id.
        caller: Caller,
        /// How the answer is framed.
        reply: Reply,
    },
    /// Deliver a call's result to the caller.
    Deliver {
        /// The caller.
        id: InvocationKey,
        /// The completion id the result answers.
        completion_id: u32,
        /// The raw `CallCompletionNotification` frame.
        notification: Vec<u8>,
    },
    /// Kill a child call of a killed invocation (the shipper stamps the
    /// purge time of the `Intervene` it proposes).
    Kill {
        /// The child invocation.
        id: InvocationKey,
    },
}

impl OutboxMessage {
    /// The invocation the message goes to: its partition applies it, so
    /// the shipper keeps the messages to one partition in order.
    pub fn recipient(&self) -> &InvocationKey {
        match self {
            OutboxMessage::Invoke { id, .. } | OutboxMessage::Deliver { id, .. } | OutboxMessage::Kill { id } => id,
            OutboxMessage::Attach { target, .. } => target,
        }
    }
}
