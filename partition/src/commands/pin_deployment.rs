//! `PinDeployment`: an invocation keeps the deployment its first attempt used.
//!
//! A journal only replays on the code that wrote it, so later attempts (and
//! new revisions of the service registered meanwhile) do not move it. Only
//! an operator's resume may (`ResumeDeployment`).

use crate::error::ApplyError;
use crate::model::invocation::InvocationKey;
use crate::model::outcome::InvocationOutcome;
use crate::model::storage::{load, store};
use crate::store::StateTxn;

/// Pins `id` to `deployment_id` unless it is pinned already.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    deployment_id: &str,
) -> Result<InvocationOutcome, ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok(InvocationOutcome::NotFound) };
    if record.deployment_id.is_none() {
        record.deployment_id = Some(deployment_id.to_string());
        store(txn, id, &record);
    }
    Ok(InvocationOutcome::Invoked)
}
