//! The node's parsed service catalog, shared by the ingress, the invokers
//! and the outbox shippers. Reading the catalog means scanning the metadata
//! group's records and parsing every deployment's manifest (JSON); doing
//! that per request and per attempt was a visible share of the CPU under
//! load. The metadata group's state machine bumps a change counter after
//! every applied batch or installed snapshot; the cache rebuilds lazily when
//! the counter moved since its copy was read.

use keel_partition::METADATA_GROUP;
use keel_partition::catalog::{self, Catalog};
use keel_raft::db::Db;
use keel_raft::state_machine::GroupView;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A lazily rebuilt, shared copy of this node's catalog replica.
pub struct CatalogCache {
    db: Arc<Db>,
    changes: Arc<AtomicU64>,
    current: Mutex<Option<(u64, Arc<Catalog>)>>,
}

impl CatalogCache {
    /// An empty cache over the node's database; `changes` is the counter
    /// the metadata group's state machine bumps after writing.
    pub fn new(db: Arc<Db>, changes: Arc<AtomicU64>) -> Self {
        CatalogCache { db, changes, current: Mutex::default() }
    }

    /// The catalog as this node's replica has applied it (not linearizable:
    /// it may lag the metadata leader briefly).
    pub fn get(&self) -> Result<Arc<Catalog>, String> {
        // Read the counter before the records: a change applied while they
        // are read moves the counter past the one stored with this copy,
        // so the next call rebuilds.
        let generation = self.changes.load(Ordering::Acquire);
        if let Some((g, catalog)) = &*self.current.lock().unwrap_or_else(|e| e.into_inner())
            && *g == generation
        {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(Catalog::new(catalog::load(&GroupView::new(&self.db, METADATA_GROUP))?));
        for (id, e) in &catalog.unreadable {
            tracing::error!(deployment = %id, "stored manifest unreadable: {e}");
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, catalog.clone()));
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_partition::StateView;
    use keel_partition::catalog::{CatalogData, DeploymentRecord, ServiceOverrides, ServiceRecord};
    use keel_raft::db::{Cf, MemoryBudget, Op};
    use keel_raft::metrics::RaftMetricsSet;

    /// Writes `data` as the metadata group's records, as its apply would.
    fn store(db: &Db, data: &CatalogData) {
        let ops: Vec<Op> = catalog::to_store(data)
            .scan_prefix(&[])
            .into_iter()
            .map(|(k, v)| Op::Put(Cf::State, keel_raft::keys::state_key(METADATA_GROUP, &k), v))
            .collect();
        let mut batch = rocksdb::WriteBatch::default();
        keel_raft::db::fill_batch(db.raw(), &mut batch, &ops);
        db.raw().write(batch).unwrap();
    }

    #[test]
    fn rebuilds_only_after_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), false, MemoryBudget::SMALLEST, Arc::new(RaftMetricsSet::unregistered())).unwrap();
        let changes = Arc::new(AtomicU64::new(0));
        let cache = CatalogCache::new(db.clone(), changes.clone());
        let empty = cache.get().unwrap();
        assert!(empty.services.is_empty());
        assert!(Arc::ptr_eq(&empty, &cache.get().unwrap()), "unchanged catalog is rebuilt");

        let manifest = br#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":7,
            "services":[{"name":"Greeter","ty":"SERVICE","handlers":[{"name":"greet"}]}]}"#;
        let record = DeploymentRecord {
            id: "dp_1".into(),
            uri: "http://127.0.0.1:9080".into(),
            additional_headers: Default::default(),
            metadata: Default::default(),
            use_http_11: false,
            sdk_version: None,
            created_at_ms: 1,
            manifest_json: manifest.to_vec(),
        };
        let service =
            ServiceRecord { revision: 1, deployment_id: "dp_1".into(), overrides: ServiceOverrides::default() };
        let mut data = CatalogData::default();
        data.deployments.insert("dp_1".into(), record);
        data.services.insert("Greeter".into(), service);
        store(&db, &data);
        // Written but not announced: the cached copy stays.
        assert!(cache.get().unwrap().services.is_empty());
        changes.fetch_add(1, Ordering::Release);
        let fresh = cache.get().unwrap();
        let (schema, public) = fresh.schema("Greeter").expect("Greeter after the change");
        assert_eq!(schema.handlers[0].name, "greet");
        assert!(public);
    }
}
