//! Finding the service an ingress request names, cheaply even when it does
//! not exist.
//!
//! The first place to look is this node's replica of the catalog, parsed
//! once per change and shared. It may lag a registration made through
//! another node, so a miss is confirmed with a linearizable read from the
//! metadata group's leader before answering 404. That read fetches and
//! parses every manifest, though, and a client (or an attacker) that calls
//! unknown services in a loop would turn each request into one. So misses
//! refresh at most once per [`REFRESH_INTERVAL`] per router: concurrent
//! misses wait for the one refresh in flight, and later ones within the
//! interval look the name up in that refreshed copy. A service registered
//! elsewhere is thus found within one interval even while this node's
//! replica still lags, and an unknown one costs two map lookups.

use crate::api::{ClusterApi, ClusterError};
use keel_partition::catalog::{Catalog, CatalogData, ServiceOverrides, is_public};
use keel_partition::{METADATA_GROUP, Query, QueryResult};
use keel_protocol::manifest::Service;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How often at most a miss in the local catalog reads the leader's.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// A service's schema, whether the ingress may call it, and its overrides.
pub(crate) type FoundService = (Service, bool, ServiceOverrides);

/// The last refresh of one router: when, and what it read.
#[derive(Default)]
pub(crate) struct CatalogLookup {
    last: Mutex<Option<(Instant, Arc<Catalog>)>>,
}

fn schema(catalog: &Catalog, name: &str) -> Option<FoundService> {
    let (record, service) = catalog.service(name)?;
    Some((service.clone(), is_public(record, service), record.overrides.clone()))
}

impl CatalogLookup {
    /// Service `name` from the local catalog, or else from a refresh of at
    /// most [`REFRESH_INTERVAL`] ago (`None`: not registered).
    pub(crate) async fn find<C: ClusterApi>(
        &self,
        cluster: &C,
        name: &str,
    ) -> Result<Option<FoundService>, ClusterError> {
        if let Some(found) = cluster.local_catalog().ok().and_then(|c| schema(&c, name)) {
            return Ok(Some(found));
        }
        // Held across the read: concurrent misses share the one in flight.
        let mut last = self.last.lock().await;
        if let Some((at, catalog)) = &*last
            && at.elapsed() < REFRESH_INTERVAL
        {
            return Ok(schema(catalog, name));
        }
        let read = match cluster.read(METADATA_GROUP, Query::Catalog).await {
            Ok(QueryResult::Catalog(data)) => Ok(Arc::new(Catalog::new(data))),
            Ok(other) => Err(ClusterError::Internal(format!("unexpected answer to a catalog read: {other:?}"))),
            Err(e) => Err(e),
        };
        // A failed read counts as a refresh too (keeping the previous copy),
        // so an unavailable metadata group is not asked once per request.
        let catalog = match &read {
            Ok(catalog) => catalog.clone(),
            Err(_) => last.take().map_or_else(|| Arc::new(Catalog::new(CatalogData::default())), |(_, c)| c),
        };
        *last = Some((Instant::now(), catalog));
        Ok(schema(&*read?, name))
    }
}
