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
