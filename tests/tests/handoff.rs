//! End-to-end tests of the sync→async handoff (`Prefer: wait=N`,
//! `Prefer: respond-async`, `?timeout=`), the bounded attach that follows
//! it, per-handler custom async answers, and the ingress's in-flight limit,
//! against the real TypeScript and Python SDK test services.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Api, Cluster, LEADER_TIMEOUT, POLL_INTERVAL, Reply, Sdk, poll_until, run_test};
use serde_json::{Value, json};

/// `POST path` with a JSON `body` and extra `headers`.
async fn post(api: &Api, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    api.ingress_request("POST", path, body, &all).await
}

async fn get(api: &Api, path: &str) -> Result<Reply> {
    api.ingress_request("GET", path, Vec::new(), &[]).await
}

/// Checks a default handoff answer: 202, `Location` and `x-restate-id`,
/// and the body `{"invocationId", "status": "Running", "attach"}`. Returns
/// (id, location).
fn expect_handoff(reply: &Reply) -> Result<(String, String)> {
    reply.expect_status(202)?;
    let id = reply.header("x-restate-id").with_context(|| format!("no x-restate-id in {reply:?}"))?.to_string();
    ensure!(is_invocation_id(&id), "bad id {id:?}");
    let location = format!("/restate/invocation/{id}/attach");
    ensure!(reply.header("location") == Some(location.as_str()), "Location of {reply:?}, expected {location}");
    let want = json!({ "invocationId": id, "status": "Running", "attach": location });
    ensure!(reply.json()? == want, "handoff body {}, expected {want}", reply.body);
    Ok((id, location))
}

/// Follows `location` until the attach answers 200; every other answer
/// must be the bounded attach's 202 with the same `Location`.
async fn follow(api: &Api, location: &str, expected: &str) -> Result<String> {
    poll_until(LEADER_TIMEOUT, &format!("{location} to answer {expected}"), async || {
        let reply = get(api, location).await?;
        if reply.status == 202 {
            ensure!(reply.header("location") == Some(location), "202 of {location} moved: {reply:?}");
            return Ok(None);
        }
        Ok(Some(expect_output(&reply, expected)?))
    })
    .await
}

// ---------------------------------------------------------------------------
// calls_hand_off_to_async
// ---------------------------------------------------------------------------

/// One node with `--attach-timeout 2s`; the TypeScript and Python services.
///
/// 1. `Greeter/greet` with `Prefer: wait=10` finishes in time: 200 as usual.
/// 2. `Greeter/sleepThenEcho` 4000 with `Prefer: wait=15` parks on its
///    timer, so the ingress hands off well before the 15 s: 202 with
///    `Location: /restate/invocation/{id}/attach`, `Preference-Applied:
///    wait=15` and the JSON body; following the Location answers 200 `4000`
///    with the same id. `PyGreeter/sleepThenEcho` 4000 with `?timeout=1s`
///    hands off at the timeout the same way.
/// 3. `Prefer: respond-async` hands off at once: `Greeter/greet` → 202, and
///    its Location answers "Hello, Ann!".
/// 4. `SideEffects/flaky` with `Prefer: wait=15` hands off when its first
///    failure backs off before the retry; the Location answers 3.
/// 5. `Signup/h1/run` with `Prefer: wait=10` parks on its promise: 202. Its
///    Location, and `/restate/workflow/Signup/h1/attach`, answer 202 with
///    their own URL as Location after the 2 s attach bound; after
///    `confirm("ok")` the Location answers "confirmed:ok". `PySignup` with
///    `Prefer: wait=1` likewise.
/// 6. `Prefer: wait=soon` and `?timeout=forever` are 400 (source ingress).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_hand_off_to_async() {
    run_test("calls_hand_off_to_async", handoff_scenario()).await;
}

async fn handoff_scenario() -> Result<()> {
    let c = Cluster::start(1, &["--attach-timeout", "2s"]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();

    // 1. In time: no handoff.
    let reply = post(&api, "/Greeter/greet", "\"Ann\"", &[("prefer", "wait=10")]).await?;
    expect_output(&reply, "\"Hello, Ann!\"").context("greet with Prefer: wait=10")?;

    // 2. Parked on a timer (TS) or past the timeout (Python).
    let reply = post(&api, "/Greeter/sleepThenEcho", "4000", &[("prefer", "wait=15")]).await?;
    let (id, location) = expect_handoff(&reply).context("sleepThenEcho with Prefer: wait=15")?;
    ensure!(reply.header("preference-applied") == Some("wait=15"), "Preference-Applied of {reply:?}");
    ensure!(follow(&api, &location, "4000").await? == id, "the Location answered for another invocation");
    let reply = post(&api, "/PyGreeter/sleepThenEcho?timeout=1s", "4000", &[]).await?;
    let (id, location) = expect_handoff(&reply).context("PyGreeter/sleepThenEcho?timeout=1s")?;
    ensure!(reply.header("preference-applied").is_none(), "Preference-Applied without Prefer: {reply:?}");
    ensure!(follow(&api, &location, "4000").await? == id, "the Location answered for another invocation");

    // 3. respond-async.
    let reply = post(&api, "/Greeter/greet", "\"Ann\"", &[("prefer", "respond-async")]).await?;
    let (_, location) = expect_handoff(&reply).context("greet with Prefer: respond-async")?;
    follow(&api, &location, "\"Hello, Ann!\"").await?;

    // 4. A retry backoff parks.
    let reply = post(&api, "/SideEffects/flaky", "\"handoff\"", &[("prefer", "wait=15")]).await?;
    let (_, location) = expect_handoff(&reply).context("flaky with Prefer: wait=15")?;
    follow(&api, &location, "3").await?;

    // 5. The bounded attach.
    for (signup, prefer) in [("Signup", "wait=10"), ("PySignup", "wait=1")] {
        let reply = post(&api, &format!("/{signup}/h1/run"), "\"a@b.c\"", &[("prefer", prefer)]).await?;
        let (id, location) = expect_handoff(&reply).with_context(|| format!("{signup} run"))?;
        for url in [location.clone(), format!("/restate/workflow/{signup}/h1/attach")] {
            let again = get(&api, &url).await?;
            again.expect_status(202).with_context(|| format!("{url} before confirm"))?;
            ensure!(again.header("location") == Some(url.as_str()), "{url}: Location of {again:?}");
            ensure!(again.header("x-restate-id") == Some(id.as_str()), "{url}: x-restate-id of {again:?}");
        }
        post(&api, &format!("/{signup}/h1/confirm"), "\"ok\"", &[]).await?.expect_status(200)?;
        ensure!(follow(&api, &location, "\"confirmed:ok\"").await? == id, "{signup}: another id");
    }

    // 6. Malformed waits.
    let reply = post(&api, "/Greeter/greet", "\"Ann\"", &[("prefer", "wait=soon")]).await?;
    expect_error(&reply, 400, "ingress").context("Prefer: wait=soon")?;
    let reply = post(&api, "/Greeter/greet?timeout=forever", "\"Ann\"", &[]).await?;
    expect_error(&reply, 400, "ingress").context("?timeout=forever")?;

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// custom_async_responses
// ---------------------------------------------------------------------------

/// One node; the TypeScript services.
///
/// 1. `PATCH /services/Greeter` sets a custom async answer for
///    `sleepThenEcho`: status 200, headers `x-job: {{invocation_id}}` and
///    `content-type`, a JSON body template; `GET /services/Greeter` shows it.
/// 2. `sleepThenEcho` 2000 with `Prefer: respond-async` answers exactly the
///    filled template, `x-job` equal to `x-restate-id`; its `poll` URL then
///    answers 2000.
/// 3. A status of 42 and an unknown handler are 400; the stored answer is
///    unchanged.
/// 4. `null` removes it: the next handoff is the default 202.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_async_responses() {
    run_test("custom_async_responses", custom_scenario()).await;
}

async fn custom_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();

    // 1. Set it.
    let answer = json!({
        "status": 200,
        "headers": { "x-job": "{{invocation_id}}", "content-type": "application/json" },
        "body": "{\"job\":\"{{invocation_id}}\",\"poll\":\"{{attach_url}}\"}",
    });
    let reply = api.patch_json("/services/Greeter", &json!({ "async_responses": { "sleepThenEcho": answer } })).await?;
    reply.expect_status(200)?;
    let shown = api.get("/services/Greeter").await?.json()?;
    ensure!(shown["async_responses"]["sleepThenEcho"] == answer, "GET /services/Greeter shows {shown}");

    // 2. Use it.
    let reply = post(&api, "/Greeter/sleepThenEcho", "2000", &[("prefer", "respond-async")]).await?;
    reply.expect_status(200)?;
    let id = reply.header("x-restate-id").context("no x-restate-id")?.to_string();
    ensure!(reply.header("x-job") == Some(id.as_str()), "x-job of {reply:?}");
    let poll = format!("/restate/invocation/{id}/attach");
    ensure!(reply.json()? == json!({ "job": id, "poll": poll }), "custom body {}", reply.body);
    follow(&api, &poll, "2000").await?;

    // 3. Refused changes.
    let bad = json!({ "async_responses": { "sleepThenEcho": { "status": 42 } } });
    api.patch_json("/services/Greeter", &bad).await?.expect_status(400).context("status 42")?;
    let bad = json!({ "async_responses": { "noSuchHandler": { "status": 202 } } });
    api.patch_json("/services/Greeter", &bad).await?.expect_status(400).context("unknown handler")?;
    let shown = api.get("/services/Greeter").await?.json()?;
    ensure!(shown["async_responses"]["sleepThenEcho"] == answer, "after refused patches: {shown}");

    // 4. Remove it.
    let reply = api.patch_json("/services/Greeter", &json!({ "async_responses": { "sleepThenEcho": null } })).await?;
    reply.expect_status(200)?;
    ensure!(reply.json()?.get("async_responses").is_none(), "still shown: {}", reply.body);
    let reply = post(&api, "/Greeter/sleepThenEcho", "100", &[("prefer", "respond-async")]).await?;
    let (_, location) = expect_handoff(&reply)?;
    follow(&api, &location, "100").await?;

    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// overload_is_429
// ---------------------------------------------------------------------------

/// One node with `--max-inflight-requests 2`; the TypeScript services.
/// Two calls of `Signup/{o1,o2}/run` block on their promises and hold both
/// slots: a third call then answers 429 with the JSON error (source
/// ingress) and `Retry-After: 1`, while `/restate/health` (which takes no
/// slot) still answers 200. The probing calls compete for the slots with
/// the two calls they wait for (a probe in flight when those arrive leaves
/// one of them a 429), so each blocked caller retries while refused, as a
/// client told `Retry-After` would; a refused run was never created, so its
/// retry is the first run, not a duplicate. Once the two callers hang up
/// the ingress serves again; both runs are still there: confirming them
/// makes their attach answer "confirmed:…".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_429() {
    run_test("overload_is_429", overload_scenario()).await;
}

async fn overload_scenario() -> Result<()> {
    let c = Cluster::start(1, &["--max-inflight-requests", "2"]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();

    let blocked: Vec<_> = ["o1", "o2"]
        .into_iter()
        .map(|key| {
            let api = api.clone();
            tokio::spawn(async move {
                loop {
                    let reply = post(&api, &format!("/Signup/{key}/run"), "\"x\"", &[]).await?;
                    if reply.status != 429 {
                        return anyhow::Ok(reply);
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            })
        })
        .collect();
    let refused = poll_until(LEADER_TIMEOUT, "the ingress to refuse a third request", async || {
        let reply = post(&api, "/Greeter/greet", "\"third\"", &[]).await?;
        Ok((reply.status == 429).then_some(reply))
    })
    .await?;
    expect_error(&refused, 429, "ingress")?;
    ensure!(refused.header("retry-after") == Some("1"), "Retry-After of {refused:?}");
    ensure!(blocked.iter().all(|task| !task.is_finished()), "a blocked call ended before the third was refused");
    get(&api, "/restate/health").await?.expect_status(200).context("health during the overload")?;
    for task in &blocked {
        task.abort();
    }
    poll_until(LEADER_TIMEOUT, "the ingress to serve again", async || {
        Ok((post(&api, "/Greeter/greet", "\"again\"", &[]).await?.status == 200).then_some(()))
    })
    .await?;
    for key in ["o1", "o2"] {
        post(&api, &format!("/Signup/{key}/confirm"), "\"go\"", &[]).await?.expect_status(200)?;
        let reply = get(&api, &format!("/restate/workflow/Signup/{key}/attach")).await?;
        let body: Value = reply.json().unwrap_or(Value::Null);
        expect_output(&reply, "\"confirmed:go\"").with_context(|| format!("{key}: {body}"))?;
    }
    ts.finish();
    c.finish();
    Ok(())
}
