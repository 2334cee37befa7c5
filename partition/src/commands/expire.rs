//! `Expire`: completed invocations whose retention ended are removed.
//!
//! The leader proposes it with its clock's "now" when the expiry index
//! says a record is due; apply only trusts the time in the command, so
//! every replica removes the same records. One command removes a bounded
//! batch and says whether more are due, and the leader proposes again
//! until none is. Proposing it twice (a new leader) removes nothing twice:
//! the second finds the index emptied up to its time.

use crate::error::ApplyError;
use crate::model::outcome::InvocationOutcome;
use crate::store::StateTxn;

/// Removes the records due by `up_to_ms`, a batch at most.
pub(crate) fn apply(txn: &mut impl StateTxn, up_to_ms: u64) -> Result<InvocationOutcome, ApplyError> {
    let (count, more) = crate::expiry::expire(txn, up_to_ms)?;
    Ok(InvocationOutcome::Expired { count, more })
}
