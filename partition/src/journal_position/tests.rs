//! Journal positions through `apply`: a stale attempt's append is refused,
//! keel's own notifications do not move the position, a barrier changes
//! nothing, and an invocation journaled without a stored count gets one.

use crate::command::{Command, Envelope, Response};
use crate::invocation::{HandlerKind, InvocationOutcome};
use crate::keys;
use crate::testing::{TestPartition, id, record};
use keel_protocol::proto::{
    CallCompletionNotificationMessage, InputCommandMessage, RunCommandMessage, RunCompletionNotificationMessage, Value,
    call_completion_notification_message, run_completion_notification_message,
};
use keel_protocol::{Flags, Message};

fn frame(message: Message) -> Vec<u8> {
    message.to_frame(Flags::NONE).expect("small frames encode").to_bytes().to_vec()
}

fn input() -> Vec<u8> {
    frame(Message::InputCommand(InputCommandMessage::default()))
}

fn run(completion_id: u32) -> Vec<u8> {
    frame(Message::RunCommand(RunCommandMessage { result_completion_id: completion_id, name: "step".into() }))
}

fn run_result(completion_id: u32, value: &[u8]) -> Vec<u8> {
    let result = run_completion_notification_message::Result::Value(Value { content: value.to_vec().into() });
    frame(Message::RunCompletionNotification(RunCompletionNotificationMessage { completion_id, result: Some(result) }))
}

fn call_result(completion_id: u32) -> Vec<u8> {
    let result = call_completion_notification_message::Result::Value(Value { content: b"r".to_vec().into() });
    frame(Message::CallCompletionNotification(CallCompletionNotificationMessage {
        completion_id,
        result: Some(result),
    }))
}

/// A running service invocation with only its input journaled.
fn started() -> TestPartition {
    let mut p = TestPartition::new();
    assert_eq!(p.invoke(id(1), record(HandlerKind::Service, None), &input()).0, InvocationOutcome::Invoked);
    p
}

#[test]
fn a_stale_attempts_second_copy_is_refused_and_changes_nothing() {
    let mut p = started();
    // The input is produced entry 0, so the first step goes at 1.
    assert_eq!(p.append_at(id(1), 1, &[run(1), run_result(1, b"a")]).0, InvocationOutcome::Appended { journal_len: 3 });
    let before = p.store.dump();
    // An attempt that loaded the journal before those entries landed runs
    // the step again and appends it at the position it knew.
    let (outcome, effects) = p.append_at(id(1), 1, &[run(1), run_result(1, b"b")]);
    assert_eq!(outcome, InvocationOutcome::StaleAppend { produced: 3 });
    assert!(effects.is_empty());
    assert_eq!(p.store.dump(), before, "a refused append stores nothing");
    // Ahead of the journal is refused as well.
    assert_eq!(p.append_at(id(1), 4, &[run(2)]).0, InvocationOutcome::StaleAppend { produced: 3 });
    assert_eq!(p.append_at(id(1), 3, &[run(2)]).0, InvocationOutcome::Appended { journal_len: 4 });
}

#[test]
fn notifications_keel_appends_do_not_move_the_position() {
    let mut p = started();
    assert_eq!(p.append_at(id(1), 1, &[run(1)]).0, InvocationOutcome::Appended { journal_len: 2 });
    // A call's result arrives while the attempt runs its step.
    assert_eq!(p.deliver(id(1), 7, &call_result(7)).0, InvocationOutcome::Appended { journal_len: 3 });
    // The attempt, which has not seen it, appends where its own entries end.
    assert_eq!(p.append_at(id(1), 2, &[run_result(1, b"a")]).0, InvocationOutcome::Appended { journal_len: 4 });
    assert_eq!(p.journal(id(1))[3], run_result(1, b"a"));
}

#[test]
fn a_barrier_checks_and_changes_nothing() {
    let mut p = started();
    p.append_at(id(1), 1, &[run(1)]);
    let before = p.store.dump();
    for at in [0, 2, u32::MAX] {
        assert_eq!(p.append_at(id(1), at, &[]).0, InvocationOutcome::Appended { journal_len: 2 });
    }
    assert_eq!(p.store.dump(), before);
}

#[test]
fn a_journal_without_a_stored_count_is_counted_once() {
    let mut p = started();
    // Appended as an earlier version did, which kept no count.
    let unchecked = Command::AppendJournalUnchecked {
        id: id(1),
        entries: vec![run(1), run_result(1, b"a")],
        workflow_runs: vec![],
    };
    let (response, _) = p.apply(&Envelope::fenced(p.term, unchecked));
    assert_eq!(response, Response::Invocation(InvocationOutcome::Appended { journal_len: 3 }));
    p.store.entries.remove(&keys::produced_key(&id(1)));
    p.deliver(id(1), 7, &call_result(7));
    // Input, run and its result: three produced entries; the call result is keel's.
    assert_eq!(p.append_at(id(1), 2, &[run(2)]).0, InvocationOutcome::StaleAppend { produced: 3 });
    assert_eq!(p.append_at(id(1), 3, &[run(2)]).0, InvocationOutcome::Appended { journal_len: 5 });
}

#[test]
fn completing_forgets_the_count() {
    let mut p = started();
    p.append_at(id(1), 1, &[run(1)]);
    assert!(p.store.entries.contains_key(&keys::produced_key(&id(1))));
    p.complete(id(1), &crate::invocation::InvocationResult::Success(b"ok".to_vec()), 10);
    assert!(!p.store.entries.contains_key(&keys::produced_key(&id(1))));
}
