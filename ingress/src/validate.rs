//! Input validation against a handler's declared `input` rules, before an
//! invocation is created (as Restate's ingress does): a handler that
//! declares no input takes no body; a body must come with a content type
//! the handler accepts; a required body must be present; and a JSON handler
//! gets well-formed JSON. A failure is a 400 "input validation error: …",
//! so a client learns of its mistake at once instead of through a failed
//! invocation.

use crate::body::{essence, is_json};
use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use keel_protocol::manifest::Handler;

fn invalid(reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("input validation error: {reason}"))
}

/// Checks `body` and its `content-type` against `handler`'s input rules.
pub(crate) fn input(handler: &Handler, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let rules = handler.effective_input();
    let Some(accepted) = rules.content_type.as_deref() else {
        if !body.is_empty() {
            return Err(invalid(format!("handler '{}' takes no input, but the request has a body", handler.name)));
        }
        return Ok(());
    };
    if body.is_empty() {
        if rules.required.unwrap_or(false) {
            return Err(invalid(format!("handler '{}' requires a body of type {accepted}", handler.name)));
        }
        return Ok(());
    }
    let Some(sent) = headers.get(header::CONTENT_TYPE) else {
        return Err(invalid(format!(
            "a body needs a content-type header; handler '{}' accepts {accepted}",
            handler.name
        )));
    };
    let sent = sent.to_str().map_err(|_| invalid("the content-type header is not visible ASCII"))?;
    let mime = essence(sent);
    if !matches(accepted, &mime) {
        return Err(invalid(format!(
            "content-type {mime} is not accepted by handler '{}', which takes {accepted}",
            handler.name
        )));
    }
    if is_json(&mime) && is_json(&essence(accepted)) {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    }
    Ok(())
}

/// Whether `mime` matches an Accept-style pattern: `*/*`, `type/*` or an
/// exact type (parameters ignored).
fn matches(pattern: &str, mime: &str) -> bool {
    let pattern = essence(pattern);
    match pattern.split_once('/') {
        Some(("*", "*")) => true,
        Some((ty, "*")) => mime.split_once('/').is_some_and(|(t, _)| t == ty),
        _ => pattern == mime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use keel_protocol::manifest::InputPayload;

    fn handler(input: Option<InputPayload>) -> Handler {
        let mut h: Handler = serde_json::from_str(r#"{"name":"h"}"#).unwrap();
        h.input = input;
        h
    }

    fn json_input(required: bool) -> Option<InputPayload> {
        Some(InputPayload {
            required: Some(required),
            content_type: Some("application/json".into()),
            json_schema: None,
        })
    }

    fn with_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn json_handlers_take_json() {
        let h = handler(json_input(false));
        assert!(input(&h, &with_type("application/json"), b"{\"a\":1}").is_ok());
        assert!(input(&h, &with_type("Application/JSON; charset=utf-8"), b"42").is_ok());
        assert!(input(&h, &HeaderMap::new(), b"").is_ok());
        let e = input(&h, &with_type("application/json"), b"{\"a\":").unwrap_err();
        assert!(e.message.starts_with("input validation error: malformed JSON"), "{}", e.message);
        assert!(input(&h, &HeaderMap::new(), b"{}").unwrap_err().message.contains("needs a content-type"));
        assert!(input(&h, &with_type("text/plain"), b"hi").unwrap_err().message.contains("not accepted"));
        let required = handler(json_input(true));
        assert!(input(&required, &HeaderMap::new(), b"").unwrap_err().message.contains("requires a body"));
    }

    #[test]
    fn wildcards_and_no_input() {
        // No `input` at all: anything goes (Restate's default).
        let any = handler(None);
        assert!(input(&any, &with_type("application/octet-stream"), b"\x00\x01").is_ok());
        assert!(input(&any, &with_type("text/plain"), b"{not json").is_ok());
        let text = handler(Some(InputPayload { content_type: Some("text/*".into()), ..Default::default() }));
        assert!(input(&text, &with_type("text/csv"), b"a,b").is_ok());
        assert!(input(&text, &with_type("application/json"), b"1").is_err());
        // `input: {}`: the handler takes nothing.
        let none = handler(Some(InputPayload::default()));
        assert!(input(&none, &HeaderMap::new(), b"").is_ok());
        assert!(input(&none, &with_type("application/json"), b"1").unwrap_err().message.contains("takes no input"));
    }
}
