use super::*;
use crate::MemStore;

pub(crate) fn id(n: u8) -> InvocationKey {
    [n; 24]
}

pub(crate) fn record(kind: HandlerKind, key: Option<&str>) -> InvocationRecord {
    InvocationRecord {
        target: Target { service: "Obj".into(), handler: "h".into(), key: key.map(str::to_string), kind },
        deployment_id: None,
        created_at_ms: 5,
        journal_len: 0,
        status: Status::Invoked,
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: 0,
        attached: Vec::new(),
    }
}

fn ok() -> InvocationResult {
    InvocationResult::Success(b"42".to_vec())
}

/// The effects of completing invocation `n` (purge timer at 99).
fn completed(n: u8, result: InvocationResult) -> Vec<InvocationEffect> {
    vec![
        InvocationEffect::Completed(id(n), result),
        InvocationEffect::TimerRegistered { fire_at_ms: 99, id: id(n), completion_id: PURGE_TIMER },
    ]
}

#[test]
fn plain_service_invocations_run_at_once_and_complete() {
    let mut s = MemStore::default();
    let (outcome, effects) = invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    assert_eq!(outcome, InvocationOutcome::Invoked);
    assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
    assert_eq!(journal(&s, &id(1)), vec![b"input".to_vec()]);
    assert_eq!(running(&s), vec![id(1)], "a running invocation is in the running index");
    assert_eq!(
        append(&mut s, &id(1), &[b"cmd1".to_vec(), b"cmd2".to_vec()], &[], 7).unwrap().0,
        InvocationOutcome::Appended { journal_len: 3 }
    );
    assert_eq!(journal(&s, &id(1)), vec![b"input".to_vec(), b"cmd1".to_vec(), b"cmd2".to_vec()]);
    // Point reads by the record's length see the same journal.
    let long = load(&s, &id(1)).unwrap().unwrap();
    assert_eq!(journal_of(&s, &id(1), &long), journal(&s, &id(1)));
    let (outcome, effects) = complete(&mut s, &id(1), &ok(), 99, 8).unwrap();
    assert_eq!(outcome, InvocationOutcome::Completed);
    assert_eq!(effects, completed(1, ok()));
    assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Completed(ok()));
    // The journal is gone; the record stays until its purge timer fires.
    assert!(journal(&s, &id(1)).is_empty());
    assert_eq!(timers(&s, 0, u64::MAX), vec![(99, id(1), PURGE_TIMER)]);
    // Timers are read a time window at a time.
    assert!(timers(&s, 0, 99).is_empty());
    assert_eq!(timers(&s, 99, 100), vec![(99, id(1), PURGE_TIMER)]);
    assert!(running(&s).is_empty(), "a completed invocation left the running index");
    // A completed invocation takes no more entries and does not complete twice.
    assert!(matches!(append(&mut s, &id(1), &[b"x".to_vec()], &[], 7).unwrap().0, InvocationOutcome::NotRunning(_)));
    assert!(complete(&mut s, &id(1), &ok(), 99, 8).unwrap().1.is_empty());
    // Purging removes the record; the id is free again, and nothing is left.
    fire_timer(&mut s, 99, &id(1), PURGE_TIMER, 9).unwrap();
    assert_eq!(load(&s, &id(1)).unwrap(), None);
    assert!(s.entries.is_empty(), "left behind: {:?}", s.entries.keys().collect::<Vec<_>>());
}

#[test]
fn repeated_invoke_is_deduplicated() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    let before = s.dump();
    let (outcome, effects) = invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"other", 2).unwrap();
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    assert_eq!(s.dump(), before);
}

#[test]
fn exclusive_handlers_queue_per_key_in_arrival_order() {
    let mut s = MemStore::default();
    let excl = |k| record(HandlerKind::Exclusive, Some(k));
    assert_eq!(invoke(&mut s, &id(1), excl("a"), b"i", 10).unwrap().0, InvocationOutcome::Invoked);
    assert_eq!(invoke(&mut s, &id(2), excl("a"), b"i", 11).unwrap().0, InvocationOutcome::Inboxed);
    assert_eq!(invoke(&mut s, &id(3), excl("a"), b"i", 12).unwrap().0, InvocationOutcome::Inboxed);
    // Another key is independent; shared handlers take no lock.
    assert_eq!(invoke(&mut s, &id(4), excl("b"), b"i", 13).unwrap().0, InvocationOutcome::Invoked);
    let shared = record(HandlerKind::Shared, Some("a"));
    assert_eq!(invoke(&mut s, &id(5), shared, b"i", 14).unwrap().0, InvocationOutcome::Invoked);

    let (_, effects) = complete(&mut s, &id(1), &ok(), 99, 8).unwrap();
    let mut expected = completed(1, ok());
    expected.push(InvocationEffect::Invoke(id(2)));
    assert_eq!(effects, expected);
    assert_eq!(load(&s, &id(2)).unwrap().unwrap().status, Status::Invoked);
    assert_eq!(load(&s, &id(3)).unwrap().unwrap().status, Status::Inboxed { seq: 12 });
    let (_, effects) = complete(&mut s, &id(2), &ok(), 99, 8).unwrap();
    assert_eq!(effects[2], InvocationEffect::Invoke(id(3)));
    let (_, effects) = complete(&mut s, &id(3), &ok(), 99, 8).unwrap();
    assert_eq!(effects, completed(3, ok()));
    // The key is free again.
    assert_eq!(invoke(&mut s, &id(6), excl("a"), b"i", 15).unwrap().0, InvocationOutcome::Invoked);
}

#[test]
fn completing_an_inboxed_invocation_leaves_the_queue_without_touching_the_lock() {
    let mut s = MemStore::default();
    let excl = || record(HandlerKind::Exclusive, Some("a"));
    invoke(&mut s, &id(1), excl(), b"i", 1).unwrap();
    invoke(&mut s, &id(2), excl(), b"i", 2).unwrap();
    invoke(&mut s, &id(3), excl(), b"i", 3).unwrap();
    let cancelled = InvocationResult::Failure { code: 409, message: "canceled".into() };
    let (_, effects) = complete(&mut s, &id(2), &cancelled, 99, 8).unwrap();
    assert_eq!(effects, completed(2, cancelled));
    // id(1) still holds the lock; completing it starts id(3), skipping id(2).
    let (_, effects) = complete(&mut s, &id(1), &ok(), 99, 8).unwrap();
    assert_eq!(effects[2], InvocationEffect::Invoke(id(3)));
}

#[test]
fn suspend_only_applies_to_running_invocations_and_pinning_sticks() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"i", 1).unwrap();
    pin_deployment(&mut s, &id(1), "dp_a").unwrap();
    pin_deployment(&mut s, &id(1), "dp_b").unwrap();
    assert_eq!(load(&s, &id(1)).unwrap().unwrap().deployment_id.as_deref(), Some("dp_a"));
    // (Invoking again when a notification was missed: see `suspend::tests`.)
    assert_eq!(suspend(&mut s, &id(1), &[1, 2], 1, 1).unwrap().0, InvocationOutcome::Suspended);
    assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Suspended { awaiting: vec![1, 2] });
    assert!(matches!(suspend(&mut s, &id(1), &[3], 1, 1).unwrap().0, InvocationOutcome::NotRunning(_)));
    // A suspended invocation's journal still grows (completions arrive).
    assert_eq!(
        append(&mut s, &id(1), &[b"n".to_vec()], &[], 7).unwrap().0,
        InvocationOutcome::Appended { journal_len: 2 }
    );
    assert_eq!(suspend(&mut s, &id(9), &[1], 0, 0).unwrap().0, InvocationOutcome::NotFound);
}

#[test]
fn workflow_run_holds_the_key_lock() {
    let mut s = MemStore::default();
    let run = || record(HandlerKind::Workflow, Some("wf-1"));
    assert_eq!(invoke(&mut s, &id(1), run(), b"i", 1).unwrap().0, InvocationOutcome::Invoked);
    assert_eq!(invoke(&mut s, &id(2), run(), b"i", 2).unwrap().0, InvocationOutcome::Inboxed);
    let shared = record(HandlerKind::Shared, Some("wf-1"));
    assert_eq!(invoke(&mut s, &id(3), shared, b"i", 3).unwrap().0, InvocationOutcome::Invoked);
}

#[test]
fn journaled_state_commands_change_the_object_state() {
    use keel_protocol::proto::{ClearAllStateCommandMessage, ClearStateCommandMessage, SetStateCommandMessage, Value};
    use keel_protocol::{Flags, Message};
    let frame = |m: Message| m.to_frame(Flags::NONE).unwrap().to_bytes().to_vec();
    let set = |k: &str, v: &str| {
        frame(Message::SetStateCommand(SetStateCommandMessage {
            key: k.as_bytes().to_vec().into(),
            value: Some(Value { content: v.as_bytes().to_vec().into() }),
            name: String::new(),
        }))
    };
    let state =
        |s: &MemStore| match crate::read(s, &crate::Query::GetState { service: "Obj".into(), object_key: "a".into() })
            .unwrap()
        {
            crate::QueryResult::State { state, .. } => state,
            other => panic!("{other:?}"),
        };
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Exclusive, Some("a")), b"i", 1).unwrap();
    append(&mut s, &id(1), &[set("count", "1"), set("name", "\"x\"")], &[], 7).unwrap();
    assert_eq!(state(&s).len(), 2);
    assert_eq!(state(&s)["count"], b"1".to_vec());
    let clear = frame(Message::ClearStateCommand(ClearStateCommandMessage {
        key: b"name".to_vec().into(),
        name: String::new(),
    }));
    append(&mut s, &id(1), &[clear], &[], 7).unwrap();
    assert_eq!(state(&s).keys().collect::<Vec<_>>(), vec!["count"]);
    let clear_all = frame(Message::ClearAllStateCommand(ClearAllStateCommandMessage { name: String::new() }));
    append(&mut s, &id(1), &[clear_all], &[], 7).unwrap();
    assert!(state(&s).is_empty());
    // A plain service has no object state: its state commands change nothing.
    invoke(&mut s, &id(2), record(HandlerKind::Service, None), b"i", 2).unwrap();
    append(&mut s, &id(2), &[set("count", "9")], &[], 7).unwrap();
    assert!(state(&s).is_empty());
}

#[test]
fn sleep_registers_a_timer_whose_firing_wakes_the_invocation_once() {
    use keel_protocol::proto::SleepCommandMessage;
    use keel_protocol::{Flags, Message};
    let sleep = Message::SleepCommand(SleepCommandMessage {
        wake_up_time: 5_000,
        result_completion_id: 1,
        name: String::new(),
    })
    .to_frame(Flags::NONE)
    .unwrap()
    .to_bytes()
    .to_vec();
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"i", 1).unwrap();
    let (_, effects) = append(&mut s, &id(1), &[sleep], &[], 7).unwrap();
    assert_eq!(effects, vec![InvocationEffect::TimerRegistered { fire_at_ms: 5_000, id: id(1), completion_id: 1 }]);
    assert_eq!(timers(&s, 0, u64::MAX), vec![(5_000, id(1), 1)]);
    suspend(&mut s, &id(1), &[1], 2, 2).unwrap();
    // Firing journals the completion and resumes the suspended invocation.
    let (outcome, effects) = fire_timer(&mut s, 5_000, &id(1), 1, 9).unwrap();
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 3 });
    assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
    assert_eq!(load(&s, &id(1)).unwrap().unwrap().status, Status::Invoked);
    assert!(timers(&s, 0, u64::MAX).is_empty());
    let notification = &journal(&s, &id(1))[2];
    assert_eq!(u16::from_be_bytes([notification[0], notification[1]]), 0x800C);
    // A repeated firing (after a leader change) changes nothing.
    let before = s.dump();
    assert_eq!(fire_timer(&mut s, 5_000, &id(1), 1, 9).unwrap().0, InvocationOutcome::NotFound);
    assert_eq!(s.dump(), before);
}

#[test]
fn a_notification_for_a_running_invocation_is_delivered_live() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"i", 1).unwrap();
    let (_, effects) = notify(&mut s, &id(1), b"note").unwrap();
    assert_eq!(effects, vec![InvocationEffect::Notify(id(1), b"note".to_vec())]);
    complete(&mut s, &id(1), &ok(), 99, 8).unwrap();
    assert!(matches!(notify(&mut s, &id(1), b"late").unwrap().0, InvocationOutcome::NotRunning(_)));
}

#[test]
fn a_completed_promise_wakes_its_waiters_and_completes_only_once() {
    use keel_protocol::proto::{
        CompletePromiseCommandMessage, GetPromiseCommandMessage, PeekPromiseCommandMessage, Value,
        complete_promise_command_message,
    };
    use keel_protocol::{Flags, Message};
    let frame = |m: Message| m.to_frame(Flags::NONE).unwrap().to_bytes().to_vec();
    let get = frame(Message::GetPromiseCommand(GetPromiseCommandMessage {
        key: "confirm".into(),
        result_completion_id: 1,
        name: String::new(),
    }));
    let complete_with = |v: &str| {
        frame(Message::CompletePromiseCommand(CompletePromiseCommandMessage {
            key: "confirm".into(),
            completion: Some(complete_promise_command_message::Completion::CompletionValue(Value {
                content: v.as_bytes().to_vec().into(),
            })),
            result_completion_id: 1,
            name: String::new(),
        }))
    };
    let peek = frame(Message::PeekPromiseCommand(PeekPromiseCommandMessage {
        key: "confirm".into(),
        result_completion_id: 2,
        name: String::new(),
    }));
    let code = |entry: &[u8]| u16::from_be_bytes([entry[0], entry[1]]);
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Workflow, Some("w")), b"i", 1).unwrap();
    invoke(&mut s, &id(2), record(HandlerKind::Shared, Some("w")), b"i", 2).unwrap();
    // The run waits: nothing is journaled for it yet.
    let (_, effects) = append(&mut s, &id(1), &[get], &[], 7).unwrap();
    assert!(effects.is_empty());
    assert_eq!(journal(&s, &id(1)).len(), 2);
    // The shared handler completes it: it gets its ack, the run its value.
    let (_, effects) = append(&mut s, &id(2), &[complete_with("yes")], &[], 8).unwrap();
    assert_eq!(code(&journal(&s, &id(2))[2]), 0x800B);
    assert_eq!(effects.len(), 2, "{effects:?}");
    assert_eq!(code(&journal(&s, &id(1))[2]), 0x8009);
    // Peeking now sees the value; completing again is answered with a failure.
    append(&mut s, &id(2), &[peek, complete_with("again")], &[], 9).unwrap();
    let j = journal(&s, &id(2));
    assert_eq!(j.len(), 7);
    assert_eq!(code(&j[4]), 0x800A);
    assert_eq!(code(&j[6]), 0x800B);
    assert_ne!(j[6], j[2], "the second completion must be answered with a failure, not the ack");
}

#[test]
fn a_running_invocation_is_cancelled_once() {
    let mut s = MemStore::default();
    invoke(&mut s, &id(1), record(HandlerKind::Service, None), b"input", 1).unwrap();
    let (outcome, effects) = intervene(&mut s, &id(1), Intervention::Cancel, 99, 2).unwrap();
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
    assert!(matches!(effects.as_slice(), [InvocationEffect::Notify(..)]));
    // Again (an operator, or a parent's SDK cancelling its children): nothing more.
    let (outcome, effects) = intervene(&mut s, &id(1), Intervention::Cancel, 99, 3).unwrap();
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    assert_eq!(journal(&s, &id(1)).len(), 2);
}
