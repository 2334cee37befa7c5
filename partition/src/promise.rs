//! Durable promises of workflows: `ctx.promise(name)` get, peek and complete.
//!
//! A promise belongs to one workflow instance (service and workflow key), so
//! the run handler and the shared handlers that resolve it live in the same
//! partition and everything happens in one apply: completing a promise
//! journals the result into every invocation waiting for it.

use crate::codec::encode;
use crate::error::ApplyError;
use crate::keys;
use crate::lifecycle::notify;
use crate::model::invocation::InvocationKey;
use crate::model::outcome::InvocationEffect;
use crate::model::storage::{frame, get};
use crate::store::{StateTxn, StateView};
use keel_protocol::Message;
use keel_protocol::proto::{
    CompletePromiseCompletionNotificationMessage, Failure, GetPromiseCompletionNotificationMessage,
    PeekPromiseCompletionNotificationMessage, Value, Void, complete_promise_command_message,
    complete_promise_completion_notification_message, get_promise_completion_notification_message,
    peek_promise_completion_notification_message,
};
use serde::{Deserialize, Serialize};

/// A completed promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Completion {
    Value(Vec<u8>),
    Failure { code: u32, message: String },
}

/// The completion of promise `name`, if it was completed.
fn stored(view: &impl StateView, service: &str, key: &str, name: &str) -> Result<Option<Completion>, ApplyError> {
    get(view, keys::promise_key(service, key, name))
}

/// The answer to invocation `id`'s `GetPromiseCommand` `completion_id`.
fn get_notification(id: &InvocationKey, completion_id: u32, c: &Completion) -> Result<Vec<u8>, ApplyError> {
    use get_promise_completion_notification_message::Result as R;
    let result = match c {
        Completion::Value(v) => R::Value(Value { content: v.clone().into() }),
        Completion::Failure { code, message } => {
            R::Failure(Failure { code: *code, message: message.clone(), metadata: Vec::new() })
        }
    };
    frame(
        id,
        Message::GetPromiseCompletionNotification(GetPromiseCompletionNotificationMessage {
            completion_id,
            result: Some(result),
        }),
    )
}

/// What a promise command does: notifications for the invocation that
/// issued it (journaled right after the command) and effects of waking
/// other invocations.
pub struct Handled {
    /// Journaled right after the command, in order.
    pub follow_ups: Vec<Vec<u8>>,
    /// Effects of notifying other waiting invocations.
    pub effects: Vec<InvocationEffect>,
}

/// Handles a journaled promise command of invocation `id` of workflow
/// `service`/`key`; `None` if `command` is not a promise command.
pub fn on_command(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    service: &str,
    key: &str,
    command: &Message,
) -> Result<Option<Handled>, ApplyError> {
    match command {
        Message::GetPromiseCommand(m) => {
            let follow_ups = match stored(txn, service, key, &m.key)? {
                Some(c) => vec![get_notification(id, m.result_completion_id, &c)?],
                None => {
                    txn.put(keys::promise_waiter_key(service, key, &m.key, id, m.result_completion_id), Vec::new());
                    Vec::new()
                }
            };
            Ok(Some(Handled { follow_ups, effects: Vec::new() }))
        }
        Message::PeekPromiseCommand(m) => {
            use peek_promise_completion_notification_message::Result as R;
            let result = match stored(txn, service, key, &m.key)? {
                Some(Completion::Value(v)) => R::Value(Value { content: v.into() }),
                Some(Completion::Failure { code, message }) => {
                    R::Failure(Failure { code, message, metadata: Vec::new() })
                }
                None => R::Void(Void {}),
            };
            let notification = frame(
                id,
                Message::PeekPromiseCompletionNotification(PeekPromiseCompletionNotificationMessage {
                    completion_id: m.result_completion_id,
                    result: Some(result),
                }),
            )?;
            Ok(Some(Handled { follow_ups: vec![notification], effects: Vec::new() }))
        }
        Message::CompletePromiseCommand(m) => {
            use complete_promise_completion_notification_message::Result as R;
            let reply = |result: R| {
                frame(
                    id,
                    Message::CompletePromiseCompletionNotification(CompletePromiseCompletionNotificationMessage {
                        completion_id: m.result_completion_id,
                        result: Some(result),
                    }),
                )
            };
            if stored(txn, service, key, &m.key)?.is_some() {
                let failure = Failure { code: 409, message: "promise already completed".into(), metadata: Vec::new() };
                return Ok(Some(Handled { follow_ups: vec![reply(R::Failure(failure))?], effects: Vec::new() }));
            }
            let completion = match &m.completion {
                Some(complete_promise_command_message::Completion::CompletionValue(v)) => {
                    Completion::Value(v.content.to_vec())
                }
                Some(complete_promise_command_message::Completion::CompletionFailure(f)) => {
                    Completion::Failure { code: f.code, message: f.message.clone() }
                }
                None => Completion::Value(Vec::new()),
            };
            txn.put(keys::promise_key(service, key, &m.key), encode(&completion));
            let mut handled = Handled { follow_ups: vec![reply(R::Void(Void {}))?], effects: Vec::new() };
            let prefix = keys::promise_waiters_prefix(service, key, &m.key);
            for (waiter_key, _) in txn.scan_prefix(&prefix) {
                txn.delete(waiter_key.clone());
                let Some(rest) = waiter_key.get(prefix.len()..) else { continue };
                let (Some(waiter), Some(completion_id)) = (
                    rest.get(..24).and_then(|b| <InvocationKey>::try_from(b).ok()),
                    rest.get(24..28).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes),
                ) else {
                    continue;
                };
                let notification = get_notification(&waiter, completion_id, &completion)?;
                if waiter == *id {
                    handled.follow_ups.push(notification);
                } else {
                    handled.effects.extend(notify(txn, &waiter, &notification)?.1);
                }
            }
            Ok(Some(handled))
        }
        _ => Ok(None),
    }
}
