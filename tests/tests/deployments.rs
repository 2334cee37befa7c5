//! End-to-end tests of the service catalog through the admin API:
//! registering real SDK endpoints (the TypeScript and Python test services
//! of `tests/services`), listing and patching services, replication of the
//! catalog to every node, and registration errors.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll; every test
//! has an overall deadline (120 s by default).

mod catalog_support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use catalog_support::*;
use keel_e2e::{Api, Cluster, LEADER_TIMEOUT, STARTUP_TIMEOUT, Sdk, SdkService, free_ports, poll_until, run_test};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// register_real_sdk_services
// ---------------------------------------------------------------------------

/// One node; the TypeScript and the Python services.
///
/// 1. Registering the TS endpoint answers 201 with a `dp_1…` id, `Location:
///    deployments/{id}`, protocol 5..7, a `restate-sdk-typescript/` SDK
///    version and the five services with their exact types, handlers and
///    handler types, revision 1 and the default retentions, timeouts and
///    retry policy. The Python endpoint likewise with the `Py` services.
/// 2. `GET /services` lists exactly the ten names; re-registering the same TS
///    uri answers 200 with the same id; `GET /deployments` lists both with
///    uri, protocol type, HTTP version, timestamps and name/revision pairs;
///    `GET /deployments/{id}` has the full ServiceMetadata, equal to
///    `GET /services/{name}`; unknown ids and services are 404.
/// 3. `PATCH /services`: idempotency retention "2days" and public false read
///    back as "2d" and false (also through GET); ISO-8601 input; workflow
///    retention on a plain service is 400; an unknown service is 404.
/// 4. Handlers endpoints, the `/v4` prefix (equal answers), `/v1` (400) and
///    `/version`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_real_sdk_services() {
    run_test("register_real_sdk_services", register_scenario()).await;
}

async fn register_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let py = SdkService::start(Sdk::Python, c.dir()).await?;
    let api = c.nodes[0].api.clone();
    wait_for_catalog(std::slice::from_ref(&api)).await?;
    ensure!(deployments(&api).await?.is_empty(), "a fresh node already has deployments");
    ensure!(service_names(&api).await?.is_empty(), "a fresh node already has services");

    // 1. Register both endpoints.
    let ts_reg = register_new(&api, &ts.uri()).await?;
    check_registration(Sdk::TypeScript, &ts_reg, 1)?;
    let ts_id = str_field(&ts_reg, "id")?.to_string();
    let py_reg = register_new(&api, &py.uri()).await?;
    check_registration(Sdk::Python, &py_reg, 1)?;
    let py_id = str_field(&py_reg, "id")?.to_string();
    ensure!(ts_id != py_id, "both deployments got id {ts_id}");

    // 2. Listing, idempotent re-registration, details.
    let mut all: Vec<String> = names(Sdk::TypeScript).into_iter().chain(names(Sdk::Python)).collect();
    all.sort();
    let listed = service_names(&api).await?;
    ensure!(listed == all, "GET /services lists {listed:?}, expected {all:?}");

    let again = api.register_deployment(&ts.uri(), json!({})).await?;
    again.expect_status(200)?;
    let again_body = again.json()?;
    expect_eq(&again_body, "id", json!(ts_id)).context("re-registering the same uri")?;
    let location = format!("deployments/{ts_id}");
    ensure!(again.location.as_deref() == Some(location.as_str()), "Location is {:?}", again.location);
    check_registration(Sdk::TypeScript, &again_body, 1)?;

    let deps = deployments(&api).await?;
    ensure!(
        deps.keys().cloned().collect::<BTreeSet<_>>() == BTreeSet::from([ts_id.clone(), py_id.clone()]),
        "GET /deployments lists {:?}, expected {ts_id} and {py_id}",
        deps.keys()
    );
    check_listed(Sdk::TypeScript, &deps[&ts_id], &ts_id, &ts.uri(), 1)?;
    check_listed(Sdk::Python, &deps[&py_id], &py_id, &py.uri(), 1)?;

    for (sdk, id, uri) in [(Sdk::TypeScript, &ts_id, ts.uri()), (Sdk::Python, &py_id, py.uri())] {
        let detail = get_json(&api, &format!("/deployments/{id}")).await?;
        for key in ["id", "uri", "protocol_type", "http_version", "created_at", "min_protocol_version"] {
            ensure!(detail.get(key) == deps[id].get(key), "GET /deployments/{id} and the list disagree on {key}");
        }
        expect_eq(&detail, "uri", json!(uri))?;
        let services = array_field(&detail, "services")?;
        ensure!(
            services.len() == sdk.service_names().len(),
            "GET /deployments/{id} has {} services: {detail}",
            services.len()
        );
        for s in services {
            check_service(sdk, s, id, 1)?;
            let name = str_field(s, "name")?;
            let single = get_json(&api, &format!("/services/{name}")).await?;
            ensure!(*s == single, "GET /deployments/{id} shows {name} as {s}, GET /services/{name} as {single}");
        }
    }
    error_of(&api.get("/deployments/dp_10000000000000000000000").await?, 404)?;
    error_of(&api.get("/services/NoSuchService").await?, 404)?;

    // 3. PATCH /services/{name}.
    let patched =
        api.patch_json("/services/Greeter", &json!({ "idempotency_retention": "2days", "public": false })).await?;
    patched.expect_status(200)?;
    let patched = patched.json()?;
    expect_eq(&patched, "name", json!("Greeter"))?;
    expect_eq(&patched, "idempotency_retention", json!("2d"))?;
    expect_eq(&patched, "public", json!(false))?;
    expect_eq(&patched, "inactivity_timeout", json!("1m"))?;
    expect_eq(&patched, "revision", json!(1))?;
    let greeter = get_json(&api, "/services/Greeter").await?;
    ensure!(greeter == patched, "GET /services/Greeter after PATCH is {greeter}, PATCH answered {patched}");

    let iso = api
        .patch_json("/services/Signup", &json!({ "workflow_completion_retention": "PT5H", "abort_timeout": "PT5H" }))
        .await?;
    iso.expect_status(200)?;
    let iso = iso.json()?;
    expect_eq(&iso, "workflow_completion_retention", json!("5h"))?;
    expect_eq(&iso, "abort_timeout", json!("5h"))?;
    expect_eq(&iso, "idempotency_retention", json!("1d"))?;

    let wrong = api.patch_json("/services/Greeter", &json!({ "workflow_completion_retention": "1h" })).await?;
    error_of(&wrong, 400)?;
    let greeter_after = get_json(&api, "/services/Greeter").await?;
    ensure!(greeter_after == patched, "a refused PATCH changed Greeter: {greeter_after}");
    error_of(&api.patch_json("/services/NoSuchService", &json!({ "public": true })).await?, 404)?;

    // 4. Handlers, prefixes, version.
    let counter = get_json(&api, "/services/Counter").await?;
    let v4 = get_json(&api, "/v4/services/Counter").await?;
    ensure!(v4 == counter, "GET /v4/services/Counter is {v4}, GET /services/Counter is {counter}");
    let handlers = get_json(&api, "/services/Counter/handlers").await?;
    ensure!(handlers == json!({ "handlers": counter["handlers"] }), "GET /services/Counter/handlers is {handlers}");
    let get = get_json(&api, "/services/Counter/handlers/get").await?;
    expect_eq(&get, "name", json!("get"))?;
    expect_eq(&get, "ty", json!("Shared"))?;
    let add = get_json(&api, "/v3/services/Counter/handlers/add").await?;
    expect_eq(&add, "ty", json!("Exclusive"))?;
    error_of(&api.get("/services/Counter/handlers/nope").await?, 404)?;
    let v2 = get_json(&api, "/v2/deployments").await?;
    ensure!(array_field(&v2, "deployments")?.len() == 2, "GET /v2/deployments: {v2}");
    error_of(&api.get("/v1/services").await?, 400)?;

    let version = get_json(&api, "/version").await?;
    expect_eq(&version, "min_admin_api_version", json!(2))?;
    expect_eq(&version, "max_admin_api_version", json!(4))?;

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// catalog_is_replicated_and_durable
// ---------------------------------------------------------------------------

/// Polls until every node in `apis` answers `GET /deployments` with exactly
/// the deployments `ids`, all nodes the same (full JSON), and `GET /services`
/// with exactly `services`. Returns the agreed deployments.
async fn wait_agreed(apis: &[Api], ids: &BTreeSet<String>, services: &[String]) -> Result<BTreeMap<String, Value>> {
    let nodes: Vec<u64> = apis.iter().map(|a| a.node_id).collect();
    let what = format!("nodes {nodes:?} to list exactly deployments {ids:?} and services {services:?}");
    poll_until(LEADER_TIMEOUT, &what, async || {
        let mut agreed: Option<(u64, BTreeMap<String, Value>)> = None;
        for api in apis {
            let deps = deployments(api).await?;
            let got: BTreeSet<String> = deps.keys().cloned().collect();
            ensure!(got == *ids, "node {} lists deployments {got:?}", api.node_id);
            let names = service_names(api).await?;
            ensure!(names == services, "node {} lists services {names:?}", api.node_id);
            match &agreed {
                None => agreed = Some((api.node_id, deps)),
                Some((other, first)) => ensure!(
                    *first == deps,
                    "nodes {other} and {} list different deployments: {first:?} vs {deps:?}",
                    api.node_id
                ),
            }
        }
        Ok(agreed.map(|(_, d)| d))
    })
    .await
}

/// The catalog group's entry (`metadata`) of `GET /cluster` on `api`'s node.
async fn catalog_group(api: &Api) -> Result<Value> {
    let view = get_json(api, "/cluster").await?;
    let group = field(&view, "metadata")?;
    ensure!(group.is_object(), "node {} reports no catalog group: {view}", api.node_id);
    Ok(group.clone())
}

/// (leader, committed index) of the catalog group: `apis[0]` names the
/// leader, which must be one of `apis` and see itself as leader.
async fn catalog_commit_point(apis: &[Api]) -> Result<(u64, u64)> {
    poll_until(LEADER_TIMEOUT, "a settled leader of the catalog group", async || {
        let leader = catalog_group(&apis[0]).await?["leader"].as_u64().context("no catalog leader known")?;
        let api = apis
            .iter()
            .find(|a| a.node_id == leader)
            .with_context(|| format!("node {leader}, not a live node, is named leader of the catalog group"))?;
        let own = catalog_group(api).await?;
        ensure!(own["leader"] == json!(leader), "node {leader} does not see itself as leader: {own}");
        Ok(Some((leader, own["committed"].as_u64().context("the leader reports no committed index")?)))
    })
    .await
}

fn sorted_names(sdks: &[Sdk]) -> Vec<String> {
    let mut v: Vec<String> = sdks.iter().flat_map(|&s| names(s)).collect();
    v.sort();
    v
}

/// Three nodes.
///
/// 1. Registers the TS endpoint through node 1; nodes 2 and 3 then list the
///    same deployment (identical JSON). `DELETE` without `force` is 501 and
///    deletes nothing.
/// 2. `SIGKILL`s node 1 and registers the Python endpoint through node 2
///    (the catalog group keeps its quorum), then restarts node 1, which ends
///    up listing both deployments with the same ids as the others.
///    Node 1's own replica of the catalog group catches up to the index
///    the Python registration was committed at (reads through node 1 alone
///    would also be answered by the leader).
/// 3. Deletes the TS deployment with `?force=true` through node 3 (202);
///    every node then lists only the Python deployment and services.
/// 4. `SIGKILL`s all three nodes and restarts them: the catalog (the Python
///    deployment, same id) is still there on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_is_replicated_and_durable() {
    run_test("catalog_is_replicated_and_durable", replicated_scenario()).await;
}

async fn replicated_scenario() -> Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let py = SdkService::start(Sdk::Python, c.dir()).await?;
    let all = c.all();
    let apis = c.apis(&all);
    wait_for_catalog(&apis).await?;

    // 1. Register through node 1, visible everywhere.
    let ts_reg = register_new(&apis[0], &ts.uri()).await?;
    check_registration(Sdk::TypeScript, &ts_reg, 1)?;
    let ts_id = str_field(&ts_reg, "id")?.to_string();
    let deps = wait_agreed(&apis, &BTreeSet::from([ts_id.clone()]), &sorted_names(&[Sdk::TypeScript])).await?;
    check_listed(Sdk::TypeScript, &deps[&ts_id], &ts_id, &ts.uri(), 1)?;

    let refused = apis[1].delete(&format!("/deployments/{ts_id}")).await?;
    error_of(&refused, 501)?;
    let still = deployments(&apis[2]).await?;
    ensure!(still.contains_key(&ts_id), "DELETE without force removed {ts_id}: {still:?}");

    // 2. Kill node 1, register through node 2, restart node 1.
    let (before, _) = catalog_commit_point(&apis).await?;
    eprintln!("killing node 1; node {before} leads the catalog group");
    c.nodes[0].kill9().await?;
    let survivors = c.apis(&[1, 2]);
    let py_reg = register_new(&survivors[0], &py.uri()).await?;
    check_registration(Sdk::Python, &py_reg, 1)?;
    let py_id = str_field(&py_reg, "id")?.to_string();
    ensure!(py_id != ts_id, "both deployments got id {ts_id}");
    let both = BTreeSet::from([ts_id.clone(), py_id.clone()]);
    let both_names = sorted_names(&[Sdk::TypeScript, Sdk::Python]);
    wait_agreed(&survivors, &both, &both_names).await?;
    let (leader, committed) = catalog_commit_point(&survivors).await?;
    eprintln!("the catalog group's leader (node {leader}) has committed index {committed} with node 1 down");

    c.nodes[0].restart().await?;
    // Node 1 catches up, then all three agree.
    let restarted = apis[0].clone();
    poll_until(LEADER_TIMEOUT, &format!("node 1's catalog replica to apply index {committed}"), async || {
        let applied = catalog_group(&restarted).await?["applied"].as_u64().unwrap_or(0);
        ensure!(applied >= committed, "node 1 has applied {applied} < {committed}");
        Ok(Some(()))
    })
    .await?;
    wait_agreed(&apis[..1], &both, &both_names).await?;
    let deps = wait_agreed(&apis, &both, &both_names).await?;
    check_listed(Sdk::TypeScript, &deps[&ts_id], &ts_id, &ts.uri(), 1)?;
    check_listed(Sdk::Python, &deps[&py_id], &py_id, &py.uri(), 1)?;
    let detail = get_json(&apis[0], &format!("/deployments/{py_id}")).await?;
    for s in array_field(&detail, "services")? {
        check_service(Sdk::Python, s, &py_id, 1)?;
    }

    // 3. Forced delete through node 3.
    let path = format!("/deployments/{ts_id}?force=true");
    let (deleted, ambiguous) =
        until_answered(&format!("DELETE {path} through node 3"), async || apis[2].delete(&path).await).await?;
    if !(ambiguous && deleted.status == 404) {
        deleted.expect_status(202)?;
    }
    let deps = wait_agreed(&apis, &BTreeSet::from([py_id.clone()]), &sorted_names(&[Sdk::Python])).await?;
    check_listed(Sdk::Python, &deps[&py_id], &py_id, &py.uri(), 1)?;
    for api in &apis {
        error_of(&api.get("/services/Greeter").await?, 404).with_context(|| format!("node {}", api.node_id))?;
        error_of(&api.get(&format!("/deployments/{ts_id}")).await?, 404)
            .with_context(|| format!("node {}", api.node_id))?;
    }

    // 4. Crash the whole cluster; the catalog survives.
    for node in &mut c.nodes {
        node.kill9().await?;
    }
    for node in &mut c.nodes {
        node.spawn()?;
    }
    for node in &mut c.nodes {
        node.wait_ready(STARTUP_TIMEOUT).await?;
    }
    let after = wait_agreed(&apis, &BTreeSet::from([py_id.clone()]), &sorted_names(&[Sdk::Python])).await?;
    ensure!(after == deps, "the catalog changed across a crash of every node: {deps:?} before, {after:?} after");

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// registration_errors
// ---------------------------------------------------------------------------

/// One node.
///
/// 1. Refused registrations, none of which registers anything: an
///    unreachable uri (500, `META0003`, message naming the uri), an `ftp`
///    uri, malformed JSON, a non-JSON content type (415), a Lambda ARN.
/// 2. A second TS instance on another port: a new deployment, to which every
///    TS service moves at revision 2.
/// 3. After restarting that instance, registering its uri again with
///    `force: false` answers 200 with the same id (same manifest), and the
///    revisions stay at 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_errors() {
    run_test("registration_errors", errors_scenario()).await;
}

async fn errors_scenario() -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let api = c.nodes[0].api.clone();
    wait_for_catalog(std::slice::from_ref(&api)).await?;

    // 1. Refusals.
    let port = free_ports(1)[0];
    let dead_uri = format!("http://127.0.0.1:{port}");
    let unreachable = api.register_deployment(&dead_uri, json!({})).await?;
    let message = error_of(&unreachable, 500)?;
    expect_eq(&unreachable.json()?, "restate_code", json!("META0003"))?;
    ensure!(message.contains(&dead_uri), "the discovery error does not name {dead_uri}: {message}");

    error_of(&api.post_json("/deployments", &json!({ "uri": "ftp://x" })).await?, 400)?;
    error_of(&api.post("/deployments", Some("application/json"), "{\"uri\": ").await?, 400)?;
    error_of(&api.post("/deployments", Some("application/json"), "[1, 2]").await?, 400)?;
    error_of(&api.post("/deployments", Some("text/plain"), format!("{{\"uri\":\"{dead_uri}\"}}")).await?, 415)?;
    let arn = json!({ "arn": "arn:aws:lambda:eu-central-1:123456789012:function:greeter:1" });
    error_of(&api.post_json("/deployments", &arn).await?, 400)?;
    ensure!(deployments(&api).await?.is_empty(), "a refused registration registered something");
    ensure!(service_names(&api).await?.is_empty(), "a refused registration registered services");

    // 2. Two TS instances: the second is a new revision of every service.
    let first = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let mut second = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    ensure!(first.port != second.port, "both TS instances on port {}", first.port);
    let first_reg = register_new(&api, &first.uri()).await?;
    check_registration(Sdk::TypeScript, &first_reg, 1)?;
    let first_id = str_field(&first_reg, "id")?.to_string();
    let second_reg = register_new(&api, &second.uri()).await?;
    let second_id = str_field(&second_reg, "id")?.to_string();
    ensure!(second_id != first_id, "the second instance got the first one's id {first_id}");
    check_registration(Sdk::TypeScript, &second_reg, 2)?;
    let greeter = get_json(&api, "/services/Greeter").await?;
    check_service(Sdk::TypeScript, &greeter, &second_id, 2)?;
    let listed = service_names(&api).await?;
    ensure!(listed == sorted_names(&[Sdk::TypeScript]), "GET /services lists {listed:?}");
    let deps = deployments(&api).await?;
    ensure!(
        deps.keys().cloned().collect::<BTreeSet<_>>() == BTreeSet::from([first_id.clone(), second_id.clone()]),
        "GET /deployments lists {:?}",
        deps.keys()
    );
    // The superseded deployment stays listed and can be shown. (Which
    // services it lists is left open: Restate keeps showing them at their
    // old revision.)
    expect_eq(&deps[&first_id], "uri", json!(first.uri()))?;
    expect_eq(&get_json(&api, &format!("/deployments/{first_id}")).await?, "id", json!(first_id))?;
    check_listed(Sdk::TypeScript, &deps[&second_id], &second_id, &second.uri(), 2)?;

    // 3. Same uri, same manifest after a restart: 200, same id.
    second.restart().await?;
    let again = api.register_deployment(&second.uri(), json!({ "force": false })).await?;
    again.expect_status(200)?;
    let again_body = again.json()?;
    expect_eq(&again_body, "id", json!(second_id))?;
    let location = format!("deployments/{second_id}");
    ensure!(again.location.as_deref() == Some(location.as_str()), "Location is {:?}", again.location);
    check_registration(Sdk::TypeScript, &again_body, 2)?;
    let greeter = get_json(&api, "/services/Greeter").await?;
    check_service(Sdk::TypeScript, &greeter, &second_id, 2)?;
    ensure!(deployments(&api).await?.len() == 2, "re-registering created a deployment");

    second.finish();
    first.finish();
    c.finish();
    Ok(())
}
