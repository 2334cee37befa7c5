//! End-to-end tests of deployments as the invoker uses them, with the real
//! SDK services of `tests/services/ts/invoker.mjs` and
//! `tests/services/py/invoker_services.py`: pinning across a re-registration
//! and HTTP/1.1 request-response deployments.
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

// ---------------------------------------------------------------------------
// running_invocations_stay_on_their_deployment
// ---------------------------------------------------------------------------

/// One node; revision 1 of the TypeScript and Python invoker services
/// registered. `Pinned/wait` (and `PyPinned/wait`) suspends after one
/// second of inactivity (its manifest says so) while it waits on an
/// awakeable, and answers "<value>@<revision>". For both SDKs:
///
/// 1. `Pinned/wait("p1")` runs on revision 1 and suspends.
/// 2. The same services at another URI (reporting revision 2) are
///    registered: 201; `GET /services/Pinned` shows revision 2 on the new
///    deployment.
/// 3. A new `Pinned/wait("p2")` runs on the new deployment; a suspended
///    `Pinned/wait("p3")` is moved there by
///    `PATCH /invocations/{id}/resume?deployment=latest` (200), where it
///    publishes the same awakeable again.
/// 4. The awakeables are resolved with "v": the suspended "p1" resumes on
///    its own deployment ("v@1"); "p2" and "p3" answer "v@2".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_invocations_stay_on_their_deployment() {
    run_test("running_invocations_stay_on_their_deployment", pinning_scenario()).await;
}

async fn pinning_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let old_ts = invoker_services(&c, Sdk::TypeScript).await?;
    let old_py = invoker_services(&c, Sdk::Python).await?;
    let api = c.nodes[0].api.clone();
    wait_for_services(std::slice::from_ref(&api), &["Pinned", "PyPinned"]).await?;
    let sdks = [(Sdk::TypeScript, "Pinned", "Waiter"), (Sdk::Python, "PyPinned", "PyWaiter")];

    // 1. Suspended on revision 1 ("p1" stays there, "p3" will move).
    let mut first = Vec::new();
    for (_, pinned, waiter) in sdks {
        let mut ids = Vec::new();
        for key in ["p1", "p3"] {
            let id = send(&api, &format!("/{pinned}/wait"), &json!(key).to_string()).await?;
            let awakeable = awakeable_of(&api, waiter, key).await?;
            wait_status(&api, &id, "suspended").await?;
            ids.push((id, awakeable));
        }
        first.push(ids);
    }

    // 2. Revision 2 at other URIs.
    let mut new = Vec::new();
    for (sdk, pinned, _) in sdks {
        let port = free_ports(1)[0];
        let services =
            SdkService::start_program(sdk, c.dir(), port, Program::Invoker { revision: 2, http1: false }).await?;
        let reply = api.register_deployment(&services.uri(), json!({})).await?;
        reply.expect_status(201)?;
        let new_id = reply.json()?["id"].as_str().context("deployment id")?.to_string();
        let service = api.get(&format!("/services/{pinned}")).await?.json()?;
        ensure!(
            service["revision"] == 2 && service["deployment_id"] == new_id.as_str(),
            "{pinned} after re-registration: {service}"
        );
        new.push(services);
    }

    for ((_, pinned, waiter), ids) in sdks.iter().zip(&first) {
        let [(first, first_awakeable), (moved, moved_awakeable)] = ids.as_slice() else {
            anyhow::bail!("{pinned}: expected two invocations on revision 1")
        };
        // 3. New invocations go to revision 2 (the waiter, which publishes the awakeables, too);
        //    a resume with `deployment=latest` moves "p3" there as well.
        let second = send(&api, &format!("/{pinned}/wait"), r#""p2""#).await?;
        let second_awakeable = awakeable_of(&api, waiter, "p2").await?;
        admin_patch(&api, &format!("/invocations/{moved}/resume?deployment=latest")).await?.expect_status(200)?;
        ensure!(awakeable_of(&api, waiter, "p3").await? == *moved_awakeable, "{pinned}: p3's awakeable changed");

        // 4. Each answers from its deployment.
        for awakeable in [first_awakeable, &second_awakeable, moved_awakeable] {
            resolve(&api, awakeable, "v").await?;
        }
        expect_output(&attach(&api, first).await?, r#""v@1""#).with_context(|| format!("pinned {pinned}"))?;
        expect_output(&attach(&api, &second).await?, r#""v@2""#).with_context(|| format!("new {pinned}"))?;
        expect_output(&attach(&api, moved).await?, r#""v@2""#).with_context(|| format!("moved {pinned}"))?;
    }

    old_ts.finish();
    old_py.finish();
    for services in new {
        services.finish();
    }
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
