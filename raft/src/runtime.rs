//! The async runtime openraft runs on: tokio, with a random number
//! generator that a test can seed.
//!
//! openraft draws each election timeout from its runtime's thread-local
//! generator. Production seeds it from the operating system, as openraft's
//! own `TokioRuntime` does; the in-process cluster harness seeds it from
//! the test's seed, so that on a single-threaded runtime with paused time a
//! seed replays the same elections, in the same order, every time.

use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand::{RngCore, SeedableRng, rngs::StdRng};
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

thread_local! {
    /// The state the next generator is derived from; `None` until first use
    /// (then from the OS) or until [`seed_thread_rng`].
    static NEXT_SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Seeds the generator openraft uses on this thread (a test's seed).
pub fn seed_thread_rng(seed: u64) {
    NEXT_SEED.with(|s| s.set(Some(seed)));
}

/// Steps this thread's seed (splitmix64) and returns a generator from it.
fn next_rng() -> StdRng {
    let seed = NEXT_SEED.with(|s| {
        let current = s.get().unwrap_or_else(|| rand::rngs::OsRng.next_u64());
        let next = current.wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(Some(next));
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    });
    StdRng::seed_from_u64(seed)
}

/// tokio, as openraft's [`TokioRuntime`], with a seedable generator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeelRuntime;

impl AsyncRuntime for KeelRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = StdRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        next_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_seed_replays_the_same_draws() {
        let draws = |seed| {
            seed_thread_rng(seed);
            (0..4).map(|_| KeelRuntime::thread_rng().gen_range(150..300u64)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }
}
