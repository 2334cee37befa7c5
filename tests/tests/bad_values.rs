//! End-to-end test of out-of-range client values: negative, overflowing,
//! non-finite and absurd durations and sizes in query parameters, `Prefer`
//! headers and admin PATCH bodies are each refused with a 400 whose JSON
//! `message` names the field, never a reset connection (a panicking
//! request task) or a 500, and nothing is lost or changed afterwards.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Api, Cluster, Reply, Sdk, run_test};
use serde_json::{Value, json};

/// Where a case is sent.
#[derive(Debug, Clone, Copy)]
enum Port {
    Ingress,
    Admin,
}

/// One bad request: it must answer 400 with a JSON message containing
/// `field`.
struct Case {
    port: Port,
    method: &'static str,
    path: String,
    header: Option<(&'static str, String)>,
    body: String,
    field: &'static str,
}

impl Case {
    fn describe(&self) -> String {
        let header = self.header.as_ref().map(|(n, v)| format!(" with {n}: {v}")).unwrap_or_default();
        format!("{:?} {} {}{header} body {}", self.port, self.method, self.path, self.body)
    }
}

/// Durations no client may send: negative, non-finite, overflowing their
/// parsers' integers or floats, or longer than any sane delay or
/// retention (keel's limit is 100 years).
const BAD_DURATIONS: &[&str] = &[
    "PT-1S",
    "P-1D",
    "-5s",
    "PT1E20S",
    "PT1E39S",
    "PT1.5E10S",
    "P99999999999D",
    "10000000000000000000s",
    "18446744073709551616s",
    "99999999999999999999999999999999999999ns",
    "1000000000000h",
    "200years",
];

/// `Prefer: wait=` values that are not a sane number of seconds.
const BAD_WAITS: &[&str] = &["-1", "soon", "1.5", "99999999999999999999", "18446744073709551615"];

/// Percent-encodes what a query value may not hold literally.
fn q(value: &str) -> String {
    value.replace('%', "%25").replace('+', "%2B").replace(' ', "%20").replace('&', "%26")
}

fn ingress(method: &'static str, path: String, body: &str, field: &'static str) -> Case {
    Case { port: Port::Ingress, method, path, header: None, body: body.to_string(), field }
}

fn prefer_wait(path: &str, method: &'static str, body: &str, wait: &str) -> Case {
    Case { header: Some(("prefer", format!("wait={wait}"))), ..ingress(method, path.to_string(), body, "wait") }
}

fn patch(service: &str, field: &'static str, value: Value) -> Case {
    Case {
        port: Port::Admin,
        method: "PATCH",
        path: format!("/services/{service}"),
        header: None,
        body: json!({ field: value }).to_string(),
        field,
    }
}

/// The table; `id` is a completed invocation to attach to.
fn table(id: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for d in BAD_DURATIONS {
        cases.push(ingress("POST", format!("/Greeter/greet/send?delay={}", q(d)), "\"A\"", "delay"));
        cases.push(ingress("POST", format!("/Counter/bad/add/send?delay={}", q(d)), "1", "delay"));
        cases.push(ingress("POST", format!("/Greeter/greet?timeout={}", q(d)), "\"A\"", "timeout"));
        cases.push(ingress("GET", format!("/restate/invocation/{id}/attach?timeout={}", q(d)), "", "timeout"));
        for (service, field) in [
            ("Greeter", "idempotency_retention"),
            ("Greeter", "journal_retention"),
            ("Greeter", "inactivity_timeout"),
            ("Greeter", "abort_timeout"),
            ("Counter", "idempotency_retention"),
            ("Signup", "workflow_completion_retention"),
        ] {
            cases.push(patch(service, field, json!(d)));
        }
    }
    for t in ["soon", "1e3", "ten seconds", "PT", "P1M"] {
        cases.push(ingress("POST", format!("/Greeter/greet?timeout={}", q(t)), "\"A\"", "timeout"));
    }
    for w in BAD_WAITS {
        cases.push(prefer_wait("/Greeter/greet", "POST", "\"A\"", w));
        cases.push(prefer_wait("/Counter/bad/get", "POST", "", w));
        cases.push(prefer_wait(&format!("/restate/invocation/{id}/attach"), "GET", "", w));
    }
    // Forms no parser takes.
    for field in ["idempotency_retention", "journal_retention", "inactivity_timeout", "abort_timeout"] {
        cases.push(patch("Greeter", field, json!("forever")));
        cases.push(patch("Greeter", field, json!("")));
    }
    // Sizes: an async answer's status must be an HTTP status.
    for status in [99, 600, 1000, 0] {
        cases.push(async_status(json!(status)));
    }
    cases
}

/// `PATCH /services/Greeter` giving `greet` a custom async answer with
/// `status`; the message must name `status`.
fn async_status(status: Value) -> Case {
    let body = json!({ "async_responses": { "greet": { "status": status } } }).to_string();
    Case { body, ..patch("Greeter", "status", Value::Null) }
}

/// Durations and sizes of the wrong JSON type or beyond their integer
/// type: serde refuses them, and the message must still name the field.
fn type_table() -> Vec<Case> {
    let mut cases = Vec::new();
    for field in ["idempotency_retention", "journal_retention", "inactivity_timeout", "abort_timeout"] {
        for value in [json!(5), json!(-1), json!(true), json!(["1s"])] {
            cases.push(patch("Greeter", field, value));
        }
    }
    cases.push(patch("Signup", "workflow_completion_retention", json!(3600)));
    for status in [json!(70000), json!(-1), json!(202.5), json!("202")] {
        cases.push(async_status(status));
    }
    cases
}

async fn send(api: &Api, case: &Case) -> Result<Reply> {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if !case.body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    if let Some((name, value)) = &case.header {
        headers.push((name, value.as_str()));
    }
    match case.port {
        Port::Ingress => api.ingress_request(case.method, &case.path, case.body.clone(), &headers).await,
        Port::Admin => {
            let body: Value = serde_json::from_str(&case.body)?;
            api.patch_json(&case.path, &body).await
        }
    }
}

/// `GET /services/{name}` as JSON (must be 200).
async fn service_config(api: &Api, name: &str) -> Result<Value> {
    let reply = api.get(&format!("/services/{name}")).await?;
    reply.expect_status(200)?;
    reply.json()
}

/// Sends every case through `api`: each must answer 400 with a JSON
/// message naming its field (an ingress error of the usual shape on the
/// ingress port), never a broken connection. Lists every miss at once.
async fn expect_refused(api: &Api, cases: &[Case]) -> Result<()> {
    let mut failures = Vec::new();
    for case in cases {
        let what = case.describe();
        let reply = match send(api, case).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{what}: no HTTP answer (did the request task panic?): {e:#}"));
                continue;
            }
        };
        let checked = match case.port {
            Port::Ingress => expect_error(&reply, 400, "ingress"),
            Port::Admin => reply.expect_status(400).and_then(|r| r.error_message()),
        };
        match checked {
            Ok(message) if message.contains(case.field) => {}
            Ok(message) => failures.push(format!("{what}: message {message:?} does not name {:?}", case.field)),
            Err(e) => failures.push(format!("{what}: {e:#}")),
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} bad values were not refused as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

/// One node serving the TypeScript services, with `Counter/keep` at 5 and
/// one finished `Greeter/greet` (for an invocation to attach to). Runs
/// `cases(id)` through [`expect_refused`]; then the node is still up and
/// logged no panic, the count is still 5 and `add 1` answers 6, nothing was
/// stored for `Counter/bad`, the services' configuration is unchanged, and
/// `Greeter/greet` still answers.
async fn refused_and_intact(cases: impl FnOnce(&str) -> Vec<Case>) -> Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let ts = serve_sdk(&c, Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();
    call_expect(&api, "/Counter/keep/add", "5", "5").await?;
    let id = call_expect(&api, "/Greeter/greet", "\"Ann\"", "\"Hello, Ann!\"").await?;
    let names = ["Greeter", "Counter", "Signup"];
    let mut before = Vec::new();
    for name in names {
        before.push(service_config(&api, name).await?);
    }

    expect_refused(&api, &cases(&id)).await?;

    // Nothing lost, nothing changed, nothing panicked.
    let logs = format!("{}\n{}", c.nodes[0].stdout_since_start(), c.nodes[0].stderr_since_start());
    let panics: Vec<&str> = logs.lines().filter(|l| l.contains("panicked")).collect();
    ensure!(panics.is_empty(), "node 1 logged panics:\n{}", panics.join("\n"));
    api.health().await.context("health after the bad values")?;
    expect_count_state(&api, "Counter", "keep", 5).await?;
    let bad = api.get_state("Counter", "bad").await?;
    ensure!(bad.state.is_empty(), "refused sends to Counter/bad stored {:?}", bad.state);
    for (name, was) in names.iter().zip(&before) {
        let now = service_config(&api, name).await?;
        ensure!(&now == was, "refused PATCHes changed {name}: was {was}, now {now}");
    }
    call_expect(&api, "/Counter/keep/add", "1", "6").await?;
    call_expect(&api, "/Greeter/greet", "\"Bo\"", "\"Hello, Bo!\"").await?;
    ts.finish();
    c.finish();
    Ok(())
}

/// [`refused_and_intact`] with [`table`]: bad durations in `?delay=` (calls
/// and keyed sends), `?timeout=` (calls and attach), `Prefer: wait=`
/// (calls, shared handlers, attach) and every duration field of `PATCH
/// /services/{name}`, and async answer statuses outside 200..=599.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_durations_and_sizes_are_refused() {
    run_test("bad_durations_and_sizes_are_refused", refused_and_intact(table)).await;
}

/// [`refused_and_intact`] with [`type_table`]: admin PATCH fields of the
/// wrong JSON type (a number or boolean for a duration, a status beyond
/// `u16` or fractional) are refused with a message naming the field, as
/// any other bad value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mistyped_values_name_their_field() {
    run_test("mistyped_values_name_their_field", refused_and_intact(|_| type_table())).await;
}
