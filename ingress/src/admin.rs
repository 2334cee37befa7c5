//! The admin API (port 9070): cluster introspection and, for now, direct
//! edits of virtual-object state (as Restate's `POST /services/{service}/state`).

use crate::api::ClusterApi;
use crate::auth;
use crate::body::json_body;
use crate::deployments::{self, AdminCtx};
use crate::error::ApiError;
use crate::error::check_health;
use crate::extract::Path;
use crate::interventions;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{any, get, patch, post};
use axum::{Json, Router};
use keel_endpoint::EndpointClient;
use keel_partition::{Command, Envelope, Query, QueryResult, Response, StateMap, partition_for_key, partition_key};
use serde::Deserialize;
use std::sync::Arc;

/// Body of `POST /services/{service}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStateRequest {
    object_key: String,
    new_state: StateMap,
    #[serde(default)]
    version: Option<String>,
    /// Accepted for compatibility with Restate's request; keel has no scopes.
    #[serde(default)]
    #[allow(dead_code)]
    scope: Option<String>,
}

/// Settings of the admin API.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Largest accepted request body (413 above it).
    pub max_body_bytes: usize,
    /// When set, every route but `/health` requires
    /// `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
}

/// The admin router. Routes are served unprefixed and under `/v2`, `/v3`
/// and `/v4` (the `restate` CLI negotiates through `GET /version` and then
/// uses `/v4`); `/v1` is refused. The version changes one default: `force`
/// of `POST /deployments` is true on `/v2` only.
pub fn admin_router<C: ClusterApi>(cluster: Arc<C>, options: AdminOptions) -> Router {
    let endpoints = EndpointClient::new();
    let versioned = |force_by_default: bool| -> Router {
        let ctx = Arc::new(AdminCtx { cluster: cluster.clone(), endpoints: endpoints.clone(), force_by_default });
        Router::new()
            .route("/version", get(version))
            .route("/cluster", get(cluster_table::<C>))
            .route("/metrics", get(metrics::<C>))
            .route("/deployments", post(deployments::register::<C>).get(deployments::list::<C>))
            .route("/deployments/{id}", get(deployments::show::<C>).delete(deployments::delete::<C>))
            .route("/services", get(deployments::list_services::<C>))
            .route("/services/{service}", get(deployments::show_service::<C>).patch(deployments::patch_service::<C>))
            .route("/services/{service}/handlers", get(deployments::handlers::<C>))
            .route("/services/{service}/handlers/{handler}", get(deployments::handler::<C>))
            .route("/invocations/{id}", get(interventions::show::<C>).delete(interventions::delete::<C>))
            .route("/invocations/{id}/{action}", patch(interventions::patch::<C>))
            .route("/services/{service}/state", post(set_state::<C>))
            .route("/services/{service}/state/{key}", get(get_state::<C>))
            .with_state(ctx)
    };
    let protected = Router::new()
        .merge(versioned(false))
        .nest("/v2", versioned(true))
        .nest("/v3", versioned(false))
        .nest("/v4", versioned(false))
        .route("/v1/{*rest}", any(|| async { ApiError::bad_request("Unsupported Admin API version v1; use v2 to v4") }))
        .fallback(|| async { ApiError::not_found("no such admin endpoint") });
    let health = ["/health", "/v2/health", "/v3/health", "/v4/health"]
        .into_iter()
        .fold(Router::new(), |r, path| r.route(path, get(health::<C>)))
        .with_state(cluster);
    auth::protect(json_405(protected), options.token.as_deref(), IntoResponse::into_response)
        .merge(json_405(health))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
}

/// `GET /health`: 200 while the node can serve, 503 with what is wrong
/// otherwise (a hosted partition stopped, the storage failed).
async fn health<C: ClusterApi>(State(cluster): State<Arc<C>>) -> Result<StatusCode, ApiError> {
    check_health(&*cluster)?;
    Ok(StatusCode::OK)
}

/// Answers a wrong method on any route of `router` with a JSON 405. Set on
/// each part before it is merged (and before `protect`), as axum applies it
/// to the routes present at the time.
fn json_405(router: Router) -> Router {
    router.method_not_allowed_fallback(|| async {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
    })
}

/// `GET /version`: what the `restate` CLI negotiates with, in the shape of
/// Restate's `VersionInformation`. `features` (Restate's experimental
/// feature flags, name → enabled) is required by the CLI's parser (1.7:
/// without it the CLI falls back to unversioned paths); keel has none.
/// `ingress_endpoint` is optional there and left out: the admin router does
/// not know the ingress's advertised address.
async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "min_admin_api_version": 2,
        "max_admin_api_version": 4,
        "features": {},
    }))
}

fn partition_of<C: ClusterApi>(cluster: &C, object_key: &str) -> u32 {
    partition_for_key(partition_key(object_key.as_bytes()), cluster.partition_count())
}

async fn cluster_table<C: ClusterApi>(State(ctx): State<Arc<AdminCtx<C>>>) -> Json<serde_json::Value> {
    Json(ctx.cluster.cluster().await)
}

async fn metrics<C: ClusterApi>(State(ctx): State<Arc<AdminCtx<C>>>) -> HttpResponse {
    let cluster = &ctx.cluster;
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], cluster.metrics_text())
        .into_response()
}

async fn set_state<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HttpResponse, ApiError> {
    let cluster = &ctx.cluster;
    let req: SetStateRequest = json_body(&headers, body)?;
    validate_name("service", &service)?;
    let partition = partition_of(&**cluster, &req.object_key);
    let command = Command::SetState {
        service,
        object_key: req.object_key,
        new_state: req.new_state,
        expected_version: req.version,
    };
    match cluster.propose(partition, Envelope::client(command)).await? {
        Response::StateSet { version } => {
            Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "version": version }))).into_response())
        }
        Response::VersionMismatch { expected, actual } => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("state version mismatch: expected '{expected}', current is '{actual}'"),
        )),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected response {other:?}"))),
    }
}

async fn get_state<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path((service, object_key)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cluster = &ctx.cluster;
    validate_name("service", &service)?;
    let partition = partition_of(&**cluster, &object_key);
    let query = Query::GetState { service: service.clone(), object_key: object_key.clone() };
    let QueryResult::State { state, version } = cluster.read(partition, query).await? else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state query answered with something else"));
    };
    Ok(Json(serde_json::json!({
        "service": service,
        "object_key": object_key,
        "partition": partition,
        "version": version,
        "state": state,
    })))
}

fn validate_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("invalid {what} name '{}'", name.escape_default())));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
