//! `Attach`: another invocation asks for this one's result (`ctx.attach`,
//! get output), shipped here by its partition's outbox. See
//! [`crate::attach`] for the whole exchange.

use crate::error::ApplyError;
use crate::lifecycle::wait_for;
use crate::model::invocation::Reply;
use crate::model::invocation::{Caller, InvocationKey};
use crate::model::outcome::Outcome;
use crate::store::StateTxn;

/// Answers `caller` now, or registers it to be answered when `id` completes.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    caller: &Caller,
    reply: Reply,
    seq: u64,
) -> Result<Outcome, ApplyError> {
    wait_for(txn, id, caller, reply, seq)
}
