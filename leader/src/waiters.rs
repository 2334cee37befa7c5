//! Callers waiting on the leader for invocations of its partition, and
//! which invocations are parked right now.
//!
//! Only the leader answers waiters: it applies the completion and knows
//! what its invoker is doing. When leadership is lost every waiter is
//! dropped, so its caller sees the channel close and retries against the
//! new leader (where the invocation id deduplicates or attaches).

use keel_partition::invocation::{InvocationKey, InvocationResult};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_raft::messages::ProposeError;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

struct Waiter {
    tx: oneshot::Sender<Waited>,
    until_parked: bool,
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<InvocationKey, Vec<Waiter>>,
    /// Invocations that parked and have not run since (leader-local, not
    /// replicated: a new leader starts with none parked).
    parked: HashSet<InvocationKey>,
}

/// The waiters of one partition.
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<Inner>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers interest in the result of `id`; with `until_parked`, also
    /// in its parking. Register before reading the status, so that nothing
    /// that happens right after the read is missed.
    pub fn register(&self, id: InvocationKey, until_parked: bool) -> oneshot::Receiver<Waited> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiting.entry(id).or_default().push(Waiter { tx, until_parked });
        rx
    }

    /// Answers everyone waiting for `id` with its result.
    pub fn resolve(&self, id: &InvocationKey, result: &InvocationResult) {
        let waiting = {
            let mut inner = self.lock();
            inner.parked.remove(id);
            inner.waiting.remove(id)
        };
        for w in waiting.into_iter().flatten() {
            let _ = w.tx.send(Waited::Done(result.clone()));
        }
    }

    /// `id` parked: answers the waiters that asked to stop there.
    pub fn park(&self, id: &InvocationKey) {
        let released = {
            let mut inner = self.lock();
            inner.parked.insert(*id);
            match inner.waiting.get_mut(id) {
                None => Vec::new(),
                Some(list) => {
                    let (go, stay): (Vec<_>, Vec<_>) = list.drain(..).partition(|w| w.until_parked);
                    *list = stay;
                    if list.is_empty() {
                        inner.waiting.remove(id);
                    }
                    go
                }
            }
        };
        for w in released {
            let _ = w.tx.send(Waited::Pending);
        }
    }

    /// `id` runs again (a new attempt started).
    pub fn unpark(&self, id: &InvocationKey) {
        self.lock().parked.remove(id);
    }

    /// Whether `id` parked and has not run since.
    pub fn is_parked(&self, id: &InvocationKey) -> bool {
        self.lock().parked.contains(id)
    }

    /// Drops the waiters of `id` whose callers went away.
    pub fn abandon(&self, id: &InvocationKey) {
        let mut inner = self.lock();
        if let Some(list) = inner.waiting.get_mut(id) {
            list.retain(|w| !w.tx.is_closed());
            if list.is_empty() {
                inner.waiting.remove(id);
            }
        }
    }

    /// Drops every waiter and forgets what parked: leadership is gone.
    pub fn abandon_all(&self) {
        let mut inner = self.lock();
        inner.waiting.clear();
        inner.parked.clear();
    }
}

/// Waits on `rx` as `policy` allows. A closed channel means the leader
/// stepped down: the caller retries elsewhere.
pub async fn wait(rx: oneshot::Receiver<Waited>, policy: WaitPolicy) -> Result<Waited, ProposeError> {
    let gone = |_| ProposeError::NotLeader { leader: None };
    match policy.timeout_ms {
        None => rx.await.map_err(gone),
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), rx).await {
            Ok(r) => r.map_err(gone),
            Err(_) => Ok(Waited::Pending),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: InvocationKey = [7; 24];

    #[tokio::test]
    async fn parking_releases_only_those_who_asked() {
        let w = Waiters::default();
        let patient = w.register(ID, false);
        let handoff = w.register(ID, true);
        w.park(&ID);
        assert!(w.is_parked(&ID));
        assert_eq!(handoff.await.unwrap(), Waited::Pending);
        let result = InvocationResult::Success(b"1".to_vec());
        w.resolve(&ID, &result);
        assert_eq!(patient.await.unwrap(), Waited::Done(result));
        assert!(!w.is_parked(&ID));
    }

    #[tokio::test]
    async fn a_timeout_ends_the_wait_and_a_lost_leader_is_an_error() {
        let w = Waiters::default();
        let rx = w.register(ID, false);
        let policy = WaitPolicy { timeout_ms: Some(1), until_parked: false };
        assert_eq!(wait(rx, policy).await.unwrap(), Waited::Pending);
        w.abandon(&ID);
        let rx = w.register(ID, false);
        w.abandon_all();
        assert!(matches!(wait(rx, WaitPolicy::UNBOUNDED).await, Err(ProposeError::NotLeader { .. })));
    }
}
