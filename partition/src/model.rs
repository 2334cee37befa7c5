//! The record model: what a partition stores about invocations, and what its
//! commands answer and ask the leader to do.
//!
//! These are leaves. They know how the records look and how they are read
//! and written, nothing about *when* they change: that is the job of the
//! lifecycle ([`crate::lifecycle`]) and of the command handlers
//! ([`crate::commands`]), which depend on the model and never the other way
//! round. The public paths of these types are the facades
//! [`crate::invocation`], [`crate::outbox`] and [`crate::attach`].
//!
//! Every type here is part of the Raft log or of stored state, encoded with
//! bincode: its fields and variants must keep their order, or entries and
//! records written before stop decoding (see the pinned bytes in
//! `apply/replay_tests.rs`).

pub(crate) mod invocation;
pub(crate) mod message;
pub(crate) mod outcome;
pub(crate) mod storage;
