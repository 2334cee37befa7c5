//! The catalog's stored records, and reading them all at once.

use crate::codec::{decode, encode};
use crate::keys;
use crate::store::{MemStore, StateTxn, StateView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A registered deployment as stored. Plain fields only, so the record
/// encodes with the log's binary codec; the manifest stays raw JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// `dp_1…` id, chosen by the admin API before proposing.
    pub id: String,
    /// Base URI of the endpoint.
    pub uri: String,
    /// Headers sent on discovery and every invocation request.
    pub additional_headers: BTreeMap<String, String>,
    /// Free-form labels.
    pub metadata: BTreeMap<String, String>,
    /// Talk HTTP/1.1 instead of h2c.
    pub use_http_11: bool,
    /// The endpoint's `x-restate-server` header, if any.
    pub sdk_version: Option<String>,
    /// Registration time (ms since the Unix epoch), stamped by the admin API.
    pub created_at_ms: u64,
    /// The discovery manifest as served (JSON bytes).
    pub manifest_json: Vec<u8>,
}

/// Admin-API overrides of a service's options; `None` keeps the manifest's
/// value (or the default). Re-registering the service resets them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOverrides {
    /// Whether the ingress may call the service.
    pub public: Option<bool>,
    /// Idempotency retention in ms.
    pub idempotency_retention_ms: Option<u64>,
    /// Workflow completion retention in ms (workflows only).
    pub workflow_completion_retention_ms: Option<u64>,
    /// Journal retention in ms.
    pub journal_retention_ms: Option<u64>,
    /// Inactivity timeout in ms.
    pub inactivity_timeout_ms: Option<u64>,
    /// Abort timeout in ms.
    pub abort_timeout_ms: Option<u64>,
    /// Per-handler answer of a call handed off to async (`Prefer: wait`).
    /// In a patch, `None` removes a handler's entry; stored overrides hold
    /// only `Some`.
    pub async_responses: BTreeMap<String, Option<AsyncResponse>>,
}

/// What the ingress answers, instead of its default 202 with a `Location`,
/// when a call of this handler outlives the caller's `Prefer: wait`. In
/// `headers` values and `body`, `{{invocation_id}}` and `{{attach_url}}`
/// are replaced by the invocation's id and attach path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncResponse {
    /// HTTP status (200–599).
    pub status: u16,
    /// Response headers.
    pub headers: BTreeMap<String, String>,
    /// Response body template.
    pub body: String,
}

impl ServiceOverrides {
    /// Applies the fields set in `patch` on top of `self`.
    pub fn merge(&mut self, patch: &ServiceOverrides) {
        let ServiceOverrides {
            public,
            idempotency_retention_ms,
            workflow_completion_retention_ms,
            journal_retention_ms,
            inactivity_timeout_ms,
            abort_timeout_ms,
            async_responses,
        } = patch;
        self.public = public.or(self.public);
        self.idempotency_retention_ms = idempotency_retention_ms.or(self.idempotency_retention_ms);
        self.workflow_completion_retention_ms =
            workflow_completion_retention_ms.or(self.workflow_completion_retention_ms);
        self.journal_retention_ms = journal_retention_ms.or(self.journal_retention_ms);
        self.inactivity_timeout_ms = inactivity_timeout_ms.or(self.inactivity_timeout_ms);
        self.abort_timeout_ms = abort_timeout_ms.or(self.abort_timeout_ms);
        for (handler, response) in async_responses {
            match response {
                Some(r) => self.async_responses.insert(handler.clone(), Some(r.clone())),
                None => self.async_responses.remove(handler),
            };
        }
    }
}

/// A service as stored: which deployment serves its latest revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Revision, 1 on first registration, +1 on every re-registration.
    pub revision: u32,
    /// Deployment of the latest revision.
    pub deployment_id: String,
    /// Admin overrides.
    pub overrides: ServiceOverrides,
}

/// Everything stored in the catalog, as raw records (what crosses the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogData {
    /// Deployments by id.
    pub deployments: BTreeMap<String, DeploymentRecord>,
    /// Services by name.
    pub services: BTreeMap<String, ServiceRecord>,
}

/// Outcome of a catalog command (part of [`crate::Response`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOutcome {
    /// The deployment is registered; `created` is false when an identical
    /// deployment at the same URI already existed (or it was overwritten).
    Registered {
        /// Its id.
        id: String,
        /// Whether a new deployment was created.
        created: bool,
    },
    /// The deployment was removed (with the services whose latest revision it served).
    Removed,
    /// The service's overrides were updated.
    ServiceUpdated,
    /// The named deployment or service does not exist.
    NotFound(String),
    /// The change conflicts with the catalog (409).
    Conflict(String),
    /// The change is invalid (400).
    Invalid(String),
}

/// Reads the whole catalog.
pub fn load(view: &impl StateView) -> Result<CatalogData, String> {
    let mut data = CatalogData::default();
    for (k, v) in view.scan_prefix(&[keys::KIND_DEPLOYMENT]) {
        let record: DeploymentRecord = decode(&v).map_err(|e| format!("deployment {:?}: {e}", &k[1..]))?;
        data.deployments.insert(record.id.clone(), record);
    }
    for (k, v) in view.scan_prefix(&[keys::KIND_SERVICE]) {
        let name = String::from_utf8_lossy(&k[1..]).into_owned();
        let record: ServiceRecord = decode(&v).map_err(|e| format!("service {name}: {e}"))?;
        data.services.insert(name, record);
    }
    Ok(data)
}

/// A store holding exactly `data`, to try a catalog command without
/// proposing it (the admin API's `dry_run`).
pub fn to_store(data: &CatalogData) -> MemStore {
    let mut store = MemStore::default();
    for record in data.deployments.values() {
        store.put(keys::deployment_key(&record.id), encode(record));
    }
    for (name, record) in &data.services {
        store.put(keys::service_key(name), encode(record));
    }
    store
}
