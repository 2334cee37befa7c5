use bytes::Bytes;
use keel_protocol::ServiceProtocolVersion::{V6, V7};
use keel_protocol::proto::{self, Future, ProposeRunCompletionMessage, SuspensionMessage};
use keel_protocol::{Flags, Frame, Message, encode};

use super::*;

fn frame(message: impl Into<Message>) -> Frame {
    message.into().to_frame(Flags::NONE).unwrap()
}

fn input() -> Frame {
    frame(proto::InputCommandMessage::default())
}

fn sleep(completion_id: u32) -> Frame {
    frame(proto::SleepCommandMessage { wake_up_time: 1, result_completion_id: completion_id, name: String::new() })
}

fn sleep_done(completion_id: u32) -> Frame {
    frame(proto::SleepCompletionNotificationMessage { completion_id, void: Some(proto::Void {}) })
}

fn proposal(completion_id: u32, flags: Flags) -> Frame {
    let message = Message::from(ProposeRunCompletionMessage {
        result_completion_id: completion_id,
        result: Some(proto::propose_run_completion_message::Result::Value(Bytes::from_static(b"3"))),
    });
    message.to_frame(flags).unwrap()
}

fn stored_run(completion_id: u32) -> Frame {
    frame(proto::RunCompletionNotificationMessage {
        completion_id,
        result: Some(proto::run_completion_notification_message::Result::Value(proto::Value {
            content: Bytes::from_static(b"3"),
        })),
    })
}

fn ack_bytes(completion_id: u32) -> Bytes {
    encode(&proto::ProposeRunCompletionAckMessage { completion_id }.into()).unwrap()
}

fn violation_text(result: Result<Inbound, AttemptError>) -> String {
    match result {
        Err(AttemptError::ProtocolViolation(text)) => text,
        other => panic!("expected a protocol violation, got {other:?}"),
    }
}

#[test]
fn command_indexes_continue_after_the_replayed_commands_only() {
    // Input, Sleep, its notification, another Sleep: three commands, four entries.
    let journal = [input(), sleep(1), sleep_done(1), sleep(2)];
    let replayed = Session::replayed_commands(&journal).unwrap();
    assert_eq!(replayed, 3);
    let mut session = Session::new(V7, replayed);
    for expected in [3, 4] {
        let inbound = session.on_sdk_frame(sleep(expected)).unwrap();
        assert_eq!(
            inbound,
            Inbound { event: AttemptEvent::Command { index: expected, frame: sleep(expected) }, terminal: false }
        );
    }
    // Custom commands are opaque journal entries and take an index too.
    let custom = Frame::new(0xFC01, Flags::NONE, Bytes::from_static(b"\x01\x02")).unwrap();
    let inbound = session.on_sdk_frame(custom.clone()).unwrap();
    assert_eq!(inbound.event, AttemptEvent::Command { index: 5, frame: custom });
}

#[test]
fn journals_must_start_with_the_input_and_hold_only_entries() {
    assert!(matches!(Session::replayed_commands(&[]), Err(AttemptError::InvalidJournal(_))));
    assert!(matches!(Session::replayed_commands(&[sleep(1)]), Err(AttemptError::InvalidJournal(_))));
    let end = frame(proto::EndMessage {});
    assert!(matches!(Session::replayed_commands(&[input(), end]), Err(AttemptError::InvalidJournal(_))));
}

#[test]
fn terminal_messages_end_the_attempt() {
    let mut session = Session::new(V7, 1);
    assert_eq!(
        session.on_sdk_frame(frame(proto::EndMessage {})).unwrap(),
        Inbound { event: AttemptEvent::Ended, terminal: true }
    );
    let error = frame(proto::ErrorMessage { code: 500, ..Default::default() });
    assert_eq!(
        session.on_sdk_frame(error.clone()).unwrap(),
        Inbound { event: AttemptEvent::Error { frame: error }, terminal: true }
    );
    let awaiting = frame(proto::AwaitingOnMessage { awaiting_on: None, executing_side_effects: true });
    assert_eq!(session.on_sdk_frame(awaiting.clone()).unwrap().event, AttemptEvent::AwaitingOn { frame: awaiting });
}

#[test]
fn v7_run_proposals_are_answered_with_an_ack_in_the_notifications_place() {
    let mut session = Session::new(V7, 2);
    let proposed = proposal(1, Flags::REQUESTED_ACK);
    let inbound = session.on_sdk_frame(proposed.clone()).unwrap();
    assert_eq!(
        inbound.event,
        AttemptEvent::ProposeRunCompletion { completion_id: 1, frame: proposed, notification: stored_run(1) }
    );
    // Other notifications pass through untouched.
    let signal = frame(proto::SignalNotificationMessage {
        signal_id: Some(proto::signal_notification_message::SignalId::Idx(17)),
        result: Some(proto::signal_notification_message::Result::Void(proto::Void {})),
    });
    assert_eq!(
        session.on_input(AttemptInput::Notification(signal.clone())).unwrap(),
        Outbound::Send(signal.to_bytes())
    );
    // The stored run result goes out as the ack, once.
    assert_eq!(session.on_input(AttemptInput::Notification(stored_run(1))).unwrap(), Outbound::Send(ack_bytes(1)));
    assert_eq!(
        session.on_input(AttemptInput::Notification(stored_run(1))).unwrap(),
        Outbound::Send(stored_run(1).to_bytes())
    );
}

#[test]
fn explicit_acks_need_a_proposal_that_asked_for_one() {
    let mut session = Session::new(V7, 2);
    assert!(matches!(session.on_input(AttemptInput::Ack(1)), Err(AttemptError::InvalidInput(_))));
    session.on_sdk_frame(proposal(1, Flags::REQUESTED_ACK)).unwrap();
    assert_eq!(session.on_input(AttemptInput::Ack(1)).unwrap(), Outbound::Send(ack_bytes(1)));
    assert!(matches!(session.on_input(AttemptInput::Ack(1)), Err(AttemptError::InvalidInput(_))));
    // Without the flag (a V6 SDK, or a V7 proposal without it) only the notification works.
    session.on_sdk_frame(proposal(2, Flags::NONE)).unwrap();
    assert!(matches!(session.on_input(AttemptInput::Ack(2)), Err(AttemptError::InvalidInput(_))));
    assert_eq!(
        session.on_input(AttemptInput::Notification(stored_run(2))).unwrap(),
        Outbound::Send(stored_run(2).to_bytes())
    );
}

#[test]
fn v6_ignores_the_ack_flag() {
    let mut session = Session::new(V6, 2);
    session.on_sdk_frame(proposal(1, Flags::REQUESTED_ACK)).unwrap();
    assert_eq!(
        session.on_input(AttemptInput::Notification(stored_run(1))).unwrap(),
        Outbound::Send(stored_run(1).to_bytes())
    );
}

#[test]
fn run_proposals_need_a_result() {
    let mut session = Session::new(V7, 2);
    let empty = frame(ProposeRunCompletionMessage { result_completion_id: 1, result: None });
    assert!(violation_text(session.on_sdk_frame(empty)).contains("no result"));
}

#[test]
fn suspensions_must_await_something_in_the_versions_shape() {
    let leaf = Future { waiting_completions: vec![1], ..Default::default() };
    let nested = Future { nested_futures: vec![Future::default(), leaf.clone()], ..Default::default() };
    let v7 = |future: Option<Future>| frame(SuspensionMessage { awaiting_on: future, ..Default::default() });
    let v6 = frame(SuspensionMessage { waiting_named_signals: vec!["n".into()], ..Default::default() });

    let mut session = Session::new(V7, 1);
    assert!(session.on_sdk_frame(v7(Some(leaf))).unwrap().terminal);
    assert!(session.on_sdk_frame(v7(Some(nested))).unwrap().terminal);
    violation_text(session.on_sdk_frame(v7(None)));
    violation_text(
        session.on_sdk_frame(v7(Some(Future { nested_futures: vec![Future::default()], ..Default::default() }))),
    );
    violation_text(session.on_sdk_frame(v6.clone()));

    let mut session = Session::new(V6, 1);
    assert!(session.on_sdk_frame(v6).unwrap().terminal);
    violation_text(session.on_sdk_frame(frame(SuspensionMessage::default())));
}

#[test]
fn runtime_to_sdk_messages_from_the_sdk_are_violations() {
    let mut session = Session::new(V7, 1);
    violation_text(session.on_sdk_frame(frame(proto::StartMessage::default())));
    violation_text(session.on_sdk_frame(frame(proto::CommandAckMessage { command_index: 0 })));
    violation_text(session.on_sdk_frame(frame(proto::ProposeRunCompletionAckMessage { completion_id: 1 })));
    violation_text(session.on_sdk_frame(input()));
    let text = violation_text(session.on_sdk_frame(sleep_done(1)));
    assert!(text.contains("SleepCompletionNotificationMessage"), "{text}");
}

#[test]
fn undecodable_frames_are_decode_errors() {
    let mut session = Session::new(V7, 1);
    let unknown = Frame::new(0x0999, Flags::NONE, Bytes::new()).unwrap();
    assert!(matches!(session.on_sdk_frame(unknown), Err(AttemptError::Decode(_))));
    let bad_protobuf = Frame::new(0x0401, Flags::NONE, Bytes::from_static(b"\xff\xff\xff")).unwrap();
    assert!(matches!(session.on_sdk_frame(bad_protobuf), Err(AttemptError::Decode(_))));
}

#[test]
fn only_notifications_can_be_sent() {
    let mut session = Session::new(V7, 1);
    assert!(matches!(session.on_input(AttemptInput::Notification(sleep(1))), Err(AttemptError::InvalidInput(_))));
    assert_eq!(session.on_input(AttemptInput::Close).unwrap(), Outbound::Close);
}

#[test]
fn wire_bytes_recompute_a_stale_length() {
    let mut stale = sleep_done(1);
    stale.header.length = 999;
    assert_eq!(wire_bytes(&stale).unwrap(), sleep_done(1).to_bytes());
}
