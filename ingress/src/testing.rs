//! A fake [`ClusterApi`] for tests that drive the real routers, and a helper
//! that sends one request through a router.
//!
//! The fake's catalog is the TypeScript SDK's test manifest (`Greeter`, a
//! plain service; `Counter`, a virtual object; ...). Its local replica may
//! be made to lag ([`FakeCluster::lagging`]), it counts the linearizable
//! catalog reads, and its calls can be made to block until the test is done
//! ([`FakeCluster::parking`]), so tests can fill the in-flight limit.

use crate::api::{ClusterApi, ClusterError};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response as HttpResponse;
use keel_partition::catalog::{Catalog, CatalogData, DeploymentRecord, ServiceOverrides, ServiceRecord};
use keel_partition::invocation::InvocationResult;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Envelope, METADATA_GROUP, Query, QueryResult, Response};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

pub(crate) const MANIFEST: &[u8] = include_bytes!("../../protocol/testdata/manifest_v4_sdk_ts.json");

/// See the module docs.
pub(crate) struct FakeCluster {
    /// What a linearizable read of the metadata group answers.
    catalog: CatalogData,
    /// This node's replica of the catalog.
    local: Arc<Catalog>,
    /// Whether calls wait forever instead of answering `"ok"`.
    park_calls: bool,
    /// Linearizable reads of the catalog so far.
    pub catalog_reads: AtomicUsize,
    /// Proposals so far (any group).
    pub proposals: AtomicUsize,
    /// Notified when a call starts.
    pub call_started: Notify,
    /// What [`ClusterApi::problems`] reports.
    pub problems: std::sync::Mutex<Vec<String>>,
}

impl FakeCluster {
    /// A cluster whose replica is up to date and whose calls answer at once.
    pub fn new() -> Self {
        let record = DeploymentRecord {
            id: "dp_1".into(),
            uri: "http://127.0.0.1:9".into(),
            additional_headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            use_http_11: false,
            sdk_version: None,
            created_at_ms: 1,
            manifest_json: MANIFEST.to_vec(),
        };
        let manifest = keel_protocol::manifest::EndpointManifest::parse(MANIFEST).expect("test manifest");
        let services = manifest
            .services
            .iter()
            .map(|s| {
                let record =
                    ServiceRecord { revision: 1, deployment_id: "dp_1".into(), overrides: ServiceOverrides::default() };
                (s.name.clone(), record)
            })
            .collect();
        let catalog = CatalogData { deployments: BTreeMap::from([("dp_1".into(), record)]), services };
        FakeCluster {
            local: Arc::new(Catalog::new(catalog.clone())),
            catalog,
            park_calls: false,
            catalog_reads: AtomicUsize::new(0),
            proposals: AtomicUsize::new(0),
            call_started: Notify::new(),
            problems: Default::default(),
        }
    }

    /// The same cluster with an empty local replica, as on a node that has
    /// not yet applied the registrations made through another node.
    pub fn lagging(self) -> Self {
        FakeCluster { local: Arc::new(Catalog::new(CatalogData::default())), ..self }
    }

    /// The same cluster with calls that never finish.
    pub fn parking(self) -> Self {
        FakeCluster { park_calls: true, ..self }
    }
}

impl ClusterApi for FakeCluster {
    fn partition_count(&self) -> u32 {
        8
    }

    async fn propose(&self, _partition: u32, _envelope: Envelope) -> Result<Response, ClusterError> {
        self.proposals.fetch_add(1, Ordering::SeqCst);
        Ok(Response::LeaderAnnounced)
    }

    async fn read(&self, partition: u32, _query: Query) -> Result<QueryResult, ClusterError> {
        if partition != METADATA_GROUP {
            return Ok(QueryResult::Invocation(None));
        }
        self.catalog_reads.fetch_add(1, Ordering::SeqCst);
        Ok(QueryResult::Catalog(self.catalog.clone()))
    }

    async fn call(&self, _partition: u32, _envelope: Envelope, _policy: WaitPolicy) -> Result<Waited, ClusterError> {
        self.call_started.notify_one();
        if self.park_calls {
            std::future::pending::<()>().await;
        }
        Ok(Waited::Done(InvocationResult::Success(b"\"ok\"".to_vec())))
    }

    async fn attach(
        &self,
        _partition: u32,
        _id: [u8; 24],
        _policy: WaitPolicy,
    ) -> Result<Option<Waited>, ClusterError> {
        Ok(None)
    }

    fn local_catalog(&self) -> Result<Arc<Catalog>, ClusterError> {
        Ok(self.local.clone())
    }

    async fn cluster(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    fn metrics_text(&self) -> String {
        String::new()
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves `request` with `router`; the answer's status, headers and body
/// (parsed as JSON; `null` if empty or not JSON).
pub(crate) async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, serde_json::Value) {
    // A generic bound brings `Service::call` into reach without depending
    // on the `tower` crates: `axum::ServiceExt` has `Service` as supertrait.
    fn call<S>(mut service: S, request: Request<Body>) -> S::Future
    where
        S: axum::ServiceExt<Request<Body>, Response = HttpResponse, Error = Infallible>,
    {
        service.call(request)
    }
    let Ok(response) = call(router.clone(), request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, headers, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// A request without a body.
pub(crate) fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder().method(method).uri(uri).body(Body::empty()).expect("request")
}
