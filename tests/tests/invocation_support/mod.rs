//! Helpers shared by the invocation end-to-end tests (`invocations.rs`,
//! `lifecycle.rs`): each test binary uses a different subset of them.
#![allow(dead_code)]

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{Api, Cluster, LEADER_TIMEOUT, POLL_INTERVAL, Reply, Sdk, SdkService, State, WRITE_TIMEOUT, poll_until};
use serde_json::{Value, json};
use tokio::time::Instant;
// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Whether `id` matches `^inv_1[0-9A-Za-z]{33}$` (38 characters: the prefix,
/// 11 base62 characters of the partition key and 22 of the uuid).
pub(crate) fn is_invocation_id(id: &str) -> bool {
    id.len() == 38 && id.starts_with("inv_1") && id[5..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a call's answer (or its absence) leaves it open whether the call
/// took effect: no HTTP answer, or 502/503/504.
pub(crate) fn is_unavailable(r: &Result<Reply>) -> bool {
    match r {
        Err(_) => true,
        Ok(reply) => matches!(reply.status, 502..=504),
    }
}

pub(crate) fn describe(r: &Result<Reply>) -> String {
    match r {
        Ok(reply) => format!("{} {} -> {}: {}", reply.method, reply.url, reply.status, reply.body),
        Err(e) => format!("{e:#}"),
    }
}

/// Checks a successful call: 200, exactly `expected` as body,
/// `content-type: application/json` and a well-formed `x-restate-id`.
/// Returns the invocation id.
pub(crate) fn expect_output(reply: &Reply, expected: &str) -> Result<String> {
    reply.expect_status(200)?;
    ensure!(reply.body == expected, "{} {}: body {:?}, expected {expected:?}", reply.method, reply.url, reply.body);
    ensure!(
        reply.content_type.as_deref() == Some("application/json"),
        "{} {}: content-type {:?}, expected application/json",
        reply.method,
        reply.url,
        reply.content_type
    );
    let id = reply.header("x-restate-id").with_context(|| format!("no x-restate-id in {reply:?}"))?;
    ensure!(is_invocation_id(id), "x-restate-id {id:?} does not match ^inv_1[0-9A-Za-z]{{33}}$: {reply:?}");
    Ok(id.to_string())
}

/// `POST path` with `body` through `api`, which must answer 200 with exactly
/// `expected` ([`expect_output`]). Returns the invocation id.
pub(crate) async fn call_expect(api: &Api, path: &str, body: &str, expected: &str) -> Result<String> {
    let reply = api.ingress_post(path, body).await?;
    expect_output(&reply, expected)
}

/// Checks an error answer: `status`, `content-type: application/json`, a JSON
/// body `{"code": status, "message": <non-empty>, "source": source}` (no other
/// fields) and `x-restate-error-source: source`. Returns the message.
pub(crate) fn expect_error(reply: &Reply, status: u16, source: &str) -> Result<String> {
    reply.expect_status(status)?;
    ensure!(
        reply.content_type.as_deref() == Some("application/json"),
        "{} {}: content-type {:?}, expected application/json",
        reply.method,
        reply.url,
        reply.content_type
    );
    let body = reply.json()?;
    let message = reply.error_message()?;
    let want = json!({ "code": status, "message": message, "source": source });
    ensure!(body == want, "{} {}: error body {body}, expected {want}", reply.method, reply.url);
    ensure!(
        reply.header("x-restate-error-source") == Some(source),
        "{} {}: x-restate-error-source {:?}, expected {source:?}",
        reply.method,
        reply.url,
        reply.header("x-restate-error-source")
    );
    Ok(message)
}

/// Registers `uri` through `api` (retrying only while the answer is
/// 502/503/504 or missing, which is safe: registering one uri is
/// idempotent): 201, or 200 after an ambiguous attempt.
pub(crate) async fn register(api: &Api, uri: &str) -> Result<()> {
    let what = format!("registering {uri} through node {}", api.node_id);
    let mut ambiguous = false;
    let reply = poll_until(WRITE_TIMEOUT, &what, async || {
        let r = api.register_deployment(uri, json!({})).await;
        if is_unavailable(&r) {
            ambiguous = true;
            bail!("{}", describe(&r));
        }
        Ok(Some(r?))
    })
    .await?;
    if !(ambiguous && reply.status == 200) {
        reply.expect_status(201)?;
    }
    Ok(())
}

/// Starts `sdk`'s test services (`services.mjs` or `services.py`),
/// registers them through node 0 and waits until it lists them all.
pub(crate) async fn serve_sdk(c: &Cluster, sdk: Sdk) -> Result<SdkService> {
    let services = SdkService::start(sdk, c.dir()).await?;
    let api = &c.nodes[0].api;
    register(api, &services.uri()).await?;
    wait_for_services(std::slice::from_ref(api), &sdk.service_names()).await?;
    Ok(services)
}

/// Starts an `n`-node cluster with `args`, waits until every partition
/// has a leader, and serves `sdk`'s test services to it (registered through
/// node 0, listed by every node).
pub(crate) async fn cluster_serving(n: usize, args: &[&str], sdk: Sdk) -> Result<(Cluster, SdkService)> {
    let c = Cluster::start(n, args).await?;
    let services = SdkService::start(sdk, c.dir()).await?;
    let all = c.all();
    c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    let apis = c.apis(&all);
    register(&apis[0], &services.uri()).await?;
    wait_for_services(&apis, &sdk.service_names()).await?;
    Ok((c, services))
}

/// [`serve_sdk`] for TypeScript and then Python.
pub(crate) async fn serve_both_sdks(c: &Cluster) -> Result<(SdkService, SdkService)> {
    Ok((serve_sdk(c, Sdk::TypeScript).await?, serve_sdk(c, Sdk::Python).await?))
}

/// Polls ingress `GET /restate/health` of every node until each lists (at
/// least) `names` in its local replica of the catalog.
pub(crate) async fn wait_for_services(apis: &[Api], names: &[&str]) -> Result<()> {
    for api in apis {
        let what = format!("node {}'s /restate/health to list {names:?}", api.node_id);
        poll_until(LEADER_TIMEOUT, &what, async || {
            let reply = api.get_url(api.ingress_url("/restate/health")).await?;
            reply.expect_status(200)?;
            let body = reply.json()?;
            let listed: BTreeSet<&str> = body
                .get("services")
                .and_then(Value::as_array)
                .with_context(|| format!("no `services` array in {body}"))?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let missing: Vec<&&str> = names.iter().filter(|n| !listed.contains(**n)).collect();
            ensure!(missing.is_empty(), "node {} lists {listed:?}, missing {missing:?}", api.node_id);
            Ok(Some(()))
        })
        .await?;
    }
    Ok(())
}

/// The state `{"count": <bytes of count>}` as the SDKs store it (JSON).
pub(crate) fn count_state(count: u64) -> State {
    State::from([("count".to_string(), count.to_string().into_bytes())])
}

/// Admin `GET /services/{service}/state/{key}` through `api` must show
/// exactly `{"count": count}`. Returns the key's partition.
pub(crate) async fn expect_count_state(api: &Api, service: &str, key: &str, count: u64) -> Result<u32> {
    let view = api.get_state(service, key).await?;
    let want = count_state(count);
    ensure!(
        view.state == want,
        "admin state of {service}/{key} through node {} is {:?}, expected {want:?}",
        api.node_id,
        view.state
    );
    Ok(view.partition)
}

/// Calls `path` with `body` through `apis` (starting at `apis[start]`, moving
/// on after each unavailable answer) until one answers definitely, for at
/// most `timeout`. Only for calls that may safely run more than once (reads,
/// `add 0`). Returns that answer.
pub(crate) async fn call_until_answered(
    apis: &[Api],
    start: usize,
    path: &str,
    body: &str,
    timeout: std::time::Duration,
) -> Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0usize;
    loop {
        let api = &apis[(start + attempt) % apis.len()];
        attempt += 1;
        let r = api.ingress_post(path, body).await;
        if !is_unavailable(&r) {
            return r;
        }
        eprintln!("POST {path} through node {}: unavailable ({}), retrying", api.node_id, describe(&r));
        if Instant::now() + POLL_INTERVAL >= deadline {
            bail!("POST {path} {body}: no definite answer within {timeout:?}; last: {}", describe(&r));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Adds 1 to `Counter/{key}` exactly once, expecting the new count to be
/// `expected`, through `apis[start]` first.
///
/// A definite answer must be exactly `expected`. After an unavailable answer
/// (502/503/504 or none) it is unknown whether the add ran, so the add is
/// not simply repeated: an exclusive `add 0` (a barrier: it queues behind
/// every earlier exclusive invocation of the key, and may safely run more
/// than once) tells the count; `expected` means the add ran, `expected - 1`
/// that it did not (then it is tried again), anything else fails.
pub(crate) async fn add_one_exactly_once(apis: &[Api], start: usize, key: &str, expected: u64) -> Result<()> {
    let path = format!("/Counter/{key}/add");
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut attempt = 0usize;
    loop {
        let api = &apis[(start + attempt) % apis.len()];
        attempt += 1;
        let r = api.ingress_post(&path, "1").await;
        if !is_unavailable(&r) {
            expect_output(&r?, &expected.to_string())
                .with_context(|| format!("add 1 to Counter/{key} through node {}", api.node_id))?;
            return Ok(());
        }
        eprintln!("add 1 to Counter/{key} through node {} was ambiguous: {}", api.node_id, describe(&r));
        let barrier =
            call_until_answered(apis, start + attempt, &path, "0", deadline.saturating_duration_since(Instant::now()))
                .await?;
        barrier.expect_status(200)?;
        let now: u64 = barrier.body.parse().with_context(|| format!("add 0 answered {barrier:?}"))?;
        if now == expected {
            return Ok(());
        }
        ensure!(
            now + 1 == expected,
            "after an ambiguous add 1 to Counter/{key} (count expected to become {expected}), \
             add 0 shows the count {now}"
        );
        ensure!(Instant::now() < deadline, "add 1 to Counter/{key}: no definite answer within {WRITE_TIMEOUT:?}");
    }
}
