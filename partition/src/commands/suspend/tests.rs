use crate::invocation::{HandlerKind, InvocationEffect, InvocationOutcome, ResumeDeployment, Status, awaited_key};
use crate::outbox::SIGNAL_KEY;
use crate::testing::{TestPartition, id, record};
use keel_protocol::message::NotificationId;
use keel_protocol::proto::{
    SignalNotificationMessage, SleepCompletionNotificationMessage, Void, signal_notification_message,
};
use keel_protocol::{Flags, Message};

fn frame(message: Message) -> Vec<u8> {
    message.to_frame(Flags::NONE).unwrap().to_bytes().to_vec()
}

fn sleep_done(completion_id: u32) -> Vec<u8> {
    frame(Message::SleepCompletionNotification(SleepCompletionNotificationMessage {
        completion_id,
        void: Some(Void {}),
    }))
}

fn named(name: &str) -> Vec<u8> {
    frame(Message::SignalNotification(SignalNotificationMessage {
        signal_id: Some(signal_notification_message::SignalId::Name(name.into())),
        result: Some(signal_notification_message::Result::Void(Void {})),
    }))
}

#[test]
fn an_awaited_notification_the_attempt_may_have_missed_invokes_again() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    // Journaled while the attempt (which started with 1 entry) ran.
    p.deliver(id(1), 100, &sleep_done(4));
    p.deliver(id(1), 101, &named("go"));
    let go = awaited_key(&NotificationId::SignalName("go".into()));
    // Waiting for something else: suspended, even though the attempt "saw" less.
    assert_eq!(p.suspend(id(1), &[7, SIGNAL_KEY | 17], 1, 1).0, InvocationOutcome::Suspended);
    p.resume(id(1), ResumeDeployment::Keep);
    // Waiting for completion 4 or the signal "go": both are there.
    for awaiting in [vec![4], vec![go]] {
        let (outcome, effects) = p.suspend(id(1), &awaiting, 3, 1);
        assert_eq!((outcome, effects), (InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(id(1))]));
    }
    // Known to the attempt from its start: not new.
    assert_eq!(p.suspend(id(1), &[4, go], 3, 3).0, InvocationOutcome::Suspended);
    assert_eq!(p.load(id(1)).unwrap().status, Status::Suspended { awaiting: vec![4, go] });
}

#[test]
fn without_an_awaiting_set_any_unseen_entry_invokes_again() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    p.deliver(id(1), 100, &sleep_done(4));
    assert_eq!(p.suspend(id(1), &[], 1, 1).0, InvocationOutcome::Invoked);
    assert_eq!(p.suspend(id(1), &[], 2, 1).0, InvocationOutcome::Suspended);
}
