//! The request body of a bidi attempt: whatever the attempt loop pushes into a channel.
//!
//! hyper polls the body on its connection task while the attempt loop reads the response,
//! which is what lets keel write Start and the replay without waiting for the response
//! head (doc §3.2) and stream notifications later. Dropping the sender ends the body
//! (HTTP/2 END_STREAM): that is how an attempt "closes its side".

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use keel_endpoint::RequestBody;
use tokio::sync::mpsc;

/// Chunks queued between the attempt loop and hyper. Small on purpose: the loop keeps its
/// own queue and only hands over what hyper is ready to take, so backpressure from the
/// SDK's flow control reaches the loop instead of piling up here.
const CHANNEL_CAPACITY: usize = 4;

/// A streaming request body fed from an mpsc channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A streaming body and the sender that feeds it.
pub fn channel() -> (mpsc::Sender<Bytes>, RequestBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    (tx, ChannelBody { rx }.map_err(|never| match never {}).boxed_unsync())
}

/// A body that is complete from the start (request/response mode): it carries a
/// content-length, which HTTP/1.1 servers and gateways handle better than chunking.
pub fn full(bytes: Bytes) -> RequestBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
