//! The node's slots for invocation attempts in flight, and each
//! deployment's share of them.
//!
//! An attempt holds two slots while it runs: one of the node's, which
//! bound the work the node takes on at once over all its partitions
//! (`--max-concurrent-invocations`), and one of its deployment's, which
//! bound how much of that one deployment may take
//! (`--max-concurrent-invocations-per-deployment`). Without the second, an
//! endpoint that accepts requests and never answers collects every node
//! slot: each of its attempts holds one until the attempt's inactivity and
//! abort timeouts end it (up to 11 minutes by default), its retries queue for
//! the next free slots, and calls to healthy deployments wait behind them.
//!
//! An attempt takes its deployment's slot first and the node's second, so
//! an attempt waiting for a slot of its deployment holds nothing: the
//! attempts queued behind a hung deployment keep no node slot from anyone
//! else. Everyone takes the two in that order (nobody holds a node slot
//! while waiting for a deployment's), so they cannot deadlock, and both
//! semaphores hand out slots first come first served, so a waiting attempt
//! is never overtaken forever.
//!
//! Deployments come and go with the catalog. A deployment's semaphore
//! exists only while an attempt holds or waits for one of its slots (every
//! holder and waiter keeps it alive); the map keeps weak handles and
//! forgets the dead ones whenever it takes in a deployment, so it never
//! holds more deployments than were busy at one time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default share of one deployment: half the node's slots (rounded
/// up), so one deployment that stops answering leaves the other half to
/// the rest. With a single slot nothing can be kept back, so that slot
/// is every deployment's.
pub fn default_per_deployment(node: usize) -> usize {
    node.div_ceil(2)
}

/// The slots of one node, shared by the leaders of all its partitions.
pub struct Slots {
    node: Arc<Semaphore>,
    per_deployment: usize,
    /// The semaphore of every deployment with an attempt holding or waiting
    /// for one of its slots (and of some that had one since the last sweep).
    deployments: Mutex<HashMap<String, Weak<Semaphore>>>,
}

/// The two slots of one attempt in flight, released when dropped.
pub struct Slot {
    _deployment: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

impl Slots {
    /// `node` slots in all, at most `per_deployment` of them for attempts of
    /// one deployment (a share at or above `node` lets one deployment take
    /// every slot). Both are at least 1.
    pub fn new(node: usize, per_deployment: usize) -> Self {
        Slots { node: Arc::new(Semaphore::new(node)), per_deployment, deployments: Mutex::new(HashMap::new()) }
    }

    /// Waits for a slot of `deployment` (by id), then for one of the node's.
    /// Cancelling the wait gives back whatever was taken.
    pub async fn acquire(&self, deployment: &str) -> Slot {
        // Both semaphores are private to `Slots` and never closed.
        let deployment = self.deployment(deployment).acquire_owned().await.expect("slots are never closed");
        let node = self.node.clone().acquire_owned().await.expect("slots are never closed");
        Slot { _deployment: deployment, _node: node }
    }

    /// The semaphore of `deployment`, made anew if no attempt holds or waits
    /// for one of its slots.
    fn deployment(&self, deployment: &str) -> Arc<Semaphore> {
        let mut deployments = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(semaphore) = deployments.get(deployment).and_then(Weak::upgrade) {
            return semaphore;
        }
        deployments.retain(|_, semaphore| semaphore.strong_count() > 0);
        let semaphore = Arc::new(Semaphore::new(self.per_deployment));
        deployments.insert(deployment.to_string(), Arc::downgrade(&semaphore));
        semaphore
    }

    /// Deployments the map holds a handle of, dead or alive.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.deployments.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::pin::pin;

    #[tokio::test]
    async fn a_deployment_takes_at_most_its_share_and_its_waiters_hold_no_node_slot() {
        let slots = Slots::new(4, 2);
        let hung = [slots.acquire("hung").await, slots.acquire("hung").await];
        let mut third = pin!(slots.acquire("hung"));
        assert!(futures::poll!(&mut third).is_pending(), "a third slot of a deployment with a share of two");
        // The waiting attempt holds none of the two node slots left.
        let a = slots.acquire("a").now_or_never().expect("a node slot");
        let _a = slots.acquire("a").now_or_never().expect("the last node slot");
        let mut b = pin!(slots.acquire("b"));
        assert!(futures::poll!(&mut b).is_pending(), "a fifth attempt on a node of four slots");
        drop(a);
        assert!(futures::poll!(&mut b).is_ready(), "the node slot given back goes to the waiting deployment");
        let [first, _second] = hung;
        drop(first);
        assert!(futures::poll!(&mut third).is_ready(), "a slot of its deployment given back");
    }

    #[tokio::test]
    async fn a_deployment_is_forgotten_once_nobody_holds_or_waits_for_its_slots() {
        let slots = Slots::new(4, 1);
        drop(slots.acquire("gone").await);
        let held = slots.acquire("b").await;
        assert_eq!(slots.tracked(), 1, "the idle deployment is forgotten when another one comes");
        // A wait given up (its run loop aborted) neither keeps a slot nor the semaphore.
        let mut waiting = Box::pin(slots.acquire("b"));
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(waiting);
        drop(held);
        assert!(slots.acquire("b").now_or_never().is_some(), "both slots of b are free again");
        let _c = slots.acquire("c").await;
        assert_eq!(slots.tracked(), 1, "only c has slots taken");
    }

    #[test]
    fn the_default_share_is_half_the_node_rounded_up() {
        let shares: Vec<usize> = [1, 2, 3, 4, 1000].into_iter().map(default_per_deployment).collect();
        assert_eq!(shares, [1, 1, 2, 2, 500]);
    }
}
