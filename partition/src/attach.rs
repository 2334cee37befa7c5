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
//! answered, through the outbox, by the command that completes it.

use crate::idempotency::{idempotent_id, workflow_run_id};
use crate::invocation::{self, Caller, InvocationEffect, InvocationKey, InvocationOutcome, InvocationResult, Status};
use crate::outbox::{self, OutboxMessage};
use crate::store::StateTxn;
use keel_protocol::proto::{
    AttachInvocationCompletionNotificationMessage, CallCompletionNotificationMessage, Failure,
    GetInvocationOutputCompletionNotificationMessage, IdempotentRequestTarget, Value, Void, WorkflowTarget,
    attach_invocation_command_message, attach_invocation_completion_notification_message,
    call_completion_notification_message, get_invocation_output_command_message,
    get_invocation_output_completion_notification_message,
};
use keel_protocol::{Flags, InvocationId, Message};
use serde::{Deserialize, Serialize};

/// Which notification answers a waiting invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// `CallCompletionNotification`: the waiting invocation called the target.
    Call,
    /// `AttachInvocationCompletionNotification`: it attached.
    Attach,
    /// `GetInvocationOutputCompletionNotification`: answered at once, with
    /// "not ready" (void) while the target has not completed.
    Output,
}

/// An invocation waiting for another one's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// Who waits, under which completion id.
    pub caller: Caller,
    /// How the answer is framed.
    pub reply: Reply,
}

/// The most invocations that may wait for one invocation at once: their
/// answers are outbox messages of the command that completes it, and one
/// command has 1024 outbox slots (the caller's answer and a kill's child
/// calls need some of them).
pub const MAX_ATTACHERS: usize = 768;

/// The notification frame that answers `completion_id` with `result`;
/// `None` means "not ready" (only [`Reply::Output`] answers that).
pub fn notification(completion_id: u32, reply: Reply, result: Option<&InvocationResult>) -> Result<Vec<u8>, String> {
    let failure =
        |code: u16, message: &str| Failure { code: u32::from(code), message: message.into(), metadata: vec![] };
    let value = |v: &[u8]| Value { content: v.to_vec().into() };
    let message = match reply {
        Reply::Call => {
            use call_completion_notification_message::Result as R;
            let result = match result {
                Some(InvocationResult::Success(v)) => R::Value(value(v)),
                Some(InvocationResult::Failure { code, message }) => R::Failure(failure(*code, message)),
                None => return Err("a call is answered only with a result".into()),
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
                None => return Err("an attach is answered only with a result".into()),
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
    Ok(message.to_frame(Flags::NONE).map_err(|e| e.to_string())?.to_bytes().to_vec())
}

/// The outbox message that answers `caller` (see [`notification`]).
pub fn answer(caller: &Caller, reply: Reply, result: Option<&InvocationResult>) -> Result<OutboxMessage, String> {
    let notification = notification(caller.completion_id, reply, result)?;
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

/// `caller` asks for the result of invocation `target`: answered at once
/// if it has completed (or is unknown: 404, or `reply` is
/// [`Reply::Output`]: "not ready"), else registered and answered when it
/// completes. Registering twice is harmless (a re-shipped request).
pub fn attach(
    txn: &mut impl StateTxn,
    target: &InvocationKey,
    caller: &Caller,
    reply: Reply,
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let answer_now = |txn: &mut _, result: Option<&InvocationResult>| -> Result<_, String> {
        Ok(vec![outbox::push(txn, invocation::outbox_seq(seq, 0), answer(caller, reply, result)?)])
    };
    let Some(mut record) = invocation::load(txn, target)? else {
        let name = InvocationId::from_bytes(target).map(|id| id.to_string()).unwrap_or_default();
        let not_found = InvocationResult::Failure { code: 404, message: format!("invocation {name} not found") };
        return Ok((InvocationOutcome::NotFound, answer_now(txn, Some(&not_found))?));
    };
    let outcome = InvocationOutcome::Exists(record.status.clone());
    match &record.status {
        Status::Completed(result) => Ok((outcome, answer_now(txn, Some(result))?)),
        _ if reply == Reply::Output => Ok((outcome, answer_now(txn, None)?)),
        _ if record.attached.iter().any(|a| a.caller == *caller) => Ok((outcome, Vec::new())),
        _ if record.attached.len() >= MAX_ATTACHERS => {
            let busy = InvocationResult::Failure {
                code: 429,
                message: format!("more than {MAX_ATTACHERS} invocations wait for this one already"),
            };
            Ok((outcome, answer_now(txn, Some(&busy))?))
        }
        _ => {
            record.attached.push(Attached { caller: caller.clone(), reply });
            invocation::store(txn, target, &record);
            Ok((outcome, Vec::new()))
        }
    }
}

#[cfg(test)]
mod tests;
