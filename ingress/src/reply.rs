//! How the ingress answers: Restate's error shape for what it refuses, and
//! an invocation's result as the handler produced it.

use crate::api::ClusterError;
use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_partition::invocation::InvocationResult;

/// An error raised by the ingress itself (not by the invoked handler).
pub(crate) fn ingress_error(e: ApiError) -> Response {
    error_response(e.status, e.message, "ingress")
}

/// Restate's error shape: `{code, message, source}` with the source also in
/// `x-restate-error-source`, which clients use to tell a refused request
/// (`ingress`) from a handler's terminal failure (`invocation`).
pub(crate) fn error_response(status: StatusCode, message: String, source: &'static str) -> Response {
    let body = serde_json::json!({ "code": status.as_u16(), "message": message, "source": source });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(HeaderName::from_static("x-restate-error-source"), HeaderValue::from_static(source));
    response
}

impl From<ClusterError> for Response {
    fn from(e: ClusterError) -> Self {
        let api: ApiError = e.into();
        let retry = api.retry_after_secs;
        let mut r = ingress_error(api);
        if let Some(secs) = retry {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The HTTP answer for an invocation's result: the output with its content
/// type (set on an empty body only if the handler asks for it), or the
/// terminal failure with its code and `source: invocation`.
pub(crate) fn result_response(
    result: InvocationResult,
    id_header: HeaderValue,
    content_type: Option<String>,
    set_if_empty: bool,
) -> Response {
    let mut r = match result {
        InvocationResult::Success(output) => {
            let empty = output.is_empty();
            let mut r = (StatusCode::OK, output).into_response();
            if let Some(ct) = content_type.filter(|_| set_if_empty || !empty)
                && let Ok(v) = HeaderValue::try_from(ct)
            {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        InvocationResult::Failure { code, message } => {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.as_u16() >= 400)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_response(status, message, "invocation")
        }
    };
    r.headers_mut().insert("x-restate-id", id_header);
    r
}
