//! End-to-end tests of the service catalog through the admin API:
//! registering real SDK endpoints (the TypeScript and Python test services
//! of `tests/services`), listing and patching services, replication of the
//! catalog to every node, and registration errors.
//!
//! Needs the `keel` binary (`cargo build -p keel`) and the SDK runtimes
//! (`bash tests/services/setup.sh`). Every wait is a bounded poll; every test
//! has an overall deadline (120 s by default).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{
    Api, Cluster, LEADER_TIMEOUT, POLL_INTERVAL, Reply, STARTUP_TIMEOUT, Sdk, SdkService, WRITE_TIMEOUT, free_ports,
    poll_until, run_test,
};
use serde_json::{Value, json};
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Expected catalog contents
// ---------------------------------------------------------------------------

/// (service, service `ty`, [(handler, handler `ty`, absent for plain services)]),
/// as declared by `tests/services/ts/services.mjs`; the Python services are
/// the same with a `Py` prefix.
type Layout = [(&'static str, &'static str, &'static [(&'static str, Option<&'static str>)]); 5];

const LAYOUT: Layout = [
    ("Greeter", "Service", &[("greet", None), ("greetTwice", None), ("failTerminal", None), ("sleepThenEcho", None)]),
    (
        "Counter",
        "VirtualObject",
        &[("add", Some("Exclusive")), ("get", Some("Shared")), ("reset", Some("Exclusive")), ("keys", Some("Shared"))],
    ),
    ("SideEffects", "Service", &[("flaky", None)]),
    ("Signup", "Workflow", &[("run", Some("Workflow")), ("confirm", Some("Shared")), ("status", Some("Shared"))]),
    ("Awaiter", "Service", &[("waitForAwakeable", None), ("resolveLater", None), ("sendDelayed", None)]),
];

/// Name of a [`LAYOUT`] service in `sdk`'s endpoint.
fn service_name(sdk: Sdk, base: &str) -> String {
    match sdk {
        Sdk::TypeScript => base.to_string(),
        Sdk::Python => format!("Py{base}"),
    }
}

fn names(sdk: Sdk) -> BTreeSet<String> {
    sdk.service_names().iter().map(|s| s.to_string()).collect()
}

/// Whether `id` matches `^dp_1[0-9A-Za-z]{22}$`.
fn is_deployment_id(id: &str) -> bool {
    id.len() == 26 && id.starts_with("dp_1") && id[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).with_context(|| format!("no `{key}` in {v}"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    field(v, key)?.as_str().with_context(|| format!("`{key}` is not a string in {v}"))
}

fn array_field<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    field(v, key)?.as_array().with_context(|| format!("`{key}` is not an array in {v}"))
}

/// The `name`s of the objects in `v[key]`, in order.
fn names_in(v: &Value, key: &str) -> Result<Vec<String>> {
    array_field(v, key)?.iter().map(|s| str_field(s, "name").map(String::from)).collect()
}

/// Checks that `v[key] == expected`.
fn expect_eq(v: &Value, key: &str, expected: Value) -> Result<()> {
    let got = field(v, key)?;
    ensure!(*got == expected, "`{key}` is {got}, expected {expected}, in {v}");
    Ok(())
}

/// The body must be a JSON error `{"message": <non-empty>, ...}`; returns the
/// message.
fn error_of(reply: &Reply, status: u16) -> Result<String> {
    reply.expect_status(status)?;
    reply.error_message()
}

// ---------------------------------------------------------------------------
// Admin API helpers
// ---------------------------------------------------------------------------

/// An answer that leaves it open whether the request took effect: none at
/// all, or 502/503/504 (no leader yet, an election, a lost quorum).
fn is_unavailable(r: &Result<Reply>) -> bool {
    match r {
        Err(_) => true,
        Ok(reply) => matches!(reply.status, 502..=504),
    }
}

/// Sends `f()` until it gets a definite answer (not [`is_unavailable`]),
/// for at most [`WRITE_TIMEOUT`]. Returns that answer and whether an earlier
/// attempt was ambiguous (it may have taken effect). Only for idempotent
/// requests: registering one uri, deleting one deployment.
async fn until_answered(what: &str, mut f: impl AsyncFnMut() -> Result<Reply>) -> Result<(Reply, bool)> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut unavailable = 0u32;
    loop {
        let r = f().await;
        if !is_unavailable(&r) {
            if unavailable > 0 {
                eprintln!("{what}: answered after {unavailable} unavailable attempt(s)");
            }
            return Ok((r?, unavailable > 0));
        }
        unavailable += 1;
        if Instant::now() + POLL_INTERVAL >= deadline {
            let last = match r {
                Ok(reply) => format!("{} ({})", reply.status, reply.body),
                Err(e) => format!("{e:#}"),
            };
            bail!("{what}: no definite answer within {WRITE_TIMEOUT:?}; last: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Registers `uri` through `api` as a new deployment: 201 (or 200 if an
/// earlier attempt was ambiguous and so may have registered it), with
/// `Location: deployments/{id}` and a well-formed id. Returns the body.
async fn register_new(api: &Api, uri: &str) -> Result<Value> {
    let what = format!("registering {uri} through node {}", api.node_id);
    let (reply, ambiguous) = until_answered(&what, async || api.register_deployment(uri, json!({})).await).await?;
    if !(ambiguous && reply.status == 200) {
        reply.expect_status(201)?;
    }
    let body = reply.json()?;
    let id = str_field(&body, "id")?;
    ensure!(is_deployment_id(id), "deployment id {id:?} does not match ^dp_1[0-9A-Za-z]{{22}}$");
    let location = format!("deployments/{id}");
    ensure!(
        reply.location.as_deref() == Some(location.as_str()),
        "Location is {:?}, expected {location:?}",
        reply.location
    );
    Ok(body)
}

/// `GET path` through `api`, which must answer 200 with JSON.
async fn get_json(api: &Api, path: &str) -> Result<Value> {
    let reply = api.get(path).await?;
    reply.expect_status(200)?;
    reply.json()
}

/// `GET /deployments`: deployment id → deployment.
async fn deployments(api: &Api) -> Result<BTreeMap<String, Value>> {
    let body = get_json(api, "/deployments").await?;
    ensure!(
        body.as_object().is_some_and(|o| o.len() == 1),
        "GET /deployments has fields other than `deployments`: {body}"
    );
    array_field(&body, "deployments")?.iter().map(|d| Ok((str_field(d, "id")?.to_string(), d.clone()))).collect()
}

/// `GET /services`: the service names, sorted (duplicates kept).
async fn service_names(api: &Api) -> Result<Vec<String>> {
    let body = get_json(api, "/services").await?;
    let mut names = names_in(&body, "services")?;
    names.sort();
    Ok(names)
}

/// Polls until the catalog can be read through every node (its Raft group
/// has a leader that every node can reach).
async fn wait_for_catalog(apis: &[Api]) -> Result<()> {
    for api in apis {
        poll_until(
            LEADER_TIMEOUT,
            &format!("GET /deployments through node {} to answer 200", api.node_id),
            async || deployments(api).await.map(Some),
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Shape checks
// ---------------------------------------------------------------------------

/// Checks one ServiceMetadata from `sdk`'s endpoint against [`LAYOUT`] and
/// the defaults (nothing patched): type, handlers and their types, deployment,
/// revision, public, retentions, timeouts and the default retry policy.
fn check_service(sdk: Sdk, meta: &Value, deployment_id: &str, revision: u64) -> Result<()> {
    let name = str_field(meta, "name")?;
    let (_, ty, handlers) = LAYOUT
        .iter()
        .find(|(base, _, _)| service_name(sdk, base) == name)
        .with_context(|| format!("unexpected service {name} from the {sdk:?} endpoint"))?;
    let ctx = || format!("service {name}");
    expect_eq(meta, "ty", json!(ty)).with_context(ctx)?;
    expect_eq(meta, "deployment_id", json!(deployment_id)).with_context(ctx)?;
    expect_eq(meta, "revision", json!(revision)).with_context(ctx)?;
    expect_eq(meta, "public", json!(true)).with_context(ctx)?;
    expect_eq(meta, "idempotency_retention", json!("1d")).with_context(ctx)?;
    expect_eq(meta, "inactivity_timeout", json!("1m")).with_context(ctx)?;
    expect_eq(meta, "abort_timeout", json!("10m")).with_context(ctx)?;
    if *ty == "Workflow" {
        expect_eq(meta, "workflow_completion_retention", json!("1d")).with_context(ctx)?;
    } else {
        ensure!(
            meta.get("workflow_completion_retention").is_none(),
            "{name} is a {ty} but has workflow_completion_retention: {meta}"
        );
    }
    expect_eq(
        meta,
        "retry_policy",
        json!({
            "initial_interval": "500ms",
            "exponentiation_factor": 2.0,
            "max_attempts": 70,
            "max_interval": "1m",
            "on_max_attempts": "Pause",
        }),
    )
    .with_context(ctx)?;
    let got = array_field(meta, "handlers")?;
    let got_names: Vec<&str> = got.iter().map(|h| str_field(h, "name")).collect::<Result<_>>()?;
    let mut got_sorted = got_names.clone();
    got_sorted.sort_unstable();
    let mut want: Vec<&str> = handlers.iter().map(|(h, _)| *h).collect();
    want.sort_unstable();
    ensure!(got_sorted == want, "{name} has handlers {got_names:?}, expected {want:?}");
    for h in got {
        let hname = str_field(h, "name")?;
        let (_, hty) = handlers.iter().find(|(n, _)| *n == hname).context("handler checked above")?;
        ensure!(
            h.get("ty").and_then(Value::as_str) == *hty,
            "{name}/{hname} has ty {:?}, expected {hty:?}: {h}",
            h.get("ty")
        );
        expect_eq(h, "public", json!(true)).with_context(|| format!("handler {name}/{hname}"))?;
        for desc in ["input_description", "output_description"] {
            ensure!(!str_field(h, desc)?.is_empty(), "{name}/{hname} has an empty {desc}: {h}");
        }
    }
    Ok(())
}

/// Checks the answer to registering `sdk`'s endpoint as deployment `id`
/// (whose services are at `revision`).
fn check_registration(sdk: Sdk, body: &Value, revision: u64) -> Result<()> {
    let id = str_field(body, "id")?;
    expect_eq(body, "min_protocol_version", json!(5))?;
    expect_eq(body, "max_protocol_version", json!(7))?;
    let sdk_version = str_field(body, "sdk_version")?;
    ensure!(
        sdk_version.starts_with(sdk.sdk_version_prefix()),
        "sdk_version {sdk_version:?} does not start with {:?}",
        sdk.sdk_version_prefix()
    );
    let got: BTreeSet<String> = names_in(body, "services")?.into_iter().collect();
    ensure!(got == names(sdk), "registration lists services {got:?}, expected {:?}", names(sdk));
    ensure!(array_field(body, "services")?.len() == 5, "duplicate services in {body}");
    for s in array_field(body, "services")? {
        check_service(sdk, s, id, revision)?;
    }
    Ok(())
}

/// Checks one entry of `GET /deployments`: `sdk`'s endpoint at `uri` as
/// deployment `id`, with every service (as name + revision) at `revision`.
fn check_listed(sdk: Sdk, d: &Value, id: &str, uri: &str, revision: u64) -> Result<()> {
    expect_eq(d, "id", json!(id))?;
    expect_eq(d, "uri", json!(uri))?;
    expect_eq(d, "protocol_type", json!("BidiStream"))?;
    expect_eq(d, "http_version", json!("HTTP/2.0"))?;
    expect_eq(d, "min_protocol_version", json!(5))?;
    expect_eq(d, "max_protocol_version", json!(7))?;
    ensure!(str_field(d, "sdk_version")?.starts_with(sdk.sdk_version_prefix()), "unexpected sdk_version in {d}");
    let created = str_field(d, "created_at")?;
    ensure!(is_rfc3339(created), "created_at {created:?} is not an RFC 3339 timestamp");
    let mut services: Vec<Value> = array_field(d, "services")?.clone();
    services.sort_by_key(|s| s["name"].as_str().unwrap_or_default().to_string());
    let mut want: Vec<Value> = names(sdk).into_iter().map(|n| json!({ "name": n, "revision": revision })).collect();
    want.sort_by_key(|s| s["name"].as_str().unwrap_or_default().to_string());
    ensure!(services == want, "deployment {id} lists services {services:?}, expected {want:?}");
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut r: std::ops::Range<usize>| r.all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..13) && digits(14..16) && digits(17..19))
    {
        return false;
    }
    if (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z" || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && rest.as_bytes()[3] == b':')
}

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
        ensure!(services.len() == 5, "GET /deployments/{id} has {} services: {detail}", services.len());
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
