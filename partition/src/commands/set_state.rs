//! `SetState`: the admin API replaces all state of one virtual object,
//! optionally only if it still has the version the client read
//! (optimistic concurrency; the version is a hash of the state, see
//! [`state_version`]).

use crate::command::{Response, StateMap};
use crate::keys;
use crate::state::{load_state, state_version};
use crate::store::StateTxn;

/// Replaces the state of `service`/`object_key` with `new_state`, unless
/// `expected_version` is given and differs from the current version.
pub(crate) fn apply(
    txn: &mut impl StateTxn,
    service: &str,
    object_key: &str,
    new_state: &StateMap,
    expected_version: Option<&str>,
) -> Response {
    let current = load_state(txn, &keys::state_prefix(service, object_key));
    let actual = state_version(&current);
    if let Some(expected) = expected_version
        && expected != actual
    {
        return Response::VersionMismatch { expected: expected.to_string(), actual };
    }
    for name in current.keys().filter(|n| !new_state.contains_key(*n)) {
        txn.delete(keys::state_key(service, object_key, name));
    }
    for (name, value) in new_state {
        txn.put(keys::state_key(service, object_key, name), value.clone());
    }
    Response::StateSet { version: state_version(new_state) }
}
