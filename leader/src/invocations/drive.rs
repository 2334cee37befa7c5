//! Driving one attempt: the SDK's events in, durable log entries out.
//!
//! Each journal command the SDK reports is proposed as `AppendJournal` in
//! the order it was sent. Commands the SDK expects no answer to are
//! pipelined (queued, not awaited), and the attempt waits for everything
//! queued to be applied before it tells the SDK anything or ends: a
//! `ctx.run` result is durable before the SDK learns it, and the attempt's
//! end (`Complete` or `Suspend`) lands after all its entries.

use super::frames::{awaited, parks};
use super::{Invoker, Live, Next, checked, id_string, refused};
use crate::catalog_lookup::catalog_for;
use crate::retry::Failure;
use keel_endpoint::EndpointAddress;
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams};
use keel_partition::invocation::{self, HandlerKind, InvocationKey, InvocationOutcome, InvocationResult};
use keel_partition::{Command, Envelope, Response, journal_position};
use keel_protocol::proto::output_command_message;
use keel_protocol::{Frame, Message};
use keel_raft::messages::ProposeError;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::{Notify, mpsc};

impl Invoker {
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
    /// [`Self::queue_pinned`]), at position `produced`: the entries the
    /// attempt produced so far, which this advances
    /// ([`keel_partition::journal_position`]).
    async fn append(
        &self,
        pending: &mut Pending,
        pin: &mut Option<Command>,
        id: &InvocationKey,
        frames: &[Frame],
        produced: &mut u32,
    ) -> Result<(), Next> {
        let workflow_runs = self.workflow_runs(frames).await?;
        let entries = frames.iter().map(|f| f.to_bytes().to_vec()).collect();
        let at = *produced;
        *produced += frames.len() as u32;
        self.queue_pinned(pending, pin, Command::AppendJournal { id: *id, at, entries, workflow_runs }).await
    }

    /// The positions in `frames` of calls and sends to a workflow's run
    /// handler, per a catalog that knows the target (which the partition's
    /// apply cannot read; see [`crate::catalog_lookup`]): such a call gets
    /// the workflow run's id, so it runs once per workflow id. If no
    /// catalog can be consulted the attempt fails, rather than guess.
    async fn workflow_runs(&self, frames: &[Frame]) -> Result<Vec<u32>, Next> {
        use keel_protocol::message::MessageType;
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
            let catalog = catalog_for(&self.partition, &service, &handler)
                .await
                .map_err(|e| Next::Retry(Failure::transient(e.to_string())))?;
            let workflow_run = catalog.service(&service).is_some_and(|(_, s)| {
                s.handlers.iter().any(|h| h.name == handler && invocation::handler_kind(s, h) == HandlerKind::Workflow)
            });
            if workflow_run {
                positions.push(i as u32);
            }
        }
        Ok(positions)
    }

    /// Waits until every queued proposal is applied, in order. The first
    /// refusal ends the attempt; the rest are still awaited, so that no
    /// proposal of this attempt lands after the next attempt read the journal.
    async fn settle(&self, pending: &mut Pending) -> Result<(), Next> {
        let mut first_error = None;
        while let Some((is_append, outcome)) = pending.pop_front() {
            let result = match checked(outcome.await) {
                Ok(Response::Invocation(InvocationOutcome::Appended { .. })) => Ok(()),
                Ok(Response::Invocation(InvocationOutcome::StaleAppend { .. })) => Err(Next::Replay),
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

    /// Runs one attempt; returns how it ended and the journal length it knew.
    pub(super) async fn drive(
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
        let mut produced =
            params.journal.iter().filter(|f| journal_position::is_produced(f.header.code)).count() as u32;
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
                    if let Err(next) = self.append(&mut pending, &mut pin, id, &frames, &mut produced).await {
                        break next;
                    }
                }
                AttemptEvent::ProposeRunCompletion { notification, completion_id, .. } => {
                    runs.insert(completion_id);
                    let run_result = std::slice::from_ref(&notification);
                    if let Err(next) = self.append(&mut pending, &mut pin, id, run_result, &mut produced).await {
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
        // The attempt is over either way: close its input (the request
        // body), so that an SDK still waiting for an answer (a step whose
        // result's commit timed out) suspends instead of waiting for its
        // inactivity timeout, and wait for it to end, so that the next
        // attempt never runs beside it. (Aborting the task instead resets
        // the HTTP/2 stream of every attempt, which cost a third of the
        // throughput at 16 connections.)
        events.close();
        drop(inputs);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
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
