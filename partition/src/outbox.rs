//! Messages from one invocation to another, possibly in another partition:
//! a call or one-way send creates an invocation, a finished call delivers its
//! result back to the caller, an attach asks for another invocation's result
//! ([`crate::attach`]). They are written to the partition's outbox in
//! the same batch as the journal entry that causes them; the leader's
//! shipper delivers them (through the router) and then removes them, and the
//! receiving side deduplicates, so each takes effect exactly once.

use crate::codec::{decode, encode};
use crate::invocation::{self, Caller, InvocationEffect, InvocationKey, InvocationRecord};
use crate::keys;
use crate::store::{StateTxn, StateView};
use keel_protocol::proto::{
    CallCommandMessage, CallInvocationIdCompletionNotificationMessage, InputCommandMessage, OneWayCallCommandMessage,
    SendSignalCommandMessage, SignalNotificationMessage, Value, Void, complete_awakeable_command_message,
    send_signal_command_message, signal_notification_message,
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
        /// The call carries an idempotency key (its result is kept for the
        /// idempotency retention).
        idempotent: bool,
    },
    /// Ask for another invocation's result (attach, get output).
    Attach {
        /// The invocation whose result is wanted.
        target: InvocationKey,
        /// Who asks, and under which completion id.
        caller: Caller,
        /// How the answer is framed.
        reply: crate::attach::Reply,
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
pub fn on_command(caller: &InvocationKey, command: &Message, workflow_run: bool) -> Result<Option<Outgoing>, String> {
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
                let failure = invocation::InvocationResult::Failure { code: 400, message: reason };
                let follow_up = crate::attach::notification(completion_id, reply, Some(&failure))?;
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
            crate::idempotency::idempotent_id(service, key.as_deref(), handler, idempotency_key).to_bytes()
        }
        (None, Some(key)) if workflow_run => crate::idempotency::workflow_run_id(service, key).to_bytes(),
        _ => callee_id(caller, idx, key.as_deref()),
    };
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
        idempotent: idempotency_key.is_some(),
    };
    Ok(Some(Outgoing { follow_up: Some(id_notification), message: Some(message) }))
}

/// The request-response calls in `journal` whose result has not arrived:
/// the children a kill takes along. Their ids are the ones journaled for
/// them (`CallInvocationIdCompletionNotification`). One-way sends are not
/// children.
pub fn pending_calls(journal: &[Vec<u8>]) -> Vec<InvocationKey> {
    let messages: Vec<Message> = journal.iter().filter_map(|e| crate::invocation::decode_entry(e)).collect();
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
