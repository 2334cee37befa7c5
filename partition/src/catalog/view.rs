//! The catalog as its readers use it: every deployment's manifest parsed
//! once. Stored records keep the manifest as raw JSON (it is what the
//! endpoint served, and it encodes with the log's codec); parsing it on every
//! request or attempt cost more than the rest of the lookup, so the ingress,
//! the admin API and the invoker read through a [`Catalog`] instead (the
//! node keeps one, rebuilt when the metadata group applies a change).

use super::record::{CatalogData, DeploymentRecord, ServiceRecord};
use keel_protocol::EndpointManifest;
use keel_protocol::manifest::Service;
use std::collections::BTreeMap;

/// The catalog with every deployment's manifest parsed.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Deployments by id, with their parsed manifests.
    pub deployments: BTreeMap<String, (DeploymentRecord, EndpointManifest)>,
    /// Service records by name.
    pub services: BTreeMap<String, ServiceRecord>,
    /// Deployments whose stored manifest no longer parses, with the error
    /// (it was validated at registration, so this means a format change);
    /// they are left out of `deployments`.
    pub unreadable: BTreeMap<String, String>,
}

impl Catalog {
    /// Parses every stored manifest.
    pub fn new(data: CatalogData) -> Self {
        let mut deployments = BTreeMap::new();
        let mut unreadable = BTreeMap::new();
        for (id, record) in data.deployments {
            match EndpointManifest::parse(&record.manifest_json) {
                Ok(manifest) => {
                    deployments.insert(id, (record, manifest));
                }
                Err(e) => {
                    unreadable.insert(id, e.to_string());
                }
            }
        }
        Catalog { deployments, services: data.services, unreadable }
    }

    /// The latest schema of service `name` with its record.
    pub fn service(&self, name: &str) -> Option<(&ServiceRecord, &Service)> {
        let record = self.services.get(name)?;
        let (_, manifest) = self.deployments.get(&record.deployment_id)?;
        Some((record, manifest.service(name)?))
    }

    /// The latest schema of service `name` and whether the ingress may call
    /// it. `None` if it is not registered.
    pub fn schema(&self, name: &str) -> Option<(&Service, bool)> {
        let (record, service) = self.service(name)?;
        Some((service, is_public(record, service)))
    }

    /// A deployment with its parsed manifest.
    pub fn deployment(&self, id: &str) -> Option<&(DeploymentRecord, EndpointManifest)> {
        self.deployments.get(id)
    }
}

/// Whether the ingress may call `service`: an admin override wins over the
/// manifest's `ingressPrivate`.
pub fn is_public(record: &ServiceRecord, service: &Service) -> bool {
    record.overrides.public.unwrap_or(!service.options.ingress_private.unwrap_or(false))
}
