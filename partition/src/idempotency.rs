//! Requests that must run at most once, and how long their results live.
//!
//! Deduplication needs no index of its own: an idempotent request's
//! invocation id is *derived* from its target and idempotency key, and a
//! workflow run's from the workflow and its id, so a repeated request is an
//! `Invoke` of an id that exists already, which the `Invoke` handler
//! (`commands/invoke.rs`) refuses in the partition's apply. Concurrent duplicates are ordered by the
//! log: the first creates the invocation, the rest see it.
//!
//! The completed record (with the result) stays for the invocation's
//! *retention*, stamped into the record by whoever proposes the `Invoke`
//! (the catalog is not part of the partition's state), and is then removed
//! through the expiry index ([`crate::expiry`]). Once purged, the same key
//! runs again.
//!
//! What needs the record that long: an idempotent request's result is
//! answered to every repetition within its idempotency retention, and a
//! workflow's result, state and promises outlive its run by the workflow
//! retention. Any other invocation's record only deduplicates keel's own
//! retries of its id (a caller retrying on a new leader, an outbox message
//! shipped again because its acknowledgement was lost), which come within
//! seconds: it stays for the short deduplication window the node was
//! configured with (`--completed-retention`, [`DEFAULT_COMPLETED_RETENTION_MS`]).

use crate::catalog::record::ServiceOverrides;
use crate::keys;
use crate::model::invocation::{HandlerKind, handler_kind};
use keel_protocol::InvocationId;
use keel_protocol::manifest::{Handler, Service};

/// Restate's default idempotency retention: one day.
pub const DEFAULT_IDEMPOTENCY_RETENTION_MS: u64 = 86_400_000;

/// Restate's default workflow completion retention: one day.
pub const DEFAULT_WORKFLOW_RETENTION_MS: u64 = 86_400_000;

/// How long any other completed invocation's record is kept by default, so
/// that internal retries with the same id are deduplicated: five minutes.
pub const DEFAULT_COMPLETED_RETENTION_MS: u64 = 300_000;

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part);
}

/// The id of a request with an idempotency key: the same service, object
/// key, handler and idempotency key always give the same id. It lives in the
/// partition of the object key (so it runs beside the object's other
/// invocations), or, for plain services, of the idempotency key.
pub fn idempotent_id(service: &str, key: Option<&str>, handler: &str, idempotency_key: &str) -> InvocationId {
    let mut seed = b"idempotency".to_vec();
    push_part(&mut seed, service.as_bytes());
    match key {
        // A marker byte keeps "no key" apart from an empty key.
        Some(k) => {
            seed.push(1);
            push_part(&mut seed, k.as_bytes());
        }
        None => seed.push(0),
    }
    push_part(&mut seed, handler.as_bytes());
    push_part(&mut seed, idempotency_key.as_bytes());
    let pk = keys::partition_key(key.unwrap_or(idempotency_key).as_bytes());
    InvocationId::new(pk, xxhash_rust::xxh3::xxh3_128(&seed))
}

/// The id of a workflow's run for workflow id `key`: derived from the
/// workflow, so a second run of the same id is a duplicate of the first.
pub fn workflow_run_id(service: &str, key: &str) -> InvocationId {
    let uuid = xxhash_rust::xxh3::xxh3_128(format!("workflow\0{service}\0{key}").as_bytes());
    InvocationId::new(keys::partition_key(key.as_bytes()), uuid)
}

/// The idempotency retention of `handler`: the handler's own setting, else
/// the service's (an admin override before the manifest), else one day.
pub fn idempotency_retention_ms(overrides: &ServiceOverrides, service: &Service, handler: &Handler) -> u64 {
    handler
        .options
        .idempotency_retention
        .or(overrides.idempotency_retention_ms)
        .or(service.options.idempotency_retention)
        .unwrap_or(DEFAULT_IDEMPOTENCY_RETENTION_MS)
}

/// The workflow completion retention of a workflow service: an admin
/// override, else the run handler's manifest setting, else one day.
pub fn workflow_retention_ms(overrides: &ServiceOverrides, service: &Service) -> u64 {
    let manifest = service.handlers.iter().find_map(|h| h.workflow_completion_retention);
    overrides.workflow_completion_retention_ms.or(manifest).unwrap_or(DEFAULT_WORKFLOW_RETENTION_MS)
}

/// How long the result of an invocation of `handler` is kept after it
/// completes: the workflow retention for a workflow run (its promises and
/// state go with it), the idempotency retention for a request with an
/// idempotency key, else `completed_ms` (the node's deduplication window).
pub fn retention_ms(
    overrides: &ServiceOverrides,
    service: &Service,
    handler: &Handler,
    idempotent: bool,
    completed_ms: u64,
) -> u64 {
    match handler_kind(service, handler) {
        HandlerKind::Workflow => workflow_retention_ms(overrides, service),
        _ if idempotent => idempotency_retention_ms(overrides, service, handler),
        _ => completed_ms,
    }
}

#[cfg(test)]
mod tests;
