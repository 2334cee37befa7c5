//! End-to-end tests of idempotent requests (`Idempotency-Key`), their
//! retention, and attach/output by idempotency key and by workflow id,
//! against the real TypeScript and Python SDK test services.
//!
//! Executions are counted with `Counter`/`PyCounter`: each execution of
//! `add(n)` adds `n` to the object's `count`, which the admin API shows.

mod invocation_support;

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use keel_e2e::{Api, Cluster, Reply, WRITE_TIMEOUT, poll_until, run_test};
use serde_json::{Value, json};

/// `POST path` with a JSON `body` and `idempotency-key: key`.
async fn post_idempotent(api: &Api, path: &str, body: &str, key: &str) -> Result<Reply> {
    api.ingress_request("POST", path, body, &[("content-type", "application/json"), ("idempotency-key", key)]).await
}

async fn get(api: &Api, path: &str) -> Result<Reply> {
    api.ingress_request("GET", path, Vec::new(), &[]).await
}

/// A send's 202 answer must be exactly `{"invocationId": <id>, "status": status}`
/// with `x-restate-id: <id>`. Returns the id.
fn expect_send(reply: &Reply, status: &str) -> Result<String> {
    reply.expect_status(202)?;
    let body = reply.json()?;
    let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("{body}"))?.to_string();
    ensure!(is_invocation_id(&id), "malformed invocation id in {body}");
    ensure!(body == json!({ "invocationId": id, "status": status }), "send answered {body}, expected status {status}");
    ensure!(reply.header("x-restate-id") == Some(id.as_str()), "x-restate-id of {reply:?}");
    Ok(id)
}

/// The `idempotency-expires` header as a time.
fn expires(reply: &Reply) -> Result<SystemTime> {
    let value = reply.header("idempotency-expires").with_context(|| format!("no idempotency-expires in {reply:?}"))?;
    humantime::parse_rfc3339(value).with_context(|| format!("idempotency-expires {value:?} is not RFC 3339"))
}

/// `expires` lies within `slack` of now + `retention`.
fn expect_expiry_near(reply: &Reply, retention: Duration, slack: Duration) -> Result<()> {
    let at = expires(reply)?;
    let want = SystemTime::now() + retention;
    let off = at.duration_since(want).or_else(|e| Ok::<_, anyhow::Error>(e.duration()))?;
    ensure!(off <= slack, "idempotency-expires {at:?} is {off:?} away from now + {retention:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// idempotent_requests_execute_once
// ---------------------------------------------------------------------------

/// One node, the TypeScript and Python services registered. For `Counter`
/// and `PyCounter`:
///
/// 1. `add/send` 1 twice with one idempotency key: 202 `Accepted`, then 202
///    `PreviouslyAccepted` with the same id; attaching by the keyed
///    idempotency key answers `1`; the count is 1 (one execution).
/// 2. `add` 5 called twice with one key: both 200 `5` with the same
///    `x-restate-id`, content-type and `idempotency-expires` (about one day
///    ahead); the count is 5. Another key on the same object executes again.
/// 3. 50 concurrent calls of `add` 1 with one key: 50 × 200 `1` with one
///    `x-restate-id`; the count is 1.
/// 4. 50 concurrent calls of the unkeyed `Greeter/sleepThenEcho` 300 with one
///    key (most of them attach while it sleeps): 50 equal answers, one id.
/// 5. A terminal failure is retained too: `Greeter/failTerminal` and
///    `PyGreeter/failTerminal` called twice with one key answer 418
///    `{"code":418,"message":"boom","source":"invocation"}` both times, with
///    one `x-restate-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_requests_execute_once() {
    run_test("idempotent_requests_execute_once", execute_once_scenario()).await;
}

async fn execute_once_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();

    for counter in ["Counter", "PyCounter"] {
        // 1. Idempotent sends.
        let first = post_idempotent(&api, &format!("/{counter}/s1/add/send"), "1", "send-1").await?;
        let id = expect_send(&first, "Accepted").with_context(|| format!("{counter}: first send"))?;
        let second = post_idempotent(&api, &format!("/{counter}/s1/add/send"), "1", "send-1").await?;
        let again = expect_send(&second, "PreviouslyAccepted").with_context(|| format!("{counter}: second send"))?;
        ensure!(again == id, "{counter}: the repeated send names {again}, the first {id}");
        let attach = get(&api, &format!("/restate/invocation/{counter}/s1/add/send-1/attach")).await?;
        ensure!(expect_output(&attach, "1")? == id, "{counter}: attach by key answered for another id");
        let output = get(&api, &format!("/restate/invocation/{counter}/s1/add/send-1/output")).await?;
        expect_output(&output, "1")?;
        expect_count_state(&api, counter, "s1", 1).await?;

        // 2. A repeated call answers the stored response.
        let path = format!("/{counter}/c1/add");
        let first = post_idempotent(&api, &path, "5", "call-1").await?;
        let id = expect_output(&first, "5").with_context(|| format!("{counter}: first call"))?;
        expect_expiry_near(&first, Duration::from_secs(86_400), Duration::from_secs(60))?;
        let second = post_idempotent(&api, &path, "5", "call-1").await?;
        ensure!(expect_output(&second, "5")? == id, "{counter}: the repeated call has another id");
        ensure!(
            second.header("idempotency-expires") == first.header("idempotency-expires"),
            "{counter}: idempotency-expires changed: {:?} then {:?}",
            first.header("idempotency-expires"),
            second.header("idempotency-expires")
        );
        expect_count_state(&api, counter, "c1", 5).await?;
        let other = post_idempotent(&api, &path, "5", "call-2").await?;
        ensure!(expect_output(&other, "10")? != id, "{counter}: another key reused the id");

        // 3. 50 concurrent calls with one key.
        let replies = concurrently(&api, 50, &format!("/{counter}/fifty/add"), "1", "fifty").await?;
        let ids: std::collections::BTreeSet<String> =
            replies.iter().map(|r| expect_output(r, "1")).collect::<Result<_>>().context(counter)?;
        ensure!(ids.len() == 1, "{counter}: 50 concurrent calls got {} ids: {ids:?}", ids.len());
        expect_count_state(&api, counter, "fifty", 1).await?;
    }

    // 4. Unkeyed, while it runs.
    let replies = concurrently(&api, 50, "/Greeter/sleepThenEcho", "300", "sleepy").await?;
    let ids: std::collections::BTreeSet<String> =
        replies.iter().map(|r| expect_output(r, "300")).collect::<Result<_>>()?;
    ensure!(ids.len() == 1, "50 concurrent unkeyed calls got {} ids: {ids:?}", ids.len());
    let attach = get(&api, "/restate/invocation/Greeter/sleepThenEcho/sleepy/attach").await?;
    expect_output(&attach, "300")?;

    // 5. Failures.
    for greeter in ["Greeter", "PyGreeter"] {
        let path = format!("/{greeter}/failTerminal");
        let headers = [("idempotency-key", "fail-1")];
        let first = api.ingress_request("POST", &path, Vec::new(), &headers).await?;
        let second = api.ingress_request("POST", &path, Vec::new(), &headers).await?;
        for reply in [&first, &second] {
            ensure!(expect_error(reply, 418, "invocation")? == "boom", "{greeter}: {reply:?}");
        }
        ensure!(
            first.header("x-restate-id").is_some() && first.header("x-restate-id") == second.header("x-restate-id"),
            "{greeter}: failures of one key name different invocations: {first:?} / {second:?}"
        );
    }

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

/// `n` concurrent idempotent calls of `path` with `body` and `key`.
async fn concurrently(api: &Api, n: usize, path: &str, body: &str, key: &str) -> Result<Vec<Reply>> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (api, path, body, key) = (api.clone(), path.to_string(), body.to_string(), key.to_string());
        calls.spawn(async move { post_idempotent(&api, &path, &body, &key).await });
    }
    let mut replies = Vec::with_capacity(n);
    while let Some(r) = calls.join_next().await {
        replies.push(r.context("a concurrent call panicked")??);
    }
    Ok(replies)
}

// ---------------------------------------------------------------------------
// attach_output_and_retention
// ---------------------------------------------------------------------------

/// One node, the TypeScript and Python services registered.
///
/// 1. `Greeter/sleepThenEcho/send` 2000 with key `sl`: `output` by
///    idempotency key answers 470 `not ready` while it sleeps, `attach` by
///    key waits and answers 200 `2000`, `output` then too, as do attach by
///    id, `GET /restate/attach/{id}` and `POST /restate/output` with an
///    `idempotentInvocation` target; `POST /restate/lookup` answers the id.
///    An unknown key answers exactly
///    `{"code":404,"message":"not found","source":"ingress"}`.
/// 2. Workflows (`Signup`, `PySignup`): after `w1/run/send`, output by
///    workflow id is 470; attach waits until `confirm("yes")`, then answers
///    `confirmed:yes`, output and `POST /restate/attach` with a `workflow`
///    target too; an unknown
///    workflow id is 404; an idempotency key on `run` is 400.
/// 3. Retention: `PATCH /services/PyCounter {"idempotency_retention":"2s"}`;
///    an idempotent `add 1` answers 1 with `idempotency-expires` about 2 s
///    ahead, repeats answer 1 until the purge timer removes the result, then
///    the same key executes again (2), exactly once more.
/// 4. Workflow retention: `PATCH /services/Signup
///    {"workflow_completion_retention":"2s"}`; run `w3`, confirm, attach
///    answers `confirmed:yes` and `status` `yes`; once the purge timer fired,
///    output by workflow id is 404, `status` is empty again (the promise went
///    with the run), and `run/send` is `Accepted` anew with the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attach_output_and_retention() {
    run_test("attach_output_and_retention", attach_scenario()).await;
}

async fn attach_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();

    // 1. By idempotency key, unkeyed.
    let sent = post_idempotent(&api, "/Greeter/sleepThenEcho/send", "2000", "sl").await?;
    let id = expect_send(&sent, "Accepted")?;
    let by_key = "/restate/invocation/Greeter/sleepThenEcho/sl";
    let early = get(&api, &format!("{by_key}/output")).await?;
    ensure!(expect_error(&early, 470, "ingress")? == "not ready", "{early:?}");
    ensure!(expect_output(&get(&api, &format!("{by_key}/attach")).await?, "2000")? == id, "attach by key: other id");
    expect_output(&get(&api, &format!("{by_key}/output")).await?, "2000")?;
    expect_output(&get(&api, &format!("/restate/invocation/{id}/attach")).await?, "2000")?;
    expect_output(&get(&api, &format!("/restate/attach/{id}")).await?, "2000")?;
    let target = json!({"target": "idempotentInvocation", "service": "Greeter", "handler": "sleepThenEcho",
        "idempotencyKey": "sl"});
    let output = api
        .ingress_request("POST", "/restate/output", target.to_string(), &[("content-type", "application/json")])
        .await?;
    expect_output(&output, "2000")?;
    let lookup = api
        .ingress_request("POST", "/restate/lookup", target.to_string(), &[("content-type", "application/json")])
        .await?;
    lookup.expect_status(200)?;
    ensure!(lookup.json()? == json!({ "invocationId": id }), "lookup answered {}", lookup.body);
    for path in [
        format!("{by_key}x/output"),
        format!("{by_key}x/attach"),
        "/restate/invocation/Counter/k/add/none/output".into(),
    ] {
        let unknown = get(&api, &path).await?;
        expect_error(&unknown, 404, "ingress")?;
        ensure!(unknown.json()? == json!({"code": 404, "message": "not found", "source": "ingress"}), "{unknown:?}");
    }

    // 2. By workflow id.
    for signup in ["Signup", "PySignup"] {
        let sent = api.ingress_post(&format!("/{signup}/w1/run/send"), r#""a@b""#).await?;
        let run_id = expect_send(&sent, "Accepted")?;
        let wf = format!("/restate/workflow/{signup}/w1");
        let early = get(&api, &format!("{wf}/output")).await?;
        ensure!(expect_error(&early, 470, "ingress")? == "not ready", "{signup}: {early:?}");
        let attach = {
            let (api, wf) = (api.clone(), wf.clone());
            tokio::spawn(async move { get(&api, &format!("{wf}/attach")).await })
        };
        let confirm = api.ingress_post(&format!("/{signup}/w1/confirm"), r#""yes""#).await?;
        confirm.expect_status(200).with_context(|| format!("{signup}/w1/confirm"))?;
        let attached = attach.await.context("attach task")??;
        ensure!(expect_output(&attached, r#""confirmed:yes""#)? == run_id, "{signup}: attach answered another id");
        expect_output(&get(&api, &format!("{wf}/output")).await?, r#""confirmed:yes""#)?;
        let target = json!({"target": "workflow", "workflowName": signup, "workflowKey": "w1"}).to_string();
        let json_type = [("content-type", "application/json")];
        let attached = api.ingress_request("POST", "/restate/attach", target, &json_type).await?;
        expect_output(&attached, r#""confirmed:yes""#).with_context(|| format!("{signup}: POST /restate/attach"))?;
        expect_error(&get(&api, &format!("/restate/workflow/{signup}/nope/output")).await?, 404, "ingress")?;
        let keyed_run =
            post_idempotent(&api, &format!("/{signup}/w2/run"), r#""a@b""#, "k").await.context("keyed run")?;
        expect_error(&keyed_run, 400, "ingress")?;
    }

    // 3. Retention: the key executes again once its result is purged.
    let patched = api.patch_json("/services/PyCounter", &json!({ "idempotency_retention": "2s" })).await?;
    patched.expect_status(200)?;
    let path = "/PyCounter/ret/add";
    // One node: the PATCH was applied to this node's catalog before it answered.
    let first = post_idempotent(&api, path, "1", "ret").await?;
    expect_output(&first, "1")?;
    expect_expiry_near(&first, Duration::from_secs(2), Duration::from_secs(2))?;
    let repeat = post_idempotent(&api, path, "1", "ret").await?;
    expect_output(&repeat, "1").context("a repeat within the retention")?;
    let again = poll_until(WRITE_TIMEOUT, "the idempotent add to execute again after its retention", async || {
        let reply = post_idempotent(&api, path, "1", "ret").await?;
        if reply.status == 200 && reply.body == "1" {
            bail!("still the retained result");
        }
        Ok(Some(reply))
    })
    .await?;
    expect_output(&again, "2")?;
    expect_count_state(&api, "PyCounter", "ret", 2).await?;

    // 4. Workflow retention.
    let patched = api.patch_json("/services/Signup", &json!({ "workflow_completion_retention": "2s" })).await?;
    patched.expect_status(200)?;
    let sent = api.ingress_post("/Signup/w3/run/send", r#""a@b""#).await?;
    let run_id = expect_send(&sent, "Accepted")?;
    let confirm = api.ingress_post("/Signup/w3/confirm", r#""yes""#).await?;
    confirm.expect_status(200)?;
    expect_output(&get(&api, "/restate/workflow/Signup/w3/attach").await?, r#""confirmed:yes""#)?;
    call_expect(&api, "/Signup/w3/status", "", r#""yes""#).await?;
    poll_until(WRITE_TIMEOUT, "the workflow run to be purged after its retention", async || {
        let output = get(&api, "/restate/workflow/Signup/w3/output").await?;
        if output.status == 200 {
            return Ok(None);
        }
        expect_error(&output, 404, "ingress")?;
        Ok(Some(()))
    })
    .await?;
    let status = api.ingress_post("/Signup/w3/status", "").await?;
    status.expect_status(200)?;
    ensure!(status.body.is_empty(), "status after the purge: {:?}", status.body);
    let rerun = api.ingress_post("/Signup/w3/run/send", r#""a@b""#).await?;
    ensure!(expect_send(&rerun, "Accepted")? == run_id, "the new run of w3 has another id");

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}
