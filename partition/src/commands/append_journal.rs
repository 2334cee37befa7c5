//! `AppendJournal`: entries a running attempt reported, stored in order.
//!
//! The journal is what makes an invocation durable: a later attempt
//! replays it byte for byte. Some entries do more than wait to be
//! replayed, and do it in the same batch as the entry itself, so the
//! entry and its consequence commit together or not at all: a sleep arms
//! a durable timer, a call or send puts a message in the outbox, a promise
//! command reads or completes the workflow's promise, a state command
//! changes the object's state. Answers keel has at once (a call's new
//! invocation id, a resolved promise) are journaled right after the entry
//! and sent to the attempt live.

use crate::error::ApplyError;
use crate::journal_position;
use crate::model::invocation::{InvocationKey, Status};
use crate::model::outcome::{InvocationEffect, InvocationOutcome, Outcome};
use crate::model::storage::{add_timer, decode_entry, journal_append, load, outbox_seq, push, store};
use crate::state::apply_state_command;
use crate::store::StateTxn;
use keel_protocol::Message;

/// Appends `entries` to the journal of `id`. Only a running or suspended
/// invocation has a journal that grows. With `at`, only if the journal
/// holds exactly `at` produced entries ([`crate::journal_position`]);
/// without (an append from an old log), wherever it ends. No entries: a
/// barrier that checks and changes nothing. `workflow_runs` lists the entries whose
/// call or send targets a workflow's run handler (resolved by the leader
/// from the catalog, which apply cannot read).
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    id: &InvocationKey,
    at: Option<u32>,
    entries: &[Vec<u8>],
    workflow_runs: &[u32],
    seq: u64,
) -> Result<Outcome, ApplyError> {
    let Some(mut record) = load(txn, id)? else { return Ok((InvocationOutcome::NotFound, Vec::new())) };
    if !matches!(record.status, Status::Invoked | Status::Suspended { .. }) {
        return Ok((InvocationOutcome::NotRunning(record.status), Vec::new()));
    }
    if entries.is_empty() {
        return Ok((InvocationOutcome::Appended { journal_len: record.journal_len }, Vec::new()));
    }
    let produced = journal_position::produced(txn, id, &record)?;
    if at.is_some_and(|at| at != produced) {
        return Ok((InvocationOutcome::StaleAppend { produced }, Vec::new()));
    }
    // Every entry of an append came from the attempt.
    journal_position::set_produced(txn, id, produced + entries.len() as u32);
    let mut effects = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut follow_ups = Vec::new();
        match decode_entry(entry) {
            Some(Message::SleepCommand(sleep)) => {
                let (fire_at_ms, completion_id) = (sleep.wake_up_time, sleep.result_completion_id);
                effects.push(add_timer(txn, id, &mut record, fire_at_ms, completion_id));
            }
            Some(command) => {
                let workflow_run = workflow_runs.contains(&(i as u32));
                if let Some(outgoing) = crate::outbox::on_command(id, &command, workflow_run)? {
                    if let Some(message) = outgoing.message {
                        effects.push(push(txn, outbox_seq(seq, i), message));
                    }
                    follow_ups.extend(outgoing.follow_up);
                } else if let Some(key) = &record.target.key {
                    match crate::promise::on_command(txn, id, &record.target.service, key, &command)? {
                        Some(handled) => {
                            follow_ups = handled.follow_ups;
                            effects.extend(handled.effects);
                        }
                        None => apply_state_command(txn, &record.target.service, key, command),
                    }
                }
            }
            None => {}
        }
        journal_append(txn, id, &mut record, entry.clone());
        for notification in follow_ups {
            journal_append(txn, id, &mut record, notification.clone());
            effects.push(InvocationEffect::Notify(*id, notification));
        }
    }
    let journal_len = record.journal_len;
    store(txn, id, &record);
    Ok((InvocationOutcome::Appended { journal_len }, effects))
}
