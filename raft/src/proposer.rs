//! The proposer of one group: group commit.
//!
//! Proposals of a group queue here and the proposer packs everything that
//! queued up while the previous entry committed into one Raft entry (a
//! [`Batch`]), so many writers share one replication round and one fsync.
//! Queued proposals keep their order, which an invocation attempt relies
//! on when it pipelines its journal entries. Admission is by bytes, so a
//! flood of large commands cannot make small ones wait behind it forever.

use crate::messages::ProposeError;
use crate::metrics::{GroupLabel, RaftMetricsSet};
use crate::types::{Batch, encoded_len, typ};
use keel_partition::{Envelope, Response};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Upper bound of commands merged into one Raft entry.
const MAX_BATCH: usize = 1024;
/// Upper bound of the encoded commands merged into one Raft entry. Every
/// entry is replicated in one message, so this keeps each far below the
/// gRPC limit ([`crate::transport::MAX_MESSAGE_BYTES`]); a single command
/// larger than this is refused ([`ProposeError::TooLarge`]) rather than
/// left to fail replication over and over.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;
/// Encoded bytes of commands that may wait in a group's proposal queue
/// before large commands are refused.
const MAX_QUEUED_BYTES: usize = 2 * MAX_ENTRY_BYTES;
/// Commands up to this size are admitted whatever the queue holds.
const SMALL_COMMAND_BYTES: usize = 64 << 10;
/// How long a leader waits for a proposal or read to commit before answering
/// `Unavailable` (instead of hanging while quorum is lost).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

struct Proposal {
    envelope: Envelope,
    /// The envelope's encoded size.
    size: usize,
    reply: oneshot::Sender<Result<Response, ProposeError>>,
}

/// The sending side of a group's proposal queue.
pub(crate) struct Proposer {
    group: u32,
    tx: mpsc::Sender<Proposal>,
    /// Encoded bytes in the queue (taken off by the proposer loop).
    queued: Arc<AtomicUsize>,
}

impl Proposer {
    /// Starts the proposer loop of `group` over `raft`.
    pub(crate) fn start(group: u32, raft: typ::Raft, metrics: Arc<RaftMetricsSet>) -> Proposer {
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run_proposer(group, raft, rx, queued.clone(), metrics));
        Proposer { group, tx, queued }
    }

    /// Queues a proposal; see [`crate::groups::Group::submit`].
    pub(crate) async fn submit(
        &self,
        envelope: Envelope,
    ) -> Result<impl Future<Output = Result<Response, ProposeError>> + Send + 'static, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let size = encoded_len(&envelope);
        if size > MAX_ENTRY_BYTES {
            return Err(ProposeError::TooLarge { size, limit: MAX_ENTRY_BYTES });
        }
        // Admission by bytes: commands wait in the queue in order, so every
        // queued byte delays whoever comes next. Large commands beyond the
        // budget are refused (the client retries); small ones always get in,
        // so a flood of large requests cannot starve them.
        let queued = self.queued.load(Ordering::Relaxed);
        if size > SMALL_COMMAND_BYTES && queued.saturating_add(size) > MAX_QUEUED_BYTES {
            return Err(ProposeError::Unavailable(format!(
                "partition {} is overloaded: {queued} bytes of commands wait to commit; retry later",
                self.group
            )));
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        self.tx
            .send(Proposal { envelope, size, reply })
            .await
            .map_err(|_| ProposeError::Unavailable("partition is shutting down".into()))?;
        Ok(async move { rx.await.map_err(|_| ProposeError::Unavailable("partition is shutting down".into()))? })
    }
}

/// Batches concurrent proposals of one group into single Raft entries
/// (group commit). One batch is in flight at a time: while it commits, new
/// proposals queue up and form the next batch, so batches grow with load
/// (measured: more batches in flight only made them smaller and slower).
async fn run_proposer(
    group: u32,
    raft: typ::Raft,
    mut rx: mpsc::Receiver<Proposal>,
    queued: Arc<AtomicUsize>,
    metrics: Arc<RaftMetricsSet>,
) {
    let label = GroupLabel { partition: group };
    // A proposal that did not fit the previous batch opens the next one
    // (proposals stay in order: an attempt's pipelined entries rely on it).
    let mut carried: Option<Proposal> = None;
    // Cancellation-safe: `recv` loses nothing when the loop ends, and the
    // loop only ends when every sender is gone.
    let take = |p: Proposal| {
        queued.fetch_sub(p.size, Ordering::Relaxed);
        p
    };
    while let Some(first) = match carried.take() {
        Some(p) => Some(p),
        None => rx.recv().await.map(take),
    } {
        let mut bytes = first.size;
        let mut envelopes = vec![first.envelope];
        let mut replies = vec![first.reply];
        while envelopes.len() < MAX_BATCH {
            match rx.try_recv().map(take) {
                Ok(p) if bytes.saturating_add(p.size) <= MAX_ENTRY_BYTES => {
                    bytes += p.size;
                    envelopes.push(p.envelope);
                    replies.push(p.reply);
                }
                Ok(p) => {
                    carried = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        metrics.proposals.get_or_create(&label).inc_by(envelopes.len() as u64);
        metrics.proposal_batches.get_or_create(&label).inc();
        let started = Instant::now();
        let outcome = tokio::time::timeout(COMMIT_TIMEOUT, raft.client_write(Batch(envelopes))).await;
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        let result = match outcome {
            Err(_) => Err(ProposeError::Unavailable("commit timed out waiting for a quorum".into())),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ProposeError::NotLeader { leader: f.leader_id })
            }
            Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
            Ok(Ok(resp)) => Ok(resp.data),
        };
        // A dropped receiver means the caller gave up; nothing to tell it.
        match result {
            Ok(responses) => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
