//! Timeouts and other limits shared by the whole harness.

use std::time::Duration;

#[cfg(doc)]
use crate::poll_until;

/// How long a node may take from spawn until `/health` and
/// `/restate/health` both answer 200.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a cluster may take to elect (or re-elect) leaders everywhere.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(45);
/// Client-side timeout of every single HTTP request. A request that gets no
/// answer within it counts as a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one logical write (including retries on 503 / transport errors)
/// may take before the test fails.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit after `SIGTERM`, or an invocation that
/// is expected to fail may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts of [`poll_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(75);
/// Lines of each log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 80;
