//! Waiting for another invocation's result without having started it.
//!
//! Three things wait this way: `ctx.attach(id)` (`AttachInvocationCommand`,
//! answered when the target completes), `GetInvocationOutputCommand` (asks
//! once: the result, or "not ready"), and a call whose target exists already
//! — a repeated call of a request with the same idempotency key, which must
//! not run again but answer with the first one's result. The waiting
//! invocation may live in another partition, so the request travels as an
//! outbox message ([`OutboxMessage::Attach`], or the call's `Invoke`) to the
//! target's partition, and the answer travels back as a `Deliver`,
//! deduplicated by the waiting side's completion id.
//!
//! Waiting invocations are stored in the target's record
//! ([`InvocationRecord::attached`](crate::invocation::InvocationRecord)) and
//! answered, through the outbox, by the command that completes it. The
//! `Attach` command registers them (`commands/attach.rs`, sharing
//! `lifecycle::wait_for` with a repeated call); this module frames the
//! answers and reads whom a command addresses.

use crate::error::ApplyError;
use crate::idempotency::{idempotent_id, workflow_run_id};
use crate::model::invocation::{Caller, InvocationKey, InvocationResult};
use crate::model::message::OutboxMessage;
use crate::model::storage::frame;
use keel_protocol::proto::{
    AttachInvocationCompletionNotificationMessage, CallCompletionNotificationMessage, Failure,
    GetInvocationOutputCompletionNotificationMessage, IdempotentRequestTarget, Value, Void, WorkflowTarget,
    attach_invocation_command_message, attach_invocation_completion_notification_message,
    call_completion_notification_message, get_invocation_output_command_message,
    get_invocation_output_completion_notification_message,
};
use keel_protocol::{InvocationId, Message};

pub use crate::model::invocation::{Attached, Reply};

/// The most invocations that may wait for one invocation at once: their
/// answers are outbox messages of the command that completes it, and one
/// command has 1024 outbox slots (the caller's answer and a kill's child
/// calls need some of them).
pub const MAX_ATTACHERS: usize = 768;

/// The notification frame that answers `caller` with `result`; `None`
/// means "not ready" (only [`Reply::Output`] answers that).
pub fn notification(caller: &Caller, reply: Reply, result: Option<&InvocationResult>) -> Result<Vec<u8>, ApplyError> {
    let completion_id = caller.completion_id;
    let no_result = || ApplyError::NoResult { id: caller.id, completion_id };
    let failure =
        |code: u16, message: &str| Failure { code: u32::from(code), message: message.into(), metadata: vec![] };
    let value = |v: &[u8]| Value { content: v.to_vec().into() };
    let message = match reply {
        Reply::Call => {
            use call_completion_notification_message::Result as R;
            let result = match result {
                Some(InvocationResult::Success(v)) => R::Value(value(v)),
                Some(InvocationResult::Failure { code, message }) => R::Failure(failure(*code, message)),
                None => return Err(no_result()),
            };
            Message::CallCompletionNotification(CallCompletionNotificationMessage {
                completion_id,
                result: Some(result),
            })
        }
        Reply::Attach => {
            use attach_invocation_completion_notification_message::Result as R;
            let result = match result {
                Some(InvocationResult::Success(v)) => R::Value(value(v)),
                Some(InvocationResult::Failure { code, message }) => R::Failure(failure(*code, message)),
                None => return Err(no_result()),
            };
            Message::AttachInvocationCompletionNotification(AttachInvocationCompletionNotificationMessage {
                completion_id,
                result: Some(result),
            })
        }
        Reply::Output => {
            use get_invocation_output_completion_notification_message::Result as R;
            let result = match result {
                Some(InvocationResult::Success(v)) => R::Value(value(v)),
                Some(InvocationResult::Failure { code, message }) => R::Failure(failure(*code, message)),
                None => R::Void(Void {}),
            };
            Message::GetInvocationOutputCompletionNotification(GetInvocationOutputCompletionNotificationMessage {
                completion_id,
                result: Some(result),
            })
        }
    };
    frame(&caller.id, message)
}

/// The outbox message that answers `caller` (see [`notification`]).
pub fn answer(caller: &Caller, reply: Reply, result: Option<&InvocationResult>) -> Result<OutboxMessage, ApplyError> {
    let notification = notification(caller, reply, result)?;
    Ok(OutboxMessage::Deliver { id: caller.id, completion_id: caller.completion_id, notification })
}

/// The three ways an attach or get-output command names its target.
enum Addressed<'a> {
    Id(&'a str),
    Idempotent(&'a IdempotentRequestTarget),
    Workflow(&'a WorkflowTarget),
}

/// The target, completion id and reply kind of an attach or get-output
/// command; `None` for other commands. The target is an error message if
/// the command names none or an id that does not parse.
pub fn addressed(command: &Message) -> Option<(Result<InvocationKey, String>, u32, Reply)> {
    let (target, completion_id, reply) = match command {
        Message::AttachInvocationCommand(m) => {
            use attach_invocation_command_message::Target as T;
            let target = m.target.as_ref().map(|t| match t {
                T::InvocationId(id) => Addressed::Id(id),
                T::IdempotentRequestTarget(t) => Addressed::Idempotent(t),
                T::WorkflowTarget(t) => Addressed::Workflow(t),
            });
            (target, m.result_completion_id, Reply::Attach)
        }
        Message::GetInvocationOutputCommand(m) => {
            use get_invocation_output_command_message::Target as T;
            let target = m.target.as_ref().map(|t| match t {
                T::InvocationId(id) => Addressed::Id(id),
                T::IdempotentRequestTarget(t) => Addressed::Idempotent(t),
                T::WorkflowTarget(t) => Addressed::Workflow(t),
            });
            (target, m.result_completion_id, Reply::Output)
        }
        _ => return None,
    };
    let id = match target {
        None => Err("the command names no invocation".to_string()),
        Some(Addressed::Id(id)) => {
            id.parse::<InvocationId>().map(|id| id.to_bytes()).map_err(|e| format!("invalid invocation id {id:?}: {e}"))
        }
        Some(Addressed::Idempotent(t)) => {
            let key = t.service_key.as_deref();
            Ok(idempotent_id(&t.service_name, key, &t.handler_name, &t.idempotency_key).to_bytes())
        }
        Some(Addressed::Workflow(t)) => Ok(workflow_run_id(&t.workflow_name, &t.workflow_key).to_bytes()),
    };
    Some((id, completion_id, reply))
}

#[cfg(test)]
mod tests;
