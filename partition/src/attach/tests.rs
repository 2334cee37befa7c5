use super::*;
use crate::MemStore;
use crate::invocation::tests::{id, record};
use crate::invocation::{HandlerKind, Intervention, complete, intervene, invoke};
use keel_protocol::proto::{AttachInvocationCommandMessage, GetInvocationOutputCommandMessage};

fn caller(n: u8, completion_id: u32) -> Caller {
    Caller { id: id(n), completion_id }
}

/// The deliveries among `effects`: (waiting invocation, completion id, decoded notification).
fn deliveries(effects: &[InvocationEffect]) -> Vec<(InvocationKey, u32, Message)> {
    effects
        .iter()
        .filter_map(|e| match e {
            InvocationEffect::Outbox(_, OutboxMessage::Deliver { id, completion_id, notification }) => {
                Some((*id, *completion_id, invocation::decode_entry(notification).expect("a notification frame")))
            }
            _ => None,
        })
        .collect()
}

fn attach_value(completion_id: u32, v: &[u8]) -> Message {
    Message::AttachInvocationCompletionNotification(AttachInvocationCompletionNotificationMessage {
        completion_id,
        result: Some(attach_invocation_completion_notification_message::Result::Value(Value {
            content: v.to_vec().into(),
        })),
    })
}

#[test]
fn attached_invocations_are_answered_when_the_target_completes() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    let (outcome, effects) = attach(&mut s, &id(1), &caller(2, 5), Reply::Attach, 2).unwrap();
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    // Registered twice (a re-shipped request): answered once.
    attach(&mut s, &id(1), &caller(2, 5), Reply::Attach, 3).unwrap();
    attach(&mut s, &id(1), &caller(3, 7), Reply::Attach, 4).unwrap();
    let (_, effects) = complete(&mut s, &id(1), &InvocationResult::Success(b"42".to_vec()), 10, 5).unwrap();
    assert_eq!(deliveries(&effects), vec![(id(2), 5, attach_value(5, b"42")), (id(3), 7, attach_value(7, b"42"))]);
    assert!(invocation::load(&s, &id(1)).unwrap().unwrap().attached.is_empty());
    // Each answer has its own outbox slot.
    let seqs: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            InvocationEffect::Outbox(seq, _) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![invocation::outbox_seq(5, 1), invocation::outbox_seq(5, 2)]);
}

#[test]
fn completed_and_unknown_targets_answer_at_once() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    let failed = InvocationResult::Failure { code: 418, message: "teapot".into() };
    complete(&mut s, &id(1), &failed, 10, 2).unwrap();
    let (_, effects) = attach(&mut s, &id(1), &caller(2, 5), Reply::Attach, 3).unwrap();
    let delivered = deliveries(&effects);
    let [(who, 5, Message::AttachInvocationCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!(*who, id(2));
    let Some(attach_invocation_completion_notification_message::Result::Failure(f)) = &n.result else {
        panic!("a failure, not {n:?}")
    };
    assert_eq!((f.code, f.message.as_str()), (418, "teapot"));

    let unknown = InvocationId::new(1, 2).to_bytes();
    let (outcome, effects) = attach(&mut s, &unknown, &caller(2, 6), Reply::Output, 4).unwrap();
    assert_eq!(outcome, InvocationOutcome::NotFound);
    let delivered = deliveries(&effects);
    let [(_, 6, Message::GetInvocationOutputCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    let Some(get_invocation_output_completion_notification_message::Result::Failure(f)) = &n.result else {
        panic!("a failure, not {n:?}")
    };
    assert_eq!(f.code, 404);
    assert!(f.message.contains("not found"), "{}", f.message);
}

#[test]
fn get_output_of_a_running_invocation_is_not_ready_and_waits_for_nothing() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    let (_, effects) = attach(&mut s, &id(1), &caller(2, 9), Reply::Output, 2).unwrap();
    let delivered = deliveries(&effects);
    let [(_, 9, Message::GetInvocationOutputCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    assert!(matches!(n.result, Some(get_invocation_output_completion_notification_message::Result::Void(_))));
    assert!(invocation::load(&s, &id(1)).unwrap().unwrap().attached.is_empty());
}

#[test]
fn a_killed_target_answers_its_attached() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    attach(&mut s, &id(1), &caller(2, 5), Reply::Attach, 2).unwrap();
    let (_, effects) = intervene(&mut s, &id(1), Intervention::Kill, 10, 3).unwrap();
    let delivered = deliveries(&effects);
    let [(who, 5, Message::AttachInvocationCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!(*who, id(2));
    assert!(matches!(
        &n.result,
        Some(attach_invocation_completion_notification_message::Result::Failure(f)) if f.code == 409
    ));
}

#[test]
fn a_repeated_idempotent_call_waits_for_the_first_and_a_second_workflow_run_is_refused() {
    let mut s = MemStore::default();
    let first =
        crate::invocation::InvocationRecord { caller: Some(caller(2, 4)), ..record(HandlerKind::Service, None) };
    invoke(&mut s, &id(1), first.clone(), b"input", 1).unwrap();
    // The same call shipped again: nothing.
    assert!(invoke(&mut s, &id(1), first, b"input", 2).unwrap().1.is_empty());
    // Another caller with the same idempotency key: waits.
    let second =
        crate::invocation::InvocationRecord { caller: Some(caller(3, 4)), ..record(HandlerKind::Service, None) };
    let (outcome, effects) = invoke(&mut s, &id(1), second, b"input", 3).unwrap();
    assert_eq!((outcome, effects), (InvocationOutcome::Exists(Status::Invoked), Vec::new()));
    let (_, effects) = complete(&mut s, &id(1), &InvocationResult::Success(b"1".to_vec()), 10, 4).unwrap();
    let answered: Vec<_> = deliveries(&effects).into_iter().map(|(who, c, _)| (who, c)).collect();
    assert_eq!(answered, vec![(id(2), 4), (id(3), 4)]);

    let run =
        crate::invocation::InvocationRecord { caller: Some(caller(2, 8)), ..record(HandlerKind::Workflow, Some("w")) };
    invoke(&mut s, &id(5), run, b"input", 5).unwrap();
    let again =
        crate::invocation::InvocationRecord { caller: Some(caller(3, 8)), ..record(HandlerKind::Workflow, Some("w")) };
    let (_, effects) = invoke(&mut s, &id(5), again, b"input", 6).unwrap();
    let delivered = deliveries(&effects);
    let [(who, 8, Message::CallCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!(*who, id(3));
    assert!(matches!(
        &n.result,
        Some(call_completion_notification_message::Result::Failure(f)) if f.code == 409
    ));
}

#[test]
fn commands_address_invocations_by_id_idempotency_key_or_workflow() {
    use attach_invocation_command_message::Target as A;
    use get_invocation_output_command_message::Target as G;
    let attach = |target| {
        Message::AttachInvocationCommand(AttachInvocationCommandMessage {
            target: Some(target),
            result_completion_id: 3,
            ..Default::default()
        })
    };
    let by_id = InvocationId::new(5, 6);
    let (target, completion_id, reply) = addressed(&attach(A::InvocationId(by_id.to_string()))).unwrap();
    assert_eq!((target, completion_id, reply), (Ok(by_id.to_bytes()), 3, Reply::Attach));
    let workflow = WorkflowTarget { workflow_name: "Signup".into(), workflow_key: "w1".into(), scope: None };
    assert_eq!(
        addressed(&attach(A::WorkflowTarget(workflow))).unwrap().0,
        Ok(workflow_run_id("Signup", "w1").to_bytes())
    );
    let idempotent = IdempotentRequestTarget {
        service_name: "S".into(),
        service_key: None,
        handler_name: "h".into(),
        idempotency_key: "k".into(),
        scope: None,
    };
    let output = Message::GetInvocationOutputCommand(GetInvocationOutputCommandMessage {
        target: Some(G::IdempotentRequestTarget(idempotent)),
        result_completion_id: 4,
        ..Default::default()
    });
    assert_eq!(addressed(&output).unwrap(), (Ok(idempotent_id("S", None, "h", "k").to_bytes()), 4, Reply::Output));
    assert!(addressed(&attach(A::InvocationId("inv_nonsense".into()))).unwrap().0.is_err());
    assert!(addressed(&Message::AttachInvocationCommand(Default::default())).unwrap().0.is_err());
}
