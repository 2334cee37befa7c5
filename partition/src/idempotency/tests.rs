use super::*;
use crate::expiry::expires_at;
use crate::invocation::{
    Intervention, InvocationEffect, InvocationOutcome, InvocationResult, START_TIMER, Status, Target,
};
use crate::model::invocation::InvocationRecord;
use crate::testing::TestPartition;
use keel_protocol::EndpointManifest;

const TS_MANIFEST: &[u8] = include_bytes!("../../../protocol/testdata/manifest_v4_sdk_ts.json");

fn service(name: &str) -> Service {
    EndpointManifest::parse(TS_MANIFEST).unwrap().service(name).unwrap().clone()
}

fn handler<'a>(service: &'a Service, name: &str) -> &'a Handler {
    service.handlers.iter().find(|h| h.name == name).unwrap()
}

fn record(kind: HandlerKind, key: Option<&str>, retention_ms: u64) -> InvocationRecord {
    let target = Target { service: "Signup".into(), handler: "run".into(), key: key.map(str::to_string), kind };
    InvocationRecord { target, retention_ms, ..crate::testing::record(kind, key) }
}

#[test]
fn idempotent_ids_are_derived_from_the_whole_target() {
    let id = idempotent_id("Counter", Some("c1"), "add", "k1");
    assert_eq!(id, idempotent_id("Counter", Some("c1"), "add", "k1"));
    // Any other part gives another id.
    for other in [
        idempotent_id("Counter2", Some("c1"), "add", "k1"),
        idempotent_id("Counter", Some("c2"), "add", "k1"),
        idempotent_id("Counter", Some("c1"), "get", "k1"),
        idempotent_id("Counter", Some("c1"), "add", "k2"),
        idempotent_id("Counter", None, "add", "k1"),
        idempotent_id("Counter", Some(""), "add", "k1"),
    ] {
        assert_ne!(other.uuid, id.uuid);
    }
    // Parts cannot run into each other.
    assert_ne!(idempotent_id("ab", None, "c", "k").uuid, idempotent_id("a", None, "bc", "k").uuid);
    // Keyed: the object's partition; unkeyed: the idempotency key's.
    assert_eq!(id.partition_key, crate::partition_key(b"c1"));
    assert_eq!(idempotent_id("Greeter", None, "greet", "k1").partition_key, crate::partition_key(b"k1"));
    // A workflow run's id is the one keel always used (pinned: stored ids must not move).
    let run = workflow_run_id("Signup", "w1");
    assert_eq!(run.partition_key, crate::partition_key(b"w1"));
    assert_eq!(run.uuid, xxhash_rust::xxh3::xxh3_128(b"workflow\0Signup\0w1"));
}

#[test]
fn retention_depends_on_the_kind_of_request() {
    let greeter = service("Greeter");
    let greet = handler(&greeter, "greet");
    let none = ServiceOverrides::default();
    assert_eq!(retention_ms(&none, &greeter, greet, false, 60_000), 60_000);
    assert_eq!(retention_ms(&none, &greeter, greet, true, 60_000), DEFAULT_IDEMPOTENCY_RETENTION_MS);
    let patched = ServiceOverrides {
        idempotency_retention_ms: Some(2_000),
        workflow_completion_retention_ms: Some(3_000),
        ..Default::default()
    };
    assert_eq!(retention_ms(&patched, &greeter, greet, true, 60_000), 2_000);
    // A handler's own setting wins over the service's.
    let mut own = greet.clone();
    own.options.idempotency_retention = Some(7_000);
    assert_eq!(retention_ms(&patched, &greeter, &own, true, 60_000), 7_000);
    // A workflow run keeps its result for the workflow retention, with or
    // without an idempotency key; its shared handlers use the idempotency one.
    let signup = service("Signup");
    assert_eq!(retention_ms(&none, &signup, handler(&signup, "run"), false, 60_000), DEFAULT_WORKFLOW_RETENTION_MS);
    assert_eq!(retention_ms(&patched, &signup, handler(&signup, "run"), false, 60_000), 3_000);
    assert_eq!(retention_ms(&patched, &signup, handler(&signup, "status"), true, 60_000), 2_000);
}

#[test]
fn a_repeated_invoke_is_deduplicated_and_purged_after_its_retention() {
    let mut p = TestPartition::new();
    let id = idempotent_id("Greeter", None, "greet", "k1").to_bytes();
    let first = p.invoke(id, record(HandlerKind::Service, None, 2_000), b"in");
    assert_eq!(first, (InvocationOutcome::Invoked, vec![InvocationEffect::Invoke(id)]));
    let second = p.invoke(id, record(HandlerKind::Service, None, 2_000), b"in");
    assert_eq!(second, (InvocationOutcome::Exists(Status::Invoked), Vec::new()));
    assert_eq!(expires_at(&p.load(id).unwrap()), None);
    let ok = InvocationResult::Success(b"1".to_vec());
    p.complete(id, &ok, 10_000);
    // Purged the retention after the stamped completion time.
    assert_eq!(expires_at(&p.load(id).unwrap()), Some(12_000));
    let repeat = p.invoke(id, record(HandlerKind::Service, None, 2_000), b"in");
    assert_eq!(repeat, (InvocationOutcome::Exists(Status::Completed(ok.clone())), Vec::new()));
    assert_eq!(p.expire(11_999), InvocationOutcome::Expired { count: 0, more: false });
    let repeat = p.invoke(id, record(HandlerKind::Service, None, 2_000), b"in");
    assert_eq!(repeat, (InvocationOutcome::Exists(Status::Completed(ok)), Vec::new()));
    assert_eq!(p.expire(12_000), InvocationOutcome::Expired { count: 1, more: false });
    let left: Vec<_> = p.store.entries.keys().cloned().collect();
    assert_eq!(left, vec![keys::expiry_floor_key()]);
    // The key is free again: the same request runs anew.
    let again = p.invoke(id, record(HandlerKind::Service, None, 2_000), b"in");
    assert_eq!(again.0, InvocationOutcome::Invoked);
}

#[test]
fn scheduled_invocations_start_when_their_timer_fires() {
    let mut p = TestPartition::new();
    let id = [3u8; 24];
    let scheduled = InvocationRecord {
        status: Status::Scheduled { fire_at_ms: 9_000 },
        ..record(HandlerKind::Exclusive, Some("k"), 0)
    };
    let (outcome, effects) = p.invoke(id, scheduled.clone(), b"in");
    assert_eq!(outcome, InvocationOutcome::Scheduled);
    assert_eq!(effects, vec![InvocationEffect::TimerRegistered { fire_at_ms: 9_000, id, completion_id: START_TIMER }]);
    assert_eq!(p.load(id).unwrap().status, Status::Scheduled { fire_at_ms: 9_000 });
    // Stored at once: a repeat (the same idempotent send) is a duplicate.
    assert!(matches!(p.invoke(id, scheduled, b"in").0, InvocationOutcome::Exists(_)));
    // The key's lock is taken by another invocation meanwhile: firing queues it.
    let other = [4u8; 24];
    p.invoke(other, record(HandlerKind::Exclusive, Some("k"), 0), b"in");
    let (outcome, effects) = p.fire_timer(9_000, id, START_TIMER);
    assert_eq!((outcome, effects), (InvocationOutcome::Inboxed, Vec::new()));
    assert_eq!(p.load(id).unwrap().timers, Vec::new());
    // Firing twice (a leader change) changes nothing.
    assert_eq!(p.fire_timer(9_000, id, START_TIMER).0, InvocationOutcome::NotFound);
    let (_, effects) = p.complete(other, &InvocationResult::Success(Vec::new()), 1);
    assert!(effects.contains(&InvocationEffect::Invoke(id)));
}

#[test]
fn cancelling_a_scheduled_invocation_completes_it_without_running() {
    let mut p = TestPartition::new();
    let id = [5u8; 24];
    let scheduled =
        InvocationRecord { status: Status::Scheduled { fire_at_ms: 9_000 }, ..record(HandlerKind::Service, None, 100) };
    p.invoke(id, scheduled, b"in");
    let (outcome, effects) = p.intervene(id, Intervention::Cancel, 50);
    assert_eq!(outcome, InvocationOutcome::Completed);
    let canceled = InvocationResult::Failure { code: 409, message: "canceled".into() };
    assert_eq!(effects[0], InvocationEffect::Completed(id, canceled));
    // The start timer is gone; the record expires its retention later.
    assert_eq!(p.timers(), Vec::new());
    assert_eq!(expires_at(&p.load(id).unwrap()), Some(150));
    assert_eq!(p.fire_timer(9_000, id, START_TIMER).0, InvocationOutcome::NotFound);
}
