//! A fake SDK endpoint for discovery tests: a hyper server on 127.0.0.1:0 speaking either
//! h2c or HTTP/1.1 only (like the real SDK servers, which speak one or the other), answering
//! with whatever the test's handler returns and recording every request it saw.
#![allow(dead_code)] // each test binary uses a different part of it

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The TypeScript test services' real manifest (BIDI_STREAM, protocol 5..=7).
pub const TS_MANIFEST: &str = include_str!("../../../protocol/testdata/manifest_v4_sdk_ts.json");

/// Services in [`TS_MANIFEST`], in manifest order.
pub const TS_SERVICES: [&str; 5] = ["Greeter", "Counter", "SideEffects", "Signup", "Awaiter"];

/// The v4 manifest content type.
pub const V4: &str = "application/vnd.restate.endpointmanifest.v4+json";

/// What the fake server answers.
pub type Reply = Response<Full<Bytes>>;

/// Which HTTP the fake server speaks. Each is exclusive, like the real SDK servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/2 with prior knowledge only.
    H2c,
    /// HTTP/1.1 only.
    Http1,
}

/// A request as the fake server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// HTTP version of the request.
    pub version: Version,
    /// All headers.
    pub headers: HeaderMap,
}

/// A running fake endpoint; stops accepting when dropped.
pub struct FakeEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl FakeEndpoint {
    /// Starts a server answering every request with `handler(request)`.
    pub async fn start<F, Fut>(proto: Proto, handler: F) -> FakeEndpoint
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake endpoint");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let accept_loop = tokio::spawn({
            let (seen, connections) = (seen.clone(), connections.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (seen, handler) = (seen.clone(), handler.clone());
                    let service = service_fn(move |req: Request<Incoming>| {
                        let request = Seen {
                            method: req.method().clone(),
                            path: req.uri().path_and_query().map(ToString::to_string).unwrap_or_default(),
                            version: req.version(),
                            headers: req.headers().clone(),
                        };
                        seen.lock().expect("seen lock").push(request.clone());
                        let reply = handler(request);
                        async move { Ok::<_, Infallible>(reply.await) }
                    });
                    let io = TokioIo::new(stream);
                    tokio::spawn(async move {
                        // Protocol errors (the wrong HTTP version knocking) end the
                        // connection; that is what the tests provoke.
                        let _ = match proto {
                            Proto::H2c => {
                                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                    .serve_connection(io, service)
                                    .await
                            }
                            Proto::Http1 => {
                                hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                            }
                        };
                    });
                }
            }
        });
        FakeEndpoint { addr, seen, connections, accept_loop }
    }

    /// A server answering every request with a fixed reply.
    pub async fn fixed(proto: Proto, status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        let (content_type, body) = (content_type.map(str::to_owned), body.into());
        Self::start(proto, move |_| {
            let reply = reply(status, content_type.as_deref(), body.clone());
            async move { reply }
        })
        .await
    }

    /// An HTTP/1.1 server in the style of Node's `http`, nginx or h11: it reads HTTP/2's
    /// preface (`PRI * HTTP/2.0`) as a malformed request and answers `400 Bad Request`
    /// before closing. (hyper's own HTTP/1.1 server closes without answering instead.)
    pub async fn http1_rejecting_h2_preface() -> FakeEndpoint {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake endpoint");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf).await;
                        let _ = stream
                            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        // Half-close and drain, so the client reads the answer instead of a reset.
                        let _ = stream.shutdown().await;
                        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                    });
                }
            }
        });
        FakeEndpoint { addr, seen: Arc::default(), connections, accept_loop }
    }

    /// `http://127.0.0.1:<port>` followed by `path` (empty, or starting with `/`).
    pub fn uri(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.addr).parse().expect("valid uri")
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeEndpoint {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// A reply with `status`, an optional content type, `x-restate-server` and `body`.
pub fn reply(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
    let mut builder = Response::builder().status(status).header("x-restate-server", "restate-sdk-fake/0.0.1");
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder.body(Full::new(body.into())).expect("valid reply")
}

/// [`TS_MANIFEST`] with top-level fields replaced, e.g. `[("protocolMode", json!("REQUEST_RESPONSE"))]`.
pub fn ts_manifest_with(changes: &[(&str, serde_json::Value)]) -> String {
    let mut manifest: serde_json::Value = serde_json::from_str(TS_MANIFEST).expect("TS manifest is JSON");
    for (field, value) in changes {
        manifest[*field] = value.clone();
    }
    manifest.to_string()
}
