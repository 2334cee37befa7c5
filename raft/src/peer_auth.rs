//! How nodes prove to each other that they belong to the cluster.
//!
//! The node port carries everything that can change a partition: Raft
//! votes and log entries, forwarded proposals (a forged `RegisterDeployment`
//! would point every call at an attacker's endpoint), reads of any state.
//! So every RPC must come from a member. keel offers two proofs, usable
//! together:
//!
//! * a **cluster secret** that every node shares: each request carries it in
//!   the `x-keel-cluster-secret-bin` metadata, and the server compares it in
//!   constant time before it reads the request's body — an unauthenticated
//!   peer cannot even make the server buffer a message;
//! * **mutual TLS**: every node presents a certificate signed by the
//!   cluster's CA and accepts only peers that do. Unlike the secret alone,
//!   this also hides and protects the traffic on the wire.
//!
//! The secret alone travels in clear text: on a network that others can
//! read, use TLS (or both).

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The metadata key of the secret (`-bin`: arbitrary bytes, base64 on the wire).
const SECRET_KEY: &str = "x-keel-cluster-secret-bin";

/// PEM material for mutual TLS; `Debug` does not show it (the key is secret).
#[derive(Clone, PartialEq, Eq)]
pub struct PeerTls {
    /// This node's certificate chain.
    pub cert: Vec<u8>,
    /// This node's private key.
    pub key: Vec<u8>,
    /// The CA every node's certificate is signed by.
    pub ca: Vec<u8>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls(cert, key, ca)")
    }
}

/// This node's credentials towards its peers, and what it demands of them.
#[derive(Clone, Default)]
pub struct PeerSecurity {
    secret: Option<Vec<u8>>,
    tls: Option<PeerTls>,
}

impl PeerSecurity {
    /// Security with an optional shared secret and optional mutual TLS;
    /// neither means an open node port (allowed only where no one else can
    /// reach it: a single node on loopback, or `--insecure-cluster`).
    pub fn new(secret: Option<String>, tls: Option<PeerTls>) -> Self {
        PeerSecurity { secret: secret.map(String::into_bytes), tls }
    }

    /// Adds this node's secret to an outgoing request.
    pub(crate) fn stamp<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(secret) = &self.secret {
            request.metadata_mut().insert_bin(SECRET_KEY, MetadataValue::from_bytes(secret));
        }
    }

    /// Checks an incoming request's secret (its headers only: this runs
    /// before the body is read). Equal lengths are compared in constant
    /// time, so timing does not reveal how much of a guess was right.
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    pub(crate) fn check(&self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(secret) = &self.secret else { return Ok(request) };
        let presented = request.metadata().get_bin(SECRET_KEY).and_then(|v| v.to_bytes().ok());
        match presented {
            Some(p) if bool::from(p.as_ref().ct_eq(secret.as_slice())) => Ok(request),
            Some(_) => Err(tonic::Status::unauthenticated("wrong cluster secret")),
            None => Err(tonic::Status::unauthenticated("this node requires the cluster secret")),
        }
    }

    /// TLS for connecting to a peer whose certificate names `host`.
    pub(crate) fn client_tls(&self, host: &str) -> Option<ClientTlsConfig> {
        self.tls.as_ref().map(|t| {
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&t.ca))
                .identity(Identity::from_pem(&t.cert, &t.key))
                .domain_name(host)
        })
    }

    /// TLS for the node port: present our certificate, require the peer's.
    pub(crate) fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.tls.as_ref().map(|t| {
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&t.cert, &t.key))
                .client_ca_root(Certificate::from_pem(&t.ca))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(security: &PeerSecurity) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        security.stamp(&mut r);
        r
    }

    #[test]
    fn secrets_must_match() {
        let server = PeerSecurity::new(Some("the-right-secret-123".into()), None);
        assert!(server.check(request(&server)).is_ok());
        let wrong = PeerSecurity::new(Some("the-wrong-secret-123".into()), None);
        let e = server.check(request(&wrong)).unwrap_err();
        assert_eq!((e.code(), e.message()), (tonic::Code::Unauthenticated, "wrong cluster secret"));
        let prefix = PeerSecurity::new(Some("the-right".into()), None);
        assert_eq!(server.check(request(&prefix)).unwrap_err().code(), tonic::Code::Unauthenticated);
        let none = PeerSecurity::default();
        let e = server.check(request(&none)).unwrap_err();
        assert_eq!(e.message(), "this node requires the cluster secret");
    }

    #[test]
    fn an_open_node_accepts_anyone() {
        let open = PeerSecurity::default();
        let someone = PeerSecurity::new(Some("whatever-secret-here".into()), None);
        assert!(open.check(request(&someone)).is_ok());
        assert!(open.check(request(&open)).is_ok());
    }
}
