//! The one error type of the HTTP layer, rendered as JSON.

use crate::api::{ClusterApi, ClusterError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An HTTP error: status, message, optional `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    /// The status to answer with.
    pub status: StatusCode,
    /// Human-readable message, the `message` field of the JSON body.
    pub message: String,
    /// Seconds for the `Retry-After` header.
    pub retry_after_secs: Option<u32>,
    /// Restate's error code (`META0003`, ...), rendered as `restate_code`.
    pub restate_code: Option<&'static str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after_secs: None, restate_code: None }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unavailable { message, retry_after_secs } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
                retry_after_secs: Some(retry_after_secs),
                restate_code: None,
            },
            ClusterError::Internal(message) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, message),
            ClusterError::TooLarge(message) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "message": self.message });
        if let Some(code) = self.restate_code {
            body["restate_code"] = serde_json::json!(code);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The health checks' verdict on this node: 503 naming every problem, so
/// a load balancer stops sending it requests and an operator sees why.
pub(crate) fn check_health<C: ClusterApi>(cluster: &C) -> Result<(), ApiError> {
    let problems = cluster.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, problems.join("; ")))
}
