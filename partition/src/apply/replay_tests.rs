//! Replay determinism over every kind of command.
//!
//! Raft guarantees that every replica applies the same log; the partition
//! must turn the same log into the same bytes. This applies one log that
//! uses every [`Command`] variant to two fresh stores and compares the
//! stored bytes, the responses and the effects. [`kind`] matches every
//! variant without a wildcard: a new command does not compile until it is
//! given a kind here, and the test fails until the log uses it.

use crate::attach::Reply;
use crate::catalog::{DeploymentRecord, ServiceOverrides};
use crate::codec::encode;
use crate::invocation::InvocationOutcome;
use crate::invocation::{
    Caller, HandlerKind, Intervention, InvocationKey, InvocationRecord, InvocationResult, ResumeDeployment, Status,
    Target,
};
use crate::{Command, Envelope, MemStore, RecordMeta, Response, apply};
use keel_protocol::proto::{
    AttachInvocationCommandMessage, CallCommandMessage, CompletePromiseCommandMessage, GetPromiseCommandMessage,
    OneWayCallCommandMessage, RunCommandMessage, SendSignalCommandMessage, SetStateCommandMessage, SleepCommandMessage,
    Value, attach_invocation_command_message, complete_promise_command_message, send_signal_command_message,
};
use keel_protocol::{Flags, InvocationId, Message};
use std::collections::BTreeSet;

/// How many variants [`Command`] has.
const KINDS: usize = 18;

/// The kind of `command`, `0..KINDS`. No wildcard: see the module docs.
fn kind(command: &Command) -> usize {
    match command {
        Command::AnnounceLeader { .. } => 0,
        Command::SetState { .. } => 1,
        Command::RegisterDeployment { .. } => 2,
        Command::RemoveDeployment { .. } => 3,
        Command::UpdateService { .. } => 4,
        Command::Invoke { .. } => 5,
        Command::AppendJournalUnchecked { .. } => 6,
        Command::PinDeployment { .. } => 7,
        Command::Suspend { .. } => 8,
        Command::FireTimer { .. } => 9,
        Command::Attach { .. } => 10,
        Command::Deliver { .. } => 11,
        Command::OutboxDone { .. } => 12,
        Command::Intervene { .. } => 13,
        Command::Resume { .. } => 14,
        Command::Complete { .. } => 15,
        Command::AppendJournal { .. } => 16,
        Command::Expire { .. } => 17,
    }
}

const TS_MANIFEST: &[u8] = include_bytes!("../../../protocol/testdata/manifest_v4_sdk_ts.json");

fn frame(message: Message) -> Vec<u8> {
    message.to_frame(Flags::NONE).expect("small frames encode").to_bytes().to_vec()
}

fn id(n: u64) -> InvocationKey {
    InvocationId::new(n, u128::from(n) * 7919).to_bytes()
}

fn record(service: &str, key: Option<&str>, kind: HandlerKind, status: Status) -> InvocationRecord {
    InvocationRecord {
        target: Target { service: service.into(), handler: "h".into(), key: key.map(str::to_string), kind },
        deployment_id: None,
        created_at_ms: 1_000,
        journal_len: 0,
        status,
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: 500,
        attached: Vec::new(),
    }
}

fn deployment(id: &str, uri: &str) -> DeploymentRecord {
    DeploymentRecord {
        id: id.into(),
        uri: uri.into(),
        additional_headers: Default::default(),
        metadata: Default::default(),
        use_http_11: false,
        sdk_version: None,
        created_at_ms: 1_000,
        manifest_json: TS_MANIFEST.to_vec(),
    }
}

/// The journal entries an object handler reports in one go: a state
/// change, a sleep, a call, a one-way send, a signal and an attach.
fn busy_entries(signal_target: InvocationKey, attach_target: InvocationKey) -> Vec<Vec<u8>> {
    let attach_to = InvocationId::from_bytes(&attach_target).expect("24 bytes").to_string();
    let signal_to = InvocationId::from_bytes(&signal_target).expect("24 bytes").to_string();
    vec![
        frame(Message::SetStateCommand(SetStateCommandMessage {
            key: b"count".to_vec().into(),
            value: Some(Value { content: b"1".to_vec().into() }),
            name: String::new(),
        })),
        frame(Message::SleepCommand(SleepCommandMessage {
            wake_up_time: 3_000,
            result_completion_id: 1,
            name: String::new(),
        })),
        frame(Message::CallCommand(CallCommandMessage {
            service_name: "Greeter".into(),
            handler_name: "greet".into(),
            invocation_id_notification_idx: 2,
            result_completion_id: 3,
            ..Default::default()
        })),
        frame(Message::OneWayCallCommand(OneWayCallCommandMessage {
            service_name: "Counter".into(),
            handler_name: "add".into(),
            key: "c".into(),
            invocation_id_notification_idx: 4,
            invoke_time: 9_000,
            ..Default::default()
        })),
        frame(Message::SendSignalCommand(SendSignalCommandMessage {
            target_invocation_id: signal_to,
            signal_id: Some(send_signal_command_message::SignalId::Name("go".into())),
            result: None,
            entry_name: String::new(),
        })),
        frame(Message::AttachInvocationCommand(AttachInvocationCommandMessage {
            target: Some(attach_invocation_command_message::Target::InvocationId(attach_to)),
            result_completion_id: 5,
            ..Default::default()
        })),
    ]
}

/// A log that uses every command kind, in an order that exercises their
/// interesting paths (inboxes, timers, promises, attach, kill, purge).
fn log() -> Vec<(Envelope, RecordMeta)> {
    let (obj, queued, svc, run, shared, later) = (id(1), id(2), id(3), id(4), id(5), id(6));
    let get_promise = frame(Message::GetPromiseCommand(GetPromiseCommandMessage {
        key: "p".into(),
        result_completion_id: 1,
        name: String::new(),
    }));
    let complete_promise = frame(Message::CompletePromiseCommand(CompletePromiseCommandMessage {
        key: "p".into(),
        completion: Some(complete_promise_command_message::Completion::CompletionValue(Value {
            content: b"yes".to_vec().into(),
        })),
        result_completion_id: 1,
        name: String::new(),
    }));
    let ok = |v: &[u8]| InvocationResult::Success(v.to_vec());
    let commands: Vec<(Option<u64>, Command)> = vec![
        (Some(1), Command::AnnounceLeader { node_id: 1, term: 1 }),
        (None, Command::RegisterDeployment { record: deployment("dp_a", "http://a"), force: false, breaking: false }),
        (None, Command::RegisterDeployment { record: deployment("dp_b", "http://b"), force: false, breaking: false }),
        (
            None,
            Command::UpdateService {
                name: "Greeter".into(),
                patch: ServiceOverrides { public: Some(false), ..Default::default() },
            },
        ),
        (None, Command::RemoveDeployment { id: "dp_b".into() }),
        (None, Command::RemoveDeployment { id: "dp_none".into() }),
        (
            None,
            Command::SetState {
                service: "Obj".into(),
                object_key: "k".into(),
                new_state: [("a".to_string(), b"1".to_vec())].into(),
                expected_version: None,
            },
        ),
        (
            None,
            Command::SetState {
                service: "Obj".into(),
                object_key: "k".into(),
                new_state: Default::default(),
                expected_version: Some("stale".into()),
            },
        ),
        (
            None,
            Command::Invoke {
                id: obj,
                record: record("Obj", Some("k"), HandlerKind::Exclusive, Status::Invoked),
                input: b"in1".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: queued,
                record: record("Obj", Some("k"), HandlerKind::Exclusive, Status::Invoked),
                input: b"in2".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: svc,
                record: record("Greeter", None, HandlerKind::Service, Status::Invoked),
                input: b"in3".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: run,
                record: record("Signup", Some("w"), HandlerKind::Workflow, Status::Invoked),
                input: b"in4".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: shared,
                record: record("Signup", Some("w"), HandlerKind::Shared, Status::Invoked),
                input: b"in5".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: later,
                record: record("Greeter", None, HandlerKind::Service, Status::Scheduled { fire_at_ms: 5_000 }),
                input: b"in6".to_vec(),
            },
        ),
        (
            None,
            Command::Invoke {
                id: obj,
                record: record("Obj", Some("k"), HandlerKind::Exclusive, Status::Invoked),
                input: b"again".to_vec(),
            },
        ),
        (Some(1), Command::PinDeployment { id: obj, deployment_id: "dp_a".into() }),
        (
            Some(1),
            Command::AppendJournalUnchecked { id: obj, entries: busy_entries(later, svc), workflow_runs: vec![] },
        ),
        (Some(1), Command::AppendJournalUnchecked { id: run, entries: vec![get_promise], workflow_runs: vec![] }),
        (
            Some(1),
            Command::AppendJournalUnchecked {
                id: shared,
                entries: vec![complete_promise.clone(), complete_promise],
                workflow_runs: vec![],
            },
        ),
        (Some(1), Command::Suspend { id: obj, awaiting: vec![1], journal_len_seen: 9, attempt_start: 1 }),
        (Some(1), Command::FireTimer { fire_at_ms: 3_000, id: obj, completion_id: 1 }),
        (Some(1), Command::FireTimer { fire_at_ms: 3_000, id: obj, completion_id: 1 }),
        (None, Command::Deliver { id: obj, completion_id: 3, notification: b"call done".to_vec() }),
        (None, Command::Deliver { id: obj, completion_id: 3, notification: b"call done".to_vec() }),
        (None, Command::Attach { id: svc, caller: Caller { id: later, completion_id: 9 }, reply: Reply::Attach }),
        (None, Command::Attach { id: svc, caller: Caller { id: later, completion_id: 10 }, reply: Reply::Output }),
        (None, Command::Intervene { id: svc, what: Intervention::Pause, completed_at_ms: 4_000 }),
        (None, Command::Resume { id: svc, deployment: ResumeDeployment::Latest }),
        (None, Command::Intervene { id: run, what: Intervention::Cancel, completed_at_ms: 4_000 }),
        (Some(1), Command::Complete { id: svc, result: ok(b"hi"), completed_at_ms: 4_100 }),
        (Some(1), Command::FireTimer { fire_at_ms: 5_000, id: later, completion_id: u32::MAX - 1 }),
        (None, Command::Intervene { id: obj, what: Intervention::Kill, completed_at_ms: 4_200 }),
        (None, Command::Intervene { id: queued, what: Intervention::Pause, completed_at_ms: 4_300 }),
        (Some(1), Command::Complete { id: queued, result: ok(b"2"), completed_at_ms: 4_400 }),
        (None, Command::Intervene { id: queued, what: Intervention::Purge, completed_at_ms: 4_500 }),
        (Some(1), Command::FireTimer { fire_at_ms: 4_600, id: svc, completion_id: u32::MAX }),
        (Some(1), Command::Suspend { id: later, awaiting: vec![], journal_len_seen: 0, attempt_start: 0 }),
        (Some(1), Command::Resume { id: later, deployment: ResumeDeployment::Id("dp_a".into()) }),
        (
            Some(1),
            Command::Complete {
                id: run,
                result: InvocationResult::Failure { code: 500, message: "no".into() },
                completed_at_ms: 4_700,
            },
        ),
        // Announced by a deposed leader: fenced, like everything it proposes.
        (Some(1), Command::AnnounceLeader { node_id: 1, term: 1 }),
        (Some(2), Command::AnnounceLeader { node_id: 2, term: 2 }),
        (Some(1), Command::Complete { id: shared, result: ok(b""), completed_at_ms: 4_800 }),
    ];
    let mut log = Vec::new();
    let mut index = 0;
    for (i, (fence, command)) in commands.into_iter().enumerate() {
        // Mostly one command per entry, sometimes batches of three; the
        // leader changes to term 2 two entries before the end.
        if i % 3 == 0 || i < 10 {
            index += 1;
        }
        let term = if log.len() + 3 > 41 { 2 } else { 1 };
        let position = (i % 3) as u32 * u32::from(i >= 10);
        let envelope = Envelope { fence, command };
        log.push((envelope, RecordMeta { index, term, position }));
    }
    // The message the call above put in the outbox, shipped.
    let call_entry =
        log.iter().find(|(e, _)| matches!(&e.command, Command::AppendJournalUnchecked { id, .. } if *id == obj));
    let seq = (call_entry.expect("the call is in the log").1.seq() << 10) | 2;
    log.push((Envelope::fenced(2, Command::OutboxDone { seq }), RecordMeta { index: index + 1, term: 2, position: 0 }));
    assert_eq!(log.len(), WRITTEN_BEFORE);
    // Journal appends with positions: one at the end, a stale attempt's
    // second copy of it (refused), a barrier.
    let fresh = id(7);
    let run_command = frame(Message::RunCommand(RunCommandMessage { name: "step".into(), result_completion_id: 1 }));
    let appends = [
        Command::Invoke {
            id: fresh,
            record: record("Greeter", None, HandlerKind::Service, Status::Invoked),
            input: frame(Message::InputCommand(Default::default())),
        },
        Command::AppendJournal { id: fresh, at: 1, entries: vec![run_command.clone()], workflow_runs: vec![] },
        Command::AppendJournal { id: fresh, at: 1, entries: vec![run_command], workflow_runs: vec![] },
        Command::AppendJournal { id: fresh, at: 2, entries: vec![], workflow_runs: vec![] },
        // The records expire: first those due by 4.65 s (the plain call
        // completed at 4.1 s), then the rest (the workflow run with its
        // instance among them).
        Command::Expire { up_to_ms: 4_650 },
        Command::Expire { up_to_ms: 10_000 },
    ];
    for (i, command) in appends.into_iter().enumerate() {
        let fence = (!matches!(command, Command::Invoke { .. })).then_some(2);
        log.push((Envelope { fence, command }, RecordMeta { index: index + 2 + i as u64, term: 2, position: 0 }));
    }
    log
}

/// Entries of the log as keel wrote them before appends carried a position.
const WRITTEN_BEFORE: usize = 43;

#[test]
fn replay_of_every_command_kind_is_deterministic() {
    let log = log();
    let used: BTreeSet<usize> = log.iter().map(|(e, _)| kind(&e.command)).collect();
    assert_eq!(used, (0..KINDS).collect(), "the log must use every command kind");
    let run = || {
        let mut store = MemStore::default();
        let outputs: Vec<_> = log.iter().map(|(e, m)| apply(&mut store, e, *m).expect("the log applies")).collect();
        (store.dump(), encode(&outputs), outputs)
    };
    let (dump_a, bytes_a, out_a) = run();
    let (dump_b, bytes_b, out_b) = run();
    assert!(!dump_a.is_empty());
    // Both expiries remove records (what is due differs between them).
    let expired: Vec<_> = (out_a.iter())
        .filter_map(|(response, _)| match response {
            Response::Invocation(InvocationOutcome::Expired { count, .. }) => Some(*count),
            _ => None,
        })
        .collect();
    assert!(expired.len() == 2 && expired.iter().all(|c| *c > 0), "expired per command: {expired:?}");
    assert_eq!(dump_a, dump_b);
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(out_a, out_b);
    // Pinned: the log's encoding must not change (entries written before
    // must keep decoding), and neither may what it does, short of a change
    // that means to (then update the values, and say why). The first
    // `WRITTEN_BEFORE` entries are pinned apart, with the values they had
    // before appends carried positions: they must still decode and answer
    // the same (the state they leave now holds journal position counts).
    let encoded = |log: &[(Envelope, RecordMeta)]| -> Vec<u8> { log.iter().flat_map(|(e, _)| encode(e)).collect() };
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(&encoded(&log[..WRITTEN_BEFORE])),
        0xc5fa_d2e9_e9b9_8e08,
        "the encoding of entries written by earlier versions changed"
    );
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&encoded(&log)), 0x2835_c299_34a5_21aa, "the log's encoding changed");
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&dump_a), 0x917e_c1ae_656d_239b, "the state the log leaves changed");
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(&encode(&out_a[..WRITTEN_BEFORE].to_vec())),
        0xdfa5_f600_0b77_b5b0,
        "what entries written by earlier versions answer changed"
    );
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&bytes_a), 0xf29d_789f_8c92_e7a5, "the responses or effects changed");
}
