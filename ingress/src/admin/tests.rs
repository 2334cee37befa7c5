use super::*;
use crate::testing::{FakeCluster, request, send};
use axum::body::Body;
use axum::http::{HeaderValue, Request};

fn options() -> AdminOptions {
    AdminOptions { max_body_bytes: 1 << 20, token: None }
}

fn patch(uri: &str, body: serde_json::Value) -> Request<Body> {
    let mut req = request("PATCH", uri);
    *req.body_mut() = Body::from(body.to_string());
    req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req
}

/// The duration fields of `PATCH /services/{service}`: negative,
/// overflowing and absurd values are a 400 naming the field (the first of
/// these used to panic the request's task).
#[tokio::test]
async fn bad_service_durations_are_400_naming_the_field() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    let cases = [
        ("idempotency_retention", "PT-1S"),
        ("idempotency_retention", "PT1E20S"),
        ("workflow_completion_retention", "10000000000000000000s"),
        ("journal_retention", "P36600D"),
        ("inactivity_timeout", "-1s"),
        ("abort_timeout", "P-1DT1H"),
    ];
    for (field, value) in cases {
        for prefix in ["", "/v4"] {
            let req = patch(&format!("{prefix}/services/Greeter"), serde_json::json!({ field: value }));
            let (status, _, body) = send(&router, req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(field), "{field}={value}: {message}");
        }
    }
}

fn authorized(method: &str, uri: &str, token: &'static str) -> Request<Body> {
    let mut req = request(method, uri);
    req.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_static(token));
    req
}

/// With a token, everything but the health checks needs it: 401 with a
/// JSON message and `WWW-Authenticate: Bearer` otherwise (unknown paths
/// included, so a stranger cannot map the API).
#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let options = AdminOptions { token: Some("s3cr3t".into()), ..options() };
    let router = admin_router(Arc::new(FakeCluster::new()), options);
    for uri in ["/services", "/v4/services", "/v2/deployments", "/cluster", "/nowhere", "/v1/services"] {
        for req in [request("GET", uri), authorized("GET", uri, "Bearer wrong"), authorized("GET", uri, "s3cr3t")] {
            let (status, headers, body) = send(&router, req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{uri}");
            assert!(body["message"].as_str().is_some_and(|m| m.contains("Bearer")), "{uri}: {body}");
        }
    }
    let (status, _, body) = send(&router, authorized("GET", "/v4/services", "Bearer s3cr3t")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["services"].as_array().is_some_and(|s| !s.is_empty()), "{body}");
    for uri in ["/health", "/v2/health", "/v3/health", "/v4/health"] {
        assert_eq!(send(&router, request("GET", uri)).await.0, StatusCode::OK, "{uri}");
    }
    let (status, _, body) = send(&router, request("POST", "/health")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn without_a_token_everything_is_open() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    assert_eq!(send(&router, request("GET", "/v4/services")).await.0, StatusCode::OK);
    let (status, _, body) = send(&router, request("DELETE", "/services")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["message"].is_string(), "{body}");
}

/// Malformed paths and queries answer a JSON 400, not axum's plain text.
#[tokio::test]
async fn malformed_paths_and_queries_are_json_errors() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    for (method, uri) in
        [("DELETE", "/deployments/x?force=maybe"), ("GET", "/invocations/%FF"), ("GET", "/services/%FF/handlers")]
    {
        let (status, _, body) = send(&router, request(method, uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body["message"].is_string(), "{uri}: {body}");
    }
}

fn post(uri: &str, body: serde_json::Value) -> Request<Body> {
    let mut req = patch(uri, body);
    *req.method_mut() = axum::http::Method::POST;
    req
}

/// `GET /version` has the shape of Restate's `VersionInformation`, which
/// the `restate` CLI parses before choosing `/v4`: `features` must be there
/// and a map.
#[tokio::test]
async fn version_has_restates_shape() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    for uri in ["/version", "/v4/version"] {
        let (status, _, body) = send(&router, request("GET", uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(body["version"].is_string(), "{body}");
        assert_eq!(body["min_admin_api_version"], 2, "{body}");
        assert_eq!(body["max_admin_api_version"], 4, "{body}");
        assert!(body["features"].is_object(), "{body}");
    }
}

/// Wrong JSON types in an admin body are a 400 naming the field's path,
/// without serde's line/column.
#[tokio::test]
async fn mistyped_json_fields_are_400_naming_the_path() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    let mut cases = Vec::new();
    for field in ["idempotency_retention", "journal_retention", "inactivity_timeout", "abort_timeout"] {
        for value in [serde_json::json!(5), serde_json::json!(true), serde_json::json!(["1s"])] {
            cases.push(("/services/Greeter", serde_json::json!({ field: value }), field.to_string()));
        }
    }
    for status in [serde_json::json!(70000), serde_json::json!(-1), serde_json::json!(202.5), serde_json::json!("202")]
    {
        let body = serde_json::json!({ "async_responses": { "greet": { "status": status } } });
        cases.push(("/services/Greeter", body, "async_responses.greet.status".into()));
    }
    cases.push(("/services/Greeter", serde_json::json!({ "public": "yes" }), "public".into()));
    cases.push((
        "/services/Greeter/state",
        serde_json::json!({ "object_key": 1, "new_state": {} }),
        "object_key".into(),
    ));
    for (uri, body, path) in cases {
        let (status, _, answer) = send(&router, patch_or_post(uri, body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("invalid value for `{path}`: ")), "{body}: {message}");
        assert!(!message.contains("line 1"), "{body}: {message}");
    }
    let (_, _, answer) =
        send(&router, patch("/services/Greeter", serde_json::json!({ "idempotency_retention": 5 }))).await;
    assert_eq!(
        answer["message"],
        "invalid value for `idempotency_retention`: invalid type: integer `5`, expected a string",
    );
}

fn patch_or_post(uri: &str, body: serde_json::Value) -> Request<Body> {
    if uri.ends_with("/state") { post(uri, body) } else { patch(uri, body) }
}

/// Errors about the whole body keep saying so: malformed JSON (with its
/// position), trailing garbage, unknown and missing top-level fields.
#[tokio::test]
async fn malformed_bodies_are_400_about_the_body() {
    let router = admin_router(Arc::new(FakeCluster::new()), options());
    let raw = |uri: &str, method: &str, body: &'static str| {
        let mut req = request(method, uri);
        *req.body_mut() = Body::from(body);
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req
    };
    let cases = [
        ("PATCH", "/services/Greeter", "{\"public\": tru", "invalid JSON body: "),
        ("PATCH", "/services/Greeter", "{} x", "invalid JSON body: trailing characters"),
        ("PATCH", "/services/Greeter", "{\"nope\": 1}", "unknown field `nope`"),
        ("POST", "/services/Greeter/state", "{\"object_key\": \"k\"}", "missing field `new_state`"),
        ("PATCH", "/services/Greeter", "2", "invalid JSON body: invalid type: integer `2`"),
    ];
    for (method, uri, body, expected) in cases {
        let (status, _, answer) = send(&router, raw(uri, method, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
}

/// `null` for an optional field of `PATCH /services/{service}` is absent.
#[tokio::test]
async fn null_optional_fields_of_a_service_patch_are_absent() {
    let cluster = Arc::new(FakeCluster::new());
    let router = admin_router(cluster.clone(), options());
    let body = serde_json::json!({
        "public": null, "idempotency_retention": null, "journal_retention": null,
        "inactivity_timeout": null, "abort_timeout": null, "async_responses": null,
    });
    let (status, _, answer) = send(&router, patch("/services/Greeter", body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["name"], "Greeter", "{answer}");
    assert_eq!(cluster.proposals.load(std::sync::atomic::Ordering::SeqCst), 0, "an empty patch was proposed");
}

/// A fake SDK endpoint over HTTP/1.1 whose `/discover` answers the test
/// manifest; its base URI.
async fn fake_endpoint() -> String {
    let app = Router::new().route(
        "/discover",
        get(|| async {
            ([(header::CONTENT_TYPE, "application/vnd.restate.endpointmanifest.v4+json")], crate::testing::MANIFEST)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// `POST /deployments` with the `restate` CLI's body (`null` headers) as a
/// dry run: discovered and validated, answered like the registration
/// (201, the services it would register), nothing proposed.
#[tokio::test]
async fn a_dry_run_with_the_clis_body_registers_nothing() {
    let cluster = Arc::new(FakeCluster::new());
    let router = admin_router(cluster.clone(), options());
    let uri = fake_endpoint().await;
    let body = serde_json::json!({
        "uri": uri, "additional_headers": null, "metadata": null, "use_http_11": true,
        "breaking": false, "force": false, "dry_run": true,
    });
    let (status, headers, answer) = send(&router, post("/v4/deployments", body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["id"].as_str().expect("id");
    assert!(id.starts_with("dp_1") && id != "dp_1", "{answer}");
    assert_eq!(headers[header::LOCATION], format!("deployments/{id}"));
    let services = answer["services"].as_array().expect("services");
    assert!(services.iter().any(|s| s["name"] == "Greeter"), "{answer}");
    assert_eq!(cluster.proposals.load(std::sync::atomic::Ordering::SeqCst), 0, "a dry run proposed");
    // Wrong types in this body name the field too.
    let body = serde_json::json!({ "uri": uri, "additional_headers": { "x": 1 } });
    let (status, _, answer) = send(&router, post("/v4/deployments", body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("invalid value for `additional_headers.x`: "), "{message}");
}

/// A node with a problem (here a stopped partition) fails its health
/// checks with the problem in the message, and passes them again once it
/// is gone; the ingress's health check says the same.
#[tokio::test]
async fn health_checks_answer_503_naming_the_problem() {
    let cluster = Arc::new(FakeCluster::new());
    let admin = admin_router(cluster.clone(), options());
    let ingress_options = crate::IngressOptions {
        max_body_bytes: 1 << 20,
        max_inflight_requests: 1,
        attach_timeout: None,
        token: None,
        completed_retention: std::time::Duration::from_secs(300),
    };
    let ingress = crate::ingress_router(cluster.clone(), ingress_options);
    let problem = "partition 3 stopped: cannot apply command Invoke (#0 of log entry 7, term 2): corrupt";
    *cluster.problems.lock().unwrap() = vec![problem.to_string()];
    for (router, uri) in [(&admin, "/health"), (&admin, "/v4/health"), (&ingress, "/restate/health")] {
        let (status, _, body) = send(router, request("GET", uri)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert_eq!(body["message"], problem, "{uri}");
    }
    cluster.problems.lock().unwrap().clear();
    for (router, uri) in [(&admin, "/health"), (&ingress, "/restate/health")] {
        assert_eq!(send(router, request("GET", uri)).await.0, StatusCode::OK, "{uri}");
    }
}
