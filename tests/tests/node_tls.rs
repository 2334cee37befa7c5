//! End-to-end test of mutual TLS on the node port (`--tls-cert`,
//! `--tls-key`, `--tls-ca`): nodes with certificates from the cluster's CA
//! form a cluster; a node whose certificate comes from another CA cannot
//! join it; and a peer speaking plain text, presenting no certificate or
//! one from another CA is refused before it reaches any RPC.
//!
//! The certificates are made with the `openssl` command-line tool (EC
//! P-256, PKCS#8 keys) in a temporary directory. Build the binary first
//! (`cargo build -p keel`); see the crate docs of `keel_e2e` for the knobs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{
    Cluster, E2E_CLUSTER_SECRET, LEADER_TIMEOUT, WRITE_TIMEOUT, make_state, poll_until, read_retrying, run_test,
};
use keel_raft::transport::proto::StatusRequest;
use keel_raft::transport::proto::node_client::NodeClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The extensions of every node certificate: valid for the loopback
/// address the nodes' `--peers` name, as server and as client.
const NODE_EXTENSIONS: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
     basicConstraints=CA:FALSE\n\
     keyUsage=critical,digitalSignature\n\
     extendedKeyUsage=serverAuth,clientAuth\n";

/// Runs `openssl` with `command_line` (split at whitespace) in `dir`.
fn openssl(dir: &Path, command_line: &str) -> Result<()> {
    let out = Command::new("openssl")
        .args(command_line.split_whitespace())
        .current_dir(dir)
        .output()
        .context("cannot run `openssl` (is it installed?)")?;
    ensure!(
        out.status.success(),
        "openssl {command_line} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// EC P-256 keys, written unencrypted as PKCS#8 (what rustls reads).
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc";

/// A CA in `dir`: `<name>.pem` (certificate) and `<name>.key`.
fn make_ca(dir: &Path, name: &str) -> Result<PathBuf> {
    openssl(
        dir,
        &format!(
            "req -x509 {NEW_KEY} -keyout {name}.key -out {name}.pem -days 2 -subj /CN={name} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    )?;
    Ok(dir.join(format!("{name}.pem")))
}

/// A node certificate signed by CA `ca`: returns (`<name>.pem`, `<name>.key`).
fn make_node_cert(dir: &Path, ca: &str, name: &str, serial: u32) -> Result<(PathBuf, PathBuf)> {
    std::fs::write(dir.join(format!("{name}.ext")), NODE_EXTENSIONS)?;
    openssl(dir, &format!("req -new {NEW_KEY} -keyout {name}.key -out {name}.csr -subj /CN={name}"))?;
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -set_serial {serial} -days 2 \
             -out {name}.pem -extfile {name}.ext"
        ),
    )?;
    let key = dir.join(format!("{name}.key"));
    let key_pem = std::fs::read_to_string(&key)?;
    ensure!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{} is not a PKCS#8 key", key.display());
    Ok((dir.join(format!("{name}.pem")), key))
}

/// Everything the test needs: the cluster CA with one certificate for the
/// nodes (they all live on 127.0.0.1) and one for a test client, and a
/// second CA with a node certificate of its own.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    node: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    other_ca: PathBuf,
    other_node: (PathBuf, PathBuf),
}

fn make_pki() -> Result<Pki> {
    let dir = tempfile::Builder::new().prefix("keel-e2e-pki-").tempdir()?;
    let p = dir.path();
    let ca = make_ca(p, "cluster-ca")?;
    let node = make_node_cert(p, "cluster-ca", "node", 1001)?;
    let client = make_node_cert(p, "cluster-ca", "client", 1002)?;
    let other_ca = make_ca(p, "other-ca")?;
    let other_node = make_node_cert(p, "other-ca", "other-node", 2001)?;
    Ok(Pki { _dir: dir, ca, node, client, other_ca, other_node })
}

fn tls_args(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    [
        "--tls-cert",
        &cert.display().to_string(),
        "--tls-key",
        &key.display().to_string(),
        "--tls-ca",
        &ca.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// How a test client talks to a node port.
enum ClientSide<'a> {
    /// No TLS at all.
    Plain,
    /// TLS trusting `ca`, presenting `identity` (cert, key) if any.
    Tls { ca: &'a Path, identity: Option<&'a (PathBuf, PathBuf)> },
}

/// A `Status` RPC (with the cluster secret) to the node port at `addr`:
/// `Ok` if it answered, otherwise why not (connect or RPC failure).
async fn status_rpc(addr: std::net::SocketAddr, side: ClientSide<'_>) -> Result<()> {
    let endpoint = match side {
        ClientSide::Plain => Channel::from_shared(format!("http://{addr}"))?,
        ClientSide::Tls { ca, identity } => {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca)?))
                .domain_name("127.0.0.1");
            if let Some((cert, key)) = identity {
                tls = tls.identity(Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?));
            }
            Channel::from_shared(format!("https://{addr}"))?.tls_config(tls)?
        }
    };
    let channel = endpoint
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .context("connect")?;
    let mut request = tonic::Request::new(StatusRequest {});
    request
        .metadata_mut()
        .insert_bin("x-keel-cluster-secret-bin", MetadataValue::from_bytes(E2E_CLUSTER_SECRET.as_bytes()));
    NodeClient::new(channel).status(request).await.context("Status RPC")?;
    Ok(())
}

/// Node 3 starts with a certificate from another CA: nodes 1 and 2 elect
/// leaders without it (replication factor 3, quorum 2) and node 3 never
/// learns of one. Restarted with a certificate from the cluster CA it
/// joins, and a write commits and reads back through every node. Test
/// clients are refused unless they present a cluster certificate over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_the_cluster_ca() {
    run_test("mutual_tls_admits_only_the_cluster_ca", mutual_tls()).await;
}

async fn mutual_tls() -> Result<()> {
    let pki = make_pki()?;
    let good = tls_args(&pki.node.0, &pki.node.1, &pki.ca);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let mut args = vec!["--partitions", "2"];
    args.extend(&good);
    let mut c = Cluster::new(3, &args)?;
    let (cert, key, ca) = (
        pki.other_node.0.display().to_string(),
        pki.other_node.1.display().to_string(),
        pki.other_ca.display().to_string(),
    );
    c.nodes[2].set_flag("--tls-cert", &cert);
    c.nodes[2].set_flag("--tls-key", &key);
    c.nodes[2].set_flag("--tls-ca", &ca);
    for node in &mut c.nodes {
        node.spawn()?;
    }
    for node in &mut c.nodes {
        node.wait_ready(keel_e2e::STARTUP_TIMEOUT).await?;
    }

    // (c) The outsider cannot join: the two others elect leaders and commit
    // without it; it sees no leader (it cannot reach them, nor they it).
    c.wait_for_leaders(&[0, 1], LEADER_TIMEOUT).await.context("nodes 1 and 2 without node 3")?;
    let state = make_state("tls-before", 1);
    c.nodes[0].api.set_state_ok("tls", "before", &state, None).await.context("a write by nodes 1 and 2")?;
    // Node 1 did try to reach node 3, and refused its certificate.
    poll_until(LEADER_TIMEOUT, "node 1 to log that node 3's certificate is refused", async || {
        Ok(c.nodes[0].stderr_since_start().contains("invalid peer certificate").then_some(()))
    })
    .await?;
    let view = c.nodes[2].api.cluster_view().await?;
    for p in &view.partitions {
        ensure!(p.leader.is_none(), "node 3 (other CA) sees leader {:?} for partition {}", p.leader, p.id);
    }

    // (b) Clients of the node port. The control first: a cluster
    // certificate over TLS gets its answer.
    let addr = c.nodes[0].node_addr;
    status_rpc(addr, ClientSide::Tls { ca: &pki.ca, identity: Some(&pki.client) })
        .await
        .context("a client with a cluster certificate was refused")?;
    let refused = [
        ("plain text", status_rpc(addr, ClientSide::Plain).await),
        ("TLS without a client certificate", status_rpc(addr, ClientSide::Tls { ca: &pki.ca, identity: None }).await),
        (
            "TLS with a certificate from another CA",
            status_rpc(addr, ClientSide::Tls { ca: &pki.ca, identity: Some(&pki.other_node) }).await,
        ),
        (
            "TLS trusting another CA",
            status_rpc(addr, ClientSide::Tls { ca: &pki.other_ca, identity: Some(&pki.client) }).await,
        ),
    ];
    for (what, result) in refused {
        match result {
            Ok(()) => bail!("a client speaking {what} got an answer from the node port"),
            Err(e) => eprintln!("refused as it should be: {what}: {e:#}"),
        }
    }

    // (a) With a certificate of the cluster CA node 3 joins: every node
    // agrees on the leaders, and writes read back through every node.
    for (flag, value) in [("--tls-cert", &pki.node.0), ("--tls-key", &pki.node.1), ("--tls-ca", &pki.ca)] {
        c.nodes[2].set_flag(flag, &value.display().to_string());
    }
    c.nodes[2].restart().await?;
    c.wait_for_leaders(&c.all(), LEADER_TIMEOUT).await.context("all three nodes")?;
    let after = make_state("tls-after", 2);
    c.nodes[2].api.set_state_ok("tls", "after", &after, None).await.context("a write through node 3")?;
    for node in &c.nodes {
        for (key, want) in [("before", &state), ("after", &after)] {
            let got = read_retrying(&node.api, "tls", key, WRITE_TIMEOUT).await?;
            ensure!(got.state == *want, "node {} reads another state for {key}", node.id);
        }
    }
    c.finish();
    Ok(())
}
