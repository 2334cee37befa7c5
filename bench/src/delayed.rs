//! `keel-bench http --scenario delayed-send`: the firing rate of delayed
//! sends. `connections` workers send `count` one-way invocations of
//! `Greeter/greet`, each with the `?delay=` that makes it due at one common
//! instant (`delay` after the first send), so that they all come due
//! together. Each worker then attaches to its invocations in order; an
//! attach returns when its invocation has run.
//!
//! Reported: firings/s = `count` / (last completion − due instant), and the
//! p50/p99 of each invocation's lateness (its attach returning, minus the
//! due instant). Sends that do not answer 202 count as errors.

use crate::http::{Scenario, post, run_id};
use crate::{ms, percentile};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to fire.
pub struct Settings {
    /// How many delayed sends.
    pub count: usize,
    /// How long after the first send they are all due.
    pub delay: Duration,
}

pub async fn run(url_base: &str, connections: usize, settings: &Settings) -> Result<()> {
    let base = url_base.trim_end_matches('/').to_string();
    let started = Instant::now();
    let due = started + settings.delay;
    let run = run_id();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (base, next, errors, count) = (base.clone(), next.clone(), errors.clone(), settings.count);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let (url, body, _) = Scenario::DelayedSend.request(&base, run, i as u64);
                let wait = due.saturating_duration_since(Instant::now()).as_millis();
                let sent = post(&client, &format!("{url}?delay={wait}ms"), body, None).send().await;
                let id = sent
                    .ok()
                    .filter(|r| r.status() == 202)
                    .and_then(|r| r.headers().get("x-restate-id").and_then(|v| v.to_str().ok()).map(str::to_string));
                match id {
                    Some(id) => ids.push(id),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let mut lateness = Vec::with_capacity(ids.len());
            for id in ids {
                let attached = match client.get(format!("{base}/restate/invocation/{id}/attach")).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if attached {
                    lateness.push(Instant::now().saturating_duration_since(due));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lateness
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let sent_in = started.elapsed();
    if Instant::now() < due || all.is_empty() {
        bail!("delayed-send: nothing ran, or it all ran before it was due (sending took {sent_in:?})");
    }
    all.sort();
    let last = all.last().copied().unwrap_or_default();
    let per_sec = all.len() as f64 / last.as_secs_f64().max(0.001);
    eprintln!("  {} delayed sends ran; the last {:.0} ms after they were due", all.len(), ms(last));
    println!(
        "| delayed-send ({} × {:?}) | {connections} | {per_sec:.0} firings/s | {:.3} | {:.3} | {} |",
        settings.count,
        settings.delay,
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
