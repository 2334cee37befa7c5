//! Helpers of the catalog end-to-end tests: the expected contents of the
//! SDK test services, JSON accessors, admin API calls and shape checks.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{Api, LEADER_TIMEOUT, POLL_INTERVAL, Reply, Sdk, WRITE_TIMEOUT, poll_until};
use serde_json::{Value, json};
use tokio::time::Instant;
// ---------------------------------------------------------------------------
// Expected catalog contents
// ---------------------------------------------------------------------------

/// (service, service `ty`, [(handler, handler `ty`, absent for plain services)]),
/// as declared by `tests/services/ts/services.mjs`; the Python services are
/// the same with a `Py` prefix.
pub(crate) type Layout = [(&'static str, &'static str, &'static [(&'static str, Option<&'static str>)])];

pub(crate) const LAYOUT: &Layout = &[
    ("Greeter", "Service", &[("greet", None), ("greetTwice", None), ("failTerminal", None), ("sleepThenEcho", None)]),
    (
        "Counter",
        "VirtualObject",
        &[("add", Some("Exclusive")), ("get", Some("Shared")), ("reset", Some("Exclusive")), ("keys", Some("Shared"))],
    ),
    ("SideEffects", "Service", &[("flaky", None)]),
    ("Signup", "Workflow", &[("run", Some("Workflow")), ("confirm", Some("Shared")), ("status", Some("Shared"))]),
    ("Awaiter", "Service", &[("waitForAwakeable", None), ("resolveLater", None), ("sendDelayed", None)]),
    ("Steps", "Workflow", &[("run", Some("Workflow"))]),
];

/// Name of a [`LAYOUT`] service in `sdk`'s endpoint.
pub(crate) fn service_name(sdk: Sdk, base: &str) -> String {
    match sdk {
        Sdk::TypeScript => base.to_string(),
        Sdk::Python => format!("Py{base}"),
    }
}

pub(crate) fn names(sdk: Sdk) -> BTreeSet<String> {
    sdk.service_names().iter().map(|s| s.to_string()).collect()
}

/// Whether `id` matches `^dp_1[0-9A-Za-z]{22}$`.
pub(crate) fn is_deployment_id(id: &str) -> bool {
    id.len() == 26 && id.starts_with("dp_1") && id[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).with_context(|| format!("no `{key}` in {v}"))
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    field(v, key)?.as_str().with_context(|| format!("`{key}` is not a string in {v}"))
}

pub(crate) fn array_field<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    field(v, key)?.as_array().with_context(|| format!("`{key}` is not an array in {v}"))
}

/// The `name`s of the objects in `v[key]`, in order.
pub(crate) fn names_in(v: &Value, key: &str) -> Result<Vec<String>> {
    array_field(v, key)?.iter().map(|s| str_field(s, "name").map(String::from)).collect()
}

/// Checks that `v[key] == expected`.
pub(crate) fn expect_eq(v: &Value, key: &str, expected: Value) -> Result<()> {
    let got = field(v, key)?;
    ensure!(*got == expected, "`{key}` is {got}, expected {expected}, in {v}");
    Ok(())
}

/// The body must be a JSON error `{"message": <non-empty>, ...}`; returns the
/// message.
pub(crate) fn error_of(reply: &Reply, status: u16) -> Result<String> {
    reply.expect_status(status)?;
    reply.error_message()
}

// ---------------------------------------------------------------------------
// Admin API helpers
// ---------------------------------------------------------------------------

/// An answer that leaves it open whether the request took effect: none at
/// all, or 502/503/504 (no leader yet, an election, a lost quorum).
pub(crate) fn is_unavailable(r: &Result<Reply>) -> bool {
    match r {
        Err(_) => true,
        Ok(reply) => matches!(reply.status, 502..=504),
    }
}

/// Sends `f()` until it gets a definite answer (not [`is_unavailable`]),
/// for at most [`WRITE_TIMEOUT`]. Returns that answer and whether an earlier
/// attempt was ambiguous (it may have taken effect). Only for idempotent
/// requests: registering one uri, deleting one deployment.
pub(crate) async fn until_answered(what: &str, mut f: impl AsyncFnMut() -> Result<Reply>) -> Result<(Reply, bool)> {
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
pub(crate) async fn register_new(api: &Api, uri: &str) -> Result<Value> {
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
pub(crate) async fn get_json(api: &Api, path: &str) -> Result<Value> {
    let reply = api.get(path).await?;
    reply.expect_status(200)?;
    reply.json()
}

/// `GET /deployments`: deployment id → deployment.
pub(crate) async fn deployments(api: &Api) -> Result<BTreeMap<String, Value>> {
    let body = get_json(api, "/deployments").await?;
    ensure!(
        body.as_object().is_some_and(|o| o.len() == 1),
        "GET /deployments has fields other than `deployments`: {body}"
    );
    array_field(&body, "deployments")?.iter().map(|d| Ok((str_field(d, "id")?.to_string(), d.clone()))).collect()
}

/// `GET /services`: the service names, sorted (duplicates kept).
pub(crate) async fn service_names(api: &Api) -> Result<Vec<String>> {
    let body = get_json(api, "/services").await?;
    let mut names = names_in(&body, "services")?;
    names.sort();
    Ok(names)
}

/// Polls until the catalog can be read through every node (its Raft group
/// has a leader that every node can reach).
pub(crate) async fn wait_for_catalog(apis: &[Api]) -> Result<()> {
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
pub(crate) fn check_service(sdk: Sdk, meta: &Value, deployment_id: &str, revision: u64) -> Result<()> {
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
pub(crate) fn check_registration(sdk: Sdk, body: &Value, revision: u64) -> Result<()> {
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
    ensure!(array_field(body, "services")?.len() == names(sdk).len(), "duplicate services in {body}");
    for s in array_field(body, "services")? {
        check_service(sdk, s, id, revision)?;
    }
    Ok(())
}

/// Checks one entry of `GET /deployments`: `sdk`'s endpoint at `uri` as
/// deployment `id`, with every service (as name + revision) at `revision`.
pub(crate) fn check_listed(sdk: Sdk, d: &Value, id: &str, uri: &str, revision: u64) -> Result<()> {
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
pub(crate) fn is_rfc3339(s: &str) -> bool {
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
