//! `keel-bench soak`: a mixed load against a running ingress (keel's or
//! Restate's) for a long time, to see what a short benchmark cannot: whether
//! throughput sags, latency drifts, memory or the data directory grow as
//! invocations, journals and idempotency records pile up.
//!
//! `workers` tasks each keep one request in flight on their own keep-alive
//! connection, as in `keel-bench http`. Worker `w` always sends the kind
//! `MIX[w % 4]`, so the default 16 workers are four of each:
//! * `noop`: `POST /Greeter/greet` (stateless);
//! * `counter`: `POST /Counter/k{i % 100}/add` (a virtual object over 100 keys);
//! * `workflow`: `POST /Steps/w{run}-{i}/run` (a fresh workflow id every time, three
//!   journaled steps);
//! * `idem-send`: `POST /Greeter/greet/send` with a fresh `idempotency-key` (each leaves
//!   an idempotency record behind and runs in the background).
//!
//! Every kind thus runs at the pace its own latency allows: a kind that slows
//! down takes a smaller share of the total, it does not stall the others.
//! `idem-send` is the exception: a send is answered once it is accepted, and
//! the handler it started runs later. Sent as fast as they are accepted, sends
//! build a backlog that no row shows directly and that starves the other
//! kinds (Restate served nothing else for eight minutes that way), so the
//! send workers keep to a fixed total rate (`send_rate`, 100/s by default),
//! as steady traffic would; 0 lifts the limit.
//!
//! Every `interval` the soak closes a window (see `window.rs`), samples the
//! server's RSS and data directory (`probe.rs`), prints a markdown row and
//! appends a CSV line (`row.rs`); `soak-chart` draws the CSVs (`chart.rs`).

pub mod chart;
mod probe;
pub mod row;
mod window;

use crate::http::{Scenario, call, check, run_id};
use anyhow::{Context, Result};
use row::Row;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use window::Window;

/// The kinds of request of the mixed load; worker `w` sends `MIX[w % MIX.len()]`.
pub const MIX: [Scenario; 4] = [Scenario::Noop, Scenario::Counter, Scenario::Workflow, Scenario::IdemSend];

/// After a failed request a worker waits this long, so that a server that is
/// down does not turn the workers into a busy loop on a shared machine.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

pub struct Settings {
    /// Ingress base URL.
    pub url_base: String,
    pub duration: Duration,
    /// Length of one row.
    pub interval: Duration,
    pub workers: usize,
    /// Sends per second over all `idem-send` workers; 0: as fast as accepted.
    pub send_rate: f64,
    /// The server process, for its RSS.
    pub pid: u32,
    /// The server's data directory, for its size.
    pub data_dir: PathBuf,
    /// Where to write the rows as CSV.
    pub csv: PathBuf,
}

pub async fn run(settings: Settings) -> Result<()> {
    let base = settings.url_base.trim_end_matches('/').to_string();
    let run = run_id();
    let client = reqwest::Client::new();
    for scenario in MIX {
        check(&client, &base, scenario, run).await?;
    }
    let mut csv =
        std::fs::File::create(&settings.csv).with_context(|| format!("creating {}", settings.csv.display()))?;
    writeln!(csv, "{}", Row::csv_header())?;
    println!("{}", Row::markdown_header());

    let window = Arc::new(Mutex::new(Window::default()));
    // Request numbers, shared by all workers so that workflow ids and
    // idempotency keys never repeat (`check` used 0).
    let counter = Arc::new(AtomicU64::new(1));
    let send_period = send_period(settings.workers, settings.send_rate);
    let mut workers = Vec::new();
    for w in 0..settings.workers {
        let kind = w % MIX.len();
        // One client per worker: one connection each, as independent callers.
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (base, window, counter) = (base.clone(), window.clone(), counter.clone());
        let mut pace = send_period.filter(|_| matches!(MIX[kind], Scenario::IdemSend)).map(|period| {
            let mut pace = tokio::time::interval(period);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            pace
        });
        workers.push(tokio::spawn(async move {
            loop {
                if let Some(pace) = &mut pace {
                    pace.tick().await;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let outcome = call(&client, &base, MIX[kind], run, i).await;
                let failed = outcome.is_err();
                window.lock().unwrap_or_else(|e| e.into_inner()).record(kind, outcome);
                if failed {
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }));
    }

    let outcome = report(&settings, &window, &mut csv).await;
    // The workers loop until stopped; a request still in flight is dropped.
    for w in &workers {
        w.abort();
    }
    outcome
}

/// How long each send worker waits between sends so that all of them
/// together send `rate` a second; `None` for no limit (a rate of 0).
fn send_period(workers: usize, rate: f64) -> Option<Duration> {
    let senders = (0..workers).filter(|w| matches!(MIX[w % MIX.len()], Scenario::IdemSend)).count();
    (rate > 0.0 && senders > 0).then(|| Duration::from_secs_f64(senders as f64 / rate))
}

/// Closes a window at the end of every interval (the last one may be
/// shorter) until `settings.duration` has passed.
async fn report(settings: &Settings, window: &Mutex<Window>, csv: &mut std::fs::File) -> Result<()> {
    let started = Instant::now();
    let mut opened = started;
    let mut end = Duration::ZERO;
    while end < settings.duration {
        end = (end + settings.interval).min(settings.duration);
        tokio::time::sleep_until((started + end).into()).await;
        let closed = std::mem::take(&mut *window.lock().unwrap_or_else(|e| e.into_inner()));
        let now = Instant::now();
        let seconds = now.duration_since(opened).as_secs_f64();
        opened = now;
        let (pid, dir) = (settings.pid, settings.data_dir.clone());
        let sample = tokio::task::spawn_blocking(move || probe::sample(pid, &dir)).await??;
        let (row, error) = closed.close(end.as_secs_f64() / 60.0, seconds, sample);
        if let Some(e) = error {
            eprintln!("  first error of the interval: {e}");
        }
        println!("{}", row.to_markdown());
        writeln!(csv, "{}", row.to_csv())?;
        csv.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_rate_is_shared_by_the_send_workers() {
        // 16 workers: four of them send, each every 40 ms for 100/s in all.
        assert_eq!(send_period(16, 100.0), Some(Duration::from_millis(40)));
        assert_eq!(send_period(4, 10.0), Some(Duration::from_millis(100)));
        assert_eq!(send_period(16, 0.0), None, "0 is no limit");
        assert_eq!(send_period(3, 100.0), None, "three workers include no sender");
    }
}
