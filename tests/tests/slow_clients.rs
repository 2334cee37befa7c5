//! End-to-end test of slow HTTP clients against the real binary
//! (`--http-header-timeout`, `--http-body-timeout`): 200 connections that
//! send half a request head and then trickle or stall do not delay normal
//! requests, and the server closes every one of them once the header
//! timeout passes; a request whose body stalls gets a 408 once the body
//! timeout passes.
//!
//! Build the binary first (`cargo build -p keel`); see the crate docs of
//! `keel_e2e` for the knobs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{Api, Cluster, http_client, make_state, run_test};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long after connecting a slow connection must have been closed.
const CLOSE_DEADLINE: Duration = Duration::from_secs(6);
/// How long a normal request may take while the slow ones are open.
const FAST: Duration = Duration::from_secs(1);
const SLOW_CONNECTIONS: usize = 200;
/// The pace of a trickling connection.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(500);

/// How one slow connection ended: when the server closed it, after its
/// connect.
struct Closed {
    after: Duration,
    trickled: usize,
}

/// One slow client: connects, sends half a request head, then (if
/// `trickle`) one more header byte every [`TRICKLE_INTERVAL`], or nothing,
/// until the server closes the connection or [`CLOSE_DEADLINE`] passes.
/// Reports on `opened` once its partial head is sent.
async fn slow_client(addr: SocketAddr, trickle: bool, opened: tokio::sync::mpsc::Sender<()>) -> Result<Closed> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.write_all(b"GET /restate/health HTTP/1.1\r\nhost: keel\r\nx-slow: ").await.context("partial head")?;
    let _ = opened.send(()).await;
    let deadline = started + CLOSE_DEADLINE;
    let mut trickled = 0usize;
    let mut next_byte = started + TRICKLE_INTERVAL;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Whatever the server says before closing (if anything)
                // is read past; EOF or a reset is the close.
                Ok(n) if n > 0 => {}
                _ => return Ok(Closed { after: started.elapsed(), trickled }),
            },
            () = tokio::time::sleep_until(next_byte), if trickle => {
                // A write error means the server is gone already; the read
                // arm reports it.
                if stream.write_all(b"a").await.is_ok() {
                    trickled += 1;
                }
                next_byte += TRICKLE_INTERVAL;
            }
            () = tokio::time::sleep_until(deadline) => {
                bail!("still open {CLOSE_DEADLINE:?} after connecting ({trickled} bytes trickled)")
            }
        }
    }
}

/// `f` answers within [`FAST`]; returns its result and how long it took.
async fn fast<T>(what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let out = timeout(FAST * 5, f).await.with_context(|| format!("{what}: no answer in {:?}", FAST * 5))??;
    let took = started.elapsed();
    eprintln!("{what}: {took:.1?}");
    ensure!(took < FAST, "{what} took {took:.1?} while the slow clients were open (at most {FAST:?})");
    Ok(out)
}

/// A write and a read of the admin API, and the ingress health check,
/// each on a fresh client (a new connection: nothing pooled).
async fn normal_requests(c: &Cluster, round: &str) -> Result<()> {
    let node = &c.nodes[0];
    let api = Api::new(node.id, node.admin, node.ingress, http_client());
    fast(&format!("ingress GET /restate/health ({round})"), async {
        api.get_url(api.ingress_url("/restate/health")).await?.expect_status(200).map(|_| ())
    })
    .await?;
    let state = make_state(round, 1);
    fast(&format!("admin state write ({round})"), api.set_state_ok("slow", round, &state, None)).await?;
    let view = fast(&format!("admin state read ({round})"), api.get_state("slow", round)).await?;
    ensure!(view.state == state, "the state written {round} did not read back");
    Ok(())
}

/// Reads one HTTP/1 response (head and a `content-length` body) or up to
/// the close.
async fn read_response(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(text);
            }
        }
    }
}

/// A state write on the admin port announcing 1000 bytes of body and
/// sending 10 gets a 408 with a JSON `message` (or its connection closed)
/// once the body timeout passes, and not long after.
async fn stalled_body(admin: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect(admin).await.context("connect")?;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /services/slow/state HTTP/1.1\r\nhost: keel\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"object_k",
        )
        .await?;
    let margin = Duration::from_secs(3);
    let response = timeout(BODY_TIMEOUT + margin, read_response(&mut stream))
        .await
        .with_context(|| format!("a stalled body: no answer or close within {:?}", BODY_TIMEOUT + margin))??;
    let took = started.elapsed();
    eprintln!("stalled body: {took:.1?}: {}", response.lines().next().unwrap_or("(closed without an answer)"));
    ensure!(took + Duration::from_millis(50) >= BODY_TIMEOUT, "a stalled body was answered after only {took:.1?}");
    if response.is_empty() {
        return Ok(()); // closed without an answer: allowed
    }
    ensure!(response.starts_with("HTTP/1.1 408"), "a stalled body got {response}");
    let body = &response[response.find("\r\n\r\n").context("no end of head")? + 4..];
    let json: serde_json::Value = serde_json::from_str(body).with_context(|| format!("the 408 body: {body}"))?;
    ensure!(json["message"].is_string(), "the 408 body has no string message: {json}");
    Ok(())
}

/// 200 slow connections (half trickling a byte every 500 ms, half
/// stalled) on the ingress port: normal requests on both ports answer in
/// under a second meanwhile; the server closes every slow connection
/// within the header timeout plus a margin; a stalled body gets its 408;
/// and the node serves as before afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_do_not_starve_others() {
    run_test("slow_clients_are_cut_off_and_do_not_starve_others", slow_clients()).await;
}

async fn slow_clients() -> Result<()> {
    let c =
        Cluster::start(1, &["--partitions", "2", "--http-header-timeout", "2s", "--http-body-timeout", "3s"]).await?;
    c.wait_for_leaders(&[0], keel_e2e::LEADER_TIMEOUT).await?;
    normal_requests(&c, "before").await?;

    let ingress = c.nodes[0].ingress;
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(SLOW_CONNECTIONS);
    let slow: Vec<_> =
        (0..SLOW_CONNECTIONS).map(|i| tokio::spawn(slow_client(ingress, i % 2 == 0, opened_tx.clone()))).collect();
    drop(opened_tx);
    let body = tokio::spawn(stalled_body(c.nodes[0].admin));
    // Every slow connection is open with its partial head sent.
    let mut opened = 0;
    let all_open = timeout(Duration::from_secs(5), async {
        while opened < SLOW_CONNECTIONS && opened_rx.recv().await.is_some() {
            opened += 1;
        }
    })
    .await;
    ensure!(
        all_open.is_ok() && opened == SLOW_CONNECTIONS,
        "only {opened} of {SLOW_CONNECTIONS} slow connections opened"
    );

    normal_requests(&c, "during").await?;

    let mut failures = Vec::new();
    let (mut earliest, mut latest, mut trickled) = (Duration::MAX, Duration::ZERO, 0);
    for (i, task) in slow.into_iter().enumerate() {
        match task.await.context("slow client task")? {
            Ok(closed) => {
                earliest = earliest.min(closed.after);
                latest = latest.max(closed.after);
                trickled += closed.trickled;
            }
            Err(e) => failures.push(format!("slow connection #{i}: {e:#}")),
        }
    }
    ensure!(failures.is_empty(), "{} slow connections were not closed in time: {failures:#?}", failures.len());
    eprintln!(
        "{SLOW_CONNECTIONS} slow connections closed {earliest:.1?}..{latest:.1?} after connecting ({trickled} bytes trickled)"
    );
    ensure!(
        earliest + Duration::from_millis(50) >= HEADER_TIMEOUT,
        "a slow connection was closed after only {earliest:.1?}, before the header timeout"
    );
    body.await.context("stalled body task")??;

    ensure!(c.nodes[0].is_up(), "the node exited");
    c.nodes[0].api.health().await.context("health afterwards")?;
    normal_requests(&c, "after").await?;
    c.finish();
    Ok(())
}
