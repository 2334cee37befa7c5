//! The pooled HTTP client shared by everything that talks to SDK endpoints.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Request body type of [`EndpointClient::request`]: boxed so that discovery (an empty
/// body) and invocation streams (a channel of frames) go through the same pools. Not
/// `Sync`, so streaming bodies need not be.
pub type RequestBody = UnsyncBoxBody<Bytes, Box<dyn StdError + Send + Sync>>;

/// How long opening a TCP connection may take before [`EndpointClient::new`]'s client gives
/// up. Separate from (and usually shorter than) a request's overall deadline, so an
/// unroutable address fails as "unreachable" rather than eating the whole deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP version used with a deployment; chosen at registration (`use_http_11`) and kept
/// for every later request, because an endpoint may speak only one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.1. Request/response invocations only in practice.
    Http11,
    /// HTTP/2 over cleartext with prior knowledge (h2c), which bidi streaming needs.
    Http2,
}

impl HttpVersion {
    /// The spelling of Restate's admin API (`http_version` of a deployment).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2.0",
        }
    }

    /// The `http` crate's version value.
    pub fn to_http(self) -> http::Version {
        match self {
            HttpVersion::Http11 => http::Version::HTTP_11,
            HttpVersion::Http2 => http::Version::HTTP_2,
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HTTP client for SDK endpoints. Clones share the connection pools, so create one per
/// process and hand out clones.
///
/// It holds two hyper clients over one TCP connector (connect timeout, `TCP_NODELAY`
/// because protocol frames are small and latency-bound). Two, because the legacy client
/// pools connections by scheme and authority only: an h2c and an HTTP/1.1 deployment on the
/// same host and port must not share connections.
#[derive(Clone, Debug)]
pub struct EndpointClient {
    /// h2c with prior knowledge: the client sends the HTTP/2 preface right away.
    h2c: Client<HttpConnector, RequestBody>,
    /// Plain HTTP/1.1.
    http1: Client<HttpConnector, RequestBody>,
}

impl Default for EndpointClient {
    fn default() -> Self {
        Self::new()
    }
}

impl EndpointClient {
    /// A client with [`DEFAULT_CONNECT_TIMEOUT`]. Needs no runtime to build, but requests
    /// must run on a Tokio runtime.
    pub fn new() -> Self {
        Self::with_connect_timeout(DEFAULT_CONNECT_TIMEOUT)
    }

    /// A client whose TCP connects give up after `connect_timeout`.
    pub fn with_connect_timeout(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        // `enforce_http` stays on: an `https` URI fails instead of being sent in clear text.
        let h2c = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(true)
            .build(connector.clone());
        let http1 = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(connector);
        EndpointClient { h2c, http1 }
    }

    /// Sends `request` over `version`, on a pooled connection when one is free. The
    /// request's own version field is overwritten to match. The future resolves once the
    /// response head arrives; the body streams afterwards.
    pub fn request(&self, version: HttpVersion, mut request: Request<RequestBody>) -> ResponseFuture {
        *request.version_mut() = version.to_http();
        match version {
            HttpVersion::Http2 => self.h2c.request(request),
            HttpVersion::Http11 => self.http1.request(request),
        }
    }
}
