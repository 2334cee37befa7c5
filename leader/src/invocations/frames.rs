//! Reading the SDK's frames as the attempt loop needs them: what a
//! suspension or an `AwaitingOn` waits for, and the stored journal.

use keel_partition::invocation;
use keel_protocol::message::{Decoder, NotificationId};
use keel_protocol::proto::Future as ProtoFuture;
use keel_protocol::{Frame, Message};
use std::collections::HashSet;

/// Appends the [`invocation::awaited_key`] of every leaf of a future
/// (tree or V6 flat lists) to `keys`.
fn leaves(completions: &[u32], signals: &[u32], names: &[String], nested: &[ProtoFuture], keys: &mut Vec<u32>) {
    keys.extend(completions.iter().map(|c| invocation::awaited_key(&NotificationId::Completion(*c))));
    keys.extend(signals.iter().map(|s| invocation::awaited_key(&NotificationId::Signal(*s))));
    keys.extend(names.iter().map(|n| invocation::awaited_key(&NotificationId::SignalName(n.clone()))));
    for f in nested {
        leaves(&f.waiting_completions, &f.waiting_signals, &f.waiting_named_signals, &f.nested_futures, keys);
    }
}

/// What a `SuspensionMessage` waits for, as [`invocation::awaited_key`]s:
/// every leaf of the V7 future tree, or the V6 lists (empty if it does not
/// decode, which makes `Suspend` fall back to the journal length).
pub(super) fn awaited(frame: &Frame) -> Vec<u32> {
    let mut keys = Vec::new();
    if let Ok(Message::Suspension(s)) = frame.decode_message() {
        leaves(&s.waiting_completions, &s.waiting_signals, &s.waiting_named_signals, &[], &mut keys);
        if let Some(f) = &s.awaiting_on {
            leaves(&f.waiting_completions, &f.waiting_signals, &f.waiting_named_signals, &f.nested_futures, &mut keys);
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether an `AwaitingOnMessage` (V7) means the invocation parked: user
/// code runs no side effect and awaits something outside the attempt (a
/// timer, a signal, another invocation), not the ack of one of its own
/// `runs`.
pub(super) fn parks(frame: &Frame, runs: &HashSet<u32>) -> bool {
    let Ok(Message::AwaitingOn(m)) = frame.decode_message() else { return false };
    let Some(f) = m.awaiting_on.filter(|_| !m.executing_side_effects) else { return false };
    let mut keys = Vec::new();
    leaves(&f.waiting_completions, &f.waiting_signals, &f.waiting_named_signals, &f.nested_futures, &mut keys);
    let own = |k: &u32| runs.iter().any(|r| invocation::awaited_key(&NotificationId::Completion(*r)) == *k);
    !keys.is_empty() && !keys.iter().any(own)
}

/// The stored journal entries as frames, one each (an entry that does not
/// decode to exactly one frame makes the journal unreadable).
pub(super) fn decode_journal(entries: &[Vec<u8>]) -> Result<Vec<Frame>, String> {
    let mut decoder = Decoder::new();
    for entry in entries {
        decoder.push(entry);
    }
    let mut frames = Vec::with_capacity(entries.len());
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        frames.push(frame);
    }
    if frames.len() != entries.len() {
        return Err(format!("{} journal entries decoded to {} frames", entries.len(), frames.len()));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_protocol::Flags;
    use keel_protocol::proto::AwaitingOnMessage;

    fn awaiting(completions: Vec<u32>, signals: Vec<u32>, side_effects: bool) -> Frame {
        let future = ProtoFuture { waiting_completions: completions, waiting_signals: signals, ..Default::default() };
        let m = AwaitingOnMessage { awaiting_on: Some(future), executing_side_effects: side_effects };
        Message::AwaitingOn(m).to_frame(Flags::NONE).unwrap()
    }

    #[test]
    fn awaiting_a_timer_or_signal_parks_but_not_a_run_ack_or_a_side_effect() {
        let runs = HashSet::from([3]);
        assert!(parks(&awaiting(vec![2], vec![], false), &runs));
        assert!(parks(&awaiting(vec![], vec![17], false), &runs));
        assert!(!parks(&awaiting(vec![3], vec![], false), &runs), "the ack of its own run");
        assert!(!parks(&awaiting(vec![2, 3], vec![], false), &runs), "a run among the awaited");
        assert!(!parks(&awaiting(vec![2], vec![], true), &runs), "a side effect in flight");
        assert!(!parks(&awaiting(vec![], vec![], false), &runs), "nothing awaited");
    }
}
