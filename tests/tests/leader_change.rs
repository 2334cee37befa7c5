//! End-to-end test: a call in flight while its partition's leader dies is
//! retried by the ingress behind the caller's back and answers normally.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{LEADER_TIMEOUT, Sdk, poll_until, run_test};

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
