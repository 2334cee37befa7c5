//! The HTTP server loop for the admin and ingress routers: `axum::serve`
//! plus the defences against slow clients that `axum::serve` lacks.
//!
//! A connection costs a socket, a task and buffers; a request costs one of
//! the ingress's in-flight permits while its handler runs. A client that
//! trickles its header block one byte a minute ("slowloris"), or announces a
//! body it never finishes, holds those for as long as it likes unless the
//! server puts a clock on it. Three bounds close that door:
//!
//! - **header read timeout**: a connection must deliver its first request
//!   head within [`ServeOptions::header_read_timeout`] of being accepted,
//!   and on HTTP/1.1 every later head within the same time of the previous
//!   response (hyper's own timer), so an idle keep-alive connection is
//!   closed after that long too;
//! - **body read timeout**: a request body must arrive completely within
//!   [`ServeOptions::body_read_timeout`] of its headers, or reading it fails
//!   and the client gets a 408;
//! - **connection limit**: at most [`ServeOptions::max_connections`]
//!   connections are served at once; beyond that the server stops accepting
//!   until one closes.

use crate::error::ApiError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// The limits [`serve`] puts on clients.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send a request's header block, counted
    /// from the accept (first request) or from the end of the previous
    /// response (HTTP/1.1 keep-alive). Also the idle timeout of HTTP/1.1
    /// keep-alive connections, and the HTTP/2 keep-alive ping interval and
    /// timeout. Default 30 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body, counted from the
    /// end of its headers. It bounds the whole body, not the gap between
    /// chunks: it must exceed the largest accepted body divided by the slowest
    /// upload rate worth serving. Default 60 s.
    pub body_read_timeout: Duration,
    /// How many connections are served at once (0 counts as 1). Default
    /// 10 000, far above what the in-flight request limit lets do useful work
    /// but well under a typical file-descriptor limit.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for open connections to finish
    /// their in-flight requests before dropping them. Default 30 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts
/// down gracefully.
///
/// Like `axum::serve`, each connection speaks HTTP/1.1 or HTTP/2 with prior
/// knowledge (h2c), told apart by the first bytes (hyper-util's `auto`
/// builder). Accepted sockets keep Nagle's algorithm, as with `axum::serve`:
/// hyper writes each response in one vectored write, so nothing waits on
/// it, and with `TCP_NODELAY` the ingress served 7–10% fewer requests at 16
/// connections (BENCHMARKS.md, 2026-12-07).
///
/// Slow clients are bounded as the [module docs](self) describe. The
/// ingress's in-flight permit (its `admit` middleware) is not at stake while
/// headers trickle in: hyper calls the router only once a request's whole
/// header block has been parsed, so a slowloris connection holds a
/// connection slot but never a permit. A slow *body* does hold a permit,
/// for at most [`ServeOptions::body_read_timeout`].
///
/// At the connection limit the loop stops calling `accept` until a
/// connection closes. New clients then wait in the kernel's listen backlog
/// (and, once that is full, their SYNs are dropped and TCP retries with
/// backoff) instead of being accepted and reset: a reset invites an
/// immediate retry, so refusing would turn overload into a busy loop of
/// connects, while waiting costs the server nothing and serves them as soon
/// as a slot frees. Slots do free: every connection is bounded by the
/// timeouts above.
///
/// Shutdown stops accepting, asks every connection to finish (HTTP/1.1
/// closes once the in-flight response is written, idle keep-alive
/// connections at once; HTTP/2 sends GOAWAY), and waits for them at most
/// [`ServeOptions::shutdown_timeout`] before dropping the rest.
pub async fn serve(listener: TcpListener, router: Router, options: ServeOptions, shutdown: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
    // HTTP/2 has no header timer in hyper; pings at least drop peers that vanished.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.header_read_timeout)
        .keep_alive_timeout(options.header_read_timeout);
    let (stop_tx, stop_rx) = watch::channel(false);
    // The set of connection tasks is the connection count, the way to reap
    // panics, and the handle to drop leftovers at shutdown, all in one.
    let mut connections = JoinSet::new();
    let max_connections = options.max_connections.max(1);
    let mut shutdown = pin!(shutdown);
    loop {
        let at_limit = connections.len() >= max_connections;
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next() => report(done),
            accepted = listener.accept(), if !at_limit => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, builder.clone(), router.clone(), options.clone(), stop_rx.clone()));
                }
                Err(e) => accept_failed(e).await,
            },
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    let drain = async {
        while let Some(done) = connections.join_next().await {
            report(done);
        }
    };
    if tokio::time::timeout(options.shutdown_timeout, drain).await.is_err() {
        tracing::warn!(connections = connections.len(), "shutdown timeout: dropping connections still open");
        connections.shutdown().await;
    }
}

/// Logs a connection task that panicked (a bug in a handler; hyper catches
/// nothing).
fn report(done: Result<(), JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("an HTTP connection task panicked: {e}");
    }
}

/// Handles an `accept` error the way `axum::serve` does: errors about one
/// connection (reset before we took it) are skipped at once; anything else
/// (typically out of file descriptors) is logged and waited out for a
/// second, since retrying at once would spin while nothing frees.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!("cannot accept an HTTP connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it closes, it sends no request head in time,
/// or shutdown is asked for and its in-flight work is done.
async fn connection(
    stream: TcpStream,
    builder: Builder<TokioExecutor>,
    router: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    // hyper's HTTP/1 header timer starts only once the protocol is known, and
    // telling HTTP/1 from HTTP/2 waits for the first bytes with no timer at
    // all (nor does HTTP/2 time its handshake): a client that connects and
    // stays silent would be held forever. So the first request must reach
    // the router within the header timeout, whatever the protocol.
    let started = Arc::new(AtomicBool::new(false));
    let service = service_fn({
        let started = started.clone();
        move |request| {
            started.store(true, Ordering::Relaxed);
            handle(router.clone(), request, options.body_read_timeout)
        }
    });
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    let mut first_request = pin!(tokio::time::sleep(options.header_read_timeout));
    let (mut awaiting_first, mut stopping) = (true, false);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("HTTP connection ended: {e}");
                }
                return;
            }
            () = &mut first_request, if awaiting_first => {
                if !started.load(Ordering::Relaxed) {
                    tracing::debug!("HTTP connection sent no request head in time: closed");
                    return;
                }
                awaiting_first = false;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// Runs one request through the router with its body on a clock. A body
/// that ran out of time fails the handler's body extraction (axum's
/// rejection would say 400); whatever the handler answered then is replaced
/// by a 408, which is what actually happened.
async fn handle(
    mut router: Router,
    request: Request<Incoming>,
    body_read_timeout: Duration,
) -> Result<Response, Infallible> {
    let version = request.version();
    if request.body().is_end_stream() {
        // No body to wait for (e.g. a GET): no timer, no allocation.
        return router.call(request.map(Body::new)).await;
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + body_read_timeout)),
            timeout: body_read_timeout,
            timed_out: timed_out.clone(),
        })
    });
    let response = router.call(request).await?;
    if !timed_out.load(Ordering::Relaxed) {
        return Ok(response);
    }
    let message = BodyTimeout(body_read_timeout).to_string();
    let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
    // The rest of the body may still be on its way: on HTTP/1 the connection
    // cannot carry another request after it, so say it closes. (HTTP/2 ends
    // just the stream and forbids the header.)
    if version < Version::HTTP_2 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// A request body that fails once its deadline passes before its end.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    /// Set when the deadline failed the body, for [`handle`] to answer 408.
    timed_out: Arc<AtomicBool>,
}

/// The error a [`DeadlineBody`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {}", humantime::format_duration(*.0))]
struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(this.deadline.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
