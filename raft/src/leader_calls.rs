//! What replication needs from the partition leader's runtime.
//!
//! A call waits for an invocation's result, and only the leader's runtime
//! knows when one completes (it keeps the waiters and hears the applied
//! effects). Replication itself runs no invocations, so it reaches that
//! runtime through this trait: the node port serves forwarded calls with
//! it, and the [`crate::router::Router`] uses it when this node leads.
//! Keeping it a trait keeps `raft` free of the invoker and of the SDK
//! endpoint client.

use crate::messages::ProposeError;
use futures::future::BoxFuture;
use keel_partition::Envelope;
use keel_partition::invocation::InvocationKey;
use keel_partition::wait::{WaitPolicy, Waited};

/// Calls and attaches served by the leader of a group hosted on this node.
pub trait LeaderCalls: Send + Sync + 'static {
    /// Creates an invocation on `group` (which this node must lead) with
    /// `envelope` (an `Invoke`) and waits for its result as `policy`
    /// allows. A repeated call for the same id attaches to the running
    /// invocation or returns its stored result.
    fn call(&self, group: u32, envelope: Envelope, policy: WaitPolicy) -> BoxFuture<'_, Result<Waited, ProposeError>>;

    /// Waits for the result of invocation `id` of `group` (which this node
    /// must lead) as `policy` allows: at once if it completed, `None` if
    /// unknown.
    fn attach(
        &self,
        group: u32,
        id: InvocationKey,
        policy: WaitPolicy,
    ) -> BoxFuture<'_, Result<Option<Waited>, ProposeError>>;
}
