//! Read-only queries, served by the leader after a linearizability check.

use crate::catalog::record::{self as catalog, CatalogData};
use crate::command::StateMap;
use crate::error::ApplyError;
use crate::keys;
use crate::model::invocation::{InvocationKey, Status};
use crate::model::storage::load;
use crate::state::{load_state, state_version};
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
    Invocation(InvocationKey),
    /// When a completed invocation's record is purged.
    Expiry(InvocationKey),
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
    Invocation(Option<Status>),
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
        Query::Invocation(id) => Ok(QueryResult::Invocation(load(view, id)?.map(|r| r.status))),
        Query::Expiry(id) => Ok(QueryResult::Expiry(load(view, id)?.and_then(|r| crate::expiry::expires_at(&r)))),
    }
}
