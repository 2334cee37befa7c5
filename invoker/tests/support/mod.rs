//! Shared by the integration tests: the real SDK services of `tests/services` (started with
//! the end-to-end harness), a harness around `run_attempt` with bounded waits, and frame
//! builders.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod fake;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keel_e2e::{Sdk as Runtime, SdkService};
use keel_endpoint::{EndpointAddress, EndpointClient, HttpVersion};
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams, AttemptTimeouts, run_attempt};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{Flags, Frame, InvocationId, Message, ServiceProtocolVersion, proto};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound for any single event; generous because Node and Python share two cores
/// with the test runner.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The endpoint address of a started SDK service.
fn address(service: &SdkService, use_http_11: bool) -> EndpointAddress {
    let uri = service.uri().parse().expect("valid uri");
    EndpointAddress { use_http_11, ..EndpointAddress::new(uri) }
}

async fn start(runtime: Runtime) -> SdkService {
    SdkService::start(runtime, Path::new(env!("CARGO_TARGET_TMPDIR"))).await.expect("start the SDK service")
}

/// One of the real SDK endpoints (started with the end-to-end harness, which
/// kills its process group on drop), with the service-name prefix its
/// services carry.
pub struct Sdk {
    pub service: SdkService,
    /// `""` for TypeScript, `"Py"` for Python.
    pub prefix: &'static str,
}

impl Sdk {
    /// The TypeScript services (`bash tests/services/setup.sh` installs them).
    pub async fn typescript() -> Sdk {
        Sdk { service: start(Runtime::TypeScript).await, prefix: "" }
    }

    /// The Python services under hypercorn.
    pub async fn python() -> Sdk {
        Sdk { service: start(Runtime::Python).await, prefix: "Py" }
    }

    /// `name` with this SDK's prefix (`Greeter` → `PyGreeter`).
    pub fn service_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Parameters for a fresh V7 h2c invocation of `service/handler` with input `value`.
    pub fn params(&self, service: &str, handler: &str, value: &str) -> AttemptParams {
        params(&self.service_name(service), handler, vec![input(value)])
    }

    /// Starts an attempt against this SDK over h2c.
    pub fn run(&self, params: AttemptParams) -> Running {
        Running::start(address(&self.service, params.http_version == HttpVersion::Http11), params)
    }
}

/// A fresh invocation id: unique per call within and across test runs, because the
/// services keep per-invocation state in memory (SideEffects.flaky).
pub fn fresh_invocation_id() -> InvocationId {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    InvocationId::new(n, nanos ^ (u128::from(std::process::id()) << 96) ^ u128::from(n))
}

/// Default parameters: a fresh id, V7 over h2c (bidi), no state, default timeouts.
pub fn params(service: &str, handler: &str, journal: Vec<Frame>) -> AttemptParams {
    AttemptParams {
        invocation_id: fresh_invocation_id(),
        service: service.to_owned(),
        handler: handler.to_owned(),
        key: None,
        protocol_version: ServiceProtocolVersion::V7,
        http_version: HttpVersion::Http2,
        protocol_mode: ProtocolMode::BidiStream,
        journal,
        eager_state: None,
        partial_state: true,
        retry_count_since_last_stored_entry: 0,
        duration_since_last_stored_entry: Duration::ZERO,
        random_seed: 0x5eed,
        headers: Vec::new(),
        timeouts: AttemptTimeouts::default(),
    }
}

/// A message as a frame without flags.
pub fn frame(message: impl Into<Message>) -> Frame {
    message.into().to_frame(Flags::NONE).expect("encodable")
}

/// The InputCommand with `value` as body and no headers.
pub fn input(value: &str) -> Frame {
    frame(proto::InputCommandMessage {
        headers: Vec::new(),
        value: Some(proto::Value { content: Bytes::copy_from_slice(value.as_bytes()) }),
        name: String::new(),
    })
}

/// Decodes a frame, panicking on garbage (test frames come from the code under test).
pub fn decode(frame: &Frame) -> Message {
    frame.decode_message().expect("decodable frame")
}

/// A running attempt with bounded waits on both channels.
pub struct Running {
    pub events: mpsc::Receiver<AttemptEvent>,
    pub inputs: Option<mpsc::Sender<AttemptInput>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Spawns `run_attempt` with a fresh client.
    pub fn start(address: EndpointAddress, params: AttemptParams) -> Running {
        let (events_tx, events) = mpsc::channel(16);
        let (inputs, inputs_rx) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            run_attempt(&EndpointClient::new(), &address, params, events_tx, inputs_rx).await;
        });
        Running { events, inputs: Some(inputs), task }
    }

    /// The next event, failing the test after [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> AttemptEvent {
        match tokio::time::timeout(EVENT_TIMEOUT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the attempt ended without a terminal event"),
            Err(_) => panic!("no event within {EVENT_TIMEOUT:?}"),
        }
    }

    /// The next event, which must be a command; returns its index and decoded message.
    pub async fn command(&mut self) -> (u32, Message) {
        match self.next().await {
            AttemptEvent::Command { index, frame } => (index, decode(&frame)),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    /// Sends an input to the attempt.
    pub async fn send(&self, input: AttemptInput) {
        let inputs = self.inputs.as_ref().expect("inputs still open");
        tokio::time::timeout(EVENT_TIMEOUT, inputs.send(input))
            .await
            .expect("input accepted in time")
            .expect("attempt running");
    }

    /// Drops the events receiver and checks that `run_attempt` returns promptly.
    pub async fn abandon(self) {
        let Running { events, inputs, task } = self;
        drop(events);
        tokio::time::timeout(EVENT_TIMEOUT, task).await.expect("attempt returns").expect("no panic");
        drop(inputs);
    }

    /// Waits for `run_attempt` to return and checks nothing follows the terminal event.
    pub async fn finish(mut self) {
        tokio::time::timeout(EVENT_TIMEOUT, &mut self.task).await.expect("attempt returns").expect("no panic");
        assert_eq!(self.events.recv().await, None, "nothing after the terminal event");
    }
}

/// `OutputCommand{value}` as the SDKs write it.
pub fn output_value(value: &str) -> Message {
    Message::OutputCommand(proto::OutputCommandMessage {
        result: Some(proto::output_command_message::Result::Value(proto::Value {
            content: Bytes::copy_from_slice(value.as_bytes()),
        })),
        name: String::new(),
    })
}
