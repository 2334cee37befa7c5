//! The ingress and admin routers against arbitrary requests.
//!
//! Input layout: byte 0 picks the router (bits 0..2: ingress or admin, open or with a
//! token) and the method (bits 2..5); byte 1 picks
//! what a finished call returns (success, or a failure whose code is bytes 2..4); the rest
//! is an HTTP-like text: the request target (path and query) up to the first `\n`, then
//! `name: value` header lines up to an empty line, then the body. Lines that are not
//! valid targets or headers are dropped the way a server would never deliver them.
//!
//! Checked (by `ingress/tests/support/mod.rs`, shared with the property test): no panic,
//! an answer within 5 s, and every 4xx/5xx answer has a JSON body with a string `message`.
#![no_main]

#[path = "../../ingress/tests/support/mod.rs"]
mod support;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use keel_partition::invocation::InvocationResult;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use support::{FakeCluster, Target};

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT"];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, res, c0, c1, rest @ ..] = data else { return };
    let target = match sel & 3 {
        0 => Target::Ingress,
        1 => Target::Admin,
        2 => Target::AdminWithToken,
        _ => Target::IngressWithToken,
    };
    let method = Method::from_bytes(METHODS[usize::from(sel >> 2) % METHODS.len()].as_bytes()).expect("method");

    let (line, mut rest) = split_line(rest);
    let Ok(uri) = Uri::try_from(line) else { return };
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return;
    }
    if support::reaches_network(target, &method, uri.path()) {
        return;
    }
    let mut builder = Request::builder().method(method).uri(uri);
    loop {
        let (header, tail) = split_line(rest);
        rest = tail;
        if header.is_empty() {
            break;
        }
        let Some(colon) = header.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&header[..colon]), HeaderValue::from_bytes(header[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let request = builder.body(Body::from(rest.to_vec())).expect("request from valid parts");

    let cluster = Arc::new(FakeCluster::default());
    *cluster.result.lock().expect("lock") = match res % 3 {
        0 => InvocationResult::Success(rest.to_vec()),
        1 => InvocationResult::Failure { code: u16::from_le_bytes([*c0, *c1]), message: "boom".into() },
        _ => InvocationResult::Success(Vec::new()),
    };
    if *res >= 250 {
        let fail: fn() -> keel_ingress::ClusterError = if res & 1 == 0 {
            || keel_ingress::ClusterError::Unavailable { message: "no leader".into(), retry_after_secs: 1 }
        } else {
            || keel_ingress::ClusterError::Internal("disk on fire".into())
        };
        *cluster.fail.lock().expect("lock") = Some(fail);
    }
    if let Err(v) = runtime().block_on(support::check(target, cluster, request)) {
        panic!("{}", v.0);
    }
});
