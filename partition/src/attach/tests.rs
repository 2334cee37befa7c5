use super::*;
use crate::invocation::{HandlerKind, Intervention, InvocationEffect, InvocationOutcome, InvocationRecord, Status};
use crate::model::storage::{decode_entry, outbox_seq};
use crate::testing::{TestPartition, id, record};
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
                Some((*id, *completion_id, decode_entry(notification).expect("a notification frame")))
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
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let (outcome, effects) = p.attach(id(1), caller(2, 5), Reply::Attach);
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    // Registered twice (a re-shipped request): answered once.
    p.attach(id(1), caller(2, 5), Reply::Attach);
    p.attach(id(1), caller(3, 7), Reply::Attach);
    let (_, effects) = p.complete(id(1), &InvocationResult::Success(b"42".to_vec()), 10);
    assert_eq!(deliveries(&effects), vec![(id(2), 5, attach_value(5, b"42")), (id(3), 7, attach_value(7, b"42"))]);
    assert!(p.load(id(1)).unwrap().attached.is_empty());
    // Each answer has its own outbox slot.
    let seqs: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            InvocationEffect::Outbox(seq, _) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![outbox_seq(p.seq(), 1), outbox_seq(p.seq(), 2)]);
}

#[test]
fn completed_and_unknown_targets_answer_at_once() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let failed = InvocationResult::Failure { code: 418, message: "teapot".into() };
    p.complete(id(1), &failed, 10);
    let (_, effects) = p.attach(id(1), caller(2, 5), Reply::Attach);
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
    let (outcome, effects) = p.attach(unknown, caller(2, 6), Reply::Output);
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
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let (_, effects) = p.attach(id(1), caller(2, 9), Reply::Output);
    let delivered = deliveries(&effects);
    let [(_, 9, Message::GetInvocationOutputCompletionNotification(n))] = delivered.as_slice() else {
        panic!("unexpected effects {effects:?}")
    };
    assert!(matches!(n.result, Some(get_invocation_output_completion_notification_message::Result::Void(_))));
    assert!(p.load(id(1)).unwrap().attached.is_empty());
}

#[test]
fn a_killed_target_answers_its_attached() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    p.attach(id(1), caller(2, 5), Reply::Attach);
    let (_, effects) = p.intervene(id(1), Intervention::Kill, 10);
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
    let mut p = TestPartition::new();
    let first = InvocationRecord { caller: Some(caller(2, 4)), ..record(HandlerKind::Service, None) };
    p.invoke(id(1), first.clone(), b"input");
    // The same call shipped again: nothing.
    assert!(p.invoke(id(1), first, b"input").1.is_empty());
    // Another caller with the same idempotency key: waits.
    let second = InvocationRecord { caller: Some(caller(3, 4)), ..record(HandlerKind::Service, None) };
    let (outcome, effects) = p.invoke(id(1), second, b"input");
    assert_eq!((outcome, effects), (InvocationOutcome::Exists(Status::Invoked), Vec::new()));
    let (_, effects) = p.complete(id(1), &InvocationResult::Success(b"1".to_vec()), 10);
    let answered: Vec<_> = deliveries(&effects).into_iter().map(|(who, c, _)| (who, c)).collect();
    assert_eq!(answered, vec![(id(2), 4), (id(3), 4)]);

    let run = InvocationRecord { caller: Some(caller(2, 8)), ..record(HandlerKind::Workflow, Some("w")) };
    p.invoke(id(5), run, b"input");
    let again = InvocationRecord { caller: Some(caller(3, 8)), ..record(HandlerKind::Workflow, Some("w")) };
    let (_, effects) = p.invoke(id(5), again, b"input");
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
