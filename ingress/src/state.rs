//! What the ingress's handlers share (axum's router state).

use crate::lookup::CatalogLookup;
use axum::extract::FromRef;
use std::sync::Arc;
use std::time::Duration;

/// What the ingress handlers share: the cluster, the settings, and the
/// rate limit of catalog refreshes.
pub(crate) struct IngressState<C> {
    pub(crate) cluster: Arc<C>,
    pub(crate) attach_timeout: Option<Duration>,
    pub(crate) completed_retention_ms: u64,
    pub(crate) catalog: Arc<CatalogLookup>,
}

impl<C> Clone for IngressState<C> {
    fn clone(&self) -> Self {
        IngressState {
            cluster: self.cluster.clone(),
            attach_timeout: self.attach_timeout,
            completed_retention_ms: self.completed_retention_ms,
            catalog: self.catalog.clone(),
        }
    }
}

impl<C> FromRef<IngressState<C>> for Arc<C> {
    fn from_ref(state: &IngressState<C>) -> Arc<C> {
        state.cluster.clone()
    }
}
