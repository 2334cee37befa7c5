//! The leader-side invoker: runs attempts of the partition's invocations
//! against their SDK endpoints (through `keel-invoker`) and makes every step
//! durable through Raft before acting on it.
//!
//! Each reported journal command is proposed (`AppendJournal`) in the order
//! the SDK sent it; proposals the SDK expects no answer to are pipelined, and
//! the attempt waits for all queued ones to be applied before it tells the
//! SDK anything: a `ctx.run` result is stored before it is handed back to
//! the SDK; the end of the attempt becomes `Complete` or `Suspend`. Every proposal is fenced with the leader's term, so a deposed
//! leader's late proposals are no-ops. An attempt that fails is retried per
//! the handler's retry policy ([`crate::retry`]); the next attempt replays
//! the stored journal. Attempts use the handler's inactivity and abort
//! timeouts (handler manifest value, else the service's admin override, else
//! the service's manifest value, else Restate's defaults).

use crate::partition::Partition;
use crate::retry::{self, Decision, Failure, RetryPolicy};
use bytes::Bytes;
use keel_endpoint::{EndpointAddress, HttpVersion};
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams, AttemptTimeouts};
use keel_partition::catalog::ServiceOverrides;
use keel_partition::invocation::{
    self, HandlerKind, Intervention, InvocationKey, InvocationOutcome, InvocationResult, Status,
};
use keel_partition::{Command, Envelope, Query, QueryResult, Response};
use keel_protocol::manifest::{Handler, Service};
use keel_protocol::proto::output_command_message;
use keel_protocol::{Frame, InvocationId, Message, VersionPolicy};
use keel_raft::messages::ProposeError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

mod frames;
use frames::{awaited, decode_journal, parks};

/// The invoker of one leader term.
pub struct Invoker {
    partition: Arc<Partition>,
    term: u64,
    /// Invocations with a run loop on this leader (at most one each).
    loops: Mutex<HashMap<InvocationKey, RunLoop>>,
    /// Attempts in flight, to deliver journaled notifications live.
    live: Mutex<HashMap<InvocationKey, Live>>,
}

/// The control of one invocation's run loop.
struct RunLoop {
    /// Ends a retry backoff early (resume, kill, pause).
    wake: Arc<Notify>,
    /// Set when the loop was asked to run while running: it checks the
    /// invocation once more before it ends, so no request is lost.
    again: bool,
}

/// The input side of an attempt in flight.
struct Live {
    inputs: mpsc::Sender<AttemptInput>,
    /// Journal entries the attempt knows (loaded, appended, delivered).
    seen: Arc<AtomicU32>,
    /// Ends the attempt at once (the invocation was killed or paused).
    stop: Arc<Notify>,
    /// Whether inputs reach the SDK while it runs (not in request/response mode).
    bidi: bool,
}

/// How one attempt ended, for the retry loop.
enum Next {
    /// Nothing more to do (completed, suspended, gone).
    Done,
    /// The attempt failed; the retry policy decides what follows.
    Retry(Failure),
    /// This leader can no longer act (deposed, shutting down), or the
    /// invocation may no longer run.
    Stop(String),
}

/// What the retry loop knows across the attempts of one invocation.
struct Attempts {
    /// Failed attempts so far.
    failures: u32,
    /// Failed attempts since one stored a journal entry, and when that was
    /// (the SDK's `ctx.run` retry policy counts with these).
    failures_since_stored: u32,
    last_stored: Instant,
    /// The handler's retry policy, as the last attempt found it.
    policy: RetryPolicy,
}

impl Invoker {
    /// The invoker of `partition` for the leader term `term`.
    pub fn new(partition: Arc<Partition>, term: u64) -> Self {
        Invoker { partition, term, loops: Mutex::default(), live: Mutex::default() }
    }

    /// The term this invoker works for.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Delivers a journaled notification to the invocation's attempt in
    /// flight, if any (otherwise the next attempt replays it).
    pub fn deliver(&self, id: &InvocationKey, notification: &[u8]) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let Some(attempt) = live.get(id) else { return };
        let Ok(mut frames) = decode_journal(&[notification.to_vec()]) else { return };
        if let Some(frame) = frames.pop()
            && attempt.inputs.try_send(AttemptInput::Notification(frame)).is_ok()
            && attempt.bidi
        {
            attempt.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Ends the invocation's attempt in flight and its retry backoff, if
    /// any: it was killed or paused.
    pub fn stop(&self, id: &InvocationKey) {
        if let Some(attempt) = self.live.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            attempt.stop.notify_one();
        }
        if let Some(run) = self.loops.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            run.wake.notify_one();
        }
    }

    /// Runs the invocation until it completes, suspends or pauses, retrying
    /// failed attempts per its retry policy. A call for an invocation that
    /// already has a run loop ends that loop's backoff and makes it check
    /// the invocation again before it ends (a resume, or a suspension that
    /// raced with a notification), then returns.
    pub async fn run(self: Arc<Self>, id: InvocationKey) {
        let wake = {
            let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = loops.get_mut(&id) {
                running.again = true;
                running.wake.notify_one();
                return;
            }
            let wake = Arc::new(Notify::new());
            loops.insert(id, RunLoop { wake: wake.clone(), again: false });
            wake
        };
        loop {
            self.run_attempts(&id, &wake).await;
            let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
            match loops.get_mut(&id) {
                Some(running) if running.again => running.again = false,
                _ => {
                    loops.remove(&id);
                    return;
                }
            }
        }
    }

    async fn run_attempts(&self, id: &InvocationKey, wake: &Notify) {
        let id = *id;
        let mut attempts = Attempts {
            failures: 0,
            failures_since_stored: 0,
            last_stored: Instant::now(),
            policy: RetryPolicy::default(),
        };
        loop {
            let failure = match self.attempt(&id, &mut attempts).await {
                Next::Done => return,
                Next::Stop(reason) => {
                    tracing::debug!(partition = self.partition.id(), "invoker stops: {reason}");
                    return;
                }
                Next::Retry(failure) => failure,
            };
            attempts.failures += 1;
            attempts.failures_since_stored += 1;
            let n = attempts.failures;
            let decision = retry::decide(&attempts.policy, n, &failure);
            tracing::warn!(partition = self.partition.id(), invocation = %id_string(&id), "attempt {n} failed ({decision:?}): {}", failure.message);
            let delay = match decision {
                Decision::RetryAfter(delay) => {
                    // Backing off is parking: a caller waiting for a handoff stops here.
                    self.partition.waiters.park(&id);
                    delay
                }
                Decision::Pause => {
                    // A pause completes nothing, so no purge time applies.
                    let pause = Command::Intervene { id, what: Intervention::Pause, completed_at_ms: 0 };
                    match self.propose(pause).await {
                        Ok(_) | Err(Next::Stop(_)) | Err(Next::Done) => {
                            self.partition.waiters.park(&id);
                            return;
                        }
                        Err(Next::Retry(_)) => attempts.policy.delay(n),
                    }
                }
                Decision::Fail(result) => {
                    match self.propose(Command::Complete { id, result, completed_at_ms: self.partition.now_ms() }).await
                    {
                        Ok(_) | Err(Next::Stop(_)) | Err(Next::Done) => return,
                        Err(Next::Retry(_)) => attempts.policy.delay(n),
                    }
                }
            };
            tokio::select! {
                biased;
                _ = tokio::time::sleep(delay) => {}
                // A resume, kill or pause ends the backoff; the next attempt
                // starts only if the invocation is still running.
                _ = wake.notified() => {}
            }
        }
    }

    async fn propose(&self, command: Command) -> Result<Response, Next> {
        checked(self.partition.propose(Envelope::fenced(self.term, command)).await)
    }

    /// Queues `command` behind the attempt's earlier proposals without
    /// waiting for it to be applied.
    async fn queue(&self, pending: &mut Pending, command: Command) -> Result<(), Next> {
        let is_append = matches!(command, Command::AppendJournal { .. });
        match self.partition.group.submit(Envelope::fenced(self.term, command)).await {
            Ok(outcome) => {
                pending.push_back((is_append, Box::pin(outcome)));
                Ok(())
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// Queues `command`, preceded by the attempt's deployment pin if that
    /// is not queued yet (the pin goes with the first entry that needs it).
    async fn queue_pinned(
        &self,
        pending: &mut Pending,
        pin: &mut Option<Command>,
        command: Command,
    ) -> Result<(), Next> {
        if let Some(pin) = pin.take() {
            self.queue(pending, pin).await?;
        }
        self.queue(pending, command).await
    }

    /// Queues journal entries of a running attempt, in one command (see
    /// [`Self::queue_pinned`]).
    async fn append(
        &self,
        pending: &mut Pending,
        pin: &mut Option<Command>,
        id: &InvocationKey,
        frames: &[Frame],
    ) -> Result<(), Next> {
        let workflow_runs = self.workflow_runs(frames);
        let entries = frames.iter().map(|f| f.to_bytes().to_vec()).collect();
        self.queue_pinned(pending, pin, Command::AppendJournal { id: *id, entries, workflow_runs }).await
    }

    /// The positions in `frames` of calls and sends to a workflow's run
    /// handler, per the catalog (which the partition's apply cannot read):
    /// such a call gets the workflow run's id, so it runs once per workflow id.
    fn workflow_runs(&self, frames: &[Frame]) -> Vec<u32> {
        use keel_protocol::message::MessageType;
        let mut catalog = None;
        let mut positions = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            // Only calls and sends are decoded, and the catalog read only for them.
            if !matches!(frame.message_type(), Some(MessageType::CallCommand | MessageType::OneWayCallCommand)) {
                continue;
            }
            let (service, handler) = match frame.decode_message() {
                Ok(Message::CallCommand(c)) => (c.service_name, c.handler_name),
                Ok(Message::OneWayCallCommand(c)) => (c.service_name, c.handler_name),
                _ => continue,
            };
            let Some(catalog) = catalog.get_or_insert_with(|| self.partition.catalog().ok()) else { continue };
            let workflow_run = catalog.service(&service).is_some_and(|(_, s)| {
                s.handlers.iter().any(|h| h.name == handler && invocation::handler_kind(s, h) == HandlerKind::Workflow)
            });
            if workflow_run {
                positions.push(i as u32);
            }
        }
        positions
    }

    /// Waits until every queued proposal is applied, in order. The first
    /// refusal ends the attempt; the rest are still awaited, so that no
    /// proposal of this attempt lands after the next attempt read the journal.
    async fn settle(&self, pending: &mut Pending) -> Result<(), Next> {
        let mut first_error = None;
        while let Some((is_append, outcome)) = pending.pop_front() {
            let result = match checked(outcome.await) {
                Ok(Response::Invocation(InvocationOutcome::Appended { .. })) => Ok(()),
                Ok(other) if is_append => Err(Next::Stop(format!("journal append refused: {other:?}"))),
                Ok(_) => Ok(()),
                Err(next) => Err(next),
            };
            if let Err(next) = result {
                first_error.get_or_insert(next);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn attempt(&self, id: &InvocationKey, attempts: &mut Attempts) -> Next {
        // One of the node's slots for attempts in flight, held until the
        // attempt ends. Waiting for it is not a failure; the record is read
        // after the wait, so an invocation killed meanwhile does not start.
        let Ok(_slot) = self.partition.services.slots.acquire().await else {
            return Next::Stop("the node's invocation slots are closed".into());
        };
        let view = self.partition.view();
        let (record, journal) = match invocation::load(&view, id) {
            Ok(Some(record)) => {
                let journal = invocation::journal_of(&view, id, &record);
                (record, journal)
            }
            Ok(None) => return Next::Done,
            Err(e) => return Next::Stop(format!("invocation record unreadable: {e}")),
        };
        if record.status != Status::Invoked {
            return Next::Done;
        }
        let catalog = match self.partition.catalog() {
            Ok(c) => c,
            Err(e) => return Next::Retry(Failure::transient(format!("catalog unreadable: {e}"))),
        };
        let service = &record.target.service;
        let deployment_id = match &record.deployment_id {
            Some(d) => d.clone(),
            None => match catalog.services.get(service) {
                Some(s) => s.deployment_id.clone(),
                None => return Next::Retry(Failure::transient(format!("service {service} is not registered"))),
            },
        };
        let Some((deployment, manifest)) = catalog.deployment(&deployment_id) else {
            return Next::Retry(Failure::transient(format!("deployment {deployment_id} of service {service} is gone")));
        };
        // Queued before the attempt's first journal entry or suspension
        // (see `drive_events`); an attempt that goes straight to its result
        // needs no pin, and one that fails before it stored anything may
        // just as well run on a newer revision next time.
        let pin = record
            .deployment_id
            .is_none()
            .then(|| Command::PinDeployment { id: *id, deployment_id: deployment_id.clone() });
        let handler = manifest
            .service(service)
            .and_then(|s| Some((s, s.handlers.iter().find(|h| h.name == record.target.handler)?)));
        let timeouts = match handler {
            Some((schema, handler)) => {
                attempts.policy = RetryPolicy::of(schema, handler);
                let overrides = catalog.services.get(service).map(|s| &s.overrides);
                effective_timeouts(overrides, schema, handler)
            }
            None => AttemptTimeouts::default(),
        };
        let protocol_version = match manifest.select_protocol_version(&VersionPolicy::default()) {
            Ok(v) => v,
            Err(e) => return Next::Retry(Failure::transient(format!("deployment {deployment_id}: {e}"))),
        };
        let mut address = match deployment.uri.parse() {
            Ok(uri) => EndpointAddress::new(uri),
            Err(e) => return Next::Retry(Failure::transient(format!("deployment uri {}: {e}", deployment.uri))),
        };
        address.use_http_11 = deployment.use_http_11;
        for (name, value) in &deployment.additional_headers {
            if let (Ok(n), Ok(v)) = (name.parse(), value.parse()) {
                address.additional_headers.push((n, v));
            }
        }
        let frames = match decode_journal(&journal) {
            Ok(f) => f,
            Err(e) => return Next::Stop(format!("stored journal unreadable: {e}")),
        };
        let eager_state = record.target.key.as_ref().map(|key| {
            let query = Query::GetState { service: service.clone(), object_key: key.clone() };
            match keel_partition::read(&view, &query) {
                Ok(QueryResult::State { state, .. }) => {
                    state.into_iter().map(|(k, v)| (Bytes::from(k.into_bytes()), Bytes::from(v))).collect()
                }
                _ => Vec::new(),
            }
        });
        let invocation_id = match InvocationId::from_bytes(id) {
            Ok(i) => i,
            Err(e) => return Next::Stop(format!("invalid invocation id: {e}")),
        };
        let params = AttemptParams {
            invocation_id,
            service: service.clone(),
            handler: record.target.handler.clone(),
            key: record.target.key.clone(),
            protocol_version,
            http_version: if deployment.use_http_11 { HttpVersion::Http11 } else { HttpVersion::Http2 },
            protocol_mode: manifest.protocol_mode,
            journal: frames,
            partial_state: eager_state.is_none(),
            eager_state,
            retry_count_since_last_stored_entry: attempts.failures_since_stored,
            duration_since_last_stored_entry: attempts.last_stored.elapsed(),
            random_seed: xxhash_rust::xxh3::xxh3_64(id),
            headers: Vec::new(),
            timeouts,
        };
        drop(view);
        tracing::debug!(partition = self.partition.id(), invocation = %id_string(id), deployment = %deployment_id, "starting an attempt");
        let known = params.journal.len() as u32;
        self.partition.waiters.unpark(id);
        let (next, seen) = self.drive(id, &address, params, pin).await;
        if seen > known {
            attempts.failures_since_stored = 0;
            attempts.last_stored = Instant::now();
        }
        next
    }

    /// Runs one attempt; returns how it ended and the journal length it knew.
    async fn drive(
        &self,
        id: &InvocationKey,
        address: &EndpointAddress,
        params: AttemptParams,
        pin: Option<Command>,
    ) -> (Next, u32) {
        let (events_tx, mut events) = mpsc::channel(64);
        let (inputs, inputs_rx) = mpsc::channel(64);
        let seen = Arc::new(AtomicU32::new(params.journal.len() as u32));
        let stop = Arc::new(Notify::new());
        let bidi = params.is_bidi();
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*id, Live { inputs: inputs.clone(), seen: seen.clone(), stop: stop.clone(), bidi });
        let channels = (&mut events, events_tx, inputs, inputs_rx);
        let next = self.drive_events(id, address, params, channels, &seen, &stop, bidi, pin).await;
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        (next, seen.load(Ordering::SeqCst))
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive_events(
        &self,
        id: &InvocationKey,
        address: &EndpointAddress,
        params: AttemptParams,
        (events, events_tx, inputs, inputs_rx): Channels<'_>,
        seen: &AtomicU32,
        stop: &Notify,
        bidi: bool,
        mut pin: Option<Command>,
    ) -> Next {
        let mut pending = Pending::new();
        let attempt_start = params.journal.len() as u32;
        let attempt =
            tokio::spawn(self.partition.services.endpoints.run_attempt(address.clone(), params, events_tx, inputs_rx));
        let mut output = None;
        // Completion ids of the runs this attempt proposed: awaiting one of
        // them is waiting on keel's own ack, not parking.
        let mut runs = HashSet::new();
        // Journal entries the SDK expects no answer to are pipelined: they
        // are queued in log order and awaited only before keel tells the SDK
        // anything (a run's ack) or ends the attempt. Each such wait thus
        // covers a whole group of entries in one commit.
        // An event taken from the stream while batching, not yet handled.
        let mut peeked = None;
        let next = loop {
            let event = match peeked.take() {
                Some(event) => Some(event),
                None => tokio::select! {
                    biased;
                    // Killed or paused: nothing the SDK does now may take effect.
                    _ = stop.notified() => {
                        attempt.abort();
                        break Next::Stop("the invocation was stopped".into());
                    }
                    // Cancellation-safe: `recv` removes a message only when it returns it.
                    event = events.recv() => event,
                },
            };
            let Some(event) = event else { break Next::Retry(Failure::transient("attempt ended without a result")) };
            match event {
                AttemptEvent::Command { frame, .. } => {
                    // Commands the SDK sent together arrive together: they
                    // become one log entry.
                    let mut frames = vec![frame];
                    while frames.len() < MAX_BATCH {
                        match events.try_recv() {
                            Ok(AttemptEvent::Command { frame, .. }) => frames.push(frame),
                            Ok(other) => {
                                peeked = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // The SDK sent them, so it knows them.
                    seen.fetch_add(frames.len() as u32, Ordering::SeqCst);
                    if let Some((at, result)) =
                        frames.iter().enumerate().rev().find_map(|(i, f)| Some((i, output_of(f)?)))
                    {
                        output = Some(result);
                        // The handler's end right after its output: `Complete`
                        // records the result and drops the journal, so the
                        // output entry would only be written to be deleted.
                        if at + 1 == frames.len() && matches!(peeked, Some(AttemptEvent::Ended)) {
                            frames.pop();
                        }
                    }
                    if frames.is_empty() {
                        continue;
                    }
                    if let Err(next) = self.append(&mut pending, &mut pin, id, &frames).await {
                        break next;
                    }
                }
                AttemptEvent::ProposeRunCompletion { notification, completion_id, .. } => {
                    runs.insert(completion_id);
                    let run_result = std::slice::from_ref(&notification);
                    if let Err(next) = self.append(&mut pending, &mut pin, id, run_result).await {
                        break next;
                    }
                    // The result must be durable before the SDK learns it.
                    if let Err(next) = self.settle(&mut pending).await {
                        break next;
                    }
                    // A closed or request/response attempt drops inputs: the SDK
                    // then suspends without knowing the result, and the suspension
                    // sees a journal longer than the attempt knew, so the next
                    // attempt replays it.
                    if inputs.send(AttemptInput::Notification(notification)).await.is_ok() && bidi {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
                AttemptEvent::AwaitingOn { frame } => {
                    if parks(&frame, &runs) {
                        self.partition.waiters.park(id);
                    }
                }
                AttemptEvent::Suspended { frame } => {
                    let journal_len_seen = seen.load(Ordering::SeqCst);
                    let awaiting = awaited(&frame);
                    let suspend = Command::Suspend { id: *id, awaiting, journal_len_seen, attempt_start };
                    if let Err(next) = self.queue_pinned(&mut pending, &mut pin, suspend).await {
                        break next;
                    }
                    break match self.settle(&mut pending).await {
                        Ok(()) => {
                            self.partition.waiters.park(id);
                            Next::Done
                        }
                        Err(next) => next,
                    };
                }
                AttemptEvent::Error { frame } => {
                    break Next::Retry(match frame.decode_message() {
                        Ok(Message::Error(error)) => Failure::from_sdk(&error),
                        other => Failure::transient(format!("the handler failed: {other:?}")),
                    });
                }
                AttemptEvent::Failed(e) => break Next::Retry(Failure::transient(e.to_string())),
                AttemptEvent::Ended => {
                    let result = output.take().unwrap_or_else(|| InvocationResult::Failure {
                        code: 500,
                        message: "the handler ended without an output".into(),
                    });
                    tracing::debug!(partition = self.partition.id(), invocation = %id_string(id), "invocation ended");
                    let complete = Command::Complete { id: *id, result, completed_at_ms: self.partition.now_ms() };
                    break match self.queue(&mut pending, complete).await {
                        Ok(()) => self.settle(&mut pending).await.err().unwrap_or(Next::Done),
                        Err(next) => next,
                    };
                }
            }
        };
        // Whatever ended the attempt, its queued entries land before the
        // next attempt reads the journal.
        let _ = self.settle(&mut pending).await;
        events.close();
        let _ = attempt.await;
        next
    }
}

/// The most journal entries one `AppendJournal` carries (the outbox gives
/// each entry of a command its own slot, 1024 at most).
const MAX_BATCH: usize = 64;

/// The invocation's result, if `frame` is its `OutputCommand`.
fn output_of(frame: &Frame) -> Option<InvocationResult> {
    if frame.message_type() != Some(keel_protocol::message::MessageType::OutputCommand) {
        return None;
    }
    let Ok(Message::OutputCommand(out)) = frame.decode_message() else { return None };
    Some(match out.result {
        Some(output_command_message::Result::Value(v)) => InvocationResult::Success(v.content.to_vec()),
        Some(output_command_message::Result::Failure(f)) => {
            InvocationResult::Failure { code: u16::try_from(f.code).unwrap_or(500), message: f.message }
        }
        None => InvocationResult::Success(Vec::new()),
    })
}

/// The event stream of an attempt and its input stream, both ends.
type Channels<'a> = (
    &'a mut mpsc::Receiver<AttemptEvent>,
    mpsc::Sender<AttemptEvent>,
    mpsc::Sender<AttemptInput>,
    mpsc::Receiver<AttemptInput>,
);

/// Proposals of an attempt queued but not yet known to be applied, in log
/// order, each marked whether it is a journal append.
type Pending = VecDeque<(bool, Pin<Box<dyn Future<Output = Result<Response, ProposeError>> + Send>>)>;

/// The outcome of a fenced proposal as the attempt loop needs it.
fn checked(outcome: Result<Response, ProposeError>) -> Result<Response, Next> {
    match outcome {
        Ok(Response::Fenced { .. }) => Err(Next::Stop("fenced: a newer leader exists".into())),
        Ok(r) => Ok(r),
        Err(e) => Err(refused(e)),
    }
}

/// What a failed proposal means for the attempt loop.
fn refused(e: ProposeError) -> Next {
    match e {
        ProposeError::NotLeader { .. } | ProposeError::NoSuchGroup(_) => Next::Stop("no longer the leader".into()),
        ProposeError::Unavailable(e) => Next::Retry(Failure::transient(e)),
        // The SDK sent an entry no log entry can hold; replaying would send
        // it again, so an operator has to decide (fix the handler, kill).
        e @ ProposeError::TooLarge { .. } => Next::Retry(Failure::too_large(e.to_string())),
    }
}

/// The timeouts of an attempt of `handler`: the handler's manifest value,
/// else the service's admin override, else the service's manifest value,
/// else Restate's defaults.
fn effective_timeouts(overrides: Option<&ServiceOverrides>, service: &Service, handler: &Handler) -> AttemptTimeouts {
    let default = AttemptTimeouts::default();
    let pick = |handler: Option<u64>, overridden: Option<u64>, service: Option<u64>, default: Duration| {
        handler.or(overridden).or(service).map_or(default, Duration::from_millis)
    };
    let (h, s) = (&handler.options, &service.options);
    AttemptTimeouts {
        inactivity: pick(
            h.inactivity_timeout,
            overrides.and_then(|o| o.inactivity_timeout_ms),
            s.inactivity_timeout,
            default.inactivity,
        ),
        abort: pick(h.abort_timeout, overrides.and_then(|o| o.abort_timeout_ms), s.abort_timeout, default.abort),
    }
}

fn id_string(id: &InvocationKey) -> String {
    InvocationId::from_bytes(id).map_or_else(|_| "<invalid id>".to_string(), |i| i.to_string())
}
