//! `Deliver`: a result or signal from another invocation arrives.
//!
//! Deliveries come through the outbox of another partition (or the
//! ingress, for awakeables), which ships at least once; the completion id
//! (or signal key) in the record's `delivered` list makes the second
//! delivery a no-op, so each is journaled exactly once.

use crate::error::ApplyError;
use crate::lifecycle::notify;
use crate::model::invocation::InvocationKey;
use crate::model::outcome::{InvocationOutcome, Outcome};
use crate::model::storage::{load, store};
use crate::store::StateTxn;

/// Journals `notification` for `completion_id` of `id` once, waking it.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    completion_id: u32,
    notification: &[u8],
) -> Result<Outcome, ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    if record.delivered.contains(&completion_id) {
        return Ok((InvocationOutcome::Exists(record.status), Vec::new()));
    }
    record.delivered.push(completion_id);
    store(txn, id, &record);
    notify(txn, id, notification)
}
