//! The deterministic heart of a keel partition.
//!
//! A partition is one Raft group. Every change to its state is a [`Command`]
//! carried in the Raft log; once an entry is committed, every replica feeds it
//! to [`apply`], which reads and writes the partition's key-value state through
//! a [`StateTxn`] and returns a [`Response`] for the proposer plus a list of
//! [`Effect`]s (work that only the leader performs: calling an SDK endpoint,
//! firing a timer, sending to another partition).
//!
//! The lifecycle of a command:
//!
//! 1. a leader-side actor or a forwarded client request *proposes* an
//!    [`Envelope`] through Raft;
//! 2. Raft makes it durable on a quorum and commits it;
//! 3. each replica calls [`apply`] with the entry's [`RecordMeta`]; the state
//!    changes are written in the same storage batch as the applied log index,
//!    so replay after a crash reproduces exactly the same state;
//! 4. followers drop the effects, the leader hands them to its actors, whose
//!    results come back as new commands (step 1) — never as direct writes.
//!
//! Nothing in this crate reads a clock, draws randomness or does I/O: the only
//! notion of "now" and the only source of fresh identifiers is [`RecordMeta`].
#![deny(missing_docs)]

mod apply;
pub mod attach;
pub mod catalog;
pub mod codec;
mod command;
pub mod idempotency;
pub mod invocation;
pub mod keys;
pub mod outbox;
pub mod promise;
mod read;
mod store;
pub mod wait;

pub use apply::{ApplyError, apply, leader_epoch, state_version};
pub use command::{Command, Effect, Envelope, Response, StateMap};
pub use keys::{METADATA_GROUP, PartitionId, partition_for_key, partition_key};
pub use read::{Query, QueryResult, read};
pub use store::{MemStore, StateTxn, StateView};

/// Facts about a log record that [`apply`] may depend on. They come from the
/// Raft log entry, so every replica sees identical values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// The log index of the entry; unique per partition and a source of fresh ids.
    pub index: u64,
    /// The Raft term of the leader that appended the entry; used for fencing.
    pub term: u64,
    /// Position of the command within its entry's batch.
    pub position: u32,
}

impl RecordMeta {
    /// A sequence number unique to this command and ordered like the log:
    /// the log index, then the position in the batch (batches hold far
    /// fewer than 2^16 commands).
    pub fn seq(&self) -> u64 {
        (self.index << 16) | u64::from(self.position & 0xffff)
    }
}
#[cfg(test)]
mod replay_tests;
