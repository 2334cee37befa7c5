//! The leader's durable timers: sleeps and delayed starts, fired by
//! proposing `FireTimer`.
//!
//! Timers live in the partition's state, keyed by firing time. The leader
//! keeps only a window of them in memory — those due within
//! [`WINDOW_MS`] — and loads the next stretch from storage as time moves on.
//! Holding them all would not scale: a busy partition may hold millions of
//! sleeping invocations and delayed sends, and a new leader would have to
//! read them all before firing the first one. (Completed records expire
//! through an index of their own, without a timer each: [`crate::expiry`].)

use crate::backoff::Backoff;
use crate::partition::Partition;
use keel_partition::invocation::{self, InvocationKey};
use keel_partition::{Command, Envelope};
use keel_raft::messages::ProposeError;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How far ahead of now timers are held in memory.
pub const WINDOW_MS: u64 = 60_000;

/// One timer: (fire time in ms since the Unix epoch, invocation, completion id).
pub type Timer = (u64, InvocationKey, u32);

/// The timers of one partition due before `loaded_until`, in firing order.
#[derive(Default)]
pub struct Timers {
    due: BTreeSet<Timer>,
    /// Every stored timer due before this is in `due` (or fired); 0 until
    /// the leader's epoch is established and the first window is loaded.
    loaded_until: u64,
}

impl Timers {
    /// Loads the stored timers due up to `now + WINDOW_MS` that are not
    /// loaded yet (at the start of an epoch: every overdue one too). The
    /// scan runs off the async workers: at the start of an epoch it may
    /// cover many timers.
    pub async fn load(&mut self, partition: &Partition, now: u64) {
        let until = now.saturating_add(WINDOW_MS);
        if until <= self.loaded_until {
            return;
        }
        let from = self.loaded_until;
        self.due.extend(partition.group.read_blocking(move |view| invocation::timers(view, from, until)).await);
        self.loaded_until = until;
    }

    /// A timer just stored by an applied entry. One beyond the window stays
    /// in storage until the window reaches it; before the first load, all
    /// do (the load reads them).
    pub fn register(&mut self, timer: Timer) {
        if timer.0 < self.loaded_until {
            self.due.insert(timer);
        }
    }

    /// When the actor must wake up next: the first timer's time, or half a
    /// window before the loaded stretch ends (to load the next one).
    pub fn next_wake(&self) -> Option<u64> {
        if self.loaded_until == 0 {
            return None;
        }
        let reload = self.loaded_until - WINDOW_MS / 2;
        Some(self.due.first().map_or(reload, |(at, _, _)| (*at).min(reload)))
    }

    /// Loads the next stretch if due and proposes `FireTimer` for every due
    /// timer, each in a task of its own (with the actor's other tasks), so
    /// that timers due together are proposed together and the proposer packs
    /// them into few Raft entries.
    pub async fn fire_due(&mut self, partition: &Arc<Partition>, term: u64, tasks: &mut JoinSet<()>) {
        let now = partition.now_ms();
        if self.loaded_until > 0 && now + WINDOW_MS / 2 >= self.loaded_until {
            self.load(partition, now).await;
        }
        while let Some(&(fire_at_ms, id, completion_id)) = self.due.first() {
            if fire_at_ms > now {
                return;
            }
            self.due.pop_first();
            tasks.spawn(fire(partition.clone(), term, Command::FireTimer { fire_at_ms, id, completion_id }));
        }
    }
}

/// Proposes one `FireTimer` until it is applied or this leader is deposed
/// (the next leader reloads the timer; firing twice is a no-op).
async fn fire(partition: Arc<Partition>, term: u64, fire: Command) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match partition.propose(Envelope::fenced(term, fire.clone())).await {
            Ok(_) | Err(ProposeError::NotLeader { .. }) | Err(ProposeError::NoSuchGroup(_)) => return,
            Err(e) => {
                let delay = backoff.delay();
                tracing::warn!(partition = partition.id(), "firing a timer failed, retrying in {delay:?}: {e}");
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(at: u64) -> Timer {
        (at, [1; 24], 7)
    }

    #[test]
    fn registers_only_inside_the_loaded_window() {
        let mut t = Timers::default();
        // Before the first load nothing is held: the load reads storage.
        t.register(timer(5));
        assert!(t.due.is_empty());
        assert_eq!(t.next_wake(), None);
        t.loaded_until = 1_000 + WINDOW_MS;
        t.register(timer(1_500));
        t.register(timer(1_000 + WINDOW_MS));
        assert_eq!(t.due.iter().copied().collect::<Vec<_>>(), vec![timer(1_500)]);
        assert_eq!(t.next_wake(), Some(1_500));
        t.due.clear();
        assert_eq!(t.next_wake(), Some(1_000 + WINDOW_MS / 2), "wakes up to load the next stretch");
    }
}
