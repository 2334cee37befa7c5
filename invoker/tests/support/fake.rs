//! A scripted SDK endpoint: an h2c (or HTTP/1.1) hyper server on 127.0.0.1:0 whose
//! handler gets the invocation request and answers with whatever the test wants, including
//! bytes no real SDK would send.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame as BodyFrame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_endpoint::EndpointAddress;
use keel_protocol::{Decoder, Frame, Message, ServiceProtocolVersion, encode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::EVENT_TIMEOUT;

/// Response body of the fake: anything boxed.
pub type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running fake endpoint; stops accepting when dropped.
pub struct FakeSdk {
    pub addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl Drop for FakeSdk {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl FakeSdk {
    /// An h2c server answering each request with `handler(request)`.
    pub async fn start<F, Fut>(handler: F) -> FakeSdk
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<FakeBody>> + Send + 'static,
    {
        Self::start_with(false, handler).await
    }

    /// Like [`FakeSdk::start`], speaking HTTP/1.1 instead when `http1` is set.
    pub async fn start_with<F, Fut>(http1: bool, handler: F) -> FakeSdk
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<FakeBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake endpoint");
        let addr = listener.local_addr().expect("local addr");
        let handler = Arc::new(handler);
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let reply = handler(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let io = TokioIo::new(stream);
                tokio::spawn(async move {
                    let _ = if http1 {
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                    } else {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    };
                });
            }
        });
        FakeSdk { addr, accept_loop }
    }

    /// The address to invoke, as registered (h2c unless `use_http_11`).
    pub fn address(&self, use_http_11: bool) -> EndpointAddress {
        let uri = format!("http://{}", self.addr).parse().expect("valid uri");
        EndpointAddress { use_http_11, ..EndpointAddress::new(uri) }
    }
}

/// A reply with `status`, optional content type and a fixed body.
pub fn reply(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Response<FakeBody> {
    let mut builder = Response::builder().status(status);
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder.body(Full::new(body.into()).boxed()).expect("valid reply")
}

/// A 200 V7 reply whose body is fed by the returned sender; dropping it ends the body.
pub fn streaming_reply() -> (mpsc::Sender<Bytes>, Response<FakeBody>) {
    let (tx, rx) = mpsc::channel(16);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, ServiceProtocolVersion::V7.content_type())
        .body(ChannelBody { rx }.boxed())
        .expect("valid reply");
    (tx, response)
}

/// Frames the messages back to back, as an SDK writes them.
pub fn frames(messages: &[Message]) -> Bytes {
    messages.iter().flat_map(|m| encode(m).expect("encodable").to_vec()).collect::<Vec<u8>>().into()
}

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(BodyFrame::data(bytes))))
    }
}

/// Reads frames off a request body.
pub struct FrameReader {
    body: Incoming,
    decoder: Decoder,
}

impl FrameReader {
    pub fn new(body: Incoming) -> Self {
        FrameReader { body, decoder: Decoder::new() }
    }

    /// The next frame, or `None` once the body ended on a frame boundary; bounded wait.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames from keel") {
                return Some(frame);
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.body.frame()).await.expect("request body in time");
            match chunk {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                Some(Err(e)) => panic!("request body broke: {e}"),
                None => {
                    self.decoder.finish().expect("request body ends on a frame boundary");
                    return None;
                }
            }
        }
    }
}
