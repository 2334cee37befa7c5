//! Deciding about a handler with a catalog that knows it, if any does.
//!
//! This node reads the service catalog from its own replica of the
//! metadata group, which may lag: a service registered through another
//! node a moment ago, then called by a handler here, is not in it yet.
//! Deciding on such a miss would be wrong twice over: a send would fail
//! with 404 for a handler that exists, and a call to a workflow's run
//! handler would get an ordinary invocation id instead of the workflow
//! run's, so the run could start twice for one workflow id. So a handler
//! the local catalog does not know is looked up in the metadata group's
//! catalog, read from its leader after a linearizability check (as the
//! ingress confirms a miss); only when that one does not know it either is
//! it unknown. Each miss costs one such read.

use crate::partition::Partition;
use keel_partition::catalog::Catalog;
use keel_partition::{METADATA_GROUP, Query, QueryResult};
use keel_raft::router::RouteError;
use std::sync::Arc;

/// Why no catalog could be consulted; the caller retries later.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// This node's catalog could not be read.
    #[error("the local catalog is unreadable: {0}")]
    Local(String),
    /// The metadata group's leader could not be reached or did not answer.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The metadata group answered a catalog read with something else.
    #[error("unexpected answer to a catalog read: {0}")]
    Answer(String),
}

/// The catalog to decide about `service/handler` with: this node's if it
/// knows the handler, else the metadata group's current one (which may not
/// know it either).
pub async fn catalog_for(partition: &Partition, service: &str, handler: &str) -> Result<Arc<Catalog>, CatalogError> {
    let local = partition.catalog().map_err(CatalogError::Local)?;
    if knows(&local, service, handler) {
        return Ok(local);
    }
    current_catalog(partition).await
}

/// The metadata group's catalog as its leader holds it now.
pub async fn current_catalog(partition: &Partition) -> Result<Arc<Catalog>, CatalogError> {
    match partition.services.router.read(METADATA_GROUP, &Query::Catalog).await? {
        QueryResult::Catalog(data) => Ok(Arc::new(Catalog::new(data))),
        other => Err(CatalogError::Answer(format!("{other:?}"))),
    }
}

fn knows(catalog: &Catalog, service: &str, handler: &str) -> bool {
    catalog.service(service).is_some_and(|(_, s)| s.handlers.iter().any(|h| h.name == handler))
}
