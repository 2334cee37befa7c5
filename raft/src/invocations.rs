//! The leader-side invoker: runs attempts of the partition's invocations
//! against their SDK endpoints (through `keel-invoker`) and makes every step
//! durable through Raft before acting on it.
//!
//! Each reported journal command is proposed (`AppendJournal`) in the order
//! the SDK sent it; proposals the SDK expects no answer to are pipelined, and
//! the attempt waits for all queued ones to be applied before it tells the
//! SDK anything: a `ctx.run` result is stored before it is handed back to
//! the SDK; the end of the attempt becomes `Complete` or `Suspend`. Every proposal is fenced with the leader's term, so a deposed
//! leader's late proposals are no-ops. An attempt that fails is retried
//! with exponential backoff; the next attempt replays the stored journal.

use crate::db::Db;
use crate::groups::{Group, ProposeError};
use crate::state_machine::GroupView;
use bytes::Bytes;
use keel_endpoint::{EndpointAddress, EndpointClient, HttpVersion};
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams, AttemptTimeouts, run_attempt};
use keel_partition::invocation::{self, InvocationKey, InvocationOutcome, InvocationResult, Status};
use keel_partition::{Command, Envelope, Query, QueryResult, Response};
use keel_protocol::message::Decoder;
use keel_protocol::proto::output_command_message;
use keel_protocol::{Frame, InvocationId, Message, VersionPolicy};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The invoker of one leader term.
pub struct Invoker {
    group: Arc<Group>,
    term: u64,
    db: Arc<Db>,
    client: EndpointClient,
    /// Invocations with a run loop on this leader (at most one each).
    running: Mutex<HashSet<InvocationKey>>,
    /// Attempts in flight, to deliver journaled notifications live.
    live: Mutex<HashMap<InvocationKey, Live>>,
}

/// The input side of an attempt in flight.
struct Live {
    inputs: mpsc::Sender<AttemptInput>,
    /// Journal entries the attempt knows (loaded, appended, delivered).
    seen: Arc<AtomicU32>,
}

/// How one attempt ended, for the retry loop.
enum Next {
    /// Nothing more to do (completed, suspended, gone).
    Done,
    /// Try again after a backoff.
    Retry(String),
    /// This leader can no longer act (deposed, shutting down).
    Stop(String),
}

impl Invoker {
    /// The invoker of `group` for the leader term `term`.
    pub fn new(group: Arc<Group>, term: u64) -> Self {
        let (db, client) = (group.db.clone(), group.client.clone());
        Invoker { group, term, db, client, running: Mutex::default(), live: Mutex::default() }
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
        {
            attempt.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Runs the invocation until it completes or suspends, retrying failed
    /// attempts with exponential backoff (100 ms doubling up to 10 s). A
    /// second call for an invocation that is already running returns at once.
    pub async fn run(self: Arc<Self>, id: InvocationKey) {
        if !self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            return;
        }
        self.run_attempts(&id).await;
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    async fn run_attempts(&self, id: &InvocationKey) {
        let id = *id;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.attempt(&id).await {
                Next::Done => return,
                Next::Stop(reason) => {
                    tracing::debug!(partition = self.group.id, "invoker stops: {reason}");
                    return;
                }
                Next::Retry(reason) => {
                    tracing::warn!(partition = self.group.id, invocation = %id_string(&id), "attempt failed, retrying in {backoff:?}: {reason}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Queues `command` behind the attempt's earlier proposals without
    /// waiting for it to be applied.
    async fn queue(&self, pending: &mut Pending, command: Command) -> Result<(), Next> {
        let is_append = matches!(command, Command::AppendJournal { .. });
        match self.group.submit(Envelope::fenced(self.term, command)).await {
            Ok(outcome) => {
                pending.push_back((is_append, Box::pin(outcome)));
                Ok(())
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// Queues a journal entry the SDK sent (or keel created for it); the
    /// attempt knows it from now on.
    async fn append(
        &self,
        pending: &mut Pending,
        id: &InvocationKey,
        frame: &Frame,
        seen: &AtomicU32,
    ) -> Result<(), Next> {
        let command = Command::AppendJournal { id: *id, entries: vec![frame.to_bytes().to_vec()] };
        self.queue(pending, command).await?;
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
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

    async fn attempt(&self, id: &InvocationKey) -> Next {
        let view = GroupView::new(&self.db, self.group.id);
        let (record, journal) = match invocation::load(&view, id) {
            Ok(Some(record)) => (record, invocation::journal(&view, id)),
            Ok(None) => return Next::Done,
            Err(e) => return Next::Stop(format!("invocation record unreadable: {e}")),
        };
        if record.status != Status::Invoked {
            return Next::Done;
        }
        let catalog = match self.group.catalog.get() {
            Ok(c) => c,
            Err(e) => return Next::Retry(format!("catalog unreadable: {e}")),
        };
        let service = &record.target.service;
        let deployment_id = match &record.deployment_id {
            Some(d) => d.clone(),
            None => match catalog.services.get(service) {
                Some(s) => s.deployment_id.clone(),
                None => return Next::Retry(format!("service {service} is not registered")),
            },
        };
        let Some((deployment, manifest)) = catalog.deployment(&deployment_id) else {
            return Next::Retry(format!("deployment {deployment_id} of service {service} is gone"));
        };
        // Queued with the attempt's first entries (see `drive_events`).
        let pin = record
            .deployment_id
            .is_none()
            .then(|| Command::PinDeployment { id: *id, deployment_id: deployment_id.clone() });
        let protocol_version = match manifest.select_protocol_version(&VersionPolicy::default()) {
            Ok(v) => v,
            Err(e) => return Next::Retry(format!("deployment {deployment_id}: {e}")),
        };
        let mut address = match deployment.uri.parse() {
            Ok(uri) => EndpointAddress::new(uri),
            Err(e) => return Next::Retry(format!("deployment uri {}: {e}", deployment.uri)),
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
            retry_count_since_last_stored_entry: 0,
            duration_since_last_stored_entry: Duration::ZERO,
            random_seed: xxhash_rust::xxh3::xxh3_64(id),
            headers: Vec::new(),
            timeouts: AttemptTimeouts::default(),
        };
        drop(view);
        tracing::debug!(partition = self.group.id, invocation = %id_string(id), deployment = %deployment_id, "starting an attempt");
        self.drive(id, &address, params, pin).await
    }

    async fn drive(
        &self,
        id: &InvocationKey,
        address: &EndpointAddress,
        params: AttemptParams,
        pin: Option<Command>,
    ) -> Next {
        let (events_tx, mut events) = mpsc::channel(64);
        let (inputs, inputs_rx) = mpsc::channel(64);
        let seen = Arc::new(AtomicU32::new(params.journal.len() as u32));
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*id, Live { inputs: inputs.clone(), seen: seen.clone() });
        let mut pending = Pending::new();
        let next = match pin {
            Some(pin) => self.queue(&mut pending, pin).await.err(),
            None => None,
        };
        let next = match next {
            Some(next) => next,
            None => {
                self.drive_events(id, address, params, &mut events, events_tx, inputs, inputs_rx, &seen, pending).await
            }
        };
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        next
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive_events(
        &self,
        id: &InvocationKey,
        address: &EndpointAddress,
        params: AttemptParams,
        events: &mut mpsc::Receiver<AttemptEvent>,
        events_tx: mpsc::Sender<AttemptEvent>,
        inputs: mpsc::Sender<AttemptInput>,
        inputs_rx: mpsc::Receiver<AttemptInput>,
        seen: &AtomicU32,
        mut pending: Pending,
    ) -> Next {
        let client = self.client.clone();
        let address = address.clone();
        let attempt = tokio::spawn(async move { run_attempt(&client, &address, params, events_tx, inputs_rx).await });
        let mut output = None;
        // Journal entries the SDK expects no answer to are pipelined: they
        // are queued in log order and awaited only before keel tells the SDK
        // anything (a run's ack) or ends the attempt. Each such wait thus
        // covers a whole group of entries in one commit.
        let next = loop {
            let Some(event) = events.recv().await else { break Next::Retry("attempt ended without a result".into()) };
            match event {
                AttemptEvent::Command { frame, .. } => {
                    if let Ok(Message::OutputCommand(out)) = frame.decode_message() {
                        output = Some(match out.result {
                            Some(output_command_message::Result::Value(v)) => {
                                InvocationResult::Success(v.content.to_vec())
                            }
                            Some(output_command_message::Result::Failure(f)) => InvocationResult::Failure {
                                code: u16::try_from(f.code).unwrap_or(500),
                                message: f.message,
                            },
                            None => InvocationResult::Success(Vec::new()),
                        });
                    }
                    if let Err(next) = self.append(&mut pending, id, &frame, seen).await {
                        break next;
                    }
                }
                AttemptEvent::ProposeRunCompletion { notification, .. } => {
                    if let Err(next) = self.append(&mut pending, id, &notification, seen).await {
                        break next;
                    }
                    // The result must be durable before the SDK learns it.
                    if let Err(next) = self.settle(&mut pending).await {
                        break next;
                    }
                    // A closed attempt drops inputs; the next attempt replays the journal.
                    let _ = inputs.send(AttemptInput::Notification(notification)).await;
                }
                AttemptEvent::AwaitingOn { .. } => {}
                AttemptEvent::Suspended { .. } => {
                    let journal_len_seen = seen.load(Ordering::SeqCst);
                    let suspend = Command::Suspend { id: *id, awaiting: Vec::new(), journal_len_seen };
                    break match self.queue(&mut pending, suspend).await {
                        Ok(()) => self.settle(&mut pending).await.err().unwrap_or(Next::Done),
                        Err(next) => next,
                    };
                }
                AttemptEvent::Error { frame } => {
                    break Next::Retry(format!("the handler failed: {:?}", frame.decode_message()));
                }
                AttemptEvent::Failed(e) => break Next::Retry(e.to_string()),
                AttemptEvent::Ended => {
                    let result = output.take().unwrap_or_else(|| InvocationResult::Failure {
                        code: 500,
                        message: "the handler ended without an output".into(),
                    });
                    tracing::debug!(partition = self.group.id, invocation = %id_string(id), "invocation ended");
                    let completed_at_ms = now_ms();
                    break match self.queue(&mut pending, Command::Complete { id: *id, result, completed_at_ms }).await {
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
        ProposeError::Unavailable(e) => Next::Retry(e),
    }
}

fn decode_journal(entries: &[Vec<u8>]) -> Result<Vec<Frame>, String> {
    let mut decoder = Decoder::new();
    for entry in entries {
        decoder.push(entry);
    }
    let mut frames = Vec::with_capacity(entries.len());
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        frames.push(frame);
    }
    if frames.len() != entries.len() {
        return Err(format!("{} journal entries decoded to {} frames", entries.len(), frames.len()));
    }
    Ok(frames)
}

/// Wall-clock time in ms since the Unix epoch (leader-side only: never
/// inside the state machine).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn id_string(id: &InvocationKey) -> String {
    InvocationId::from_bytes(id).map_or_else(|_| "<invalid id>".to_string(), |i| i.to_string())
}
