//! Attaching to an invocation, or peeking at its output, by what the caller
//! knows: the id, the idempotency key with its target, or the workflow id.
//!
//! * `GET /restate/invocation/{service}/{handler}/{idempotencyKey}/attach|output`
//! * `GET /restate/invocation/{object}/{key}/{handler}/{idempotencyKey}/attach|output`
//! * `GET /restate/workflow/{workflow}/{id}/attach|output`
//! * `GET /restate/attach/{id}`, `GET /restate/output/{id}`, and
//!   `POST /restate/attach|output|lookup` with a JSON target (Restate 1.7's
//!   newer API).
//!
//! The id of an idempotent request or a workflow run is derived from its
//! target, so each of these resolves to an id without a lookup, and then
//! behaves exactly like `/restate/invocation/{id}/…`.

use crate::api::ClusterApi;
use crate::body::json_body;
use crate::error::ApiError;
use crate::extract::Path;
use crate::handoff;
use crate::handoff::AttachWait;
use crate::reply::{ingress_error, result_response};
use crate::state::IngressState;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keel_partition::idempotency::{idempotent_id, workflow_run_id};
use keel_partition::invocation::Status;
use keel_partition::wait::Waited;
use keel_partition::{Query, QueryResult, partition_for_key};
use keel_protocol::InvocationId;
use serde::Deserialize;
use std::sync::Arc;

/// The routes of this module (state: the cluster).
pub(crate) fn routes<C: ClusterApi>() -> Router<IngressState<C>> {
    Router::new()
        .route("/restate/invocation/{id}/{action}", get(invocation_result::<C>))
        .route("/restate/invocation/{service}/{handler}/{idempotency_key}/{action}", get(by_idempotency_key::<C>))
        .route(
            "/restate/invocation/{service}/{key}/{handler}/{idempotency_key}/{action}",
            get(by_keyed_idempotency_key::<C>),
        )
        .route("/restate/workflow/{workflow}/{key}/{action}", get(by_workflow::<C>))
        .route("/restate/attach/{id}", get(|s, w, Path(id)| by_id::<C>(s, w, id, "attach")))
        .route("/restate/output/{id}", get(|s, w, Path(id)| by_id::<C>(s, w, id, "output")))
        .route("/restate/attach", post(|s, w, h, b| by_target::<C>(s, w, h, b, "attach")))
        .route("/restate/output", post(|s, w, h, b| by_target::<C>(s, w, h, b, "output")))
        .route("/restate/lookup", post(|s, w, h, b| by_target::<C>(s, w, h, b, "lookup")))
}

async fn by_idempotency_key<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    Path((service, handler, key, action)): Path<(String, String, String, String)>,
) -> Response {
    result_of(&*cluster, idempotent_id(&service, None, &handler, &key), &action, &wait).await
}

async fn by_keyed_idempotency_key<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    Path((service, key, handler, ikey, action)): Path<(String, String, String, String, String)>,
) -> Response {
    result_of(&*cluster, idempotent_id(&service, Some(&key), &handler, &ikey), &action, &wait).await
}

async fn by_workflow<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    Path((workflow, key, action)): Path<(String, String, String)>,
) -> Response {
    result_of(&*cluster, workflow_run_id(&workflow, &key), &action, &wait).await
}

async fn by_id<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    raw_id: String,
    action: &str,
) -> Response {
    match raw_id.parse::<InvocationId>() {
        Ok(id) => result_of(&*cluster, id, action, &wait).await,
        Err(_) => ingress_error(ApiError::bad_request(format!("bad invocation id '{raw_id}'"))),
    }
}

/// The body of `POST /restate/attach|output|lookup`.
#[derive(Debug, Deserialize)]
#[serde(tag = "target", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum Target {
    Invocation {
        invocation_id: String,
    },
    IdempotentInvocation {
        service: String,
        key: Option<String>,
        handler: String,
        idempotency_key: String,
        /// Scopes need Restate's experimental vqueues; keel accepts none.
        scope: Option<String>,
    },
    Workflow {
        workflow_name: String,
        workflow_key: String,
        scope: Option<String>,
    },
}

async fn by_target<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    action: &str,
) -> Response {
    let target: Target = match json_body(&headers, body) {
        Ok(t) => t,
        Err(e) => return ingress_error(e),
    };
    let id = match target {
        Target::IdempotentInvocation { scope: Some(_), .. } | Target::Workflow { scope: Some(_), .. } => {
            return ingress_error(ApiError::bad_request("scopes are not supported by keel"));
        }
        Target::Invocation { invocation_id } => match invocation_id.parse::<InvocationId>() {
            Ok(id) => id,
            Err(_) => return ingress_error(ApiError::bad_request(format!("bad invocation id '{invocation_id}'"))),
        },
        Target::IdempotentInvocation { service, key, handler, idempotency_key, scope: None } => {
            idempotent_id(&service, key.as_deref(), &handler, &idempotency_key)
        }
        Target::Workflow { workflow_name, workflow_key, scope: None } => workflow_run_id(&workflow_name, &workflow_key),
    };
    if action != "lookup" {
        return result_of(&*cluster, id, action, &wait).await;
    }
    let partition = partition_for_key(id.partition_key, cluster.partition_count());
    match cluster.read(partition, Query::Invocation(id.to_bytes())).await {
        Ok(QueryResult::Invocation(Some(_))) => {
            Json(serde_json::json!({ "invocationId": id.to_string() })).into_response()
        }
        Ok(_) => ingress_error(ApiError::not_found("not found")),
        Err(e) => e.into(),
    }
}

/// Adds `idempotency-expires` (when the retained result will be purged) to
/// the answer of an idempotent request or a workflow run.
pub(crate) async fn with_expiry<C: ClusterApi>(
    cluster: &C,
    partition: u32,
    id: &InvocationId,
    mut response: Response,
) -> Response {
    if let Ok(QueryResult::Expiry(Some(at))) = cluster.read(partition, Query::Expiry(id.to_bytes())).await
        && let Some(value) = crate::idempotency::expires_header(at)
    {
        response.headers_mut().insert("idempotency-expires", value);
    }
    response
}

/// `GET /restate/invocation/{id}/attach|output`: see [`result_of`].
async fn invocation_result<C: ClusterApi>(
    State(cluster): State<Arc<C>>,
    wait: AttachWait,
    Path((raw_id, action)): Path<(String, String)>,
) -> Response {
    let Ok(id) = raw_id.parse::<InvocationId>() else {
        return ingress_error(ApiError::bad_request(format!("bad invocation id '{raw_id}'")));
    };
    result_of(&*cluster, id, &action, &wait).await
}

/// `attach` waits for the invocation's result as `wait` allows (then 202
/// with `Location` the same URL); `output` answers at once: the result,
/// 470 "not ready" while it runs, 404 "not found" if unknown (never
/// created, or its retention expired).
async fn result_of<C: ClusterApi>(cluster: &C, id: InvocationId, action: &str, wait: &AttachWait) -> Response {
    let partition = partition_for_key(id.partition_key, cluster.partition_count());
    let id_header = HeaderValue::try_from(id.to_string()).unwrap_or(HeaderValue::from_static("invalid"));
    let not_found = || ingress_error(ApiError::not_found("not found"));
    let json = Some("application/json".to_string());
    match action {
        "attach" => match cluster.attach(partition, id.to_bytes(), wait.policy).await {
            Ok(Some(Waited::Done(result))) => result_response(result, id_header, json, false),
            Ok(Some(Waited::Pending)) => handoff::accepted(&id, &wait.location),
            Ok(None) => not_found(),
            Err(e) => e.into(),
        },
        "output" => match cluster.read(partition, Query::Invocation(id.to_bytes())).await {
            Ok(QueryResult::Invocation(Some(Status::Completed(result)))) => {
                result_response(result, id_header, json, false)
            }
            Ok(QueryResult::Invocation(Some(_))) => {
                let status = StatusCode::from_u16(470).unwrap_or(StatusCode::CONFLICT);
                ingress_error(ApiError::new(status, "not ready"))
            }
            Ok(_) => not_found(),
            Err(e) => e.into(),
        },
        other => ingress_error(ApiError::not_found(format!("no invocation endpoint '{other}': use attach or output"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_restate_writes_them() {
        let t: Target = serde_json::from_str(
            r#"{"target":"idempotentInvocation","service":"S","handler":"h","idempotencyKey":"k"}"#,
        )
        .unwrap();
        assert!(
            matches!(t, Target::IdempotentInvocation { key: None, ref idempotency_key, .. } if idempotency_key == "k")
        );
        let t: Target = serde_json::from_str(r#"{"target":"workflow","workflowName":"W","workflowKey":"w1"}"#).unwrap();
        assert!(matches!(t, Target::Workflow { ref workflow_key, .. } if workflow_key == "w1"));
        let t: Target = serde_json::from_str(r#"{"target":"invocation","invocationId":"inv_1"}"#).unwrap();
        assert!(matches!(t, Target::Invocation { .. }));
        assert!(serde_json::from_str::<Target>(r#"{"target":"other"}"#).is_err());
    }
}
