use crate::invocation::{
    HandlerKind, Intervention, InvocationEffect, InvocationOutcome, InvocationResult, ResumeDeployment, Status,
};
use crate::testing::{TestPartition, id, record};

#[test]
fn paused_invocations_keep_notifications_and_resume_with_a_new_attempt() {
    let mut p = TestPartition::new();
    p.invoke(id(1), record(HandlerKind::Service, None), b"input");
    let (outcome, effects) = p.intervene(id(1), Intervention::Pause, 99);
    assert_eq!(outcome, InvocationOutcome::Paused);
    assert_eq!(effects, vec![InvocationEffect::Stop(id(1))]);
    assert_eq!(p.load(id(1)).unwrap().status, Status::Paused);
    // Pausing again changes nothing and says so.
    let (outcome, effects) = p.intervene(id(1), Intervention::Pause, 99);
    assert_eq!(outcome, InvocationOutcome::NotRunning(Status::Paused));
    assert!(effects.is_empty());
    // A notification is journaled but wakes nothing.
    let (outcome, effects) = p.deliver(id(1), 7, b"signal");
    assert_eq!(outcome, InvocationOutcome::Appended { journal_len: 2 });
    assert!(effects.is_empty());
    assert_eq!(p.journal(id(1)), vec![b"input".to_vec(), b"signal".to_vec()]);
    assert_eq!(p.load(id(1)).unwrap().status, Status::Paused);
    // Resume with the latest deployment drops the pin and starts an attempt.
    p.pin(id(1), "dp_old");
    let (outcome, effects) = p.resume(id(1), ResumeDeployment::Latest);
    assert_eq!(outcome, InvocationOutcome::Resumed);
    assert_eq!(effects, vec![InvocationEffect::Invoke(id(1))]);
    let resumed = p.load(id(1)).unwrap();
    assert_eq!((resumed.status, resumed.deployment_id), (Status::Invoked, None));
    p.resume(id(1), ResumeDeployment::Id("dp_new".into()));
    assert_eq!(p.load(id(1)).unwrap().deployment_id.as_deref(), Some("dp_new"));
}

#[test]
fn only_started_unfinished_invocations_pause_or_resume() {
    let mut p = TestPartition::new();
    assert_eq!(p.resume(id(9), ResumeDeployment::Keep).0, InvocationOutcome::NotFound);
    p.invoke(id(1), record(HandlerKind::Exclusive, Some("k")), b"in");
    p.invoke(id(2), record(HandlerKind::Exclusive, Some("k")), b"in");
    // Inboxed behind the lock: neither pause nor resume applies.
    let inboxed = Status::Inboxed { seq: p.seq() };
    assert_eq!(p.intervene(id(2), Intervention::Pause, 99).0, InvocationOutcome::NotRunning(inboxed.clone()));
    assert_eq!(p.resume(id(2), ResumeDeployment::Keep).0, InvocationOutcome::NotRunning(inboxed));
    // Killing a running invocation stops its attempt; a completed one does not resume.
    let (_, effects) = p.intervene(id(1), Intervention::Kill, 99);
    assert!(effects.contains(&InvocationEffect::Stop(id(1))));
    let killed = Status::Completed(InvocationResult::Failure { code: 409, message: "killed".into() });
    assert_eq!(p.resume(id(1), ResumeDeployment::Keep).0, InvocationOutcome::NotRunning(killed));
    // Killing released the key's lock: the inboxed one runs now.
    assert_eq!(p.load(id(2)).unwrap().status, Status::Invoked);
}
