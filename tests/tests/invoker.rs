//! End-to-end tests of the leader-side invoker with the real SDK services of
//! `tests/services/ts/invoker.mjs` and `tests/services/py/invoker_services.py`:
//! retry policies (pause, resume, kill), a `kill -9` while a `ctx.run` runs,
//! suspension by the inactivity timeout, the abort timeout, the per-node
//! limit of attempts in flight and a deployment's share of it, which keeps
//! an endpoint that never answers from delaying the others.
//! (`invoker_deployments.rs` and
//! `invoker_signals.rs` hold the rest.)
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll.

mod invocation_support;
mod invoker_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use invoker_support::*;
use keel_e2e::{Cluster, Sdk, SdkService, run_test};
use serde_json::json;

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
///    keel is then `SIGKILL`ed and restarted: both are still `paused` with
///    6 attempts, and resume once more to 9 attempts and `paused`.
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
    let mut c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Retries", "PyRetries"]).await?;

    let mut paused = Vec::new();
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
        paused.push((service, id));

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

    // 1b. Paused is durable: still paused after a kill -9, and resumable.
    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;
    for (service, id) in &paused {
        wait_status(&api, id, "paused").await?;
        ensure!(attempts(&api, service, id).await? == 6, "{service}: attempts after the restart");
        admin_patch(&api, &format!("/invocations/{id}/resume")).await?.expect_status(200)?;
        wait_attempts(&api, service, id, 9).await?;
        wait_status(&api, id, "paused").await?;
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
// concurrency_limit_queues_attempts
// ---------------------------------------------------------------------------

/// One node started with `--max-concurrent-invocations 2` and as large a
/// share for one deployment (the default would be half); the TypeScript
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
    let c =
        Cluster::start(1, &["--max-concurrent-invocations", "2", "--max-concurrent-invocations-per-deployment", "2"])
            .await?;
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
// hung_endpoint_does_not_delay_other_deployments
// ---------------------------------------------------------------------------

/// One node started with `--max-concurrent-invocations 4` (a deployment's
/// share of the slots is then 2); the TypeScript services and an endpoint
/// that takes requests and never answers (`Hung/wait`, [`HungEndpoint`])
/// registered as two deployments.
///
/// Six invocations of `Hung/wait` are sent: the endpoint gets two requests
/// (its deployment's share) and holds them; the other four wait without
/// holding a slot. `Greeter/greet` still answers within 10 s (before the
/// share, the hung endpoint held all four slots, each for its attempt's
/// inactivity and abort timeouts: 11 minutes), and the endpoint still
/// holds two requests, no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hung_endpoint_does_not_delay_other_deployments() {
    run_test("hung_endpoint_does_not_delay_other_deployments", hung_endpoint_scenario()).await;
}

async fn hung_endpoint_scenario() -> Result<()> {
    let c = Cluster::start(1, &["--max-concurrent-invocations", "4"]).await?;
    let api = c.nodes[0].api.clone();
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    register(&api, &ts.uri()).await?;
    let hung = HungEndpoint::start().await?;
    hung.register(&api).await?;
    wait_for_services(std::slice::from_ref(&api), &["Greeter", "Hung"]).await?;

    for _ in 0..6 {
        send(&api, "/Hung/wait", "").await?;
    }
    keel_e2e::poll_until(keel_e2e::LEADER_TIMEOUT, "the hung endpoint to hold two requests", async || {
        let held = hung.held();
        if held >= 2 { Ok(Some(())) } else { anyhow::bail!("it holds {held}") }
    })
    .await?;
    // Whatever else could start has started.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let started = std::time::Instant::now();
    let greet =
        tokio::time::timeout(std::time::Duration::from_secs(10), api.ingress_post("/Greeter/greet", r#""Ann""#))
            .await
            .context("Greeter/greet waited behind the hung endpoint for 10 s")??;
    expect_output(&greet, r#""Hello, Ann!""#)?;
    ensure!(hung.held() == 2, "the hung endpoint holds {} requests, expected its share of 2", hung.held());
    eprintln!("Greeter/greet answered in {:?} beside the hung endpoint", started.elapsed());

    ts.finish();
    c.finish();
    Ok(())
}
