//! `RegisterDeployment`: adds a deployment to the catalog (metadata group).
//!
//! The admin API discovered the endpoint and chose the id before proposing;
//! apply only validates and stores, so every replica decides alike. The same
//! function checks a registration without proposing it (`dry_run`), against
//! a [`to_store`](crate::catalog::to_store) copy of the catalog.

use crate::catalog::record::{CatalogOutcome, DeploymentRecord, ServiceOverrides, ServiceRecord, load};
use crate::codec::encode;
use crate::keys;
use crate::store::StateTxn;
use keel_protocol::EndpointManifest;

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
