//! Calls and attaches on the leader: a caller registers as a waiter of the
//! invocation *before* anything can complete it (before proposing the
//! `Invoke`, before reading the status), then waits for the completion
//! effect, a parking, or its timeout, whichever the wait policy asks for.

use crate::partition::Partition;
use crate::waiters;
use keel_partition::invocation::{InvocationKey, InvocationOutcome, Status};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, Query, QueryResult, Response};
use keel_raft::messages::ProposeError;
use tokio::sync::oneshot;

/// Creates an invocation on `partition` (which this node must lead) and
/// waits for its result as `policy` allows. A repeated call for the same id
/// attaches to the running invocation or returns its stored result.
pub async fn call(partition: &Partition, envelope: Envelope, policy: WaitPolicy) -> Result<Waited, ProposeError> {
    let Command::Invoke { id, .. } = &envelope.command else {
        return Err(ProposeError::Unavailable("a call must carry an Invoke command".into()));
    };
    let id = *id;
    let rx = partition.waiters.register(id, policy.until_parked);
    let status = match partition.propose(envelope).await? {
        Response::Invocation(InvocationOutcome::Exists(status)) => Some(status),
        Response::Invocation(_) => None,
        other => return Err(ProposeError::Unavailable(format!("unexpected answer to invoke: {other:?}"))),
    };
    settle_wait(partition, id, status, rx, policy).await
}

/// Waits for the result of invocation `id` on `partition` (which this node
/// must lead) as `policy` allows: at once if it completed, `None` if unknown.
pub async fn attach(
    partition: &Partition,
    id: InvocationKey,
    policy: WaitPolicy,
) -> Result<Option<Waited>, ProposeError> {
    // Registered before the read, so a completion right after it is not missed.
    let rx = partition.waiters.register(id, policy.until_parked);
    let status = match partition.group.read(&Query::Invocation(id)).await? {
        QueryResult::Invocation(status) => status,
        other => return Err(ProposeError::Unavailable(format!("unexpected answer {other:?}"))),
    };
    if status.is_none() {
        drop(rx);
        partition.waiters.abandon(&id);
        return Ok(None);
    }
    settle_wait(partition, id, status, rx, policy).await.map(Some)
}

/// Ends a wait registered as `rx` for invocation `id`, whose status (if
/// already known) is `status`: a completed invocation answers at once; one
/// parked (suspended, paused, scheduled, or parked by the invoker) answers
/// `Pending` at once if the caller only waits until it parks; otherwise
/// the wait goes on as `policy` allows.
async fn settle_wait(
    partition: &Partition,
    id: InvocationKey,
    status: Option<Status>,
    rx: oneshot::Receiver<Waited>,
    policy: WaitPolicy,
) -> Result<Waited, ProposeError> {
    let parked_now = matches!(status, Some(Status::Suspended { .. } | Status::Paused | Status::Scheduled { .. }))
        || partition.waiters.is_parked(&id);
    let early = match status {
        Some(Status::Completed(result)) => Some(Waited::Done(result)),
        _ if policy.until_parked && parked_now => Some(Waited::Pending),
        _ => None,
    };
    let outcome = match early {
        Some(w) => {
            drop(rx);
            Ok(w)
        }
        None => waiters::wait(rx, policy).await,
    };
    // Whatever ended the wait, a waiter left behind is now unreachable.
    partition.waiters.abandon(&id);
    outcome
}
