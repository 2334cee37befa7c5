//! Invocations as other crates see them: the record model and its readers.
//!
//! An invocation lives in the partition of its id: a record (target,
//! status, timers, who waits for it), a journal of raw protocol frames
//! (header and payload, as the SDK sent them or as keel created them, so a
//! later attempt replays them byte for byte; entry 0 is the
//! `InputCommand`), and, while it runs, an entry in the running index.
//!
//! This module only gathers names. The types and their storage are the
//! leaves in `model/`; how an invocation moves through its life (created,
//! queued behind its key's lock, running, suspended, paused, completed,
//! purged) is in `lifecycle.rs` and in the command handlers under
//! `commands/`, one per command.

pub use crate::model::invocation::{
    Caller, HandlerKind, Intervention, InvocationKey, InvocationRecord, InvocationResult, PURGE_TIMER,
    ResumeDeployment, START_TIMER, Status, Target, awaited_key, handler_kind,
};
pub use crate::model::outcome::{InvocationEffect, InvocationOutcome};
pub use crate::model::storage::{journal, journal_of, load, running, timers};
