//! Real sockets on 127.0.0.1 against [`serve`] with short timeouts.

use super::*;
use axum::routing::{get, post};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const HEADER_TIMEOUT: Duration = Duration::from_millis(200);
const BODY_TIMEOUT: Duration = Duration::from_millis(300);
/// Slack for scheduling on a busy 2-core CI machine.
const MARGIN: Duration = Duration::from_millis(1500);
const GET: &[u8] = b"GET /hello HTTP/1.1\r\nhost: test\r\n\r\n";

fn options() -> ServeOptions {
    ServeOptions {
        header_read_timeout: HEADER_TIMEOUT,
        body_read_timeout: BODY_TIMEOUT,
        max_connections: 10_000,
        shutdown_timeout: Duration::from_secs(2),
    }
}

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(options: ServeOptions) -> Server {
    let router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|body: Bytes| async move { body }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, options, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

/// Reads one HTTP/1.1 response whose body has a `content-length`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed mid-response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse()))
                .expect("content-length")
                .expect("numeric content-length");
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Reads until the server closes the connection (EOF or reset).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = stream.read(&mut chunk).await
        && n > 0
    {
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

async fn get_hello(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(GET).await.expect("write");
    read_response(&mut stream).await
}

#[tokio::test]
async fn half_a_header_block_is_closed_within_the_header_timeout() {
    let server = start(options()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = std::time::Instant::now();
    stream.write_all(b"GET /hello HTTP/1.1\r\nhost: te").await.expect("write");
    timeout(HEADER_TIMEOUT + MARGIN, read_to_close(&mut stream)).await.expect("server closed the connection");
    assert!(started.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(20), "closed too early");
}

#[tokio::test]
async fn a_silent_connection_is_closed_within_the_header_timeout() {
    // Sends nothing at all: stuck before HTTP/1 and HTTP/2 are told apart.
    let server = start(options()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let closed = timeout(HEADER_TIMEOUT + MARGIN, read_to_close(&mut stream)).await;
    assert_eq!(closed.expect("server closed the connection"), b"");
}

#[tokio::test]
async fn trickling_connections_do_not_delay_a_normal_request() {
    let server = start(ServeOptions { header_read_timeout: Duration::from_secs(10), ..options() }).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(b"GET /hello HTTP/1.1\r\nho").await.expect("write");
        slow.push(stream);
    }
    let started = std::time::Instant::now();
    let response = timeout(Duration::from_secs(5), get_hello(server.addr)).await.expect("answered");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    drop(slow);
}

#[tokio::test]
async fn a_stalled_body_gets_408_within_the_body_timeout() {
    let server = start(options()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = std::time::Instant::now();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 1000\r\n\r\n0123456789")
        .await
        .expect("write");
    let response = timeout(BODY_TIMEOUT + MARGIN, read_response(&mut stream)).await.expect("answered");
    assert!(started.elapsed() >= BODY_TIMEOUT - Duration::from_millis(20), "answered too early");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
    let body = &response[response.find("\r\n\r\n").expect("head end") + 4..];
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert!(json["message"].as_str().expect("message").contains("not received within"), "{json}");
    timeout(MARGIN, read_to_close(&mut stream)).await.expect("connection closed after the 408");
}

#[tokio::test]
async fn a_body_in_time_is_served() {
    let server = start(options()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n01234").await.expect("write");
    tokio::time::sleep(BODY_TIMEOUT / 3).await;
    stream.write_all(b"56789").await.expect("write");
    let response = timeout(MARGIN, read_response(&mut stream)).await.expect("answered");
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("0123456789"), "{response}");
}

#[tokio::test]
async fn beyond_max_connections_a_client_waits_for_a_free_slot() {
    let server =
        start(ServeOptions { max_connections: 1, header_read_timeout: Duration::from_secs(10), ..options() }).await;
    let mut first = TcpStream::connect(server.addr).await.expect("connect");
    first.write_all(GET).await.expect("write");
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    // `first` stays open (keep-alive): the second connection sits in the
    // backlog, its request unread.
    let mut second = TcpStream::connect(server.addr).await.expect("connect (kernel backlog)");
    second.write_all(GET).await.expect("write");
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(300), second.read(&mut byte)).await.is_err(),
        "served beyond the connection limit"
    );
    drop(first);
    let response = timeout(MARGIN, read_response(&mut second)).await.expect("served once a slot freed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn graceful_shutdown_does_not_wait_for_idle_keep_alive_connections() {
    let server = start(ServeOptions { header_read_timeout: Duration::from_secs(10), ..options() }).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(GET).await.expect("write");
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let _ = server.stop.send(());
    timeout(Duration::from_secs(1), server.task).await.expect("shut down in time").expect("no panic");
    timeout(MARGIN, read_to_close(&mut idle)).await.expect("idle connection closed");
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let server = start(ServeOptions { body_read_timeout: Duration::from_secs(10), ..options() }).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 4\r\n\r\nab").await.expect("write");
    // Let the request reach its handler before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.task.is_finished(), "shutdown did not wait for the in-flight request");
    stream.write_all(b"cd").await.expect("write");
    let response = timeout(MARGIN, read_response(&mut stream)).await.expect("answered");
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("abcd"), "{response}");
    timeout(MARGIN, server.task).await.expect("shut down after the request").expect("no panic");
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let server = start(options()).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let request = Request::builder().uri(format!("http://{}/hello", server.addr)).body(Body::empty()).expect("request");
    let response = timeout(MARGIN, sender.send_request(request)).await.expect("answered").expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
}

/// Sends one chunk, then nothing, never ending.
struct StalledBody(bool);

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
    }
}

#[tokio::test]
async fn a_stalled_h2c_body_gets_408_and_the_connection_stays_usable() {
    let server = start(options()).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let uri = |path: &str| format!("http://{}{path}", server.addr);
    let stalled = Request::post(uri("/echo")).body(StalledBody(false)).expect("request");
    let started = std::time::Instant::now();
    let response = timeout(BODY_TIMEOUT + MARGIN, sender.send_request(stalled)).await.expect("answered");
    assert!(started.elapsed() >= BODY_TIMEOUT - Duration::from_millis(20), "answered too early");
    let response = response.expect("response");
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(!response.headers().contains_key(header::CONNECTION));
    // Only the stream failed: the connection serves the next request, whose
    // body never ends either but is never read, so no timer fails it.
    sender.ready().await.expect("connection still open");
    let next = Request::get(uri("/hello")).body(StalledBody(true)).expect("request");
    let response = timeout(MARGIN, sender.send_request(next)).await.expect("answered").expect("response");
    assert_eq!(response.status(), StatusCode::OK);
}
