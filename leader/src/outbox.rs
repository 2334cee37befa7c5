//! The leader's outbox shipper: delivers the partition's outbox messages
//! (new invocations from calls and sends, call results back to callers) to
//! their partitions through the router, in order, then removes them.
//!
//! Delivery is at least once (a message may be re-shipped after a crash or a
//! leader change, before its removal was committed); the receivers make it
//! exactly once: `Invoke` deduplicates by the derived invocation id,
//! `Deliver` by the caller's completion id, `Attach` by the waiting
//! invocation and completion id.
//!
//! A delayed one-way send is shipped at once too, as a *scheduled*
//! invocation: the target partition stores it and starts it with a durable
//! timer, exactly like a delayed send from the ingress.

use crate::backoff::Backoff;
use crate::partition::Partition;
use keel_partition::attach;
use keel_partition::invocation::{self, Intervention, InvocationRecord, InvocationResult, Status, Target};
use keel_partition::outbox::{self, OutboxMessage};
use keel_partition::{Command, Envelope, idempotency, partition_for_key};
use keel_protocol::InvocationId;
use keel_raft::router::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Ships messages from `queue` until the leader actor stops (this task is
/// aborted with it); the next leader reloads what was not removed.
pub async fn ship(partition: Arc<Partition>, term: u64, mut queue: mpsc::UnboundedReceiver<(u64, OutboxMessage)>) {
    // Cancellation-safe: the task is only ever aborted, never raced.
    while let Some((seq, message)) = queue.recv().await {
        ship_and_remove(&partition, term, seq, &message).await;
    }
}

async fn ship_and_remove(partition: &Partition, term: u64, seq: u64, message: &OutboxMessage) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    while let Err(e) = ship_one(partition, message).await {
        tracing::warn!(
            partition = partition.id(),
            seq,
            "shipping an outbox message failed, retrying in {:?}: {e}",
            backoff.delay()
        );
        backoff.wait().await;
    }
    // If this fails the message stays and is shipped again later, which the
    // receiver deduplicates.
    let _ = partition.propose(Envelope::fenced(term, Command::OutboxDone { seq })).await;
}

fn partition_of(router: &Router, id: &[u8; 24]) -> Result<u32, String> {
    let pk = InvocationId::from_bytes(id).map_err(|e| e.to_string())?.partition_key;
    Ok(partition_for_key(pk, router.registry().partition_count()))
}

/// Proposes `what` for invocation `id` to its partition, stamped with the
/// time (the retention of a record it completes counts from it), as the
/// admin API does.
async fn intervene(partition: &Partition, id: &[u8; 24], what: Intervention) -> Result<(), String> {
    let router = &partition.services.router;
    let command = Command::Intervene { id: *id, what, completed_at_ms: partition.now_ms() };
    router.propose(partition_of(router, id)?, Envelope::client(command)).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The dedup key of a CANCEL signal delivery.
const CANCEL_KEY: u32 = outbox::SIGNAL_KEY | keel_protocol::ids::CANCEL_SIGNAL_INDEX;

async fn ship_one(partition: &Partition, message: &OutboxMessage) -> Result<(), String> {
    let router = &partition.services.router;
    match message {
        OutboxMessage::Invoke { id, service, handler, key, input, caller, not_before_ms, idempotent } => {
            let catalog = partition.catalog()?;
            let schema = catalog.service(service).and_then(|(record, s)| {
                let h = s.handlers.iter().find(|h| h.name == *handler)?;
                let retention_ms = idempotency::retention_ms(&record.overrides, s, h, *idempotent);
                Some((invocation::handler_kind(s, h), retention_ms))
            });
            let Some((kind, retention_ms)) = schema else {
                // Like the ingress: an unknown target fails the call.
                let Some(caller) = caller else {
                    tracing::warn!(
                        partition = partition.id(),
                        "one-way send to unknown handler {service}/{handler} dropped"
                    );
                    return Ok(());
                };
                let failure = InvocationResult::Failure {
                    code: 404,
                    message: format!("handler '{service}/{handler}' not found"),
                };
                let deliver = attach::answer(caller, attach::Reply::Call, Some(&failure))?;
                return Box::pin(ship_one(partition, &deliver)).await;
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
            let command = Command::Invoke { id: *id, record, input: input.clone() };
            router.propose(partition_of(router, id)?, Envelope::client(command)).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        OutboxMessage::Kill { id } => intervene(partition, id, Intervention::Kill).await,
        OutboxMessage::Attach { target, caller, reply } => {
            let command = Command::Attach { id: *target, caller: caller.clone(), reply: *reply };
            router
                .propose(partition_of(router, target)?, Envelope::client(command))
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        // A CANCEL signal (a parent cancelling its child calls, `ctx.cancel`)
        // cancels like the admin API does: a queued target completes at once.
        OutboxMessage::Deliver { id, completion_id, .. } if *completion_id == CANCEL_KEY => {
            intervene(partition, id, Intervention::Cancel).await
        }
        OutboxMessage::Deliver { id, completion_id, notification } => {
            let command =
                Command::Deliver { id: *id, completion_id: *completion_id, notification: notification.clone() };
            router.propose(partition_of(router, id)?, Envelope::client(command)).await.map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}
