//! Where the leader runtime reads "now".
//!
//! The partition state machine never reads a clock: time enters the log
//! through the commands the leader proposes (`completed_at_ms`, a timer's
//! fire time, a record's `created_at_ms`). The leader reads it here, so a
//! test can run a whole cluster on tokio's paused clock and move time by
//! hours in microseconds, the same way on every run.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in ms since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock (production).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// Wall-clock time that follows tokio's clock from a fixed starting point:
/// under `tokio::time::pause` it advances only when the test's time does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `epoch_ms` now and moves with tokio's time.
    pub fn starting_at(epoch_ms: u64) -> Self {
        TokioClock { epoch_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms.saturating_add(self.start.elapsed().as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_with_paused_time() {
        let clock = TokioClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms(), 1_000 + 3_600_000);
    }
}
