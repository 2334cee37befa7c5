//! Messages from one invocation to another, possibly in another partition:
//! a call or one-way send creates an invocation, a finished call delivers its
//! result back to the caller, an attach asks for another invocation's result
//! ([`crate::attach`]). They are written to the partition's outbox in
//! the same batch as the journal entry that causes them; the leader's
//! shipper delivers them (through the router) and then removes them, and the
//! receiving side deduplicates, so each takes effect exactly once.
//!
//! This module reads journaled commands and says what they send
//! ([`on_command`]); storing the message is the `AppendJournal` handler's
//! job, removing it the `OutboxDone` handler's, and journaling a delivered
//! result the `Deliver` handler's (all in `commands/`).

use crate::error::ApplyError;
use crate::keys;
use crate::model::invocation::{Caller, InvocationKey, InvocationResult, NAMED_SIGNAL_KEY};
use crate::model::storage::{decode_entry, frame};
use keel_protocol::proto::{
    CallCommandMessage, CallInvocationIdCompletionNotificationMessage, InputCommandMessage, OneWayCallCommandMessage,
    SendSignalCommandMessage, SignalNotificationMessage, Value, Void, complete_awakeable_command_message,
    send_signal_command_message, signal_notification_message,
};
use keel_protocol::{AwakeableId, InvocationId, Message};

pub use crate::model::invocation::SIGNAL_KEY;
pub use crate::model::message::OutboxMessage;
pub use crate::model::storage::pending;

/// The id of the invocation a call creates: derived, so every replica and
/// every retry agree on it.
fn callee_id(caller: &InvocationKey, index: u32, key: Option<&str>) -> InvocationId {
    let mut seed = caller.to_vec();
    seed.extend_from_slice(&index.to_be_bytes());
    let pk = match key {
        Some(k) => keys::partition_key(k.as_bytes()),
        None => xxhash_rust::xxh3::xxh3_64(&seed),
    };
    InvocationId::new(pk, xxhash_rust::xxh3::xxh3_128(&seed))
}

/// The message that delivers a signal (an awakeable's result) to the
/// invocation that awaits it.
pub fn signal(
    target: &InvocationKey,
    signal_index: u32,
    result: signal_notification_message::Result,
) -> Result<OutboxMessage, ApplyError> {
    let notification = frame(
        target,
        Message::SignalNotification(SignalNotificationMessage {
            signal_id: Some(signal_notification_message::SignalId::Idx(signal_index)),
            result: Some(result),
        }),
    )?;
    Ok(OutboxMessage::Deliver { id: *target, completion_id: SIGNAL_KEY | signal_index, notification })
}

/// The message of a `SendSignalCommand` (V5+): a numbered signal (1 is
/// CANCEL, which is how `ctx.cancel(id)` and the SDKs' cancellation of
/// child calls are expressed) or a named signal (`ctx.signal(name)` on the
/// receiving side). `None` for a malformed target id, which signals nothing.
fn send_signal(
    sender: &InvocationKey,
    command: &SendSignalCommandMessage,
) -> Result<Option<OutboxMessage>, ApplyError> {
    let Ok(target) = command.target_invocation_id.parse::<InvocationId>() else { return Ok(None) };
    let target = target.to_bytes();
    let result = match &command.result {
        Some(send_signal_command_message::Result::Value(v)) => signal_notification_message::Result::Value(v.clone()),
        Some(send_signal_command_message::Result::Failure(f)) => {
            signal_notification_message::Result::Failure(f.clone())
        }
        Some(send_signal_command_message::Result::Void(_)) | None => signal_notification_message::Result::Void(Void {}),
    };
    match &command.signal_id {
        Some(send_signal_command_message::SignalId::Idx(idx)) => signal(&target, *idx, result).map(Some),
        Some(send_signal_command_message::SignalId::Name(name)) => {
            let notification = frame(
                &target,
                Message::SignalNotification(SignalNotificationMessage {
                    signal_id: Some(signal_notification_message::SignalId::Name(name.clone())),
                    result: Some(result),
                }),
            )?;
            let mut seed = sender.to_vec();
            seed.extend_from_slice(&notification);
            let completion_id = NAMED_SIGNAL_KEY | (xxhash_rust::xxh3::xxh3_64(&seed) as u32 & 0x3fff_ffff);
            Ok(Some(OutboxMessage::Deliver { id: target, completion_id, notification }))
        }
        None => Ok(None),
    }
}

/// What a journaled command sends to another invocation: the notification to
/// journal right after the command, if any (calls and sends: the new
/// invocation's id; a malformed attach: its failure), and the outbox message.
pub struct Outgoing {
    /// Journaled right after the command.
    pub follow_up: Option<Vec<u8>>,
    /// Put in the outbox.
    pub message: Option<OutboxMessage>,
}

/// The [`Outgoing`] of a journaled command; `None` for commands that reach
/// no other invocation. `workflow_run` says that a call or send targets a
/// workflow's run handler (the invoker resolved it from the catalog): its
/// invocation id is the workflow run's, so it runs once per workflow id.
pub fn on_command(
    caller: &InvocationKey,
    command: &Message,
    workflow_run: bool,
) -> Result<Option<Outgoing>, ApplyError> {
    if let Message::SendSignalCommand(send) = command {
        return Ok(send_signal(caller, send)?.map(|message| Outgoing { follow_up: None, message: Some(message) }));
    }
    if let Some((target, completion_id, reply)) = crate::attach::addressed(command) {
        let asker = Caller { id: *caller, completion_id };
        return Ok(Some(match target {
            Ok(target) => {
                Outgoing { follow_up: None, message: Some(OutboxMessage::Attach { target, caller: asker, reply }) }
            }
            Err(reason) => {
                let failure = InvocationResult::Failure { code: 400, message: reason };
                let follow_up = crate::attach::notification(&asker, reply, Some(&failure))?;
                Outgoing { follow_up: Some(follow_up), message: None }
            }
        }));
    }
    if let Message::CompleteAwakeableCommand(complete) = command {
        let Ok(awakeable) = complete.awakeable_id.parse::<AwakeableId>() else {
            // The SDK hands out only ids it made; an unparsable one resolves nothing.
            return Ok(None);
        };
        let result = match &complete.result {
            Some(complete_awakeable_command_message::Result::Value(v)) => {
                signal_notification_message::Result::Value(v.clone())
            }
            Some(complete_awakeable_command_message::Result::Failure(f)) => {
                signal_notification_message::Result::Failure(f.clone())
            }
            None => signal_notification_message::Result::Void(Void {}),
        };
        let target = awakeable.invocation_id.to_bytes();
        let message = signal(&target, awakeable.signal_index, result)?;
        return Ok(Some(Outgoing { follow_up: None, message: Some(message) }));
    }
    let (service, handler, parameter, headers, key, idempotency_key, idx, caller_ref, not_before_ms) = match command {
        Message::CallCommand(CallCommandMessage {
            service_name,
            handler_name,
            parameter,
            headers,
            key,
            idempotency_key,
            invocation_id_notification_idx,
            result_completion_id,
            ..
        }) => (
            service_name,
            handler_name,
            parameter,
            headers,
            key,
            idempotency_key,
            *invocation_id_notification_idx,
            Some(Caller { id: *caller, completion_id: *result_completion_id }),
            0,
        ),
        Message::OneWayCallCommand(OneWayCallCommandMessage {
            service_name,
            handler_name,
            parameter,
            headers,
            key,
            idempotency_key,
            invocation_id_notification_idx,
            invoke_time,
            ..
        }) => (
            service_name,
            handler_name,
            parameter,
            headers,
            key,
            idempotency_key,
            *invocation_id_notification_idx,
            None,
            *invoke_time,
        ),
        _ => return Ok(None),
    };
    let key = (!key.is_empty()).then(|| key.clone());
    let idempotency_key = idempotency_key.as_deref().filter(|k| !k.is_empty());
    // The same ids the ingress gives: a workflow run's id comes from the
    // workflow and its key, an idempotent request's from its key; any other
    // call's from the caller and the command, so retries agree on it.
    let id = match (idempotency_key, &key) {
        (Some(idempotency_key), _) => {
            crate::idempotency::idempotent_id(service, key.as_deref(), handler, idempotency_key)
        }
        (None, Some(key)) if workflow_run => crate::idempotency::workflow_run_id(service, key),
        _ => callee_id(caller, idx, key.as_deref()),
    };
    let id_notification = frame(
        caller,
        Message::CallInvocationIdCompletionNotification(CallInvocationIdCompletionNotificationMessage {
            completion_id: idx,
            invocation_id: id.to_string(),
        }),
    )?;
    let id = id.to_bytes();
    let input = frame(
        &id,
        Message::InputCommand(InputCommandMessage {
            headers: headers.clone(),
            value: Some(Value { content: parameter.clone() }),
            name: String::new(),
        }),
    )?;
    let message = OutboxMessage::Invoke {
        id,
        service: service.clone(),
        handler: handler.clone(),
        key,
        input,
        caller: caller_ref,
        not_before_ms,
        idempotent: idempotency_key.is_some(),
    };
    Ok(Some(Outgoing { follow_up: Some(id_notification), message: Some(message) }))
}

/// The request-response calls in `journal` whose result has not arrived:
/// the children a kill takes along. Their ids are the ones journaled for
/// them (`CallInvocationIdCompletionNotification`). One-way sends are not
/// children.
pub fn pending_calls(journal: &[Vec<u8>]) -> Vec<InvocationKey> {
    let messages: Vec<Message> = journal.iter().filter_map(|e| decode_entry(e)).collect();
    let answered: Vec<u32> = messages
        .iter()
        .filter_map(|m| match m {
            Message::CallCompletionNotification(n) => Some(n.completion_id),
            _ => None,
        })
        .collect();
    let id_of = |idx: u32| {
        messages.iter().find_map(|m| match m {
            Message::CallInvocationIdCompletionNotification(n) if n.completion_id == idx => {
                n.invocation_id.parse::<InvocationId>().ok().map(|id| id.to_bytes())
            }
            _ => None,
        })
    };
    messages
        .iter()
        .filter_map(|m| match m {
            Message::CallCommand(call) if !answered.contains(&call.result_completion_id) => {
                id_of(call.invocation_id_notification_idx)
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
