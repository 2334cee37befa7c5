//! `OutboxDone`: the leader's shipper delivered an outbox message.
//!
//! The message stays stored until this applies, so a shipper that dies
//! mid-way leaves it for the next leader, which ships it again; the
//! receiving side deduplicates (by invocation id or completion id).

use crate::keys;
use crate::model::outcome::InvocationOutcome;
use crate::store::StateTxn;

/// Removes the message stored under `seq` (absent already: nothing).
pub(crate) fn apply(txn: &mut impl StateTxn, seq: u64) -> InvocationOutcome {
    txn.delete(keys::outbox_key(seq));
    InvocationOutcome::Completed
}
