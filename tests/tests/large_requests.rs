//! End-to-end test of bounded sizes: many large requests at once must not
//! wedge a partition or starve small ones. Each becomes a command of
//! several MiB; the proposer admits commands by bytes, packs them into Raft
//! entries capped in bytes, and replication splits what would exceed a
//! message, so the log keeps moving.
//!
//! Build the binary first (`cargo build -p keel`); see the crate docs of
//! `keel_e2e` for the knobs.

mod invocation_support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Sdk, run_test};
use serde_json::Value;
use tokio::time::Instant;

/// Bytes of input per large request (the "9 MiB request").
const LARGE: usize = 9 << 20;
const WRITERS: usize = 40;
/// How long a small request may take while the large ones are in flight:
/// generous for two cores, far below "wedged".
const SMALL_BOUND: Duration = Duration::from_secs(15);
/// Delayed sends store the invocation (its input included) and start it
/// much later: each request is exactly one command, with no SDK work.
const SEND: &str = "/Greeter/greet/send?delay=1h";

/// A JSON string of `LARGE` bytes in all.
fn large_body(fill: u8) -> Vec<u8> {
    let mut body = vec![b'a' + fill % 26; LARGE];
    body[0] = b'"';
    body[LARGE - 1] = b'"';
    body
}

/// A three-node cluster with one partition gets 40 concurrent 9 MiB sends
/// (360 MiB for one Raft group) through all nodes. Meanwhile small sends go
/// to the same partition one after another: each must be accepted within
/// [`SMALL_BOUND`]. A large send is accepted (202) or, while too many bytes
/// wait to commit, refused with 503, `Retry-After` and a JSON message;
/// accepted ones are stored, and the partition keeps committing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_requests_do_not_starve_small_ones() {
    run_test("large_requests_do_not_starve_small_ones", large_requests()).await;
}

async fn large_requests() -> Result<()> {
    let (c, services) = cluster_serving(3, &["--partitions", "1"], Sdk::TypeScript).await?;
    let apis = c.apis(&c.all());

    let mut large = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let api = apis[i % apis.len()].clone();
        large.spawn(async move {
            let reply =
                api.ingress_request("POST", SEND, large_body(i as u8), &[("content-type", "application/json")]).await?;
            match reply.status {
                202 => Ok(Some(invocation_id(&reply.json()?)?)),
                503 if reply.retry_after.is_some() && reply.error_message().is_ok() => Ok(None),
                _ => reply.expect_status(202).map(|_| None).with_context(|| format!("large send {i}")),
            }
        });
    }

    let mut accepted = Vec::new();
    let mut small = 0;
    let mut slowest = Duration::ZERO;
    while !large.is_empty() {
        let started = Instant::now();
        let api = &apis[small % apis.len()];
        let reply = tokio::time::timeout(SMALL_BOUND, api.ingress_post(SEND, "\"small\""))
            .await
            .with_context(|| format!("small send {small} took over {SMALL_BOUND:?}"))??;
        reply.expect_status(202).with_context(|| format!("small send {small}"))?;
        slowest = slowest.max(started.elapsed());
        small += 1;
        while let Some(done) = large.try_join_next() {
            accepted.extend(done??);
        }
    }
    ensure!(small >= 2, "the large sends finished before small ones could interleave");
    ensure!(!accepted.is_empty(), "every large send was refused");
    eprintln!("{small} small sends during {WRITERS} large ones ({} accepted), slowest {slowest:?}", accepted.len());

    // Accepted sends are stored, as seen from every node.
    for id in [&accepted[0], &accepted[accepted.len() - 1]] {
        for api in &apis {
            let reply = api.get(&format!("/invocations/{id}")).await?;
            reply.expect_status(200)?;
            let status = reply.json()?.get("status").and_then(Value::as_str).map(str::to_string);
            ensure!(status.as_deref() == Some("scheduled"), "{id} via node {}: {}", api.node_id, reply.body);
        }
    }
    // And the partition still commits a call end to end.
    call_expect(&apis[0], "/Greeter/greet", "\"after\"", "\"Hello, after!\"").await?;
    services.finish();
    c.finish();
    Ok(())
}

fn invocation_id(body: &Value) -> Result<String> {
    body.get("invocationId").and_then(Value::as_str).map(str::to_string).with_context(|| format!("no id in {body}"))
}
