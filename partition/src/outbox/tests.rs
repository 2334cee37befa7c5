use super::*;
use crate::StateView;
use crate::invocation::{HandlerKind, InvocationEffect, InvocationOutcome, InvocationRecord, Target};
use crate::testing::TestPartition;
use keel_protocol::{EncodeError, Flags};

fn frame(message: Message) -> Result<Vec<u8>, EncodeError> {
    Ok(message.to_frame(Flags::NONE)?.to_bytes().to_vec())
}
use keel_protocol::proto::{CallCompletionNotificationMessage, call_completion_notification_message};

fn caller_record() -> InvocationRecord {
    let target =
        Target { service: "Greeter".into(), handler: "greetTwice".into(), key: None, kind: HandlerKind::Service };
    InvocationRecord { target, created_at_ms: 1, ..crate::testing::record(HandlerKind::Service, None) }
}

fn call_frame() -> Vec<u8> {
    frame(Message::CallCommand(CallCommandMessage {
        service_name: "Greeter".into(),
        handler_name: "greet".into(),
        parameter: b"\"Bo\"".to_vec().into(),
        invocation_id_notification_idx: 1,
        result_completion_id: 2,
        ..Default::default()
    }))
    .unwrap()
}

#[test]
fn a_call_journals_the_callee_id_and_queues_the_invocation() {
    let caller = [3u8; 24];
    let mut p = TestPartition::new();
    p.invoke(caller, caller_record(), b"input");
    let (outcome, effects) = p.append(caller, &[call_frame()]);
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 3 });
    let [
        InvocationEffect::Outbox(seq, OutboxMessage::Invoke { id, service, handler, key, caller: who, .. }),
        InvocationEffect::Notify(n_id, notification),
    ] = effects.as_slice()
    else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!((service.as_str(), handler.as_str(), key), ("Greeter", "greet", &None));
    assert_eq!(who, &Some(Caller { id: caller, completion_id: 2 }));
    assert_eq!(n_id, &caller);
    assert_eq!(&p.journal(caller)[2], notification);
    assert_eq!(pending(&p.store), vec![(*seq, effects_message(&effects))]);
    // Same caller and index: the same callee id, on every replica.
    assert_eq!(*id, callee_id(&caller, 1, None).to_bytes());
    p.outbox_done(*seq);
    assert!(pending(&p.store).is_empty());
}

fn effects_message(effects: &[InvocationEffect]) -> OutboxMessage {
    match &effects[0] {
        InvocationEffect::Outbox(_, m) => m.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_finished_callee_answers_its_caller_once() {
    let (caller, callee) = ([3u8; 24], [4u8; 24]);
    let mut p = TestPartition::new();
    p.invoke(caller, caller_record(), b"input");
    let record = InvocationRecord { caller: Some(Caller { id: caller, completion_id: 2 }), ..caller_record() };
    p.invoke(callee, record, b"input");
    let result = InvocationResult::Success(b"\"Hello, Bo!\"".to_vec());
    let (_, effects) = p.complete(callee, &result, 99);
    let Some(InvocationEffect::Outbox(_, OutboxMessage::Deliver { id, completion_id, notification })) = effects.last()
    else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!((id, *completion_id), (&caller, 2));
    let (outcome, effects) = p.deliver(caller, 2, notification);
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
    assert_eq!(effects, vec![InvocationEffect::Notify(caller, notification.clone())]);
    // A re-delivery (the shipper retried) journals nothing.
    let before = p.store.dump();
    assert!(matches!(p.deliver(caller, 2, notification).0, InvocationOutcome::Exists(_)));
    assert_eq!(p.store.dump(), before);
    assert_eq!(p.load(caller).unwrap().delivered, vec![2]);
    assert!(p.store.get(&crate::keys::invocation_key(&callee)).is_some());
}

#[test]
fn signals_reach_their_target_once_per_signal() {
    let sender = [3u8; 24];
    let target_id = InvocationId::new(7, 9);
    let command = |signal_id| {
        Message::SendSignalCommand(SendSignalCommandMessage {
            target_invocation_id: target_id.to_string(),
            signal_id: Some(signal_id),
            result: Some(send_signal_command_message::Result::Value(Value { content: b"1".to_vec().into() })),
            entry_name: String::new(),
        })
    };
    let deliver = |command: &Message| match on_command(&sender, command, false).unwrap().and_then(|o| o.message) {
        Some(OutboxMessage::Deliver { id, completion_id, notification }) => (id, completion_id, notification),
        other => panic!("a signal is a delivery, not {other:?}"),
    };
    // A numbered signal (1 = CANCEL) keeps its index as the dedup key.
    let (id, key, _) = deliver(&command(send_signal_command_message::SignalId::Idx(1)));
    assert_eq!((id, key), (target_id.to_bytes(), SIGNAL_KEY | 1));
    // A named one is delivered as a named SignalNotification, under a key
    // that is the same when re-shipped and differs with the name.
    let go = command(send_signal_command_message::SignalId::Name("go".into()));
    let (id, key, notification) = deliver(&go);
    assert_eq!(id, target_id.to_bytes());
    assert_eq!(key & NAMED_SIGNAL_KEY, NAMED_SIGNAL_KEY);
    assert_eq!(deliver(&go).1, key);
    assert_ne!(deliver(&command(send_signal_command_message::SignalId::Name("stop".into()))).1, key);
    let expected = frame(Message::SignalNotification(SignalNotificationMessage {
        signal_id: Some(signal_notification_message::SignalId::Name("go".into())),
        result: Some(signal_notification_message::Result::Value(Value { content: b"1".to_vec().into() })),
    }))
    .unwrap();
    assert_eq!(notification, expected);
    // A malformed target signals nothing.
    let bad = Message::SendSignalCommand(SendSignalCommandMessage {
        target_invocation_id: "inv_nonsense".into(),
        signal_id: Some(send_signal_command_message::SignalId::Idx(1)),
        ..Default::default()
    });
    assert!(on_command(&sender, &bad, false).unwrap().is_none());
}

#[test]
fn pending_calls_are_the_unanswered_request_response_calls() {
    let call = |idx: u32, result: u32, key: &str| {
        frame(Message::CallCommand(CallCommandMessage {
            service_name: "S".into(),
            handler_name: "h".into(),
            key: key.into(),
            invocation_id_notification_idx: idx,
            result_completion_id: result,
            ..Default::default()
        }))
        .unwrap()
    };
    let send = frame(Message::OneWayCallCommand(OneWayCallCommandMessage {
        service_name: "S".into(),
        handler_name: "h".into(),
        invocation_id_notification_idx: 5,
        ..Default::default()
    }))
    .unwrap();
    let answered = frame(Message::CallCompletionNotification(CallCompletionNotificationMessage {
        completion_id: 2,
        result: Some(call_completion_notification_message::Result::Value(Value::default())),
    }))
    .unwrap();
    let id_note = |idx: u32, id: InvocationId| {
        frame(Message::CallInvocationIdCompletionNotification(CallInvocationIdCompletionNotificationMessage {
            completion_id: idx,
            invocation_id: id.to_string(),
        }))
        .unwrap()
    };
    let (first, second, sent) = (InvocationId::new(1, 1), InvocationId::new(2, 2), InvocationId::new(3, 3));
    let journal = vec![
        b"input".to_vec(),
        call(1, 2, ""),
        id_note(1, first),
        answered,
        call(3, 4, "k"),
        id_note(3, second),
        send,
        id_note(5, sent),
    ];
    // The answered call and the one-way send are not pending; the id is the
    // one journaled for the call.
    assert_eq!(pending_calls(&journal), vec![second.to_bytes()]);
}

/// The callee id of `command` as `on_command` gives it.
fn callee_of(command: &Message, workflow_run: bool) -> InvocationKey {
    match on_command(&[3u8; 24], command, workflow_run).unwrap().and_then(|o| o.message) {
        Some(OutboxMessage::Invoke { id, .. }) => id,
        other => panic!("a call creates an invocation, not {other:?}"),
    }
}

#[test]
fn idempotent_calls_and_workflow_runs_get_the_ids_the_ingress_gives() {
    let call = |key: &str, idempotency_key: Option<&str>| {
        Message::CallCommand(CallCommandMessage {
            service_name: "S".into(),
            handler_name: "run".into(),
            key: key.into(),
            idempotency_key: idempotency_key.map(str::to_string),
            invocation_id_notification_idx: 1,
            result_completion_id: 2,
            ..Default::default()
        })
    };
    let idempotent = crate::idempotency::idempotent_id("S", Some("k"), "run", "once").to_bytes();
    assert_eq!(callee_of(&call("k", Some("once")), false), idempotent);
    assert_eq!(callee_of(&call("k", None), true), crate::idempotency::workflow_run_id("S", "k").to_bytes());
    assert_eq!(callee_of(&call("k", None), false), callee_id(&[3u8; 24], 1, Some("k")).to_bytes());
    // An empty idempotency key is none.
    assert_eq!(callee_of(&call("", Some("")), false), callee_id(&[3u8; 24], 1, None).to_bytes());
    let Some(OutboxMessage::Invoke { idempotent, .. }) =
        on_command(&[3u8; 24], &call("k", Some("once")), false).unwrap().and_then(|o| o.message)
    else {
        panic!("a call creates an invocation")
    };
    assert!(idempotent);
}
