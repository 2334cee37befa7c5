//! `apply(state, command) -> (response, effects)`: the only place where a
//! partition's state changes.

use crate::RecordMeta;
use crate::catalog;
use crate::command::{Command, Effect, Envelope, Response, StateMap};
use crate::invocation;
use crate::keys;
use crate::outbox;
use crate::store::StateTxn;

/// Errors that stop the partition: they mean the log or the state is not what
/// this code can interpret (corruption or a version skew), so continuing could
/// diverge replicas. User-level failures are [`Response`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A stored value could not be decoded.
    #[error("corrupt partition state under key {key:?}: {reason}")]
    Corrupt {
        /// The key whose value is unreadable.
        key: Vec<u8>,
        /// What was wrong with it.
        reason: String,
    },
}

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
    match &envelope.command {
        Command::AnnounceLeader { node_id: _, term } => {
            txn.put(keys::leader_epoch_key(), term.to_be_bytes().to_vec());
            Ok((Response::LeaderAnnounced, vec![Effect::LeaderReady { term: *term }]))
        }
        Command::SetState { service, object_key, new_state, expected_version } => {
            let prefix = keys::state_prefix(service, object_key);
            let current = crate::read::load_state(txn, &prefix);
            let actual = state_version(&current);
            if let Some(expected) = expected_version
                && *expected != actual
            {
                let response = Response::VersionMismatch { expected: expected.clone(), actual };
                return Ok((response, Vec::new()));
            }
            for name in current.keys().filter(|n| !new_state.contains_key(*n)) {
                txn.delete(keys::state_key(service, object_key, name));
            }
            for (name, value) in new_state {
                txn.put(keys::state_key(service, object_key, name), value.clone());
            }
            Ok((Response::StateSet { version: state_version(new_state) }, Vec::new()))
        }
        Command::RegisterDeployment { record, force, breaking } => {
            Ok((Response::Catalog(catalog::register(txn, record, *force, *breaking)), Vec::new()))
        }
        Command::RemoveDeployment { id } => Ok((Response::Catalog(catalog::remove(txn, id)), Vec::new())),
        Command::UpdateService { name, patch } => {
            Ok((Response::Catalog(catalog::update_service(txn, name, patch)), Vec::new()))
        }
        Command::Invoke { id, record, input } => {
            let (outcome, effects) = invocation::invoke(txn, id, record.clone(), input, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::AppendJournal { id, entries, workflow_runs } => {
            let (outcome, effects) =
                invocation::append(txn, id, entries, workflow_runs, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::Intervene { id, what, completed_at_ms } => {
            let (outcome, effects) =
                invocation::intervene(txn, id, *what, *completed_at_ms, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::Deliver { id, completion_id, notification } => {
            let (outcome, effects) = outbox::deliver(txn, id, *completion_id, notification).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::Attach { id, caller, reply } => {
            let (outcome, effects) = crate::attach::attach(txn, id, caller, *reply, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::OutboxDone { seq } => {
            outbox::done(txn, *seq);
            Ok((Response::Invocation(crate::invocation::InvocationOutcome::Completed), Vec::new()))
        }
        Command::FireTimer { fire_at_ms, id, completion_id } => {
            let (outcome, effects) =
                invocation::fire_timer(txn, *fire_at_ms, id, *completion_id, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::PinDeployment { id, deployment_id } => {
            Ok((Response::Invocation(invocation::pin_deployment(txn, id, deployment_id).map_err(corrupt)?), Vec::new()))
        }
        Command::Suspend { id, awaiting, journal_len_seen, attempt_start } => {
            let (outcome, effects) =
                invocation::suspend(txn, id, awaiting, *journal_len_seen, *attempt_start).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::Resume { id, deployment } => {
            let (outcome, effects) = invocation::resume(txn, id, deployment).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
        Command::Complete { id, result, completed_at_ms } => {
            let (outcome, effects) =
                invocation::complete(txn, id, result, *completed_at_ms, meta.seq()).map_err(corrupt)?;
            Ok((Response::Invocation(outcome), effects.into_iter().map(Effect::Invocation).collect()))
        }
    }
}

/// A stored invocation record that does not decode is corruption: stop the
/// partition rather than diverge.
fn corrupt(reason: String) -> ApplyError {
    ApplyError::Corrupt { key: vec![keys::KIND_INVOCATION], reason }
}

/// The version token of an object's state: a hash over its canonical
/// encoding. Equal states have equal versions, so a client can use it for
/// optimistic concurrency without the partition storing a counter.
pub fn state_version(state: &StateMap) -> String {
    let mut canonical = Vec::new();
    for (name, value) in state {
        canonical.extend_from_slice(&(name.len() as u64).to_be_bytes());
        canonical.extend_from_slice(name.as_bytes());
        canonical.extend_from_slice(&(value.len() as u64).to_be_bytes());
        canonical.extend_from_slice(value);
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&canonical))
}

/// Reads the leader epoch last announced to this partition.
pub fn leader_epoch(view: &impl crate::StateView) -> Result<Option<u64>, ApplyError> {
    let key = keys::leader_epoch_key();
    match view.get(&key) {
        None => Ok(None),
        Some(bytes) => {
            let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| ApplyError::Corrupt {
                key,
                reason: format!("leader epoch has {} bytes, expected 8", bytes.len()),
            })?;
            Ok(Some(u64::from_be_bytes(arr)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemStore, Query, QueryResult, read};

    fn set(service: &str, key: &str, pairs: &[(&str, &[u8])], expected: Option<&str>) -> Envelope {
        Envelope::client(Command::SetState {
            service: service.into(),
            object_key: key.into(),
            new_state: pairs.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            expected_version: expected.map(str::to_string),
        })
    }

    fn meta(index: u64) -> RecordMeta {
        RecordMeta { index, term: 1, position: 0 }
    }

    #[test]
    fn set_state_replaces_everything() {
        let mut store = MemStore::default();
        apply(&mut store, &set("Svc", "k", &[("a", b"1"), ("b", b"2")], None), meta(1)).unwrap();
        let (resp, _) = apply(&mut store, &set("Svc", "k", &[("b", b"3")], None), meta(2)).unwrap();
        let QueryResult::State { state, version } =
            read(&store, &Query::GetState { service: "Svc".into(), object_key: "k".into() }).unwrap()
        else {
            panic!("a state query answers with state")
        };
        assert_eq!(state, StateMap::from([("b".to_string(), b"3".to_vec())]));
        assert_eq!(resp, Response::StateSet { version });
    }

    #[test]
    fn version_mismatch_changes_nothing() {
        let mut store = MemStore::default();
        let (first, _) = apply(&mut store, &set("S", "k", &[("a", b"1")], None), meta(1)).unwrap();
        let Response::StateSet { version } = first else { panic!("unexpected {first:?}") };
        let before = store.dump();
        let (resp, _) = apply(&mut store, &set("S", "k", &[("a", b"2")], Some("stale")), meta(2)).unwrap();
        assert_eq!(resp, Response::VersionMismatch { expected: "stale".into(), actual: version.clone() });
        assert_eq!(store.dump(), before);
        let (ok, _) = apply(&mut store, &set("S", "k", &[("a", b"2")], Some(&version)), meta(3)).unwrap();
        assert!(matches!(ok, Response::StateSet { .. }));
    }

    #[test]
    fn fenced_commands_are_ignored() {
        let mut store = MemStore::default();
        let announce = Envelope::fenced(3, Command::AnnounceLeader { node_id: 1, term: 3 });
        let (resp, effects) = apply(&mut store, &announce, RecordMeta { index: 1, term: 4, position: 0 }).unwrap();
        assert_eq!(resp, Response::Fenced { fence: 3, term: 4 });
        assert!(effects.is_empty());
        assert!(store.entries.is_empty());
        let (resp, effects) = apply(&mut store, &announce, RecordMeta { index: 2, term: 3, position: 0 }).unwrap();
        assert_eq!(resp, Response::LeaderAnnounced);
        assert_eq!(effects, vec![Effect::LeaderReady { term: 3 }]);
        assert_eq!(leader_epoch(&store).unwrap(), Some(3));
    }

    fn invocation_record(key: u64) -> crate::invocation::InvocationRecord {
        use crate::invocation::{HandlerKind, InvocationRecord, Status, Target};
        InvocationRecord {
            target: Target {
                service: "Obj".into(),
                handler: "add".into(),
                key: Some(format!("k{key}")),
                kind: HandlerKind::Exclusive,
            },
            deployment_id: None,
            created_at_ms: key,
            journal_len: 0,
            status: Status::Invoked,
            caller: None,
            delivered: Vec::new(),
            timers: Vec::new(),
            retention_ms: 1000,
            attached: Vec::new(),
        }
    }

    /// Golden determinism check: the same command log applied to two fresh
    /// stores yields byte-identical state and identical responses and effects.
    #[test]
    fn replay_is_deterministic() {
        let mut log = Vec::new();
        for i in 0..200u64 {
            let key = format!("k{}", i % 17);
            let value = (i * 7919 % 251).to_be_bytes();
            let envelope = match i % 7 {
                0 => Envelope::fenced(i / 50, Command::AnnounceLeader { node_id: i % 3, term: i / 50 }),
                5 => Envelope::client(Command::Invoke {
                    id: [(i % 11) as u8; 24],
                    record: invocation_record(i % 3),
                    input: value.to_vec(),
                }),
                6 => Envelope::client(Command::Complete {
                    id: [(i % 11) as u8; 24],
                    completed_at_ms: i * 1000,
                    result: crate::invocation::InvocationResult::Success(value.to_vec()),
                }),
                1 => set("A", &key, &[], None),
                2 => set("B", &key, &[("x", &value), ("y", b"")], Some("0000000000000000")),
                _ => set("A", &key, &[("n", &value)], None),
            };
            log.push((envelope, RecordMeta { index: i + 1, term: i / 40, position: 0 }));
        }
        let run = || {
            let mut store = MemStore::default();
            let outputs: Vec<_> = log.iter().map(|(e, m)| apply(&mut store, e, *m).unwrap()).collect();
            (store.dump(), outputs)
        };
        let (dump_a, out_a) = run();
        let (dump_b, out_b) = run();
        assert!(!dump_a.is_empty());
        assert_eq!(dump_a, dump_b);
        assert_eq!(out_a, out_b);
    }
}
