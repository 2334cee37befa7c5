//! End-to-end tests of the node port (:5122) against a hostile peer: forged
//! and malformed payloads on every RPC, garbage on the socket, and requests
//! without the cluster secret. The node must answer each with an error
//! status, stay up, and keep serving.
//!
//! Build the binary first (`cargo build -p keel`); see the crate docs of
//! `keel_e2e` for the knobs.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_e2e::{
    Cluster, E2E_CLUSTER_SECRET, EXIT_TIMEOUT, LEADER_TIMEOUT, free_ports, make_state, run_keel_to_exit_with_env,
    run_test,
};
use keel_raft::transport::proto::node_client::NodeClient;
use keel_raft::transport::proto::{GroupRequest, RaftRequest, StatusRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Payloads that lie about lengths: after the format byte (1), a bincode
/// varint marker for a u64 (0xFD) or u32 (0xFC) length claiming exabytes or
/// gigabytes, at every offset a field of the request could start at. The
/// first is the 19-byte `Propose` that used to abort the node.
fn forged_payloads() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for offset in 0..24 {
        for marker in [0xFDu8, 0xFC] {
            let mut p = vec![1u8];
            p.extend(std::iter::repeat_n(0u8, offset));
            p.push(marker);
            match marker {
                0xFD => p.extend_from_slice(&(1u64 << 62).to_le_bytes()),
                _ => p.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            p.extend_from_slice(&[0; 2]);
            out.push(p);
        }
    }
    out
}

/// Random payloads (a fixed xorshift seed, so a failure reproduces), plus
/// the degenerate ones: empty, a version byte alone, an unknown version.
fn random_payloads() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![vec![], vec![1], vec![2, 0, 0], vec![0xFF; 64]];
    for i in 0..120 {
        let len = (next() % 300) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && !p.is_empty() {
            p[0] = 1; // past the version check, into bincode
        }
        out.push(p);
    }
    out
}

async fn client(addr: std::net::SocketAddr) -> Result<NodeClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .context("connecting to the node port")?;
    Ok(NodeClient::new(channel))
}

fn with_secret<T>(message: T, secret: Option<&[u8]>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(10));
    if let Some(s) = secret {
        r.metadata_mut().insert_bin("x-keel-cluster-secret-bin", MetadataValue::from_bytes(s));
    }
    r
}

/// Sends `payload` to every RPC of the node service (every Raft kind, an
/// unknown kind, every group RPC) and returns the statuses; an `Ok` reply
/// counts as code `Ok`.
async fn every_rpc(c: &mut NodeClient<Channel>, secret: Option<&[u8]>, group: u32, payload: &[u8]) -> Vec<tonic::Code> {
    let mut codes = Vec::new();
    for kind in [0, 1, 2, 77] {
        let r = c.raft(with_secret(RaftRequest { group_id: group, kind, payload: payload.to_vec() }, secret)).await;
        codes.push(r.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
    }
    let req = || with_secret(GroupRequest { group_id: group, payload: payload.to_vec() }, secret);
    codes.push(c.propose(req()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
    codes.push(c.read(req()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
    codes.push(c.call(req()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
    codes.push(c.attach(req()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok));
    codes
}

/// The node still answers: health, the partition table, and a write that
/// commits and reads back.
async fn still_serves(c: &Cluster, round: &str) -> Result<()> {
    let api = &c.nodes[0].api;
    api.health().await.with_context(|| format!("health after {round}"))?;
    ensure!(c.nodes[0].is_up(), "node exited after {round}");
    let state = make_state(round, 1);
    api.set_state_ok("nodeport", round, &state, None).await.with_context(|| format!("a write after {round}"))?;
    ensure!(api.get_state("nodeport", round).await?.state == state, "the write after {round} did not read back");
    Ok(())
}

/// Every RPC of the node port gets forged lengths, random bytes, unknown
/// groups and raw socket garbage, with the right secret (so the payloads
/// reach the decoders); each answer is an error status and the node keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_never_take_a_node_down() {
    run_test("hostile_payloads_never_take_a_node_down", hostile_payloads()).await;
}

async fn hostile_payloads() -> Result<()> {
    let c = Cluster::start(1, &["--partitions", "2"]).await?;
    c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    still_serves(&c, "start").await?;
    let mut rpc = client(c.nodes[0].node_addr).await?;
    let secret = Some(E2E_CLUSTER_SECRET.as_bytes());

    for (i, payload) in forged_payloads().iter().enumerate() {
        for group in [0, 1] {
            // Where the forged length lands on an integer rather than a
            // length (a vote's node id, say) the payload may decode into a
            // harmless request that gets an answer; what must never happen
            // is a broken connection or an internal error.
            let codes = every_rpc(&mut rpc, secret, group, payload).await;
            ensure!(
                codes.iter().all(|c| matches!(c, tonic::Code::InvalidArgument | tonic::Code::Ok)),
                "forged payload #{i} {payload:02x?} to group {group}: {codes:?}"
            );
            // A length right after the version byte is the first field of
            // every group request: always refused.
            if i < 2 {
                ensure!(
                    codes[4..].iter().all(|c| *c == tonic::Code::InvalidArgument),
                    "forged payload #{i} {payload:02x?} to group {group}: {codes:?}"
                );
            }
        }
    }
    still_serves(&c, "forged").await?;

    for (i, payload) in random_payloads().iter().enumerate() {
        // Random bytes may, rarely, decode; the answers only have to come.
        let codes = every_rpc(&mut rpc, secret, i as u32 % 2, payload).await;
        ensure!(!codes.contains(&tonic::Code::Unavailable), "random payload #{i}: the connection broke: {codes:?}");
    }
    for group in [7, 1000, u32::MAX] {
        // Raft RPCs to a group not hosted here are refused; group requests
        // carry their refusal (no such group) inside an `Ok` reply.
        let codes = every_rpc(&mut rpc, secret, group, &[1, 0, 0, 0]).await;
        ensure!(codes[..4].iter().all(|c| *c == tonic::Code::NotFound), "unknown group {group}: {codes:?}");
        ensure!(
            codes[4..].iter().all(|c| matches!(c, tonic::Code::InvalidArgument | tonic::Code::Ok)),
            "unknown group {group}: {codes:?}"
        );
    }
    still_serves(&c, "random").await?;

    hostile_frames(c.nodes[0].node_addr).await?;
    still_serves(&c, "frames").await?;
    raw_garbage(c.nodes[0].node_addr).await?;
    still_serves(&c, "garbage").await?;
    c.finish();
    Ok(())
}

/// gRPC frames that lie about their own length (4 GiB, 256 MiB + 1) or
/// are cut short, sent over a plain HTTP/2 client.
async fn hostile_frames(addr: std::net::SocketAddr) -> Result<()> {
    let http = Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Full<bytes::Bytes>>();
    let secret = base64_encode(E2E_CLUSTER_SECRET.as_bytes());
    let frames: [&[u8]; 4] = [
        &[0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],
        &[0, 0x10, 0x00, 0x00, 0x01, 1],
        &[0, 0, 0],
        &[1, 0, 0, 0, 4, 1, 2, 3, 4],
    ];
    for (i, frame) in frames.iter().enumerate() {
        for method in ["Propose", "Raft", "Status"] {
            let request = http::Request::post(format!("http://{addr}/keel.node.Node/{method}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("x-keel-cluster-secret-bin", secret.as_str())
                .body(Full::new(bytes::Bytes::copy_from_slice(frame)))?;
            let response = tokio::time::timeout(Duration::from_secs(10), http.request(request))
                .await
                .with_context(|| format!("frame #{i} to {method}: no answer in 10 s"))?;
            // A reset stream is an acceptable refusal; an answer must be an error.
            if let Ok(response) = response {
                let status = grpc_status(response).await?;
                ensure!(status != Some(0), "frame #{i} to {method} was answered OK");
            }
        }
    }
    Ok(())
}

/// The `grpc-status` of a response, from its headers or trailers.
async fn grpc_status(response: http::Response<hyper::body::Incoming>) -> Result<Option<u32>> {
    let parse = |v: &http::HeaderValue| v.to_str().ok().and_then(|s| s.parse().ok());
    if let Some(v) = response.headers().get("grpc-status") {
        return Ok(parse(v));
    }
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await?;
    Ok(collected.ok().and_then(|c| c.trailers().and_then(|t| t.get("grpc-status").and_then(parse))))
}

/// Bytes that are not HTTP/2 at all, a valid preface followed by garbage,
/// and a connection that sends half a preface and goes quiet.
async fn raw_garbage(addr: std::net::SocketAddr) -> Result<()> {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        [&preface[..], &[0xFF; 64][..]].concat(),
        [&preface[..], &[0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..]].concat(),
    ];
    for (i, bytes) in inputs.iter().enumerate() {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(bytes).await.ok();
        // The server closes (or answers and closes) such a connection; one
        // stuck in the middle of a frame when its pings go unanswered (5 s
        // apart, 5 s to answer).
        let mut sink = vec![0u8; 65536];
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match s.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        ensure!(closed.is_ok(), "garbage #{i}: the node neither answered nor closed in 30 s");
    }
    Ok(())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Without the cluster secret, or with a wrong one, every RPC is refused
/// as unauthenticated (before the payload is even read); with it, they work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_rpcs_require_the_cluster_secret() {
    run_test("node_rpcs_require_the_cluster_secret", secret_required()).await;
}

async fn secret_required() -> Result<()> {
    let c = Cluster::start(1, &["--partitions", "1"]).await?;
    c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    let mut rpc = client(c.nodes[0].node_addr).await?;
    let wrong = Some(&b"not-the-cluster-secret"[..]);
    // Even a payload that would abort an unprotected node is refused unread.
    let forged = &forged_payloads()[0];
    for secret in [None, wrong] {
        let codes = every_rpc(&mut rpc, secret, 0, forged).await;
        ensure!(codes.iter().all(|c| *c == tonic::Code::Unauthenticated), "secret {secret:?}: {codes:?}");
        let status = rpc.status(with_secret(StatusRequest {}, secret)).await;
        ensure!(
            status.as_ref().is_err_and(|s| s.code() == tonic::Code::Unauthenticated),
            "Status with secret {secret:?}: {status:?}"
        );
    }
    let status = rpc.status(with_secret(StatusRequest {}, Some(E2E_CLUSTER_SECRET.as_bytes()))).await;
    ensure!(status.is_ok(), "Status with the right secret: {status:?}");
    still_serves(&c, "unauthenticated").await?;
    c.finish();
    Ok(())
}

/// A node of a multi-node cluster given neither a secret nor TLS refuses to
/// start (exit 2, naming the flag and `--insecure-cluster`, the explicit
/// way around it); so does one with a short secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_a_secret_refuses_to_start() {
    run_test("a_cluster_without_a_secret_refuses_to_start", refuses_without_secret()).await;
}

async fn refuses_without_secret() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ports = free_ports(4);
    let peers = format!("1=127.0.0.1:{},2=127.0.0.1:{}", ports[0], ports[1]);
    let args: Vec<String> = [
        "--node-id",
        "1",
        "--data-dir",
        &dir.path().join("d").display().to_string(),
        "--peers",
        &peers,
        "--node-addr",
        &format!("127.0.0.1:{}", ports[0]),
        "--admin-addr",
        &format!("127.0.0.1:{}", ports[2]),
        "--ingress-addr",
        &format!("127.0.0.1:{}", ports[3]),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_keel_to_exit_with_env(&args, &[("KEEL_CLUSTER_SECRET", None)], EXIT_TIMEOUT).await?;
    ensure!(out.status.code() == Some(2), "exit status {:?}; stderr:\n{}", out.status, out.stderr);
    ensure!(
        out.stderr.contains("--cluster-secret-file") && out.stderr.contains("--insecure-cluster"),
        "the refusal does not say what to do:\n{}",
        out.stderr
    );
    // A short secret is refused too.
    let out = run_keel_to_exit_with_env(&args, &[("KEEL_CLUSTER_SECRET", Some("short"))], EXIT_TIMEOUT).await?;
    ensure!(out.status.code() == Some(2), "a short secret: {:?}; stderr:\n{}", out.status, out.stderr);
    ensure!(out.stderr.contains("KEEL_CLUSTER_SECRET"), "the refusal does not name the variable:\n{}", out.stderr);
    Ok(())
}
