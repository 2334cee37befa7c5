//! The stored record of an invocation and the values it is made of.

use keel_protocol::message::NotificationId;
use serde::{Deserialize, Serialize};

/// Raw invocation id (the 24 bytes of `inv_…`: partition key and uuid).
pub type InvocationKey = [u8; 24];

/// How a handler takes part in its key's concurrency control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandlerKind {
    /// A plain service handler: no key, no lock.
    Service,
    /// A virtual object's exclusive handler: one at a time per key.
    Exclusive,
    /// A shared handler (objects and workflows): concurrent, takes no lock.
    Shared,
    /// A workflow's run handler: holds the key's lock while it runs.
    Workflow,
}

impl HandlerKind {
    /// Whether invocations of this kind hold their key's lock.
    pub fn locks(self) -> bool {
        matches!(self, HandlerKind::Exclusive | HandlerKind::Workflow)
    }
}

/// The concurrency kind of `handler` of `service` per its manifest.
pub fn handler_kind(
    service: &keel_protocol::manifest::Service,
    handler: &keel_protocol::manifest::Handler,
) -> HandlerKind {
    use keel_protocol::manifest::{HandlerType, ServiceType};
    match (service.ty, handler.effective_ty(service.ty)) {
        (ServiceType::Service, _) => HandlerKind::Service,
        (_, Some(HandlerType::Shared)) => HandlerKind::Shared,
        (_, Some(HandlerType::Workflow)) => HandlerKind::Workflow,
        _ => HandlerKind::Exclusive,
    }
}

/// What is invoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Service name.
    pub service: String,
    /// Handler name.
    pub handler: String,
    /// Object or workflow key; `None` for plain services.
    pub key: Option<String>,
    /// Concurrency kind of the handler.
    pub kind: HandlerKind,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationResult {
    /// The handler's output bytes.
    Success(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A terminal failure.
    Failure {
        /// HTTP-like error code (500 by default, 409 for cancel/kill).
        code: u16,
        /// The message.
        message: String,
    },
}

/// Where an invocation is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// A delayed invocation, stored and waiting for its start timer.
    Scheduled {
        /// When it starts (ms since the Unix epoch).
        fire_at_ms: u64,
    },
    /// Waiting in its key's inbox for the lock.
    Inboxed {
        /// Position in the inbox.
        seq: u64,
    },
    /// Running (an attempt is or will be under way on the leader).
    Invoked,
    /// Waiting for completions; no attempt runs.
    Suspended {
        /// Completion/signal ids it waits for.
        awaiting: Vec<u32>,
    },
    /// Finished.
    Completed(InvocationResult),
    /// Stopped until an operator resumes it: its retries were exhausted
    /// under `on_max_attempts = Pause`, its SDK asked for it (`ErrorMessage`
    /// with behavior PAUSE), or an operator paused it. Notifications that
    /// arrive meanwhile are journaled; no attempt runs.
    Paused,
}

/// The stored record of an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// What is invoked.
    pub target: Target,
    /// The deployment it is pinned to once it first runs (`None` until then:
    /// the leader picks the latest revision's deployment at first attempt).
    pub deployment_id: Option<String>,
    /// Creation time (ms since the Unix epoch), stamped by the proposer.
    pub created_at_ms: u64,
    /// Number of journal entries.
    pub journal_len: u32,
    /// Life-cycle status.
    pub status: Status,
    /// The invocation waiting for this one's result (a request-response
    /// call from another handler), if any.
    pub caller: Option<Caller>,
    /// Completion ids already delivered from other partitions (call
    /// results), so a re-delivered message is journaled only once.
    pub delivered: Vec<u32>,
    /// This invocation's pending timers (fire time, completion id), so they
    /// can be removed without scanning every timer of the partition.
    pub timers: Vec<(u64, u32)>,
    /// How long the record (with the result) is kept once completed, in ms:
    /// stamped by the proposer of the `Invoke` from the catalog
    /// ([`crate::idempotency::retention_ms`]).
    pub retention_ms: u64,
    /// Invocations waiting for this one's result without having started it
    /// ([`crate::attach`]); answered when it completes. Kept in the record,
    /// not beside it, so that completing an invocation nobody attached to
    /// reads nothing more.
    pub attached: Vec<Attached>,
}

/// Who waits for an invocation's result, and under which completion id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The calling invocation.
    pub id: InvocationKey,
    /// The `result_completion_id` of its `CallCommand`.
    pub completion_id: u32,
}

/// Which notification answers a waiting invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// `CallCompletionNotification`: the waiting invocation called the target.
    Call,
    /// `AttachInvocationCompletionNotification`: it attached.
    Attach,
    /// `GetInvocationOutputCompletionNotification`: answered at once, with
    /// "not ready" (void) while the target has not completed.
    Output,
}

/// An invocation waiting for another one's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// Who waits, under which completion id.
    pub caller: Caller,
    /// How the answer is framed.
    pub reply: Reply,
}

/// What an operator asked for (admin API `PATCH /invocations/{id}/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intervention {
    /// Graceful: a running invocation gets the CANCEL signal (its user code
    /// sees a terminal "cancelled" error and may clean up); a queued one
    /// completes at once with 409 "canceled".
    Cancel,
    /// Immediate: completes with 409 "killed" without running user code.
    Kill,
    /// Forget a completed invocation (record and result).
    Purge,
    /// Stop a running invocation until it is resumed ([`Status::Paused`]).
    Pause,
}

/// Which deployment a resumed invocation runs on
/// (`PATCH /invocations/{id}/resume?deployment=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeDeployment {
    /// The deployment it is pinned to (the default).
    Keep,
    /// The deployment of the service's latest revision: the pin is dropped,
    /// and the next attempt pins the latest one.
    Latest,
    /// This deployment (checked against the catalog by the admin API).
    Id(String),
}

/// The completion id of a timer that purges a completed invocation's record
/// (no journal completion id is ever this large).
pub const PURGE_TIMER: u32 = u32::MAX;

/// The completion id of the timer that starts a scheduled (delayed) invocation.
pub const START_TIMER: u32 = u32::MAX - 1;

/// Dedup keys of signals delivered to an invocation carry this bit, so they
/// never collide with call completion ids.
pub const SIGNAL_KEY: u32 = 0x8000_0000;

/// Dedup keys of named signals carry these bits and 30 bits of a hash of
/// the sender, the name and the result: a re-shipped signal is journaled
/// once (an identical signal from the same sender counts as the same one).
pub const NAMED_SIGNAL_KEY: u32 = 0xC000_0000;

/// The key of an awaited notification in [`Status::Suspended`]: completion
/// ids as they are, signal indexes with [`SIGNAL_KEY`], signal names as
/// `NAMED_SIGNAL_KEY` with 30 bits of the name's hash (a collision only
/// costs a spurious attempt).
pub fn awaited_key(id: &NotificationId) -> u32 {
    match id {
        NotificationId::Completion(c) => *c,
        NotificationId::Signal(s) => SIGNAL_KEY | s,
        NotificationId::SignalName(name) => {
            NAMED_SIGNAL_KEY | (xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32 & 0x3fff_ffff)
        }
    }
}
