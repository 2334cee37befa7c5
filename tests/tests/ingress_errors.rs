//! End-to-end test of the ingress's answers to bad input: each request of a
//! table gets its exact status and a JSON error (`{"code","message",
//! "source":"ingress"}` with `x-restate-error-source`), and nothing that
//! was stored before is lost or changed afterwards.

mod invocation_support;

use anyhow::{Context, Result, ensure};
use invocation_support::*;
use keel_e2e::{Cluster, run_test};

/// One request of the table: method, path, content type, body, extra
/// header, expected status, and a fragment the message must contain.
struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static [u8],
    header: Option<(&'static str, &'static str)>,
    status: u16,
    says: &'static str,
}

const fn case(method: &'static str, path: &'static str, body: &'static [u8], status: u16, says: &'static str) -> Case {
    Case { method, path, content_type: Some("application/json"), body, header: None, status, says }
}

fn table() -> Vec<Case> {
    vec![
        case("POST", "/Greeter/greet", b"{\"name\":", 400, "malformed JSON"),
        case("POST", "/PyGreeter/greet", b"\"unterminated", 400, "malformed JSON"),
        Case { content_type: None, ..case("POST", "/Greeter/greet", b"\"Ann\"", 400, "content-type") },
        Case { content_type: Some("text/plain"), ..case("POST", "/Greeter/greet", b"Ann", 400, "not accepted") },
        case("POST", "/PyGreeter/failTerminal", b"{}", 400, "takes no input"),
        case("POST", "/Greeter/greet", &[b'"'; 2048], 413, "length limit"),
        case("POST", "/NoSuchService/greet", b"1", 404, "not found"),
        case("POST", "/Greeter/noSuchHandler", b"1", 404, "not found"),
        case("POST", "/Counter/add", b"1", 400, "bad path"),
        case("POST", "/Greeter/greet/send/extra/x/y", b"1", 400, "bad path"),
        case("POST", "/Greeter/greet/send?delay=tomorrow", b"\"Ann\"", 400, "bad delay"),
        case("POST", "/Greeter/greet/send?delay=P1Y", b"\"Ann\"", 400, "bad delay"),
        case("POST", "/Greeter/greet?delay=10s", b"\"Ann\"", 400, "only supported on a one-way send"),
        Case {
            header: Some(("idempotency-key", "")),
            ..case("POST", "/Greeter/greet", b"\"A\"", 400, "idempotency-key")
        },
        Case { header: Some(("x-restate-limit-key", "k")), ..case("POST", "/Greeter/greet", b"\"A\"", 400, "scope") },
        case("POST", "/Greeter/greet?limit-key=k", b"\"A\"", 400, "scope"),
        Case { header: Some(("prefer", "wait=-1")), ..case("POST", "/Greeter/greet", b"\"A\"", 400, "Prefer") },
        case("DELETE", "/Greeter/greet", b"", 405, "not allowed"),
        case("PUT", "/Counter/k/add", b"1", 405, "not allowed"),
        case("GET", "/restate/invocation/inv_1garbage/attach", b"", 400, "bad invocation id"),
        case("POST", "/restate/awakeables/sign_1nope/resolve", b"1", 400, "bad awakeable id"),
    ]
}

/// One node with `--max-body-bytes 1024`; the TypeScript and Python
/// services. `Counter/keep/add` 5 first; then every case of [`table`]
/// answers its status with the JSON error; then the count is still 5, and
/// `add` 1 answers 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_errors() {
    run_test("bad_input_gets_clear_errors", scenario()).await;
}

async fn scenario() -> Result<()> {
    let c = Cluster::start(1, &["--max-body-bytes", "1024"]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();
    call_expect(&api, "/Counter/keep/add", "5", "5").await?;

    for case in table() {
        let mut headers = Vec::new();
        if let Some(ct) = case.content_type {
            headers.push(("content-type", ct));
        }
        if let Some(h) = case.header {
            headers.push(h);
        }
        let what = format!("{} {} ({} body bytes)", case.method, case.path, case.body.len());
        let reply = api.ingress_request(case.method, case.path, case.body.to_vec(), &headers).await?;
        let message = expect_error(&reply, case.status, "ingress").with_context(|| what.clone())?;
        ensure!(message.contains(case.says), "{what}: message {message:?} does not mention {:?}", case.says);
    }

    expect_count_state(&api, "Counter", "keep", 5).await?;
    call_expect(&api, "/Counter/keep/add", "1", "6").await?;
    ts.finish();
    py.finish();
    c.finish();
    Ok(())
}
