//! An in-memory [`ClusterApi`] and a request checker, shared by the router property test
//! (`tests/fuzz_router.rs`) and the cargo-fuzz target `fuzz/fuzz_targets/ingress_request.rs`
//! (which includes this file by path, so keep it free of test-only crates).
//!
//! The fake applies proposals with the real partition state machine on one [`MemStore`]
//! per partition, so registrations, state writes and invocations behave as in a cluster,
//! minus Raft and the invoker: a call "finishes" at once with [`FakeCluster::result`], or
//! is handed off when the caller bounded its wait.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use keel_ingress::{AdminOptions, ClusterApi, ClusterError, IngressOptions};
use keel_partition::catalog::{Catalog, DeploymentRecord};
use keel_partition::invocation::InvocationResult;
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, METADATA_GROUP, MemStore, Query, QueryResult, RecordMeta, Response};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// Partitions of the fake cluster (plus the metadata group).
pub const PARTITIONS: u32 = 4;

/// The manifest registered in every fake: one service of each type, a private handler
/// and handlers with input rules, so paths of every shape resolve.
pub const MANIFEST: &str = r#"{
  "protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 7,
  "services": [
    {"name": "Greeter", "ty": "SERVICE", "handlers": [
      {"name": "greet", "input": {"required": true, "contentType": "application/json"}},
      {"name": "raw", "input": {"contentType": "text/*"}, "output": {"contentType": "text/plain", "setContentTypeIfEmpty": true}},
      {"name": "hidden", "ingressPrivate": true}
    ]},
    {"name": "Counter", "ty": "VIRTUAL_OBJECT", "idempotencyRetention": 60000, "handlers": [
      {"name": "add", "ty": "EXCLUSIVE"},
      {"name": "get", "ty": "SHARED", "input": {}}
    ]},
    {"name": "Wf", "ty": "WORKFLOW", "handlers": [
      {"name": "run", "ty": "WORKFLOW", "workflowCompletionRetention": 60000},
      {"name": "signal", "ty": "SHARED"}
    ]},
    {"name": "Private", "ty": "SERVICE", "ingressPrivate": true, "handlers": [{"name": "h"}]}
  ]
}"#;

/// The [`ClusterApi`] of the tests: see the module docs.
pub struct FakeCluster {
    stores: Mutex<BTreeMap<u32, MemStore>>,
    index: AtomicU64,
    /// What a call or attach that waits until completion gets.
    pub result: Mutex<InvocationResult>,
    /// When set, every cluster operation fails with this (503 or 500).
    pub fail: Mutex<Option<fn() -> ClusterError>>,
}

fn seeded_stores() -> BTreeMap<u32, MemStore> {
    static SEEDED: OnceLock<MemStore> = OnceLock::new();
    let metadata = SEEDED.get_or_init(|| {
        let mut store = MemStore::default();
        let record = DeploymentRecord {
            id: "dp_14LtGpa2BOXUjFlVNqTXp7e".into(),
            uri: "http://127.0.0.1:9/".into(),
            additional_headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            use_http_11: false,
            sdk_version: None,
            created_at_ms: 1,
            manifest_json: MANIFEST.as_bytes().to_vec(),
        };
        let command = Command::RegisterDeployment { record, force: false, breaking: false };
        let meta = RecordMeta { index: 1, term: 1, position: 0 };
        let (response, _) = keel_partition::apply(&mut store, &Envelope::client(command), meta).expect("register");
        assert!(matches!(response, Response::Catalog(keel_partition::catalog::CatalogOutcome::Registered { .. })));
        store
    });
    let mut stores: BTreeMap<u32, MemStore> = (0..PARTITIONS).map(|p| (p, MemStore::default())).collect();
    stores.insert(METADATA_GROUP, metadata.clone());
    stores
}

impl Default for FakeCluster {
    fn default() -> Self {
        FakeCluster {
            stores: Mutex::new(seeded_stores()),
            index: AtomicU64::new(100),
            result: Mutex::new(InvocationResult::Success(b"\"ok\"".to_vec())),
            fail: Mutex::new(None),
        }
    }
}

impl FakeCluster {
    fn check(&self) -> Result<(), ClusterError> {
        match *self.fail.lock().expect("lock") {
            Some(f) => Err(f()),
            None => Ok(()),
        }
    }

    fn apply(&self, partition: u32, envelope: &Envelope) -> Result<Response, ClusterError> {
        self.check()?;
        let mut stores = self.stores.lock().expect("lock");
        let store =
            stores.get_mut(&partition).ok_or_else(|| ClusterError::Internal(format!("no partition {partition}")))?;
        let meta = RecordMeta { index: self.index.fetch_add(1, Ordering::Relaxed), term: 1, position: 0 };
        keel_partition::apply(store, envelope, meta)
            .map(|(response, _effects)| response)
            .map_err(|e| ClusterError::Internal(e.to_string()))
    }

    fn waited(&self, policy: WaitPolicy) -> Waited {
        if policy.timeout_ms.is_some() || policy.until_parked {
            Waited::Pending
        } else {
            Waited::Done(self.result.lock().expect("lock").clone())
        }
    }
}

impl ClusterApi for FakeCluster {
    fn partition_count(&self) -> u32 {
        PARTITIONS
    }

    async fn propose(&self, partition: u32, envelope: Envelope) -> Result<Response, ClusterError> {
        self.apply(partition, &envelope)
    }

    async fn read(&self, partition: u32, query: Query) -> Result<QueryResult, ClusterError> {
        self.check()?;
        let stores = self.stores.lock().expect("lock");
        let store =
            stores.get(&partition).ok_or_else(|| ClusterError::Internal(format!("no partition {partition}")))?;
        keel_partition::read(store, &query).map_err(|e| ClusterError::Internal(e.to_string()))
    }

    async fn call(&self, partition: u32, envelope: Envelope, policy: WaitPolicy) -> Result<Waited, ClusterError> {
        self.apply(partition, &envelope)?;
        Ok(self.waited(policy))
    }

    async fn attach(&self, _partition: u32, _id: [u8; 24], policy: WaitPolicy) -> Result<Option<Waited>, ClusterError> {
        self.check()?;
        Ok(Some(self.waited(policy)))
    }

    fn local_catalog(&self) -> Result<Arc<Catalog>, ClusterError> {
        self.check()?;
        let stores = self.stores.lock().expect("lock");
        let data = keel_partition::catalog::load(&stores[&METADATA_GROUP]).map_err(ClusterError::Internal)?;
        Ok(Arc::new(Catalog::new(data)))
    }

    async fn cluster(&self) -> serde_json::Value {
        serde_json::json!({ "node_id": 1, "partitions": [] })
    }

    fn metrics_text(&self) -> String {
        "# EOF\n".to_owned()
    }

    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Which router a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `ingress_router` (port 8080), open.
    Ingress,
    /// `ingress_router` requiring `Authorization: Bearer secret`.
    IngressWithToken,
    /// `admin_router` (port 9070), open.
    Admin,
    /// `admin_router` requiring `Authorization: Bearer secret`.
    AdminWithToken,
}

/// The token of the `…WithToken` targets.
pub const TOKEN: &str = "secret";

/// Limits small enough that generated bodies hit them.
pub const MAX_BODY_BYTES: usize = 512;

/// A router over `cluster`.
pub fn router(target: Target, cluster: Arc<FakeCluster>) -> Router {
    match target {
        Target::Ingress | Target::IngressWithToken => keel_ingress::ingress_router(
            cluster,
            IngressOptions {
                max_body_bytes: MAX_BODY_BYTES,
                max_inflight_requests: 64,
                attach_timeout: Some(Duration::from_millis(10)),
                token: (target == Target::IngressWithToken).then(|| TOKEN.to_owned()),
                completed_retention: Duration::from_secs(300),
            },
        ),
        Target::Admin | Target::AdminWithToken => keel_ingress::admin_router(
            cluster,
            AdminOptions {
                max_body_bytes: MAX_BODY_BYTES,
                token: (target == Target::AdminWithToken).then(|| TOKEN.to_owned()),
            },
        ),
    }
}

/// Whether the admin API would contact the endpoint named in the request (deployment
/// registration runs discovery): such requests are not sent, a fuzzer must not open
/// connections to whatever URI it makes up.
pub fn reaches_network(target: Target, method: &Method, path: &str) -> bool {
    matches!(target, Target::Admin | Target::AdminWithToken)
        && method == Method::POST
        && path.trim_end_matches('/').ends_with("deployments")
}

/// What went wrong with one request.
#[derive(Debug)]
pub struct Violation(pub String);

/// Sends one request and checks the answer: it comes within a few seconds, and an error
/// status carries a JSON object with a string `message`. Panics propagate (they are the
/// other half of the property).
pub async fn check(
    target: Target,
    cluster: Arc<FakeCluster>,
    request: Request<Body>,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), Violation> {
    let head = request.method() == Method::HEAD;
    let what = format!("{} {}", request.method(), request.uri());
    let app = router(target, cluster);
    let response = match tokio::time::timeout(Duration::from_secs(5), app.oneshot(request)).await {
        Err(_) => return Err(Violation(format!("{what}: no answer within 5 s"))),
        Ok(Err(never)) => match never {},
        Ok(Ok(r)) => r,
    };
    let (parts, body) = response.into_parts();
    let bytes = match tokio::time::timeout(Duration::from_secs(5), body.collect()).await {
        Err(_) => return Err(Violation(format!("{what}: body not finished within 5 s"))),
        Ok(Err(e)) => return Err(Violation(format!("{what}: body error {e}"))),
        Ok(Ok(b)) => b.to_bytes().to_vec(),
    };
    if (parts.status.is_client_error() || parts.status.is_server_error()) && !head {
        let json: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
        let ok = matches!(&json, Ok(serde_json::Value::Object(o)) if o.get("message").is_some_and(serde_json::Value::is_string));
        if !ok {
            return Err(Violation(format!(
                "{what}: {} without a JSON message: {:?} (content-type {:?})",
                parts.status,
                String::from_utf8_lossy(&bytes),
                parts.headers.get("content-type"),
            )));
        }
    }
    Ok((parts.status, parts.headers, bytes))
}
