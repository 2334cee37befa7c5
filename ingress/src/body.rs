//! Request-body helpers that turn every malformed input into an [`ApiError`].

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

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
/// - malformed JSON is 400 with serde's description and position;
/// - well-formed JSON of the wrong shape is 400 naming the field's path
///   (`invalid value for `async_responses.greet.status`: ...`), see
///   [`shape_error`].
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !is_json(&essence(content_type)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected content-type application/json, got '{content_type}'"),
        ));
    }
    let mut json = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(shape_error)?;
    json.end().map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The 400 of a body that failed to deserialize. Syntax errors keep
/// serde's position; type and value errors name the field's path instead
/// (the position says little to a client that built the JSON with a
/// library), unless the error is about the whole body (a missing or
/// unknown top-level field, a body that is not an object).
fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let e = e.into_inner();
    if e.is_syntax() || e.is_eof() || e.is_io() {
        return ApiError::bad_request(format!("invalid JSON body: {e}"));
    }
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&position).unwrap_or(&full);
    if path.is_empty() || path == "." || path == "?" {
        ApiError::bad_request(format!("invalid JSON body: {message}"))
    } else {
        ApiError::bad_request(format!("invalid value for `{path}`: {message}"))
    }
}

/// `#[serde(default, deserialize_with = "null_as_default")]`: an optional
/// field given as `null` is taken as absent (Restate's clients send
/// `"additional_headers": null`).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
