//! The life of invocations, command by command, through `apply`.

use crate::MemStore;
use crate::invocation::{
    HandlerKind, Intervention, InvocationEffect, InvocationOutcome, InvocationResult, Status, journal_of, running,
    timers,
};
use crate::testing::{TestPartition, id, record};

fn ok() -> InvocationResult {
    InvocationResult::Success(b"42".to_vec())
}

/// The effects of completing invocation `n`.
fn completed(n: u8, result: InvocationResult) -> Vec<InvocationEffect> {
    vec![InvocationEffect::Completed(id(n), result)]
}

#[test]
fn plain_service_invocations_run_at_once_and_complete() {
    let mut p = TestPartition::new();
    let (outcome, effects) = p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    assert_eq!(outcome, InvocationOutcome::Invoked);
    assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
    assert_eq!(p.journal(id(1)), vec![b"input".to_vec()]);
    assert_eq!(running(&p.store), vec![id(1)], "a running invocation is in the running index");
    assert_eq!(
        p.append(id(1), &[b"cmd1".to_vec(), b"cmd2".to_vec()]).0,
        InvocationOutcome::Appended { journal_len: 3 }
    );
    assert_eq!(p.journal(id(1)), vec![b"input".to_vec(), b"cmd1".to_vec(), b"cmd2".to_vec()]);
    // Point reads by the record's length see the same journal.
    let long = p.load(id(1)).unwrap();
    assert_eq!(journal_of(&p.store, &id(1), &long), p.journal(id(1)));
    let (outcome, effects) = p.complete(id(1), &ok(), 99);
    assert_eq!(outcome, InvocationOutcome::Completed);
    assert_eq!(effects, completed(1, ok()));
    assert_eq!(p.load(id(1)).unwrap().status, Status::Completed(ok()));
    // The journal is gone; the record stays until it expires, with no
    // timer of its own (retention 0: due at its completion time).
    assert!(p.journal(id(1)).is_empty());
    assert_eq!(timers(&p.store, 0, u64::MAX), Vec::new());
    assert_eq!(crate::expiry::next_expiry(&p.store).unwrap(), Some(99));
    assert!(running(&p.store).is_empty(), "a completed invocation left the running index");
    // A completed invocation takes no more entries and does not complete twice.
    assert!(matches!(p.append(id(1), &[b"x".to_vec()]).0, InvocationOutcome::NotRunning(_)));
    assert!(p.complete(id(1), &ok(), 99).1.is_empty());
    // Expiring removes the record; the id is free again, and nothing but
    // the expiry floor is left.
    assert_eq!(p.expire(99), InvocationOutcome::Expired { count: 1, more: false });
    assert_eq!(p.load(id(1)), None);
    let left: Vec<_> = p.store.entries.keys().cloned().collect();
    assert_eq!(left, vec![crate::keys::expiry_floor_key()]);
}

#[test]
fn repeated_invoke_is_deduplicated() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let before = p.store.dump();
    let (outcome, effects) = p.invoke(id(1), record(HandlerKind::Service, None), b"other");
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    assert_eq!(p.store.dump(), before);
}

#[test]
fn exclusive_handlers_queue_per_key_in_arrival_order() {
    let mut p = TestPartition::new();
    let excl = |k| record(HandlerKind::Exclusive, Some(k));
    assert_eq!(p.invoke(id(1), excl("a"), b"i").0, InvocationOutcome::Invoked);
    assert_eq!(p.invoke(id(2), excl("a"), b"i").0, InvocationOutcome::Inboxed);
    assert_eq!(p.invoke(id(3), excl("a"), b"i").0, InvocationOutcome::Inboxed);
    let third = p.seq();
    // Another key is independent; shared handlers take no lock.
    assert_eq!(p.invoke(id(4), excl("b"), b"i").0, InvocationOutcome::Invoked);
    let shared = record(HandlerKind::Shared, Some("a"));
    assert_eq!(p.invoke(id(5), shared, b"i").0, InvocationOutcome::Invoked);

    let (_, effects) = p.complete(id(1), &ok(), 99);
    let mut expected = completed(1, ok());
    expected.push(InvocationEffect::Invoke(id(2)));
    assert_eq!(effects, expected);
    assert_eq!(p.load(id(2)).unwrap().status, Status::Invoked);
    assert_eq!(p.load(id(3)).unwrap().status, Status::Inboxed { seq: third });
    let (_, effects) = p.complete(id(2), &ok(), 99);
    assert_eq!(effects[1], InvocationEffect::Invoke(id(3)));
    let (_, effects) = p.complete(id(3), &ok(), 99);
    assert_eq!(effects, completed(3, ok()));
    // The key is free again.
    assert_eq!(p.invoke(id(6), excl("a"), b"i").0, InvocationOutcome::Invoked);
}

#[test]
fn completing_an_inboxed_invocation_leaves_the_queue_without_touching_the_lock() {
    let mut p = TestPartition::new();
    let excl = || record(HandlerKind::Exclusive, Some("a"));
    p.invoke(id(1), excl(), b"i");
    p.invoke(id(2), excl(), b"i");
    p.invoke(id(3), excl(), b"i");
    let cancelled = InvocationResult::Failure { code: 409, message: "canceled".into() };
    let (_, effects) = p.complete(id(2), &cancelled, 99);
    assert_eq!(effects, completed(2, cancelled));
    // id(1) still holds the lock; completing it starts id(3), skipping id(2).
    let (_, effects) = p.complete(id(1), &ok(), 99);
    assert_eq!(effects[1], InvocationEffect::Invoke(id(3)));
}

#[test]
fn suspend_only_applies_to_running_invocations_and_pinning_sticks() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"i");
    p.pin(id(1), "dp_a");
    p.pin(id(1), "dp_b");
    assert_eq!(p.load(id(1)).unwrap().deployment_id.as_deref(), Some("dp_a"));
    // (Invoking again when a notification was missed: see `suspend::tests`.)
    assert_eq!(p.suspend(id(1), &[1, 2], 1, 1).0, InvocationOutcome::Suspended);
    assert_eq!(p.load(id(1)).unwrap().status, Status::Suspended { awaiting: vec![1, 2] });
    assert!(matches!(p.suspend(id(1), &[3], 1, 1).0, InvocationOutcome::NotRunning(_)));
    // A suspended invocation's journal still grows (completions arrive).
    assert_eq!(p.append(id(1), &[b"n".to_vec()]).0, InvocationOutcome::Appended { journal_len: 2 });
    assert_eq!(p.suspend(id(9), &[1], 0, 0).0, InvocationOutcome::NotFound);
}

#[test]
fn workflow_run_holds_the_key_lock() {
    let mut p = TestPartition::new();
    let run = || record(HandlerKind::Workflow, Some("wf-1"));
    assert_eq!(p.invoke(id(1), run(), b"i").0, InvocationOutcome::Invoked);
    assert_eq!(p.invoke(id(2), run(), b"i").0, InvocationOutcome::Inboxed);
    let shared = record(HandlerKind::Shared, Some("wf-1"));
    assert_eq!(p.invoke(id(3), shared, b"i").0, InvocationOutcome::Invoked);
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
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Exclusive, Some("a")), b"i");
    p.append(id(1), &[set("count", "1"), set("name", "\"x\"")]);
    assert_eq!(state(&p.store).len(), 2);
    assert_eq!(state(&p.store)["count"], b"1".to_vec());
    let clear = frame(Message::ClearStateCommand(ClearStateCommandMessage {
        key: b"name".to_vec().into(),
        name: String::new(),
    }));
    p.append(id(1), &[clear]);
    assert_eq!(state(&p.store).keys().collect::<Vec<_>>(), vec!["count"]);
    let clear_all = frame(Message::ClearAllStateCommand(ClearAllStateCommandMessage { name: String::new() }));
    p.append(id(1), &[clear_all]);
    assert!(state(&p.store).is_empty());
    // A plain service has no object state: its state commands change nothing.
    p.invoke(id(2), record(HandlerKind::Service, None), b"i");
    p.append(id(2), &[set("count", "9")]);
    assert!(state(&p.store).is_empty());
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
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"i");
    let (_, effects) = p.append(id(1), &[sleep]);
    assert_eq!(effects, vec![InvocationEffect::TimerRegistered { fire_at_ms: 5_000, id: id(1), completion_id: 1 }]);
    assert_eq!(timers(&p.store, 0, u64::MAX), vec![(5_000, id(1), 1)]);
    p.suspend(id(1), &[1], 2, 2);
    // Firing journals the completion and resumes the suspended invocation.
    let (outcome, effects) = p.fire_timer(5_000, id(1), 1);
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 3 });
    assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
    assert_eq!(p.load(id(1)).unwrap().status, Status::Invoked);
    assert!(timers(&p.store, 0, u64::MAX).is_empty());
    let notification = &p.journal(id(1))[2];
    assert_eq!(u16::from_be_bytes([notification[0], notification[1]]), 0x800C);
    // A repeated firing (after a leader change) changes nothing.
    let before = p.store.dump();
    assert_eq!(p.fire_timer(5_000, id(1), 1).0, InvocationOutcome::NotFound);
    assert_eq!(p.store.dump(), before);
}

#[test]
fn a_notification_for_a_running_invocation_is_delivered_live() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"i");
    let (_, effects) = p.deliver(id(1), 7, b"note");
    assert_eq!(effects, vec![InvocationEffect::Notify(id(1), b"note".to_vec())]);
    p.complete(id(1), &ok(), 99);
    assert!(matches!(p.deliver(id(1), 8, b"late").0, InvocationOutcome::NotRunning(_)));
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
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Workflow, Some("w")), b"i");
    p.invoke(id(2), record(HandlerKind::Shared, Some("w")), b"i");
    // The run waits: nothing is journaled for it yet.
    let (_, effects) = p.append(id(1), &[get]);
    assert!(effects.is_empty());
    assert_eq!(p.journal(id(1)).len(), 2);
    // The shared handler completes it: it gets its ack, the run its value.
    let (_, effects) = p.append(id(2), &[complete_with("yes")]);
    assert_eq!(code(&p.journal(id(2))[2]), 0x800B);
    assert_eq!(effects.len(), 2, "{effects:?}");
    assert_eq!(code(&p.journal(id(1))[2]), 0x8009);
    // Peeking now sees the value; completing again is answered with a failure.
    p.append(id(2), &[peek, complete_with("again")]);
    let j = p.journal(id(2));
    assert_eq!(j.len(), 7);
    assert_eq!(code(&j[4]), 0x800A);
    assert_eq!(code(&j[6]), 0x800B);
    assert_ne!(j[6], j[2], "the second completion must be answered with a failure, not the ack");
}

#[test]
fn a_running_invocation_is_cancelled_once() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let (outcome, effects) = p.intervene(id(1), Intervention::Cancel, 99);
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
    assert!(matches!(effects.as_slice(), [InvocationEffect::Notify(..)]));
    // Again (an operator, or a parent's SDK cancelling its children): nothing more.
    let (outcome, effects) = p.intervene(id(1), Intervention::Cancel, 99);
    assert_eq!(outcome, InvocationOutcome::Exists(Status::Invoked));
    assert!(effects.is_empty());
    assert_eq!(p.journal(id(1)).len(), 2);
}
