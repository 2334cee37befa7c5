//! End-to-end tests of handlers that wait for invocations they did not
//! start, with the real SDK services of `tests/services/ts/invoker.mjs` and
//! `tests/services/py/invoker_services.py` (`Attacher`, `PyAttacher`): attach
//! by id, get output, a repeated idempotent call, and a workflow run called
//! from a handler.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll.

mod invocation_support;
mod invoker_support;

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use invoker_support::*;
use keel_e2e::{Cluster, LEADER_TIMEOUT, Sdk, poll_until, run_test};
use serde_json::json;

/// A well-formed invocation id that no test creates.
const UNKNOWN: &str = "inv_10JI5b4yQzpD5Z9GgFm79jzIRqMAa09IbL";

/// One node; the TypeScript and Python invoker services registered. For
/// each SDK:
///
/// 1. `Waiter/wait("<sdk>-a1")` is sent (it waits on an awakeable), then
///    `Attacher/attach(<its id>)`; (TypeScript) `Attacher/output(<its
///    id>)` answers "not ready". The awakeable is resolved with "x": the
///    attacher answers `"attached:x@1"`, a new attach to the completed
///    invocation too, and (TypeScript) the output is `"output:\"x@1\""`.
/// 2. Attaching to an unknown id answers `"failed:404:…not found"`.
/// 3. Two `Attacher/waitOnce("<sdk>-once")` call `Waiter/wait` with the same
///    idempotency key: one `Waiter/wait` runs (one attempt), with the id the
///    ingress gives that key (`/restate/invocation/Waiter/wait/<key>/output`);
///    once resolved with "v", both answer `"waited:v@1"`.
///
/// Then (TypeScript) a workflow run called from a handler
/// (`Attacher/runWorkflow` of `Flow`/"wa1") has the workflow's id: the
/// ingress's `/restate/workflow/Flow/wa1/output` sees it (470 while it
/// runs); a second call is refused with 409; after `Flow/wa1/go("ok")` the
/// ingress's workflow attach answers `"a@b:ok"` and the first call
/// `"ran:a@b:ok"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_attach_to_invocations_they_did_not_start() {
    run_test("handlers_attach_to_invocations_they_did_not_start", attach_scenario()).await;
}

async fn attach_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = invoker_services(&c, Sdk::TypeScript).await?;
    let py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    let names = ["Attacher", "Waiter", "PyAttacher", "PyWaiter", "Flow"];
    wait_for_services(std::slice::from_ref(&api), &names).await?;

    for (attacher, waiter, sdk) in [("Attacher", "Waiter", "ts"), ("PyAttacher", "PyWaiter", "py")] {
        let typescript = sdk == "ts";
        // 1. Attach to a running invocation, then to the completed one.
        let key = format!("{sdk}-a1");
        let target = send(&api, &format!("/{waiter}/wait"), &json!(key).to_string()).await?;
        let awakeable = awakeable_of(&api, waiter, &key).await?;
        let attached = send(&api, &format!("/{attacher}/attach"), &json!(target).to_string()).await?;
        if typescript {
            call_expect(&api, "/Attacher/output", &json!(target).to_string(), r#""not ready""#).await?;
        }
        resolve(&api, &awakeable, "x").await?;
        expect_output(&attach(&api, &attached).await?, r#""attached:x@1""#).context(attacher)?;
        call_expect(&api, &format!("/{attacher}/attach"), &json!(target).to_string(), r#""attached:x@1""#).await?;
        if typescript {
            call_expect(&api, "/Attacher/output", &json!(target).to_string(), r#""output:\"x@1\"""#).await?;
        }

        // 2. An unknown invocation.
        let reply = api.ingress_post(&format!("/{attacher}/attach"), &json!(UNKNOWN).to_string()).await?;
        reply.expect_status(200)?;
        let answer = reply.json()?;
        let answer = answer.as_str().with_context(|| format!("{attacher}: {answer}"))?;
        ensure!(
            answer.starts_with("failed:404:") && answer.contains("not found"),
            "{attacher}: attach to an unknown id answered {answer:?}"
        );

        // 3. Two calls with one idempotency key run one invocation.
        let key = format!("{sdk}-once");
        let first = send(&api, &format!("/{attacher}/waitOnce"), &json!(key).to_string()).await?;
        let second = send(&api, &format!("/{attacher}/waitOnce"), &json!(key).to_string()).await?;
        let awakeable = awakeable_of(&api, waiter, &key).await?;
        let callee = invocation_of(&api, waiter, &key).await?;
        let by_key = format!("/restate/invocation/{waiter}/wait/{key}/output");
        let reply = api.ingress_request("GET", &by_key, Vec::new(), &[]).await?;
        expect_error(&reply, 470, "ingress").with_context(|| format!("GET {by_key} while it runs"))?;
        resolve(&api, &awakeable, "v").await?;
        for id in [&first, &second] {
            expect_output(&attach(&api, id).await?, r#""waited:v@1""#).with_context(|| format!("{attacher} {id}"))?;
        }
        let reply = api.ingress_request("GET", &by_key, Vec::new(), &[]).await?;
        let id = expect_output(&reply, r#""v@1""#).with_context(|| format!("GET {by_key}"))?;
        ensure!(id == callee, "{waiter}/wait ran as {callee}, the idempotency key names {id}");
        ensure!(attempts(&api, waiter, &callee).await? == 1, "{waiter}/wait({key}) ran more than once");
    }

    // A workflow run called from a handler.
    let run = json!({ "workflow": "Flow", "key": "wa1", "input": "a@b" }).to_string();
    let first = send(&api, "/Attacher/runWorkflow", &run).await?;
    let output = "/restate/workflow/Flow/wa1/output";
    poll_until(LEADER_TIMEOUT, "the workflow run to exist", async || {
        let reply = api.ingress_request("GET", output, Vec::new(), &[]).await?;
        match reply.status {
            470 => Ok(Some(())),
            404 => bail!("not created yet"),
            _ => bail!("GET {output}: unexpected {reply:?}"),
        }
    })
    .await?;
    call_expect(&api, "/Attacher/runWorkflow", &run, r#""failed:409:the workflow method was already invoked""#).await?;
    let go = api.ingress_post("/Flow/wa1/go", r#""ok""#).await?;
    go.expect_status(200).context("Flow/wa1/go")?;
    let reply = api.ingress_request("GET", "/restate/workflow/Flow/wa1/attach", Vec::new(), &[]).await?;
    expect_output(&reply, r#""a@b:ok""#)?;
    expect_output(&attach(&api, &first).await?, r#""ran:a@b:ok""#)?;
    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}
