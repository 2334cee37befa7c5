//! `RemoveDeployment`: drops a deployment from the catalog (metadata group).

use crate::catalog::record::{CatalogOutcome, load};
use crate::keys;
use crate::store::StateTxn;

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
