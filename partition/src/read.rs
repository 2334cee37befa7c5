//! Read-only queries, served by the leader after a linearizability check.

use crate::apply::{ApplyError, state_version};
use crate::catalog::{self, CatalogData};
use crate::command::StateMap;
use crate::keys;
use crate::store::StateView;
use serde::{Deserialize, Serialize};

/// A read of partition state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// All state of one virtual object.
    GetState {
        /// The virtual object's service name.
        service: String,
        /// The object key.
        object_key: String,
    },
    /// The whole service catalog (metadata group).
    Catalog,
    /// The status of one invocation.
    Invocation(crate::invocation::InvocationKey),
    /// When a completed invocation's record is purged.
    Expiry(crate::invocation::InvocationKey),
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResult {
    /// The object's state (empty if it has none) and its version token.
    State {
        /// Named state entries.
        state: StateMap,
        /// Version token, usable as `expected_version` of a later `SetState`.
        version: String,
    },
    /// The service catalog.
    Catalog(CatalogData),
    /// An invocation's status (`None`: unknown, or purged after completion).
    Invocation(Option<crate::invocation::Status>),
    /// When the record is purged (ms since the Unix epoch); `None` while it
    /// runs or if unknown.
    Expiry(Option<u64>),
}

/// Answers `query` from `view`.
pub fn read(view: &impl StateView, query: &Query) -> Result<QueryResult, ApplyError> {
    match query {
        Query::GetState { service, object_key } => {
            let state = load_state(view, &keys::state_prefix(service, object_key));
            let version = state_version(&state);
            Ok(QueryResult::State { state, version })
        }
        Query::Catalog => catalog::load(view)
            .map(QueryResult::Catalog)
            .map_err(|reason| ApplyError::Corrupt { key: vec![keys::KIND_DEPLOYMENT], reason }),
        Query::Invocation(id) => crate::invocation::load(view, id)
            .map(|r| QueryResult::Invocation(r.map(|r| r.status)))
            .map_err(|reason| ApplyError::Corrupt { key: keys::invocation_key(id), reason }),
        Query::Expiry(id) => crate::invocation::load(view, id)
            .map(|r| QueryResult::Expiry(r.and_then(|r| crate::idempotency::expiry(&r))))
            .map_err(|reason| ApplyError::Corrupt { key: keys::invocation_key(id), reason }),
    }
}

/// Collects all state entries under an object's prefix.
pub(crate) fn load_state(view: &impl StateView, prefix: &[u8]) -> StateMap {
    view.scan_prefix(prefix)
        .into_iter()
        .filter_map(|(k, v)| keys::state_name(prefix, &k).map(|n| (n.to_string(), v)))
        .collect()
}
