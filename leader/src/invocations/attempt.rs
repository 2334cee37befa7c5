//! Preparing one attempt: everything the SDK is started with comes from
//! the partition's applied state and the catalog, read once the attempt
//! holds its slots: the record and journal, the deployment (pinned by the
//! first attempt that stores anything, so a replay runs the code that
//! wrote the journal), the handler's retry policy and timeouts, and an
//! object's state sent eagerly. Which slots it waits for depends on the
//! deployment, so that is looked up before the wait too.

use super::frames::decode_journal;
use super::{Attempts, Invoker, Next, id_string};
use crate::catalog_lookup::current_catalog;
use crate::retry::{Failure, RetryPolicy};
use bytes::Bytes;
use keel_endpoint::{EndpointAddress, HttpVersion};
use keel_invoker::{AttemptParams, AttemptTimeouts};
use keel_partition::catalog::{Catalog, ServiceOverrides};
use keel_partition::invocation::{self, InvocationKey, InvocationRecord, Status};
use keel_partition::{Command, Query, QueryResult};
use keel_protocol::manifest::{Handler, Service};
use keel_protocol::{InvocationId, VersionPolicy};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Invoker {
    /// Runs one attempt of invocation `id`, if it is still to run: waits
    /// for a slot of the deployment it runs on and one of the node's
    /// ([`crate::slots`]), prepares the attempt from the stored state and
    /// drives it ([`Self::drive`]).
    pub(super) async fn attempt(&self, id: &InvocationKey, attempts: &mut Attempts) -> Next {
        let mut deployment = match self.runnable(id).await {
            Ok(runnable) => runnable.deployment_id,
            Err(next) => return next,
        };
        // The slots are held until the attempt ends. Waiting for them is
        // not a failure; the state is read after the wait, so an invocation
        // killed meanwhile does not start.
        let (_slot, prepared) = loop {
            let slot = self.partition.services.slots.acquire(&deployment).await;
            let prepared = match self.runnable(id).await {
                Ok(runnable) => {
                    let stored = self.stored(id, &runnable.record).await;
                    self.prepare(id, runnable, stored, attempts)
                }
                Err(next) => return next,
            };
            let prepared = match prepared {
                Ok(prepared) => prepared,
                Err(next) => return next,
            };
            if prepared.deployment_id == deployment {
                break (slot, prepared);
            }
            // The service got a new revision while the attempt waited: it
            // runs on that deployment, so it waits for one of its slots.
            deployment = prepared.deployment_id;
        };
        let Prepared { deployment_id, address, params, pin } = prepared;
        tracing::debug!(partition = self.partition.id(), invocation = %id_string(id), deployment = %deployment_id, "starting an attempt");
        let known = params.journal.len() as u32;
        self.partition.waiters.unpark(id);
        let (next, seen) = self.drive(id, &address, params, pin).await;
        if seen > known {
            attempts.failures_since_stored = 0;
            attempts.last_stored = Instant::now();
        }
        next
    }

    /// The invocation's record if it is still to run, with the catalog and
    /// the deployment its attempt runs on: the one its journal is pinned
    /// to, else the one of the service's latest revision.
    ///
    /// The catalog is this node's, unless that lacks the service or the
    /// pinned deployment: then it is the metadata group's current one
    /// ([`crate::catalog_lookup`]), since this node's replica may not have
    /// applied a registration made through another node yet. Only what
    /// that one lacks too fails the attempt.
    async fn runnable(&self, id: &InvocationKey) -> Result<Runnable, Next> {
        let record = match invocation::load(&self.partition.view(), id) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(Next::Done),
            Err(e) => return Err(Next::Stop(format!("invocation record unreadable: {e}"))),
        };
        if record.status != Status::Invoked {
            return Err(Next::Done);
        }
        let unreadable = |e: String| Next::Retry(Failure::transient(format!("catalog unreadable: {e}")));
        let mut catalog = self.partition.catalog().map_err(unreadable)?;
        let knows = |catalog: &Catalog| match &record.deployment_id {
            Some(d) => catalog.deployment(d).is_some(),
            None => catalog.services.contains_key(&record.target.service),
        };
        if !knows(&catalog) {
            catalog = current_catalog(&self.partition).await.map_err(|e| unreadable(e.to_string()))?;
        }
        let service = &record.target.service;
        let deployment_id = match &record.deployment_id {
            Some(d) => d.clone(),
            None => match catalog.services.get(service) {
                Some(s) => s.deployment_id.clone(),
                None => return Err(Next::Retry(Failure::transient(format!("service {service} is not registered")))),
            },
        };
        Ok(Runnable { record, catalog, deployment_id })
    }

    /// What the attempt of `record` replays: its journal and, for an
    /// object or workflow, its state (sent eagerly). Both can be large, so
    /// they are read off the async workers.
    async fn stored(&self, id: &InvocationKey, record: &InvocationRecord) -> Stored {
        let (id, record) = (*id, record.clone());
        self.partition
            .group
            .read_blocking(move |view| {
                let journal = invocation::journal_of(view, &id, &record);
                let eager_state = record.target.key.as_ref().map(|key| {
                    let query = Query::GetState { service: record.target.service.clone(), object_key: key.clone() };
                    match keel_partition::read(view, &query) {
                        Ok(QueryResult::State { state, .. }) => {
                            state.into_iter().map(|(k, v)| (Bytes::from(k.into_bytes()), Bytes::from(v))).collect()
                        }
                        _ => Vec::new(),
                    }
                });
                Stored { journal, eager_state }
            })
            .await
    }

    /// Everything the attempt of `runnable` is started with.
    fn prepare(
        &self,
        id: &InvocationKey,
        runnable: Runnable,
        stored: Stored,
        attempts: &mut Attempts,
    ) -> Result<Prepared, Next> {
        let Runnable { record, catalog, deployment_id } = runnable;
        let Stored { journal, eager_state } = stored;
        let service = &record.target.service;
        let Some((deployment, manifest)) = catalog.deployment(&deployment_id) else {
            return Err(Next::Retry(Failure::transient(format!(
                "deployment {deployment_id} of service {service} is gone"
            ))));
        };
        // Queued before the attempt's first journal entry or suspension
        // (see `drive_events`); an attempt that goes straight to its result
        // needs no pin, and one that fails before it stored anything may
        // just as well run on a newer revision next time.
        let pin = record
            .deployment_id
            .is_none()
            .then(|| Command::PinDeployment { id: *id, deployment_id: deployment_id.clone() });
        let handler = manifest
            .service(service)
            .and_then(|s| Some((s, s.handlers.iter().find(|h| h.name == record.target.handler)?)));
        let timeouts = match handler {
            Some((schema, handler)) => {
                attempts.policy = RetryPolicy::of(schema, handler);
                let overrides = catalog.services.get(service).map(|s| &s.overrides);
                effective_timeouts(overrides, schema, handler)
            }
            None => AttemptTimeouts::default(),
        };
        let protocol_version = match manifest.select_protocol_version(&VersionPolicy::default()) {
            Ok(v) => v,
            Err(e) => return Err(Next::Retry(Failure::transient(format!("deployment {deployment_id}: {e}")))),
        };
        let mut address = match deployment.uri.parse() {
            Ok(uri) => EndpointAddress::new(uri),
            Err(e) => {
                return Err(Next::Retry(Failure::transient(format!("deployment uri {}: {e}", deployment.uri))));
            }
        };
        address.use_http_11 = deployment.use_http_11;
        for (name, value) in &deployment.additional_headers {
            if let (Ok(n), Ok(v)) = (name.parse(), value.parse()) {
                address.additional_headers.push((n, v));
            }
        }
        let frames = match decode_journal(&journal) {
            Ok(f) => f,
            Err(e) => return Err(Next::Stop(format!("stored journal unreadable: {e}"))),
        };
        let invocation_id = match InvocationId::from_bytes(id) {
            Ok(i) => i,
            Err(e) => return Err(Next::Stop(format!("invalid invocation id: {e}"))),
        };
        let params = AttemptParams {
            invocation_id,
            service: service.clone(),
            handler: record.target.handler.clone(),
            key: record.target.key.clone(),
            protocol_version,
            http_version: if deployment.use_http_11 { HttpVersion::Http11 } else { HttpVersion::Http2 },
            protocol_mode: manifest.protocol_mode,
            journal: frames,
            partial_state: eager_state.is_none(),
            eager_state,
            retry_count_since_last_stored_entry: attempts.failures_since_stored,
            duration_since_last_stored_entry: attempts.last_stored.elapsed(),
            random_seed: xxhash_rust::xxh3::xxh3_64(id),
            headers: Vec::new(),
            timeouts,
        };
        Ok(Prepared { deployment_id, address, params, pin })
    }
}

/// An invocation that is to run, and where.
/// What an attempt replays, as stored.
struct Stored {
    journal: Vec<Vec<u8>>,
    eager_state: Option<Vec<(Bytes, Bytes)>>,
}

struct Runnable {
    record: InvocationRecord,
    catalog: Arc<Catalog>,
    deployment_id: String,
}

/// An attempt ready to be driven.
struct Prepared {
    deployment_id: String,
    address: EndpointAddress,
    params: AttemptParams,
    /// The deployment pin to journal with the attempt's first entry, if
    /// the invocation has none yet.
    pin: Option<Command>,
}

/// The timeouts of an attempt of `handler`: the handler's manifest value,
/// else the service's admin override, else the service's manifest value,
/// else Restate's defaults.
fn effective_timeouts(overrides: Option<&ServiceOverrides>, service: &Service, handler: &Handler) -> AttemptTimeouts {
    let default = AttemptTimeouts::default();
    let pick = |handler: Option<u64>, overridden: Option<u64>, service: Option<u64>, default: Duration| {
        handler.or(overridden).or(service).map_or(default, Duration::from_millis)
    };
    let (h, s) = (&handler.options, &service.options);
    AttemptTimeouts {
        inactivity: pick(
            h.inactivity_timeout,
            overrides.and_then(|o| o.inactivity_timeout_ms),
            s.inactivity_timeout,
            default.inactivity,
        ),
        abort: pick(h.abort_timeout, overrides.and_then(|o| o.abort_timeout_ms), s.abort_timeout, default.abort),
    }
}
