//! Building the invocation request: URI, headers, and the bytes that open the body.

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use keel_endpoint::{EndpointAddress, HttpVersion, RequestBody};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{Message, proto};

use crate::AttemptParams;
use crate::error::AttemptError;
use crate::session::wire_bytes;

/// Informational header naming the invocation (doc §3.1).
const INVOCATION_ID_HEADER: &str = "x-restate-invocation-id";
/// Informational header with the URL-encoded object/workflow key (doc §3.1).
const SERVICE_KEY_HEADER: &str = "x-restate-service-key";

/// Headers the protocol or HTTP itself owns; invocation headers may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "host",
    INVOCATION_ID_HEADER,
    SERVICE_KEY_HEADER,
];

/// Whether the attempt streams both ways (doc §3.2). HTTP/1.1 cannot, a REQUEST_RESPONSE
/// SDK will not answer before the body ends, and a zero inactivity timeout means "never
/// wait for the SDK with the body open" (Restate forces request/response then too).
pub fn is_bidi(params: &AttemptParams) -> bool {
    params.http_version == HttpVersion::Http2
        && params.protocol_mode == ProtocolMode::BidiStream
        && !params.timeouts.inactivity.is_zero()
}

/// `{uri}/invoke/{service}/{handler}`, each name percent-encoded as one path segment.
/// Manifest validation already limits names to URL-safe characters; encoding anyway means
/// no name can ever reach a different path.
pub fn invoke_uri(address: &EndpointAddress, service: &str, handler: &str) -> Result<Uri, AttemptError> {
    let suffix = format!("/invoke/{}/{}", percent_encode(service), percent_encode(handler));
    address.join(&suffix).map_err(|e| AttemptError::InvalidRequest(format!("invoke path {suffix:?}: {e}")))
}

/// The POST request carrying `body`, with the protocol headers, then the invocation
/// headers, then the deployment's additional headers (which win, as in Restate).
pub fn build(
    address: &EndpointAddress,
    params: &AttemptParams,
    body: RequestBody,
) -> Result<Request<RequestBody>, AttemptError> {
    let uri = invoke_uri(address, &params.service, &params.handler)?;
    let content_type = HeaderValue::from_static(params.protocol_version.content_type());
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, content_type.clone());
    headers.insert(ACCEPT, content_type);
    let id = HeaderValue::try_from(params.invocation_id.to_string())
        .map_err(|e| AttemptError::InvalidRequest(format!("invocation id header: {e}")))?;
    headers.insert(INVOCATION_ID_HEADER, id);
    if let Some(key) = &params.key {
        // Percent-encoded text is visible ASCII, so it is always a valid header value.
        if let Ok(value) = HeaderValue::try_from(percent_encode(key)) {
            headers.insert(SERVICE_KEY_HEADER, value);
        }
    }
    for (name, value) in &params.headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) if !RESERVED_HEADERS.contains(&name.as_str()) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(header = %name, "skipping an invocation header that is reserved or invalid"),
        }
    }
    address.apply_headers(&mut headers);

    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .body(body)
        .map_err(|e| AttemptError::InvalidRequest(e.to_string()))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// StartMessage followed by the whole journal, framed: the opening of every attempt.
pub fn opening_bytes(params: &AttemptParams) -> Result<Bytes, AttemptError> {
    let start = Message::from(start_message(params)?);
    let start = keel_protocol::encode(&start).map_err(|e| AttemptError::InvalidRequest(e.to_string()))?;
    let journal_len: usize = params.journal.iter().map(|f| keel_protocol::HEADER_LEN + f.payload.len()).sum();
    let mut buf = BytesMut::with_capacity(start.len() + journal_len);
    buf.extend_from_slice(&start);
    for frame in &params.journal {
        buf.extend_from_slice(&wire_bytes(frame).map_err(|e| AttemptError::InvalidJournal(e.to_string()))?);
    }
    Ok(buf.freeze())
}

/// The StartMessage (doc §5.1, §6.4): what the SDK knows about the invocation before
/// replay. Fields a version does not know stay at their proto3 default, which is the same
/// as not sending them.
pub fn start_message(params: &AttemptParams) -> Result<proto::StartMessage, AttemptError> {
    let known_entries = u32::try_from(params.journal.len())
        .map_err(|_| AttemptError::InvalidJournal(format!("{} entries do not fit u32", params.journal.len())))?;
    let (state_map, partial_state) = match &params.eager_state {
        Some(entries) => (
            entries
                .iter()
                .map(|(key, value)| proto::start_message::StateEntry { key: key.clone(), value: value.clone() })
                .collect(),
            params.partial_state,
        ),
        None => (Vec::new(), true),
    };
    let id = params.invocation_id;
    Ok(proto::StartMessage {
        id: Bytes::copy_from_slice(&id.to_bytes()),
        debug_id: id.to_string(),
        known_entries,
        state_map,
        partial_state,
        key: params.key.clone().unwrap_or_default(),
        retry_count_since_last_stored_entry: params.retry_count_since_last_stored_entry,
        duration_since_last_stored_entry: u64::try_from(params.duration_since_last_stored_entry.as_millis())
            .unwrap_or(u64::MAX),
        random_seed: if params.protocol_version.has_random_seed() { params.random_seed } else { 0 },
        scope: None,
        limit_key: None,
        idempotency_key: None,
    })
}

/// RFC 3986 percent-encoding of everything but unreserved characters, so the result is
/// one path segment (or a plain-ASCII header value) whatever the input.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_protocol::ServiceProtocolVersion;

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("Greeter"), "Greeter");
        assert_eq!(percent_encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("ü"), "%C3%BC");
    }

    fn params(version: ServiceProtocolVersion) -> AttemptParams {
        let input = Message::from(proto::InputCommandMessage::default()).to_frame(keel_protocol::Flags::NONE).unwrap();
        AttemptParams {
            invocation_id: keel_protocol::InvocationId::new(7, 42),
            service: "Counter".into(),
            handler: "add".into(),
            key: Some("k".into()),
            protocol_version: version,
            http_version: HttpVersion::Http2,
            protocol_mode: ProtocolMode::BidiStream,
            journal: vec![input],
            eager_state: Some(vec![(Bytes::from_static(b"count"), Bytes::from_static(b"41"))]),
            partial_state: false,
            retry_count_since_last_stored_entry: 2,
            duration_since_last_stored_entry: std::time::Duration::from_millis(1500),
            random_seed: 99,
            headers: Vec::new(),
            timeouts: crate::AttemptTimeouts::default(),
        }
    }

    #[test]
    fn start_message_carries_the_invocation() {
        let id = keel_protocol::InvocationId::new(7, 42);
        let start = start_message(&params(ServiceProtocolVersion::V7)).unwrap();
        let expected = proto::StartMessage {
            id: Bytes::copy_from_slice(&id.to_bytes()),
            debug_id: id.to_string(),
            known_entries: 1,
            state_map: vec![proto::start_message::StateEntry {
                key: Bytes::from_static(b"count"),
                value: Bytes::from_static(b"41"),
            }],
            partial_state: false,
            key: "k".into(),
            retry_count_since_last_stored_entry: 2,
            duration_since_last_stored_entry: 1500,
            random_seed: 99,
            scope: None,
            limit_key: None,
            idempotency_key: None,
        };
        assert_eq!(start, expected);
    }

    #[test]
    fn start_message_follows_the_version_and_state_rules() {
        // V5 has no random seed.
        assert_eq!(start_message(&params(ServiceProtocolVersion::V5)).unwrap().random_seed, 0);
        assert_eq!(start_message(&params(ServiceProtocolVersion::V6)).unwrap().random_seed, 99);
        // Nothing loaded means the SDK must ask: partial whatever the flag says.
        let mut lazy = params(ServiceProtocolVersion::V7);
        lazy.eager_state = None;
        lazy.key = None;
        let start = start_message(&lazy).unwrap();
        assert!(start.partial_state && start.state_map.is_empty() && start.key.is_empty());
    }

    #[test]
    fn bidi_needs_h2_a_bidi_deployment_and_an_inactivity_timeout() {
        let mut p = params(ServiceProtocolVersion::V7);
        assert!(is_bidi(&p));
        p.http_version = HttpVersion::Http11;
        assert!(!is_bidi(&p));
        p.http_version = HttpVersion::Http2;
        p.protocol_mode = ProtocolMode::RequestResponse;
        assert!(!is_bidi(&p));
        p.protocol_mode = ProtocolMode::BidiStream;
        p.timeouts.inactivity = std::time::Duration::ZERO;
        assert!(!is_bidi(&p));
    }

    #[test]
    fn headers_protocol_first_then_invocation_then_deployment() {
        let mut p = params(ServiceProtocolVersion::V7);
        p.key = Some("a key/ü".into());
        p.headers = vec![
            ("traceparent".into(), "00-abc-def-01".into()),
            ("content-type".into(), "text/plain".into()),
            ("bad name".into(), "x".into()),
        ];
        let mut address = EndpointAddress::new(Uri::from_static("http://h:1"));
        address
            .additional_headers
            .push((HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer t")));
        let request = build(&address, &p, crate::body::full(Bytes::new())).unwrap();
        let h = request.headers();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().to_string(), "http://h:1/invoke/Counter/add");
        assert_eq!(h[CONTENT_TYPE], "application/vnd.restate.invocation.v7");
        assert_eq!(h[ACCEPT], "application/vnd.restate.invocation.v7");
        assert_eq!(h[INVOCATION_ID_HEADER], p.invocation_id.to_string().as_str());
        assert_eq!(h[SERVICE_KEY_HEADER], "a%20key%2F%C3%BC");
        assert_eq!(h["traceparent"], "00-abc-def-01");
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn invoke_uri_joins_under_the_base_path() {
        let address = EndpointAddress::new(Uri::from_static("http://h:1/prefix/?t=1"));
        let uri = invoke_uri(&address, "Svc", "run").unwrap();
        assert_eq!(uri.to_string(), "http://h:1/prefix/invoke/Svc/run?t=1");
        let uri = invoke_uri(&address, "a/b", "c d").unwrap();
        assert_eq!(uri.path(), "/prefix/invoke/a%2Fb/c%20d");
    }
}
