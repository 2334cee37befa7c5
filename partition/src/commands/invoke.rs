//! `Invoke`: creates an invocation, exactly once per id.
//!
//! Ids are derived from idempotency keys and workflow ids (and a call's
//! from its caller and completion index), so a repeated `Invoke` is the
//! same request again: it changes nothing, and the log orders concurrent
//! duplicates (the first creates, the rest find it). A record proposed as
//! [`Status::Scheduled`] is a delayed send: stored now, started by its
//! durable start timer. Any other starts now, or queues behind its key's
//! lock.

use crate::attach::answer;
use crate::error::ApplyError;
use crate::keys;
use crate::lifecycle::{admit, wait_for};
use crate::model::invocation::Reply;
use crate::model::invocation::{
    Caller, HandlerKind, InvocationKey, InvocationRecord, InvocationResult, START_TIMER, Status,
};
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{add_timer, load, outbox_seq, push, store};
use crate::store::StateTxn;

/// Creates invocation `id` whose journal starts with `input` (the raw
/// `InputCommand` frame). `seq` orders the key's inbox.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    record: &InvocationRecord,
    input: &[u8],
    seq: u64,
) -> Result<Outcome, ApplyError> {
    if let Some(existing) = load(txn, id)? {
        let effects = match &record.caller {
            // A call that finds its target created already, by someone else.
            Some(caller) if existing.caller.as_ref() != Some(caller) => {
                duplicate_call(txn, id, &existing, caller, seq)?
            }
            // A repeated request, or the same call shipped again.
            _ => Vec::new(),
        };
        return Ok((InvocationOutcome::Exists(existing.status), effects));
    }
    txn.put(keys::journal_key(id, 0), input.to_vec());
    let mut record = InvocationRecord { journal_len: 1, attached: Vec::new(), ..record.clone() };
    if let Status::Scheduled { fire_at_ms } = record.status {
        let effect = add_timer(txn, id, &mut record, fire_at_ms, START_TIMER);
        store(txn, id, &record);
        return Ok((InvocationOutcome::Scheduled, vec![effect]));
    }
    Ok(admit(txn, id, record, seq))
}

/// A workflow's run runs once per workflow id: a second call is refused
/// (409, as the ingress does). Any other call whose id exists already is a
/// repeated idempotent request: it waits for the first one's result.
fn duplicate_call(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    existing: &InvocationRecord,
    caller: &Caller,
    seq: u64,
) -> Result<Vec<InvocationEffect>, ApplyError> {
    if existing.target.kind == HandlerKind::Workflow {
        let refused =
            InvocationResult::Failure { code: 409, message: "the workflow method was already invoked".into() };
        return Ok(vec![push(txn, outbox_seq(seq, 0), answer(caller, Reply::Call, Some(&refused))?)]);
    }
    Ok(wait_for(txn, id, caller, Reply::Call, seq)?.1)
}
