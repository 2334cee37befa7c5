//! The leader-side invoker: runs attempts of the partition's invocations
//! against their SDK endpoints (through `keel-invoker`) and makes every step
//! durable through Raft before acting on it.
//!
//! Here is the run loop of one invocation: at most one per invocation on
//! this leader, it runs attempts until the invocation completes, suspends
//! or pauses, and retries a failed attempt per the handler's retry policy
//! ([`crate::retry`]); the next attempt replays the stored journal.
//! `attempt.rs` prepares an attempt from the stored state and `drive.rs` runs
//! it, turning the SDK's events into log entries. Every proposal is fenced
//! with the leader's term, so a deposed leader's late proposals are no-ops.

use crate::backoff::Backoff;
use crate::lease::Lease;
use crate::panics::caught;
use crate::partition::Partition;
use crate::retry::{self, Decision, Failure, RetryPolicy};
use keel_invoker::AttemptInput;
use keel_partition::invocation::{Intervention, InvocationKey};
use keel_partition::{Command, Envelope, Response};
use keel_protocol::InvocationId;
use keel_raft::messages::ProposeError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

mod attempt;
mod drive;
mod frames;
use frames::decode_journal;

/// The invoker of one leader term.
pub struct Invoker {
    partition: Arc<Partition>,
    term: u64,
    /// Attempts start and go on only while it is held.
    lease: Lease,
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
#[derive(Debug)]
enum Next {
    /// Nothing more to do (completed, suspended, gone).
    Done,
    /// The attempt failed; the retry policy decides what follows.
    Retry(Failure),
    /// The attempt failed because a proposal's commit timed out. The entry
    /// may still commit in this term, so the next attempt waits until it
    /// has or cannot any more ([`Invoker::barrier`]); otherwise handled as
    /// [`Next::Retry`].
    InDoubt(Failure),
    /// The journal holds entries the attempt did not know of (its append
    /// was refused as stale): replay it in a new attempt at once. Not a
    /// failure of the handler.
    Replay,
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
    /// The invoker of `partition` for the leader term `term`, whose
    /// attempts run while `lease` is held.
    pub fn new(partition: Arc<Partition>, term: u64, lease: Lease) -> Self {
        Invoker { partition, term, lease, loops: Mutex::default(), live: Mutex::default() }
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
        let mut panics = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            if let Err(panic) = caught(self.run_attempts(&id, &wake)).await {
                // The attempt in flight went down with the loop; the next
                // one replays the stored journal, as after any failure.
                let delay = panics.next();
                tracing::error!(partition = self.partition.id(), invocation = %id_string(&id), "the invocation's run loop panicked: {panic}; running it again in {delay:?}");
                self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                tokio::time::sleep(delay).await;
                continue;
            }
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
        // Whether a proposal for this invocation timed out and may still commit.
        let mut in_doubt = false;
        let mut replays = 0;
        loop {
            if std::mem::take(&mut in_doubt)
                && let Err(next) = self.barrier(&id).await
            {
                tracing::debug!(partition = self.partition.id(), "invoker stops: {next:?}");
                return;
            }
            fail::fail_point!("run-loop-panics");
            if !self.lease.held() {
                tracing::info!(partition = self.partition.id(), invocation = %id_string(&id), "no word from a quorum within the election timeout: the next attempt waits until there is");
                self.lease.acquired().await;
            }
            let failure = match self.attempt(&id, &mut attempts).await {
                Next::Done => return,
                Next::Stop(reason) => {
                    tracing::debug!(partition = self.partition.id(), "invoker stops: {reason}");
                    return;
                }
                Next::Replay if replays < MAX_REPLAYS => {
                    tracing::info!(partition = self.partition.id(), invocation = %id_string(&id), "the journal holds entries the attempt did not know of; replaying it");
                    replays += 1;
                    continue;
                }
                Next::Replay => Failure::transient("the journal kept changing under the attempts"),
                Next::InDoubt(failure) => {
                    in_doubt = true;
                    failure
                }
                Next::Retry(failure) => failure,
            };
            replays = 0;
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
                        Err(next) => {
                            in_doubt |= matches!(next, Next::InDoubt(_));
                            attempts.policy.delay(n)
                        }
                    }
                }
                Decision::Fail(result) => {
                    match self.propose(Command::Complete { id, result, completed_at_ms: self.partition.now_ms() }).await
                    {
                        Ok(_) | Err(Next::Stop(_)) | Err(Next::Done) => return,
                        Err(next) => {
                            in_doubt |= matches!(next, Next::InDoubt(_));
                            attempts.policy.delay(n)
                        }
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

    /// Waits until every proposal made for `id` so far is applied here or
    /// can no longer commit, by proposing a barrier (an `AppendJournal`
    /// without entries) until one commits: Raft commits it only after
    /// every entry before it in the log. Until then no attempt starts, so
    /// a step whose result is in doubt does not run again; while quorum is
    /// lost, that is all this invocation does.
    async fn barrier(&self, id: &InvocationKey) -> Result<(), Next> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            let barrier = Command::AppendJournal { id: *id, at: 0, entries: Vec::new(), workflow_runs: Vec::new() };
            match self.propose(barrier).await {
                Ok(_) => return Ok(()),
                Err(Next::InDoubt(_)) => {}
                Err(next) => return Err(next),
            }
            backoff.wait().await;
        }
    }
}

/// Attempts in a row that may end in [`Next::Replay`] before a replay
/// counts as a failure (and backs off): only another append of the same
/// invocation makes one stale, so more than a few means a bug, and the
/// backoff keeps it from spinning.
const MAX_REPLAYS: u32 = 3;

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
        // A timed-out commit may still succeed; a refused admission did not
        // enter the log at all, but a barrier costs little, so both count.
        ProposeError::Unavailable(e) => Next::InDoubt(Failure::transient(e)),
        // The SDK sent an entry no log entry can hold; replaying would send
        // it again, so an operator has to decide (fix the handler, kill).
        e @ ProposeError::TooLarge { .. } => Next::Retry(Failure::too_large(e.to_string())),
    }
}

/// The invocation id as text, for logs.
fn id_string(id: &InvocationKey) -> String {
    InvocationId::from_bytes(id).map_or_else(|_| "<invalid id>".to_string(), |i| i.to_string())
}
