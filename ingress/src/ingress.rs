//! The ingress (port 8080). Until services can be registered (SDK
//! deployments), it answers health checks and reports every invocation
//! target as unknown, with Restate's error shape.

use crate::error::ApiError;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// The ingress router.
pub fn ingress_router(max_body_bytes: usize) -> Router {
    Router::new()
        .route("/restate/health", get(|| async { Json(serde_json::json!({ "services": [] })) }))
        .fallback(unknown_target)
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Restate answers an invocation of an unregistered service with 404 and
/// `x-restate-error-source: ingress`.
async fn unknown_target(uri: Uri) -> Response {
    let service = uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
    if service.is_empty() {
        return ingress_error(ApiError::bad_request("bad path: expected /{service}/{handler}"));
    }
    ingress_error(ApiError::not_found(format!(
        "service '{service}' not found, make sure to register the service before calling it."
    )))
}

fn ingress_error(e: ApiError) -> Response {
    let body = serde_json::json!({ "code": e.status.as_u16(), "message": e.message, "source": "ingress" });
    let mut response = (e.status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("x-restate-error-source"), HeaderValue::from_static("ingress"));
    response
}
