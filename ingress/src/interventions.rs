//! Admin API for invocations: cancel, kill, purge, pause and resume
//! (`PATCH /invocations/{id}/{action}`, and the deprecated
//! `DELETE /invocations/{id}?mode=`) with Restate's status codes, and
//! `GET /invocations/{id}`, keel's view of one invocation's status (Restate
//! shows it through SQL introspection, which keel does not have).

use crate::api::ClusterApi;
use crate::deployments::AdminCtx;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keel_partition::invocation::{Intervention, InvocationOutcome, InvocationResult, ResumeDeployment, Status};
use keel_partition::{Command, Envelope, METADATA_GROUP, QueryResult, Response, partition_for_key};
use keel_protocol::InvocationId;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The actions of `PATCH /invocations/{id}/{action}`.
enum Action {
    Intervene(Intervention),
    Resume(ResumeDeployment),
}

fn intervention(name: &str) -> Result<Intervention, ApiError> {
    match name {
        "cancel" => Ok(Intervention::Cancel),
        "kill" => Ok(Intervention::Kill),
        "purge" => Ok(Intervention::Purge),
        "pause" => Ok(Intervention::Pause),
        other => Err(ApiError::not_found(format!(
            "no invocation action '{other}': use cancel, kill, purge, pause or resume"
        ))),
    }
}

fn parse_id(raw_id: &str) -> Result<InvocationId, ApiError> {
    raw_id.parse().map_err(|e| ApiError::bad_request(format!("bad invocation id '{raw_id}': {e}")))
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, message)
}

async fn apply<C: ClusterApi>(cluster: &C, raw_id: &str, action: Action) -> Result<StatusCode, ApiError> {
    let id = parse_id(raw_id)?;
    let partition = partition_for_key(id.partition_key, cluster.partition_count());
    let (command, what) = match action {
        Action::Intervene(what) => {
            let completed_at_ms = crate::duration::now_ms();
            (Command::Intervene { id: id.to_bytes(), what, completed_at_ms }, Some(what))
        }
        Action::Resume(deployment) => (Command::Resume { id: id.to_bytes(), deployment }, None),
    };
    let Response::Invocation(outcome) = cluster.propose(partition, Envelope::client(command)).await? else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer to an invocation command"));
    };
    match (what, outcome) {
        (_, InvocationOutcome::NotFound) => Err(ApiError::not_found(format!("invocation {id} not found"))),
        (Some(Intervention::Pause), InvocationOutcome::NotRunning(Status::Paused)) => Ok(StatusCode::OK),
        (_, InvocationOutcome::NotRunning(Status::Completed(_))) => {
            Err(conflict(format!("invocation {id} has already completed")))
        }
        (Some(Intervention::Pause), InvocationOutcome::NotRunning(_)) => {
            Err(conflict(format!("invocation {id} is not running, so it cannot be paused")))
        }
        (None, InvocationOutcome::NotRunning(_)) => Err(ApiError::new(
            StatusCode::TOO_EARLY,
            format!("invocation {id} has not started yet, so it cannot be resumed"),
        )),
        (_, InvocationOutcome::NotRunning(_)) => {
            Err(conflict(format!("invocation {id} has not completed, so it cannot be purged")))
        }
        // The cancel signal was delivered; the handler finishes on its own.
        // A pause stops the attempt in flight, which ends asynchronously.
        // A repeated cancel of a running invocation: the signal was delivered before.
        (_, InvocationOutcome::Appended { .. } | InvocationOutcome::Paused | InvocationOutcome::Exists(_)) => {
            Ok(StatusCode::ACCEPTED)
        }
        _ => Ok(StatusCode::OK),
    }
}

/// Query of `PATCH /invocations/{id}/resume`.
#[derive(Debug, Deserialize)]
pub struct ResumeQuery {
    /// `latest`, `keep` (the default) or a deployment id.
    deployment: Option<String>,
}

/// `PATCH /invocations/{id}/{cancel|kill|purge|pause|resume}`.
pub async fn patch<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path((id, action)): Path<(String, String)>,
    Query(q): Query<ResumeQuery>,
) -> Result<StatusCode, ApiError> {
    let action = match action.as_str() {
        "resume" => Action::Resume(resume_deployment(&*ctx.cluster, q.deployment.as_deref()).await?),
        other => Action::Intervene(intervention(other)?),
    };
    apply(&*ctx.cluster, &id, action).await
}

/// Resolves `?deployment=` of a resume; a deployment id must be registered.
async fn resume_deployment<C: ClusterApi>(cluster: &C, choice: Option<&str>) -> Result<ResumeDeployment, ApiError> {
    match choice {
        None | Some("keep") => Ok(ResumeDeployment::Keep),
        Some("latest") => Ok(ResumeDeployment::Latest),
        Some(id) => match cluster.read(METADATA_GROUP, keel_partition::Query::Catalog).await? {
            QueryResult::Catalog(data) if data.deployments.contains_key(id) => Ok(ResumeDeployment::Id(id.into())),
            QueryResult::Catalog(_) => Err(ApiError::bad_request(format!(
                "deployment '{id}' is not registered: use latest, keep or the id of a registered deployment"
            ))),
            other => {
                Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected catalog answer {other:?}")))
            }
        },
    }
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
    let what = match q.mode.as_deref().unwrap_or("cancel") {
        mode @ ("cancel" | "kill" | "purge") => intervention(mode)?,
        other => return Err(ApiError::bad_request(format!("unknown mode '{other}': use cancel, kill or purge"))),
    };
    apply(&*ctx.cluster, &id, Action::Intervene(what)).await.map(|_| StatusCode::ACCEPTED)
}

/// `GET /invocations/{id}`: `{"id", "status"}` with the status named as in
/// Restate's `sys_invocation` table (`pending` while inboxed, `running`,
/// `suspended`, `paused`, `completed`), and for a completed one its
/// `completion_result` (`success`/`failure`) and `completion_failure`.
pub async fn show<C: ClusterApi>(
    State(ctx): State<Arc<AdminCtx<C>>>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
    let partition = partition_for_key(id.partition_key, ctx.cluster.partition_count());
    let status = match ctx.cluster.read(partition, keel_partition::Query::Invocation(id.to_bytes())).await? {
        QueryResult::Invocation(Some(status)) => status,
        QueryResult::Invocation(None) => return Err(ApiError::not_found(format!("invocation {id} not found"))),
        other => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected answer {other:?}")));
        }
    };
    let name = match &status {
        Status::Inboxed { .. } => "pending",
        Status::Scheduled { .. } => "scheduled",
        Status::Invoked => "running",
        Status::Suspended { .. } => "suspended",
        Status::Paused => "paused",
        Status::Completed(_) => "completed",
    };
    let mut view = json!({ "id": id.to_string(), "status": name });
    match status {
        Status::Completed(InvocationResult::Success(_)) => view["completion_result"] = json!("success"),
        Status::Completed(InvocationResult::Failure { code, message }) => {
            view["completion_result"] = json!("failure");
            view["completion_failure"] = json!(format!("[{code}] {message}"));
        }
        _ => {}
    }
    Ok(Json(view))
}
