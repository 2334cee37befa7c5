use super::*;
use crate::invocation::{InvocationOutcome, InvocationResult, Status};
use crate::testing::{TestPartition, record};

fn plain(retention_ms: u64) -> InvocationRecord {
    InvocationRecord { retention_ms, ..record(HandlerKind::Service, None) }
}

fn ok() -> InvocationResult {
    InvocationResult::Success(b"1".to_vec())
}

/// Invocation `n` of many (the test partition's `id` only has 256).
fn many(n: u32) -> InvocationKey {
    let mut id = [0u8; 24];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn next(p: &TestPartition) -> Option<u64> {
    next_expiry(&p.store).expect("the index reads")
}

#[test]
fn completed_records_expire_in_batches_without_timers() {
    let mut p = TestPartition::new();
    let count = EXPIRE_BATCH as u32 + 5;
    for n in 0..count {
        p.invoke(many(n), plain(1_000), b"in");
        p.complete(many(n), &ok(), 10_000 + u64::from(n % 3));
    }
    // No timer per invocation: one index entry each.
    assert_eq!(p.timers(), Vec::new());
    assert_eq!(next(&p), Some(11_000));
    assert_eq!(expires_at(&p.load(many(4)).unwrap()), Some(11_001));
    // Not due yet: nothing goes.
    assert_eq!(p.expire(10_999), InvocationOutcome::Expired { count: 0, more: false });
    assert_eq!(p.load(many(0)).unwrap().status, Status::Completed(ok()));
    // Due: a full batch, then the rest.
    assert_eq!(p.expire(11_002), InvocationOutcome::Expired { count: EXPIRE_BATCH as u32, more: true });
    assert_eq!(p.expire(11_002), InvocationOutcome::Expired { count: 5, more: false });
    assert_eq!(next(&p), None);
    // Only the floor is left, past the time expired up to.
    assert_eq!(p.store.entries.keys().collect::<Vec<_>>(), vec![&keys::expiry_floor_key()]);
    assert_eq!(floor(&p.store).unwrap(), 11_003);
    // The same id is unknown now: a new invoke runs again.
    assert_eq!(p.invoke(many(0), plain(1_000), b"in").0, InvocationOutcome::Invoked);
}

#[test]
fn a_full_batch_keeps_the_floor_where_entries_may_remain() {
    let mut p = TestPartition::new();
    for n in 0..EXPIRE_BATCH as u32 + 1 {
        p.invoke(many(n), plain(0), b"in");
        p.complete(many(n), &ok(), 500);
    }
    assert_eq!(p.expire(600), InvocationOutcome::Expired { count: EXPIRE_BATCH as u32, more: true });
    assert_eq!(floor(&p.store).unwrap(), 500, "one record of 500 is still filed");
    assert_eq!(next(&p), Some(500));
    assert_eq!(p.expire(600), InvocationOutcome::Expired { count: 1, more: false });
    assert_eq!(floor(&p.store).unwrap(), 601);
}

#[test]
fn a_record_already_past_its_expiry_is_filed_at_the_floor() {
    let mut p = TestPartition::new();
    assert_eq!(p.expire(5_000), InvocationOutcome::Expired { count: 0, more: false });
    let id = many(1);
    p.invoke(id, plain(100), b"in");
    // Completed (by the proposer's clock) before the last expiry ran.
    p.complete(id, &ok(), 1_000);
    assert_eq!(expires_at(&p.load(id).unwrap()), Some(5_001));
    assert_eq!(next(&p), Some(5_001));
    assert_eq!(p.expire(5_001), InvocationOutcome::Expired { count: 1, more: false });
    assert_eq!(p.load(id), None);
}

#[test]
fn a_purged_record_leaves_the_index() {
    let mut p = TestPartition::new();
    let id = many(1);
    p.invoke(id, plain(100), b"in");
    p.complete(id, &ok(), 1_000);
    assert_eq!(p.intervene(id, crate::invocation::Intervention::Purge, 1_050).0, InvocationOutcome::Completed);
    assert!(p.store.entries.is_empty(), "left behind: {:?}", p.store.entries.keys().collect::<Vec<_>>());
    // Created again and completed later: only the new record's entry counts.
    p.invoke(id, plain(100), b"in");
    p.complete(id, &ok(), 2_000);
    assert_eq!(p.expire(1_500), InvocationOutcome::Expired { count: 0, more: false });
    assert!(p.load(id).is_some());
    assert_eq!(p.expire(2_100), InvocationOutcome::Expired { count: 1, more: false });
    assert_eq!(p.load(id), None);
}

#[test]
fn a_workflow_run_expires_with_its_instance() {
    let mut p = TestPartition::new();
    let run = many(1);
    p.invoke(run, InvocationRecord { retention_ms: 500, ..record(HandlerKind::Workflow, Some("w1")) }, b"in");
    p.store.put(keys::state_key("Obj", "w1", "x"), b"1".to_vec());
    p.store.put(keys::promise_key("Obj", "w1", "confirm"), b"v".to_vec());
    p.store.put(keys::state_key("Obj", "w2", "x"), b"other".to_vec());
    p.complete(run, &ok(), 1_000);
    // Until the retention ends, shared handlers still see the instance.
    assert_eq!(p.expire(1_499), InvocationOutcome::Expired { count: 0, more: false });
    assert!(p.store.get(&keys::promise_key("Obj", "w1", "confirm")).is_some());
    assert_eq!(p.expire(1_500), InvocationOutcome::Expired { count: 1, more: false });
    let left: Vec<_> = p.store.entries.keys().cloned().collect();
    assert_eq!(left, vec![keys::state_key("Obj", "w2", "x"), keys::expiry_floor_key()]);
}

#[test]
fn a_record_completed_before_the_index_is_purged_by_its_timer() {
    // What an earlier keel stored for a completed record: a purge timer
    // under the timer keys, no index entry.
    let mut p = TestPartition::new();
    let id = many(1);
    let legacy = InvocationRecord { status: Status::Completed(ok()), timers: vec![(2_000, PURGE_TIMER)], ..plain(0) };
    p.store.put(keys::invocation_key(&id), crate::codec::encode(&legacy));
    p.store.put(keys::timer_key(2_000, &id, PURGE_TIMER), Vec::new());
    assert_eq!(next(&p), None);
    assert_eq!(p.fire_timer(2_000, id, PURGE_TIMER).0, InvocationOutcome::Completed);
    assert!(p.store.entries.is_empty(), "left behind: {:?}", p.store.entries.keys().collect::<Vec<_>>());
}

#[test]
fn a_corrupt_floor_stops_the_command_naming_its_key() {
    let mut p = TestPartition::new();
    p.store.put(keys::expiry_floor_key(), vec![1, 2, 3]);
    let err = p.try_apply(&crate::Envelope::fenced(1, crate::Command::Expire { up_to_ms: 1 })).unwrap_err();
    assert!(err.to_string().contains("expiry floor"), "{err}");
}
