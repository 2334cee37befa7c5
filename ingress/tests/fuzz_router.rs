//! Property test of the ingress and admin routers against arbitrary requests (the seeded
//! short pass of `fuzz/fuzz_targets/ingress_request.rs`; raise `PROPTEST_CASES` for a
//! longer one).
//!
//! Requests mix structure (real service and handler names, route keywords, ids, known
//! headers and query parameters) with garbage (random segments, bad percent-escapes,
//! random header values and bodies). Properties: no panic, an answer within 5 s, and every
//! 4xx/5xx answer carries a JSON body with a string `message`.

mod support;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use keel_partition::invocation::InvocationResult;
use proptest::prelude::*;
use std::sync::Arc;
use support::{FakeCluster, Target};

const WORDS: &[&str] = &[
    "Greeter",
    "greet",
    "raw",
    "hidden",
    "Counter",
    "add",
    "get",
    "Wf",
    "run",
    "signal",
    "Private",
    "h",
    "send",
    "restate",
    "invocation",
    "invocations",
    "workflow",
    "attach",
    "output",
    "awakeables",
    "a",
    "resolve",
    "reject",
    "health",
    "services",
    "deployments",
    "handlers",
    "state",
    "cluster",
    "metrics",
    "version",
    "v1",
    "v2",
    "v3",
    "v4",
    "cancel",
    "kill",
    "pause",
    "resume",
    "purge",
    "restart-as-new",
    "dp_14LtGpa2BOXUjFlVNqTXp7e",
    "inv_1aiqX0vFEFNH1Umgre58JiCLgHfTtztYK5",
    "sign_1aiqX0vFEFNH1Umgre58JiCLgHfTtztYK5AAAAAQ",
    "inv_",
    "sign_1",
    "",
    ".",
    "..",
    "%",
    "%ZZ",
    "%00",
    "%2F",
    "%C3%A9",
    "%FF%FE",
    "k%20ey",
    "_",
    "a.b-c",
];

const QUERY_KEYS: &[&str] =
    &["delay", "timeout", "force", "mode", "dry_run", "idempotency_key", "wait", "retention", "x", "", "%ZZ"];

const QUERY_VALUES: &[&str] = &[
    "",
    "10s",
    "1h 2m",
    "PT1S",
    "P1D",
    "-1s",
    "99999999999999999999d",
    "true",
    "false",
    "kill",
    "cancel",
    "1",
    "0",
    "%ZZ",
    "1e9ms",
    "\u{3bc}s",
];

const HEADER_NAMES: &[&str] = &[
    "content-type",
    "accept",
    "idempotency-key",
    "prefer",
    "authorization",
    "x-restate-id",
    "content-length",
    "x-restate-tenant",
    "host",
    "x-anything",
];

const HEADER_VALUES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "text/*",
    "*/*",
    "application/",
    ";",
    "wait=1",
    "wait=0",
    "wait=99999999999999999999",
    "respond-async",
    "Bearer secret",
    "Bearer wrong",
    "Basic Zm9vOmJhcg==",
    "",
    "0",
    "5",
    "abc",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_.~-]{0,12}",
        1 => prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect::<String>()),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::collection::vec(
            (
                prop_oneof![prop::sample::select(QUERY_KEYS).prop_map(str::to_owned), "[a-z_]{0,6}"],
                prop_oneof![
                    prop::sample::select(QUERY_VALUES).prop_map(|v| v.replace(' ', "%20").replace('\u{3bc}', "%CE%BC")),
                    "[a-zA-Z0-9%=&]{0,8}",
                ],
            ),
            0..4,
        )
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")),
    )
}

/// A request target: structured segments, or arbitrary printable bytes.
fn target_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::collection::vec(segment(), 0..6), any::<bool>(), query()).prop_map(|(segs, slash, q)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash {
                p.push('/');
            }
            if let Some(q) = q {
                p.push('?');
                p.push_str(&q);
            }
            p
        }),
        1 => "/[ -~]{0,40}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![prop::sample::select(HEADER_NAMES).prop_map(str::to_owned), "[a-z-]{1,10}"],
            prop_oneof![
                3 => prop::sample::select(HEADER_VALUES).prop_map(|v| v.as_bytes().to_vec()),
                1 => prop::collection::vec(any::<u8>(), 0..20),
            ],
        ),
        0..5,
    )
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::sample::select(vec![
            "{}",
            "null",
            "1",
            "\"x\"",
            "[1,2]",
            "{\"object_key\":\"k\",\"new_state\":{\"a\":[1]}}",
            "{\"public\":false,\"idempotency_retention\":\"1h\"}",
            "{\"uri\":\"http://127.0.0.1:1\"}",
            "{",
            "\u{0}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
        // Above the routers' body limit.
        (support::MAX_BODY_BYTES + 1..support::MAX_BODY_BYTES + 64).prop_map(|n| vec![b'a'; n]),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::from_bytes(b"BREW").expect("valid token"),
    ])
}

fn target() -> impl Strategy<Value = Target> {
    prop::sample::select(vec![
        Target::Ingress,
        Target::Ingress,
        Target::IngressWithToken,
        Target::Admin,
        Target::AdminWithToken,
    ])
}

fn result() -> impl Strategy<Value = InvocationResult> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16).prop_map(InvocationResult::Success),
        (any::<u16>(), ".{0,10}").prop_map(|(code, message)| InvocationResult::Failure { code, message }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn routers_answer_errors_as_json(target in target(), method in method(), path in target_path(),
                                     headers in headers(), body in body(), result in result(),
                                     failing in prop::option::weighted(0.05, any::<bool>())) {
        let Ok(uri) = Uri::try_from(path.as_str()) else { return Ok(()) };
        if support::reaches_network(target, &method, uri.path()) {
            return Ok(());
        }
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
                request = request.header(n, v);
            }
        }
        let request = request.body(Body::from(body)).expect("valid parts");
        let cluster = Arc::new(FakeCluster::default());
        *cluster.result.lock().expect("lock") = result;
        if let Some(unavailable) = failing {
            let fail: fn() -> keel_ingress::ClusterError = if unavailable {
                || keel_ingress::ClusterError::Unavailable { message: "no leader".into(), retry_after_secs: 1 }
            } else {
                || keel_ingress::ClusterError::Internal("disk on fire".into())
            };
            *cluster.fail.lock().expect("lock") = Some(fail);
        }
        let outcome = runtime().block_on(support::check(target, cluster, request));
        prop_assert!(outcome.is_ok(), "{}", outcome.err().map(|v| v.0).unwrap_or_default());
    }
}

/// The fake itself works: a registered handler is callable, the admin API lists it, and
/// an unknown path is a JSON 404 (so the property above is not vacuously about 404s).
#[test]
fn the_fake_cluster_serves_the_manifest() {
    let rt = runtime();
    let send = |target, method: Method, path: &str, body: &str| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        rt.block_on(support::check(target, Arc::new(FakeCluster::default()), request)).expect("well-formed answer")
    };
    let (status, _, body) = send(Target::Ingress, Method::POST, "/Greeter/greet", "{\"name\":\"x\"}");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"\"ok\"");
    let (status, _, body) = send(Target::Ingress, Method::POST, "/Counter/k1/add/send", "1");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(Target::Admin, Method::GET, "/services", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Counter"));
    let (status, _, _) = send(Target::Ingress, Method::POST, "/Nope/x", "");
    assert_eq!(status, 404);
    let (status, _, _) = send(Target::AdminWithToken, Method::GET, "/services", "");
    assert_eq!(status, 401);
    let (status, _, _) = send(Target::IngressWithToken, Method::POST, "/Greeter/greet", "{}");
    assert_eq!(status, 401);
}
