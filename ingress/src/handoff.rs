//! The sync→async handoff of a call.
//!
//! A caller that cannot hold a connection open for as long as a handler may
//! run asks for a bounded wait: `Prefer: wait=N` (RFC 7240, seconds),
//! `Prefer: respond-async` (no wait), or `?timeout=<duration>`. If the
//! handler has not finished by then, or parks earlier (suspends on a sleep,
//! an awakeable or another call, or backs off before a retry), the ingress
//! answers `202 Accepted` with `Location:` the invocation's attach URL and
//! the invocation goes on. Attaching blocks up to the node's attach bound
//! and then answers 202 again with the same `Location`, so a client simply
//! follows it until it gets the result.
//!
//! A handler may replace the 202 with its own answer (status, headers,
//! body template), set through `PATCH /services/{name}`.

use crate::duration::{MAX_DURATION, client_duration, millis};
use crate::error::ApiError;
use crate::idempotency::query_param;
use crate::reply::ingress_error;
use crate::state::IngressState;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use keel_partition::catalog::AsyncResponse;
use keel_partition::wait::WaitPolicy;
use keel_protocol::InvocationId;
use std::time::Duration;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handoff {
    /// How long to wait for the result before handing off.
    pub wait: Duration,
    /// The `wait=` the `Prefer` header asked for, echoed in
    /// `Preference-Applied`.
    pub preferred_secs: Option<u64>,
}

/// Reads the handoff preferences of a request: every `Prefer` header (a
/// comma-separated list; unknown preferences are ignored, as RFC 7240
/// says) and `?timeout=`. Both given: the shorter wait wins. A malformed
/// `wait` or `timeout`, or one above [`MAX_DURATION`], is a 400.
pub(crate) fn requested(headers: &HeaderMap, uri: &Uri) -> Result<Option<Handoff>, ApiError> {
    let mut wait: Option<Duration> = None;
    let mut preferred_secs = None;
    let mut shorten = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
    for value in headers.get_all("prefer") {
        let text = value.to_str().map_err(|_| ApiError::bad_request("bad Prefer header: not visible ASCII"))?;
        for preference in text.split(',') {
            let (name, value) = preference.split(';').next().unwrap_or("").split_once('=').unwrap_or((preference, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "respond-async" => shorten(Duration::ZERO),
                "wait" => {
                    let secs = value
                        .trim()
                        .trim_matches('"')
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s <= MAX_DURATION.as_secs())
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "bad Prefer header: wait={value} is not a number of seconds up to {}",
                                MAX_DURATION.as_secs()
                            ))
                        })?;
                    preferred_secs = Some(secs);
                    shorten(Duration::from_secs(secs));
                }
                _ => {}
            }
        }
    }
    if let Some(text) = query_param(uri, "timeout")? {
        shorten(client_duration("timeout", &text)?);
    }
    Ok(wait.map(|wait| Handoff { wait, preferred_secs }))
}

/// The attach path of invocation `id`, which a handed-off caller follows.
pub(crate) fn attach_url(id: &InvocationId) -> String {
    format!("/restate/invocation/{id}/attach")
}

/// The answer of a call handed off to async: the handler's custom answer if
/// it has one, else 202 with `Location` and a JSON body naming the
/// invocation.
pub(crate) fn response(id: &InvocationId, handoff: &Handoff, custom: Option<&AsyncResponse>) -> Response {
    let location = attach_url(id);
    let mut r = match custom {
        Some(custom) => render(custom, id, &location),
        None => accepted(id, &location),
    };
    if let Some(secs) = handoff.preferred_secs
        && let Ok(v) = HeaderValue::try_from(format!("wait={secs}"))
    {
        r.headers_mut().insert(HeaderName::from_static("preference-applied"), v);
    }
    r
}

/// 202 with `Location: location`, `x-restate-id` and
/// `{"invocationId": …, "status": "Running", "attach": location}`: the
/// invocation is not done yet; `location` gives its result once it is.
pub(crate) fn accepted(id: &InvocationId, location: &str) -> Response {
    let body = serde_json::json!({ "invocationId": id.to_string(), "status": "Running", "attach": location });
    let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::try_from(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::try_from(id.to_string()) {
        r.headers_mut().insert("x-restate-id", v);
    }
    r
}

fn fill(template: &str, id: &InvocationId, location: &str) -> String {
    template.replace("{{invocation_id}}", &id.to_string()).replace("{{attach_url}}", location)
}

/// A custom async answer with its placeholders filled in. It was validated
/// when it was set ([`check`]), so nothing here fails for a well-formed id.
fn render(custom: &AsyncResponse, id: &InvocationId, location: &str) -> Response {
    let status = StatusCode::from_u16(custom.status).unwrap_or(StatusCode::ACCEPTED);
    let mut r = (status, fill(&custom.body, id, location)).into_response();
    for (name, value) in &custom.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(fill(value, id, location)))
        {
            r.headers_mut().insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::try_from(id.to_string()) {
        r.headers_mut().insert("x-restate-id", v);
    }
    r
}

/// Checks a custom async answer before it is stored: a status from 200 to
/// 599, and header names and values (placeholders filled) valid in HTTP.
pub(crate) fn check(handler: &str, custom: &AsyncResponse) -> Result<(), ApiError> {
    if !(200..=599).contains(&custom.status) {
        return Err(ApiError::bad_request(format!(
            "async_responses.{handler}.status: {} is not an HTTP status from 200 to 599",
            custom.status
        )));
    }
    let sample = InvocationId::new(0, 0);
    for (name, value) in &custom.headers {
        HeaderName::try_from(name.as_str()).map_err(|_| {
            ApiError::bad_request(format!("async_responses.{handler}.headers: bad header name '{name}'"))
        })?;
        HeaderValue::try_from(fill(value, &sample, &attach_url(&sample))).map_err(|_| {
            ApiError::bad_request(format!("async_responses.{handler}.headers: bad value for header '{name}'"))
        })?;
    }
    Ok(())
}

/// How an attach request waits: up to the node's attach bound, or less if
/// the client asks for less (`Prefer: wait`, `?timeout=`). When the wait
/// ends first, the answer is 202 with `location`, the request's own URL.
pub(crate) struct AttachWait {
    /// The bound of the wait (never "until parked": whoever attaches wants
    /// the result).
    pub policy: WaitPolicy,
    /// The path and query of the request.
    pub location: String,
}

impl<C: Send + Sync> FromRequestParts<IngressState<C>> for AttachWait {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &IngressState<C>) -> Result<Self, Response> {
        let mut policy = WaitPolicy::UNBOUNDED;
        if let Some(bound) = state.attach_timeout {
            policy = policy.at_most(millis(bound));
        }
        if let Some(asked) = requested(&parts.headers, &parts.uri).map_err(ingress_error)? {
            policy = policy.at_most(millis(asked.wait));
        }
        let location = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_string();
        Ok(AttachWait { policy, location })
    }
}

#[cfg(test)]
mod tests;
