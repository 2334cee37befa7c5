//! The service catalog: registered deployments and the services they
//! expose. It lives in the metadata group (replicated on every node), so
//! every node can route and validate requests from local state.
//!
//! A deployment is stored with the manifest exactly as its endpoint served
//! it; services are stored as pointers to the deployment of their latest
//! revision plus the overrides set through the admin API. The schema of a
//! service is therefore always read from the manifest of its deployment,
//! and nothing is stored twice.
//!
//! The records live in `catalog/record.rs`, the parsed view that readers
//! use in `catalog/view.rs`, and the commands that change the catalog in
//! `commands/` (one module each); this module only gathers their public
//! names.

pub(crate) mod record;
mod view;

pub use crate::commands::register_deployment::register;
pub use crate::commands::remove_deployment::remove;
pub use crate::commands::update_service::update_service;
pub use record::{
    AsyncResponse, CatalogData, CatalogOutcome, DeploymentRecord, ServiceOverrides, ServiceRecord, load, to_store,
};
pub use view::{Catalog, is_public};

#[cfg(test)]
mod tests;
