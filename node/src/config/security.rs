//! The security settings of a node: how peers prove they belong to the
//! cluster, and which bearer tokens clients must present.
//!
//! Secrets are special among the settings in two ways. They come from a file
//! (`--cluster-secret-file PATH`) or from the value of an environment variable
//! (`KEEL_CLUSTER_SECRET`), never from a flag, because a flag's value is
//! visible to every user of the machine in `ps`. And they are never printed:
//! [`Secret`]'s `Debug` hides the value.

use super::sources::{ConfigError, Sources, boolean, err};
use keel_raft::peer_auth::PeerTls;
use std::fmt;
use std::path::{Path, PathBuf};

/// The shortest cluster secret accepted: a short one can be guessed by
/// anyone who can reach the node port and try.
const MIN_SECRET_LEN: usize = 16;

/// A secret value (cluster secret or bearer token); `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who may talk to this node, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Shared by every node and checked on every node RPC.
    pub cluster_secret: Option<Secret>,
    /// Mutual TLS on the node port.
    pub tls: Option<PeerTls>,
    /// The operator accepted a multi-node cluster without either.
    pub insecure_cluster: bool,
    /// Bearer token required on the admin API (all but `/health`).
    pub admin_token: Option<Secret>,
    /// Bearer token required on the ingress (all but `/restate/health`).
    pub ingress_token: Option<Secret>,
}

/// Reads the security settings; `nodes` is the size of the peer list.
pub(super) fn load(src: &Sources<'_>, nodes: usize) -> Result<Security, ConfigError> {
    let cluster_secret = secret(src, "cluster_secret_file", "KEEL_CLUSTER_SECRET")?;
    if let Some((field, s)) = &cluster_secret
        && s.0.len() < MIN_SECRET_LEN
    {
        return Err(err(field, format!("the cluster secret must be at least {MIN_SECRET_LEN} bytes long")));
    }
    let tls = tls_files(src)?;
    let insecure_cluster = src.value("insecure_cluster", boolean, false)?.value;
    let cluster_secret = cluster_secret.map(|(_, s)| s);
    if nodes > 1 && cluster_secret.is_none() && tls.is_none() && !insecure_cluster {
        return Err(err(
            "--cluster-secret-file",
            format!(
                "a cluster of {nodes} nodes needs a cluster secret (--cluster-secret-file PATH or \
                 KEEL_CLUSTER_SECRET) or mutual TLS (--tls-cert, --tls-key, --tls-ca); without either, anyone \
                 who reaches the node port can take the cluster over. --insecure-cluster starts anyway"
            ),
        ));
    }
    Ok(Security {
        cluster_secret,
        tls,
        insecure_cluster,
        admin_token: secret(src, "admin_token_file", "KEEL_ADMIN_TOKEN")?.map(|(_, s)| s),
        ingress_token: secret(src, "ingress_token_file", "KEEL_INGRESS_TOKEN")?.map(|(_, s)| s),
    })
}

/// A secret from the file named by `file_key` (flag, TOML key or
/// `KEEL_…_FILE`), else from the value of the environment variable
/// `value_env`; with the field it came from. Surrounding whitespace (the
/// newline an editor leaves) is not part of it; an empty one is an error.
fn secret(src: &Sources<'_>, file_key: &str, value_env: &str) -> Result<Option<(String, Secret)>, ConfigError> {
    let (field, text) = match src.get(file_key, |s| Ok(PathBuf::from(s)))? {
        Some(path) => (path.field.clone(), read(&path.field, &path.value)?),
        // As with every variable, an empty one counts as unset.
        None => match (src.env)(value_env).filter(|v| !v.trim().is_empty()) {
            Some(value) => (value_env.to_string(), value),
            None => return Ok(None),
        },
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(err(field, "the secret is empty"));
    }
    Ok(Some((field, Secret(text.to_string()))))
}

/// The three PEM files of mutual TLS: all or none.
fn tls_files(src: &Sources<'_>) -> Result<Option<PeerTls>, ConfigError> {
    let path = |key: &str| src.get(key, |s| Ok(PathBuf::from(s)));
    match (path("tls_cert")?, path("tls_key")?, path("tls_ca")?) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => {
            let pem = |field: &str, p: &Path| {
                let text = read(field, p)?;
                if text.contains("-----BEGIN ") {
                    Ok(text.into_bytes())
                } else {
                    Err(err(field, format!("{} is not a PEM file", p.display())))
                }
            };
            Ok(Some(PeerTls {
                cert: pem(&cert.field, &cert.value)?,
                key: pem(&key.field, &key.value)?,
                ca: pem(&ca.field, &ca.value)?,
            }))
        }
        (cert, key, _) => {
            let missing = if cert.is_none() {
                "--tls-cert"
            } else if key.is_none() {
                "--tls-key"
            } else {
                "--tls-ca"
            };
            Err(err(missing, "mutual TLS needs all of --tls-cert, --tls-key and --tls-ca"))
        }
    }
}

fn read(field: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))
}
