//! What an ingress request asks for beyond its target: an `Idempotency-Key`
//! header and a `?delay=` on `/send`, and the invocation id and retention
//! that follow from them.
//!
//! Deduplication itself happens in the partition: the id of an idempotent
//! request (or of a workflow run) is derived from its target, so a repeat is
//! an `Invoke` of an existing id (`keel_partition::idempotency`).

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderValue, Uri};
use keel_partition::idempotency;
use keel_partition::invocation::HandlerKind;
use keel_protocol::InvocationId;
use std::time::{Duration, UNIX_EPOCH};

/// The request's idempotency key and delay, validated.
#[derive(Debug, Default)]
pub(crate) struct RequestOptions {
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// `?delay=` of a `/send`.
    pub delay: Option<Duration>,
}

/// Reads and validates the idempotency key and the delay: a delay only on
/// `/send`; no idempotency key on a workflow run (the workflow id
/// deduplicates it already); both well-formed. Errors are 400.
pub(crate) fn request_options(
    headers: &HeaderMap,
    uri: &Uri,
    send: bool,
    kind: HandlerKind,
) -> Result<RequestOptions, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() => Some(k.to_string()),
            _ => return Err(ApiError::bad_request("bad idempotency-key header: expected a non-empty visible string")),
        },
    };
    if idempotency_key.is_some() && kind == HandlerKind::Workflow {
        return Err(ApiError::bad_request(
            "idempotency keys are not supported on a workflow's run handler: the workflow id deduplicates runs",
        ));
    }
    // Limit keys partition concurrency within a scope (Restate's
    // experimental vqueues); without scopes they mean nothing.
    if headers.contains_key("x-restate-limit-key") || query_param(uri, "limit-key")?.is_some() {
        return Err(ApiError::bad_request("a limit key needs a scope, and keel does not support scopes"));
    }
    let delay = match query_param(uri, "delay")? {
        None => None,
        Some(_) if !send => {
            return Err(ApiError::bad_request("a delay is only supported on a one-way send: use …/send?delay="));
        }
        Some(text) => Some(crate::duration::client_duration("delay", &text)?),
    };
    Ok(RequestOptions { idempotency_key, delay })
}

/// The decoded value of query parameter `name` (`+` is a space, as in forms).
pub(crate) fn query_param(uri: &Uri, name: &str) -> Result<Option<String>, ApiError> {
    let Some(query) = uri.query() else { return Ok(None) };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            let v = v.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&v)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request(format!("bad query parameter '{name}': not UTF-8")))?;
            return Ok(Some(decoded.into_owned()));
        }
    }
    Ok(None)
}

/// The id of a new invocation: derived for a workflow run and for an
/// idempotent request (so repeats are duplicates), else fresh (a ULID) in
/// the key's partition, or in a uniformly random one for plain services.
///
/// The random partition key is the xxh3 hash of the ULID, not a slice of
/// it: a ULID's top 48 bits are the clock, and `partition_for_key` keeps a
/// key's top bits, so its leading bits would put every keyless call of the
/// same era into partition 0.
pub(crate) fn invocation_id(
    service: &str,
    handler: &str,
    key: Option<&str>,
    kind: HandlerKind,
    idempotency_key: Option<&str>,
) -> InvocationId {
    match (key, kind, idempotency_key) {
        (Some(key), HandlerKind::Workflow, _) => idempotency::workflow_run_id(service, key),
        (_, _, Some(ik)) => idempotency::idempotent_id(service, key, handler, ik),
        (Some(key), _, None) => InvocationId::new(keel_partition::partition_key(key.as_bytes()), ulid::Ulid::new().0),
        (None, _, None) => {
            let uuid = ulid::Ulid::new().0;
            InvocationId::new(keel_partition::partition_key(&uuid.to_be_bytes()), uuid)
        }
    }
}

/// An instant (ms since the Unix epoch) in RFC 3339, as in
/// `idempotency-expires` and a delayed send's `executionTime`.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The `idempotency-expires` header value for a purge time.
pub(crate) fn expires_header(ms: u64) -> Option<HeaderValue> {
    HeaderValue::try_from(rfc3339(ms)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(uri: &str, send: bool, kind: HandlerKind, key: Option<&str>) -> Result<RequestOptions, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(k) = key {
            headers.insert("idempotency-key", HeaderValue::from_str(k).unwrap());
        }
        request_options(&headers, &uri.parse().unwrap(), send, kind)
    }

    #[test]
    fn delays_are_parsed_on_sends_only() {
        let delay = |q: &str| options(&format!("/S/h/send?{q}"), true, HandlerKind::Service, None).map(|o| o.delay);
        assert_eq!(delay("delay=PT10S").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(delay("delay=P1DT2H").unwrap(), Some(Duration::from_secs(93_600)));
        assert_eq!(delay("delay=10s").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(delay("x=1&delay=1h%2030m").unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(delay("delay=1h+30m").unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(delay("delay=500ms").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(delay("other=1").unwrap(), None);
        for bad in ["delay=soon", "delay=", "delay=P1M", "delay=%FF"] {
            let e = delay(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
        let on_call = options("/S/h?delay=10s", false, HandlerKind::Service, None).unwrap_err();
        assert!(on_call.message.contains("only supported on a one-way send"), "{}", on_call.message);
    }

    #[test]
    fn idempotency_keys_are_refused_on_workflow_runs() {
        let o = options("/S/h", false, HandlerKind::Exclusive, Some("k1")).unwrap();
        assert_eq!(o.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(options("/W/w1/run", false, HandlerKind::Workflow, Some("k1")).unwrap_err().status.as_u16(), 400);
        assert!(options("/W/w1/run", false, HandlerKind::Workflow, None).is_ok());
    }

    #[test]
    fn ids_are_derived_for_runs_and_idempotent_requests() {
        let a = invocation_id("S", "h", None, HandlerKind::Service, Some("k"));
        assert_eq!(a, invocation_id("S", "h", None, HandlerKind::Service, Some("k")));
        let run = invocation_id("W", "run", Some("w1"), HandlerKind::Workflow, None);
        assert_eq!(run, idempotency::workflow_run_id("W", "w1"));
        let keyed = invocation_id("O", "add", Some("c1"), HandlerKind::Exclusive, None);
        assert_eq!(keyed.partition_key, keel_partition::partition_key(b"c1"));
    }

    /// Keyless calls land in every partition about equally: for each count
    /// from 1 to 16, 100 ids per partition, and each partition gets between
    /// half and twice its share (a skewed key, such as a ULID's clock bits,
    /// puts them all in one). The ids round-trip through their text form
    /// with the partition key, so attaching by id finds the same partition.
    #[test]
    fn keyless_ids_spread_uniformly_over_partitions() {
        for n in 1..=16u32 {
            let mut counts = vec![0u32; n as usize];
            for _ in 0..100 * n {
                let id = invocation_id("S", "h", None, HandlerKind::Service, None);
                let parsed: InvocationId = id.to_string().parse().unwrap();
                assert_eq!(parsed, id);
                counts[keel_partition::partition_for_key(parsed.partition_key, n) as usize] += 1;
            }
            assert!(counts.iter().all(|c| (50..=200).contains(c)), "{n} partitions: {counts:?}");
        }
    }

    #[test]
    fn instants_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
