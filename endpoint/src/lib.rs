//! Talking to SDK endpoints: the HTTP side of keel's contract with services built on the
//! Restate SDKs.
//!
//! An SDK endpoint (a *deployment*) is an HTTP server that answers `GET {uri}/discover`
//! with a manifest of its services and runs handlers on `POST {uri}/invoke/{svc}/{handler}`.
//! Which HTTP keel must speak depends on the deployment, not on keel: the TypeScript and
//! Rust SDKs serve h2c only (HTTP/2 over cleartext, *prior knowledge*: no `Upgrade` dance),
//! while FaaS-style handlers and some ASGI servers speak only HTTP/1.1. The registration
//! request says which (`use_http_11`), so [`EndpointClient`] keeps one connection pool per
//! HTTP version and every call names the version to use.
//!
//! * [`address`]: [`EndpointAddress`], the registered base URI, extra headers and HTTP
//!   version, and how request paths are joined onto it.
//! * [`client`]: [`EndpointClient`], the shared pooled client (cheap to clone), usable for
//!   any request; the invoker's invocation streams will go through it too.
//! * [`discovery`]: [`EndpointClient::discover`], which fetches, checks and validates the
//!   manifest and picks the invocation protocol version ([`Discovered`]).
//! * [`error`]: [`DiscoveryError`], whose variants map onto Restate's `META00xx` codes and
//!   the HTTP status the admin API should answer with.
//!
//! What the manifest means (its fields, validation and version negotiation) lives in
//! `keel-protocol`; this crate only moves bytes and reports transport problems precisely.
#![deny(missing_docs)]

pub mod address;
pub mod client;
pub mod discovery;
pub mod error;

pub use address::EndpointAddress;
pub use client::{EndpointClient, HttpVersion, RequestBody};
pub use discovery::{Discovered, MAX_MANIFEST_BYTES};
pub use error::DiscoveryError;
