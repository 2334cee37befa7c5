//! Helpers of the invoker end-to-end tests (`invoker*.rs`): sends, attach,
//! the admin view of an invocation, the services of `invoker.mjs`, and an
//! endpoint that never answers.
#![allow(dead_code)]

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{Api, Cluster, LEADER_TIMEOUT, Program, Reply, Sdk, SdkService, free_ports, poll_until};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::invocation_support::{describe, is_invocation_id, is_unavailable, register};

/// Starts `sdk`'s invoker services (revision 1, h2c) and registers them.
pub(crate) async fn invoker_services(c: &Cluster, sdk: Sdk) -> Result<SdkService> {
    let port = free_ports(1)[0];
    let services =
        SdkService::start_program(sdk, c.dir(), port, Program::Invoker { revision: 1, http1: false }).await?;
    register(&c.nodes[0].api, &services.uri()).await?;
    Ok(services)
}

/// `POST {path}/send` with `body`: 202 with a well-formed `invocationId`, returned.
pub(crate) async fn send(api: &Api, path: &str, body: &str) -> Result<String> {
    let reply = api.ingress_post(&format!("{path}/send"), body).await?;
    reply.expect_status(202).with_context(|| format!("{path}/send"))?;
    let json = reply.json()?;
    let id = json.get("invocationId").and_then(Value::as_str).with_context(|| format!("{json}"))?.to_string();
    ensure!(is_invocation_id(&id), "malformed invocation id {id:?}");
    Ok(id)
}

/// `GET /restate/invocation/{id}/attach`, retried while keel is unavailable.
pub(crate) async fn attach(api: &Api, id: &str) -> Result<Reply> {
    poll_until(LEADER_TIMEOUT, &format!("attach to {id}"), async || {
        let r = api.ingress_request("GET", &format!("/restate/invocation/{id}/attach"), Vec::new(), &[]).await;
        if is_unavailable(&r) {
            bail!("{}", describe(&r));
        }
        Ok(Some(r?))
    })
    .await
}

/// The admin view `GET /invocations/{id}` (200, JSON).
pub(crate) async fn invocation_view(api: &Api, id: &str) -> Result<Value> {
    let reply = api.get(&format!("/invocations/{id}")).await?;
    reply.expect_status(200)?;
    reply.json()
}

/// Polls the admin view until the invocation's status is `status`; returns the view.
pub(crate) async fn wait_status(api: &Api, id: &str, status: &str) -> Result<Value> {
    poll_until(LEADER_TIMEOUT, &format!("invocation {id} to be {status}"), async || {
        let view = invocation_view(api, id).await?;
        if view["status"] == status { Ok(Some(view)) } else { bail!("view {view}") }
    })
    .await
}

/// A call answering 200 with a JSON body, returned parsed.
pub(crate) async fn call_json(api: &Api, path: &str, body: &str) -> Result<Value> {
    let reply = api.ingress_post(path, body).await?;
    reply.expect_status(200).with_context(|| format!("POST {path} {body}"))?;
    reply.json()
}

/// `{service}/attempts` of invocation `id`: how many attempts its SDK process ran.
pub(crate) async fn attempts(api: &Api, service: &str, id: &str) -> Result<u64> {
    let value = call_json(api, &format!("/{service}/attempts"), &json!(id).to_string()).await?;
    value.as_u64().with_context(|| format!("attempts of {id}: {value}"))
}

/// Polls `{waiter}/awakeable` (`Waiter` or `PyWaiter`) until the handler
/// waiting under `key` published its awakeable id; returns it.
pub(crate) async fn awakeable_of(api: &Api, waiter: &str, key: &str) -> Result<String> {
    poll_until(LEADER_TIMEOUT, &format!("the awakeable of {key}"), async || {
        let value = call_json(api, &format!("/{waiter}/awakeable"), &json!(key).to_string()).await?;
        match value.as_str() {
            Some("") | None => bail!("not published yet: {value}"),
            Some(id) => Ok(Some(id.to_string())),
        }
    })
    .await
}

/// Resolves awakeable `id` with the JSON string `value` through the ingress (202).
pub(crate) async fn resolve(api: &Api, id: &str, value: &str) -> Result<()> {
    let path = format!("/restate/awakeables/{id}/resolve");
    let reply = api.ingress_post(&path, &json!(value).to_string()).await?;
    reply.expect_status(202).with_context(|| format!("POST {path}"))?;
    Ok(())
}

/// An admin `PATCH` without a body; answers its reply.
pub(crate) async fn admin_patch(api: &Api, path: &str) -> Result<Reply> {
    api.admin_request("PATCH", path).await
}

/// Polls `{waiter}/invocation` (`Waiter` or `PyWaiter`) until the handler
/// called with `key` published its invocation id; returns it.
pub(crate) async fn invocation_of(api: &Api, waiter: &str, key: &str) -> Result<String> {
    poll_until(LEADER_TIMEOUT, &format!("the invocation id of {key}"), async || {
        let value = call_json(api, &format!("/{waiter}/invocation"), &json!(key).to_string()).await?;
        match value.as_str() {
            Some("") | None => bail!("not published yet: {value}"),
            Some(id) => Ok(Some(id.to_string())),
        }
    })
    .await
}

/// Polls `{service}/attempts` until invocation `id` had exactly `n` attempts
/// (more is an error).
pub(crate) async fn wait_attempts(api: &Api, service: &str, id: &str, n: u64) -> Result<()> {
    poll_until(LEADER_TIMEOUT, &format!("{n} attempts of {id}"), async || {
        let seen = attempts(api, service, id).await?;
        ensure!(seen <= n, "{id}: {seen} attempts, more than {n}");
        if seen == n { Ok(Some(())) } else { bail!("{seen} attempts") }
    })
    .await
}

/// An SDK endpoint that stopped answering: over HTTP/1.1 it answers
/// discovery with a manifest of one service, `Hung` (handler `wait`,
/// request/response), then takes every invocation request and never
/// answers it, holding the connection until keel gives the attempt up.
pub(crate) struct HungEndpoint {
    port: u16,
    held: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

/// The discovery manifest of [`HungEndpoint`].
const HUNG_MANIFEST: &str = r#"{"protocolMode":"REQUEST_RESPONSE","minProtocolVersion":5,"maxProtocolVersion":5,
  "services":[{"name":"Hung","ty":"SERVICE","handlers":[{"name":"wait"}]}]}"#;

impl HungEndpoint {
    /// Listens on a free loopback port.
    pub(crate) async fn start() -> Result<HungEndpoint> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let held = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn({
            let held = held.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(Self::serve(socket, held.clone()));
                }
            }
        });
        Ok(HungEndpoint { port, held, server })
    }

    /// Registers it (with `use_http_11`) through `api`.
    pub(crate) async fn register(&self, api: &Api) -> Result<()> {
        let uri = format!("http://127.0.0.1:{}", self.port);
        let reply = api.register_deployment(&uri, json!({"use_http_11": true})).await?;
        reply.expect_status(201).with_context(|| format!("registering the hung endpoint {uri}"))?;
        Ok(())
    }

    /// Invocation requests it holds now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// One connection: one request, answered only if it is the discovery.
    async fn serve(mut socket: tokio::net::TcpStream, held: Arc<AtomicUsize>) {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(n) if n > 0 && head.len() < 65_536 => head.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        if head.starts_with(b"GET /discover ") {
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.restate.endpointmanifest.v3+json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{HUNG_MANIFEST}",
                HUNG_MANIFEST.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            return;
        }
        held.fetch_add(1, Ordering::SeqCst);
        // Reads the request and whatever follows, answering nothing, until
        // keel closes the connection.
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
        held.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for HungEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}
