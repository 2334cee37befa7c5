//! Request-body helpers that turn every malformed input into an [`ApiError`].

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// The media type without parameters, lowercase (`Application/JSON; charset=utf-8` → `application/json`).
pub(crate) fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether a media type (an [`essence`]) is JSON: `application/json` or `…+json`.
pub(crate) fn is_json(mime: &str) -> bool {
    mime == "application/json" || mime.ends_with("+json")
}

/// Parses a JSON body, insisting on a JSON content type.
///
/// - body read failures (e.g. over the size limit) keep their status (413);
/// - a missing or non-JSON `content-type` is 415;
/// - malformed or mistyped JSON is 400 with serde's description.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json(&essence(content_type)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected content-type application/json, got '{content_type}'"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
