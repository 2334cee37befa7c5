//! How a caller waits for an invocation's result, and what it got.
//!
//! A plain call waits until the invocation completes, however long that
//! takes (as Restate does). A caller that asked for a sync→async handoff
//! (`Prefer: wait=N`, `?timeout=`) waits at most that long, and stops early
//! once the invocation *parks*: it suspends, backs off before a retry,
//! pauses, or blocks on something outside itself (a timer, a signal, another
//! invocation). The invocation keeps running either way; only the waiting
//! ends, and the caller answers with a `Location` to attach to later.

use crate::invocation::InvocationResult;
use serde::{Deserialize, Serialize};

/// How long to wait for an invocation's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitPolicy {
    /// Stop waiting after this many milliseconds (`None`: until completion).
    pub timeout_ms: Option<u64>,
    /// Stop waiting as soon as the invocation parks.
    pub until_parked: bool,
}

impl WaitPolicy {
    /// Wait until the invocation completes.
    pub const UNBOUNDED: WaitPolicy = WaitPolicy { timeout_ms: None, until_parked: false };

    /// The same policy with `timeout_ms` lowered to at most `ms`.
    pub fn at_most(self, ms: u64) -> WaitPolicy {
        WaitPolicy { timeout_ms: Some(self.timeout_ms.map_or(ms, |t| t.min(ms))), ..self }
    }
}

/// The end of a wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Waited {
    /// The invocation completed with this result.
    Done(InvocationResult),
    /// The policy ended the wait first (timeout or parked); the invocation
    /// goes on.
    Pending,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_keeps_the_shorter_bound() {
        let p = WaitPolicy { timeout_ms: Some(500), until_parked: true };
        assert_eq!(p.at_most(100), WaitPolicy { timeout_ms: Some(100), until_parked: true });
        assert_eq!(p.at_most(1000), p);
        assert_eq!(WaitPolicy::UNBOUNDED.at_most(7).timeout_ms, Some(7));
    }
}
