//! End-to-end tests of signals between invocations, with the real SDK
//! services of `tests/services/ts/invoker.mjs` and
//! `tests/services/py/invoker_services.py`: cancel and kill of a parent reach
//! the child calls it waits on, and named signals.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll.

mod invocation_support;
mod invoker_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use invoker_support::*;
use keel_e2e::{Cluster, Sdk, run_test};
use serde_json::json;

// ---------------------------------------------------------------------------
// cancel_and_kill_reach_child_calls
// ---------------------------------------------------------------------------

/// One node; the TypeScript and Python invoker services registered; for
/// each SDK:
///
/// 1. `Family/parent("f1")` calls `Waiter/wait("f1-child")`, which waits on
///    an awakeable (`PyFamily`, `PyWaiter` for Python).
/// 2. `PATCH /invocations/{parent}/cancel` → 202; cancelling again → 202
///    (the signal is delivered once) or, if the parent completed meanwhile,
///    409 "already completed".
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

        // 2. Cancel the parent (twice: the second cancel finds the signal
        // delivered, 202, or the parent already completed by the first, 409).
        admin_patch(&api, &format!("/invocations/{parent}/cancel")).await?.expect_status(202)?;
        let again = admin_patch(&api, &format!("/invocations/{parent}/cancel")).await?;
        if again.status != 202 {
            again.expect_status(409).with_context(|| format!("{family}: second cancel"))?;
            ensure!(again.body.contains("already completed"), "{family}: second cancel answered {}", again.body);
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
