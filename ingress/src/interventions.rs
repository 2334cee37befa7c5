//! Admin API for running invocations: cancel, kill and purge
//! (`PATCH /invocations/{id}/cancel|kill|purge`, and the deprecated
//! `DELETE /invocations/{id}?mode=`), with Restate's status codes.

use crate::api::ClusterApi;
use crate::deployments::AdminCtx;
use crate::error::ApiError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keel_partition::invocation::{Intervention, InvocationOutcome, Status};
use keel_partition::{Command, Envelope, Response, partition_for_key};
use keel_protocol::InvocationId;
use serde::Deserialize;
use std::sync::Arc;

fn intervention(name: &str) -> Result<Intervention, ApiError> {
    match name {
        "cancel" => Ok(Intervention::Cancel),
        "kill" => Ok(Intervention::Kill),
        "purge" => Ok(Intervention::Purge),
        other => Err(ApiError::not_found(format!("no invocation action '{other}': use cancel, kill or purge"))),
    }
}

async fn apply<C: ClusterApi>(cluster: &C, raw_id: &str, what: Intervention) -> Result<StatusCode, ApiError> {
    let id: InvocationId =
        raw_id.parse().map_err(|e| ApiError::bad_request(format!("bad invocation id '{raw_id}': {e}")))?;
    let partition = partition_for_key(id.partition_key, cluster.partition_count());
    let command = Command::Intervene { id: id.to_bytes(), what, completed_at_ms: crate::duration::now_ms() };
    match cluster.propose(partition, Envelope::client(command)).await? {
        Response::Invocation(InvocationOutcome::NotFound) => {
            Err(ApiError::not_found(format!("invocation {id} not found")))
        }
        Response::Invocation(InvocationOutcome::NotRunning(Status::Completed(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("invocation {id} has already completed")))
        }
        Response::Invocation(InvocationOutcome::NotRunning(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("invocation {id} has not completed, so it cannot be purged"),
        )),
        // The cancel signal was delivered; the handler finishes on its own.
        Response::Invocation(InvocationOutcome::Appended { .. }) => Ok(StatusCode::ACCEPTED),
        Response::Invocation(_) => Ok(StatusCode::OK),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected answer {other:?}"))),
    }
}

/// `PATCH /invocations/{id}/{cancel|kill|purge}`.
pub async fn patch<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    apply(&*ctx.cluster, &id, intervention(&action)?).await
}

/// Query of the deprecated `DELETE /invocations/{id}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    mode: Option<String>,
}

/// `DELETE /invocations/{id}?mode=cancel|kill|purge` (deprecated; cancel by
/// default) → 202.
pub async fn delete<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let what = intervention(q.mode.as_deref().unwrap_or("cancel"))?;
    apply(&*ctx.cluster, &id, what).await.map(|_| StatusCode::ACCEPTED)
}
