use super::*;
use crate::invocation::{HandlerKind, InvocationOutcome, Status, Target, append, complete, journal, load};
use crate::{MemStore, StateView};

fn caller_record() -> InvocationRecord {
    InvocationRecord {
        target: Target {
            service: "Greeter".into(),
            handler: "greetTwice".into(),
            key: None,
            kind: HandlerKind::Service,
        },
        deployment_id: None,
        created_at_ms: 1,
        journal_len: 0,
        status: Status::Invoked,
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: 0,
    }
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
    let mut s = MemStore::default();
    crate::invocation::invoke(&mut s, &caller, caller_record(), b"input", 1).unwrap();
    let (outcome, effects) = append(&mut s, &caller, &[call_frame()], 5).unwrap();
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
    assert_eq!(&journal(&s, &caller)[2], notification);
    assert_eq!(pending(&s), vec![(*seq, effects_message(&effects))]);
    // Same caller and index: the same callee id, on every replica.
    assert_eq!(*id, callee_id(&caller, 1, None));
    done(&mut s, *seq);
    assert!(pending(&s).is_empty());
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
    let mut s = MemStore::default();
    crate::invocation::invoke(&mut s, &caller, caller_record(), b"input", 1).unwrap();
    let record = InvocationRecord { caller: Some(Caller { id: caller, completion_id: 2 }), ..caller_record() };
    crate::invocation::invoke(&mut s, &callee, record, b"input", 2).unwrap();
    let result = InvocationResult::Success(b"\"Hello, Bo!\"".to_vec());
    let (_, effects) = complete(&mut s, &callee, &result, 99, 9).unwrap();
    let Some(InvocationEffect::Outbox(_, OutboxMessage::Deliver { id, completion_id, notification })) = effects.last()
    else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!((id, *completion_id), (&caller, 2));
    let (outcome, effects) = deliver(&mut s, &caller, 2, notification).unwrap();
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
    assert_eq!(effects, vec![InvocationEffect::Notify(caller, notification.clone())]);
    // A re-delivery (the shipper retried) journals nothing.
    let before = s.dump();
    assert!(matches!(deliver(&mut s, &caller, 2, notification).unwrap().0, InvocationOutcome::Exists(_)));
    assert_eq!(s.dump(), before);
    assert_eq!(load(&s, &caller).unwrap().unwrap().delivered, vec![2]);
    assert!(s.get(&crate::keys::invocation_key(&callee)).is_some());
}
