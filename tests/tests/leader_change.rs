//! End-to-end tests: a call in flight while its partition's leader dies,
//! or stops on SIGTERM, is retried by the ingress behind the caller's back
//! and answers normally.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Api, LEADER_TIMEOUT, Sdk, poll_until, run_test};
use std::time::Duration;
use tokio::time::Instant;

/// Three nodes, replication factor 3, the TypeScript services.
///
/// 1. `Signup/lc1/run` is called through a node X that does not lead the
///    workflow key's partition P; the run blocks on its promise (its
///    `output` answers 470).
/// 2. P's leader is killed with `SIGKILL`; the survivors elect a new one.
/// 3. `confirm("ok")` through X answers 200, and the call still open since
///    step 1 answers 200 `"confirmed:ok"`: the ingress re-attached to the
///    invocation on the new leader without the caller noticing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_survives_a_leader_change() {
    run_test("a_call_survives_a_leader_change", scenario()).await;
}

async fn scenario() -> Result<()> {
    let (mut c, ts) = cluster_serving(3, &["--partitions", "4", "--replication-factor", "3"], Sdk::TypeScript).await?;
    let all = c.all();
    let apis = c.apis(&all);

    // 1. The call, through a node that does not lead P.
    let p = apis[0].get_state("Signup", "lc1").await?.partition;
    let (li, _) = c.leader_view(&all, p).await?;
    let xi = all.iter().copied().find(|&i| i != li).context("three nodes")?;
    let x = c.apis(&[xi]).remove(0);
    let caller = {
        let x = x.clone();
        tokio::spawn(async move { x.ingress_post("/Signup/lc1/run", "\"a@b.c\"").await })
    };
    poll_until(LEADER_TIMEOUT, "the run to start", async || {
        let r = x.ingress_request("GET", "/restate/workflow/Signup/lc1/output", Vec::new(), &[]).await?;
        Ok((r.status == 470).then_some(()))
    })
    .await?;

    // 2. Kill P's leader.
    let victim = c.nodes[li].id;
    eprintln!("killing node {victim}, leader of partition {p}; the call goes through node {}", x.node_id);
    c.nodes[li].kill9().await?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != li).collect();
    let leaders = c.wait_for_leaders(&survivors, LEADER_TIMEOUT).await?;
    ensure!(leaders.get(&p).is_some_and(|&l| l != victim), "partition {p} has no new leader: {leaders:?}");

    // 3. Complete it; the open call answers.
    let confirm =
        call_until_answered(std::slice::from_ref(&x), 0, "/Signup/lc1/confirm", "\"ok\"", LEADER_TIMEOUT).await?;
    confirm.expect_status(200).context("confirm")?;
    let reply = caller.await?.context("the call in flight")?;
    expect_output(&reply, "\"confirmed:ok\"").context("the call in flight across the leader change")?;

    ts.finish();
    c.finish();
    Ok(())
}

/// The stopped node's `--shutdown-timeout`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// What the process may take beyond it (closing the database).
const EXIT_SLACK: Duration = Duration::from_secs(2);

/// Starts `Signup/{key}/run` through `api` and waits until it blocks on its
/// promise; the returned task holds the open call.
async fn start_run(api: &Api, key: &str) -> Result<tokio::task::JoinHandle<Result<keel_e2e::Reply>>> {
    let caller = {
        let api = api.clone();
        let path = format!("/Signup/{key}/run");
        tokio::spawn(async move { api.ingress_post(&path, "\"a@b.c\"").await })
    };
    let output = format!("/restate/workflow/Signup/{key}/output");
    poll_until(LEADER_TIMEOUT, &format!("run {key} to start"), async || {
        let r = api.ingress_request("GET", &output, Vec::new(), &[]).await?;
        Ok((r.status == 470).then_some(()))
    })
    .await?;
    Ok(caller)
}

/// Three nodes, replication factor 3, the TypeScript services, and a
/// partition P whose leader L gets SIGTERM while two calls wait on it: one
/// through another node X, one through L's own ingress (two workflow runs
/// blocked on their promises, both in P).
///
/// L hands P over before it drains: the survivors elect a new leader while
/// L still runs (its open call is still waiting), and only then are the
/// runs confirmed through X. Both open calls answer `"confirmed:ok"` (L's
/// own call was re-routed to the new leader), and L exits by itself with
/// success within its `--shutdown-timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_survives_its_leaders_graceful_stop() {
    run_test("a_call_survives_its_leaders_graceful_stop", graceful_stop()).await;
}

async fn graceful_stop() -> Result<()> {
    let timeout = format!("{}s", SHUTDOWN_TIMEOUT.as_secs());
    let args = ["--partitions", "4", "--replication-factor", "3", "--shutdown-timeout", &timeout];
    let (mut c, ts) = cluster_serving(3, &args, Sdk::TypeScript).await?;
    let all = c.all();
    let apis = c.apis(&all);

    let p = apis[0].get_state("Signup", "gs0").await?.partition;
    let mut keys = vec!["gs0".to_string()];
    for i in 1.. {
        let key = format!("gs{i}");
        if apis[0].get_state("Signup", &key).await?.partition == p {
            keys.push(key);
            break;
        }
    }
    let (li, _) = c.leader_view(&all, p).await?;
    let xi = all.iter().copied().find(|&i| i != li).context("three nodes")?;
    let (l, x) = (apis[li].clone(), apis[xi].clone());
    let through_x = start_run(&x, &keys[0]).await?;
    let through_l = start_run(&l, &keys[1]).await?;

    let victim = c.nodes[li].id;
    eprintln!("SIGTERM to node {victim}, leader of partition {p}; calls through it and through node {}", x.node_id);
    let stopped_at = Instant::now();
    keel_e2e::send_signal(c.nodes[li].pid().context("L runs")?, libc::SIGTERM)?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != li).collect();
    let leaders = c.wait_for_leaders(&survivors, LEADER_TIMEOUT).await?;
    ensure!(leaders.get(&p).is_some_and(|&l| l != victim), "partition {p} has no new leader: {leaders:?}");
    ensure!(c.nodes[li].try_exited()?.is_none(), "node {victim} exited before its open call was answered");

    for key in &keys {
        let path = format!("/Signup/{key}/confirm");
        let confirm = call_until_answered(std::slice::from_ref(&x), 0, &path, "\"ok\"", LEADER_TIMEOUT).await?;
        confirm.expect_status(200).with_context(|| format!("confirm {key}"))?;
    }
    for (name, caller) in [("through X", through_x), ("through L", through_l)] {
        let reply = caller.await?.with_context(|| format!("the call {name}"))?;
        expect_output(&reply, "\"confirmed:ok\"").with_context(|| format!("the call {name}"))?;
    }
    let status = c.nodes[li].wait_exit(SHUTDOWN_TIMEOUT + EXIT_SLACK).await?;
    let took = stopped_at.elapsed();
    ensure!(status.success(), "node {victim} exited with {status} after SIGTERM");
    ensure!(took <= SHUTDOWN_TIMEOUT + EXIT_SLACK, "node {victim} took {took:?} to stop");

    ts.finish();
    c.finish();
    Ok(())
}
