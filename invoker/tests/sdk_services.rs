//! Attempts against the real SDK test services of `tests/services` (TypeScript and Python),
//! asserting the exact frames each SDK sends. Each test starts its own service process
//! (killed with its process group on drop) and skips with a note when it is not installed.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keel_endpoint::HttpVersion;
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams};
use keel_protocol::proto::{self, CombinatorType, ErrorBehavior};
use keel_protocol::{Flags, Frame, Message, ServiceProtocolVersion};
use support::{Running, Sdk, decode, frame, output_value};

/// One `#[tokio::test]` per SDK for a scenario `async fn(&Sdk)`.
macro_rules! on_both_sdks {
    ($scenario:ident: $ts:ident, $py:ident) => {
        #[tokio::test]
        async fn $ts() {
            let sdk = Sdk::typescript().await;
            $scenario(&sdk).await;
            sdk.service.finish();
        }
        #[tokio::test]
        async fn $py() {
            let sdk = Sdk::python().await;
            $scenario(&sdk).await;
            sdk.service.finish();
        }
    };
}

on_both_sdks!(greet: ts_greet, py_greet);
on_both_sdks!(counter_add_with_eager_state: ts_counter_add, py_counter_add);
on_both_sdks!(sleep_suspends_and_resumes: ts_sleep_suspend_resume, py_sleep_suspend_resume);
on_both_sdks!(sleep_completion_streamed_live: ts_sleep_live_completion, py_sleep_live_completion);
on_both_sdks!(run_v7_acked_through_its_notification: ts_run_v7_notification, py_run_v7_notification);
on_both_sdks!(run_v7_explicit_ack: ts_run_v7_explicit_ack, py_run_v7_explicit_ack);
on_both_sdks!(run_v6_full_notification: ts_run_v6, py_run_v6);
on_both_sdks!(fail_terminal: ts_fail_terminal, py_fail_terminal);

/// (1) `Greeter.greet("Ann")`: the output, then End.
async fn greet(sdk: &Sdk) {
    let mut run = sdk.run(sdk.params("Greeter", "greet", "\"Ann\""));
    assert_eq!(run.command().await, (1, output_value("\"Hello, Ann!\"")));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// (2) `Counter/k.add(1)` with the complete eager state `count = 41` (both SDKs store JSON).
async fn counter_add_with_eager_state(sdk: &Sdk) {
    let mut params = sdk.params("Counter", "add", "1");
    params.key = Some("k".into());
    params.eager_state = Some(vec![(Bytes::from_static(b"count"), Bytes::from_static(b"41"))]);
    params.partial_state = false;
    let mut run = sdk.run(params);
    let read = proto::GetEagerStateCommandMessage {
        key: Bytes::from_static(b"count"),
        result: Some(proto::get_eager_state_command_message::Result::Value(value("41"))),
        name: String::new(),
    };
    assert_eq!(run.command().await, (1, read.into()));
    let write = proto::SetStateCommandMessage {
        key: Bytes::from_static(b"count"),
        value: Some(value("42")),
        name: String::new(),
    };
    assert_eq!(run.command().await, (2, write.into()));
    assert_eq!(run.command().await, (3, output_value("42")));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// (3) `Greeter.sleepThenEcho(1000)`: a Sleep command; closing the request body makes the
/// SDK suspend on the sleep's completion id (and CANCEL); a second attempt with the
/// completion in the journal finishes.
async fn sleep_suspends_and_resumes(sdk: &Sdk) {
    let first = sdk.params("Greeter", "sleepThenEcho", "1000");
    let (journal, mut run) = (first.journal.clone(), sdk.run(first.clone()));
    let (sleep, completion_id) = expect_sleep(&mut run, 1000).await;
    run.send(AttemptInput::Close).await;
    let suspension = until_terminal(&mut run, completion_id).await;
    let expected =
        proto::SuspensionMessage { awaiting_on: Some(awaiting_completion(completion_id)), ..Default::default() };
    assert_eq!(suspension, AttemptEvent::Suspended { frame: frame(expected) });
    run.finish().await;

    let journal = [journal, vec![sleep, sleep_done(completion_id)]].concat();
    let mut run = sdk.run(AttemptParams { journal, ..first });
    assert_eq!(run.command().await, (2, output_value("1000")));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// (3b) The same handler, but the completion is streamed into the running attempt.
async fn sleep_completion_streamed_live(sdk: &Sdk) {
    let mut run = sdk.run(sdk.params("Greeter", "sleepThenEcho", "5"));
    let (_, completion_id) = expect_sleep(&mut run, 5).await;
    run.send(AttemptInput::Notification(sleep_done(completion_id))).await;
    let output = until_terminal(&mut run, completion_id).await;
    assert_eq!(output, AttemptEvent::Command { index: 2, frame: frame(output_value("5")) });
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// How the caller answers a run proposal.
#[derive(Clone, Copy)]
enum Answer {
    Notification,
    Ack,
}

/// (4) `SideEffects.flaky("x")` under V7: the run's closure fails on attempts 1 and 2
/// (retryable ErrorMessages naming the Run command), succeeds on attempt 3 with a proposal
/// asking for an ack; answering it lets the handler finish.
async fn run_v7_acked_through_its_notification(sdk: &Sdk) {
    flaky(sdk, ServiceProtocolVersion::V7, Answer::Notification).await;
}

async fn run_v7_explicit_ack(sdk: &Sdk) {
    flaky(sdk, ServiceProtocolVersion::V7, Answer::Ack).await;
}

/// (4b) V6: no ack flag, the full RunCompletion notification goes back.
async fn run_v6_full_notification(sdk: &Sdk) {
    flaky(sdk, ServiceProtocolVersion::V6, Answer::Notification).await;
}

async fn flaky(sdk: &Sdk, version: ServiceProtocolVersion, answer: Answer) {
    let first = AttemptParams { protocol_version: version, ..sdk.params("SideEffects", "flaky", "\"x\"") };
    let mut run = sdk.run(first.clone());
    let (index, run_command) = run.command().await;
    assert_eq!(
        (index, &run_command),
        (1, &proto::RunCommandMessage { result_completion_id: 1, name: "flaky".into() }.into())
    );
    expect_run_error(run.next().await, 1);
    run.finish().await;

    // Attempt 2 replays the stored Run command; the closure fails once more.
    let journal = [first.journal.clone(), vec![frame(run_command)]].concat();
    let second = AttemptParams { journal, retry_count_since_last_stored_entry: 1, ..first };
    let mut run = sdk.run(second.clone());
    expect_run_error(run.next().await, 2);
    run.finish().await;

    let mut run = sdk.run(AttemptParams { retry_count_since_last_stored_entry: 2, ..second });
    let AttemptEvent::ProposeRunCompletion { completion_id, frame: proposal, notification } = run.next().await else {
        panic!("expected a run proposal");
    };
    assert_eq!(completion_id, 1);
    let wanted_flags = if version >= ServiceProtocolVersion::V7 { Flags::REQUESTED_ACK } else { Flags::NONE };
    assert_eq!(proposal.header.flags, wanted_flags);
    let proposed = proto::ProposeRunCompletionMessage {
        result_completion_id: 1,
        result: Some(proto::propose_run_completion_message::Result::Value(Bytes::from_static(b"3"))),
    };
    assert_eq!(decode(&proposal), proposed.into());
    let stored = proto::RunCompletionNotificationMessage {
        completion_id: 1,
        result: Some(proto::run_completion_notification_message::Result::Value(value("3"))),
    };
    assert_eq!(notification, frame(stored));
    run.send(match answer {
        Answer::Notification => AttemptInput::Notification(notification),
        Answer::Ack => AttemptInput::Ack(completion_id),
    })
    .await;
    // Python hints (V7) that it awaits the run's completion until the answer arrives.
    let output = until_terminal(&mut run, completion_id).await;
    assert_eq!(output, AttemptEvent::Command { index: 2, frame: frame(output_value("3")) });
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// (5) `Greeter.failTerminal`: a terminal error is an Output with a failure, then End.
async fn fail_terminal(sdk: &Sdk) {
    let mut run = sdk.run(sdk.params("Greeter", "failTerminal", ""));
    let failure = proto::OutputCommandMessage {
        result: Some(proto::output_command_message::Result::Failure(proto::Failure {
            code: 418,
            message: "boom".into(),
            metadata: Vec::new(),
        })),
        name: String::new(),
    };
    assert_eq!(run.command().await, (1, failure.into()));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
}

/// Request/response mode: Python over HTTP/1.1. The body ends after the replay, so the
/// sleep suspends at once, and the resumed attempt finishes.
#[tokio::test]
async fn py_http11_request_response() {
    let sdk = Sdk::python().await;
    let http11 = |p: AttemptParams| AttemptParams { http_version: HttpVersion::Http11, ..p };

    let mut run = sdk.run(http11(sdk.params("Greeter", "greet", "\"Ann\"")));
    assert_eq!(run.command().await, (1, output_value("\"Hello, Ann!\"")));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;

    let first = http11(sdk.params("Greeter", "sleepThenEcho", "1000"));
    let mut run = sdk.run(first.clone());
    let (sleep, completion_id) = expect_sleep(&mut run, 1000).await;
    let suspension = until_terminal(&mut run, completion_id).await;
    let expected =
        proto::SuspensionMessage { awaiting_on: Some(awaiting_completion(completion_id)), ..Default::default() };
    assert_eq!(suspension, AttemptEvent::Suspended { frame: frame(expected) });
    run.finish().await;

    let journal = [first.journal.clone(), vec![sleep, sleep_done(completion_id)]].concat();
    let mut run = sdk.run(AttemptParams { journal, ..first });
    assert_eq!(run.command().await, (2, output_value("1000")));
    assert_eq!(run.next().await, AttemptEvent::Ended);
    run.finish().await;
    sdk.service.finish();
}

fn value(text: &str) -> proto::Value {
    proto::Value { content: Bytes::copy_from_slice(text.as_bytes()) }
}

fn sleep_done(completion_id: u32) -> Frame {
    frame(proto::SleepCompletionNotificationMessage { completion_id, void: Some(proto::Void {}) })
}

/// What the SDKs await on a plain `await` of one completion (a sleep, a run): the
/// completion raced with CANCEL (signal 1).
fn awaiting_completion(completion_id: u32) -> proto::Future {
    proto::Future {
        waiting_completions: vec![completion_id],
        waiting_signals: vec![1],
        combinator_type: CombinatorType::FirstCompleted.into(),
        ..Default::default()
    }
}

/// The Sleep command at index 1 with a wake-up time `ms` from about now; returns its frame
/// (for the next journal) and completion id.
async fn expect_sleep(run: &mut Running, ms: u64) -> (Frame, u32) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64;
    let AttemptEvent::Command { index: 1, frame } = run.next().await else { panic!("expected command 1") };
    let Message::SleepCommand(sleep) = decode(&frame) else { panic!("expected a Sleep command") };
    assert_eq!((sleep.result_completion_id, sleep.name.as_str()), (1, ""));
    let wake = sleep.wake_up_time;
    assert!(wake >= now + ms - 1_000 && wake <= now + ms + 60_000, "wake-up time {wake}, now {now}");
    (frame, sleep.result_completion_id)
}

/// The next event that is not an AwaitingOn hint (the SDKs send zero or more while
/// blocked on a sleep or a run's completion; each must name it, raced with CANCEL).
async fn until_terminal(run: &mut Running, completion_id: u32) -> AttemptEvent {
    loop {
        match run.next().await {
            AttemptEvent::AwaitingOn { frame } => {
                let hint = proto::AwaitingOnMessage {
                    awaiting_on: Some(awaiting_completion(completion_id)),
                    executing_side_effects: false,
                };
                assert_eq!(decode(&frame), hint.into());
            }
            other => return other,
        }
    }
}

/// A retryable ErrorMessage for the run at command index 1 (`RunCommand` = 0x0411).
fn expect_run_error(event: AttemptEvent, attempt: u32) {
    let AttemptEvent::Error { frame } = event else { panic!("expected an ErrorMessage, got {event:?}") };
    let Message::Error(error) = decode(&frame) else { panic!("not an ErrorMessage") };
    assert_eq!(error.code, 500);
    assert!(error.message.contains(&format!("flaky x: attempt {attempt} failed")), "{}", error.message);
    assert_eq!(error.related_command_index, Some(1));
    assert_eq!(error.related_command_name.as_deref(), Some("flaky"));
    assert_eq!(error.related_command_type, Some(0x0411));
    assert_eq!(error.behavior(), ErrorBehavior::Retry);
}
