//! A partition for unit tests, driven only through [`apply`].
//!
//! Tests could call the handlers directly, but then dispatch and fencing
//! would never be on the path, and a test could put the state into a shape
//! no log can produce. Here every step is an [`Envelope`] applied as the
//! next log entry, like Raft would: commands a leader-side actor proposes
//! are fenced with the current term, the others are client commands. The
//! helpers unwrap the response of the kind the command answers and panic on
//! any other, so a test that gets `Fenced` or a catalog answer by mistake
//! fails loudly.

use crate::apply::apply;
use crate::catalog::record::CatalogOutcome;
use crate::command::{Command, Effect, Envelope, RecordMeta, Response};
use crate::error::ApplyError;
use crate::journal_position;
use crate::model::invocation::{
    Caller, HandlerKind, Intervention, InvocationKey, InvocationRecord, InvocationResult, Reply, ResumeDeployment,
    Status, Target,
};
use crate::model::outcome::{InvocationEffect, InvocationOutcome};
use crate::model::storage;
use crate::store::MemStore;

/// The id of test invocation `n`.
pub(crate) fn id(n: u8) -> InvocationKey {
    [n; 24]
}

/// A record for an `Invoke` of handler `Obj/h` of `kind`.
pub(crate) fn record(kind: HandlerKind, key: Option<&str>) -> InvocationRecord {
    InvocationRecord {
        target: Target { service: "Obj".into(), handler: "h".into(), key: key.map(str::to_string), kind },
        deployment_id: None,
        created_at_ms: 5,
        journal_len: 0,
        status: Status::Invoked,
        caller: None,
        delivered: Vec::new(),
        timers: Vec::new(),
        retention_ms: 0,
        attached: Vec::new(),
    }
}

/// One partition's state and the position of its log.
pub(crate) struct TestPartition {
    /// The state, for reads and for setting up what no command writes.
    pub(crate) store: MemStore,
    /// The term of the next entries (and the fence of leader commands).
    pub(crate) term: u64,
    /// The last applied entry.
    last: RecordMeta,
}

impl TestPartition {
    /// An empty partition whose leader is in term 1.
    pub(crate) fn new() -> Self {
        TestPartition { store: MemStore::default(), term: 1, last: RecordMeta { index: 0, term: 1, position: 0 } }
    }

    /// Applies `envelope` as the next entry of the current term.
    pub(crate) fn try_apply(&mut self, envelope: &Envelope) -> Result<(Response, Vec<Effect>), ApplyError> {
        self.last = RecordMeta { index: self.last.index + 1, term: self.term, position: 0 };
        apply(&mut self.store, envelope, self.last)
    }

    /// [`try_apply`](Self::try_apply), which must succeed.
    pub(crate) fn apply(&mut self, envelope: &Envelope) -> (Response, Vec<Effect>) {
        self.try_apply(envelope).expect("the command applies")
    }

    /// The log sequence of the last applied command (what orders inboxes
    /// and numbers outbox messages).
    pub(crate) fn seq(&self) -> u64 {
        self.last.seq()
    }

    /// Applies an invocation command proposed by the leader's actors
    /// (fenced with the current term) or by a client.
    fn invocation(&mut self, envelope: Envelope) -> (InvocationOutcome, Vec<InvocationEffect>) {
        match self.apply(&envelope) {
            (Response::Invocation(outcome), effects) => {
                let effects = effects
                    .into_iter()
                    .map(|e| match e {
                        Effect::Invocation(e) => e,
                        other => panic!("{:?} had effect {other:?}", envelope.command.name()),
                    })
                    .collect();
                (outcome, effects)
            }
            (other, _) => panic!("{:?} answered {other:?}", envelope.command.name()),
        }
    }

    fn leader(&mut self, command: Command) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.invocation(Envelope::fenced(self.term, command))
    }

    fn client(&mut self, command: Command) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.invocation(Envelope::client(command))
    }

    /// Applies a catalog command (from the admin API).
    pub(crate) fn catalog(&mut self, command: Command) -> CatalogOutcome {
        match self.apply(&Envelope::client(command)) {
            (Response::Catalog(outcome), effects) if effects.is_empty() => outcome,
            other => panic!("a catalog command answered {other:?}"),
        }
    }

    /// `Invoke` (from the ingress or another partition's outbox).
    pub(crate) fn invoke(
        &mut self,
        id: InvocationKey,
        record: InvocationRecord,
        input: &[u8],
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.client(Command::Invoke { id, record, input: input.to_vec() })
    }

    /// `AppendJournal` of entries that target no workflow run, at the
    /// position where the journal ends (as an attempt that knows the
    /// latest journal appends).
    pub(crate) fn append(
        &mut self,
        id: InvocationKey,
        entries: &[Vec<u8>],
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        let at = match storage::load(&self.store, &id).expect("a readable record") {
            Some(record) => journal_position::produced(&self.store, &id, &record).expect("a readable count"),
            None => 0,
        };
        self.append_at(id, at, entries)
    }

    /// `AppendJournal` at position `at`.
    pub(crate) fn append_at(
        &mut self,
        id: InvocationKey,
        at: u32,
        entries: &[Vec<u8>],
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.leader(Command::AppendJournal { id, at, entries: entries.to_vec(), workflow_runs: Vec::new() })
    }

    /// `PinDeployment`.
    pub(crate) fn pin(&mut self, id: InvocationKey, deployment_id: &str) -> InvocationOutcome {
        self.leader(Command::PinDeployment { id, deployment_id: deployment_id.into() }).0
    }

    /// `Suspend`.
    pub(crate) fn suspend(
        &mut self,
        id: InvocationKey,
        awaiting: &[u32],
        journal_len_seen: u32,
        attempt_start: u32,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.leader(Command::Suspend { id, awaiting: awaiting.to_vec(), journal_len_seen, attempt_start })
    }

    /// `FireTimer`.
    pub(crate) fn fire_timer(
        &mut self,
        fire_at_ms: u64,
        id: InvocationKey,
        completion_id: u32,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.leader(Command::FireTimer { fire_at_ms, id, completion_id })
    }

    /// `Attach` (shipped by the waiting invocation's partition).
    pub(crate) fn attach(
        &mut self,
        id: InvocationKey,
        caller: Caller,
        reply: Reply,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.client(Command::Attach { id, caller, reply })
    }

    /// `Deliver` (shipped by another partition, or an awakeable's resolution).
    pub(crate) fn deliver(
        &mut self,
        id: InvocationKey,
        completion_id: u32,
        notification: &[u8],
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.client(Command::Deliver { id, completion_id, notification: notification.to_vec() })
    }

    /// `OutboxDone`.
    pub(crate) fn outbox_done(&mut self, seq: u64) -> InvocationOutcome {
        self.leader(Command::OutboxDone { seq }).0
    }

    /// `Intervene` (from the admin API).
    pub(crate) fn intervene(
        &mut self,
        id: InvocationKey,
        what: Intervention,
        completed_at_ms: u64,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.client(Command::Intervene { id, what, completed_at_ms })
    }

    /// `Resume` (from the admin API).
    pub(crate) fn resume(
        &mut self,
        id: InvocationKey,
        deployment: ResumeDeployment,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.client(Command::Resume { id, deployment })
    }

    /// `Complete`.
    pub(crate) fn complete(
        &mut self,
        id: InvocationKey,
        result: &InvocationResult,
        completed_at_ms: u64,
    ) -> (InvocationOutcome, Vec<InvocationEffect>) {
        self.leader(Command::Complete { id, result: result.clone(), completed_at_ms })
    }

    /// `Expire`.
    pub(crate) fn expire(&mut self, up_to_ms: u64) -> InvocationOutcome {
        let (outcome, effects) = self.leader(Command::Expire { up_to_ms });
        assert_eq!(effects, Vec::new(), "expiring has no effects");
        outcome
    }

    /// The record of `id`.
    pub(crate) fn load(&self, id: InvocationKey) -> Option<InvocationRecord> {
        storage::load(&self.store, &id).expect("records decode")
    }

    /// The journal of `id`.
    pub(crate) fn journal(&self, id: InvocationKey) -> Vec<Vec<u8>> {
        storage::journal(&self.store, &id)
    }

    /// Every timer, in firing order.
    pub(crate) fn timers(&self) -> Vec<(u64, InvocationKey, u32)> {
        storage::timers(&self.store, 0, u64::MAX)
    }
}
