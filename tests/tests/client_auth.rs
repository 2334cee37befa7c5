//! End-to-end tests of client authentication: a node started with
//! `--admin-token-file` and `--ingress-token-file` requires
//! `Authorization: Bearer <token>` on every admin route but `/health` and
//! on every ingress route but `/restate/health` (401 with a JSON `message`
//! otherwise, and the request has no effect), checked over raw HTTP and
//! with the real `restate` CLI (`RESTATE_AUTH_TOKEN`).

mod invocation_support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Api, CliOutput, Cluster, REQUEST_TIMEOUT, Reply, RestateCli, Sdk, SdkService, run_test};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "keel-e2e-admin-token-3f9c1a77";
const INGRESS_TOKEN: &str = "keel-e2e-ingress-token-b72d0e15";

/// An [`Api`] for node 0 of `c` whose every request carries
/// `Authorization: <authorization>` (none if `None`).
fn api_with(c: &Cluster, authorization: Option<&str>) -> Result<Api> {
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).context("authorization header")?);
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .default_headers(headers)
        .build()?;
    let node = &c.nodes[0];
    Ok(Api::new(node.id, node.admin, node.ingress, client))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Authorization headers that must all be refused on both ports (besides
/// none at all and the other port's token).
fn wrong_authorizations() -> Vec<String> {
    vec![
        bearer("wrong"),
        bearer(&format!("{ADMIN_TOKEN}x")),
        bearer(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
        bearer(&format!("{INGRESS_TOKEN}x")),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        ADMIN_TOKEN.to_string(),
        INGRESS_TOKEN.to_string(),
        format!("Basic {ADMIN_TOKEN}"),
        format!("Basic {INGRESS_TOKEN}"),
    ]
}

/// One node whose admin and ingress require [`ADMIN_TOKEN`] and
/// [`INGRESS_TOKEN`], read from token files in the test's directory (with
/// surrounding whitespace, which the node trims).
async fn start_with_tokens() -> Result<Cluster> {
    let mut c = Cluster::new(1, &[])?;
    let admin_file = c.dir().join("admin.token");
    let ingress_file = c.dir().join("ingress.token");
    write_token(&admin_file, &format!("  {ADMIN_TOKEN}\n"))?;
    write_token(&ingress_file, &format!("{INGRESS_TOKEN}\r\n\n"))?;
    let node = &mut c.nodes[0];
    node.set_flag("--admin-token-file", &admin_file.display().to_string());
    node.set_flag("--ingress-token-file", &ingress_file.display().to_string());
    // Ready means /health and /restate/health answer 200: both are open.
    node.start().await?;
    Ok(c)
}

fn write_token(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A refused request: 401 with `WWW-Authenticate: Bearer` and a JSON body
/// whose `message` is non-empty. Returns the message.
fn expect_unauthorized(reply: &Reply) -> Result<String> {
    reply.expect_status(401)?;
    ensure!(
        reply.content_type.as_deref().is_some_and(|ct| ct.starts_with("application/json")),
        "{} {}: 401 with content-type {:?}, expected application/json",
        reply.method,
        reply.url,
        reply.content_type
    );
    ensure!(
        reply.header("www-authenticate").is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
        "{} {}: 401 without `WWW-Authenticate: Bearer` (RFC 6750): {:?}",
        reply.method,
        reply.url,
        reply.headers
    );
    reply.error_message()
}

/// Every admin route keel serves, as (method, path, JSON body or empty).
fn admin_routes(sdk_uri: &str) -> Vec<(&'static str, String, String)> {
    let id = "inv_1000000000000000000000000000000000";
    let state = json!({ "object_key": "auth", "new_state": { "count": [57] } }).to_string();
    vec![
        ("GET", "/version".into(), String::new()),
        ("GET", "/cluster".into(), String::new()),
        ("GET", "/metrics".into(), String::new()),
        ("GET", "/deployments".into(), String::new()),
        ("POST", "/deployments".into(), json!({ "uri": sdk_uri }).to_string()),
        ("POST", "/v4/deployments".into(), json!({ "uri": sdk_uri }).to_string()),
        ("GET", "/deployments/dp_10000000000000000000000".into(), String::new()),
        ("DELETE", "/deployments/dp_10000000000000000000000?force=true".into(), String::new()),
        ("GET", "/services".into(), String::new()),
        ("GET", "/v2/services".into(), String::new()),
        ("GET", "/v4/services".into(), String::new()),
        ("GET", "/services/Greeter".into(), String::new()),
        ("PATCH", "/services/Greeter".into(), json!({ "public": false }).to_string()),
        ("GET", "/services/Greeter/handlers".into(), String::new()),
        ("GET", "/services/Greeter/handlers/greet".into(), String::new()),
        ("POST", "/services/Counter/state".into(), state),
        ("GET", "/services/Counter/state/auth".into(), String::new()),
        ("GET", format!("/invocations/{id}"), String::new()),
        ("DELETE", format!("/invocations/{id}"), String::new()),
        ("PATCH", format!("/invocations/{id}/cancel"), String::new()),
    ]
}

async fn admin_send(api: &Api, method: &'static str, path: &str, body: &str) -> Result<Reply> {
    if body.is_empty() {
        return api.admin_request(method, path).await;
    }
    let value: Value = serde_json::from_str(body)?;
    match method {
        "POST" => api.post_json(path, &value).await,
        "PATCH" => api.patch_json(path, &value).await,
        other => anyhow::bail!("no body for {other}"),
    }
}

// ---------------------------------------------------------------------------
// tokens_guard_admin_and_ingress
// ---------------------------------------------------------------------------

/// One node with both token files; the TypeScript services running but not
/// registered yet.
///
/// 1. `/health` and `/restate/health` answer 200 without a token (and with
///    a wrong one).
/// 2. Every admin route answers 401 with a JSON message without a token,
///    with the ingress token, and with each of [`wrong_authorizations`];
///    the refused `POST /deployments` registered nothing, the refused
///    `PATCH` and state write changed nothing.
/// 3. With the admin token: `POST /deployments` registers the services,
///    `GET /cluster`, `/services`, `/version`, `/metrics` work.
/// 4. Ingress calls, sends, attach and awakeable completions answer 401
///    without a token, with the admin token and with each wrong one; none
///    of them ran (`Counter/auth` is still unset). With the ingress token
///    `Greeter/greet` answers, and `Counter/auth/add 1` answers 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_guard_admin_and_ingress() {
    run_test("tokens_guard_admin_and_ingress", tokens_scenario()).await;
}

async fn tokens_scenario() -> Result<()> {
    let c = start_with_tokens().await?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let admin = api_with(&c, Some(&bearer(ADMIN_TOKEN)))?;
    let ingress = api_with(&c, Some(&bearer(INGRESS_TOKEN)))?;
    let open = api_with(&c, None)?;
    let mut refused: Vec<(String, Api)> = vec![
        ("no Authorization header".to_string(), open.clone()),
        ("the ingress token on the admin port".to_string(), ingress.clone()),
    ];
    for auth in wrong_authorizations() {
        refused.push((format!("Authorization: {auth:?}"), api_with(&c, Some(&auth))?));
    }

    // 1. Health is open.
    open.health().await.context("health without a token")?;
    api_with(&c, Some(&bearer("wrong")))?.health().await.context("health with a wrong token")?;

    // 2. Every admin route is closed without the admin token.
    for (who, api) in &refused {
        for (method, path, body) in admin_routes(&ts.uri()) {
            let reply = admin_send(api, method, &path, &body).await?;
            expect_unauthorized(&reply).with_context(|| format!("admin {method} {path} with {who}"))?;
        }
    }
    let services = admin.get("/services").await?;
    services.expect_status(200)?;
    let listed = services.json()?;
    ensure!(
        listed.get("services").and_then(Value::as_array).is_some_and(Vec::is_empty),
        "refused registrations registered something: GET /services answers {listed}"
    );
    let deployments = admin.get("/deployments").await?;
    deployments.expect_status(200)?;
    let listed = deployments.json()?;
    ensure!(
        listed.get("deployments").and_then(Value::as_array).is_some_and(Vec::is_empty),
        "refused registrations registered something: GET /deployments answers {listed}"
    );

    // 3. With the admin token everything works.
    register(&admin, &ts.uri()).await?;
    wait_for_services(std::slice::from_ref(&admin), &Sdk::TypeScript.service_names()).await?;
    let view = admin.cluster_view().await?;
    ensure!(!view.partitions.is_empty(), "GET /cluster with the token shows no partitions");
    admin.get("/version").await?.expect_status(200)?;
    admin.get("/v4/services/Greeter").await?.expect_status(200)?;
    ensure!(
        admin.metrics().await?.lines().any(|l| l.starts_with("keel_raft_")),
        "GET /metrics with the token has no keel_raft_* sample"
    );
    // The refused PATCH and state write changed nothing.
    let greeter = admin.get("/services/Greeter").await?;
    greeter.expect_status(200)?;
    ensure!(greeter.json()?.get("public") == Some(&json!(true)), "a refused PATCH changed Greeter: {}", greeter.body);
    let state = admin.get_state("Counter", "auth").await?;
    ensure!(state.state.is_empty(), "a refused state write stored {:?}", state.state);
    for (who, api) in &refused {
        for (method, path, body) in admin_routes(&ts.uri()) {
            let reply = admin_send(api, method, &path, &body).await?;
            expect_unauthorized(&reply)
                .with_context(|| format!("admin {method} {path} with {who}, services registered"))?;
        }
    }

    // 4. The ingress.
    let greeted = call_expect(&ingress, "/Greeter/greet", "\"Ann\"", "\"Hello, Ann!\"").await?;
    let mut refused_ingress = vec![
        ("no Authorization header".to_string(), open.clone()),
        ("the admin token on the ingress".to_string(), admin.clone()),
    ];
    for auth in wrong_authorizations() {
        refused_ingress.push((format!("Authorization: {auth:?}"), api_with(&c, Some(&auth))?));
    }
    let json_ct = [("content-type", "application/json")];
    let requests: Vec<(&'static str, String, &str)> = vec![
        ("POST", "/Greeter/greet".into(), "\"Ann\""),
        ("POST", "/Greeter/greet/send".into(), "\"Ann\""),
        ("POST", "/Counter/auth/add".into(), "5"),
        ("POST", "/Counter/auth/add/send".into(), "5"),
        ("POST", "/Counter/auth/add/send?delay=1s".into(), "5"),
        ("POST", "/Signup/auth/run".into(), "\"a@b.c\""),
        ("POST", "/NoSuchService/h".into(), "1"),
        ("GET", format!("/restate/invocation/{greeted}/attach"), ""),
        ("GET", format!("/restate/invocation/{greeted}/output"), ""),
        ("POST", "/restate/awakeables/sign_1nope/resolve".into(), "1"),
    ];
    for (who, api) in &refused_ingress {
        for (method, path, body) in &requests {
            let reply = api.ingress_request(method, path, body.as_bytes().to_vec(), &json_ct).await?;
            expect_unauthorized(&reply).with_context(|| format!("ingress {method} {path} with {who}"))?;
        }
    }
    let output = ingress.ingress_request("GET", &format!("/restate/invocation/{greeted}/output"), "", &[]).await?;
    expect_output(&output, "\"Hello, Ann!\"").context("output with the ingress token")?;
    // None of the refused calls ran: the first add answers 1.
    call_expect(&ingress, "/Counter/auth/add", "1", "1").await?;
    let state = admin.get_state("Counter", "auth").await?;
    ensure!(state.state == count_state(1), "Counter/auth after refused adds and one add 1: {:?}", state.state);

    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// restate_cli_with_token
// ---------------------------------------------------------------------------

/// Fails unless `out` failed and mentions 401 / unauthorized.
fn expect_cli_unauthorized(out: &CliOutput) -> Result<()> {
    out.expect_failure()?;
    let all = out.all().to_ascii_lowercase();
    ensure!(all.contains("401") || all.contains("unauthorized"), "no 401 / unauthorized in {}", out.describe());
    Ok(())
}

/// Fails unless `out` succeeded and mentions every one of `names`.
fn expect_cli_lists(out: &CliOutput, names: &[&str]) -> Result<()> {
    out.expect_success()?;
    let all = out.all();
    let missing: Vec<&&str> = names.iter().filter(|n| !all.contains(**n)).collect();
    ensure!(missing.is_empty(), "{missing:?} missing from {}", out.describe());
    Ok(())
}

/// One node with both token files; the TypeScript services registered
/// (over HTTP with the admin token), the Python services running but not
/// registered. The real `restate` CLI, with `RESTATE_ADMIN_URL` and a
/// config home in the test's directory:
///
/// 1. With `RESTATE_AUTH_TOKEN` = the admin token, `services list` lists the
///    six TypeScript services, `deployments list` the deployment id,
///    `services describe Greeter` its handlers.
/// 2. Without a token, with a wrong one and with the ingress token, `services
///    list`, `deployments list` and `deployments register <python uri>` fail
///    (non-zero exit) mentioning 401 / unauthorized; nothing was registered.
///
/// (Registering through the CLI with the token:
/// [`restate_cli_registers_a_deployment`].)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restate_cli_with_token() {
    run_test("restate_cli_with_token", cli_scenario()).await;
}

async fn cli_scenario() -> Result<()> {
    let c = start_with_tokens().await?;
    let admin = api_with(&c, Some(&bearer(ADMIN_TOKEN)))?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    let py = SdkService::start(Sdk::Python, c.dir()).await?;
    let registered = admin.register_deployment(&ts.uri(), json!({})).await?;
    registered.expect_status(201)?;
    let deployment = registered.json()?.get("id").and_then(Value::as_str).map(str::to_string);
    let deployment = deployment.with_context(|| format!("no deployment id in {registered:?}"))?;
    wait_for_services(std::slice::from_ref(&admin), &Sdk::TypeScript.service_names()).await?;
    let cli = RestateCli::new(c.dir(), &admin.admin_url(""))?;

    // 1. With the admin token.
    let ts_names = Sdk::TypeScript.service_names();
    expect_cli_lists(&cli.run(Some(ADMIN_TOKEN), &["services", "list"]).await?, &ts_names)?;
    expect_cli_lists(&cli.run(Some(ADMIN_TOKEN), &["deployments", "list"]).await?, &[&deployment])?;
    let described = cli.run(Some(ADMIN_TOKEN), &["services", "describe", "Greeter"]).await?;
    expect_cli_lists(&described, &["Greeter", "greet", "greetTwice", "failTerminal", "sleepThenEcho"])?;

    // 2. Without it.
    let py_uri = py.uri();
    let bad_tokens: [Option<&str>; 4] = [None, Some("wrong"), Some(INGRESS_TOKEN), Some(&ADMIN_TOKEN[1..])];
    for token in bad_tokens {
        for args in [&["services", "list"][..], &["deployments", "list"], &["deployments", "register", &py_uri]] {
            let out = cli.run(token, args).await?;
            expect_cli_unauthorized(&out).with_context(|| format!("token {token:?}"))?;
        }
    }
    let services = admin.get("/services").await?;
    services.expect_status(200)?;
    ensure!(!services.body.contains("PyGreeter"), "a refused CLI registration registered: {}", services.body);

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// restate_cli_negotiates_the_admin_api_version, restate_cli_registers_a_deployment
// ---------------------------------------------------------------------------

/// One node with both token files, the TypeScript services registered over
/// HTTP with the admin token, and a CLI pointed at its admin port.
async fn node_with_cli() -> Result<(Cluster, SdkService, Api, RestateCli)> {
    let c = start_with_tokens().await?;
    let admin = api_with(&c, Some(&bearer(ADMIN_TOKEN)))?;
    let ts = SdkService::start(Sdk::TypeScript, c.dir()).await?;
    register(&admin, &ts.uri()).await?;
    wait_for_services(std::slice::from_ref(&admin), &Sdk::TypeScript.service_names()).await?;
    let cli = RestateCli::new(c.dir(), &admin.admin_url(""))?;
    Ok((c, ts, admin, cli))
}

/// [`node_with_cli`]. The `restate` CLI (1.7) negotiates the admin API
/// version through `GET /version`, as keel's admin router documents: with
/// the token, `services list` succeeds without warning that it "Could not
/// verify the admin API version" (which it does when it cannot parse the
/// answer, and then falls back to unversioned paths).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restate_cli_negotiates_the_admin_api_version() {
    run_test("restate_cli_negotiates_the_admin_api_version", negotiation_scenario()).await;
}

async fn negotiation_scenario() -> Result<()> {
    let (c, ts, admin, cli) = node_with_cli().await?;
    let out = cli.run(Some(ADMIN_TOKEN), &["services", "list"]).await?;
    expect_cli_lists(&out, &Sdk::TypeScript.service_names())?;
    ensure!(
        !out.all().contains("Could not verify the admin API version"),
        "the CLI could not negotiate the admin API version (GET /version answers {}): {}",
        admin.get("/version").await?.body,
        out.describe()
    );
    ts.finish();
    c.finish();
    Ok(())
}

/// [`node_with_cli`], and the Python services running. With the admin
/// token, `restate deployments register <python uri>` (a dry run, then the
/// registration, both `POST /deployments` with the CLI's body) succeeds;
/// then `services list` and `GET /services` show the Python services
/// beside the TypeScript ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restate_cli_registers_a_deployment() {
    run_test("restate_cli_registers_a_deployment", register_scenario()).await;
}

async fn register_scenario() -> Result<()> {
    let (c, ts, admin, cli) = node_with_cli().await?;
    let py = SdkService::start(Sdk::Python, c.dir()).await?;
    let out = cli.run(Some(ADMIN_TOKEN), &["deployments", "register", &py.uri()]).await?;
    out.expect_success()?;
    wait_for_services(std::slice::from_ref(&admin), &Sdk::Python.service_names()).await?;
    let mut all_names = Sdk::TypeScript.service_names().to_vec();
    all_names.extend(Sdk::Python.service_names());
    expect_cli_lists(&cli.run(Some(ADMIN_TOKEN), &["services", "list"]).await?, &all_names)?;
    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}
