//! Commands (what goes into the Raft log), responses (what the proposer gets
//! back) and effects (what the leader must do afterwards).

use crate::catalog::record::{CatalogOutcome, DeploymentRecord, ServiceOverrides};
use crate::model::invocation::Reply;
use crate::model::invocation::{
    Caller, Intervention, InvocationKey, InvocationRecord, InvocationResult, ResumeDeployment,
};
use crate::model::outcome::{InvocationEffect, InvocationOutcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Facts about a log record that [`apply`](crate::apply) may depend on. They
/// come from the Raft log entry, so every replica sees identical values:
/// they are apply's only notion of order and its only source of fresh
/// numbers (no clock, no randomness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// The log index of the entry; unique per partition and a source of fresh ids.
    pub index: u64,
    /// The Raft term of the leader that appended the entry; used for fencing.
    pub term: u64,
    /// Position of the command within its entry's batch.
    pub position: u32,
}

impl RecordMeta {
    /// A sequence number unique to this command and ordered like the log:
    /// the log index, then the position in the batch (batches hold far
    /// fewer than 2^16 commands).
    pub fn seq(&self) -> u64 {
        (self.index << 16) | u64::from(self.position & 0xffff)
    }
}

/// The named state entries of one virtual object, ordered by name.
pub type StateMap = BTreeMap<String, Vec<u8>>;

/// One command in a Raft log entry, with its fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `Some(term)` when proposed by a leader-side actor: the command is only
    /// valid if it is appended in that very term. An actor of a deposed
    /// leader may still hand proposals to Raft; fencing turns them into no-ops.
    /// Client requests forwarded from the ingress carry `None`.
    pub fence: Option<u64>,
    /// The command itself.
    pub command: Command,
}

impl Envelope {
    /// A command from a client (ingress/admin), valid in any term.
    pub fn client(command: Command) -> Self {
        Envelope { fence: None, command }
    }

    /// A command from a leader-side actor started in `term`.
    pub fn fenced(term: u64, command: Command) -> Self {
        Envelope { fence: Some(term), command }
    }
}

/// Every change a partition's state can undergo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A newly elected leader's actor announces its epoch. Once applied, all
    /// entries of earlier terms are applied too, so the actor may start work
    /// from a state that is complete.
    AnnounceLeader {
        /// The node that leads.
        node_id: u64,
        /// The term it leads in.
        term: u64,
    },
    /// Replaces all state of one virtual object (admin API).
    SetState {
        /// The virtual object's service name.
        service: String,
        /// The object key.
        object_key: String,
        /// The complete new state; names absent here are removed.
        #[serde(with = "crate::codec::byte_map")]
        new_state: StateMap,
        /// Optimistic concurrency: apply only if the current version equals this.
        expected_version: Option<String>,
    },
    /// Registers a deployment in the catalog (metadata group).
    RegisterDeployment {
        /// The deployment with its discovered manifest.
        record: DeploymentRecord,
        /// Overwrite a deployment at the same URI, allow breaking changes.
        force: bool,
        /// Allow breaking changes (service type changes) without overwriting.
        breaking: bool,
    },
    /// Removes a deployment from the catalog (metadata group).
    RemoveDeployment {
        /// The deployment id.
        id: String,
    },
    /// Changes a service's admin overrides (metadata group).
    UpdateService {
        /// The service name.
        name: String,
        /// The fields to change.
        patch: ServiceOverrides,
    },
    /// Creates an invocation (deduplicated by id).
    Invoke {
        /// The invocation id.
        id: InvocationKey,
        /// Target, creation time, retention. Status `Scheduled` makes it a
        /// delayed invocation that starts at that time; any other status
        /// (set by apply, like the journal length) starts it now.
        record: InvocationRecord,
        /// The raw `InputCommand` frame, journal entry 0.
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// Appends journal entries (raw protocol frames) of a running
    /// invocation without checking where they go: the append as keel wrote
    /// it before [`Command::AppendJournal`] carried a position. Kept (in
    /// its place in the enum, which fixes its encoding) so that logs
    /// written then still apply; keel no longer proposes it.
    AppendJournalUnchecked {
        /// The invocation id.
        id: InvocationKey,
        /// The entries, in order.
        #[serde(with = "crate::codec::byte_list")]
        entries: Vec<Vec<u8>>,
        /// As in [`Command::AppendJournal`].
        workflow_runs: Vec<u32>,
    },
    /// Pins an invocation to the deployment its first attempt uses.
    PinDeployment {
        /// The invocation id.
        id: InvocationKey,
        /// The deployment.
        deployment_id: String,
    },
    /// Suspends a running invocation.
    Suspend {
        /// The invocation id.
        id: InvocationKey,
        /// Completion/signal ids it waits for.
        awaiting: Vec<u32>,
        /// Journal length the suspending attempt knew.
        journal_len_seen: u32,
        /// Journal length when the suspending attempt started: later
        /// entries may be unknown to the SDK.
        attempt_start: u32,
    },
    /// Fires a durable timer (a sleep's, a delayed invocation's start, or
    /// the purge of a record completed before the expiry index existed),
    /// proposed by the leader's timer actor.
    FireTimer {
        /// The timer's firing time (part of its key).
        fire_at_ms: u64,
        /// The sleeping invocation.
        id: InvocationKey,
        /// The sleep's completion id.
        completion_id: u32,
    },
    /// Asks for invocation `id`'s result on behalf of another invocation
    /// (attach, get output; see [`crate::attach`]).
    Attach {
        /// The invocation whose result is wanted.
        id: InvocationKey,
        /// Who asks.
        caller: Caller,
        /// How the answer is framed.
        reply: Reply,
    },
    /// Delivers a call's result from another invocation (deduplicated by
    /// completion id).
    Deliver {
        /// The calling invocation.
        id: InvocationKey,
        /// The completion id answered.
        completion_id: u32,
        /// The raw `CallCompletionNotification` frame.
        #[serde(with = "serde_bytes")]
        notification: Vec<u8>,
    },
    /// Removes a shipped outbox message (proposed by the leader's shipper).
    OutboxDone {
        /// Its sequence number.
        seq: u64,
    },
    /// Cancels, kills or purges an invocation (admin API).
    Intervene {
        /// The invocation id.
        id: InvocationKey,
        /// What to do.
        what: Intervention,
        /// Now (ms since the Unix epoch), stamped by the proposer: a record
        /// completed by this command is purged its retention later.
        completed_at_ms: u64,
    },
    /// Resumes a paused, suspended or backing-off invocation (admin API).
    Resume {
        /// The invocation id.
        id: InvocationKey,
        /// Which deployment the new attempt uses.
        deployment: ResumeDeployment,
    },
    /// Completes an invocation with its result.
    Complete {
        /// The invocation id.
        id: InvocationKey,
        /// The result.
        result: InvocationResult,
        /// Completion time (ms since the Unix epoch), stamped by the
        /// proposing leader: the record is purged its retention later.
        completed_at_ms: u64,
    },
    /// Appends journal entries (raw protocol frames) that an attempt of a
    /// running invocation reported, if the journal ends where the attempt
    /// believes it does ([`crate::journal_position`]). With no entries, a
    /// barrier (`at` is not checked): once it is applied, everything
    /// proposed before it is applied too.
    AppendJournal {
        /// The invocation id.
        id: InvocationKey,
        /// How many produced entries the journal holds before these, as
        /// the attempt knows it; apply refuses the append otherwise
        /// ([`InvocationOutcome::StaleAppend`]).
        at: u32,
        /// The entries, in order.
        #[serde(with = "crate::codec::byte_list")]
        entries: Vec<Vec<u8>>,
        /// Positions in `entries` of calls and sends that target a
        /// workflow's run handler: the invoker resolves this from the
        /// catalog (which apply cannot read), and such a call gets the
        /// workflow run's id.
        workflow_runs: Vec<u32>,
    },
    /// Removes the completed invocations whose retention ended by
    /// `up_to_ms` (a batch of them; see [`crate::expiry`]), proposed by the
    /// leader when the first one is due.
    Expire {
        /// Now on the proposing leader's clock (ms since the Unix epoch).
        up_to_ms: u64,
    },
}

impl Command {
    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AnnounceLeader { .. } => "announce_leader",
            Command::SetState { .. } => "set_state",
            Command::RegisterDeployment { .. } => "register_deployment",
            Command::RemoveDeployment { .. } => "remove_deployment",
            Command::UpdateService { .. } => "update_service",
            Command::Invoke { .. } => "invoke",
            Command::AppendJournalUnchecked { .. } | Command::AppendJournal { .. } => "append_journal",
            Command::PinDeployment { .. } => "pin_deployment",
            Command::Suspend { .. } => "suspend",
            Command::FireTimer { .. } => "fire_timer",
            Command::Deliver { .. } => "deliver",
            Command::Attach { .. } => "attach",
            Command::OutboxDone { .. } => "outbox_done",
            Command::Intervene { .. } => "intervene",
            Command::Resume { .. } => "resume",
            Command::Complete { .. } => "complete",
            Command::Expire { .. } => "expire",
        }
    }
}

/// The outcome of applying one [`Envelope`], returned to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The leader epoch was recorded.
    LeaderAnnounced,
    /// The state was replaced; `version` is the new version token.
    StateSet {
        /// Version token of the new state.
        version: String,
    },
    /// `expected_version` did not match; nothing changed.
    VersionMismatch {
        /// The version the caller expected.
        expected: String,
        /// The version the object actually has.
        actual: String,
    },
    /// The outcome of a catalog command.
    Catalog(CatalogOutcome),
    /// The outcome of an invocation command.
    Invocation(InvocationOutcome),
    /// The command came from a deposed leader's actor and was ignored.
    Fenced {
        /// The term the proposer believed it led in.
        fence: u64,
        /// The term in which the entry was appended.
        term: u64,
    },
}

/// Work that the partition leader performs after the entry is durable.
/// Followers compute and drop effects; their results come back as commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// The leader's epoch is established: everything before it is applied, so
    /// the leader's actors may (re)start their work for `term`.
    LeaderReady {
        /// The term that is now established.
        term: u64,
    },
    /// Work on an invocation (start an attempt, answer its waiters).
    Invocation(InvocationEffect),
}
