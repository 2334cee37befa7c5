//! `UpdateService`: changes a service's admin overrides (metadata group).

use crate::catalog::record::{CatalogOutcome, ServiceOverrides, ServiceRecord};
use crate::codec::{decode, encode};
use crate::keys;
use crate::store::StateTxn;

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
