//! Test plumbing: serialising the tests of one binary, the overall test
//! deadline ([`run_test`]) and bounded polling ([`poll_until`]).

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio::time::Instant;

#[cfg(doc)]
use crate::Cluster;
use crate::limits::POLL_INTERVAL;

/// Serialises the tests of one test binary: each test starts up to three
/// RocksDB-backed processes and the machines have two cores, so tests running
/// side by side would only make each other's timing unpredictable.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Overall deadline of one test: `KEEL_E2E_DEADLINE_SECS`, default 120 s.
pub fn test_deadline() -> Duration {
    let secs = std::env::var("KEEL_E2E_DEADLINE_SECS").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(120);
    Duration::from_secs(secs)
}

/// Runs one test body: waits for the other tests of this binary to finish,
/// then runs `body` under [`test_deadline`] and panics (failing the test) if
/// it returns an error or runs out of time. Any [`Cluster`] inside `body` is
/// dropped before the panic and so prints its nodes' logs.
pub async fn run_test(name: &str, body: impl Future<Output = Result<()>>) {
    let _serial = SERIAL.lock().await;
    let deadline = test_deadline();
    let started = Instant::now();
    match tokio::time::timeout(deadline, body).await {
        Ok(Ok(())) => eprintln!("[{name}] passed in {:.1?}", started.elapsed()),
        Ok(Err(e)) => panic!("[{name}] failed after {:.1?}: {e:?}", started.elapsed()),
        Err(_) => panic!("[{name}] exceeded its overall deadline of {deadline:?}"),
    }
}

/// Retries `f` every [`POLL_INTERVAL`] until it returns `Ok(Some(v))`, then
/// returns `v`.
///
/// `Ok(None)` means "not yet"; `Err(e)` also means "not yet" but is
/// remembered, so a closure should return a descriptive error for the
/// condition it is still missing (e.g. "node 2 sees no leader for partition
/// 3"). When `timeout` passes the poll fails with `what` and the last error.
/// Each call of `f` is itself bounded by the remaining time.
pub async fn poll_until<T>(timeout: Duration, what: &str, mut f: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_error: Option<anyhow::Error> = None;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match tokio::time::timeout_at(deadline, f()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                last_error = Some(anyhow!("the last attempt was still running at the deadline"));
                break;
            }
        }
        if Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let last = match last_error {
        Some(e) => format!("{e:#}"),
        None => "none (the condition was simply never met)".to_string(),
    };
    bail!("timed out after {:.1?} ({attempts} attempts) waiting for {what}; last error: {last}", started.elapsed())
}
