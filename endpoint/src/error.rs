//! Why discovery failed, in terms an operator can act on.
//!
//! Every message names the URI that was asked and what was wrong; the admin API passes it
//! through verbatim as `message`, with [`DiscoveryError::restate_code`] as `restate_code`
//! and [`DiscoveryError::http_status`] as the status, the way Restate answers
//! `POST /deployments`.

use std::time::Duration;

use http::StatusCode;
use keel_protocol::{DISCOVERY_ACCEPT, ManifestError, ServiceProtocolVersion};

/// A failed discovery of one deployment.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The registered URI cannot be used to build a request (no scheme or host, not
    /// `http`, invalid characters).
    #[error("invalid deployment uri {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as registered.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No HTTP answer: connection refused, DNS failure, reset, connect timeout, or the
    /// body broke off mid-way.
    #[error("cannot reach the deployment at {uri}: {reason}")]
    Unreachable {
        /// The discovery URI.
        uri: String,
        /// The transport error and its causes.
        reason: String,
    },
    /// No complete answer within the discovery deadline.
    #[error("discovery of {uri} timed out: no complete response within {timeout:?}")]
    Timeout {
        /// The discovery URI.
        uri: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The endpoint answered with a non-2xx status.
    #[error(
        "discovery of {uri} answered HTTP {status}{hint}; response body: {body_snippet:?}",
        hint = status_hint(*status)
    )]
    BadStatus {
        /// The discovery URI.
        uri: String,
        /// The status received.
        status: StatusCode,
        /// The start of the response body (lossy UTF-8), often the SDK's explanation.
        body_snippet: String,
    },
    /// The h2c request failed in a way typical of an HTTP/1.1 server reading the HTTP/2
    /// preface as a bad request and answering in HTTP/1.1.
    #[error(
        "discovery of {uri} over HTTP/2 (h2c, prior knowledge) failed; the endpoint probably speaks only \
         HTTP/1.1: register it with use_http_11 = true ({reason})"
    )]
    Http11Only {
        /// The discovery URI.
        uri: String,
        /// The HTTP/2 error and its causes.
        reason: String,
    },
    /// The HTTP/1.1 request got an answer that does not parse as HTTP/1.1, typical of an
    /// h2c-only endpoint (the TypeScript and Rust SDK servers) answering with HTTP/2 frames.
    #[error(
        "discovery of {uri} over HTTP/1.1 got an answer that is not HTTP/1.1; the endpoint probably speaks \
         only HTTP/2: register it without use_http_11 ({reason})"
    )]
    Http2Only {
        /// The discovery URI.
        uri: String,
        /// The parse error and its causes.
        reason: String,
    },
    /// The 2xx response is not a manifest keel can read: missing or unknown content type.
    #[error(
        "discovery of {uri} answered content-type {}, expected one of: {DISCOVERY_ACCEPT}",
        content_type.as_deref().map_or_else(|| "(none)".to_owned(), |ct| format!("{ct:?}"))
    )]
    BadContentType {
        /// The discovery URI.
        uri: String,
        /// The `content-type` received, if any (lossy UTF-8).
        content_type: Option<String>,
    },
    /// The manifest exceeds [`crate::MAX_MANIFEST_BYTES`].
    #[error("discovery of {uri} answered more than {limit} bytes, which is not a plausible manifest")]
    BodyTooLarge {
        /// The discovery URI.
        uri: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The manifest is not valid JSON, lacks a required field, or breaks a rule checked by
    /// [`keel_protocol::EndpointManifest::validate`]; the message names the field.
    #[error("discovery of {uri} returned an invalid manifest: {reason}")]
    BadManifest {
        /// The discovery URI.
        uri: String,
        /// The parse or validation error.
        reason: ManifestError,
    },
    /// The deployment's protocol range does not overlap keel's.
    #[error(
        "unsupported service protocol versions: the deployment at {uri} supports {min}..={max}, keel supports \
         {}..={}; upgrade the SDK and register again", keel_min.as_u32(), keel_max.as_u32()
    )]
    UnsupportedProtocolVersions {
        /// The discovery URI.
        uri: String,
        /// `minProtocolVersion` of the manifest.
        min: u32,
        /// `maxProtocolVersion` of the manifest.
        max: u32,
        /// Lowest version keel accepts.
        keel_min: ServiceProtocolVersion,
        /// Highest version keel accepts.
        keel_max: ServiceProtocolVersion,
    },
}

/// A hint for statuses with a common, fixable cause.
fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => {
            " (check the deployment uri: give the base URL the SDK serves, keel appends /discover)"
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (if the endpoint needs credentials, pass them in additional_headers)"
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => " (the SDK does not support any manifest version keel accepts)",
        _ => "",
    }
}

impl DiscoveryError {
    /// Restate's error code for this failure, as shown in `restate_code` of admin errors:
    /// `META0003` cannot reach / bad status, `META0012` unsupported protocol versions,
    /// `META0013` bad response, `META0014` possibly HTTP/1.1 only, `META0015` bidi over a
    /// transport that cannot do it.
    pub fn restate_code(&self) -> &'static str {
        match self {
            DiscoveryError::InvalidUri { .. }
            | DiscoveryError::Unreachable { .. }
            | DiscoveryError::Timeout { .. }
            | DiscoveryError::BadStatus { .. }
            | DiscoveryError::Http2Only { .. } => "META0003",
            DiscoveryError::Http11Only { .. } => "META0014",
            DiscoveryError::BadContentType { .. }
            | DiscoveryError::BodyTooLarge { .. }
            | DiscoveryError::BadManifest { .. } => "META0013",
            DiscoveryError::UnsupportedProtocolVersions { .. } => "META0012",
        }
    }

    /// The status the admin API answers a failed registration with.
    ///
    /// 400 when the request or the service definition must change: an unusable URI, a
    /// manifest that parses but breaks a rule (a bad name, a wrong handler type, a missing
    /// field, an unknown enum value), or bidi requested over HTTP/1.1. 500 when the endpoint
    /// could not be reached or did not answer with a manifest at all (including malformed
    /// JSON), and for a non-overlapping protocol range, as Restate does.
    pub fn http_status(&self) -> u16 {
        match self {
            DiscoveryError::InvalidUri { .. } => 400,
            DiscoveryError::BadManifest { reason: ManifestError::Json(e), .. } if !e.is_data() => 500,
            DiscoveryError::BadManifest { .. } => 400,
            DiscoveryError::Unreachable { .. }
            | DiscoveryError::Timeout { .. }
            | DiscoveryError::BadStatus { .. }
            | DiscoveryError::Http11Only { .. }
            | DiscoveryError::Http2Only { .. }
            | DiscoveryError::BadContentType { .. }
            | DiscoveryError::BodyTooLarge { .. }
            | DiscoveryError::UnsupportedProtocolVersions { .. } => 500,
        }
    }

    /// Whether trying again later may succeed without anyone changing anything: transport
    /// failures, timeouts and the statuses Restate retries discovery on (408, 429, 500,
    /// 502, 503, 504). Callers decide whether and how often to retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            DiscoveryError::Unreachable { .. } | DiscoveryError::Timeout { .. } => true,
            DiscoveryError::BadStatus { status, .. } => matches!(
                *status,
                StatusCode::REQUEST_TIMEOUT
                    | StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::INTERNAL_SERVER_ERROR
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "http://127.0.0.1:9080/discover";

    fn bad_manifest(json: &str) -> DiscoveryError {
        let reason = keel_protocol::EndpointManifest::parse(json.as_bytes()).unwrap_err();
        DiscoveryError::BadManifest { uri: URI.to_owned(), reason }
    }

    #[test]
    fn malformed_json_is_a_bad_response_but_a_wrong_shape_is_a_validation_error() {
        let syntax = bad_manifest("{\"protocolMode\": ");
        assert_eq!((syntax.restate_code(), syntax.http_status()), ("META0013", 500));
        let missing = bad_manifest(r#"{"minProtocolVersion": 5, "maxProtocolVersion": 7, "services": []}"#);
        assert_eq!((missing.restate_code(), missing.http_status()), ("META0013", 400));
        assert!(missing.to_string().contains("protocolMode"), "{missing}");
        let invalid = bad_manifest(
            r#"{"protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 7,
                "services": [{"name": "9lives", "ty": "SERVICE", "handlers": []}]}"#,
        );
        assert_eq!(invalid.http_status(), 400);
        assert!(invalid.to_string().contains("services[0].name"), "{invalid}");
        assert!(invalid.to_string().contains(URI), "{invalid}");
    }

    #[test]
    fn codes_statuses_and_retryability() {
        let uri = || URI.to_owned();
        let status = |s: u16| DiscoveryError::BadStatus {
            uri: uri(),
            status: StatusCode::from_u16(s).unwrap(),
            body_snippet: String::new(),
        };
        let cases: Vec<(DiscoveryError, &str, u16, bool)> = vec![
            (DiscoveryError::InvalidUri { uri: uri(), reason: "x".into() }, "META0003", 400, false),
            (DiscoveryError::Unreachable { uri: uri(), reason: "x".into() }, "META0003", 500, true),
            (DiscoveryError::Timeout { uri: uri(), timeout: Duration::from_secs(1) }, "META0003", 500, true),
            (status(404), "META0003", 500, false),
            (status(503), "META0003", 500, true),
            (DiscoveryError::Http11Only { uri: uri(), reason: "x".into() }, "META0014", 500, false),
            (DiscoveryError::Http2Only { uri: uri(), reason: "x".into() }, "META0003", 500, false),
            (DiscoveryError::BadContentType { uri: uri(), content_type: None }, "META0013", 500, false),
            (DiscoveryError::BodyTooLarge { uri: uri(), limit: 1 }, "META0013", 500, false),
            (
                DiscoveryError::UnsupportedProtocolVersions {
                    uri: uri(),
                    min: 1,
                    max: 4,
                    keel_min: ServiceProtocolVersion::V5,
                    keel_max: ServiceProtocolVersion::V7,
                },
                "META0012",
                500,
                false,
            ),
        ];
        for (err, code, http, retry) in cases {
            assert_eq!((err.restate_code(), err.http_status(), err.is_retryable()), (code, http, retry), "{err}");
            assert!(err.to_string().contains(URI), "message lacks the uri: {err}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let not_found = DiscoveryError::BadStatus {
            uri: URI.to_owned(),
            status: StatusCode::NOT_FOUND,
            body_snippet: "no such route".to_owned(),
        };
        let text = not_found.to_string();
        assert!(text.contains("404") && text.contains("/discover") && text.contains("no such route"), "{text}");
        let ct = DiscoveryError::BadContentType { uri: URI.to_owned(), content_type: Some("text/html".to_owned()) };
        assert!(ct.to_string().contains("\"text/html\"") && ct.to_string().contains("endpointmanifest.v4"), "{ct}");
        let versions = DiscoveryError::UnsupportedProtocolVersions {
            uri: URI.to_owned(),
            min: 1,
            max: 4,
            keel_min: ServiceProtocolVersion::V5,
            keel_max: ServiceProtocolVersion::V7,
        };
        assert!(versions.to_string().contains("1..=4") && versions.to_string().contains("5..=7"), "{versions}");
    }
}
