//! Delivering one outbox message: the command it becomes on the partition
//! that applies it, proposed there through the router.
//!
//! An `Invoke` needs the target handler's kind and retention from a
//! catalog that knows the handler ([`crate::catalog_lookup`]): only a
//! handler the metadata group's current catalog does not know either fails
//! the call with 404. While the metadata group cannot be read, the message
//! is retried like any other failed delivery: nothing is dropped on the
//! word of a catalog that may be stale.

use crate::catalog_lookup::{CatalogError, catalog_for};
use crate::partition::Partition;
use keel_partition::attach;
use keel_partition::invocation::{
    self, HandlerKind, Intervention, InvocationKey, InvocationRecord, InvocationResult, Status, Target,
};
use keel_partition::outbox::{self, OutboxMessage};
use keel_partition::{ApplyError, Command, Envelope, idempotency, partition_for_key};
use keel_protocol::InvocationId;
use keel_raft::router::RouteError;

/// Why a delivery failed; the shipper retries it.
#[derive(Debug, thiserror::Error)]
pub(super) enum ShipError {
    /// The receiving partition could not be reached or did not commit.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No catalog that knows the target could be consulted.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The 404 answer to a caller could not be framed.
    #[error("cannot answer the caller: {0}")]
    Answer(#[from] ApplyError),
}

/// The partition that applies messages to invocation `id`.
pub(super) fn partition_of(partition: &Partition, id: &InvocationKey) -> u32 {
    let count = partition.services.router.registry().partition_count();
    partition_for_key(InvocationId::from_raw(id).partition_key, count)
}

/// Proposes `command` to the partition of invocation `id`.
async fn propose_to(partition: &Partition, id: &InvocationKey, command: Command) -> Result<(), ShipError> {
    partition.services.router.propose(partition_of(partition, id), Envelope::client(command)).await?;
    Ok(())
}

/// Proposes `what` for invocation `id` to its partition, stamped with the
/// time (the retention of a record it completes counts from it), as the
/// admin API does.
async fn intervene(partition: &Partition, id: &InvocationKey, what: Intervention) -> Result<(), ShipError> {
    propose_to(partition, id, Command::Intervene { id: *id, what, completed_at_ms: partition.now_ms() }).await
}

/// The dedup key of a CANCEL signal delivery.
const CANCEL_KEY: u32 = outbox::SIGNAL_KEY | keel_protocol::ids::CANCEL_SIGNAL_INDEX;

/// Delivers `message` once (the receiver deduplicates repeats).
pub(super) async fn ship_one(partition: &Partition, message: &OutboxMessage) -> Result<(), ShipError> {
    match message {
        OutboxMessage::Invoke { id, service, handler, key, input, caller, not_before_ms, idempotent } => {
            let Some((kind, retention_ms)) = resolve(partition, service, handler, *idempotent).await? else {
                // Like the ingress: an unknown target fails the call.
                let Some(caller) = caller else {
                    tracing::warn!(
                        partition = partition.id(),
                        invocation = %InvocationId::from_raw(id),
                        "one-way send to {service}/{handler} failed: the service catalog has no such handler"
                    );
                    return Ok(());
                };
                let failure = InvocationResult::Failure {
                    code: 404,
                    message: format!("handler '{service}/{handler}' not found"),
                };
                // Shipped from the `Invoke`'s lane, before the `Invoke` is
                // removed: a crash in between ships both again (the caller
                // deduplicates). Nothing else in the outbox answers this
                // completion, so skipping the caller's lane reorders nothing.
                let answer = attach::answer(caller, attach::Reply::Call, Some(&failure))?;
                return Box::pin(ship_one(partition, &answer)).await;
            };
            let now = partition.now_ms();
            let status =
                if *not_before_ms > now { Status::Scheduled { fire_at_ms: *not_before_ms } } else { Status::Invoked };
            let record = InvocationRecord {
                target: Target { service: service.clone(), handler: handler.clone(), key: key.clone(), kind },
                deployment_id: None,
                created_at_ms: now,
                journal_len: 0,
                status,
                caller: caller.clone(),
                delivered: Vec::new(),
                timers: Vec::new(),
                retention_ms,
                attached: Vec::new(),
            };
            propose_to(partition, id, Command::Invoke { id: *id, record, input: input.clone() }).await
        }
        OutboxMessage::Kill { id } => intervene(partition, id, Intervention::Kill).await,
        OutboxMessage::Attach { target, caller, reply } => {
            propose_to(partition, target, Command::Attach { id: *target, caller: caller.clone(), reply: *reply }).await
        }
        // A CANCEL signal (a parent cancelling its child calls, `ctx.cancel`)
        // cancels like the admin API does: a queued target completes at once.
        OutboxMessage::Deliver { id, completion_id, .. } if *completion_id == CANCEL_KEY => {
            intervene(partition, id, Intervention::Cancel).await
        }
        OutboxMessage::Deliver { id, completion_id, notification } => {
            let command =
                Command::Deliver { id: *id, completion_id: *completion_id, notification: notification.clone() };
            propose_to(partition, id, command).await
        }
    }
}

/// The kind of handler `service/handler` and the retention of an
/// invocation of it, per this node's catalog or else the metadata group's
/// (see the module's description); `None` if neither knows the handler.
async fn resolve(
    partition: &Partition,
    service: &str,
    handler: &str,
    idempotent: bool,
) -> Result<Option<(HandlerKind, u64)>, ShipError> {
    let catalog = catalog_for(partition, service, handler).await?;
    let Some((record, s)) = catalog.service(service) else { return Ok(None) };
    let Some(h) = s.handlers.iter().find(|h| h.name == handler) else { return Ok(None) };
    let completed_ms = partition.services.completed_retention_ms;
    Ok(Some((
        invocation::handler_kind(s, h),
        idempotency::retention_ms(&record.overrides, s, h, idempotent, completed_ms),
    )))
}
