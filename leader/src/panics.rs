//! Catching the panic of a task that must not die silently.
//!
//! A panicking tokio task just ends: its `JoinHandle` reports it to whoever
//! awaits it, and nobody may. The leader runtime's loops (the leader actor,
//! an invocation's run loop, a partition's supervisor) run through
//! [`caught`] instead, so the code that started them learns of the panic,
//! logs it with its context and decides: start the loop again, or stop the
//! node.

use futures::FutureExt;
use keel_raft::health::panic_message;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Runs `task`; a panic in it becomes `Err` with the panic's message.
///
/// The state a panicking task shares with others is behind mutexes that
/// every user recovers from poisoning, and the task's own state is dropped
/// with it, so asserting unwind safety here is sound.
pub(crate) async fn caught<F: Future>(task: F) -> Result<F::Output, String> {
    AssertUnwindSafe(task).catch_unwind().await.map_err(|panic| panic_message(&*panic))
}
