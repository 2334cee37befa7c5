//! `Resume`: an operator restarts a paused, suspended or backing-off
//! invocation (`PATCH /invocations/{id}/resume`).
//!
//! Resuming starts a new attempt that replays the journal, optionally on
//! another deployment. It also starts an attempt at once for a suspended
//! invocation, or for a running one whose leader is backing off.

use crate::error::ApplyError;
use crate::model::invocation::{InvocationKey, ResumeDeployment, Status};
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{load, store};
use crate::store::StateTxn;

/// Resumes `id` with a new attempt. One that has not started (inboxed,
/// scheduled) or has completed answers `NotRunning` with its status.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    deployment: &ResumeDeployment,
) -> Result<Outcome, ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    match record.status {
        Status::Paused | Status::Suspended { .. } | Status::Invoked => {}
        Status::Inboxed { .. } | Status::Scheduled { .. } | Status::Completed(_) => {
            return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
        }
    }
    match deployment {
        ResumeDeployment::Keep => {}
        ResumeDeployment::Latest => record.deployment_id = None,
        ResumeDeployment::Id(d) => record.deployment_id = Some(d.clone()),
    }
    record.status = Status::Invoked;
    store(txn, id, &record);
    Ok((InvocationOutcome::Resumed, vec![InvocationEffect::Invoke(*id)]))
}
