//! Renders the catalog as Restate's admin API shows it (ServiceMetadata,
//! HandlerMetadata, deployment responses), applying the server defaults
//! where neither the manifest nor an admin override sets a value.

use crate::duration::format_ms;
use keel_partition::catalog::{Catalog, ServiceRecord, is_public};
use keel_partition::idempotency::{DEFAULT_IDEMPOTENCY_RETENTION_MS, workflow_retention_ms};
use keel_protocol::manifest::{Handler, InvocationOptions, RetryPolicy, Service, ServiceType};
use serde_json::{Map, Value, json};

/// Server defaults (Restate's): inactivity timeout 1 minute, abort timeout
/// 10 minutes; the retentions' are in `keel_partition::idempotency`.
const DEFAULT_INACTIVITY_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_ABORT_TIMEOUT_MS: u64 = 600_000;

fn enum_name<T: std::fmt::Debug>(v: T) -> String {
    format!("{v:?}")
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v);
    }
}

fn retry_policy(p: &RetryPolicy) -> Value {
    json!({
        "initial_interval": format_ms(p.retry_policy_initial_interval.unwrap_or(500)),
        "exponentiation_factor": p.retry_policy_exponentiation_factor.unwrap_or(2.0),
        "max_attempts": p.retry_policy_max_attempts.or(Some(70)),
        "max_interval": format_ms(p.retry_policy_max_interval.unwrap_or(60_000)),
        "on_max_attempts": enum_name(p.retry_policy_on_max_attempts.unwrap_or(keel_protocol::manifest::OnMaxAttempts::Pause)),
    })
}

/// ServiceMetadata of one service.
pub fn service_metadata(record: &ServiceRecord, service: &Service) -> Value {
    let o = &service.options;
    let ov = &record.overrides;
    let public = is_public(record, service);
    let mut m = Map::new();
    m.insert("name".into(), json!(service.name));
    m.insert("ty".into(), json!(enum_name(service.ty)));
    let handlers: Vec<Value> = service.handlers.iter().map(|h| handler_metadata(service, h, public)).collect();
    m.insert("handlers".into(), json!(handlers));
    insert_opt(&mut m, "documentation", service.documentation.as_ref().map(|d| json!(d)));
    insert_opt(&mut m, "metadata", service.metadata.as_ref().filter(|x| !x.is_empty()).map(|x| json!(x)));
    m.insert("deployment_id".into(), json!(record.deployment_id));
    m.insert("revision".into(), json!(record.revision));
    m.insert("public".into(), json!(public));
    let idempotency =
        ov.idempotency_retention_ms.or(o.idempotency_retention).unwrap_or(DEFAULT_IDEMPOTENCY_RETENTION_MS);
    m.insert("idempotency_retention".into(), json!(format_ms(idempotency)));
    if service.ty == ServiceType::Workflow {
        let retention = workflow_retention_ms(ov, service);
        m.insert("workflow_completion_retention".into(), json!(format_ms(retention)));
    }
    insert_opt(
        &mut m,
        "journal_retention",
        ov.journal_retention_ms.or(o.journal_retention).map(|v| json!(format_ms(v))),
    );
    let inactivity = ov.inactivity_timeout_ms.or(o.inactivity_timeout).unwrap_or(DEFAULT_INACTIVITY_TIMEOUT_MS);
    m.insert("inactivity_timeout".into(), json!(format_ms(inactivity)));
    let abort = ov.abort_timeout_ms.or(o.abort_timeout).unwrap_or(DEFAULT_ABORT_TIMEOUT_MS);
    m.insert("abort_timeout".into(), json!(format_ms(abort)));
    m.insert("enable_lazy_state".into(), json!(o.enable_lazy_state.unwrap_or(false)));
    m.insert("retry_policy".into(), retry_policy(&o.retry_policy));
    if !ov.async_responses.is_empty() {
        let answers: Map<String, Value> = ov
            .async_responses
            .iter()
            .filter_map(|(h, r)| {
                let r = r.as_ref()?;
                Some((h.clone(), json!(r)))
            })
            .collect();
        m.insert("async_responses".into(), Value::Object(answers));
    }
    Value::Object(m)
}

fn handler_overrides(m: &mut Map<String, Value>, o: &InvocationOptions) {
    let dur = |v: Option<u64>| v.map(|ms| json!(format_ms(ms)));
    insert_opt(m, "idempotency_retention", dur(o.idempotency_retention));
    insert_opt(m, "journal_retention", dur(o.journal_retention));
    insert_opt(m, "inactivity_timeout", dur(o.inactivity_timeout));
    insert_opt(m, "abort_timeout", dur(o.abort_timeout));
    insert_opt(m, "enable_lazy_state", o.enable_lazy_state.map(|v| json!(v)));
    // Only the fields the handler overrides; the service's policy fills the rest.
    let p = &o.retry_policy;
    let mut policy = Map::new();
    insert_opt(&mut policy, "initial_interval", dur(p.retry_policy_initial_interval));
    insert_opt(&mut policy, "exponentiation_factor", p.retry_policy_exponentiation_factor.map(|v| json!(v)));
    insert_opt(&mut policy, "max_attempts", p.retry_policy_max_attempts.map(|v| json!(v)));
    insert_opt(&mut policy, "max_interval", dur(p.retry_policy_max_interval));
    insert_opt(&mut policy, "on_max_attempts", p.retry_policy_on_max_attempts.map(|v| json!(enum_name(v))));
    if !policy.is_empty() {
        m.insert("retry_policy".into(), Value::Object(policy));
    }
}

/// HandlerMetadata of one handler of `service`.
pub fn handler_metadata(service: &Service, h: &Handler, service_public: bool) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(h.name));
    insert_opt(&mut m, "ty", h.effective_ty(service.ty).map(|t| json!(enum_name(t))));
    insert_opt(&mut m, "documentation", h.documentation.as_ref().map(|d| json!(d)));
    insert_opt(&mut m, "metadata", h.metadata.as_ref().filter(|x| !x.is_empty()).map(|x| json!(x)));
    handler_overrides(&mut m, &h.options);
    let public = service_public && !h.options.ingress_private.unwrap_or(false);
    m.insert("public".into(), json!(public));
    let input = h.effective_input();
    let input_description = match (&input.content_type, input.required.unwrap_or(false)) {
        (None, _) => "none".to_string(),
        (Some(ct), true) => format!("value with content-type matching {ct}"),
        (Some(ct), false) => format!("one of [\"none\", \"value with content-type matching {ct}\"]"),
    };
    m.insert("input_description".into(), json!(input_description));
    let output = h.effective_output();
    let output_description = match &output.content_type {
        None => "none".to_string(),
        Some(ct) => format!("value with content-type {ct}"),
    };
    m.insert("output_description".into(), json!(output_description));
    insert_opt(&mut m, "input_json_schema", input.json_schema);
    insert_opt(&mut m, "output_json_schema", output.json_schema);
    Value::Object(m)
}

/// A deployment as `GET /deployments` lists it (services as name/revision)
/// or, with `detailed`, as `GET /deployments/{id}` shows it (full services).
pub fn deployment_json(view: &Catalog, id: &str, detailed: bool) -> Option<Value> {
    let (record, manifest) = view.deployments.get(id)?;
    let services: Vec<Value> = manifest
        .services
        .iter()
        .filter_map(|s| {
            let current = view.services.get(&s.name).filter(|r| r.deployment_id == *id);
            match (detailed, current) {
                (true, Some(r)) => Some(service_metadata(r, s)),
                (false, Some(r)) => Some(json!({ "name": s.name, "revision": r.revision })),
                // A newer deployment serves this service now.
                (_, None) => None,
            }
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(record.id));
    m.insert("uri".into(), json!(record.uri));
    m.insert("protocol_type".into(), json!(enum_name(manifest.protocol_mode)));
    m.insert("http_version".into(), json!(if record.use_http_11 { "HTTP/1.1" } else { "HTTP/2.0" }));
    if !record.additional_headers.is_empty() {
        m.insert("additional_headers".into(), json!(record.additional_headers));
    }
    if !record.metadata.is_empty() {
        m.insert("metadata".into(), json!(record.metadata));
    }
    m.insert("created_at".into(), json!(rfc3339(record.created_at_ms)));
    m.insert("min_protocol_version".into(), json!(manifest.min_protocol_version));
    m.insert("max_protocol_version".into(), json!(manifest.max_protocol_version));
    insert_opt(&mut m, "sdk_version", record.sdk_version.as_ref().map(|v| json!(v)));
    m.insert("services".into(), json!(services));
    Some(Value::Object(m))
}

/// RFC 3339 UTC timestamp of a Unix time in milliseconds.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
