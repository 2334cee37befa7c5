//! End-to-end tests of invocations through the ingress (port 8080): real
//! handlers of the TypeScript and Python SDK test services
//! (`tests/services`), called and sent through `keel`, across a `SIGKILL`
//! of a single node and through every node of a three-node cluster.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll; every test
//! has an overall deadline (120 s by default).
//!
//! Only what keel supports today is exercised: input/output, virtual-object
//! state, `ctx.run` with retries, terminal errors and the per-key queueing of
//! exclusive handlers, sleeps, service-to-service calls, awakeables and
//! workflow promises. Idempotency keys and delayed sends have their own
//! tests (`idempotency.rs`, `delayed.rs`).

mod invocation_support;

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use keel_e2e::{Cluster, LEADER_TIMEOUT, Sdk, WRITE_TIMEOUT, poll_until, run_test};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// calls_real_sdk_handlers
// ---------------------------------------------------------------------------

/// One node; the TypeScript and the Python services registered.
///
/// 1. `Greeter/greet` and `PyGreeter/greet` with `"Ann"` answer 200
///    `"Hello, Ann!"` with `content-type: application/json` and an
///    `x-restate-id` of the form `inv_1` + 33 base62 characters; every call
///    gets a distinct id.
/// 2. `Counter/c1/add` 1 then 5 answer `1` and `6`; `get` answers `6` through
///    POST and GET; the admin API shows the state `{"count": "6"}`; a fresh
///    key's `get` answers `0`. The same for `PyCounter`.
/// 3. `failTerminal` (both SDKs) answers 418 with exactly
///    `{"code":418,"message":"boom","source":"invocation"}` and
///    `x-restate-error-source: invocation`.
/// 4. `SideEffects/flaky` and `PySideEffects/flaky` with `"k1"` answer `3`
///    (the `ctx.run` needed three attempts); `Steps`/`PySteps` `s1/run` with 4
///    answer 7 (three `ctx.run` steps); `Greeter/sleepThenEcho` and
///    `PyGreeter/sleepThenEcho` with 300 answer 300 (a durable timer fired);
///    `Greeter/greetTwice` and `PyGreeter/greetTwice` with "Bo" answer both
///    greetings (two request-response calls to another handler);
///    `Awaiter/waitForAwakeable` and `PyAwaiter/waitForAwakeable` answer
///    "done" (an awakeable resolved by another handler), and a malformed
///    awakeable id on the ingress is 400; `Signup`/`PySignup` `w1/run` (sent)
///    waits on its promise: `status` is empty, `confirm("yes")` resolves it,
///    attaching to the run answers "confirmed:yes", `status` then "yes", a
///    second `confirm` fails with 409, and a second `run` is refused (send:
///    202 `PreviouslyAccepted` with the same id; call: 409).
/// 5. Ingress errors, all JSON with `"source":"ingress"` and the matching
///    header: unknown service 404, unknown handler 404, `/Greeter` and
///    `/a/b/c/d/e` 400, PUT 405, an `idempotency-key` header on a workflow
///    run 400, `?delay=` on a call (not a send) 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_real_sdk_handlers() {
    run_test("calls_real_sdk_handlers", calls_scenario()).await;
}

async fn calls_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();

    let mut ids = BTreeSet::new();
    let mut note = |id: String| -> Result<()> {
        ensure!(ids.insert(id.clone()), "invocation id {id} was given to two calls");
        Ok(())
    };

    // 1. Greeters.
    note(call_expect(&api, "/Greeter/greet", r#""Ann""#, r#""Hello, Ann!""#).await?)?;
    note(call_expect(&api, "/PyGreeter/greet", r#""Ann""#, r#""Hello, Ann!""#).await?)?;

    // 2. Counters: state, shared reads through POST and GET, fresh keys.
    for service in ["Counter", "PyCounter"] {
        note(call_expect(&api, &format!("/{service}/c1/add"), "1", "1").await?)?;
        note(call_expect(&api, &format!("/{service}/c1/add"), "5", "6").await?)?;
        note(call_expect(&api, &format!("/{service}/c1/get"), "", "6").await?)?;
        let via_get = api.ingress_request("GET", &format!("/{service}/c1/get"), Vec::new(), &[]).await?;
        note(expect_output(&via_get, "6").context("GET of a handler")?)?;
        expect_count_state(&api, service, "c1", 6).await?;
        note(call_expect(&api, &format!("/{service}/c2/get"), "", "0").await?)?;
    }

    // 3. Terminal errors.
    for service in ["Greeter", "PyGreeter"] {
        let reply = api.ingress_post(&format!("/{service}/failTerminal"), "").await?;
        let message = expect_error(&reply, 418, "invocation")?;
        ensure!(message == "boom", "{service}/failTerminal: message {message:?}, expected \"boom\"");
        let id = reply.header("x-restate-id").with_context(|| format!("no x-restate-id in {reply:?}"))?;
        ensure!(is_invocation_id(id), "x-restate-id {id:?} of a failed call is malformed");
        note(id.to_string())?;
    }

    // 4. ctx.run with retries.
    for service in ["SideEffects", "PySideEffects"] {
        note(call_expect(&api, &format!("/{service}/flaky"), r#""k1""#, "3").await?)?;
    }
    // Three journaled ctx.run steps in a workflow: 4 -> 7.
    for service in ["Steps", "PySteps"] {
        note(call_expect(&api, &format!("/{service}/s1/run"), "4", "7").await?)?;
    }

    // 4a. Calls between services (through the outbox, back as completions).
    note(call_expect(&api, "/Greeter/greetTwice", r#""Bo""#, r#"["Hello, Bo!","Hello, Bo again!"]"#).await?)?;
    note(call_expect(&api, "/PyGreeter/greetTwice", r#""Bo""#, r#"["Hello, Bo!", "Hello, Bo again!"]"#).await?)?;

    // 4a'. Awakeables: created, resolved by another handler, awaited.
    note(call_expect(&api, "/Awaiter/waitForAwakeable", "", r#""done""#).await?)?;
    note(call_expect(&api, "/PyAwaiter/waitForAwakeable", "", r#""done""#).await?)?;
    let bad = api.ingress_post("/restate/awakeables/sign_1bad/resolve", "1").await?;
    expect_error(&bad, 400, "ingress")?;

    // 4a''. Workflows: run waits on a durable promise that a shared handler
    // resolves; peeks see it; completing it twice fails.
    for service in ["Signup", "PySignup"] {
        let sent = api.ingress_post(&format!("/{service}/w1/run/send"), r#""a@b.c""#).await?;
        sent.expect_status(202).with_context(|| format!("{service}/w1/run/send"))?;
        let body = sent.json()?;
        let run_id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("{body}"))?.to_string();
        let status = api.ingress_post(&format!("/{service}/w1/status"), "").await?;
        status.expect_status(200).with_context(|| format!("{service}/w1/status before confirm"))?;
        ensure!(status.body.is_empty(), "{service} status before confirm: {:?}", status.body);
        let confirm = api.ingress_post(&format!("/{service}/w1/confirm"), r#""yes""#).await?;
        confirm.expect_status(200).with_context(|| format!("{service}/w1/confirm"))?;
        ensure!(confirm.body.is_empty(), "{service} confirm answered {:?}", confirm.body);
        let attach =
            api.ingress_request("GET", &format!("/restate/invocation/{run_id}/attach"), Vec::new(), &[]).await?;
        expect_output(&attach, r#""confirmed:yes""#).with_context(|| format!("{service} run result"))?;
        call_expect(&api, &format!("/{service}/w1/status"), "", r#""yes""#).await?;
        let again = api.ingress_post(&format!("/{service}/w1/confirm"), r#""again""#).await?;
        let message = expect_error(&again, 409, "invocation")?;
        ensure!(message.contains("already"), "{service} second confirm: {message:?}");
        // The run handler runs once per workflow id.
        let resend = api.ingress_post(&format!("/{service}/w1/run/send"), r#""a@b.c""#).await?;
        resend.expect_status(202).with_context(|| format!("{service}/w1/run/send again"))?;
        let want = json!({ "invocationId": run_id, "status": "PreviouslyAccepted" });
        ensure!(resend.json()? == want, "{service} second run send: {:?}, expected {want}", resend.body);
        let rerun = api.ingress_post(&format!("/{service}/w1/run"), r#""a@b.c""#).await?;
        let message = expect_error(&rerun, 409, "invocation")?;
        ensure!(message == "the workflow method was already invoked", "{service} second run: {message:?}");
    }

    // 4b. ctx.sleep: a durable timer fires and the handler resumes.
    for service in ["Greeter", "PyGreeter"] {
        note(call_expect(&api, &format!("/{service}/sleepThenEcho"), "300", "300").await?)?;
    }

    // 5. Ingress errors.
    let post = |path: &'static str| {
        let api = api.clone();
        async move { api.ingress_post(path, r#""Ann""#).await }
    };
    expect_error(&post("/NoSuchService/greet").await?, 404, "ingress").context("unknown service")?;
    expect_error(&post("/Greeter/noSuchHandler").await?, 404, "ingress").context("unknown handler")?;
    expect_error(&post("/Greeter").await?, 400, "ingress").context("path without a handler")?;
    expect_error(&post("/a/b/c/d/e").await?, 400, "ingress").context("path of five segments")?;
    let put = api.ingress_request("PUT", "/Greeter/greet", r#""Ann""#, &[("content-type", "application/json")]).await?;
    expect_error(&put, 405, "ingress").context("PUT")?;
    let idem = api
        .ingress_request(
            "POST",
            "/Signup/w9/run",
            r#""a@b""#,
            &[("content-type", "application/json"), ("idempotency-key", "k-1")],
        )
        .await?;
    expect_error(&idem, 400, "ingress").context("idempotency-key on a workflow run")?;
    let delayed = api.ingress_post("/Counter/c1/add?delay=10s", "1").await?;
    expect_error(&delayed, 400, "ingress").context("delay on a call")?;

    // Nothing above changed the counter behind our back.
    call_expect(&api, "/Counter/c1/get", "", "6").await?;
    expect_count_state(&api, "Counter", "c1", 6).await?;

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// sends_run_exactly_once_across_kill9
// ---------------------------------------------------------------------------

const SENDS: u64 = 20;
/// Reads of the final count that must all agree.
const STABLE_READS: usize = 5;

/// One node, the TypeScript services.
///
/// 1. Twenty one-way sends of `Counter/x/add(1)`: each answers 202
///    `{"invocationId": <inv_1…>, "status": "Accepted"}`, all ids distinct.
/// 2. The node is `SIGKILL`ed at once and restarted on the same data dir.
/// 3. `Counter/x/get` is polled until it answers 20; an exclusive
///    `add(0)` (which queues behind every earlier `add` of the key, so it
///    runs only once all twenty are done) answers exactly 20, as does the
///    admin state and then every one of a few more `get`s: each send ran
///    exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_run_exactly_once_across_kill9() {
    run_test("sends_run_exactly_once_across_kill9", sends_scenario()).await;
}

async fn sends_scenario() -> Result<()> {
    let mut c = Cluster::start(1, &[]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();

    // 1. Sends.
    let mut ids = BTreeSet::new();
    for i in 0..SENDS {
        let reply = api.ingress_post("/Counter/x/add/send", "1").await?;
        reply.expect_status(202).with_context(|| format!("send #{i}"))?;
        let body = reply.json()?;
        let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("send #{i}: {body}"))?;
        ensure!(is_invocation_id(id), "send #{i}: invocationId {id:?} is malformed: {body}");
        let want = json!({ "invocationId": id, "status": "Accepted" });
        ensure!(body == want, "send #{i}: body {body}, expected {want}");
        ensure!(ids.insert(id.to_string()), "send #{i}: invocation id {id} was given before");
    }

    // 2. Crash and restart.
    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;

    // 3. Every send runs, exactly once.
    let reached = poll_until(LEADER_TIMEOUT, &format!("Counter/x/get to answer {SENDS}"), async || {
        let r = api.ingress_post("/Counter/x/get", "").await;
        if is_unavailable(&r) {
            bail!("{}", describe(&r));
        }
        let reply = r?;
        if reply.status != 200 {
            // Not worth waiting for: hand it over to fail below.
            return Ok(Some(reply));
        }
        let n: u64 = reply.body.parse().with_context(|| format!("get answered {reply:?}"))?;
        if n >= SENDS { Ok(Some(reply)) } else { bail!("count is {n}") }
    })
    .await?;
    expect_output(&reached, &SENDS.to_string()).context("Counter/x/get after the restart")?;

    let barrier = call_until_answered(std::slice::from_ref(&api), 0, "/Counter/x/add", "0", WRITE_TIMEOUT).await?;
    expect_output(&barrier, &SENDS.to_string()).context("add 0 after all sends")?;
    expect_count_state(&api, "Counter", "x", SENDS).await?;
    for i in 0..STABLE_READS {
        call_expect(&api, "/Counter/x/get", "", &SENDS.to_string()).await.with_context(|| format!("read #{i}"))?;
    }

    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// calls_through_every_node_of_a_cluster
// ---------------------------------------------------------------------------

const KEY: &str = "shared";
const ROUNDS: u64 = 9;

/// Three nodes (8 partitions, replication factor 3), the TypeScript services
/// registered through node 1.
///
/// 1. Once every node's catalog lists the services and every partition has
///    a leader, `Counter/shared/add(1)` is called nine times through nodes 1,
///    2, 3, 1, … and answers exactly 1, 2, …, 9; `get` through every node
///    answers 9 and the admin state is `{"count": "9"}`.
/// 2. The leader of the key's partition is `SIGKILL`ed; once the survivors
///    agree on new leaders, `add(1)` through a survivor answers 10 (an
///    ambiguous answer is resolved by reading, never by blindly repeating
///    the add) and `get` through both survivors answers 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_through_every_node_of_a_cluster() {
    run_test("calls_through_every_node_of_a_cluster", cluster_scenario()).await;
}

async fn cluster_scenario() -> Result<()> {
    let (mut c, ts) = cluster_serving(3, &["--partitions", "8", "--replication-factor", "3"], Sdk::TypeScript).await?;
    let all = c.all();
    let apis = c.apis(&all);

    // 1. Round robin over the nodes.
    for n in 1..=ROUNDS {
        let api = &apis[((n - 1) as usize) % apis.len()];
        let reply = api.ingress_post(&format!("/Counter/{KEY}/add"), "1").await?;
        expect_output(&reply, &n.to_string()).with_context(|| format!("add #{n} through node {}", api.node_id))?;
    }
    let mut partition = None;
    for api in &apis {
        call_expect(api, &format!("/Counter/{KEY}/get"), "", &ROUNDS.to_string())
            .await
            .with_context(|| format!("get through node {}", api.node_id))?;
        let p = expect_count_state(api, "Counter", KEY, ROUNDS).await?;
        ensure!(partition.is_none_or(|q| q == p), "nodes disagree on the partition of {KEY}: {partition:?} vs {p}");
        partition = Some(p);
    }
    let p = partition.context("no node answered")?;

    // 2. Kill the partition's leader.
    let (vi, _) = c.leader_view(&all, p).await?;
    let victim = c.nodes[vi].id;
    eprintln!("killing node {victim}, leader of partition {p} (holding Counter/{KEY})");
    c.nodes[vi].kill9().await?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != vi).collect();
    let sapis = c.apis(&survivors);
    let leaders = c.wait_for_leaders(&survivors, LEADER_TIMEOUT).await?;
    ensure!(leaders.get(&p).is_some_and(|&l| l != victim), "partition {p} has no new leader: {leaders:?}");

    add_one_exactly_once(&sapis, 0, KEY, ROUNDS + 1).await?;
    for api in &sapis {
        call_expect(api, &format!("/Counter/{KEY}/get"), "", &(ROUNDS + 1).to_string())
            .await
            .with_context(|| format!("get through node {} after the failover", api.node_id))?;
        expect_count_state(api, "Counter", KEY, ROUNDS + 1).await?;
    }

    ts.finish();
    c.finish();
    Ok(())
}
