//! Messages from one invocation to another, possibly in another partition:
//! a call or one-way send creates an invocation, a finished call delivers its
//! result back to the caller. They are written to the partition's outbox in
//! the same batch as the journal entry that causes them; the leader's
//! shipper delivers them (through the router) and then removes them, and the
//! receiving side deduplicates, so each takes effect exactly once.

use crate::codec::{decode, encode};
use crate::invocation::{self, Caller, InvocationEffect, InvocationKey, InvocationRecord, InvocationResult};
use crate::keys;
use crate::store::{StateTxn, StateView};
use keel_protocol::proto::{
    CallCommandMessage, CallCompletionNotificationMessage, CallInvocationIdCompletionNotificationMessage, Failure,
    InputCommandMessage, OneWayCallCommandMessage, SendSignalCommandMessage, SignalNotificationMessage, Value, Void,
    call_completion_notification_message, complete_awakeable_command_message, send_signal_command_message,
    signal_notification_message,
};
use keel_protocol::{AwakeableId, Flags, InvocationId, Message};
use serde::{Deserialize, Serialize};

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxMessage {
    /// Create an invocation (the shipper resolves the handler's kind from
    /// the catalog, which the state machine cannot read).
    Invoke {
        /// The new invocation's id (derived from the caller's id and the
        /// command's completion index, so it is the same on every replica).
        id: InvocationKey,
        /// Target service.
        service: String,
        /// Target handler.
        handler: String,
        /// Object or workflow key.
        key: Option<String>,
        /// The raw `InputCommand` frame.
        input: Vec<u8>,
        /// The caller to answer, for request-response calls.
        caller: Option<Caller>,
        /// A delayed send: not before this time (ms since the Unix epoch).
        not_before_ms: u64,
    },
    /// Deliver a call's result to the caller.
    Deliver {
        /// The caller.
        id: InvocationKey,
        /// The completion id the result answers.
        completion_id: u32,
        /// The raw `CallCompletionNotification` frame.
        notification: Vec<u8>,
    },
    /// Kill a child call of a killed invocation (the shipper stamps the
    /// purge time of the `Intervene` it proposes).
    Kill {
        /// The child invocation.
        id: InvocationKey,
    },
}

fn frame(message: Message) -> Result<Vec<u8>, String> {
    Ok(message.to_frame(Flags::NONE).map_err(|e| e.to_string())?.to_bytes().to_vec())
}

/// Stores `message` in the outbox under `seq` and tells the leader.
pub fn push(txn: &mut impl StateTxn, seq: u64, message: OutboxMessage) -> InvocationEffect {
    txn.put(keys::outbox_key(seq), encode(&message));
    InvocationEffect::Outbox(seq, message)
}

/// Every message in the outbox, in order.
pub fn pending(view: &impl StateView) -> Vec<(u64, OutboxMessage)> {
    view.scan_prefix(&[keys::KIND_OUTBOX])
        .into_iter()
        .filter_map(|(k, v)| {
            let seq = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
            let message = decode(&v).ok()?;
            Some((seq, message))
        })
        .collect()
}

/// Removes a shipped message.
pub fn done(txn: &mut impl StateTxn, seq: u64) {
    txn.delete(keys::outbox_key(seq));
}

/// The id of the invocation a call creates: derived, so every replica and
/// every retry agree on it.
fn callee_id(caller: &InvocationKey, index: u32, key: Option<&str>) -> InvocationKey {
    let mut seed = caller.to_vec();
    seed.extend_from_slice(&index.to_be_bytes());
    let pk = match key {
        Some(k) => keys::partition_key(k.as_bytes()),
        None => xxhash_rust::xxh3::xxh3_64(&seed),
    };
    InvocationId::new(pk, xxhash_rust::xxh3::xxh3_128(&seed)).to_bytes()
}

/// Dedup keys of signals delivered to an invocation carry this bit, so they
/// never collide with call completion ids.
pub const SIGNAL_KEY: u32 = 0x8000_0000;

/// The message that delivers a signal (an awakeable's result) to the
/// invocation that awaits it.
pub fn signal(
    target: &InvocationKey,
    signal_index: u32,
    result: signal_notification_message::Result,
) -> Result<OutboxMessage, String> {
    let notification = frame(Message::SignalNotification(SignalNotificationMessage {
        signal_id: Some(signal_notification_message::SignalId::Idx(signal_index)),
        result: Some(result),
    }))?;
    Ok(OutboxMessage::Deliver { id: *target, completion_id: SIGNAL_KEY | signal_index, notification })
}

/// Dedup keys of named signals carry these bits and 30 bits of a hash of
/// the sender, the name and the result: a re-shipped signal is journaled
/// once (an identical signal from the same sender counts as the same one).
pub const NAMED_SIGNAL_KEY: u32 = 0xC000_0000;

/// The message of a `SendSignalCommand` (V5+): a numbered signal (1 is
/// CANCEL, which is how `ctx.cancel(id)` and the SDKs' cancellation of
/// child calls are expressed) or a named signal (`ctx.signal(name)` on the
/// receiving side). `None` for a malformed target id, which signals nothing.
fn send_signal(sender: &InvocationKey, command: &SendSignalCommandMessage) -> Result<Option<OutboxMessage>, String> {
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
            let notification = frame(Message::SignalNotification(SignalNotificationMessage {
                signal_id: Some(signal_notification_message::SignalId::Name(name.clone())),
                result: Some(result),
            }))?;
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
/// invocation's id), and the outbox message.
pub struct Outgoing {
    /// Journaled right after the command.
    pub follow_up: Option<Vec<u8>>,
    /// Put in the outbox.
    pub message: OutboxMessage,
}

/// The [`Outgoing`] of a journaled command; `None` for commands that reach
/// no other invocation.
pub fn on_command(caller: &InvocationKey, command: &Message) -> Result<Option<Outgoing>, String> {
    if let Message::SendSignalCommand(send) = command {
        return Ok(send_signal(caller, send)?.map(|message| Outgoing { follow_up: None, message }));
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
        return Ok(Some(Outgoing { follow_up: None, message: signal(&target, awakeable.signal_index, result)? }));
    }
    let (service, handler, parameter, headers, key, idx, caller_ref, not_before_ms) = match command {
        Message::CallCommand(CallCommandMessage {
            service_name,
            handler_name,
            parameter,
            headers,
            key,
            invocation_id_notification_idx,
            result_completion_id,
            ..
        }) => (
            service_name,
            handler_name,
            parameter,
            headers,
            key,
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
            invocation_id_notification_idx,
            invoke_time,
            ..
        }) => {
            (service_name, handler_name, parameter, headers, key, *invocation_id_notification_idx, None, *invoke_time)
        }
        _ => return Ok(None),
    };
    let key = (!key.is_empty()).then(|| key.clone());
    let id = callee_id(caller, idx, key.as_deref());
    let display = InvocationId::from_bytes(&id).map_err(|e| e.to_string())?.to_string();
    let id_notification =
        frame(Message::CallInvocationIdCompletionNotification(CallInvocationIdCompletionNotificationMessage {
            completion_id: idx,
            invocation_id: display,
        }))?;
    let input = frame(Message::InputCommand(InputCommandMessage {
        headers: headers.clone(),
        value: Some(Value { content: parameter.clone() }),
        name: String::new(),
    }))?;
    let message = OutboxMessage::Invoke {
        id,
        service: service.clone(),
        handler: handler.clone(),
        key,
        input,
        caller: caller_ref,
        not_before_ms,
    };
    Ok(Some(Outgoing { follow_up: Some(id_notification), message }))
}

/// The request-response calls in `journal` (of invocation `caller`) whose
/// result has not arrived: the children a kill takes along. One-way sends
/// are not children.
pub fn pending_calls(caller: &InvocationKey, journal: &[Vec<u8>]) -> Vec<InvocationKey> {
    let messages: Vec<Message> = journal.iter().filter_map(|e| crate::invocation::decode_entry(e)).collect();
    let answered: Vec<u32> = messages
        .iter()
        .filter_map(|m| match m {
            Message::CallCompletionNotification(n) => Some(n.completion_id),
            _ => None,
        })
        .collect();
    messages
        .iter()
        .filter_map(|m| match m {
            Message::CallCommand(call) if !answered.contains(&call.result_completion_id) => {
                let key = (!call.key.is_empty()).then_some(call.key.as_str());
                Some(callee_id(caller, call.invocation_id_notification_idx, key))
            }
            _ => None,
        })
        .collect()
}

/// The message delivering `result` to `caller`.
pub fn result_for(caller: &Caller, result: &InvocationResult) -> Result<OutboxMessage, String> {
    let result = match result {
        InvocationResult::Success(v) => {
            call_completion_notification_message::Result::Value(Value { content: v.clone().into() })
        }
        InvocationResult::Failure { code, message } => call_completion_notification_message::Result::Failure(Failure {
            code: u32::from(*code),
            message: message.clone(),
            metadata: Vec::new(),
        }),
    };
    let notification = frame(Message::CallCompletionNotification(CallCompletionNotificationMessage {
        completion_id: caller.completion_id,
        result: Some(result),
    }))?;
    Ok(OutboxMessage::Deliver { id: caller.id, completion_id: caller.completion_id, notification })
}

/// Journals a delivered call result once (a re-delivery changes nothing).
pub fn deliver(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    completion_id: u32,
    notification: &[u8],
) -> Result<(invocation::InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(mut record): Option<InvocationRecord> = invocation::load(txn, id)? else {
        return Ok((invocation::InvocationOutcome::NotFound, Vec::new()));
    };
    if record.delivered.contains(&completion_id) {
        return Ok((invocation::InvocationOutcome::Exists(record.status), Vec::new()));
    }
    record.delivered.push(completion_id);
    invocation::store(txn, id, &record);
    invocation::notify(txn, id, notification)
}

#[cfg(test)]
mod tests;
