//! The service catalog: registered deployments and the services they
//! expose. It lives in the metadata group (replicated on every node), so
//! every node can route and validate requests from local state.
//!
//! A deployment is stored with the manifest exactly as its endpoint served
//! it; services are stored as pointers to the deployment of their latest
//! revision plus the overrides set through the admin API. The schema of a
//! service is therefore always read from the manifest of its deployment,
//! and nothing is stored twice.

use crate::codec::{decode, encode};
use crate::keys;
use crate::store::{StateTxn, StateView};
use keel_protocol::EndpointManifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod view;
pub use view::{Catalog, is_public};

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
pub fn to_store(data: &CatalogData) -> crate::MemStore {
    let mut store = crate::MemStore::default();
    for record in data.deployments.values() {
        store.put(keys::deployment_key(&record.id), encode(record));
    }
    for (name, record) in &data.services {
        store.put(keys::service_key(name), encode(record));
    }
    store
}

fn parse(record: &DeploymentRecord) -> Result<EndpointManifest, String> {
    let manifest = EndpointManifest::parse(&record.manifest_json).map_err(|e| e.to_string())?;
    manifest.validate().map_err(|e| e.to_string())?;
    Ok(manifest)
}

/// Registers (or re-registers) a deployment. See the admin API docs: the
/// same URI with an identical manifest is a no-op; a different manifest at
/// the same URI needs `force`; changing a service's type needs `force` or
/// `breaking`. Nothing is written unless the whole registration is valid.
pub fn register(txn: &mut impl StateTxn, record: &DeploymentRecord, force: bool, breaking: bool) -> CatalogOutcome {
    let manifest = match parse(record) {
        Ok(m) => m,
        Err(e) => return CatalogOutcome::Invalid(format!("invalid manifest: {e}")),
    };
    let data = match load(txn) {
        Ok(d) => d,
        Err(e) => return CatalogOutcome::Invalid(format!("catalog unreadable: {e}")),
    };
    let mut record = record.clone();
    let mut created = true;
    if let Some(existing) = data.deployments.values().find(|d| d.uri == record.uri) {
        let same = parse(existing).ok().as_ref() == Some(&manifest)
            && existing.additional_headers == record.additional_headers
            && existing.use_http_11 == record.use_http_11;
        if same {
            return CatalogOutcome::Registered { id: existing.id.clone(), created: false };
        }
        if !force {
            return CatalogOutcome::Conflict(format!(
                "deployment {} at {} already exists with a different manifest or settings; \
                 register with \"force\": true to overwrite it",
                existing.id, existing.uri
            ));
        }
        record.id = existing.id.clone();
        record.created_at_ms = existing.created_at_ms;
        created = false;
    }
    for service in &manifest.services {
        let Some(old) = data.services.get(&service.name) else { continue };
        let old_ty = data
            .deployments
            .get(&old.deployment_id)
            .and_then(|d| parse(d).ok())
            .and_then(|m| m.service(&service.name).map(|s| s.ty));
        if let Some(old_ty) = old_ty
            && old_ty != service.ty
            && !(force || breaking)
        {
            return CatalogOutcome::Conflict(format!(
                "service {} would change type from {old_ty:?} to {:?}, a breaking change; \
                 register with \"breaking\": true or \"force\": true to allow it",
                service.name, service.ty
            ));
        }
    }
    txn.put(keys::deployment_key(&record.id), encode(&record));
    for service in &manifest.services {
        let revision = data.services.get(&service.name).map_or(1, |s| s.revision + 1);
        let entry =
            ServiceRecord { revision, deployment_id: record.id.clone(), overrides: ServiceOverrides::default() };
        txn.put(keys::service_key(&service.name), encode(&entry));
    }
    CatalogOutcome::Registered { id: record.id, created }
}

/// Removes a deployment and the services whose latest revision it serves.
pub fn remove(txn: &mut impl StateTxn, id: &str) -> CatalogOutcome {
    let data = match load(txn) {
        Ok(d) => d,
        Err(e) => return CatalogOutcome::Invalid(format!("catalog unreadable: {e}")),
    };
    if !data.deployments.contains_key(id) {
        return CatalogOutcome::NotFound(format!("deployment {id} not found"));
    }
    txn.delete(keys::deployment_key(id));
    for (name, service) in &data.services {
        if service.deployment_id == id {
            txn.delete(keys::service_key(name));
        }
    }
    CatalogOutcome::Removed
}

/// Updates a service's admin overrides.
pub fn update_service(txn: &mut impl StateTxn, name: &str, patch: &ServiceOverrides) -> CatalogOutcome {
    let key = keys::service_key(name);
    let Some(bytes) = txn.get(&key) else {
        return CatalogOutcome::NotFound(format!("service {name} not found"));
    };
    let mut record: ServiceRecord = match decode(&bytes) {
        Ok(r) => r,
        Err(e) => return CatalogOutcome::Invalid(format!("service record unreadable: {e}")),
    };
    record.overrides.merge(patch);
    txn.put(key, encode(&record));
    CatalogOutcome::ServiceUpdated
}

#[cfg(test)]
mod tests;
