//! One sample message per type, shared by the message tests.

use prost::bytes::Bytes;

use super::{CustomMessage, Message, MessageType};
use crate::proto::*;

pub(super) fn value(s: &str) -> Option<Value> {
    Some(Value { content: Bytes::copy_from_slice(s.as_bytes()) })
}

pub(super) fn failure() -> Failure {
    Failure {
        code: 409,
        message: "already completed".into(),
        metadata: vec![FailureMetadata { key: "k".into(), value: "v".into() }],
    }
}

fn header(k: &str, v: &str) -> Header {
    Header { key: k.into(), value: v.into() }
}

fn future() -> Future {
    Future {
        waiting_completions: vec![2, 5],
        waiting_signals: vec![1],
        waiting_named_signals: vec!["approved".into()],
        nested_futures: vec![Future {
            waiting_completions: vec![7],
            combinator_type: CombinatorType::AllSucceededOrFirstFailed as i32,
            ..Default::default()
        }],
        combinator_type: CombinatorType::FirstCompleted as i32,
    }
}

/// A message of every known type with non-default fields. The exhaustive match makes a
/// new `MessageType` variant fail to compile until it gets a sample.
pub(super) fn sample(ty: MessageType) -> Message {
    use MessageType as T;
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    match ty {
        T::Start => StartMessage {
            id: Bytes::from(vec![7u8; 24]),
            debug_id: "inv_1abc".into(),
            known_entries: 3,
            state_map: vec![start_message::StateEntry { key: b("count"), value: b("41") }],
            partial_state: true,
            key: "alice".into(),
            retry_count_since_last_stored_entry: 2,
            duration_since_last_stored_entry: 1500,
            random_seed: 0xDEAD_BEEF,
            scope: Some("tenant".into()),
            limit_key: Some("lk".into()),
            idempotency_key: Some("idem".into()),
        }
        .into(),
        T::Suspension => SuspensionMessage { awaiting_on: Some(future()), ..Default::default() }.into(),
        T::Error => ErrorMessage {
            code: 570,
            message: "journal mismatch".into(),
            stacktrace: "at x".into(),
            related_command_index: Some(4),
            related_command_name: Some("fetch".into()),
            related_command_type: Some(0x0411),
            next_retry_delay: Some(250),
            behavior: ErrorBehavior::Pause as i32,
        }
        .into(),
        T::End => EndMessage {}.into(),
        T::CommandAck => CommandAckMessage { command_index: 9 }.into(),
        T::ProposeRunCompletion => ProposeRunCompletionMessage {
            result_completion_id: 1,
            result: Some(propose_run_completion_message::Result::Value(b("42"))),
        }
        .into(),
        T::AwaitingOn => AwaitingOnMessage { awaiting_on: Some(future()), executing_side_effects: true }.into(),
        T::ProposeRunCompletionAck => ProposeRunCompletionAckMessage { completion_id: 1 }.into(),
        T::InputCommand => InputCommandMessage {
            headers: vec![header("content-type", "application/json")],
            value: value("\"Ada\""),
            name: "in".into(),
        }
        .into(),
        T::OutputCommand => OutputCommandMessage {
            result: Some(output_command_message::Result::Failure(failure())),
            name: "out".into(),
        }
        .into(),
        T::GetLazyStateCommand => {
            GetLazyStateCommandMessage { key: b("count"), result_completion_id: 3, name: "n".into() }.into()
        }
        T::SetStateCommand => SetStateCommandMessage { key: b("count"), value: value("42"), name: "n".into() }.into(),
        T::ClearStateCommand => ClearStateCommandMessage { key: b("count"), name: "n".into() }.into(),
        T::ClearAllStateCommand => ClearAllStateCommandMessage { name: "n".into() }.into(),
        T::GetLazyStateKeysCommand => {
            GetLazyStateKeysCommandMessage { result_completion_id: 4, name: "n".into() }.into()
        }
        T::GetEagerStateCommand => GetEagerStateCommandMessage {
            key: b("count"),
            result: Some(get_eager_state_command_message::Result::Void(Void {})),
            name: "n".into(),
        }
        .into(),
        T::GetEagerStateKeysCommand => {
            GetEagerStateKeysCommandMessage { value: Some(StateKeys { keys: vec![b("a"), b("b")] }), name: "n".into() }
                .into()
        }
        T::GetPromiseCommand => {
            GetPromiseCommandMessage { key: "p".into(), result_completion_id: 5, name: "n".into() }.into()
        }
        T::PeekPromiseCommand => {
            PeekPromiseCommandMessage { key: "p".into(), result_completion_id: 6, name: "n".into() }.into()
        }
        T::CompletePromiseCommand => CompletePromiseCommandMessage {
            key: "p".into(),
            completion: Some(complete_promise_command_message::Completion::CompletionValue(Value { content: b("ok") })),
            result_completion_id: 7,
            name: "n".into(),
        }
        .into(),
        T::SleepCommand => {
            SleepCommandMessage { wake_up_time: 1_700_000_000_000, result_completion_id: 8, name: "nap".into() }.into()
        }
        T::CallCommand => CallCommandMessage {
            service_name: "greeter".into(),
            handler_name: "greet".into(),
            parameter: b("\"Ada\""),
            headers: vec![header("x", "y")],
            key: "k".into(),
            idempotency_key: Some("idem".into()),
            scope: Some("s".into()),
            limit_key: Some("l".into()),
            invocation_id_notification_idx: 9,
            result_completion_id: 10,
            name: "call".into(),
        }
        .into(),
        T::OneWayCallCommand => OneWayCallCommandMessage {
            service_name: "greeter".into(),
            handler_name: "greet".into(),
            parameter: b("{}"),
            invoke_time: 1_700_000_000_000,
            headers: vec![header("x", "y")],
            key: String::new(),
            idempotency_key: None,
            scope: Some("s".into()),
            limit_key: None,
            invocation_id_notification_idx: 11,
            name: "send".into(),
        }
        .into(),
        T::SendSignalCommand => SendSignalCommandMessage {
            target_invocation_id: "inv_1xyz".into(),
            signal_id: Some(send_signal_command_message::SignalId::Idx(1)),
            result: Some(send_signal_command_message::Result::Void(Void {})),
            entry_name: "cancel".into(),
        }
        .into(),
        T::RunCommand => RunCommandMessage { result_completion_id: 12, name: "fetch".into() }.into(),
        T::AttachInvocationCommand => AttachInvocationCommandMessage {
            target: Some(attach_invocation_command_message::Target::WorkflowTarget(WorkflowTarget {
                workflow_name: "signup".into(),
                workflow_key: "u1".into(),
                scope: Some("s".into()),
            })),
            result_completion_id: 13,
            name: "n".into(),
        }
        .into(),
        T::GetInvocationOutputCommand => GetInvocationOutputCommandMessage {
            target: Some(get_invocation_output_command_message::Target::IdempotentRequestTarget(
                IdempotentRequestTarget {
                    service_name: "svc".into(),
                    service_key: Some("k".into()),
                    handler_name: "h".into(),
                    idempotency_key: "idem".into(),
                    scope: None,
                },
            )),
            result_completion_id: 14,
            name: "n".into(),
        }
        .into(),
        T::CompleteAwakeableCommand => CompleteAwakeableCommandMessage {
            awakeable_id: "sign_1abc".into(),
            result: Some(complete_awakeable_command_message::Result::Value(Value { content: b("1") })),
            name: "n".into(),
        }
        .into(),
        T::GetLazyStateCompletionNotification => GetLazyStateCompletionNotificationMessage {
            completion_id: 3,
            result: Some(get_lazy_state_completion_notification_message::Result::Value(Value { content: b("41") })),
        }
        .into(),
        T::GetLazyStateKeysCompletionNotification => GetLazyStateKeysCompletionNotificationMessage {
            completion_id: 4,
            state_keys: Some(StateKeys { keys: vec![b("a")] }),
        }
        .into(),
        T::GetPromiseCompletionNotification => GetPromiseCompletionNotificationMessage {
            completion_id: 5,
            result: Some(get_promise_completion_notification_message::Result::Failure(failure())),
        }
        .into(),
        T::PeekPromiseCompletionNotification => PeekPromiseCompletionNotificationMessage {
            completion_id: 6,
            result: Some(peek_promise_completion_notification_message::Result::Void(Void {})),
        }
        .into(),
        T::CompletePromiseCompletionNotification => CompletePromiseCompletionNotificationMessage {
            completion_id: 7,
            result: Some(complete_promise_completion_notification_message::Result::Void(Void {})),
        }
        .into(),
        T::SleepCompletionNotification => {
            SleepCompletionNotificationMessage { completion_id: 8, void: Some(Void {}) }.into()
        }
        T::CallCompletionNotification => CallCompletionNotificationMessage {
            completion_id: 10,
            result: Some(call_completion_notification_message::Result::Value(Value { content: b("hi") })),
        }
        .into(),
        T::CallInvocationIdCompletionNotification => {
            CallInvocationIdCompletionNotificationMessage { completion_id: 9, invocation_id: "inv_1child".into() }
                .into()
        }
        T::RunCompletionNotification => RunCompletionNotificationMessage {
            completion_id: 12,
            result: Some(run_completion_notification_message::Result::Value(Value { content: b("42") })),
        }
        .into(),
        T::AttachInvocationCompletionNotification => AttachInvocationCompletionNotificationMessage {
            completion_id: 13,
            result: Some(attach_invocation_completion_notification_message::Result::Failure(failure())),
        }
        .into(),
        T::GetInvocationOutputCompletionNotification => GetInvocationOutputCompletionNotificationMessage {
            completion_id: 14,
            result: Some(get_invocation_output_completion_notification_message::Result::Void(Void {})),
        }
        .into(),
        T::SignalNotification => SignalNotificationMessage {
            signal_id: Some(signal_notification_message::SignalId::Name("approved".into())),
            result: Some(signal_notification_message::Result::Value(Value { content: b("yes") })),
        }
        .into(),
    }
}

pub(super) fn all_samples() -> Vec<Message> {
    let mut v: Vec<Message> = MessageType::ALL.iter().map(|&t| sample(t)).collect();
    v.push(Message::Custom(CustomMessage { code: 0xFC01, payload: Bytes::from_static(b"\x00opaque\xff") }));
    v.push(
        SuspensionMessage {
            waiting_completions: vec![1, 2],
            waiting_signals: vec![17],
            waiting_named_signals: vec!["x".into()],
            awaiting_on: None,
        }
        .into(),
    );
    v
}
