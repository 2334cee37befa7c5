//! Admin API for the service catalog: deployments (register by discovery,
//! list, show, delete) and services (list, show, handlers, patch), with
//! Restate's shapes and status codes.
//!
//! The catalog lives in the metadata group, which every node replicates.
//! Every write here is one catalog command proposed to that group's leader,
//! and the state machine decides it (a conflicting or breaking change is
//! refused there, so two admins racing cannot both win); reads are
//! linearizable reads through the leader, so an admin sees its own write at
//! once. Discovery (asking the SDK endpoint for its manifest) is the one
//! step with I/O, and it happens here, before proposing: the log records
//! the manifest as discovered, so every replica derives the same services
//! from it without calling the endpoint again.

use crate::api::ClusterApi;
use crate::body::{json_body, null_as_default};
use crate::duration::{client_duration, millis, now_ms};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::schema_json::{deployment_json, handler_metadata, service_metadata};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use keel_endpoint::{EndpointAddress, EndpointClient};
use keel_partition::catalog::{
    self, AsyncResponse, Catalog, CatalogData, CatalogOutcome, DeploymentRecord, ServiceOverrides,
};
use keel_partition::{Command, Envelope, METADATA_GROUP, QueryResult, Response};
use keel_protocol::manifest::ServiceType;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long discovery of a new deployment may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared state of the admin routes of one API version.
pub struct AdminCtx<C> {
    /// The cluster.
    pub cluster: Arc<C>,
    /// Client for SDK endpoints (discovery).
    pub endpoints: EndpointClient,
    /// `force` default of `POST /deployments`: true on `/v2`, false elsewhere.
    pub force_by_default: bool,
}

type Ctx<C> = State<Arc<AdminCtx<C>>>;

/// The catalog as the metadata group's leader has it (a linearizable read).
/// A stored manifest this version cannot read is logged and skipped.
async fn load_catalog<C: ClusterApi>(cluster: &C) -> Result<Catalog, ApiError> {
    match cluster.read(METADATA_GROUP, keel_partition::Query::Catalog).await? {
        QueryResult::Catalog(data) => {
            let catalog = Catalog::new(data);
            for (id, e) in &catalog.unreadable {
                tracing::error!(deployment = %id, "stored manifest unreadable: {e}");
            }
            Ok(catalog)
        }
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected catalog answer {other:?}"))),
    }
}

/// Proposes a catalog command and returns the state machine's verdict.
async fn propose<C: ClusterApi>(cluster: &C, command: Command) -> Result<CatalogOutcome, ApiError> {
    match cluster.propose(METADATA_GROUP, Envelope::client(command)).await? {
        Response::Catalog(outcome) => Ok(outcome),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected catalog answer {other:?}"))),
    }
}

/// The HTTP error for a refused catalog command.
fn outcome_error(outcome: CatalogOutcome) -> ApiError {
    match outcome {
        CatalogOutcome::NotFound(m) => ApiError::not_found(m),
        CatalogOutcome::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
        CatalogOutcome::Invalid(m) => ApiError::bad_request(m),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected catalog outcome {other:?}")),
    }
}

/// Body of `POST /deployments`. Every optional field may also be `null`
/// (the `restate` CLI sends `"additional_headers": null`).
#[derive(Debug, Deserialize)]
struct RegisterRequest {
    uri: Option<String>,
    arn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    additional_headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    use_http_11: bool,
    force: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    breaking: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    dry_run: bool,
}

fn endpoint_address(req: &RegisterRequest) -> Result<(String, EndpointAddress), ApiError> {
    if req.arn.is_some() {
        return Err(ApiError::bad_request("Lambda deployments (arn) are not supported by keel; register an HTTP uri"));
    }
    let raw = req.uri.as_deref().ok_or_else(|| ApiError::bad_request("missing field `uri`"))?;
    let uri: Uri = raw.parse().map_err(|e| ApiError::bad_request(format!("invalid uri '{raw}': {e}")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(ApiError::bad_request(format!("invalid uri '{raw}': expected http://host[:port][/path]")));
    }
    let mut address = EndpointAddress::new(uri);
    address.use_http_11 = req.use_http_11;
    for (name, value) in &req.additional_headers {
        let n = HeaderName::try_from(name.as_str())
            .map_err(|_| ApiError::bad_request(format!("invalid header name '{name}' in additional_headers")))?;
        let v = HeaderValue::try_from(value.as_str())
            .map_err(|_| ApiError::bad_request(format!("invalid value of header '{name}' in additional_headers")))?;
        address.additional_headers.push((n, v));
    }
    Ok((raw.trim_end_matches('/').to_string(), address))
}

/// `POST /deployments`: discover the endpoint, validate, register.
///
/// Registering the same endpoint again with the same services is 200 with
/// the existing id; a changed manifest needs `force` (or is a new
/// revision of its services, per Restate's rules). `dry_run` runs the same
/// check against a copy of the current catalog and stores nothing.
pub async fn register<C: ClusterApi>(
    State(ctx): Ctx<C>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HttpResponse, ApiError> {
    let req: RegisterRequest = json_body(&headers, body)?;
    let (uri, address) = endpoint_address(&req)?;
    let discovered = ctx.endpoints.discover(&address, DISCOVERY_TIMEOUT).await.map_err(|e| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError { restate_code: Some(e.restate_code()), ..ApiError::new(status, e.to_string()) }
    })?;
    let manifest_json = serde_json::to_vec(&discovered.manifest)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("manifest encoding: {e}")))?;
    let record = DeploymentRecord {
        id: new_deployment_id(),
        uri,
        additional_headers: req.additional_headers.clone(),
        metadata: req.metadata.clone(),
        use_http_11: req.use_http_11,
        sdk_version: discovered.sdk_version.clone(),
        created_at_ms: now_ms(),
        manifest_json,
    };
    let force = req.force.unwrap_or(ctx.force_by_default);
    let command = Command::RegisterDeployment { record: record.clone(), force, breaking: req.breaking };
    let outcome = if req.dry_run {
        let current = load_catalog(&*ctx.cluster).await?;
        let data = CatalogData {
            deployments: current.deployments.into_iter().map(|(id, (r, _))| (id, r)).collect(),
            services: current.services,
        };
        catalog::register(&mut catalog::to_store(&data), &record, force, req.breaking)
    } else {
        propose(&*ctx.cluster, command).await?
    };
    let CatalogOutcome::Registered { id, created } = outcome else { return Err(outcome_error(outcome)) };
    let view = load_catalog(&*ctx.cluster).await?;
    let services: Vec<Value> = discovered
        .manifest
        .services
        .iter()
        .map(|s| match view.service(&s.name).filter(|(r, _)| r.deployment_id == id) {
            Some((r, schema)) => service_metadata(r, schema),
            None => service_metadata(
                &keel_partition::catalog::ServiceRecord {
                    revision: view.services.get(&s.name).map_or(1, |r| r.revision + 1),
                    deployment_id: id.clone(),
                    overrides: ServiceOverrides::default(),
                },
                s,
            ),
        })
        .collect();
    let mut body = json!({
        "id": id,
        "services": services,
        "min_protocol_version": discovered.manifest.min_protocol_version,
        "max_protocol_version": discovered.manifest.max_protocol_version,
    });
    if let Some(v) = &discovered.sdk_version {
        body["sdk_version"] = json!(v);
    }
    // A dry run answers what the registration would (as Restate does): 201
    // for a new deployment, with the id it would get; nothing is stored.
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(header::LOCATION, format!("deployments/{id}"))], Json(body)).into_response())
}

/// `dp_1` + 22 base62 digits of a ULID: unique, and sortable by creation time.
fn new_deployment_id() -> String {
    const BASE62: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut n = ulid::Ulid::new().0;
    let mut digits = [b'0'; 22];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    format!("dp_1{}", String::from_utf8_lossy(&digits))
}

/// `GET /deployments`.
pub async fn list<C: ClusterApi>(State(ctx): Ctx<C>) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    let deployments: Vec<Value> = view.deployments.keys().filter_map(|id| deployment_json(&view, id, false)).collect();
    Ok(Json(json!({ "deployments": deployments })))
}

/// `GET /deployments/{id}`.
pub async fn show<C: ClusterApi>(State(ctx): Ctx<C>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    deployment_json(&view, &id, true).map(Json).ok_or_else(|| ApiError::not_found(format!("deployment {id} not found")))
}

/// Query of `DELETE /deployments/{id}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /deployments/{id}?force=true`.
pub async fn delete<C: ClusterApi>(
    State(ctx): Ctx<C>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    if !q.force {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "graceful deletion of deployments is not supported; use ?force=true",
        ));
    }
    match propose(&*ctx.cluster, Command::RemoveDeployment { id }).await? {
        CatalogOutcome::Removed => Ok(StatusCode::ACCEPTED),
        other => Err(outcome_error(other)),
    }
}

/// `GET /services`.
pub async fn list_services<C: ClusterApi>(State(ctx): Ctx<C>) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    // ServiceMetadata of every service, ordered by name.
    let services: Vec<Value> =
        view.services.keys().filter_map(|n| view.service(n)).map(|(r, s)| service_metadata(r, s)).collect();
    Ok(Json(json!({ "services": services })))
}

/// A service and its schema, or 404.
fn find_service<'a>(
    view: &'a Catalog,
    name: &str,
) -> Result<(&'a catalog::ServiceRecord, &'a keel_protocol::manifest::Service), ApiError> {
    view.service(name).ok_or_else(|| ApiError::not_found(format!("service '{name}' not found")))
}

/// `GET /services/{service}`.
pub async fn show_service<C: ClusterApi>(
    State(ctx): Ctx<C>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    let (record, service) = find_service(&view, &name)?;
    Ok(Json(service_metadata(record, service)))
}

/// `GET /services/{service}/handlers`.
pub async fn handlers<C: ClusterApi>(State(ctx): Ctx<C>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    let (record, service) = find_service(&view, &name)?;
    let meta = service_metadata(record, service);
    Ok(Json(json!({ "handlers": meta["handlers"] })))
}

/// `GET /services/{service}/handlers/{handler}`.
pub async fn handler<C: ClusterApi>(
    State(ctx): Ctx<C>,
    Path((name, handler)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let view = load_catalog(&*ctx.cluster).await?;
    let (record, service) = find_service(&view, &name)?;
    let h = service
        .handlers
        .iter()
        .find(|h| h.name == handler)
        .ok_or_else(|| ApiError::not_found(format!("handler '{name}/{handler}' not found")))?;
    let public = service_metadata(record, service)["public"].as_bool().unwrap_or(true);
    Ok(Json(handler_metadata(service, h, public)))
}

/// Body of `PATCH /services/{service}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchServiceRequest {
    public: Option<bool>,
    idempotency_retention: Option<String>,
    workflow_completion_retention: Option<String>,
    journal_retention: Option<String>,
    inactivity_timeout: Option<String>,
    abort_timeout: Option<String>,
    /// keel's extension: per handler, the answer of a call handed off to
    /// async (`null` removes it; `"async_responses": null` changes none).
    #[serde(default, deserialize_with = "null_as_default")]
    async_responses: BTreeMap<String, Option<AsyncResponseRequest>>,
}

/// A custom async answer as the admin API takes it (`null` fields are
/// absent: status 202, no headers, empty body).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AsyncResponseRequest {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default, deserialize_with = "null_as_default")]
    headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    body: String,
}

/// A duration field of the request in ms, bounded (a 400 naming `field`
/// otherwise): the partition adds retentions to completion times.
fn duration_ms(field: &str, value: &Option<String>) -> Result<Option<u64>, ApiError> {
    value.as_deref().map(|v| client_duration(field, v).map(millis)).transpose()
}

/// `PATCH /services/{service}`.
pub async fn patch_service<C: ClusterApi>(
    State(ctx): Ctx<C>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: PatchServiceRequest = json_body(&headers, body)?;
    let patch = ServiceOverrides {
        public: req.public,
        idempotency_retention_ms: duration_ms("idempotency_retention", &req.idempotency_retention)?,
        workflow_completion_retention_ms: duration_ms(
            "workflow_completion_retention",
            &req.workflow_completion_retention,
        )?,
        journal_retention_ms: duration_ms("journal_retention", &req.journal_retention)?,
        inactivity_timeout_ms: duration_ms("inactivity_timeout", &req.inactivity_timeout)?,
        abort_timeout_ms: duration_ms("abort_timeout", &req.abort_timeout)?,
        async_responses: req
            .async_responses
            .into_iter()
            .map(|(h, r)| {
                (h, r.map(|r| AsyncResponse { status: r.status.unwrap_or(202), headers: r.headers, body: r.body }))
            })
            .collect(),
    };
    let view = load_catalog(&*ctx.cluster).await?;
    let (_, service) = find_service(&view, &name)?;
    for (handler, response) in &patch.async_responses {
        if !service.handlers.iter().any(|h| &h.name == handler) {
            return Err(ApiError::bad_request(format!("async_responses: '{name}' has no handler '{handler}'")));
        }
        if let Some(r) = response {
            crate::handoff::check(handler, r)?;
        }
    }
    if patch.workflow_completion_retention_ms.is_some() && service.ty != ServiceType::Workflow {
        return Err(ApiError::bad_request(format!(
            "workflow_completion_retention applies to workflows only; '{name}' is a {:?}",
            service.ty
        )));
    }
    if patch != ServiceOverrides::default() {
        match propose(&*ctx.cluster, Command::UpdateService { name: name.clone(), patch }).await? {
            CatalogOutcome::ServiceUpdated => {}
            other => return Err(outcome_error(other)),
        }
    }
    let view = load_catalog(&*ctx.cluster).await?;
    let (record, service) = find_service(&view, &name)?;
    Ok(Json(service_metadata(record, service)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn deployment_ids_have_restate_shape() {
        let a = super::new_deployment_id();
        let b = super::new_deployment_id();
        assert!(a.starts_with("dp_1") && a.len() == 26, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
