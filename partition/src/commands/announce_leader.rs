//! `AnnounceLeader`: a new leader's epoch becomes part of the state.
//!
//! Raft commits an entry of the new term only after every entry of earlier
//! terms, so once this applies the leader's replica holds everything its
//! predecessors committed. Its actors wait for the [`Effect::LeaderReady`]
//! before they read that state and start work (resume invocations, load
//! timers, ship the outbox).

use crate::command::{Effect, Response};
use crate::error::ApplyError;
use crate::keys;
use crate::store::{StateTxn, StateView};

/// Records `term` as the partition's leader epoch.
pub(crate) fn apply(txn: &mut impl StateTxn, term: u64) -> (Response, Vec<Effect>) {
    txn.put(keys::leader_epoch_key(), term.to_be_bytes().to_vec());
    (Response::LeaderAnnounced, vec![Effect::LeaderReady { term }])
}

/// Reads the leader epoch last announced to this partition.
pub fn leader_epoch(view: &impl StateView) -> Result<Option<u64>, ApplyError> {
    let key = keys::leader_epoch_key();
    match view.get(&key) {
        None => Ok(None),
        Some(bytes) => {
            let len = bytes.len();
            let bytes: [u8; 8] = bytes
                .try_into()
                .map_err(|_| ApplyError::corrupt(key, format!("leader epoch has {len} bytes, expected 8")))?;
            Ok(Some(u64::from_be_bytes(bytes)))
        }
    }
}
