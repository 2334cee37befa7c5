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
    let services =
        SdkService::start_program(sdk, c.dir(), port, Program::Invoker { revision: 1, http1: false }).await?;
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
/// 0. `GET /services/{s}/handlers/failKill` shows the handler's
///    `retry_policy` overrides.
/// 1. `failPause` (both SDKs) becomes `paused` after exactly 3 attempts
///    (`GET /invocations/{id}` answers `{"id", "status": "paused"}`);
///    pausing it again answers 200; `resume` answers 200 and runs it again:
///    paused once more after exactly 6 attempts.
/// 2. `failKill` (both SDKs) completes after exactly 3 attempts with the last
///    failure: attach answers 500 with the SDK's message; the admin view
///    shows `completed`, `failure`. Pause or resume of it → 409.
/// 3. `Retries/pauseInRun` throws `PauseError` in a `ctx.run`: the SDK's
///    ErrorMessage asks for a pause, so it is `paused` after exactly 1 attempt.
/// 4. `Retries/failSlow` waits a minute after its first failed attempt;
///    `resume` answers 200 and the second attempt runs at once.
/// 5. Unknown id → 404 for pause, resume and the view; a malformed id → 400;
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
        // 0. The admin API shows the handler's retry policy overrides.
        let handler = api.get(&format!("/services/{service}/handlers/failKill")).await?.json()?;
        let want =
            json!({"initial_interval": "50ms", "max_attempts": 3, "max_interval": "200ms", "on_max_attempts": "Kill"});
        ensure!(handler["retry_policy"] == want, "{service}/failKill: {handler}");

        // 1. Paused after exactly 3 attempts; resumed, paused again after 3 more.
        let id = send(&api, &format!("/{service}/failPause"), "").await?;
        let view = wait_status(&api, &id, "paused").await?;
        ensure!(view == json!({"id": id, "status": "paused"}), "{service}: view {view}");
        ensure!(attempts(&api, service, &id).await? == 3, "{service}: not exactly 3 attempts before the pause");
        admin_patch(&api, &format!("/invocations/{id}/pause")).await?.expect_status(200)?;
        admin_patch(&api, &format!("/invocations/{id}/resume")).await?.expect_status(200)?;
        wait_attempts(&api, service, &id, 6).await?;
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

    // 3. The SDK asks for a pause itself (PauseError in a ctx.run): one attempt.
    let id = send(&api, "/Retries/pauseInRun", "").await?;
    wait_status(&api, &id, "paused").await?;
    ensure!(attempts(&api, "Retries", &id).await? == 1, "pauseInRun: not exactly 1 attempt before the pause");

    // 4. A resume skips the backoff: failSlow waits a minute between attempts.
    let id = send(&api, "/Retries/failSlow", "").await?;
    wait_attempts(&api, "Retries", &id, 1).await?;
    let started = std::time::Instant::now();
    admin_patch(&api, &format!("/invocations/{id}/resume")).await?.expect_status(200)?;
    wait_attempts(&api, "Retries", &id, 2).await?;
    ensure!(started.elapsed().as_secs() < 30, "the second attempt waited for the backoff");
    admin_patch(&api, &format!("/invocations/{id}/kill")).await?.expect_status(200)?;

    // 5. Bad requests.
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

// ---------------------------------------------------------------------------
// kill9_during_a_side_effect
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered.
/// `Steps/run` and `PySteps/run` (keys "s1" and "p1") run
/// two `ctx.run` steps that append a line to a log file on every execution;
/// step "two" then blocks until a gate file exists.
///
/// 1. Once the log shows step "two" started, step "one" was acknowledged
///    (the SDK goes past a `ctx.run` only once its result is durable).
/// 2. keel is `SIGKILL`ed while step "two" is in flight and restarted: the
///    invocation resumes from the journal, and step "two", whose result was
///    never stored, runs a second time (the log shows it twice).
/// 3. The gate opens; attach answers `["one","two"]` (Python:
///    `["one", "two"]`); the log holds exactly
///    one execution of step "one" and exactly two of step "two".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_a_side_effect() {
    run_test("kill9_during_a_side_effect", side_effect_crash_scenario()).await;
}

async fn side_effect_crash_scenario() -> Result<()> {
    let mut c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Steps", "PySteps"]).await?;
    let log = c.dir().join("steps.log");
    let gate = c.dir().join("steps.gate");
    // (service, key, output: Python's JSON has spaces after commas)
    let runs = [("Steps", "s1", r#"["one","two"]"#), ("PySteps", "p1", r#"["one", "two"]"#)];
    let lines = |key: &str, step: &str| -> usize {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| *l == format!("{key} {step}")).count()
    };
    let wait_lines = async |key: &str, step: &str, n: usize| -> Result<()> {
        keel_e2e::poll_until(keel_e2e::LEADER_TIMEOUT, &format!("{n} executions of {key}'s step {step}"), async || {
            let seen = lines(key, step);
            ensure!(seen <= n, "{key}'s step {step} ran {seen} times, more than {n}");
            if seen == n { Ok(Some(())) } else { anyhow::bail!("{seen} so far") }
        })
        .await
    };

    // 1. Step two runs, so step one was acknowledged.
    let mut ids = Vec::new();
    for (service, key, _) in runs {
        let input = json!({"key": key, "log": log, "gate": gate}).to_string();
        ids.push(send(&api, &format!("/{service}/run"), &input).await?);
        wait_lines(key, "two", 1).await?;
        ensure!(lines(key, "one") == 1, "{key}: step one ran {} times before the crash", lines(key, "one"));
    }

    // 2. Crash while step two is in flight; it runs again after the restart.
    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;
    for (_, key, _) in runs {
        wait_lines(key, "two", 2).await?;
    }

    // 3. Open the gate: the invocations complete, every step ran as expected.
    std::fs::write(&gate, b"open")?;
    for ((_, key, output), id) in runs.iter().zip(&ids) {
        expect_output(&attach(&api, id).await?, output).with_context(|| key.to_string())?;
        ensure!(lines(key, "one") == 1, "{key}: the acknowledged step one ran {} times", lines(key, "one"));
        ensure!(lines(key, "two") == 2, "{key}: step two ran {} times, expected 2", lines(key, "two"));
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// inactivity_timeout_suspends
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered; for
/// `Waiter` and `PyWaiter`:
///
/// 1. `PATCH /services/{waiter}` with `inactivity_timeout: "1s"` answers the
///    service with that timeout.
/// 2. `Waiter/wait` blocks on an awakeable: within the timeout keel closes
///    the stream and the SDK suspends (the admin view says `suspended`).
/// 3. Resolving the awakeable resumes it with a second attempt, which
///    answers "hi@1" (attach); the handler ran exactly twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inactivity_timeout_suspends() {
    run_test("inactivity_timeout_suspends", inactivity_scenario()).await;
}

async fn inactivity_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Waiter", "PyWaiter"]).await?;

    for waiter in ["Waiter", "PyWaiter"] {
        // 1. A one-second inactivity timeout.
        let reply = api.patch_json(&format!("/services/{waiter}"), &json!({"inactivity_timeout": "1s"})).await?;
        reply.expect_status(200)?;
        let timeout = reply.json()?["inactivity_timeout"].clone();
        ensure!(timeout == "1s", "{waiter}: inactivity_timeout after PATCH: {timeout}");

        // 2. Suspended once the stream was idle for a second.
        let id = send(&api, &format!("/{waiter}/wait"), r#""i1""#).await?;
        let awakeable = awakeable_of(&api, waiter, "i1").await?;
        wait_status(&api, &id, "suspended").await?;
        ensure!(attempts(&api, waiter, &id).await? == 1, "{waiter}: more than one attempt before the suspension");

        // 3. The awakeable resumes it.
        resolve(&api, &awakeable, "hi").await?;
        expect_output(&attach(&api, &id).await?, r#""hi@1""#).with_context(|| waiter.to_string())?;
        ensure!(attempts(&api, waiter, &id).await? == 2, "{waiter}: not exactly one attempt after the suspension");
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// abort_timeout_ends_a_stuck_attempt
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered; for
/// `Steps` and `PySteps`:
///
/// 1. `PATCH /services/{steps}` with `inactivity_timeout` and `abort_timeout`
///    of 500 ms answers them.
/// 2. `Steps/run` blocks in its side effect "two", so the SDK cannot
///    suspend when keel closes the stream; the abort timeout then ends the
///    attempt and a retry runs step "two" again (a second log line), while
///    the acknowledged step "one" is replayed from the journal.
/// 3. The gate opens: attach answers `["one","two"]`; step one ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_timeout_ends_a_stuck_attempt() {
    run_test("abort_timeout_ends_a_stuck_attempt", abort_scenario()).await;
}

async fn abort_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Steps", "PySteps"]).await?;
    let log = c.dir().join("abort.log");
    let gate = c.dir().join("abort.gate");
    let lines = |key: &str, step: &str| -> usize {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| *l == format!("{key} {step}")).count()
    };

    // (service, key, output: Python's JSON has spaces after commas)
    let runs = [("Steps", "a1", r#"["one","two"]"#), ("PySteps", "a2", r#"["one", "two"]"#)];
    let mut ids = Vec::new();
    for (service, key, _) in runs {
        // 1. Short timeouts.
        let patch = json!({"inactivity_timeout": "500ms", "abort_timeout": "500ms"});
        let reply = api.patch_json(&format!("/services/{service}"), &patch).await?;
        let metadata = reply.expect_status(200)?.json()?;
        ensure!(
            metadata["inactivity_timeout"] == "500ms" && metadata["abort_timeout"] == "500ms",
            "{service} after PATCH: {metadata}"
        );

        // 2. The stuck attempt is aborted and retried.
        let input = json!({"key": key, "log": log, "gate": gate}).to_string();
        ids.push(send(&api, &format!("/{service}/run"), &input).await?);
        keel_e2e::poll_until(keel_e2e::LEADER_TIMEOUT, &format!("{key}'s step two to run again"), async || {
            let n = lines(key, "two");
            if n >= 2 { Ok(Some(())) } else { anyhow::bail!("{n} executions of step two") }
        })
        .await?;
    }

    // 3. They complete once the side effect can finish.
    std::fs::write(&gate, b"open")?;
    for ((_, key, output), id) in runs.iter().zip(&ids) {
        expect_output(&attach(&api, id).await?, output).with_context(|| key.to_string())?;
        ensure!(lines(key, "one") == 1, "{key}: the acknowledged step one ran {} times", lines(key, "one"));
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// running_invocations_stay_on_their_deployment
// ---------------------------------------------------------------------------

/// One node; revision 1 of the TypeScript invoker services registered.
/// `Pinned/wait` suspends after one second of inactivity (its manifest says
/// so) while it waits on an awakeable, and answers "<value>@<revision>".
///
/// 1. `Pinned/wait("p1")` runs on revision 1 and suspends.
/// 2. The same services at another URI (reporting revision 2) are
///    registered: 201; `GET /services/Pinned` shows revision 2 on the new
///    deployment.
/// 3. A new `Pinned/wait("p2")` runs on the new deployment.
/// 4. Both awakeables are resolved with "v": the suspended invocation
///    resumes on its own deployment ("v@1"), the new one answers "v@2".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_invocations_stay_on_their_deployment() {
    run_test("running_invocations_stay_on_their_deployment", pinning_scenario()).await;
}

async fn pinning_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let old = invoker_services(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Pinned"]).await?;

    // 1. Suspended on revision 1.
    let first = send(&api, "/Pinned/wait", r#""p1""#).await?;
    let first_awakeable = awakeable_of(&api, "Waiter", "p1").await?;
    wait_status(&api, &first, "suspended").await?;

    // 2. Revision 2 at another URI.
    let port = free_ports(1)[0];
    let new = SdkService::start_program(Sdk::TypeScript, c.dir(), port, Program::Invoker { revision: 2, http1: false })
        .await?;
    let reply = api.register_deployment(&new.uri(), json!({})).await?;
    reply.expect_status(201)?;
    let new_id = reply.json()?["id"].as_str().context("deployment id")?.to_string();
    let service = api.get("/services/Pinned").await?.json()?;
    ensure!(
        service["revision"] == 2 && service["deployment_id"] == new_id.as_str(),
        "Pinned after re-registration: {service}"
    );

    // 3. New invocations go to revision 2 (Waiter, which publishes the awakeables, too).
    let second = send(&api, "/Pinned/wait", r#""p2""#).await?;
    let second_awakeable = awakeable_of(&api, "Waiter", "p2").await?;

    // 4. Each answers from its own deployment.
    resolve(&api, &first_awakeable, "v").await?;
    resolve(&api, &second_awakeable, "v").await?;
    expect_output(&attach(&api, &first).await?, r#""v@1""#).context("the pinned invocation")?;
    expect_output(&attach(&api, &second).await?, r#""v@2""#).context("the new invocation")?;

    old.finish();
    new.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// http11_request_response_deployments
// ---------------------------------------------------------------------------

/// One node; the TypeScript invoker services served over HTTP/1.1
/// (`http1Handler`, REQUEST_RESPONSE) and the Python ones (hypercorn),
/// both registered with `use_http_11: true`.
///
/// 1. The deployments show `"http_version": "HTTP/1.1"` and
///    `"protocol_type": "RequestResponse"`.
/// 2. `Http1/k/add` (state, `ctx.run`, a 100 ms sleep, each one attempt
///    ending in a suspension or a journal replay over request/response)
///    answers "2:4" for 2, then "5:10" for 3; the same for `PyHttp1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http11_request_response_deployments() {
    run_test("http11_request_response_deployments", http11_scenario()).await;
}

async fn http11_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let api = c.nodes[0].api.clone();
    let ports = free_ports(2);
    let http1 = Program::Invoker { revision: 1, http1: true };
    let ts = SdkService::start_program(Sdk::TypeScript, c.dir(), ports[0], http1).await?;
    let py = SdkService::start_program(Sdk::Python, c.dir(), ports[1], http1).await?;
    for uri in [ts.uri(), py.uri()] {
        let reply = api.register_deployment(&uri, json!({"use_http_11": true})).await?;
        reply.expect_status(201).with_context(|| format!("registering {uri} over HTTP/1.1"))?;
        let id = reply.json()?["id"].as_str().context("deployment id")?.to_string();
        let deployment = api.get(&format!("/deployments/{id}")).await?.json()?;
        ensure!(
            deployment["http_version"] == "HTTP/1.1" && deployment["protocol_type"] == "RequestResponse",
            "deployment at {uri}: {deployment}"
        );
    }
    wait_for_services(std::slice::from_ref(&api), &["Http1", "PyHttp1"]).await?;

    for service in ["Http1", "PyHttp1"] {
        call_expect(&api, &format!("/{service}/k/add"), "2", r#""2:4""#).await?;
        call_expect(&api, &format!("/{service}/k/add"), "3", r#""5:10""#).await?;
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// concurrency_limit_queues_attempts
// ---------------------------------------------------------------------------

/// One node started with `--max-concurrent-invocations 2`; the TypeScript
/// invoker services registered. `Waiter/waitFile` writes its awakeable id
/// to a file named after its key and the most handlers waiting at once to
/// `max-in-flight` (files, because any call would need a slot too).
///
/// Six invocations are sent at once; in three rounds exactly two more of
/// them run (their files appear, no third one), the two are resolved and
/// answer "ok@1". At no point did more than two run: `max-in-flight` is 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_queues_attempts() {
    run_test("concurrency_limit_queues_attempts", concurrency_scenario()).await;
}

async fn concurrency_scenario() -> Result<()> {
    let c = Cluster::start(1, &["--max-concurrent-invocations", "2"]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Waiter"]).await?;
    let dir = c.dir().join("waiters");
    std::fs::create_dir_all(&dir)?;
    let keys: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
    let mut ids = std::collections::BTreeMap::new();
    for key in &keys {
        let input = json!({"key": key, "dir": dir}).to_string();
        ids.insert(key.clone(), send(&api, "/Waiter/waitFile", &input).await?);
    }
    // A key has started once its file holds the awakeable id.
    let running = || -> Vec<String> {
        keys.iter().filter(|k| std::fs::read(dir.join(k)).is_ok_and(|id| !id.is_empty())).cloned().collect()
    };

    let mut done = std::collections::BTreeSet::new();
    for round in 1..=3 {
        let want = 2 * round;
        let started = keel_e2e::poll_until(keel_e2e::LEADER_TIMEOUT, &format!("{want} started"), async || {
            let started = running();
            ensure!(
                started.len() <= want,
                "round {round}: {} started at once: {started:?}",
                started.len() - done.len()
            );
            if started.len() == want { Ok(Some(started)) } else { anyhow::bail!("{started:?}") }
        })
        .await?;
        let new: Vec<String> = started.into_iter().filter(|k| !done.contains(k)).collect();
        for key in new {
            let awakeable = std::fs::read_to_string(dir.join(&key))?;
            resolve(&api, &awakeable, "ok").await?;
            expect_output(&attach(&api, &ids[&key]).await?, r#""ok@1""#).with_context(|| format!("waiter {key}"))?;
            done.insert(key);
        }
    }
    let max = std::fs::read_to_string(dir.join("max-in-flight"))?;
    ensure!(max == "2", "at most {max} handlers ran at once, expected 2");

    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// cancel_and_kill_reach_child_calls
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered; for
/// each SDK:
///
/// 1. `Family/parent("f1")` calls `Waiter/wait("f1-child")`, which waits on
///    an awakeable (`PyFamily`, `PyWaiter` for Python).
/// 2. `PATCH /invocations/{parent}/cancel` → 202; cancelling again → 202
///    (the signal is delivered once).
/// 3. The SDK cancels the child call: attaching to the child and to the
///    parent both answer 409 with a "cancelled" message; both are completed.
/// 4. Another parent ("f2") is killed (200): keel kills the child call it
///    waits on too; both answer 409 "killed".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_kill_reach_child_calls() {
    run_test("cancel_and_kill_reach_child_calls", cancellation_scenario()).await;
}

async fn cancellation_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Family", "Waiter", "PyFamily", "PyWaiter"]).await?;

    for (family, waiter) in [("Family", "Waiter"), ("PyFamily", "PyWaiter")] {
        // 1. The parent waits on its child.
        let parent = send(&api, &format!("/{family}/parent"), r#""f1""#).await?;
        awakeable_of(&api, waiter, "f1-child").await?;
        let child = invocation_of(&api, waiter, "f1-child").await?;

        // 2. Cancel the parent (twice).
        for _ in 0..2 {
            admin_patch(&api, &format!("/invocations/{parent}/cancel")).await?.expect_status(202)?;
        }

        // 3. Both end cancelled.
        for (who, id) in [("child", &child), ("parent", &parent)] {
            let reply = attach(&api, id).await?;
            let message = expect_error(&reply, 409, "invocation").with_context(|| format!("{family}: {who}"))?;
            ensure!(message.to_lowercase().contains("cancel"), "{family}: {who}: {message:?}");
            wait_status(&api, id, "completed").await?;
        }

        // 4. Killing a parent kills the child it waits on.
        let parent = send(&api, &format!("/{family}/parent"), r#""f2""#).await?;
        awakeable_of(&api, waiter, "f2-child").await?;
        let child = invocation_of(&api, waiter, "f2-child").await?;
        admin_patch(&api, &format!("/invocations/{parent}/kill")).await?.expect_status(200)?;
        for (who, id) in [("parent", &parent), ("child", &child)] {
            let reply = attach(&api, id).await?;
            let message = expect_error(&reply, 409, "invocation").with_context(|| format!("{family}: {who}"))?;
            ensure!(message == "killed", "{family}: killed {who}: {message:?}");
        }
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// named_signals_between_invocations
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered; for
/// each SDK (`Signals`, `PySignals`):
///
/// `Signals/receive("r1")` waits for the named signal "go";
/// `Signals/send({target, value: "yes"})` sends it (`SendSignalCommand` with
/// a name) and answers "sent"; the receiver then answers "got yes".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_signals_between_invocations() {
    run_test("named_signals_between_invocations", signals_scenario()).await;
}

async fn signals_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Signals", "Waiter", "PySignals", "PyWaiter"]).await?;

    for (signals, waiter) in [("Signals", "Waiter"), ("PySignals", "PyWaiter")] {
        let receiver = send(&api, &format!("/{signals}/receive"), r#""r1""#).await?;
        let published = invocation_of(&api, waiter, "r1").await?;
        ensure!(published == receiver, "{signals}: receiver published {published}, sent as {receiver}");
        let input = json!({"target": receiver, "value": "yes"}).to_string();
        call_expect(&api, &format!("/{signals}/send"), &input, r#""sent""#).await?;
        expect_output(&attach(&api, &receiver).await?, r#""got yes""#).with_context(|| signals.to_string())?;
    }

    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}
