//! Property tests of the node-port payload decoders: every type a node
//! decodes from a peer (`keel_raft::types::decode`: requests on the server
//! side, replies on the client side) fed random bytes and valid encodings
//! that were then mutated (flipped, overwritten, deleted and inserted bytes,
//! truncation, and forged bincode varint lengths: `0xFD` + 8 bytes, `0xFC` +
//! 4 bytes, at random offsets).
//!
//! Properties: decoding never panics; a decode never allocates more than
//! [`budget`] bytes in total (64 per input byte plus 1 MiB), checked with a
//! per-thread counter behind the global allocator; an unmutated valid
//! encoding decodes and re-encodes to the same bytes.
//!
//! The default case count is small (a few seconds); raise it with
//! `PROPTEST_CASES=100000 cargo test -p keel-raft --test fuzz_payloads`.

// The replies are openraft's `Result<_, RaftError<_>>` as sent on the wire.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use keel_partition::invocation::{
    Caller, HandlerKind, InvocationKey, InvocationOutcome, InvocationRecord, InvocationResult, Status, Target,
};
use keel_partition::wait::{WaitPolicy, Waited};
use keel_partition::{Command, Envelope, Query, QueryResult, Response};
use keel_raft::messages::{GroupStatus, ProposeError};
use keel_raft::types::{Batch, TypeConfig, decode, encode};
use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, SnapshotSegmentId,
    StoredMembership, Vote,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::Serialize;
use serde::de::DeserializeOwned;

// ---- allocation tracking -------------------------------------------------------------

#[global_allocator]
static ALLOCATOR: keel_testkit::CountingAlloc = keel_testkit::CountingAlloc;

/// Runs `f`; returns its result, the bytes it allocated and its largest allocation.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let (out, allocated) = keel_testkit::allocations(f);
    (out, allocated.total, allocated.largest)
}

/// What one decode of `len` input bytes may allocate in total: 64 bytes
/// per input byte, plus 1 MiB for each sequence being decoded at once. A
/// sequence's length is not claimed against bincode's limit up front (its
/// elements are, as they are read); serde preallocates
/// `min(length, 1 MiB / element size)` elements (`size_hint::cautious`),
/// so a forged length wastes up to 1 MiB per nesting level: 8 bytes
/// decoded as `Vec<GroupStatus>` allocate 1 MiB, 27 bytes 2 MiB (outer
/// list and `replicas`). No payload type nests more than four sequences.
fn budget(len: usize) -> usize {
    64 * len + (4 << 20)
}

// ---- the decoders --------------------------------------------------------------------

/// One payload type a node decodes from a peer.
struct Decoder {
    name: &'static str,
    /// Decodes and drops; whether it decoded.
    decode: fn(&[u8]) -> bool,
    /// Decodes and encodes again (`None`: did not decode).
    reencode: fn(&[u8]) -> Option<Vec<u8>>,
}

fn decodes<T: DeserializeOwned>(bytes: &[u8]) -> bool {
    decode::<T>(bytes).is_ok()
}

fn reencodes<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Option<Vec<u8>> {
    decode::<T>(bytes).ok().map(|v| encode(&v).expect("a decoded value encodes"))
}

macro_rules! decoders {
    ($($ty:ty),* $(,)?) => {
        &[$(Decoder { name: stringify!($ty), decode: decodes::<$ty>, reencode: reencodes::<$ty> }),*]
    };
}

type AppendReply = Result<AppendEntriesResponse<u64>, RaftError<u64>>;
type VoteReply = Result<VoteResponse<u64>, RaftError<u64>>;
type SnapshotReply = Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;

/// Everything `raft/src/network.rs` decodes from a peer, requests first
/// (server side: `Raft`, `Propose`, `Read`, `Call`, `Attach`), then replies
/// (client side). Indexes are used by [`Sample`].
const DECODERS: &[Decoder] = decoders![
    AppendEntriesRequest<TypeConfig>,          // 0
    VoteRequest<u64>,                          // 1
    InstallSnapshotRequest<TypeConfig>,        // 2
    Envelope,                                  // 3
    Query,                                     // 4
    (Envelope, WaitPolicy),                    // 5
    (InvocationKey, WaitPolicy),               // 6
    AppendReply,                               // 7
    VoteReply,                                 // 8
    SnapshotReply,                             // 9
    Result<Response, ProposeError>,            // 10
    Result<QueryResult, ProposeError>,         // 11
    Result<Waited, ProposeError>,              // 12
    Result<Option<Waited>, ProposeError>,      // 13
    Vec<GroupStatus>,                          // 14
];

/// Decodes `bytes` as every payload type: no panic (a panic fails the
/// test), and no decode allocating more than [`budget`].
fn decode_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    for d in DECODERS {
        let (_, total, largest) = allocations(|| (d.decode)(bytes));
        prop_assert!(
            total <= budget(bytes.len()),
            "decoding {} bytes as {} allocated {total} bytes (largest {largest}), over {}: {:02x?}",
            bytes.len(),
            d.name,
            budget(bytes.len()),
            bytes
        );
    }
    Ok(())
}

// ---- valid values --------------------------------------------------------------------

/// A valid encoding of a value of `DECODERS[ty]`.
#[derive(Debug, Clone)]
struct Sample {
    ty: usize,
    bytes: Vec<u8>,
}

fn sample<T: Serialize>(ty: usize) -> impl Fn(T) -> Sample {
    move |v| Sample { ty, bytes: encode(&v).expect("generated values encode") }
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/_é-]{0,12}"
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn small_u32s() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(any::<u32>(), 0..5)
}

fn result() -> impl Strategy<Value = InvocationResult> {
    prop_oneof![
        blob().prop_map(InvocationResult::Success),
        (any::<u16>(), text()).prop_map(|(code, message)| InvocationResult::Failure { code, message }),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        any::<u64>().prop_map(|fire_at_ms| Status::Scheduled { fire_at_ms }),
        any::<u64>().prop_map(|seq| Status::Inboxed { seq }),
        Just(Status::Invoked),
        small_u32s().prop_map(|awaiting| Status::Suspended { awaiting }),
        result().prop_map(Status::Completed),
        Just(Status::Paused),
    ]
}

fn record() -> impl Strategy<Value = InvocationRecord> {
    let kind = prop::sample::select(vec![
        HandlerKind::Service,
        HandlerKind::Exclusive,
        HandlerKind::Shared,
        HandlerKind::Workflow,
    ]);
    let target = (text(), text(), prop::option::of(text()), kind).prop_map(|(service, handler, key, kind)| Target {
        service,
        handler,
        key,
        kind,
    });
    let caller =
        prop::option::of((any::<InvocationKey>(), any::<u32>()).prop_map(|(id, c)| Caller { id, completion_id: c }));
    (
        target,
        prop::option::of(text()),
        any::<(u64, u32, u64)>(),
        status(),
        caller,
        small_u32s(),
        prop::collection::vec(any::<(u64, u32)>(), 0..4),
    )
        .prop_map(
            |(target, deployment_id, (created_at_ms, journal_len, retention_ms), status, caller, delivered, timers)| {
                InvocationRecord {
                    target,
                    deployment_id,
                    created_at_ms,
                    journal_len,
                    status,
                    caller,
                    delivered,
                    timers,
                    retention_ms,
                    attached: Vec::new(),
                }
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    let key = any::<InvocationKey>;
    prop_oneof![
        any::<(u64, u64)>().prop_map(|(node_id, term)| Command::AnnounceLeader { node_id, term }),
        (text(), text(), prop::collection::btree_map(text(), blob(), 0..4), prop::option::of(text())).prop_map(
            |(service, object_key, new_state, expected_version)| Command::SetState {
                service,
                object_key,
                new_state,
                expected_version
            }
        ),
        text().prop_map(|id| Command::RemoveDeployment { id }),
        (key(), record(), blob()).prop_map(|(id, record, input)| Command::Invoke { id, record, input }),
        (key(), prop::collection::vec(blob(), 0..4), small_u32s())
            .prop_map(|(id, entries, workflow_runs)| Command::AppendJournalUnchecked { id, entries, workflow_runs }),
        (key(), any::<u32>(), prop::collection::vec(blob(), 0..4), small_u32s())
            .prop_map(|(id, at, entries, workflow_runs)| Command::AppendJournal { id, at, entries, workflow_runs }),
        (key(), text()).prop_map(|(id, deployment_id)| Command::PinDeployment { id, deployment_id }),
        (key(), small_u32s(), any::<(u32, u32)>()).prop_map(|(id, awaiting, (journal_len_seen, attempt_start))| {
            Command::Suspend { id, awaiting, journal_len_seen, attempt_start }
        }),
        (any::<u64>(), key(), any::<u32>()).prop_map(|(fire_at_ms, id, completion_id)| Command::FireTimer {
            fire_at_ms,
            id,
            completion_id
        }),
        (key(), any::<u32>(), blob()).prop_map(|(id, completion_id, notification)| Command::Deliver {
            id,
            completion_id,
            notification
        }),
        any::<u64>().prop_map(|seq| Command::OutboxDone { seq }),
        (key(), result(), any::<u64>()).prop_map(|(id, result, completed_at_ms)| Command::Complete {
            id,
            result,
            completed_at_ms
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (prop::option::of(any::<u64>()), command()).prop_map(|(fence, command)| Envelope { fence, command })
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        (text(), text()).prop_map(|(service, object_key)| Query::GetState { service, object_key }),
        Just(Query::Catalog),
        any::<InvocationKey>().prop_map(Query::Invocation),
        any::<InvocationKey>().prop_map(Query::Expiry),
    ]
}

fn policy() -> impl Strategy<Value = WaitPolicy> {
    (prop::option::of(any::<u64>()), any::<bool>())
        .prop_map(|(timeout_ms, until_parked)| WaitPolicy { timeout_ms, until_parked })
}

fn propose_error() -> impl Strategy<Value = ProposeError> {
    prop_oneof![
        prop::option::of(any::<u64>()).prop_map(|leader| ProposeError::NotLeader { leader }),
        any::<u32>().prop_map(ProposeError::NoSuchGroup),
        text().prop_map(ProposeError::Unavailable),
        any::<(usize, usize)>().prop_map(|(size, limit)| ProposeError::TooLarge { size, limit }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::LeaderAnnounced),
        text().prop_map(|version| Response::StateSet { version }),
        (text(), text()).prop_map(|(expected, actual)| Response::VersionMismatch { expected, actual }),
        prop_oneof![
            Just(InvocationOutcome::Invoked),
            Just(InvocationOutcome::Inboxed),
            Just(InvocationOutcome::Scheduled),
            status().prop_map(InvocationOutcome::Exists),
        ]
        .prop_map(Response::Invocation),
        any::<(u64, u64)>().prop_map(|(fence, term)| Response::Fenced { fence, term }),
    ]
}

fn query_result() -> impl Strategy<Value = QueryResult> {
    prop_oneof![
        (prop::collection::btree_map(text(), blob(), 0..4), text())
            .prop_map(|(state, version)| QueryResult::State { state, version }),
        prop::option::of(status()).prop_map(QueryResult::Invocation),
        prop::option::of(any::<u64>()).prop_map(QueryResult::Expiry),
    ]
}

fn waited() -> impl Strategy<Value = Waited> {
    prop_oneof![result().prop_map(Waited::Done), Just(Waited::Pending)]
}

fn group_status() -> impl Strategy<Value = GroupStatus> {
    let parts = (any::<u32>(), prop::collection::vec(any::<u64>(), 0..4), any::<[Option<u64>; 8]>(), text());
    (parts, prop::option::of(text())).prop_map(|((id, replicas, o, role), failure)| GroupStatus {
        id,
        replicas,
        leader: o[0],
        term: o[1],
        committed: o[2],
        applied: o[3],
        last_log: o[4],
        last_purged: o[5],
        snapshot: o[6],
        role,
        failure,
    })
}

fn log_id() -> impl Strategy<Value = LogId<u64>> {
    any::<(u64, u64, u64)>().prop_map(|(term, node, index)| LogId::new(CommittedLeaderId::new(term, node), index))
}

fn vote() -> impl Strategy<Value = Vote<u64>> {
    (any::<(u64, u64)>(), any::<bool>()).prop_map(|((term, node), committed)| {
        if committed { Vote::new_committed(term, node) } else { Vote::new(term, node) }
    })
}

fn membership() -> impl Strategy<Value = Membership<u64, BasicNode>> {
    (prop::collection::btree_set(0u64..8, 1..4), prop::collection::btree_map(0u64..8, text(), 0..3)).prop_map(
        |(voters, learners): (BTreeSet<u64>, BTreeMap<u64, String>)| {
            let mut nodes: BTreeMap<u64, BasicNode> =
                learners.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
            for v in &voters {
                nodes.entry(*v).or_insert_with(|| BasicNode { addr: format!("127.0.0.1:{}", 5122 + v) });
            }
            Membership::new(vec![voters], nodes)
        },
    )
}

fn entry() -> impl Strategy<Value = Entry<TypeConfig>> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        prop::collection::vec(envelope(), 0..3).prop_map(|b| EntryPayload::Normal(Batch(b))),
        membership().prop_map(EntryPayload::Membership),
    ];
    (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

fn raft_error<E: std::fmt::Debug>() -> impl Strategy<Value = RaftError<u64, E>> {
    // openraft's errors and messages are not `Clone`, which `Just` needs.
    any::<bool>().prop_map(|stopped| RaftError::Fatal(if stopped { Fatal::Stopped } else { Fatal::Panicked }))
}

/// A valid encoding of a value of one of the [`DECODERS`] types.
fn samples() -> impl Strategy<Value = Sample> {
    let opt_log = || prop::option::of(log_id());
    let snapshot_request = (
        vote(),
        opt_log(),
        opt_log(),
        membership(),
        text(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(|(vote, last_log_id, membership_log_id, membership, snapshot_id, offset, data, done)| {
            InstallSnapshotRequest::<TypeConfig> {
                vote,
                meta: SnapshotMeta {
                    last_log_id,
                    last_membership: StoredMembership::new(membership_log_id, membership),
                    snapshot_id,
                },
                offset,
                data,
                done,
            }
        });
    let append_reply = prop_oneof![
        prop_oneof![
            Just(()).prop_map(|()| AppendEntriesResponse::Success),
            prop::option::of(log_id()).prop_map(AppendEntriesResponse::PartialSuccess),
            Just(()).prop_map(|()| AppendEntriesResponse::Conflict),
            vote().prop_map(AppendEntriesResponse::HigherVote),
        ]
        .prop_map(Ok),
        raft_error().prop_map(Err),
    ];
    let segment = || (text(), any::<u64>()).prop_map(|(id, offset)| SnapshotSegmentId { id, offset });
    let snapshot_reply = prop_oneof![
        vote().prop_map(|vote| Ok(InstallSnapshotResponse { vote })),
        raft_error().prop_map(Err),
        (segment(), segment()).prop_map(|(expect, got)| Err(RaftError::APIError(
            InstallSnapshotError::SnapshotMismatch(SnapshotMismatch { expect, got })
        ))),
    ];
    prop_oneof![
        (vote(), opt_log(), prop::collection::vec(entry(), 0..4), opt_log())
            .prop_map(|(vote, prev_log_id, entries, leader_commit)| AppendEntriesRequest::<TypeConfig> {
                vote,
                prev_log_id,
                entries,
                leader_commit
            })
            .prop_map(sample(0)),
        (vote(), opt_log()).prop_map(|(vote, last)| VoteRequest::new(vote, last)).prop_map(sample(1)),
        snapshot_request.prop_map(sample(2)),
        envelope().prop_map(sample(3)),
        query().prop_map(sample(4)),
        (envelope(), policy()).prop_map(sample(5)),
        (any::<InvocationKey>(), policy()).prop_map(sample(6)),
        append_reply.prop_map(sample::<AppendReply>(7)),
        prop_oneof![
            (vote(), opt_log(), any::<bool>()).prop_map(|(v, l, g)| Ok(VoteResponse::new(v, l, g))),
            raft_error().prop_map(Err),
        ]
        .prop_map(sample::<VoteReply>(8)),
        snapshot_reply.prop_map(sample::<SnapshotReply>(9)),
        prop_oneof![response().prop_map(Ok), propose_error().prop_map(Err)].prop_map(sample(10)),
        prop_oneof![query_result().prop_map(Ok), propose_error().prop_map(Err)].prop_map(sample(11)),
        prop_oneof![waited().prop_map(Ok), propose_error().prop_map(Err)].prop_map(sample(12)),
        prop_oneof![prop::option::of(waited()).prop_map(Ok), propose_error().prop_map(Err)].prop_map(sample(13)),
        prop::collection::vec(group_status(), 0..4).prop_map(sample(14)),
    ]
}

// ---- mutations -----------------------------------------------------------------------

/// Lengths a forged varint claims.
fn huge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(1u64 << 62),
        Just(1u64 << 40),
        Just(1u64 << 32),
        Just(u64::from(u32::MAX) + 1),
        Just(1u64 << 24),
        any::<u64>(),
    ]
}

fn huge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(u32::MAX), Just(1u32 << 31), Just(1u32 << 28), Just(1u32 << 20), any::<u32>()]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Delete(Index),
    Insert(Index, u8),
    Truncate(Index),
    /// `0xFD` and a little-endian u64 inserted (or, `overwrite`, written over).
    Varint64(Index, u64, bool),
    /// `0xFC` and a little-endian u32.
    Varint32(Index, u32, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), huge_u64(), any::<bool>()).prop_map(|(i, n, o)| Mutation::Varint64(i, n, o)),
        3 => (any::<Index>(), huge_u32(), any::<bool>()).prop_map(|(i, n, o)| Mutation::Varint32(i, n, o)),
    ]
}

/// Writes `marker` and `le` at `at`, over the bytes there or inserted.
fn splice(bytes: &mut Vec<u8>, at: usize, marker: u8, le: &[u8], overwrite: bool) {
    let mut forged = vec![marker];
    forged.extend_from_slice(le);
    let end = if overwrite { (at + forged.len()).min(bytes.len()) } else { at };
    bytes.splice(at..end, forged);
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    // Positions: an existing byte (never the format byte 0, which only
    // picks a version: mutating it ends every decode at once), or the end.
    let len = bytes.len();
    let existing = |i: &Index| if len > 1 { Some(1 + i.index(len - 1)) } else { None };
    let gap = |i: &Index| 1 + i.index(len.max(1));
    match m {
        Mutation::Flip(i, x) => {
            if let Some(at) = existing(i) {
                bytes[at] ^= x;
            }
        }
        Mutation::Set(i, b) => {
            if let Some(at) = existing(i) {
                bytes[at] = *b;
            }
        }
        Mutation::Delete(i) => {
            if let Some(at) = existing(i) {
                bytes.remove(at);
            }
        }
        Mutation::Insert(i, b) => bytes.insert(gap(i).min(len), *b),
        Mutation::Truncate(i) => bytes.truncate(gap(i).min(len)),
        Mutation::Varint64(i, n, o) => splice(bytes, gap(i).min(len), 0xFD, &n.to_le_bytes(), *o),
        Mutation::Varint32(i, n, o) => splice(bytes, gap(i).min(len), 0xFC, &n.to_le_bytes(), *o),
    }
}

fn random_payload() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..400), any::<bool>()).prop_map(|(mut p, versioned)| {
        // Half past the version check, into bincode.
        if versioned && !p.is_empty() {
            p[0] = 1;
        }
        p
    })
}

// ---- properties ----------------------------------------------------------------------

proptest! {
    // `PROPTEST_CASES` overrides the count (proptest reads it over this).
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes: every decoder refuses or decodes, within its budget.
    #[test]
    fn random_bytes_never_panic_or_blow_up(bytes in random_payload()) {
        decode_everything(&bytes)?;
    }

    /// A valid encoding decodes as its type and re-encodes to itself.
    #[test]
    fn valid_payloads_round_trip(s in samples()) {
        let d = &DECODERS[s.ty];
        prop_assert_eq!((d.reencode)(&s.bytes), Some(s.bytes.clone()), "{}", d.name);
        decode_everything(&s.bytes)?;
    }

    /// A mutated valid encoding: every decoder refuses or decodes, within
    /// its budget.
    #[test]
    fn mutated_payloads_never_panic_or_blow_up(
        s in samples(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut bytes = s.bytes;
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        decode_everything(&bytes)?;
    }
}

/// Deterministic: a forged length (`0xFD` + 2⁶² and `u64::MAX`, `0xFC` +
/// `u32::MAX`), inserted and written over, at every offset of valid
/// encodings of each type.
#[test]
fn forged_lengths_at_every_offset() {
    let mut runner = TestRunner::deterministic();
    let strategy = samples();
    let mut seen = BTreeSet::new();
    let mut tried = 0usize;
    while seen.len() < DECODERS.len() || tried < 60 {
        let s = strategy.new_tree(&mut runner).expect("a sample").current();
        seen.insert(s.ty);
        tried += 1;
        assert!(tried < 10_000, "the sample strategy never produced types {seen:?} of {}", DECODERS.len());
        for at in 1..=s.bytes.len() {
            for overwrite in [false, true] {
                for (marker, le) in [
                    (0xFDu8, (1u64 << 62).to_le_bytes().to_vec()),
                    (0xFD, u64::MAX.to_le_bytes().to_vec()),
                    (0xFC, u32::MAX.to_le_bytes().to_vec()),
                ] {
                    let mut bytes = s.bytes.clone();
                    splice(&mut bytes, at, marker, &le, overwrite);
                    if let Err(e) = decode_everything(&bytes) {
                        panic!("{} sample, forged length at {at}: {e}", DECODERS[s.ty].name);
                    }
                }
            }
        }
    }
}
