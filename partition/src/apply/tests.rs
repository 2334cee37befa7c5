//! Dispatch and fencing, the admin API's state edit, and replay over a
//! long log of a few command kinds (every kind: `replay_tests.rs`).

use crate::invocation::{HandlerKind, InvocationOutcome, InvocationResult, Status};
use crate::testing::{TestPartition, id, record};
use crate::{
    Command, Effect, Envelope, MemStore, Query, QueryResult, RecordMeta, Response, StateMap, apply, leader_epoch, read,
};

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
    use crate::invocation::{HandlerKind, InvocationRecord, Target};
    let object = format!("k{key}");
    let target = Target {
        service: "Obj".into(),
        handler: "add".into(),
        key: Some(object.clone()),
        kind: HandlerKind::Exclusive,
    };
    InvocationRecord {
        target,
        created_at_ms: key,
        retention_ms: 1000,
        ..crate::testing::record(HandlerKind::Exclusive, Some(&object))
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

#[test]
fn a_deposed_leaders_proposals_change_nothing() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    // A new leader's term begins; an actor of the old one still proposes.
    p.term = 2;
    let before = p.store.dump();
    let stale = Command::Complete { id: id(1), result: InvocationResult::Success(Vec::new()), completed_at_ms: 9 };
    let (response, effects) = p.apply(&Envelope::fenced(1, stale.clone()));
    assert_eq!(response, Response::Fenced { fence: 1, term: 2 });
    assert!(effects.is_empty());
    assert_eq!(p.store.dump(), before);
    // The new leader's own proposal, and any client command, apply.
    let (response, _) = p.apply(&Envelope::fenced(2, stale));
    assert_eq!(response, Response::Invocation(InvocationOutcome::Completed));
    let (response, _) = p.apply(&Envelope::client(Command::Invoke {
        id: id(2),
        record: record(HandlerKind::Service, None),
        input: Vec::new(),
    }));
    assert_eq!(response, Response::Invocation(InvocationOutcome::Invoked));
    assert_eq!(p.load(id(1)).unwrap().status, Status::Completed(InvocationResult::Success(Vec::new())));
}

#[test]
fn a_proposal_fenced_with_a_future_term_is_refused_too() {
    // Only the exact term is valid: a fence from a term the entry is not in
    // (here a later one) proves nothing about who proposed it.
    let mut p = TestPartition::new();
    let (response, _) = p.apply(&Envelope::fenced(5, Command::AnnounceLeader { node_id: 1, term: 5 }));
    assert_eq!(response, Response::Fenced { fence: 5, term: 1 });
    assert_eq!(leader_epoch(&p.store).unwrap(), None);
}

#[test]
fn an_unreadable_record_stops_the_partition_naming_its_key() {
    let mut p = TestPartition::new();
    p.store.entries.insert(crate::keys::invocation_key(&id(1)), vec![0xff; 3]);
    let deliver = Command::Deliver { id: id(1), completion_id: 1, notification: Vec::new() };
    match p.try_apply(&Envelope::client(deliver)) {
        Err(crate::ApplyError::Corrupt { key, .. }) => assert_eq!(key, crate::keys::invocation_key(&id(1))),
        other => panic!("expected corruption, got {other:?}"),
    }
}
