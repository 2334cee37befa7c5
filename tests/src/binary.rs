//! Locating and running the `keel` binary under test, free loopback ports
//! and signals.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

/// Path of the `keel` binary under test.
///
/// `KEEL_BIN` if set; otherwise `target/<profile>/keel`, derived from this
/// test executable's own path (`target/<profile>/deps/<test-bin>`), so it
/// follows `CARGO_TARGET_DIR` and the profile. Panics if the binary is
/// missing, because `cargo test -p keel-e2e` does not build it.
pub fn keel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KEEL_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "KEEL_BIN={} is not a file: build it first: cargo build -p keel", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("cannot determine the test executable's path");
    let mut dir = exe.parent().expect("test executable has no parent directory").to_path_buf();
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
        let port = l.local_addr().expect("listener has no local address").port();
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

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `1=127.0.0.1:5122,2=...` for the given (node id, node address) pairs.
pub fn peers_arg(peers: &[(u64, SocketAddr)]) -> String {
    peers.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        bail!("kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The cluster secret every node started by these tests shares (given as
/// `KEEL_CLUSTER_SECRET`): a multi-node cluster refuses to start without
/// one. Tests of the refusal remove the variable.
pub const E2E_CLUSTER_SECRET: &str = "keel-e2e-cluster-secret";

pub(crate) fn base_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("RUST_BACKTRACE", "1")
        .env("KEEL_CLUSTER_SECRET", E2E_CLUSTER_SECRET)
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
    run_keel_to_exit_with_env(args, &[], timeout).await
}

/// [`run_keel_to_exit`] with environment changes: `(name, Some(value))`
/// sets a variable, `(name, None)` removes it (e.g. the cluster secret).
pub async fn run_keel_to_exit_with_env(
    args: &[String],
    env: &[(&str, Option<&str>)],
    timeout: Duration,
) -> Result<RunOutput> {
    let bin = keel_bin();
    let mut cmd = base_command(&bin);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().with_context(|| format!("cannot spawn {}", bin.display()))?;
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
        Err(_) => bail!("`keel {}` was still running after {timeout:?}", args.join(" ")),
    }
}
