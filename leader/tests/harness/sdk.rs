//! An SDK that lives in the test process: the harness's deployment. It
//! speaks the same events as a real attempt (journal commands, suspension,
//! end) and replays like a real SDK: a command already in the journal it
//! is given is not sent again, and a value read in an earlier attempt is
//! taken from the journal, not read anew. Its handlers:
//!
//! - `Counter/add` (virtual object): reads `count`, stores `count + 1`,
//!   answers the new count;
//! - `Sleeper/nap` (service): sleeps the milliseconds of its input, then
//!   answers `woke`;
//! - `Sender/send` (service): one-way calls of `add`, one after the other,
//!   for each target in its input (separated by spaces): a target `key`
//!   calls `Counter/add` for `key`, `Service/key` calls `Service/add`;
//!   then answers `sent`;
//! - `Caller/call` (service): a request-response call of the keyless
//!   handler its input names (`Service/handler`), then answers `ok: ` and
//!   the callee's output, or `failed CODE: ` and the failure's message;
//! - `Tally/add` (virtual object, in [`LATE_MANIFEST`], which a test
//!   registers when it wants a service some node does not know yet):
//!   counts like `Counter/add`; so does `Flow/add`, a workflow's run
//!   handler in the same manifest;
//! - `Runner/step` (service): one `ctx.run` whose closure counts how often
//!   it ran for this invocation and returns that count, then answers the
//!   run's stored result. A closure that runs again after its result was
//!   stored returns a larger count than the answer: see
//!   [`FakeSdk::executions`];
//! - `Runner/flaky` (service): does something outside the journal (an
//!   email, say; counted in [`FakeSdk::executions`]), then fails the
//!   attempt as a broken connection would, every time;
//! - `Hung/wait` (service, in [`HUNG_MANIFEST`], a deployment of its own):
//!   an endpoint that takes the request and never answers; its attempts
//!   last until keel gives them up ([`FakeSdk::hung`] counts them).
//!
//! Like real handler code, it takes time: before each command it thinks
//! for a seeded random while (up to [`MAX_THINK`]), so attempts are still
//! running when faults strike.
//!
//! It records what it sees that a correct runtime never shows it (a nap
//! woken twice or early) as violations for the test to report.

use bytes::Bytes;
use futures::future::BoxFuture;
use keel_endpoint::EndpointAddress;
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams};
use keel_leader::clock::{Clock, TokioClock};
use keel_leader::endpoints::Endpoints;
use keel_protocol::message::MessageType;
use keel_protocol::proto::{
    CallCommandMessage, GetEagerStateCommandMessage, OneWayCallCommandMessage, OutputCommandMessage,
    ProposeRunCompletionMessage, RunCommandMessage, RunCompletionNotificationMessage, SetStateCommandMessage,
    SleepCommandMessage, SuspensionMessage, Value, Void, call_completion_notification_message,
    get_eager_state_command_message, output_command_message, propose_run_completion_message,
    run_completion_notification_message,
};
use keel_protocol::{Flags, Frame, Message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest a handler works before sending its next command.
pub const MAX_THINK: Duration = Duration::from_millis(300);

/// The manifest the harness registers for this SDK.
pub const MANIFEST: &str = r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":5,
  "services":[
    {"name":"Counter","ty":"VIRTUAL_OBJECT","handlers":[{"name":"add","ty":"EXCLUSIVE"}]},
    {"name":"Sleeper","ty":"SERVICE","handlers":[{"name":"nap"}]},
    {"name":"Sender","ty":"SERVICE","handlers":[{"name":"send"}]},
    {"name":"Caller","ty":"SERVICE","handlers":[{"name":"call"}]},
    {"name":"Runner","ty":"SERVICE","handlers":[{"name":"step"},{"name":"flaky"}]}]}"#;

/// A second deployment of this SDK, with a service of its own.
pub const LATE_MANIFEST: &str = r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":5,
  "services":[{"name":"Tally","ty":"VIRTUAL_OBJECT","handlers":[{"name":"add","ty":"EXCLUSIVE"}]},
    {"name":"Flow","ty":"WORKFLOW","handlers":[{"name":"add","ty":"WORKFLOW"}]}]}"#;

/// A deployment whose endpoint never answers.
pub const HUNG_MANIFEST: &str = r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":5,
  "services":[{"name":"Hung","ty":"SERVICE","handlers":[{"name":"wait"}]}]}"#;

/// The in-process SDK (clones share what they saw).
#[derive(Clone)]
pub struct FakeSdk {
    clock: TokioClock,
    violations: Arc<Mutex<Vec<String>>>,
    /// Draws think times (the runtime is single-threaded and seeded, so
    /// the draws happen in the same order on every run of a seed).
    think: Arc<Mutex<StdRng>>,
    /// How often each invocation's `ctx.run` closure ran.
    executions: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Attempts of `Hung/wait` in flight.
    hung: Arc<AtomicUsize>,
}

impl FakeSdk {
    /// An SDK reading time from `clock` (the cluster's), thinking for
    /// times drawn from `seed`.
    pub fn new(clock: TokioClock, seed: u64) -> Self {
        let think = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        FakeSdk { clock, violations: Arc::default(), think, executions: Arc::default(), hung: Arc::default() }
    }

    /// Attempts of `Hung/wait` in flight now.
    pub fn hung(&self) -> usize {
        self.hung.load(Ordering::SeqCst)
    }

    /// How often the side effect of invocation `id` ran (the `ctx.run`
    /// closure of `Runner/step`, the attempts of `Runner/flaky`). A `Runner/step`
    /// that answered `n` ran it exactly once after its result was stored iff
    /// this is `n`: each run returns the next count, and only the stored one
    /// is answered.
    pub fn executions(&self, id: &str) -> u64 {
        self.executions.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied().unwrap_or(0)
    }

    /// Works on the next command for a while.
    async fn think(&self) {
        let ms = self.think.lock().unwrap_or_else(|e| e.into_inner()).gen_range(0..=MAX_THINK.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// What the SDK saw that it never should have.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a violation unless the journal is a prefix of `shape` (a
    /// real SDK fails such an attempt with a journal mismatch).
    fn check_journal(&self, params: &AttemptParams, shape: &[MessageType]) {
        let types: Vec<Option<MessageType>> = params.journal.iter().map(Frame::message_type).collect();
        let fits = types.len() <= shape.len() && types.iter().zip(shape).all(|(t, s)| *t == Some(*s));
        if !fits {
            self.violation(format!("{} {}: journal mismatch: {types:?}", params.invocation_id, params.handler));
        }
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    }
}

fn frame(message: Message) -> Frame {
    message.to_frame(Flags::NONE).expect("small frames encode")
}

/// The journal's messages, decoded (entry 0 is the input).
fn decoded(journal: &[Frame]) -> Vec<Message> {
    journal.iter().filter_map(|f| f.decode_message().ok()).collect()
}

fn input_of(journal: &[Message]) -> Bytes {
    match journal.first() {
        Some(Message::InputCommand(input)) => input.value.as_ref().map(|v| v.content.clone()).unwrap_or_default(),
        _ => Bytes::new(),
    }
}

fn output(content: impl Into<Bytes>) -> Frame {
    frame(Message::OutputCommand(OutputCommandMessage {
        name: String::new(),
        result: Some(output_command_message::Result::Value(Value { content: content.into() })),
    }))
}

impl FakeSdk {
    /// Sends the commands of `script` that the journal does not hold yet (a
    /// replay skips what was journaled), each after some thought; false if
    /// the attempt is gone.
    async fn send_new(&self, events: &mpsc::Sender<AttemptEvent>, journaled: usize, script: Vec<Frame>) -> bool {
        // Entry 0 is the input; command `i` of the script is journal entry `i + 1`.
        for (index, frame) in script.into_iter().enumerate().skip(journaled.saturating_sub(1)) {
            self.think().await;
            if events.send(AttemptEvent::Command { index: index as u32, frame }).await.is_err() {
                return false;
            }
        }
        true
    }

    /// [`Self::send_new`], then `end`.
    async fn play(&self, events: &mpsc::Sender<AttemptEvent>, journaled: usize, script: Vec<Frame>, end: AttemptEvent) {
        if self.send_new(events, journaled, script).await {
            let _ = events.send(end).await;
        }
    }

    async fn counter(&self, params: AttemptParams, events: mpsc::Sender<AttemptEvent>) {
        let journal = decoded(&params.journal);
        // A replayed read answers from the journal; a first one from the eager state.
        let read = match journal.get(1) {
            Some(Message::GetEagerStateCommand(get)) => match &get.result {
                Some(get_eager_state_command_message::Result::Value(v)) => Some(v.content.clone()),
                _ => None,
            },
            _ => params
                .eager_state
                .as_ref()
                .and_then(|state| state.iter().find(|(k, _)| k.as_ref() == b"count").map(|(_, v)| v.clone())),
        };
        // A real SDK refuses a journal that its code does not produce.
        let shape = [MessageType::InputCommand, MessageType::GetEagerStateCommand, MessageType::SetStateCommand];
        self.check_journal(&params, &shape);
        let count: u64 = read.as_deref().and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        let next = Bytes::from((count + 1).to_string());
        let get = GetEagerStateCommandMessage {
            key: Bytes::from_static(b"count"),
            name: String::new(),
            result: Some(match read {
                Some(v) => get_eager_state_command_message::Result::Value(Value { content: v }),
                None => get_eager_state_command_message::Result::Void(Void {}),
            }),
        };
        let set = SetStateCommandMessage {
            key: Bytes::from_static(b"count"),
            value: Some(Value { content: next.clone() }),
            name: String::new(),
        };
        let script =
            vec![frame(Message::GetEagerStateCommand(get)), frame(Message::SetStateCommand(set)), output(next)];
        self.play(&events, journal.len(), script, AttemptEvent::Ended).await;
    }

    async fn nap(&self, params: AttemptParams, events: mpsc::Sender<AttemptEvent>) {
        let journal = decoded(&params.journal);
        let sleep = journal.iter().find_map(|m| match m {
            Message::SleepCommand(s) => Some(s.wake_up_time),
            _ => None,
        });
        let shape = [MessageType::InputCommand, MessageType::SleepCommand, MessageType::SleepCompletionNotification];
        self.check_journal(&params, &shape);
        let woken = journal.iter().filter(|m| matches!(m, Message::SleepCompletionNotification(_))).count();
        let Some(wake_up_time) = sleep else {
            let ms: u64 = std::str::from_utf8(&input_of(&journal)).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            let sleep = SleepCommandMessage {
                wake_up_time: self.clock.now_ms() + ms,
                result_completion_id: 1,
                name: String::new(),
            };
            return self.play(&events, journal.len(), vec![frame(Message::SleepCommand(sleep))], suspended(1)).await;
        };
        if woken == 0 {
            return self.play(&events, journal.len(), Vec::new(), suspended(1)).await;
        }
        let now = self.clock.now_ms();
        if woken > 1 {
            self.violation(format!("{}: the sleep completed {woken} times", params.invocation_id));
        }
        if now < wake_up_time {
            self.violation(format!("{}: woke at {now}, before {wake_up_time}", params.invocation_id));
        }
        // The output is the first command the journal does not hold.
        self.play(&events, 1, vec![output("woke")], AttemptEvent::Ended).await;
    }

    async fn send(&self, params: AttemptParams, events: mpsc::Sender<AttemptEvent>) {
        let journal = decoded(&params.journal);
        let input = String::from_utf8_lossy(&input_of(&journal)).into_owned();
        let targets: Vec<&str> = input.split_whitespace().collect();
        let mut shape = vec![MessageType::InputCommand];
        for _ in &targets {
            shape.extend([MessageType::OneWayCallCommand, MessageType::CallInvocationIdCompletionNotification]);
        }
        self.check_journal(&params, &shape);
        let mut script: Vec<Frame> = (1..)
            .zip(&targets)
            .map(|(idx, target)| {
                let (service, key) = target.split_once('/').unwrap_or(("Counter", target));
                frame(Message::OneWayCallCommand(OneWayCallCommandMessage {
                    service_name: service.into(),
                    handler_name: "add".into(),
                    key: key.into(),
                    invocation_id_notification_idx: idx,
                    ..Default::default()
                }))
            })
            .collect();
        script.push(output("sent"));
        // Journaling a send also journals the callee's id: each send
        // journaled so far is two entries after the input.
        let journaled = 1 + journal.len().saturating_sub(1) / 2;
        self.play(&events, journaled, script, AttemptEvent::Ended).await;
    }

    async fn call(&self, params: AttemptParams, events: mpsc::Sender<AttemptEvent>) {
        let shape = [
            MessageType::InputCommand,
            MessageType::CallCommand,
            MessageType::CallInvocationIdCompletionNotification,
            MessageType::CallCompletionNotification,
        ];
        self.check_journal(&params, &shape);
        let journal = decoded(&params.journal);
        let result = journal.iter().find_map(|m| match m {
            Message::CallCompletionNotification(n) => n.result.clone(),
            _ => None,
        });
        let Some(result) = result else {
            let input = String::from_utf8_lossy(&input_of(&journal)).into_owned();
            let (service, handler) = input.split_once('/').unwrap_or((&input, ""));
            let call = CallCommandMessage {
                service_name: service.into(),
                handler_name: handler.into(),
                invocation_id_notification_idx: 1,
                result_completion_id: 2,
                ..Default::default()
            };
            // The call and the callee's id are journaled together; then it
            // waits for the result.
            let journaled = journal.len().min(2);
            return self.play(&events, journaled, vec![frame(Message::CallCommand(call))], suspended(2)).await;
        };
        let answer = match result {
            call_completion_notification_message::Result::Value(v) => {
                format!("ok: {}", String::from_utf8_lossy(&v.content))
            }
            call_completion_notification_message::Result::Failure(f) => format!("failed {}: {}", f.code, f.message),
        };
        self.play(&events, 1, vec![output(answer)], AttemptEvent::Ended).await;
    }
}

impl FakeSdk {
    async fn step(
        &self,
        params: AttemptParams,
        events: mpsc::Sender<AttemptEvent>,
        mut inputs: mpsc::Receiver<AttemptInput>,
    ) {
        let shape = [MessageType::InputCommand, MessageType::RunCommand, MessageType::RunCompletionNotification];
        self.check_journal(&params, &shape);
        let journal = decoded(&params.journal);
        let stored = journal.iter().find_map(|m| match m {
            Message::RunCompletionNotification(RunCompletionNotificationMessage {
                result: Some(run_completion_notification_message::Result::Value(v)),
                ..
            }) => Some(v.content.clone()),
            _ => None,
        });
        let result = match stored {
            Some(result) => result,
            None => {
                let run = RunCommandMessage { result_completion_id: 1, name: "step".into() };
                if !self.send_new(&events, journal.len(), vec![frame(Message::RunCommand(run))]).await {
                    return;
                }
                // The closure: a side effect, counted.
                self.think().await;
                let count = self.count_execution(&params);
                let result = Bytes::from(count.to_string());
                let proposal = ProposeRunCompletionMessage {
                    result_completion_id: 1,
                    result: Some(propose_run_completion_message::Result::Value(result.clone())),
                };
                let stored = RunCompletionNotificationMessage {
                    completion_id: 1,
                    result: Some(run_completion_notification_message::Result::Value(Value { content: result.clone() })),
                };
                let propose = AttemptEvent::ProposeRunCompletion {
                    completion_id: 1,
                    frame: frame(Message::ProposeRunCompletion(proposal)),
                    notification: frame(Message::RunCompletionNotification(stored)),
                };
                if events.send(propose).await.is_err() {
                    return;
                }
                // Like a real SDK, it goes on only once the result is stored;
                // without an answer it suspends and a new attempt replays.
                match inputs.recv().await {
                    Some(AttemptInput::Notification(_) | AttemptInput::Ack(_)) => result,
                    _ => return self.play(&events, usize::MAX, Vec::new(), suspended(1)).await,
                }
            }
        };
        self.play(&events, 1, vec![output(result)], AttemptEvent::Ended).await;
    }
}

impl FakeSdk {
    async fn flaky(&self, params: AttemptParams, events: mpsc::Sender<AttemptEvent>) {
        self.think().await;
        self.count_execution(&params);
        let broken = keel_invoker::AttemptError::Transport("the connection broke".into());
        let _ = events.send(AttemptEvent::Failed(broken)).await;
    }

    /// Counts one more run of invocation `params`' side effect; returns the count.
    fn count_execution(&self, params: &AttemptParams) -> u64 {
        let mut executions = self.executions.lock().unwrap_or_else(|e| e.into_inner());
        let count = executions.entry(params.invocation_id.to_string()).or_default();
        *count += 1;
        *count
    }

    /// Answers nothing, for as long as keel keeps the attempt.
    async fn hang(&self, events: mpsc::Sender<AttemptEvent>) {
        struct InFlight(Arc<AtomicUsize>);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.hung.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(self.hung.clone());
        events.closed().await;
    }
}

/// Suspends until completion `completion_id` arrives.
fn suspended(completion_id: u32) -> AttemptEvent {
    let suspension = SuspensionMessage { waiting_completions: vec![completion_id], ..Default::default() };
    AttemptEvent::Suspended { frame: frame(Message::Suspension(suspension)) }
}

impl Endpoints for FakeSdk {
    fn run_attempt(
        &self,
        _address: EndpointAddress,
        params: AttemptParams,
        events: mpsc::Sender<AttemptEvent>,
        inputs: mpsc::Receiver<AttemptInput>,
    ) -> BoxFuture<'static, ()> {
        let sdk = self.clone();
        Box::pin(async move {
            match (params.service.as_str(), params.handler.as_str()) {
                ("Counter" | "Tally" | "Flow", "add") => sdk.counter(params, events).await,
                ("Sleeper", "nap") => sdk.nap(params, events).await,
                ("Sender", "send") => sdk.send(params, events).await,
                ("Caller", "call") => sdk.call(params, events).await,
                ("Runner", "step") => sdk.step(params, events, inputs).await,
                ("Runner", "flaky") => sdk.flaky(params, events).await,
                ("Hung", "wait") => sdk.hang(events).await,
                (s, h) => sdk.violation(format!("an attempt of unknown handler {s}/{h}")),
            }
        })
    }
}
