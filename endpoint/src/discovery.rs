//! Service discovery: `GET {uri}/discover`, checked and validated.
//!
//! The steps, each with its own error so the operator learns exactly what to fix:
//! build the URI ([`DiscoveryError::InvalidUri`]), send the request over the registered
//! HTTP version (transport failures become `Unreachable`, or `Http11Only`/`Http2Only` when
//! the failure looks like a version mismatch), require a 2xx status (`BadStatus`), a
//! manifest content type keel reads (`BadContentType`) and a bounded body
//! (`BodyTooLarge`), parse and validate the manifest with `keel-protocol` (`BadManifest`),
//! and pick the invocation protocol version (`UnsupportedProtocolVersions`). A BIDI_STREAM
//! manifest discovered over HTTP/1.1 is accepted, as Restate accepts it: the user chose
//! HTTP/1.1, and invocations then run in request/response mode. One deadline covers all of it (`Timeout`).
//!
//! Discovery does not retry; [`DiscoveryError::is_retryable`] tells the caller whether it
//! may make sense to.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Incoming;
use keel_protocol::{
    DISCOVERY_ACCEPT, EndpointManifest, EndpointManifestVersion, ManifestError, ServiceProtocolVersion, VersionError,
    VersionPolicy,
};

use crate::address::EndpointAddress;
use crate::client::{EndpointClient, HttpVersion, RequestBody};
use crate::error::DiscoveryError;

/// Largest manifest body keel reads. Real manifests are kilobytes, even with JSON schemas
/// for every handler; the bound keeps a misbehaving endpoint from exhausting memory.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// How much of an error response's body goes into [`DiscoveryError::BadStatus`]: enough
/// for the SDK's one-line explanation, little enough for an error message.
const BODY_SNIPPET_BYTES: usize = 512;

/// The SDK name and version header, e.g. `restate-sdk-typescript/1.17.2`.
const X_RESTATE_SERVER: &str = "x-restate-server";

/// A successfully discovered deployment: everything registration stores about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The parsed and validated manifest.
    pub manifest: EndpointManifest,
    /// The manifest format the SDK chose from keel's `accept` header.
    pub manifest_version: EndpointManifestVersion,
    /// The invocation protocol version to use with this deployment, chosen with keel's
    /// default [`VersionPolicy`]: the newest both sides speak.
    pub protocol_version: ServiceProtocolVersion,
    /// The SDK's `x-restate-server` header, stored as the deployment's `sdk_version`.
    pub sdk_version: Option<String>,
    /// The HTTP version discovery succeeded with; invocations must use the same.
    pub http_version: HttpVersion,
}

impl EndpointClient {
    /// Discovers the deployment at `addr`: `GET {uri}/discover` with keel's manifest
    /// `accept` header and the address's additional headers, over h2c (prior knowledge)
    /// or, with `use_http_11`, HTTP/1.1. `timeout` bounds the whole exchange, body
    /// included.
    pub async fn discover(&self, addr: &EndpointAddress, timeout: Duration) -> Result<Discovered, DiscoveryError> {
        let uri = discover_uri(addr)?;
        let shown = uri.to_string();
        match tokio::time::timeout(timeout, self.fetch_manifest(addr, uri, &shown)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(DiscoveryError::Timeout { uri: shown, timeout }),
        }
    }

    /// Everything [`Self::discover`] does except the deadline. `shown` is `uri` as text,
    /// for error messages.
    async fn fetch_manifest(
        &self,
        addr: &EndpointAddress,
        uri: Uri,
        shown: &str,
    ) -> Result<Discovered, DiscoveryError> {
        let http_version = addr.http_version();
        let response = self
            .request(http_version, discover_request(addr, uri))
            .await
            .map_err(|err| transport_error(shown, http_version, &err))?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(DiscoveryError::BadStatus {
                uri: shown.to_owned(),
                status: parts.status,
                body_snippet: read_snippet(body).await,
            });
        }

        let content_type = parts.headers.get(CONTENT_TYPE);
        let manifest_version = content_type
            .and_then(|ct| ct.to_str().ok())
            .and_then(EndpointManifestVersion::from_content_type)
            .ok_or_else(|| DiscoveryError::BadContentType {
                uri: shown.to_owned(),
                content_type: content_type.map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned()),
            })?;
        let sdk_version = parts.headers.get(X_RESTATE_SERVER).and_then(|v| v.to_str().ok()).map(str::to_owned);

        let body = Limited::new(body, MAX_MANIFEST_BYTES).collect().await.map_err(|err| {
            if err.downcast_ref::<LengthLimitError>().is_some() {
                DiscoveryError::BodyTooLarge { uri: shown.to_owned(), limit: MAX_MANIFEST_BYTES }
            } else {
                DiscoveryError::Unreachable {
                    uri: shown.to_owned(),
                    reason: format!("the response body broke off: {}", error_chain(err.as_ref())),
                }
            }
        })?;
        let manifest = EndpointManifest::parse(&body.to_bytes())
            .map_err(|reason| DiscoveryError::BadManifest { uri: shown.to_owned(), reason })?;

        let protocol_version =
            manifest.select_protocol_version(&VersionPolicy::default()).map_err(|err| match err {
                VersionError::Unsupported { min, max, keel_min, keel_max } => {
                    DiscoveryError::UnsupportedProtocolVersions { uri: shown.to_owned(), min, max, keel_min, keel_max }
                }
                // `parse` validated the range already; kept for completeness.
                VersionError::InvalidRange { min, max } => DiscoveryError::BadManifest {
                    uri: shown.to_owned(),
                    reason: ManifestError::InvalidProtocolVersionRange { min, max },
                },
            })?;

        Ok(Discovered { manifest, manifest_version, protocol_version, sdk_version, http_version })
    }
}

/// `{uri}/discover`, after checking the base URI is something keel can send a request to.
fn discover_uri(addr: &EndpointAddress) -> Result<Uri, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidUri { uri: addr.uri.to_string(), reason };
    match addr.uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(invalid("https is not supported yet: keel has no TLS client".to_owned())),
        Some(other) => return Err(invalid(format!("unsupported scheme {other:?}, expected http"))),
        None => return Err(invalid("no scheme, expected an absolute URL like http://host:port".to_owned())),
    }
    if addr.uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    addr.join("/discover").map_err(|err| invalid(err.to_string()))
}

/// The discovery request: `GET`, keel's `accept`, then the registration's headers.
fn discover_request(addr: &EndpointAddress, uri: Uri) -> Request<RequestBody> {
    let body = Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
    let mut request = Request::new(body);
    *request.uri_mut() = uri;
    request.headers_mut().insert(ACCEPT, HeaderValue::from_static(DISCOVERY_ACCEPT));
    addr.apply_headers(request.headers_mut());
    request
}

/// hyper's text for bytes arriving on an HTTP/1.1 connection with no request in flight;
/// it has no predicate for that error kind. Pinned by a test against an h2c server.
const H1_UNEXPECTED_MESSAGE: &str = "received unexpected message from connection";

/// Classifies a failed request. A server that speaks the other HTTP version usually
/// answers with bytes the client cannot make sense of:
///
/// * an HTTP/1.1 `400` read as HTTP/2 frames claims an absurd frame length
///   (`FRAME_SIZE_ERROR`; Restate uses the same heuristic);
/// * an HTTP/2 server talks first (its SETTINGS frame), which the HTTP/1.1 client sees as an
///   unsolicited message, or as an unparsable status line if the request went out first.
///
/// An h2c connection that the peer simply drops stays "unreachable" (a crashing HTTP/2
/// server looks the same), with a hint at `use_http_11` in the reason.
fn transport_error(uri: &str, version: HttpVersion, err: &hyper_util::client::legacy::Error) -> DiscoveryError {
    let uri = uri.to_owned();
    let mut reason = error_chain(err);
    let h1_answer = version == HttpVersion::Http2
        && causes(err)
            .any(|e| e.downcast_ref::<h2::Error>().and_then(h2::Error::reason) == Some(h2::Reason::FRAME_SIZE_ERROR));
    let h2_answer = version == HttpVersion::Http11
        && causes(err).any(|e| {
            e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse)
                || e.to_string() == H1_UNEXPECTED_MESSAGE
        });
    // Connected, then the peer dropped the connection (hyper reports h2's I/O errors as
    // its own I/O errors).
    let h2_hangup = version == HttpVersion::Http2
        && !err.is_connect()
        && causes(err).any(|e| {
            e.downcast_ref::<std::io::Error>().is_some()
                || e.downcast_ref::<hyper::Error>().is_some_and(|e| e.is_incomplete_message() || e.is_closed())
        });
    if h2_hangup && !h1_answer {
        reason.push_str(
            " (the endpoint accepted the connection and then closed it during the HTTP/2 exchange; if it speaks \
             only HTTP/1.1, register it with use_http_11 = true)",
        );
    }
    if h1_answer {
        DiscoveryError::Http11Only { uri, reason }
    } else if h2_answer {
        DiscoveryError::Http2Only { uri, reason }
    } else {
        DiscoveryError::Unreachable { uri, reason }
    }
}

/// `err` followed by its sources, outermost first.
fn causes<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

/// An error and its causes on one line ("client error (Connect): tcp connect error:
/// Connection refused (os error 111)"), skipping causes whose text the previous message
/// already contains: hyper's layers often repeat their source.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    for cause in causes(err).skip(1) {
        let msg = cause.to_string();
        if !last.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        last = msg;
    }
    text
}

/// The start of an error response's body, as text. Reads no more than needed and gives up
/// quietly on a broken body: the status is the error, the body only explains it.
async fn read_snippet(mut body: Incoming) -> String {
    let mut bytes = Vec::new();
    while bytes.len() <= BODY_SNIPPET_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    let truncated = bytes.len() > BODY_SNIPPET_BYTES;
    bytes.truncate(BODY_SNIPPET_BYTES);
    let mut text = String::from_utf8_lossy(&bytes).trim().to_owned();
    if truncated {
        text.push('…');
    }
    text
}
