use super::*;
use crate::testing::{FakeCluster, request, send};
use std::sync::atomic::Ordering;

fn options() -> IngressOptions {
    IngressOptions {
        max_body_bytes: 1 << 20,
        max_inflight_requests: 16,
        attach_timeout: None,
        token: None,
        completed_retention: std::time::Duration::from_secs(300),
    }
}

fn router(cluster: FakeCluster) -> Router {
    ingress_router(Arc::new(cluster), options())
}

/// Every duration a client sends is checked before anything is proposed:
/// negative, overflowing and absurd values are a 400 whose message names
/// the offending field (these used to panic the request's task).
#[tokio::test]
async fn bad_durations_are_400_naming_the_field() {
    let router = router(FakeCluster::new());
    // (path and query, Prefer header, the field the message names)
    let cases = [
        ("/Greeter/greet/send?delay=PT-1S", "", "delay"),
        ("/Greeter/greet/send?delay=PT1E20S", "", "delay"),
        ("/Greeter/greet/send?delay=10000000000000000000s", "", "delay"),
        ("/Greeter/greet/send?delay=P-1D", "", "delay"),
        ("/Greeter/greet/send?delay=P36600D", "", "delay"),
        ("/Greeter/greet/send?delay=PTNaNS", "", "delay"),
        ("/Greeter/greet?timeout=PT-1S", "", "timeout"),
        ("/Greeter/greet?timeout=99999999999999999999h", "", "timeout"),
        ("/Greeter/greet", "wait=18446744073709551615", "wait"),
        ("/Greeter/greet", "wait=-1", "wait"),
        ("/restate/invocation/Greeter/greet/k/attach?timeout=PT-1S", "", "timeout"),
        ("/restate/workflow/W/w1/attach", "wait=99999999999", "wait"),
    ];
    for (uri, prefer, field) in cases {
        let method = if uri.starts_with("/restate/") { "GET" } else { "POST" };
        let mut req = request(method, uri);
        if !prefer.is_empty() {
            req.headers_mut().insert("prefer", HeaderValue::from_static(prefer));
        }
        let (status, _, body) = send(&router, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {prefer}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{uri} {prefer}: {message}");
    }
}

#[tokio::test]
async fn sane_durations_are_accepted() {
    let router = router(FakeCluster::new());
    let (status, _, body) = send(&router, request("POST", "/Greeter/greet/send?delay=P36500D")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["executionTime"].as_str().is_some_and(|t| t.starts_with("21")), "{body}");
    let (status, _, body) = send(&router, request("POST", "/Greeter/greet?timeout=PT10S")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!("ok")));
}

/// An awakeable id of an invocation in partition key 0.
fn awakeable() -> String {
    keel_protocol::AwakeableId::new(InvocationId::new(0, 1), 1).to_string()
}

/// An ingress with a single call permit, held by a call that waits for
/// its result until the returned task is aborted.
async fn one_call_parked()
-> (Arc<FakeCluster>, Router, tokio::task::JoinHandle<(StatusCode, HeaderMap, serde_json::Value)>) {
    let cluster = Arc::new(FakeCluster::new().parking());
    let router = ingress_router(cluster.clone(), IngressOptions { max_inflight_requests: 1, ..options() });
    let parked = tokio::spawn({
        let router = router.clone();
        async move { send(&router, request("POST", "/Greeter/greet")).await }
    });
    cluster.call_started.notified().await;
    (cluster, router, parked)
}

/// With every call permit held by a parked call, calls are refused (429),
/// but an awakeable, which is what the parked call may be waiting for, is
/// still resolved, and health checks still answer.
#[tokio::test]
async fn parked_calls_do_not_block_completions() {
    let (_, router, parked) = one_call_parked().await;
    let (status, headers, _) = send(&router, request("POST", "/Greeter/greet")).await;
    assert_eq!((status, &headers[header::RETRY_AFTER]), (StatusCode::TOO_MANY_REQUESTS, &HeaderValue::from(1)));
    for path in ["/restate/awakeables", "/restate/a"] {
        let mut req = request("POST", &format!("{path}/{}/resolve", awakeable()));
        *req.body_mut() = axum::body::Body::from("42");
        let (status, _, body) = send(&router, req).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
    }
    assert_eq!(send(&router, request("GET", "/restate/health")).await.0, StatusCode::OK);
    parked.abort();
}

/// A call refused for overload has done nothing yet: the permit is taken
/// before the path is even parsed, so no invocation was proposed and the
/// client's retry (what `Retry-After` asks for) is the first attempt, not a
/// duplicate. For a workflow's run this matters: a duplicate run is 409.
/// (A probe racing two blocking calls for two permits leaves one of them
/// this 429; the e2e test `overload_is_429` retries it.)
#[tokio::test]
async fn a_refused_call_proposes_nothing_and_may_be_retried() {
    let (cluster, router, parked) = one_call_parked().await;
    let run = || {
        let mut req = request("POST", "/Signup/o1/run");
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *req.body_mut() = axum::body::Body::from("\"x\"");
        req
    };
    let (status, headers, body) = send(&router, run()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], HeaderValue::from(1));
    assert_eq!(cluster.proposals.load(Ordering::SeqCst), 0, "a refused run proposed");
    parked.abort();
    assert!(parked.await.is_err_and(|e| e.is_cancelled()));
    // The parked call's permit is back: the retry runs (the fake knows no
    // invocation to attach to, hence 404), proposing the run once.
    let (status, _, body) = send(&router, run()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(cluster.proposals.load(Ordering::SeqCst), 1);
}

/// With a token, every route but `/restate/health` needs it (the fallback
/// that serves calls included); 401 with a JSON message and
/// `WWW-Authenticate: Bearer` otherwise.
#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let router = router_with_token();
    let completion = format!("/restate/a/{}/resolve", awakeable());
    for (method, uri) in [
        ("POST", "/Greeter/greet"),
        ("POST", "/Nope/h"),
        ("GET", "/restate/invocation/inv_1/attach"),
        ("GET", "/restate/workflow/W/w1/output"),
        ("POST", completion.as_str()),
    ] {
        for auth in [None, Some("Bearer wrong"), Some("s3cr3t"), Some("Bearer ")] {
            let mut req = request(method, uri);
            if let Some(auth) = auth {
                req.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_static(auth));
            }
            let (status, headers, body) = send(&router, req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
            assert!(body["message"].as_str().is_some_and(|m| m.contains("Bearer")), "{uri}: {body}");
        }
    }
    let mut req = request("POST", "/Greeter/greet");
    req.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cr3t"));
    let (status, _, body) = send(&router, req).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!("ok")));
    assert_eq!(send(&router, request("GET", "/restate/health")).await.0, StatusCode::OK);
}

fn router_with_token() -> Router {
    ingress_router(Arc::new(FakeCluster::new()), IngressOptions { token: Some("s3cr3t".into()), ..options() })
}

/// A miss in the local catalog is confirmed by reading the leader's at
/// most once per interval: a flood of calls to an unknown service costs one
/// or two reads, and a service registered through another node (this
/// node's replica lags) is still found.
#[tokio::test]
async fn unknown_services_refresh_the_catalog_at_most_once_per_interval() {
    let cluster = Arc::new(FakeCluster::new().lagging());
    let router = ingress_router(cluster.clone(), options());
    let (status, _, body) = send(&router, request("POST", "/Greeter/greet")).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!("ok")));
    let floods = (0..1000).map(|i| {
        let router = router.clone();
        let uri = if i % 2 == 0 { "/Nope/h" } else { "/Greeter/greet" };
        tokio::spawn(async move { send(&router, request("POST", uri)).await })
    });
    for (i, flood) in floods.enumerate() {
        let (status, _, body) = flood.await.unwrap();
        let expected = if i % 2 == 0 { StatusCode::NOT_FOUND } else { StatusCode::OK };
        assert_eq!(status, expected, "{body}");
        if i % 2 == 0 {
            assert!(body["message"].as_str().is_some_and(|m| m.contains("'Nope' not found")), "{body}");
        }
    }
    let reads = cluster.catalog_reads.load(Ordering::SeqCst);
    assert!(reads <= 2, "{reads} catalog reads");
    tokio::time::sleep(crate::lookup::REFRESH_INTERVAL).await;
    assert_eq!(send(&router, request("POST", "/Nope/h")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(cluster.catalog_reads.load(Ordering::SeqCst), reads + 1, "a miss after the interval refreshes");
}

/// Malformed paths answer a JSON 400, not axum's plain-text rejection.
#[tokio::test]
async fn malformed_paths_are_json_errors() {
    let router = router(FakeCluster::new());
    for (method, uri) in [("GET", "/restate/invocation/%FF/attach"), ("POST", "/restate/a/%FF/resolve")] {
        let (status, _, body) = send(&router, request(method, uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body["message"].is_string(), "{uri}: {body}");
    }
}
