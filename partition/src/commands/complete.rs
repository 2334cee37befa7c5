//! `Complete`: an invocation ends with its result.
//!
//! Proposed by the leader when the SDK reports the end (or the retry
//! policy gives up with `Kill`). The time comes from the proposer
//! (`completed_at_ms`), not from a clock here: apply must compute the same
//! purge time on every replica and on every replay.

use crate::error::ApplyError;
use crate::lifecycle::finish;
use crate::model::invocation::{InvocationKey, InvocationResult};
use crate::model::outcome::Outcome;
use crate::store::StateTxn;

/// Completes `id` with `result` (see [`finish`]).
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    result: &InvocationResult,
    completed_at_ms: u64,
    seq: u64,
) -> Result<Outcome, ApplyError> {
    Ok(finish(txn, id, result, completed_at_ms, seq)?.0)
}
