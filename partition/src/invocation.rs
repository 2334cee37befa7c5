//! The lifecycle of invocations inside their partition: creation, the
//! per-key lock and inbox of virtual objects and workflows, the journal, and
//! completion. Pure state transitions; the leader's invoker (I/O) reacts to
//! the effects and reports back through new commands.
//!
//! Journal entries are the raw protocol frames (header and payload) as the
//! SDK sent them or as keel created them, so a later attempt replays them
//! byte for byte. Entry 0 is always the `InputCommand`.

use crate::codec::{decode, encode};
use crate::keys;
use crate::store::{StateTxn, StateView};
use keel_protocol::Message;
use serde::{Deserialize, Serialize};

mod intervene;
mod suspend;
pub use intervene::{Intervention, ResumeDeployment, intervene, resume};
pub use suspend::{awaited_key, suspend};

/// Raw invocation id (the 24 bytes of `inv_…`: partition key and uuid).
pub type InvocationKey = [u8; 24];

/// How a handler takes part in its key's concurrency control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandlerKind {
    /// A plain service handler: no key, no lock.
    Service,
    /// A virtual object's exclusive handler: one at a time per key.
    Exclusive,
    /// A shared handler (objects and workflows): concurrent, takes no lock.
    Shared,
    /// A workflow's run handler: holds the key's lock while it runs.
    Workflow,
}

impl HandlerKind {
    /// Whether invocations of this kind hold their key's lock.
    pub fn locks(self) -> bool {
        matches!(self, HandlerKind::Exclusive | HandlerKind::Workflow)
    }
}

/// The concurrency kind of `handler` of `service` per its manifest.
pub fn handler_kind(
    service: &keel_protocol::manifest::Service,
    handler: &keel_protocol::manifest::Handler,
) -> HandlerKind {
    use keel_protocol::manifest::{HandlerType, ServiceType};
    match (service.ty, handler.effective_ty(service.ty)) {
        (ServiceType::Service, _) => HandlerKind::Service,
        (_, Some(HandlerType::Shared)) => HandlerKind::Shared,
        (_, Some(HandlerType::Workflow)) => HandlerKind::Workflow,
        _ => HandlerKind::Exclusive,
    }
}

/// What is invoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Service name.
    pub service: String,
    /// Handler name.
    pub handler: String,
    /// Object or workflow key; `None` for plain services.
    pub key: Option<String>,
    /// Concurrency kind of the handler.
    pub kind: HandlerKind,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationResult {
    /// The handler's output bytes.
    Success(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A terminal failure.
    Failure {
        /// HTTP-like error code (500 by default, 409 for cancel/kill).
        code: u16,
        /// The message.
        message: String,
    },
}

/// Where an invocation is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// A delayed invocation, stored and waiting for its start timer.
    Scheduled {
        /// When it starts (ms since the Unix epoch).
        fire_at_ms: u64,
    },
    /// Waiting in its key's inbox for the lock.
    Inboxed {
        /// Position in the inbox.
        seq: u64,
    },
    /// Running (an attempt is or will be under way on the leader).
    Invoked,
    /// Waiting for completions; no attempt runs.
    Suspended {
        /// Completion/signal ids it waits for.
        awaiting: Vec<u32>,
    },
    /// Finished.
    Completed(InvocationResult),
    /// Stopped until an operator resumes it: its retries were exhausted
    /// under `on_max_attempts = Pause`, its SDK asked for it (`ErrorMessage`
    /// with behavior PAUSE), or an operator paused it. Notifications that
    /// arrive meanwhile are journaled; no attempt runs.
    Paused,
}

/// The stored record of an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// What is invoked.
    pub target: Target,
    /// The deployment it is pinned to once it first runs (`None` until then:
    /// the leader picks the latest revision's deployment at first attempt).
    pub deployment_id: Option<String>,
    /// Creation time (ms since the Unix epoch), stamped by the proposer.
    pub created_at_ms: u64,
    /// Number of journal entries.
    pub journal_len: u32,
    /// Life-cycle status.
    pub status: Status,
    /// The invocation waiting for this one's result (a request-response
    /// call from another handler), if any.
    pub caller: Option<Caller>,
    /// Completion ids already delivered from other partitions (call
    /// results), so a re-delivered message is journaled only once.
    pub delivered: Vec<u32>,
    /// This invocation's pending timers (fire time, completion id), so they
    /// can be removed without scanning every timer of the partition.
    pub timers: Vec<(u64, u32)>,
    /// How long the record (with the result) is kept once completed, in ms:
    /// stamped by the proposer of the `Invoke` from the catalog
    /// ([`crate::idempotency::retention_ms`]).
    pub retention_ms: u64,
    /// Invocations waiting for this one's result without having started it
    /// ([`crate::attach`]); answered when it completes. Kept in the record,
    /// not beside it, so that completing an invocation nobody attached to
    /// reads nothing more.
    pub attached: Vec<crate::attach::Attached>,
}

/// Who waits for an invocation's result, and under which completion id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The calling invocation.
    pub id: InvocationKey,
    /// The `result_completion_id` of its `CallCommand`.
    pub completion_id: u32,
}

/// Outcome of an invocation command (part of [`crate::Response`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationOutcome {
    /// Created and running.
    Invoked,
    /// Created and queued behind the key's lock.
    Inboxed,
    /// Created; it starts when its start timer fires (a delayed send).
    Scheduled,
    /// An invocation with this id exists already (deduplicated); its status.
    Exists(Status),
    /// Entries appended; the journal's new length.
    Appended {
        /// New journal length.
        journal_len: u32,
    },
    /// The invocation is suspended.
    Suspended,
    /// The invocation completed.
    Completed,
    /// No such invocation.
    NotFound,
    /// The invocation is not running, so the command does not apply.
    NotRunning(Status),
    /// The invocation was paused.
    Paused,
    /// The invocation was resumed: a new attempt starts.
    Resumed,
}

/// Side effects of invocation commands, for the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationEffect {
    /// Start (or restart) an attempt of this invocation.
    Invoke(InvocationKey),
    /// A notification was journaled for a running invocation: deliver it
    /// to the attempt in flight (the raw frame).
    Notify(InvocationKey, Vec<u8>),
    /// A durable timer was registered; fire it at this time (ms since the
    /// Unix epoch).
    TimerRegistered {
        /// When.
        fire_at_ms: u64,
        /// For which invocation.
        id: InvocationKey,
        /// Which completion it produces.
        completion_id: u32,
    },
    /// The invocation completed: answer whoever waits for it.
    Completed(InvocationKey, InvocationResult),
    /// A message was put in the outbox under this sequence number: ship it.
    Outbox(u64, crate::outbox::OutboxMessage),
    /// The invocation may no longer run (killed, paused): end its attempt in
    /// flight, if any, without waiting for its next proposal to be refused.
    Stop(InvocationKey),
}

/// Reads an invocation record.
pub fn load(view: &impl StateView, id: &InvocationKey) -> Result<Option<InvocationRecord>, String> {
    view.get(&keys::invocation_key(id)).map(|bytes| decode(&bytes)).transpose()
}

/// Reads an invocation's journal, in order.
pub fn journal(view: &impl StateView, id: &InvocationKey) -> Vec<Vec<u8>> {
    view.scan_prefix(&keys::journal_prefix(id)).into_iter().map(|(_, v)| v).collect()
}

/// Reads the journal of `record`, whose length it knows: a short one (as
/// most are when an attempt starts) with point reads, which cost less than
/// setting up a scan.
pub fn journal_of(view: &impl StateView, id: &InvocationKey, record: &InvocationRecord) -> Vec<Vec<u8>> {
    if record.journal_len > 8 {
        return journal(view, id);
    }
    (0..record.journal_len).map_while(|index| view.get(&keys::journal_key(id, index))).collect()
}

/// Ids of all invocations in `Invoked` state (a new leader resumes them),
/// from the running index.
pub fn running(view: &impl StateView) -> Vec<InvocationKey> {
    view.scan_prefix(&[keys::KIND_RUNNING]).into_iter().filter_map(|(k, _)| k.get(1..)?.try_into().ok()).collect()
}

/// Stores `record`, keeping the running index in step with its status (the
/// index entry is written only when that changes, not on every append).
pub(crate) fn store(txn: &mut impl StateTxn, id: &InvocationKey, record: &InvocationRecord) {
    txn.put(keys::invocation_key(id), encode(record));
    let index = keys::running_key(id);
    match (record.status == Status::Invoked, txn.get(&index).is_some()) {
        (true, false) => txn.put(index, Vec::new()),
        (false, true) => txn.delete(index),
        _ => {}
    }
}

/// Creates an invocation whose journal starts with `input` (the raw
/// `InputCommand` frame). A second `invoke` with the same id changes
/// nothing: ids are derived from idempotency keys and workflow ids, so a
/// repeat is the same request. `seq` orders the inbox (the log index). A
/// record proposed as [`Status::Scheduled`] waits for a durable start timer
/// (a delayed send); any other starts now.
pub fn invoke(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    record: InvocationRecord,
    input: &[u8],
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    if let Some(existing) = load(txn, id)? {
        let effects = match &record.caller {
            // A call that finds its target created already, by someone else.
            Some(caller) if existing.caller.as_ref() != Some(caller) => {
                duplicate_call(txn, id, &existing, caller, seq)?
            }
            // A repeated request, or the same call shipped again.
            _ => Vec::new(),
        };
        return Ok((InvocationOutcome::Exists(existing.status), effects));
    }
    txn.put(keys::journal_key(id, 0), input.to_vec());
    let mut record = InvocationRecord { journal_len: 1, attached: Vec::new(), ..record };
    if let Status::Scheduled { fire_at_ms } = record.status {
        txn.put(keys::timer_key(fire_at_ms, id, START_TIMER), Vec::new());
        record.timers.push((fire_at_ms, START_TIMER));
        store(txn, id, &record);
        let effect = InvocationEffect::TimerRegistered { fire_at_ms, id: *id, completion_id: START_TIMER };
        return Ok((InvocationOutcome::Scheduled, vec![effect]));
    }
    admit(txn, id, record, seq)
}

/// A workflow's run runs once per workflow id: a second call is refused
/// (409, as the ingress does). Any other call whose id exists already is a
/// repeated idempotent request: it waits for the first one's result.
fn duplicate_call(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    existing: &InvocationRecord,
    caller: &Caller,
    seq: u64,
) -> Result<Vec<InvocationEffect>, String> {
    use crate::attach::{Reply, answer, attach};
    if existing.target.kind == HandlerKind::Workflow {
        let refused =
            InvocationResult::Failure { code: 409, message: "the workflow method was already invoked".into() };
        return Ok(vec![crate::outbox::push(txn, outbox_seq(seq, 0), answer(caller, Reply::Call, Some(&refused))?)]);
    }
    Ok(attach(txn, id, caller, Reply::Call, seq)?.1)
}

/// Starts a new invocation, or queues it in its key's inbox if an exclusive
/// or workflow-run handler must wait for the key's lock.
fn admit(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    mut record: InvocationRecord,
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let locked_by_other = match (&record.target.key, record.target.kind.locks()) {
        (Some(key), true) => {
            let lock = keys::lock_key(&record.target.service, key);
            if txn.get(&lock).is_some() {
                true
            } else {
                txn.put(lock, id.to_vec());
                false
            }
        }
        _ => false,
    };
    if locked_by_other {
        let key = record.target.key.as_deref().unwrap_or_default();
        txn.put(keys::inbox_key(&record.target.service, key, seq), id.to_vec());
        record.status = Status::Inboxed { seq };
        store(txn, id, &record);
        return Ok((InvocationOutcome::Inboxed, Vec::new()));
    }
    record.status = Status::Invoked;
    store(txn, id, &record);
    Ok((InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(*id)]))
}

/// Appends journal entries reported by a running attempt (or completions
/// delivered to it). Only a running or suspended invocation has a journal
/// that grows.
pub fn append(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    entries: &[Vec<u8>],
    workflow_runs: &[u32],
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    if !matches!(record.status, Status::Invoked | Status::Suspended { .. }) {
        return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
    }
    let mut effects = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut follow_ups = Vec::new();
        match decode_entry(entry) {
            Some(Message::SleepCommand(sleep)) => {
                let (fire_at_ms, completion_id) = (sleep.wake_up_time, sleep.result_completion_id);
                txn.put(keys::timer_key(fire_at_ms, id, completion_id), Vec::new());
                record.timers.push((fire_at_ms, completion_id));
                effects.push(InvocationEffect::TimerRegistered { fire_at_ms, id: *id, completion_id });
            }
            Some(command) => {
                let workflow_run = workflow_runs.contains(&(i as u32));
                if let Some(outgoing) = crate::outbox::on_command(id, &command, workflow_run)? {
                    if let Some(message) = outgoing.message {
                        effects.push(crate::outbox::push(txn, outbox_seq(seq, i), message));
                    }
                    follow_ups.extend(outgoing.follow_up);
                } else if let Some(key) = &record.target.key {
                    match crate::promise::on_command(txn, id, &record.target.service, key, &command)? {
                        Some(handled) => {
                            follow_ups = handled.follow_ups;
                            effects.extend(handled.effects);
                        }
                        None => apply_state_command(txn, &record.target.service, key, command),
                    }
                }
            }
            None => {}
        }
        txn.put(keys::journal_key(id, record.journal_len), entry.clone());
        record.journal_len += 1;
        // Answers keel has at once (a call's new invocation id, a resolved
        // promise) are journaled right after the command and sent live.
        for notification in follow_ups {
            txn.put(keys::journal_key(id, record.journal_len), notification.clone());
            record.journal_len += 1;
            effects.push(InvocationEffect::Notify(*id, notification));
        }
    }
    let journal_len = record.journal_len;
    store(txn, id, &record);
    Ok((InvocationOutcome::Appended { journal_len }, effects))
}

/// Outbox sequence number of the `i`-th entry of a command with sequence
/// `seq` (commands carry at most 1024 entries' worth of messages each).
pub(crate) fn outbox_seq(seq: u64, i: usize) -> u64 {
    (seq << 10) | (i as u64 & 0x3ff)
}

/// Journals a notification (a completion produced by keel, e.g. a fired
/// timer) and wakes the invocation: a suspended one is invoked again (its
/// next attempt replays the notification), a running one gets it live.
pub fn notify(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    notification: &[u8],
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    let effect = match record.status {
        Status::Invoked => Some(InvocationEffect::Notify(*id, notification.to_vec())),
        // Any new notification may be what the handler waits for; if not,
        // the SDK simply suspends again.
        Status::Suspended { .. } => Some(InvocationEffect::Invoke(*id)),
        // Journaled for the attempt that follows the resume; wakes nothing.
        Status::Paused => None,
        _ => return Ok((InvocationOutcome::NotRunning(record.status), Vec::new())),
    };
    txn.put(keys::journal_key(id, record.journal_len), notification.to_vec());
    record.journal_len += 1;
    if effect.is_some() {
        record.status = Status::Invoked;
    }
    let journal_len = record.journal_len;
    store(txn, id, &record);
    Ok((InvocationOutcome::Appended { journal_len }, effect.into_iter().collect()))
}

/// The completion id of a timer that purges a completed invocation's record
/// (no journal completion id is ever this large).
pub const PURGE_TIMER: u32 = u32::MAX;

/// The completion id of the timer that starts a scheduled (delayed) invocation.
pub const START_TIMER: u32 = u32::MAX - 1;

/// Fires a timer: a sleep timer journals the sleep's completion; a start
/// timer starts a scheduled invocation; a purge timer removes the completed
/// invocation's record.
pub fn fire_timer(
    txn: &mut impl StateTxn,
    fire_at_ms: u64,
    id: &InvocationKey,
    completion_id: u32,
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    let key = keys::timer_key(fire_at_ms, id, completion_id);
    if txn.get(&key).is_none() {
        // Fired already (a repeated proposal after a leader change).
        return Ok((InvocationOutcome::NotFound, Vec::new()));
    }
    txn.delete(key);
    if completion_id == PURGE_TIMER {
        crate::idempotency::purge(txn, id)?;
        return Ok((InvocationOutcome::Completed, Vec::new()));
    }
    if let Some(mut record) = load(txn, id)? {
        record.timers.retain(|t| *t != (fire_at_ms, completion_id));
        if completion_id == START_TIMER {
            if let Status::Scheduled { .. } = record.status {
                return admit(txn, id, record, seq);
            }
            store(txn, id, &record);
            return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
        }
        store(txn, id, &record);
    }
    let notification = Message::SleepCompletionNotification(keel_protocol::proto::SleepCompletionNotificationMessage {
        completion_id,
        void: Some(keel_protocol::proto::Void {}),
    });
    let frame = notification.to_frame(keel_protocol::Flags::NONE).map_err(|e| e.to_string())?;
    notify(txn, id, &frame.to_bytes())
}

/// The timers due in `[from_ms, to_ms)`, in firing order: (fire time,
/// invocation, completion id). The leader loads them a time window at a time.
pub fn timers(view: &impl StateView, from_ms: u64, to_ms: u64) -> Vec<(u64, InvocationKey, u32)> {
    view.scan_range(&keys::timers_from(from_ms), &keys::timers_from(to_ms))
        .into_iter()
        .filter_map(|(k, _)| keys::parse_timer_key(&k))
        .collect()
}

/// Decodes a stored journal entry (header and payload); `None` if it does not decode.
pub(crate) fn decode_entry(entry: &[u8]) -> Option<Message> {
    use keel_protocol::{HEADER_LEN, MessageHeader};
    let header = MessageHeader::decode(entry.get(..HEADER_LEN)?.try_into().ok()?);
    Message::decode_payload(header.code, bytes::Bytes::copy_from_slice(&entry[HEADER_LEN..])).ok()
}

/// Applies a journaled state command (set, clear, clear all) to the
/// object's state: the journal entry and the state change commit together.
/// Other commands change no state.
fn apply_state_command(txn: &mut impl StateTxn, service: &str, key: &str, command: Message) {
    let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    match command {
        Message::SetStateCommand(m) => {
            let value = m.value.map(|v| v.content.to_vec()).unwrap_or_default();
            txn.put(keys::state_key(service, key, &name(&m.key)), value);
        }
        Message::ClearStateCommand(m) => txn.delete(keys::state_key(service, key, &name(&m.key))),
        Message::ClearAllStateCommand(_) => {
            for (k, _) in txn.scan_prefix(&keys::state_prefix(service, key)) {
                txn.delete(k);
            }
        }
        _ => {}
    }
}

/// Pins a running invocation to the deployment its first attempt uses, so
/// later attempts (and new revisions of the service) do not move it.
pub fn pin_deployment(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    deployment_id: &str,
) -> Result<InvocationOutcome, String> {
    let Some(mut record) = load(txn, id)? else { return Ok(InvocationOutcome::NotFound) };
    if record.deployment_id.is_none() {
        record.deployment_id = Some(deployment_id.to_string());
        store(txn, id, &record);
    }
    Ok(InvocationOutcome::Invoked)
}

/// Completes an invocation: records the result, releases its key's lock
/// and starts the next invocation from the key's inbox. The record is
/// purged `retention_ms` after `completed_at_ms` (stamped by the proposer).
pub fn complete(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    result: &InvocationResult,
    completed_at_ms: u64,
    seq: u64,
) -> Result<(InvocationOutcome, Vec<InvocationEffect>), String> {
    Ok(finish(txn, id, result, completed_at_ms, seq)?.0)
}

/// [`complete`], also returning the first outbox slot of command `seq`
/// it left free.
pub(crate) fn finish(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    result: &InvocationResult,
    completed_at_ms: u64,
    seq: u64,
) -> Result<((InvocationOutcome, Vec<InvocationEffect>), usize), String> {
    let Some(mut record) = load(txn, id)? else { return Ok(((InvocationOutcome::NotFound, Vec::new()), 0)) };
    if let Status::Completed(_) = record.status {
        return Ok(((InvocationOutcome::NotRunning(record.status), Vec::new()), 0));
    }
    // The journal has served its purpose; the record (with the result) is
    // kept for its retention so that idempotent requests and workflow runs
    // are answered with it and that retried deliveries of the same
    // invocation id (a caller retrying on a new leader) are deduplicated.
    for index in 0..record.journal_len {
        txn.delete(keys::journal_key(id, index));
    }
    let purge_at_ms = completed_at_ms.saturating_add(record.retention_ms);
    for (fire_at_ms, completion_id) in record.timers.drain(..) {
        txn.delete(keys::timer_key(fire_at_ms, id, completion_id));
    }
    txn.put(keys::timer_key(purge_at_ms, id, PURGE_TIMER), Vec::new());
    record.timers.push((purge_at_ms, PURGE_TIMER));
    let mut effects = vec![
        InvocationEffect::Completed(*id, result.clone()),
        InvocationEffect::TimerRegistered { fire_at_ms: purge_at_ms, id: *id, completion_id: PURGE_TIMER },
    ];
    // Outbox slots of this command: the caller's answer, then the attached.
    if let Some(caller) = &record.caller {
        let answer = crate::attach::answer(caller, crate::attach::Reply::Call, Some(result))?;
        effects.push(crate::outbox::push(txn, outbox_seq(seq, 0), answer));
    }
    let mut next_slot = 1;
    for attached in std::mem::take(&mut record.attached) {
        let answer = crate::attach::answer(&attached.caller, attached.reply, Some(result))?;
        effects.push(crate::outbox::push(txn, outbox_seq(seq, next_slot), answer));
        next_slot += 1;
    }
    let was_inboxed = matches!(record.status, Status::Inboxed { .. });
    if let (Some(key), true) = (record.target.key.clone(), record.target.kind.locks()) {
        if let Status::Inboxed { seq } = record.status {
            // Completed (e.g. cancelled) while queued: just leave the inbox.
            txn.delete(keys::inbox_key(&record.target.service, &key, seq));
        }
        let lock = keys::lock_key(&record.target.service, &key);
        if !was_inboxed && txn.get(&lock).as_deref() == Some(id.as_slice()) {
            txn.delete(lock.clone());
            effects.extend(start_next(txn, &record.target.service, &key, &lock)?);
        }
    }
    record.status = Status::Completed(result.clone());
    store(txn, id, &record);
    Ok(((InvocationOutcome::Completed, effects), next_slot))
}

/// Hands the free lock of `service`/`key` to the first inboxed invocation.
fn start_next(txn: &mut impl StateTxn, service: &str, key: &str, lock: &[u8]) -> Result<Vec<InvocationEffect>, String> {
    let Some((inbox_entry, next)) = txn.scan_prefix(&keys::inbox_prefix(service, key)).into_iter().next() else {
        return Ok(Vec::new());
    };
    let next: InvocationKey =
        next.as_slice().try_into().map_err(|_| format!("inbox entry holds {} bytes, not an id", next.len()))?;
    txn.delete(inbox_entry);
    txn.put(lock.to_vec(), next.to_vec());
    let mut record = load(txn, &next)?.ok_or_else(|| "inboxed invocation has no record".to_string())?;
    record.status = Status::Invoked;
    store(txn, &next, &record);
    Ok(vec![InvocationEffect::Invoke(next)])
}

#[cfg(test)]
pub(crate) mod tests;
