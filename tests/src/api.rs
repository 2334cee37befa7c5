//! [`Api`]: an HTTP client bound to one node's admin and ingress ports.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::limits::REQUEST_TIMEOUT;
use crate::model::State;
use crate::reply::{Reply, version_of};
use crate::views::{ClusterView, StateView};

/// HTTP client bound to one node.
#[derive(Debug, Clone)]
pub struct Api {
    pub node_id: u64,
    pub admin: SocketAddr,
    pub ingress: SocketAddr,
    client: reqwest::Client,
}

/// The shared HTTP client: [`REQUEST_TIMEOUT`] per request, no proxies.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("cannot build the HTTP client")
}

impl Api {
    pub fn new(node_id: u64, admin: SocketAddr, ingress: SocketAddr, client: reqwest::Client) -> Self {
        Api { node_id, admin, ingress, client }
    }

    /// URL of `path` on the admin port.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn send(&self, method: &'static str, url: String, req: reqwest::RequestBuilder) -> Result<Reply> {
        let started = Instant::now();
        let resp = req.send().await.with_context(|| {
            format!(
                "{method} {url} (node {}) failed after {:.1?} without an HTTP answer",
                self.node_id,
                started.elapsed()
            )
        })?;
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let location = header(reqwest::header::LOCATION);
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.text().await.with_context(|| format!("{method} {url}: reading the body failed"))?;
        Ok(Reply {
            method,
            url,
            status,
            content_type,
            retry_after,
            location,
            headers,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// URL of `path` on the ingress port.
    pub fn ingress_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ingress)
    }

    /// A request with any `method` (e.g. `"POST"`, `"PUT"`) to `path` on the
    /// ingress port, with `body` (none if empty) and extra `headers`.
    /// `Err` only for transport failures (no HTTP answer).
    pub async fn ingress_request(
        &self,
        method: &'static str,
        path: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let url = self.ingress_url(path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).with_context(|| format!("bad method {method}"))?;
        let body = body.into();
        let mut req = self.client.request(m, &url);
        if !body.is_empty() {
            req = req.body(body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(method, url, req).await
    }

    /// `POST` a JSON body (given as text, e.g. `"\"Ann\""`; none if empty)
    /// to `path` on the ingress port: calls (or with a trailing `/send`,
    /// sends) a handler. `Err` only for transport failures.
    pub async fn ingress_post(&self, path: &str, json_body: &str) -> Result<Reply> {
        let headers: &[(&str, &str)] = if json_body.is_empty() { &[] } else { &[("content-type", "application/json")] };
        self.ingress_request("POST", path, json_body, headers).await
    }

    /// `GET` a URL. `Err` only for transport failures (no HTTP answer).
    pub async fn get_url(&self, url: String) -> Result<Reply> {
        let req = self.client.get(&url);
        self.send("GET", url, req).await
    }

    /// `GET` a path on the admin port.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.get_url(self.admin_url(path)).await
    }

    /// `POST` raw bytes to a path on the admin port, with the given
    /// `Content-Type` (none if `None`). `Err` only for transport failures.
    pub async fn post(&self, path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Result<Reply> {
        let url = self.admin_url(path);
        let mut req = self.client.post(&url).body(body.into());
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.send("POST", url, req).await
    }

    /// `POST` a JSON value to a path on the admin port
    /// (`Content-Type: application/json`).
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply> {
        self.post(path, Some("application/json"), serde_json::to_vec(body)?).await
    }

    /// `PATCH` a JSON value to a path on the admin port
    /// (`Content-Type: application/json`).
    pub async fn patch_json(&self, path: &str, body: &Value) -> Result<Reply> {
        let url = self.admin_url(path);
        let req = self
            .client
            .patch(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body)?);
        self.send("PATCH", url, req).await
    }

    /// `DELETE` a path on the admin port.
    pub async fn delete(&self, path: &str) -> Result<Reply> {
        let url = self.admin_url(path);
        let req = self.client.delete(&url);
        self.send("DELETE", url, req).await
    }

    /// A request with any `method` and no body to a path on the admin port
    /// (e.g. `PATCH /invocations/{id}/cancel`).
    pub async fn admin_request(&self, method: &'static str, path: &str) -> Result<Reply> {
        let url = self.admin_url(path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).with_context(|| format!("bad method {method}"))?;
        let req = self.client.request(m, &url);
        self.send(method, url, req).await
    }

    /// `POST /deployments` with `{"uri": uri}` plus the fields of `extra`
    /// (a JSON object, e.g. `{"force": false}`), whatever the answer.
    pub async fn register_deployment(&self, uri: &str, extra: Value) -> Result<Reply> {
        let mut body = json!({ "uri": uri });
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                body[k] = v;
            }
        }
        self.post_json("/deployments", &body).await
    }

    /// Admin `GET /health` and ingress `GET /restate/health` both answer 200.
    pub async fn health(&self) -> Result<()> {
        self.get("/health").await?.expect_status(200)?;
        self.get_url(format!("http://{}/restate/health", self.ingress)).await?.expect_status(200)?;
        Ok(())
    }

    /// `GET /cluster`; checks that it is 200 and names this node.
    pub async fn cluster_view(&self) -> Result<ClusterView> {
        let reply = self.get("/cluster").await?;
        reply.expect_status(200)?;
        let view: ClusterView = reply.parse()?;
        ensure!(view.node_id == self.node_id, "GET /cluster on node {} says node_id {}", self.node_id, view.node_id);
        Ok(view)
    }

    /// `GET /metrics` (must be 200).
    pub async fn metrics(&self) -> Result<String> {
        let reply = self.get("/metrics").await?;
        reply.expect_status(200)?;
        Ok(reply.body)
    }

    /// `POST /services/{service}/state` with a well-formed JSON body.
    /// Returns whatever the node answered.
    pub async fn set_state(&self, service: &str, key: &str, state: &State, version: Option<&str>) -> Result<Reply> {
        let mut body = json!({ "object_key": key, "new_state": state });
        if let Some(v) = version {
            body["version"] = Value::String(v.to_string());
        }
        self.post(&format!("/services/{service}/state"), Some("application/json"), serde_json::to_vec(&body)?).await
    }

    /// [`Api::set_state`] that must answer 202 with a non-empty
    /// `{"version": ...}`; returns the version.
    pub async fn set_state_ok(&self, service: &str, key: &str, state: &State, version: Option<&str>) -> Result<String> {
        let reply = self.set_state(service, key, state, version).await?;
        reply.expect_status(202)?;
        version_of(&reply)
    }

    /// `GET /services/{service}/state/{key}`, whatever the answer.
    pub async fn get_state_reply(&self, service: &str, key: &str) -> Result<Reply> {
        self.get(&format!("/services/{service}/state/{key}")).await
    }

    /// `GET /services/{service}/state/{key}` that must answer 200 with the
    /// documented shape echoing `service` and `key`.
    pub async fn get_state(&self, service: &str, key: &str) -> Result<StateView> {
        let reply = self.get_state_reply(service, key).await?;
        reply.expect_status(200)?;
        let view: StateView = reply.parse()?;
        ensure!(
            view.service == service && view.object_key == key,
            "GET state of ({service}, {key}) via node {} echoed ({}, {})",
            self.node_id,
            view.service,
            view.object_key
        );
        Ok(view)
    }
}
