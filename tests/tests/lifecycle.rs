//! End-to-end tests of invocation lifecycles through the real SDK services:
//! durable sleeps and delayed sends surviving `kill -9`, attach/output, and
//! cancel/kill/purge through the admin API.

mod invocation_support;

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use keel_e2e::{Cluster, LEADER_TIMEOUT, Sdk, SdkService, poll_until, run_test};
use serde_json::Value;

// ---------------------------------------------------------------------------
// sleep_survives_kill9_and_attach_waits
// ---------------------------------------------------------------------------

/// One node, the TypeScript and Python services registered.
///
/// 1. `Greeter/sleepThenEcho(1500)` and `PyGreeter/sleepThenEcho(1500)` are
///    sent; `GET /restate/invocation/{id}/output` answers 470 "not ready"
///    (JSON, source ingress) while they sleep.
///    `Awaiter/sendDelayed` schedules `Counter/d/add(5)` in 1.5 s; `get`
///    still answers 0.
/// 2. keel is `SIGKILL`ed and restarted: the durable timers and the delayed
///    send (a scheduled invocation in Counter/d's partition) must survive;
///    the send then runs exactly once (5).
/// 3. `GET …/attach` waits and answers `1500` for both (200, JSON), and
///    `…/output` then answers the same; an unknown id answers 404, a
///    malformed one 400, and POST on the endpoint 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sleep_survives_kill9_and_attach_waits() {
    run_test("sleep_survives_kill9_and_attach_waits", sleep_scenario()).await;
}

async fn sleep_scenario() -> Result<()> {
    let mut c = Cluster::start(1, &[]).await?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let py = SdkService::start(Sdk::Python, c.dir()).await?;
    let api = c.nodes[0].api.clone();
    register(&api, &ts.uri()).await?;
    register(&api, &py.uri()).await?;
    wait_for_services(std::slice::from_ref(&api), &Sdk::Python.service_names()).await?;

    // 1. Sleeping invocations are not done yet.
    let mut ids = Vec::new();
    for service in ["Greeter", "PyGreeter"] {
        let reply = api.ingress_post(&format!("/{service}/sleepThenEcho/send"), "1500").await?;
        reply.expect_status(202).with_context(|| format!("{service}/sleepThenEcho/send"))?;
        let body = reply.json()?;
        let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("{body}"))?.to_string();
        ensure!(is_invocation_id(&id), "malformed invocation id {id:?}");
        let output = api.ingress_request("GET", &format!("/restate/invocation/{id}/output"), Vec::new(), &[]).await?;
        let message = expect_error(&output, 470, "ingress")?;
        ensure!(message == "not ready", "470 message: {message:?}");
        ids.push(id);
    }

    // 1b. A delayed one-way send (Awaiter/sendDelayed → Counter/d/add(5) in 1.5 s).
    call_expect(&api, "/Awaiter/sendDelayed", r#"{"key":"d","ms":1500,"n":5}"#, r#""scheduled""#).await?;
    call_expect(&api, "/Counter/d/get", "", "0").await.context("the delayed send ran early")?;

    // 2. Crash while they sleep and the send waits.
    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;

    // The delayed send runs after the restart, exactly once.
    let reached = poll_until(LEADER_TIMEOUT, "Counter/d/get to answer 5", async || {
        let r = api.ingress_post("/Counter/d/get", "").await;
        if is_unavailable(&r) {
            bail!("{}", describe(&r));
        }
        let reply = r?;
        if reply.status == 200 && reply.body == "0" { bail!("not yet") } else { Ok(Some(reply)) }
    })
    .await?;
    expect_output(&reached, "5").context("Counter/d/get after the delayed send")?;
    call_expect(&api, "/Counter/d/add", "0", "5").await.context("the delayed send ran more than once")?;

    // 3. The timers fire after the restart; attach waits for the results.
    for id in &ids {
        let attach = poll_until(LEADER_TIMEOUT, &format!("attach to {id}"), async || {
            let r = api.ingress_request("GET", &format!("/restate/invocation/{id}/attach"), Vec::new(), &[]).await;
            if is_unavailable(&r) {
                bail!("{}", describe(&r));
            }
            Ok(Some(r?))
        })
        .await?;
        expect_output(&attach, "1500").with_context(|| format!("attach to {id}"))?;
        let output = api.ingress_request("GET", &format!("/restate/invocation/{id}/output"), Vec::new(), &[]).await?;
        expect_output(&output, "1500").with_context(|| format!("output of {id}"))?;
    }
    let unknown = "inv_10JI5b4yQzpD5Z9GgFm79jzIRqMAa09IbL";
    let reply = api.ingress_request("GET", &format!("/restate/invocation/{unknown}/attach"), Vec::new(), &[]).await?;
    expect_error(&reply, 404, "ingress")?;
    let reply = api.ingress_request("GET", "/restate/invocation/inv_1garbage/output", Vec::new(), &[]).await?;
    expect_error(&reply, 400, "ingress")?;
    let reply = api.ingress_request("POST", &format!("/restate/invocation/{}/output", ids[0]), Vec::new(), &[]).await?;
    expect_error(&reply, 405, "ingress")?;

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// cancel_kill_and_purge
// ---------------------------------------------------------------------------

/// One node, the TypeScript services registered. Workflow runs that wait on
/// their promise are stopped through the admin API:
///
/// 1. purge of a running invocation → 409; cancel → 202, and attaching
///    answers 409 `Cancelled` (the SDK's terminal error, source invocation);
///    cancel or kill of the completed invocation → 409; purge → 200, after
///    which `output` is 404 and another purge 404.
/// 2. kill of a waiting run → 200; attaching answers 409 `killed`.
/// 3. A malformed id → 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_kill_and_purge() {
    run_test("cancel_kill_and_purge", interventions_scenario()).await;
}

async fn interventions_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();
    let admin = |method: &'static str, path: String| {
        let api = api.clone();
        async move { api.admin_request(method, &path).await }
    };
    let start_run = |key: &'static str| {
        let api = api.clone();
        async move {
            let sent = api.ingress_post(&format!("/Signup/{key}/run/send"), r#""x""#).await?;
            sent.expect_status(202)?;
            let body = sent.json()?;
            let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("{body}"))?;
            // The run waits on its promise once `status` (a shared handler of
            // the same workflow) can run; until then it may still be starting.
            Ok::<String, anyhow::Error>(id.to_string())
        }
    };
    let attach = |id: String| {
        let api = api.clone();
        async move { api.ingress_request("GET", &format!("/restate/invocation/{id}/attach"), Vec::new(), &[]).await }
    };

    // 1. Cancel, then purge.
    let id = start_run("c1").await?;
    let r = admin("PATCH", format!("/invocations/{id}/purge")).await?;
    r.expect_status(409).context("purge of a running invocation")?;
    admin("PATCH", format!("/invocations/{id}/cancel")).await?.expect_status(202).context("cancel")?;
    let message = expect_error(&attach(id.clone()).await?, 409, "invocation")?;
    ensure!(message.to_lowercase().contains("cancel"), "cancelled run: {message:?}");
    admin("PATCH", format!("/invocations/{id}/cancel")).await?.expect_status(409).context("cancel again")?;
    admin("PATCH", format!("/invocations/{id}/kill")).await?.expect_status(409).context("kill when done")?;
    admin("PATCH", format!("/invocations/{id}/purge")).await?.expect_status(200).context("purge")?;
    let output = api.ingress_request("GET", &format!("/restate/invocation/{id}/output"), Vec::new(), &[]).await?;
    expect_error(&output, 404, "ingress")?;
    admin("PATCH", format!("/invocations/{id}/purge")).await?.expect_status(404).context("purge again")?;

    // 2. Kill.
    let id = start_run("k1").await?;
    admin("PATCH", format!("/invocations/{id}/kill")).await?.expect_status(200).context("kill")?;
    let message = expect_error(&attach(id).await?, 409, "invocation")?;
    ensure!(message == "killed", "killed run: {message:?}");

    // 3. Bad id.
    admin("PATCH", "/invocations/inv_1garbage/cancel".to_string()).await?.expect_status(400)?;

    ts.finish();
    c.finish();
    Ok(())
}
