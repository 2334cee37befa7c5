//! End-to-end tests of the leader-side invoker with the real SDK services of
//! `tests/services/ts/invoker.mjs` and `tests/services/py/invoker_services.py`:
//! retry policies (pause, resume, kill), suspension by the inactivity
//! timeout, a `kill -9` while a `ctx.run` runs, deployment pinning across a
//! re-registration, HTTP/1.1 request-response deployments and the per-node
//! limit of attempts in flight.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll.

mod invocation_support;
mod invoker_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use invoker_support::*;
use keel_e2e::{Cluster, Program, Sdk, SdkService, free_ports, run_test};
use serde_json::json;

/// Starts `sdk`'s invoker services (revision 1, h2c) and registers them.
async fn invoker_services(c: &Cluster, sdk: Sdk) -> Result<SdkService> {
    let port = free_ports(1)[0];
    let services = SdkService::start_program(sdk, c.dir(), port, Program::Invoker { revision: 1, http1: false }).await?;
    register(&c.nodes[0].api, &services.uri()).await?;
    Ok(services)
}

// ---------------------------------------------------------------------------
// retry_policy_pauses_resumes_and_kills
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered. Their
/// `Retries` handlers always throw a retryable error and declare a retry
/// policy of 3 attempts (50 ms initial interval) in the manifest.
///
/// 1. `failPause` (both SDKs) becomes `paused` after exactly 3 attempts
///    (`GET /invocations/{id}` answers `{"id", "status": "paused"}`);
///    pausing it again answers 200; `resume` answers 200 and runs it again:
///    paused once more after exactly 6 attempts.
/// 2. `failKill` (both SDKs) completes after exactly 3 attempts with the last
///    failure: attach answers 500 with the SDK's message; the admin view
///    shows `completed`, `failure`. Pause or resume of it → 409.
/// 3. Unknown id → 404 for pause, resume and the view; a malformed id → 400;
///    an unknown action → 404; `?deployment=` naming no deployment → 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_policy_pauses_resumes_and_kills() {
    run_test("retry_policy_pauses_resumes_and_kills", retry_scenario()).await;
}

async fn retry_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Retries", "PyRetries"]).await?;

    for service in ["Retries", "PyRetries"] {
        // 1. Paused after exactly 3 attempts; resumed, paused again after 3 more.
        let id = send(&api, &format!("/{service}/failPause"), "").await?;
        let view = wait_status(&api, &id, "paused").await?;
        ensure!(view == json!({"id": id, "status": "paused"}), "{service}: view {view}");
        ensure!(attempts(&api, service, &id).await? == 3, "{service}: not exactly 3 attempts before the pause");
        admin_patch(&api, &format!("/invocations/{id}/pause")).await?.expect_status(200)?;
        admin_patch(&api, &format!("/invocations/{id}/resume")).await?.expect_status(200)?;
        keel_e2e::poll_until(keel_e2e::LEADER_TIMEOUT, "6 attempts after the resume", async || {
            let n = attempts(&api, service, &id).await?;
            ensure!(n <= 6, "{service}: {n} attempts, more than 3 after the resume");
            if n == 6 { Ok(Some(())) } else { anyhow::bail!("{n} attempts") }
        })
        .await?;
        wait_status(&api, &id, "paused").await?;
        ensure!(attempts(&api, service, &id).await? == 6, "{service}: attempts went on after the second pause");

        // 2. Killed after exactly 3 attempts with the last failure.
        let id = send(&api, &format!("/{service}/failKill"), "").await?;
        let reply = attach(&api, &id).await?;
        let message = expect_error(&reply, 500, "invocation")?;
        ensure!(message.contains("always fails"), "{service}: kill message {message:?}");
        ensure!(attempts(&api, service, &id).await? == 3, "{service}: not exactly 3 attempts before the kill");
        let view = invocation_view(&api, &id).await?;
        let want = json!({"id": id, "status": "completed", "completion_result": "failure",
            "completion_failure": format!("[500] {message}")});
        ensure!(view == want, "{service}: view {view}, expected {want}");
        for action in ["pause", "resume"] {
            admin_patch(&api, &format!("/invocations/{id}/{action}")).await?.expect_status(409)?;
        }
    }

    // 3. Bad requests.
    let unknown = "inv_10JI5b4yQzpD5Z9GgFm79jzIRqMAa09IbL";
    for action in ["pause", "resume"] {
        admin_patch(&api, &format!("/invocations/{unknown}/{action}")).await?.expect_status(404)?;
    }
    api.get(&format!("/invocations/{unknown}")).await?.expect_status(404)?;
    api.get("/invocations/inv_1garbage").await?.expect_status(400)?;
    admin_patch(&api, &format!("/invocations/{unknown}/frobnicate")).await?.expect_status(404)?;
    let reply = admin_patch(&api, &format!("/invocations/{unknown}/resume?deployment=dp_nothing")).await?;
    reply.expect_status(400).context("resume on an unregistered deployment")?;

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}
