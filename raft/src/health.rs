//! What is wrong with this node, if anything: the faults that stop it and
//! the partitions that have stopped.
//!
//! Two kinds of failure are handled differently, because they mean
//! different things:
//!
//! - **The node's storage failed** (a write or WAL sync refused: disk full,
//!   I/O error; or a Raft core died). Nothing this process holds in memory
//!   can be trusted to reach the disk any more, so the node stops at once,
//!   as databases do (crash-only): its supervisor restarts it, its peers
//!   elect new leaders meanwhile, and the restart recovers from what is
//!   durable. [`Health::stop_node`] records the reason and wakes whoever
//!   waits in [`Health::node_stopping`] (the binary, which exits).
//! - **A partition's apply failed**: its state machine met a command it
//!   cannot apply to the stored state. Apply is deterministic, so every
//!   replica stops at the same entry; stopping the whole node would only
//!   take its healthy partitions down with it. The partition stays
//!   stopped, with the entry and the error in the log, in `/cluster` and in
//!   `/health`, until an operator looks.
//!
//! A panic in a task the node cannot do without (the WAL syncer, a
//! partition's leader supervisor) stops the node too: a silently dead loop
//! would leave callers waiting forever.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// The node's health, shared by its database, state machines and servers.
pub struct Health {
    data_dir: PathBuf,
    stop: watch::Sender<Option<String>>,
    failed_groups: Mutex<BTreeMap<u32, String>>,
    /// Whether `failed_groups` holds anything: every proposal and routed
    /// request asks about its partition, and almost always none failed,
    /// so the answer should not take the node-wide lock.
    any_failed: AtomicBool,
}

impl Health {
    /// A healthy node whose database lives in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Health {
            data_dir: data_dir.to_owned(),
            stop: watch::channel(None).0,
            failed_groups: Mutex::default(),
            any_failed: AtomicBool::new(false),
        }
    }

    /// Records that the node must stop because `what` failed with `error`,
    /// and logs it with the data directory. Only the first reason is kept
    /// (later failures usually follow from it).
    pub fn stop_node(&self, what: &str, error: &dyn Display) {
        let reason = format!("{what} failed: {error} (data directory {})", self.data_dir.display());
        let first = self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason.clone());
            true
        });
        if first {
            tracing::error!("{reason}; stopping the node (restart it once the cause is fixed)");
        }
    }

    /// Waits until the node must stop, and says why.
    pub async fn node_stopping(&self) -> String {
        let mut rx = self.stop.subscribe();
        // The sender lives in `self`, which outlives this borrow, so the
        // wait cannot fail.
        let reason = rx.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
        reason.unwrap_or_default()
    }

    /// Records that partition `group` stopped applying, with why.
    pub fn group_failed(&self, group: u32, reason: String) {
        tracing::error!(partition = group, "partition stopped: {reason}");
        self.groups().entry(group).or_insert(reason);
        self.any_failed.store(true, Ordering::Release);
    }

    /// Why partition `group` stopped, if it did.
    pub fn group_failure(&self, group: u32) -> Option<String> {
        if !self.any_failed.load(Ordering::Acquire) {
            return None;
        }
        self.groups().get(&group).cloned()
    }

    /// "partition N stopped: why", if partition `group` stopped: what its
    /// requests are refused with.
    pub fn partition_stopped(&self, group: u32) -> Option<String> {
        self.group_failure(group).map(|reason| stopped(group, &reason))
    }

    /// Everything wrong with this node, one line each; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let stop = self.stop.borrow().iter().map(|r| format!("node stopping: {r}")).collect::<Vec<_>>();
        let groups = self.groups().iter().map(|(g, r)| stopped(*g, r)).collect::<Vec<_>>();
        stop.into_iter().chain(groups).collect()
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, String>> {
        self.failed_groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a caught panic said (its `&str` or `String` payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_string(),
    }
}

fn stopped(group: u32, reason: &str) -> String {
    format!("partition {group} stopped: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_stop_reason_wins_and_wakes_the_waiter() {
        let health = std::sync::Arc::new(Health::new(Path::new("/data")));
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.node_stopping().await }
        });
        assert!(health.problems().is_empty());
        health.stop_node("syncing the WAL", &"No space left on device");
        health.stop_node("writing the log", &"later error");
        let reason = waiter.await.unwrap();
        assert_eq!(reason, "syncing the WAL failed: No space left on device (data directory /data)");
        assert_eq!(health.problems(), vec![format!("node stopping: {reason}")]);
    }

    #[test]
    fn a_failed_group_is_reported_with_its_first_reason() {
        let health = Health::new(Path::new("/data"));
        health.group_failed(3, "entry 7: corrupt".into());
        health.group_failed(3, "entry 8: corrupt".into());
        assert_eq!(health.group_failure(3).as_deref(), Some("entry 7: corrupt"));
        assert_eq!(health.group_failure(2), None);
        assert_eq!(health.problems(), vec!["partition 3 stopped: entry 7: corrupt".to_string()]);
    }
}
