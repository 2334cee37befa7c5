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
//!
//! # Layout
//!
//! Modules depend on each other in layers, never in a circle:
//!
//! - leaves: [`keys`] (the key layout), [`codec`], the storage traits,
//!   the error type, and `model/` (the records: invocations, outbox
//!   messages, outcomes and effects, and how they are read and written);
//! - features on top of the model: [`idempotency`], [`attach`], [`outbox`],
//!   [`promise`], object state, and `lifecycle` (admitting, waking and
//!   finishing invocations);
//! - `commands/`: one handler per [`Command`] variant;
//! - [`apply`]: the fence check and the dispatch to the handlers.
//!
//! [`invocation`], [`outbox`], [`attach`] and [`catalog`] are also where
//! other crates find the model's types.
#![deny(missing_docs)]

mod apply;
pub mod attach;
pub mod catalog;
pub mod codec;
mod command;
mod commands;
mod error;
pub mod expiry;
pub mod idempotency;
pub mod invocation;
pub mod journal_position;
pub mod keys;
mod lifecycle;
mod model;
pub mod outbox;
pub mod promise;
mod read;
mod state;
mod store;
#[cfg(test)]
mod testing;
pub mod wait;

pub use apply::apply;
pub use command::{Command, Effect, Envelope, RecordMeta, Response, StateMap};
pub use commands::announce_leader::leader_epoch;
pub use error::ApplyError;
pub use keys::{METADATA_GROUP, PartitionId, partition_for_key, partition_key};
pub use read::{Query, QueryResult, read};
pub use state::state_version;
pub use store::{MemStore, StateTxn, StateView};
