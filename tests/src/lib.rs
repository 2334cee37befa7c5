//! End-to-end test harness for the `keel` binary.
//!
//! The tests in `tests/` start real `keel` processes on free loopback ports,
//! each with its own data directory inside a per-test temporary directory,
//! talk to them over their admin HTTP API, and kill (`SIGKILL`), stop
//! (`SIGTERM`) and restart them.
//!
//! # Running
//!
//! The binary is not a dependency of this crate (Cargo cannot express that),
//! so build it first with the same profile and target directory:
//!
//! ```text
//! cargo build -p keel && cargo test -p keel-e2e
//! ```
//!
//! or point `KEEL_BIN` at a binary. Other knobs (all optional):
//!
//! * `KEEL_E2E_DEADLINE_SECS` – overall deadline of one test (default 120).
//! * `KEEL_E2E_LOG` – passed to every node as `--log VALUE`.
//! * `KEEL_E2E_KEEP_TMP` – keep the temporary directories (data dirs and
//!   logs) instead of deleting them; their paths are printed.
//!
//! # Conventions
//!
//! * Nothing waits with a fixed sleep: every wait is [`poll_until`] (or a
//!   process wait) with a deadline and a description of what it waits for.
//! * Each test body is an `async fn() -> anyhow::Result<()>` run through
//!   [`run_test`], which serialises the tests of one binary (two cores, up to
//!   three RocksDB-backed nodes per test) and applies the overall deadline.
//! * A [`Cluster`] prints the tail of every node's stdout and stderr when it
//!   is dropped during a panic or without [`Cluster::finish`] having been
//!   called (an `Err` returned with `?`, or the deadline dropping the test
//!   future), and always kills its processes.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a node may take from spawn until `/health` and
/// `/restate/health` both answer 200.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a cluster may take to elect (or re-elect) leaders everywhere.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(45);
/// Client-side timeout of every single HTTP request. A request that gets no
/// answer within it counts as a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one logical write (including retries on 503 / transport errors)
/// may take before the test fails.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit after `SIGTERM`, or an invocation that
/// is expected to fail may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts of [`poll_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(75);
/// Lines of each log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 80;

/// State of one (service, object key): entry name → raw bytes. Serialises to
/// the wire shape `{"name":[1,2,3]}`.
pub type State = BTreeMap<String, Vec<u8>>;

/// What a test knows was acknowledged for one key: the full state it wrote
/// and the version token the write returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub state: State,
    pub version: String,
}

/// Acknowledged writes, by object key (one service per model).
pub type Model = BTreeMap<String, Acked>;

// ---------------------------------------------------------------------------
// Test plumbing
// ---------------------------------------------------------------------------

/// Serialises the tests of one test binary: each test starts up to three
/// RocksDB-backed processes and the machines have two cores, so tests running
/// side by side would only make each other's timing unpredictable.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Overall deadline of one test: `KEEL_E2E_DEADLINE_SECS`, default 120 s.
pub fn test_deadline() -> Duration {
    let secs = std::env::var("KEEL_E2E_DEADLINE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// Runs one test body: waits for the other tests of this binary to finish,
/// then runs `body` under [`test_deadline`] and panics (failing the test) if
/// it returns an error or runs out of time. Any [`Cluster`] inside `body` is
/// dropped before the panic and so prints its nodes' logs.
pub async fn run_test(name: &str, body: impl Future<Output = Result<()>>) {
    let _serial = SERIAL.lock().await;
    let deadline = test_deadline();
    let started = Instant::now();
    match tokio::time::timeout(deadline, body).await {
        Ok(Ok(())) => eprintln!("[{name}] passed in {:.1?}", started.elapsed()),
        Ok(Err(e)) => panic!("[{name}] failed after {:.1?}: {e:?}", started.elapsed()),
        Err(_) => panic!("[{name}] exceeded its overall deadline of {deadline:?}"),
    }
}

/// Retries `f` every [`POLL_INTERVAL`] until it returns `Ok(Some(v))`, then
/// returns `v`.
///
/// `Ok(None)` means "not yet"; `Err(e)` also means "not yet" but is
/// remembered, so a closure should return a descriptive error for the
/// condition it is still missing (e.g. "node 2 sees no leader for partition
/// 3"). When `timeout` passes the poll fails with `what` and the last error.
/// Each call of `f` is itself bounded by the remaining time.
pub async fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_error: Option<anyhow::Error> = None;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match tokio::time::timeout_at(deadline, f()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                last_error = Some(anyhow!(
                    "the last attempt was still running at the deadline"
                ));
                break;
            }
        }
        if Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let last = match last_error {
        Some(e) => format!("{e:#}"),
        None => "none (the condition was simply never met)".to_string(),
    };
    bail!(
        "timed out after {:.1?} ({attempts} attempts) waiting for {what}; last error: {last}",
        started.elapsed()
    )
}

// ---------------------------------------------------------------------------
// Binary and ports
// ---------------------------------------------------------------------------

/// Path of the `keel` binary under test.
///
/// `KEEL_BIN` if set; otherwise `target/<profile>/keel`, derived from this
/// test executable's own path (`target/<profile>/deps/<test-bin>`), so it
/// follows `CARGO_TARGET_DIR` and the profile. Panics if the binary is
/// missing, because `cargo test -p keel-e2e` does not build it.
pub fn keel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KEEL_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "KEEL_BIN={} is not a file: build it first: cargo build -p keel",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("cannot determine the test executable's path");
    let mut dir = exe
        .parent()
        .expect("test executable has no parent directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("keel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "keel binary not found at {}: build it first: cargo build -p keel \
         (same profile and CARGO_TARGET_DIR as the tests), or set KEEL_BIN",
        bin.display()
    );
    bin
}

/// Ports this process has handed out already; never handed out twice, so
/// two clusters of one test binary cannot be given the same port.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Allocates `n` distinct free TCP ports on 127.0.0.1: binds all `n`
/// listeners on port 0 at once, reads their ports and closes them. Allocate
/// every port a cluster needs in one call, before any node starts.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        let port = l
            .local_addr()
            .expect("listener has no local address")
            .port();
        // Keep the listener open either way so the kernel hands out another
        // port next time.
        listeners.push(l);
        if handed.insert(port) {
            ports.push(port);
        }
        assert!(listeners.len() < n + 1000, "cannot find {n} unused ports");
    }
    drop(listeners);
    ports
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `1=127.0.0.1:5122,2=...` for the given (node id, node address) pairs.
pub fn peers_arg(peers: &[(u64, SocketAddr)]) -> String {
    peers
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        bail!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn base_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        // If the test process dies (e.g. killed by a CI timeout), take the
        // node with it instead of leaving it holding ports and data dirs.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// What a `keel` invocation that was expected to exit by itself did.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `keel ARGS` to completion, capturing stdout and stderr. Fails if it
/// is still running after `timeout` (it is then killed).
pub async fn run_keel_to_exit(args: &[String], timeout: Duration) -> Result<RunOutput> {
    let bin = keel_bin();
    let mut cmd = base_command(&bin);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot spawn {}", bin.display()))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.context("waiting for keel")?;
            Ok(RunOutput {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        // Dropping the future dropped the child, which kills it.
        Err(_) => bail!(
            "`keel {}` was still running after {timeout:?}",
            args.join(" ")
        ),
    }
}

// ---------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------

/// One HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: &'static str,
    pub url: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    fn describe(&self) -> String {
        format!(
            "{} {} -> {} after {:.1?} (content-type {:?}): {}",
            self.method,
            self.url,
            self.status,
            self.elapsed,
            self.content_type,
            truncate(&self.body, 2000)
        )
    }

    /// Fails unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> Result<&Self> {
        ensure!(
            self.status == status,
            "expected HTTP {status}, got {}",
            self.describe()
        );
        Ok(self)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("body is not JSON: {}", self.describe()))
    }

    /// The body parsed into `T`.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("unexpected body shape: {}", self.describe()))
    }

    /// The error body's `message`: the body must be a JSON object whose
    /// `message` is a non-empty string.
    pub fn error_message(&self) -> Result<String> {
        let v = self.json()?;
        match v.get("message") {
            Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
            _ => bail!(
                "error body has no non-empty string `message`: {}",
                self.describe()
            ),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// `GET /cluster`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    pub node_id: u64,
    pub partitions: Vec<PartitionView>,
}

/// One partition in `GET /cluster`. `term`..`snapshot` are the answering
/// node's local view of the partition's Raft group and are null (or absent)
/// on nodes that do not replicate it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionView {
    pub id: u32,
    pub replicas: Vec<u64>,
    #[serde(default)]
    pub leader: Option<u64>,
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub committed: Option<u64>,
    #[serde(default)]
    pub applied: Option<u64>,
    #[serde(default)]
    pub last_purged: Option<u64>,
    #[serde(default)]
    pub snapshot: Option<u64>,
}

impl ClusterView {
    /// The entry of partition `id`.
    pub fn partition(&self, id: u32) -> Result<&PartitionView> {
        self.partitions
            .iter()
            .find(|p| p.id == id)
            .with_context(|| format!("node {} reports no partition {id}: {self:?}", self.node_id))
    }
}

/// `GET /services/{service}/state/{key}`.
#[derive(Debug, Clone, Deserialize)]
pub struct StateView {
    pub service: String,
    pub object_key: String,
    pub version: String,
    pub state: State,
    /// The partition holding the key (the test suite's extension of the
    /// spec: the key → partition hash cannot be computed from outside).
    pub partition: u32,
}

/// HTTP client bound to one node.
#[derive(Debug, Clone)]
pub struct Api {
    pub node_id: u64,
    pub admin: SocketAddr,
    pub ingress: SocketAddr,
    client: reqwest::Client,
}

/// The shared HTTP client: [`REQUEST_TIMEOUT`] per request, no proxies.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("cannot build the HTTP client")
}

impl Api {
    pub fn new(
        node_id: u64,
        admin: SocketAddr,
        ingress: SocketAddr,
        client: reqwest::Client,
    ) -> Self {
        Api {
            node_id,
            admin,
            ingress,
            client,
        }
    }

    /// URL of `path` on the admin port.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let started = Instant::now();
        let resp = req.send().await.with_context(|| {
            format!(
                "{method} {url} (node {}) failed after {:.1?} without an HTTP answer",
                self.node_id,
                started.elapsed()
            )
        })?;
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let body = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}: reading the body failed"))?;
        Ok(Reply {
            method,
            url,
            status,
            content_type,
            retry_after,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// `GET` a URL. `Err` only for transport failures (no HTTP answer).
    pub async fn get_url(&self, url: String) -> Result<Reply> {
        let req = self.client.get(&url);
        self.send("GET", url, req).await
    }

    /// `GET` a path on the admin port.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.get_url(self.admin_url(path)).await
    }

    /// `POST` raw bytes to a path on the admin port, with the given
    /// `Content-Type` (none if `None`). `Err` only for transport failures.
    pub async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Result<Reply> {
        let url = self.admin_url(path);
        let mut req = self.client.post(&url).body(body.into());
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.send("POST", url, req).await
    }

    /// Admin `GET /health` and ingress `GET /restate/health` both answer 200.
    pub async fn health(&self) -> Result<()> {
        self.get("/health").await?.expect_status(200)?;
        self.get_url(format!("http://{}/restate/health", self.ingress))
            .await?
            .expect_status(200)?;
        Ok(())
    }

    /// `GET /cluster`; checks that it is 200 and names this node.
    pub async fn cluster_view(&self) -> Result<ClusterView> {
        let reply = self.get("/cluster").await?;
        reply.expect_status(200)?;
        let view: ClusterView = reply.parse()?;
        ensure!(
            view.node_id == self.node_id,
            "GET /cluster on node {} says node_id {}",
            self.node_id,
            view.node_id
        );
        Ok(view)
    }

    /// `GET /metrics` (must be 200).
    pub async fn metrics(&self) -> Result<String> {
        let reply = self.get("/metrics").await?;
        reply.expect_status(200)?;
        Ok(reply.body)
    }

    /// `POST /services/{service}/state` with a well-formed JSON body.
    /// Returns whatever the node answered.
    pub async fn set_state(
        &self,
        service: &str,
        key: &str,
        state: &State,
        version: Option<&str>,
    ) -> Result<Reply> {
        let mut body = json!({ "object_key": key, "new_state": state });
        if let Some(v) = version {
            body["version"] = Value::String(v.to_string());
        }
        self.post(
            &format!("/services/{service}/state"),
            Some("application/json"),
            serde_json::to_vec(&body)?,
        )
        .await
    }

    /// [`Api::set_state`] that must answer 202 with a non-empty
    /// `{"version": ...}`; returns the version.
    pub async fn set_state_ok(
        &self,
        service: &str,
        key: &str,
        state: &State,
        version: Option<&str>,
    ) -> Result<String> {
        let reply = self.set_state(service, key, state, version).await?;
        reply.expect_status(202)?;
        version_of(&reply)
    }

    /// `GET /services/{service}/state/{key}`, whatever the answer.
    pub async fn get_state_reply(&self, service: &str, key: &str) -> Result<Reply> {
        self.get(&format!("/services/{service}/state/{key}")).await
    }

    /// `GET /services/{service}/state/{key}` that must answer 200 with the
    /// documented shape echoing `service` and `key`.
    pub async fn get_state(&self, service: &str, key: &str) -> Result<StateView> {
        let reply = self.get_state_reply(service, key).await?;
        reply.expect_status(200)?;
        let view: StateView = reply.parse()?;
        ensure!(
            view.service == service && view.object_key == key,
            "GET state of ({service}, {key}) via node {} echoed ({}, {})",
            self.node_id,
            view.service,
            view.object_key
        );
        Ok(view)
    }
}

/// The `version` of a 202 answer to a state write.
pub fn version_of(reply: &Reply) -> Result<String> {
    match reply.json()?.get("version") {
        Some(Value::String(v)) if !v.is_empty() => Ok(v.clone()),
        _ => bail!(
            "202 without a non-empty string `version`: {}",
            reply.describe()
        ),
    }
}

/// Whether an answer (or its absence) means "try again, possibly elsewhere":
/// no HTTP answer at all, or 502/503/504.
fn is_retryable(r: &Result<Reply>) -> bool {
    match r {
        Err(_) => true,
        Ok(reply) => matches!(reply.status, 502..=504),
    }
}

/// Writes `state` for `key` until a node acknowledges it, starting at
/// `apis[start]` and moving to the next node after each failed attempt.
///
/// `prev` is the version last acknowledged for this key (or `None` for a key
/// this test never wrote) and is sent as the `version` precondition. Retries
/// happen only on transport errors and 502/503/504, which leave it unknown
/// whether the attempt was applied; because every key has a single writer
/// and a write replaces the whole state, such an attempt is harmless: a
/// later 409 is accepted if (and only if) a linearizable read then shows
/// exactly `state`, i.e. the earlier attempt landed. Any other status fails.
/// Returns the acknowledged version.
pub async fn write_acked(
    apis: &[Api],
    start: usize,
    service: &str,
    key: &str,
    state: &State,
    prev: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    ensure!(!apis.is_empty(), "write_acked needs at least one node");
    let deadline = Instant::now() + timeout;
    let mut ambiguous = false;
    let mut attempt = 0usize;
    loop {
        let api = &apis[(start + attempt) % apis.len()];
        attempt += 1;
        let r = api.set_state(service, key, state, prev).await;
        if let Ok(reply) = &r {
            match reply.status {
                202 => return version_of(reply),
                409 if ambiguous => {
                    let now = read_retrying(api, service, key, WRITE_TIMEOUT).await?;
                    ensure!(
                        &now.state == state,
                        "write of ({service}, {key}) got 409 after an ambiguous attempt, \
                         but the state is not the one written: {now:?}"
                    );
                    return Ok(now.version);
                }
                _ if !is_retryable(&r) => bail!(
                    "write of ({service}, {key}) with version {prev:?} failed: {}",
                    reply.describe()
                ),
                _ => {}
            }
        }
        ambiguous = true;
        if Instant::now() + POLL_INTERVAL >= deadline {
            let last = match r {
                Ok(reply) => reply.describe(),
                Err(e) => format!("{e:#}"),
            };
            bail!(
                "write of ({service}, {key}) not acknowledged within {timeout:?} ({attempt} attempts); last: {last}"
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Reads a key through `api`, retrying only transport errors and
/// 502/503/504 (e.g. while a leader is being elected) until `timeout`.
pub async fn read_retrying(
    api: &Api,
    service: &str,
    key: &str,
    timeout: Duration,
) -> Result<StateView> {
    let what = format!("a read of ({service}, {key}) through node {}", api.node_id);
    poll_until(timeout, &what, async || {
        let r = api.get_state_reply(service, key).await;
        if is_retryable(&r) {
            return match r {
                Ok(reply) => Err(anyhow!("retryable answer: {}", reply.describe())),
                Err(e) => Err(e),
            };
        }
        // Not retryable: must be a correct 200, or the poll fails for good.
        Ok(Some(r))
    })
    .await?
    .and_then(|reply| {
        reply.expect_status(200)?;
        let view: StateView = reply.parse()?;
        ensure!(
            view.service == service && view.object_key == key,
            "GET state of ({service}, {key}) echoed ({}, {})",
            view.service,
            view.object_key
        );
        Ok(view)
    })
}

/// Reads every key of `model` through `api` and checks that state (exact
/// bytes) and version are exactly the acknowledged ones. Returns each key's
/// partition. All mismatches are reported together.
pub async fn verify_model(
    api: &Api,
    service: &str,
    model: &Model,
) -> Result<BTreeMap<String, u32>> {
    let mut partitions = BTreeMap::new();
    let mut mismatches = Vec::new();
    for (key, acked) in model {
        let view = read_retrying(api, service, key, WRITE_TIMEOUT).await?;
        let mut problems = Vec::new();
        if view.version != acked.version {
            problems.push(format!(
                "version {:?}, expected {:?}",
                view.version, acked.version
            ));
        }
        if view.state != acked.state {
            problems.push(state_diff(&acked.state, &view.state));
        }
        if !problems.is_empty() {
            mismatches.push(format!("  {key}: {}", problems.join("; ")));
        }
        partitions.insert(key.clone(), view.partition);
    }
    ensure!(
        mismatches.is_empty(),
        "{} of {} acknowledged writes read back wrong through node {}:\n{}",
        mismatches.len(),
        model.len(),
        api.node_id,
        mismatches.join("\n")
    );
    Ok(partitions)
}

/// A short description of how `got` differs from `expected`, entry by
/// entry (missing, unexpected, or different bytes with the first difference).
pub fn state_diff(expected: &State, got: &State) -> String {
    let mut parts = Vec::new();
    for (name, want) in expected {
        match got.get(name) {
            None => parts.push(format!("entry {name:?} missing")),
            Some(have) if have != want => {
                let at = want
                    .iter()
                    .zip(have)
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.len().min(have.len()));
                parts.push(format!(
                    "entry {name:?} differs: {} bytes, expected {}; first difference at byte {at} \
                     (got {:?}, expected {:?})",
                    have.len(),
                    want.len(),
                    have.get(at),
                    want.get(at)
                ));
            }
            Some(_) => {}
        }
    }
    for (name, have) in got {
        if !expected.contains_key(name) {
            parts.push(format!("unexpected entry {name:?} ({} bytes)", have.len()));
        }
    }
    if parts.is_empty() {
        "states are equal".to_string()
    } else {
        parts.join("; ")
    }
}

/// [`verify_model`] through every node in `apis`; also checks that all nodes
/// agree on each key's partition. Returns key → partition.
pub async fn verify_everywhere(
    apis: &[Api],
    service: &str,
    model: &Model,
) -> Result<BTreeMap<String, u32>> {
    let mut agreed: Option<(u64, BTreeMap<String, u32>)> = None;
    for api in apis {
        let partitions = verify_model(api, service, model).await?;
        match &agreed {
            None => agreed = Some((api.node_id, partitions)),
            Some((other, p)) => ensure!(
                *p == partitions,
                "nodes {other} and {} disagree on key partitions: {p:?} vs {partitions:?}",
                api.node_id
            ),
        }
    }
    agreed
        .map(|(_, p)| p)
        .context("verify_everywhere needs at least one node")
}

/// A deterministic state for `key` at revision `rev`, meant to catch
/// encoding and replace-all bugs: every byte value occurs, lengths vary with
/// key and revision, and some entries exist only at odd revisions (so a
/// write that merges instead of replacing leaves a stale entry behind).
pub fn make_state(key: &str, rev: u32) -> State {
    let seed = key.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) ^ rev.wrapping_mul(0x9e37_79b9);
    let mut s = State::new();
    s.insert("rev".to_string(), rev.to_be_bytes().to_vec());
    s.insert("key".to_string(), key.as_bytes().to_vec());
    let len = 256 + (seed % 300) as usize;
    s.insert(
        "payload".to_string(),
        (0..len)
            .map(|i| (i as u32).wrapping_add(seed) as u8)
            .collect(),
    );
    if rev % 2 == 1 {
        s.insert("odd".to_string(), vec![0, 255, 0, 255, (rev % 251) as u8]);
        s.insert("empty".to_string(), Vec::new());
        s.insert("näme/✓ with spaces".to_string(), vec![0xc3, 0x28, 0xff]);
    }
    s
}

/// The revision stored in a [`make_state`] state.
pub fn rev_of(state: &State) -> Result<u32> {
    let bytes = state.get("rev").context("state has no `rev` entry")?;
    let arr: [u8; 4] = bytes
        .as_slice()
        .try_into()
        .context("`rev` is not 4 bytes")?;
    Ok(u32::from_be_bytes(arr))
}

/// Writes the next revision of `key` (precondition: its acknowledged
/// version) through `apis`, starting at `apis[start]`, and records it.
pub async fn bump(
    apis: &[Api],
    start: usize,
    service: &str,
    model: &mut Model,
    key: &str,
) -> Result<()> {
    let current = model
        .get(key)
        .with_context(|| format!("{key} was never written"))?
        .clone();
    let state = make_state(key, rev_of(&current.state)? + 1);
    let version = write_acked(
        apis,
        start,
        service,
        key,
        &state,
        Some(&current.version),
        WRITE_TIMEOUT,
    )
    .await?;
    ensure!(
        version != current.version,
        "write of {key} acknowledged with the unchanged version {version:?}"
    );
    model.insert(key.to_string(), Acked { state, version });
    Ok(())
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// One `keel` node: its addresses, data dir, log files and (while running)
/// its process.
pub struct KeelNode {
    pub id: u64,
    pub data_dir: PathBuf,
    pub ingress: SocketAddr,
    pub admin: SocketAddr,
    pub node_addr: SocketAddr,
    /// Value of `--peers`.
    pub peers: String,
    /// Flags appended after the per-node ones (e.g. `--partitions 4`).
    pub extra_args: Vec<String>,
    /// The node's stdout, appended across restarts.
    pub stdout_log: PathBuf,
    /// The node's stderr, appended across restarts.
    pub stderr_log: PathBuf,
    pub api: Api,
    child: Option<Child>,
    starts: u32,
    stdout_offset: u64,
    stderr_offset: u64,
}

impl KeelNode {
    /// The full command line (without the binary).
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--node-id".to_string(),
            self.id.to_string(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--ingress-addr".to_string(),
            self.ingress.to_string(),
            "--admin-addr".to_string(),
            self.admin.to_string(),
            "--node-addr".to_string(),
            self.node_addr.to_string(),
            "--peers".to_string(),
            self.peers.clone(),
        ]
        .into();
        if let Ok(level) = std::env::var("KEEL_E2E_LOG") {
            args.push("--log".to_string());
            args.push(level);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Sets `flag` to `value` in [`KeelNode::extra_args`] (replacing an
    /// existing value), for the next start.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        if let Some(i) = self.extra_args.iter().position(|a| a == flag) {
            if i + 1 < self.extra_args.len() {
                self.extra_args[i + 1] = value.to_string();
                return;
            }
            self.extra_args.truncate(i);
        }
        self.extra_args.push(flag.to_string());
        self.extra_args.push(value.to_string());
    }

    /// Whether the test believes the process is running (started and not
    /// yet killed, stopped or seen to exit).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Spawns the process without waiting for it to become ready; stdout and
    /// stderr are appended to the node's log files after a banner line.
    pub fn spawn(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let args = self.args();
        let banner = format!(
            "\n===== keel-e2e: start #{} of node {}: keel {} =====\n",
            self.starts,
            self.id,
            args.join(" ")
        );
        let open = |path: &Path| -> Result<(File, u64)> {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log {}", path.display()))?;
            f.write_all(banner.as_bytes())?;
            f.flush()?;
            let offset = f.metadata()?.len();
            Ok((f, offset))
        };
        let (stdout, stdout_offset) = open(&self.stdout_log)?;
        let (stderr, stderr_offset) = open(&self.stderr_log)?;
        let bin = keel_bin();
        let mut cmd = base_command(&bin);
        cmd.args(&args).stdout(stdout).stderr(stderr);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot spawn {} for node {}", bin.display(), self.id))?;
        self.stdout_offset = stdout_offset;
        self.stderr_offset = stderr_offset;
        self.child = Some(child);
        Ok(())
    }

    /// Spawns the process and waits until it is ready ([`KeelNode::wait_ready`]).
    pub async fn start(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_ready(STARTUP_TIMEOUT).await
    }

    /// Waits until admin `/health` and ingress `/restate/health` answer 200.
    /// Fails at once if the process exits meanwhile (with its stderr).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<anyhow::Error> = None;
        loop {
            let child = self
                .child
                .as_mut()
                .with_context(|| format!("node {} is not running", self.id))?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "node {} exited during startup with {status}; its stderr:\n{}",
                    self.id,
                    self.stderr_since_start()
                );
            }
            match tokio::time::timeout_at(deadline, self.api.health()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {}
            }
            if Instant::now() + POLL_INTERVAL >= deadline {
                bail!(
                    "node {} not healthy within {timeout:?}; last error: {}",
                    self.id,
                    last.map(|e| format!("{e:#}")).unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `SIGKILL`s the process and reaps it.
    pub async fn kill9(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .with_context(|| format!("kill9: node {} is not running", self.id))?;
        if let Some(status) = child.try_wait()? {
            bail!("kill9: node {} had already exited with {status}", self.id);
        }
        let pid = child.id().context("running child without a pid")?;
        send_signal(pid, libc::SIGKILL)?;
        let status = tokio::time::timeout(EXIT_TIMEOUT, child.wait())
            .await
            .with_context(|| {
                format!(
                    "node {} did not die within {EXIT_TIMEOUT:?} of SIGKILL",
                    self.id
                )
            })??;
        Ok(status)
    }

    /// Sends `SIGTERM` and waits (at most [`EXIT_TIMEOUT`]) for the process
    /// to exit; returns its exit status. On timeout it is killed and this
    /// fails.
    pub async fn terminate(&mut self) -> Result<ExitStatus> {
        let pid = self
            .pid()
            .with_context(|| format!("terminate: node {} is not running", self.id))?;
        send_signal(pid, libc::SIGTERM)?;
        self.wait_exit(EXIT_TIMEOUT)
            .await
            .with_context(|| format!("node {} after SIGTERM", self.id))
    }

    /// Waits for the process to exit by itself and returns its status (for
    /// starts that are expected to fail, and after `SIGTERM`). If it is still
    /// running after `timeout` it is killed and this fails.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .with_context(|| format!("node {} is not running", self.id))?;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => {
                self.child = None;
                Ok(status?)
            }
            Err(_) => {
                let _ = self.kill9().await;
                bail!("node {} was still running after {timeout:?}", self.id)
            }
        }
    }

    /// Starts the node again on the same data dir and ports, killing it
    /// first (`SIGKILL`) if it is still running, and waits until ready.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.kill9().await?;
        }
        self.start().await
    }

    /// What the current (or last) process wrote to stdout.
    pub fn stdout_since_start(&self) -> String {
        read_from(&self.stdout_log, self.stdout_offset)
    }

    /// What the current (or last) process wrote to stderr.
    pub fn stderr_since_start(&self) -> String {
        read_from(&self.stderr_log, self.stderr_offset)
    }

    /// The last `lines` lines of both logs, labelled.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "----- node {} stdout ({}), last {lines} lines -----\n{}\n\
             ----- node {} stderr ({}), last {lines} lines -----\n{}",
            self.id,
            self.stdout_log.display(),
            tail(&read_from(&self.stdout_log, 0), lines),
            self.id,
            self.stderr_log.display(),
            tail(&read_from(&self.stderr_log, 0), lines),
        )
    }
}

impl Drop for KeelNode {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        f.read_to_end(&mut buf)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// `n` nodes with ids `1..=n` that know each other through `--peers`, each
/// with a data dir and logs in one temporary directory.
///
/// Dropping the cluster kills every process; if the test is panicking or
/// [`Cluster::finish`] was not called, it first prints the tail of every
/// node's logs.
pub struct Cluster {
    // Field order matters: the nodes (processes) go before the directory.
    pub nodes: Vec<KeelNode>,
    pub client: reqwest::Client,
    ok: bool,
    tmp: Option<TempDir>,
}

impl Cluster {
    /// Creates the nodes (all ports allocated up front) without starting
    /// them.
    pub fn new(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let tmp = tempfile::Builder::new()
            .prefix("keel-e2e-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let client = http_client();
        let ports = free_ports(3 * n);
        let addrs: Vec<(SocketAddr, SocketAddr, SocketAddr)> = ports
            .chunks(3)
            .map(|p| (loopback(p[0]), loopback(p[1]), loopback(p[2])))
            .collect();
        let peers = peers_arg(
            &addrs
                .iter()
                .enumerate()
                .map(|(i, a)| (i as u64 + 1, a.2))
                .collect::<Vec<_>>(),
        );
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, &(ingress, admin, node_addr))| {
                let id = i as u64 + 1;
                KeelNode {
                    id,
                    data_dir: tmp.path().join(format!("node-{id}")),
                    ingress,
                    admin,
                    node_addr,
                    peers: peers.clone(),
                    extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
                    stdout_log: tmp.path().join(format!("node-{id}.stdout.log")),
                    stderr_log: tmp.path().join(format!("node-{id}.stderr.log")),
                    api: Api::new(id, admin, ingress, client.clone()),
                    child: None,
                    starts: 0,
                    stdout_offset: 0,
                    stderr_offset: 0,
                }
            })
            .collect();
        Ok(Cluster {
            nodes,
            client,
            ok: false,
            tmp: Some(tmp),
        })
    }

    /// Creates and starts `n` nodes (all spawned first, so they can find
    /// each other), and waits until every one is healthy. Leaders are not
    /// awaited: see [`Cluster::wait_for_leaders`].
    pub async fn start(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let mut c = Cluster::new(n, extra_args)?;
        for node in &mut c.nodes {
            node.spawn()?;
        }
        for node in &mut c.nodes {
            node.wait_ready(STARTUP_TIMEOUT).await?;
        }
        Ok(c)
    }

    /// The temporary directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.tmp
            .as_ref()
            .expect("temporary directory already released")
            .path()
    }

    /// Indices (into `nodes`) of all nodes.
    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// Index (into `nodes`) of node `id`.
    pub fn index_of(&self, id: u64) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .with_context(|| format!("no node with id {id}"))
    }

    /// Clients of the nodes at `indices`.
    pub fn apis(&self, indices: &[usize]) -> Vec<Api> {
        indices.iter().map(|&i| self.nodes[i].api.clone()).collect()
    }

    /// Polls `GET /cluster` on the nodes at `on` until, for every partition,
    /// each of them that replicates it reports a leader, that leader is one
    /// of the nodes at `on`, and they all name the same one. Returns
    /// partition → leader id.
    pub async fn wait_for_leaders(
        &self,
        on: &[usize],
        timeout: Duration,
    ) -> Result<BTreeMap<u32, u64>> {
        let live: Vec<u64> = on.iter().map(|&i| self.nodes[i].id).collect();
        let what = format!("every partition to have one agreed leader among nodes {live:?}");
        poll_until(timeout, &what, async || {
            let mut agreed: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for &i in on {
                let view = self.nodes[i].api.cluster_view().await?;
                ensure!(!view.partitions.is_empty(), "node {} reports no partitions", view.node_id);
                for p in &view.partitions {
                    if !p.replicas.contains(&view.node_id) {
                        continue;
                    }
                    let Some(leader) = p.leader else {
                        bail!("node {} sees no leader for partition {}", view.node_id, p.id);
                    };
                    ensure!(
                        live.contains(&leader),
                        "node {} sees node {leader} (not among {live:?}) as leader of partition {}",
                        view.node_id,
                        p.id
                    );
                    match agreed.get(&p.id) {
                        None => {
                            agreed.insert(p.id, (leader, view.node_id));
                        }
                        Some(&(other_leader, other_node)) => ensure!(
                            other_leader == leader,
                            "partition {}: node {other_node} sees leader {other_leader}, node {} sees {leader}",
                            p.id,
                            view.node_id
                        ),
                    }
                }
            }
            Ok(Some(agreed.into_iter().map(|(p, (l, _))| (p, l)).collect()))
        })
        .await
    }

    /// Checks the static shape of `GET /cluster` on the nodes at `on`:
    /// partitions `0..partitions`, each with `replication_factor` distinct
    /// replicas that are cluster members, identical on every node; each node
    /// reports term/committed/applied exactly for the partitions it
    /// replicates.
    pub async fn check_topology(
        &self,
        on: &[usize],
        partitions: u32,
        replication_factor: usize,
    ) -> Result<()> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        // (node id, sorted (partition, sorted replicas)) of the first node.
        type Shape = Vec<(u32, Vec<u64>)>;
        let mut first: Option<(u64, Shape)> = None;
        for &i in on {
            let view = self.nodes[i].api.cluster_view().await?;
            let mut shape: Shape = view
                .partitions
                .iter()
                .map(|p| {
                    let mut r = p.replicas.clone();
                    r.sort_unstable();
                    (p.id, r)
                })
                .collect();
            shape.sort();
            let got_ids: Vec<u32> = shape.iter().map(|(id, _)| *id).collect();
            ensure!(
                got_ids == (0..partitions).collect::<Vec<_>>(),
                "node {} reports partitions {got_ids:?}, expected 0..{partitions}",
                view.node_id
            );
            for (id, replicas) in &shape {
                let mut distinct = replicas.clone();
                distinct.dedup();
                ensure!(
                    distinct.len() == replication_factor && replicas.len() == replication_factor,
                    "partition {id} has replicas {replicas:?}, expected {replication_factor} distinct"
                );
                ensure!(
                    replicas.iter().all(|r| ids.contains(r)),
                    "partition {id} has replicas {replicas:?} outside the cluster {ids:?}"
                );
            }
            for p in &view.partitions {
                let local = [p.term, p.committed, p.applied];
                if p.replicas.contains(&view.node_id) {
                    ensure!(
                        local.iter().all(Option::is_some),
                        "node {} replicates partition {} but reports no term/committed/applied: {p:?}",
                        view.node_id,
                        p.id
                    );
                } else {
                    ensure!(
                        local.iter().all(Option::is_none),
                        "node {} does not replicate partition {} but reports Raft state: {p:?}",
                        view.node_id,
                        p.id
                    );
                }
            }
            match &first {
                None => first = Some((view.node_id, shape)),
                Some((other, s)) => ensure!(
                    *s == shape,
                    "nodes {other} and {} disagree on the partition table: {s:?} vs {shape:?}",
                    view.node_id
                ),
            }
        }
        Ok(())
    }

    /// The current leader of `partition` and that leader's own view of the
    /// partition: asks `on[0]` who leads (it must be one of `on`), then asks
    /// that node, which must agree that it leads. Retried (up to
    /// [`LEADER_TIMEOUT`]) while an election is settling.
    pub async fn leader_view(
        &self,
        on: &[usize],
        partition: u32,
    ) -> Result<(usize, PartitionView)> {
        let first = *on.first().context("leader_view needs at least one node")?;
        let what = format!("a settled leader of partition {partition} among nodes at {on:?}");
        poll_until(LEADER_TIMEOUT, &what, async || {
            let view = self.nodes[first].api.cluster_view().await?;
            let leader = view.partition(partition)?.leader.with_context(|| {
                format!(
                    "node {} knows no leader of partition {partition}",
                    view.node_id
                )
            })?;
            let li = self.index_of(leader)?;
            ensure!(
                on.contains(&li),
                "node {} names node {leader}, not a live node, leader of partition {partition}",
                view.node_id
            );
            let own = self.nodes[li].api.cluster_view().await?;
            let p = own.partition(partition)?.clone();
            ensure!(
                p.leader == Some(leader),
                "node {leader} is named leader of partition {partition} but reports {:?}",
                p.leader
            );
            Ok(Some((li, p)))
        })
        .await
    }

    /// Marks the test as passed (no log dump) and shuts every node down.
    pub fn finish(mut self) {
        self.ok = true;
    }

    /// Prints the tail of every node's logs to stderr.
    pub fn print_logs(&self) {
        eprintln!(
            "===== keel-e2e: logs of {} node(s) in {} =====",
            self.nodes.len(),
            self.tmp
                .as_ref()
                .map(|t| t.path().display().to_string())
                .unwrap_or_default()
        );
        for node in &self.nodes {
            eprintln!("{}", node.log_tail(LOG_TAIL_LINES));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.start_kill();
            }
        }
        if std::thread::panicking() || !self.ok {
            self.print_logs();
        }
        if std::env::var_os("KEEL_E2E_KEEP_TMP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("keel-e2e: keeping {}", tmp.keep().display());
        }
    }
}
