//! keel's HTTP surfaces: the admin API (port 9070) and the ingress (port
//! 8080), written against the [`ClusterApi`] trait so this crate knows
//! nothing about Raft or storage: the binary plugs in the real cluster, tests
//! can plug in anything.
//!
//! Every error answers with a JSON body `{"message": ...}` and a fitting
//! status; nothing on these paths panics on user input.

mod admin;
mod api;
mod attach;
mod auth;
mod body;
mod deployments;
mod duration;
mod error;
mod extract;
mod handoff;
mod idempotency;
mod ingress;
mod interventions;
mod lookup;
mod reply;
mod schema_json;
mod serve;
mod state;
mod validate;

#[cfg(test)]
mod testing;

pub use admin::{AdminOptions, admin_router};
pub use api::{ClusterApi, ClusterError};
pub use duration::parse_duration;
pub use error::ApiError;
pub use ingress::{IngressOptions, ingress_router};
pub use serve::{ServeOptions, serve};
