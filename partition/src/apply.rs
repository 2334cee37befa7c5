//! `apply(state, command) -> (response, effects)`: the only place where a
//! partition's state changes.
//!
//! Every replica runs every committed command through here, in log order,
//! and must end in the same bytes. So apply reads nothing but the
//! transaction, the envelope and the entry's [`RecordMeta`]: no clock (times
//! come stamped in the commands), no randomness (fresh numbers come from
//! the log position), no I/O (work outside the state is an [`Effect`] the
//! leader performs after the entry is durable, whose results come back as
//! new commands).
//!
//! Before dispatching, apply checks the fence: a command a leader-side
//! actor proposed in term `t` is only valid in an entry of term `t`. An
//! actor of a deposed leader can still hand a proposal to Raft, and the new
//! leader may even commit it; fencing turns it into a no-op on every
//! replica alike.

use crate::catalog::record::CatalogOutcome;
use crate::command::{Command, Effect, Envelope, RecordMeta, Response};
use crate::commands::{
    announce_leader, append_journal, attach, complete, deliver, expire, fire_timer, intervene, invoke, outbox_done,
    pin_deployment, register_deployment, remove_deployment, resume, set_state, suspend, update_service,
};
use crate::error::ApplyError;
use crate::model::outcome::Outcome;
use crate::store::StateTxn;

/// Applies one committed command to the partition state.
///
/// Deterministic: the result depends only on `txn`'s contents, `envelope` and
/// `meta`. Writes go to `txn`; the caller commits them atomically with the
/// applied index.
pub fn apply(
    txn: &mut impl StateTxn,
    envelope: &Envelope,
    meta: RecordMeta,
) -> Result<(Response, Vec<Effect>), ApplyError> {
    if let Some(fence) = envelope.fence
        && fence != meta.term
    {
        return Ok((Response::Fenced { fence, term: meta.term }, Vec::new()));
    }
    let seq = meta.seq();
    Ok(match &envelope.command {
        Command::AnnounceLeader { node_id: _, term } => announce_leader::apply(txn, *term),
        Command::SetState { service, object_key, new_state, expected_version } => {
            (set_state::apply(txn, service, object_key, new_state, expected_version.as_deref()), Vec::new())
        }
        Command::RegisterDeployment { record, force, breaking } => {
            catalog(register_deployment::register(txn, record, *force, *breaking))
        }
        Command::RemoveDeployment { id } => catalog(remove_deployment::remove(txn, id)),
        Command::UpdateService { name, patch } => catalog(update_service::update_service(txn, name, patch)),
        Command::Invoke { id, record, input } => invocation(invoke::apply(txn, id, record, input, seq)?),
        Command::AppendJournalUnchecked { id, entries, workflow_runs } => {
            invocation(append_journal::apply(txn, id, None, entries, workflow_runs, seq)?)
        }
        Command::AppendJournal { id, at, entries, workflow_runs } => {
            invocation(append_journal::apply(txn, id, Some(*at), entries, workflow_runs, seq)?)
        }
        Command::PinDeployment { id, deployment_id } => {
            invocation((pin_deployment::apply(txn, id, deployment_id)?, Vec::new()))
        }
        Command::Suspend { id, awaiting, journal_len_seen, attempt_start } => {
            invocation(suspend::apply(txn, id, awaiting, *journal_len_seen, *attempt_start)?)
        }
        Command::FireTimer { fire_at_ms, id, completion_id } => {
            invocation(fire_timer::apply(txn, *fire_at_ms, id, *completion_id, seq)?)
        }
        Command::Attach { id, caller, reply } => invocation(attach::apply(txn, id, caller, *reply, seq)?),
        Command::Deliver { id, completion_id, notification } => {
            invocation(deliver::apply(txn, id, *completion_id, notification)?)
        }
        Command::OutboxDone { seq } => invocation((outbox_done::apply(txn, *seq), Vec::new())),
        Command::Intervene { id, what, completed_at_ms } => {
            invocation(intervene::apply(txn, id, *what, *completed_at_ms, seq)?)
        }
        Command::Resume { id, deployment } => invocation(resume::apply(txn, id, deployment)?),
        Command::Complete { id, result, completed_at_ms } => {
            invocation(complete::apply(txn, id, result, *completed_at_ms, seq)?)
        }
        Command::Expire { up_to_ms } => invocation((expire::apply(txn, *up_to_ms)?, Vec::new())),
    })
}

/// The response and effects of an invocation command.
fn invocation((outcome, effects): Outcome) -> (Response, Vec<Effect>) {
    (Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect())
}

/// The response of a catalog command (catalog commands have no effects:
/// every node reads the catalog from its own replica).
fn catalog(outcome: CatalogOutcome) -> (Response, Vec<Effect>) {
    (Response::Catalog(outcome), Vec::new())
}

#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod tests;
