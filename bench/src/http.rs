//! `keel-bench http`: drives an HTTP ingress (keel's or Restate's) with N
//! concurrent workers, each with its own keep-alive HTTP/1.1 connection and
//! one request in flight, for a fixed duration, and reports requests/s and
//! latency. Every request must answer 200 (202 for sends); anything else (or
//! a transport error) counts as an error and is left out of the latency
//! figures.
//!
//! Scenarios, against the TS test service (`tests/services/ts`):
//! * `noop`: `POST /Greeter/greet` with body `"x"` (a stateless handler, no journal entries);
//! * `counter`: `POST /Counter/k{i % 100}/add` with body `1` (a virtual object, 100 keys,
//!   one state read and write per call);
//! * `workflow`: `POST /Steps/w{run}-{i}/run` with body `1` (a workflow, a fresh id per
//!   request, three `ctx.run` steps each journaled before the next starts; answers `4`);
//! * `idem-send`: `POST /Greeter/greet/send` with a unique `idempotency-key` per request
//!   (deduplication bookkeeping on every send; the handler runs in the background);
//! * `delayed-send`: see `delayed.rs` (a firing rate, not a request loop).

use crate::{ms, percentile};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Scenario {
    Noop,
    Counter,
    Workflow,
    IdemSend,
    DelayedSend,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Noop => "noop",
            Scenario::Counter => "counter",
            Scenario::Workflow => "workflow",
            Scenario::IdemSend => "idem-send",
            Scenario::DelayedSend => "delayed-send",
        }
    }

    /// The `i`-th request of run `run`: URL, body, idempotency key.
    pub(crate) fn request(self, base: &str, run: u64, i: u64) -> (String, &'static str, Option<String>) {
        match self {
            Scenario::Noop => (format!("{base}/Greeter/greet"), "\"x\"", None),
            Scenario::Counter => (format!("{base}/Counter/k{}/add", i % 100), "1", None),
            // Workflow ids must never repeat, also not across runs against one server.
            Scenario::Workflow => (format!("{base}/Steps/w{run}-{i}/run"), "1", None),
            Scenario::IdemSend => (format!("{base}/Greeter/greet/send"), "\"x\"", Some(format!("{run}-{i}"))),
            // `delayed.rs` adds the `?delay=`.
            Scenario::DelayedSend => (format!("{base}/Greeter/greet/send"), "\"x\"", None),
        }
    }

    /// The status a successful request answers with.
    fn ok_status(self) -> u16 {
        match self {
            Scenario::Noop | Scenario::Counter | Scenario::Workflow => 200,
            Scenario::IdemSend | Scenario::DelayedSend => 202,
        }
    }
}

/// A request with an optional idempotency key.
pub(crate) fn post(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
    key: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client.post(url).header("content-type", "application/json").body(body);
    match key {
        Some(k) => request.header("idempotency-key", k),
        None => request,
    }
}

/// A number unique to this run, so idempotency keys and object keys of two
/// runs against the same server do not collide.
pub(crate) fn run_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One request of a scenario before measuring: a wrong URL or an
/// unregistered service should fail loudly, not as a run of errors.
pub(crate) async fn check(client: &reqwest::Client, base: &str, scenario: Scenario, run: u64) -> Result<()> {
    let (url, body, key) = scenario.request(base, run, 0);
    let r = post(client, &url, body, key.as_deref()).send().await?;
    if r.status() != scenario.ok_status() {
        let status = r.status();
        bail!("{url}: {status}: {}", r.text().await.unwrap_or_default());
    }
    Ok(())
}

/// The `i`-th request of a scenario, answer read to the end: its latency if
/// it answered the scenario's success status, else what went wrong.
pub(crate) async fn call(
    client: &reqwest::Client,
    base: &str,
    scenario: Scenario,
    run: u64,
    i: u64,
) -> Result<Duration, String> {
    let (url, body, key) = scenario.request(base, run, i);
    let t = Instant::now();
    let r = post(client, &url, body, key.as_deref()).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let text = r.bytes().await;
    if status == scenario.ok_status() && text.is_ok() {
        Ok(t.elapsed())
    } else {
        Err(format!("{url}: {status}: {text:?}"))
    }
}

pub struct Outcome {
    pub ok: usize,
    pub errors: u64,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub async fn run(url_base: &str, scenario: Scenario, connections: usize, duration: Duration) -> Result<Outcome> {
    let base = url_base.trim_end_matches('/').to_string();
    // One check request first: a wrong URL or an unregistered service should fail loudly.
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let run = run_id();
    check(&client, &base, scenario, run).await?;
    let counter = Arc::new(AtomicU64::new(1));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        // One client per worker: one connection each, as N independent callers.
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (base, counter, errors) = (base.clone(), counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut first_error = None;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                match call(&client, &base, scenario, run, i).await {
                    Ok(latency) => lat.push(latency),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (lat, first_error)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let (lat, first_error) = t.await?;
        if let Some(e) = first_error {
            eprintln!("  first error of a worker: {e}");
        }
        all.extend(lat);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Outcome {
        ok: all.len(),
        errors: errors.load(Ordering::Relaxed),
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    })
}

pub async fn main(
    url_base: String,
    scenarios: Vec<Scenario>,
    connections: Vec<usize>,
    duration: Duration,
    delayed: crate::delayed::Settings,
) -> Result<()> {
    println!("| scenario | connections | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for &scenario in &scenarios {
        for &c in &connections {
            if let Scenario::DelayedSend = scenario {
                crate::delayed::run(&url_base, c, &delayed).await?;
                continue;
            }
            let r = run(&url_base, scenario, c, duration).await?;
            eprintln!("  {} ok requests", r.ok);
            println!(
                "| {} | {c} | {:.0} | {:.3} | {:.3} | {} |",
                scenario.name(),
                r.per_sec,
                ms(r.p50),
                ms(r.p99),
                r.errors
            );
        }
    }
    Ok(())
}
