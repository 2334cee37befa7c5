//! What an invocation command answers its proposer, and what it asks the
//! leader to do. Apply never performs I/O: starting an attempt, arming a
//! timer or shipping a message is an effect, carried out by the leader once
//! the entry is durable (followers drop them). Its results come back as new
//! commands, so they are ordered by the log like everything else.

use crate::model::invocation::{InvocationKey, InvocationResult, Status};
use crate::model::message::OutboxMessage;
use serde::{Deserialize, Serialize};

/// Outcome of an invocation command (part of [`crate::Response`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationOutcome {
    /// Created and running.
    Invoked,
    /// Created and queued behind the key's lock.
    Inboxed,
    /// Created; it starts when its start timer fires (a delayed send).
    Scheduled,
    /// An invocation with this id exists already (deduplicated); its status.
    Exists(Status),
    /// Entries appended; the journal's new length.
    Appended {
        /// New journal length.
        journal_len: u32,
    },
    /// The invocation is suspended.
    Suspended,
    /// The invocation completed.
    Completed,
    /// No such invocation.
    NotFound,
    /// The invocation is not running, so the command does not apply.
    NotRunning(Status),
    /// The invocation was paused.
    Paused,
    /// The invocation was resumed: a new attempt starts.
    Resumed,
    /// A journal append was refused: the journal holds `produced` entries
    /// produced by attempts, not the number the appending attempt knew, so
    /// that attempt replayed a stale journal (see
    /// [`crate::journal_position`]). The leader starts a new attempt from
    /// the stored journal.
    StaleAppend {
        /// Produced entries the journal holds.
        produced: u32,
    },
    /// Completed records whose retention ended were removed.
    Expired {
        /// How many.
        count: u32,
        /// Whether more are due (the batch was full).
        more: bool,
    },
}

/// Side effects of invocation commands, for the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationEffect {
    /// Start (or restart) an attempt of this invocation.
    Invoke(InvocationKey),
    /// A notification was journaled for a running invocation: deliver it
    /// to the attempt in flight (the raw frame).
    Notify(InvocationKey, Vec<u8>),
    /// A durable timer was registered; fire it at this time (ms since the
    /// Unix epoch).
    TimerRegistered {
        /// When.
        fire_at_ms: u64,
        /// For which invocation.
        id: InvocationKey,
        /// Which completion it produces.
        completion_id: u32,
    },
    /// The invocation completed: answer whoever waits for it.
    Completed(InvocationKey, InvocationResult),
    /// A message was put in the outbox under this sequence number: ship it.
    Outbox(u64, OutboxMessage),
    /// The invocation may no longer run (killed, paused): end its attempt in
    /// flight, if any, without waiting for its next proposal to be refused.
    Stop(InvocationKey),
}

/// What an invocation command returns: the outcome for its proposer and
/// the effects for the leader.
pub(crate) type Outcome = (InvocationOutcome, Vec<InvocationEffect>);
