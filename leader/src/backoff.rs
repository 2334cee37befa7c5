//! A doubling pause between tries of work the leader keeps trying until it
//! succeeds or the leader is deposed: announcing itself, shipping an outbox
//! message, firing a timer, a barrier after a timed-out commit. Unlike a
//! handler's retry policy ([`crate::retry`]) it never gives up, since
//! giving up would leave the work to no one; the cap keeps a long outage
//! from turning into long waits once it ends.

use std::time::Duration;

/// The delays of one series of tries.
pub(crate) struct Backoff {
    delay: Duration,
    max: Duration,
}

impl Backoff {
    /// Delays starting at `first`, doubling up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff { delay: first, max }
    }

    /// What the next [`Self::wait`] sleeps.
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }

    /// The current delay, doubling it (up to the maximum) for next time:
    /// for a caller that schedules the pause itself.
    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(self.max);
        delay
    }

    /// Sleeps for the current delay, then doubles it (up to the maximum).
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn delays_double_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let mut slept = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            backoff.wait().await;
            slept.push(start.elapsed().as_millis());
        }
        assert_eq!(slept, [50, 100, 200, 300, 300]);
        assert_eq!(backoff.delay(), Duration::from_millis(300));
    }
}
