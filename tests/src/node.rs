//! [`KeelNode`]: one `keel` process (start, kill, stop, restart) and its
//! logs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Child;
use tokio::time::Instant;

use crate::api::Api;
use crate::binary::{base_command, keel_bin, send_signal};
use crate::limits::{EXIT_TIMEOUT, POLL_INTERVAL, STARTUP_TIMEOUT};

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
    /// A node that is not started yet, with its data dir (`node-{id}`) and
    /// logs (`node-{id}.stdout.log`, `node-{id}.stderr.log`) in `dir`.
    pub(crate) fn new(
        id: u64,
        dir: &Path,
        (ingress, admin, node_addr): (SocketAddr, SocketAddr, SocketAddr),
        peers: String,
        extra_args: &[&str],
        client: reqwest::Client,
    ) -> KeelNode {
        KeelNode {
            id,
            data_dir: dir.join(format!("node-{id}")),
            ingress,
            admin,
            node_addr,
            peers,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            stdout_log: dir.join(format!("node-{id}.stdout.log")),
            stderr_log: dir.join(format!("node-{id}.stderr.log")),
            api: Api::new(id, admin, ingress, client),
            child: None,
            starts: 0,
            stdout_offset: 0,
            stderr_offset: 0,
        }
    }

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
        let banner =
            format!("\n===== keel-e2e: start #{} of node {}: keel {} =====\n", self.starts, self.id, args.join(" "));
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
        let child = cmd.spawn().with_context(|| format!("cannot spawn {} for node {}", bin.display(), self.id))?;
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
            let child = self.child.as_mut().with_context(|| format!("node {} is not running", self.id))?;
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
        let mut child = self.child.take().with_context(|| format!("kill9: node {} is not running", self.id))?;
        if let Some(status) = child.try_wait()? {
            bail!("kill9: node {} had already exited with {status}", self.id);
        }
        let pid = child.id().context("running child without a pid")?;
        send_signal(pid, libc::SIGKILL)?;
        let status = tokio::time::timeout(EXIT_TIMEOUT, child.wait())
            .await
            .with_context(|| format!("node {} did not die within {EXIT_TIMEOUT:?} of SIGKILL", self.id))??;
        Ok(status)
    }

    /// Sends `SIGTERM` and waits (at most [`EXIT_TIMEOUT`]) for the process
    /// to exit; returns its exit status. On timeout it is killed and this
    /// fails.
    pub async fn terminate(&mut self) -> Result<ExitStatus> {
        let pid = self.pid().with_context(|| format!("terminate: node {} is not running", self.id))?;
        send_signal(pid, libc::SIGTERM)?;
        self.wait_exit(EXIT_TIMEOUT).await.with_context(|| format!("node {} after SIGTERM", self.id))
    }

    /// Waits for the process to exit by itself and returns its status (for
    /// starts that are expected to fail, and after `SIGTERM`). If it is still
    /// running after `timeout` it is killed and this fails.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self.child.as_mut().with_context(|| format!("node {} is not running", self.id))?;
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

    /// The exit status if the process has exited by itself (reaping it),
    /// `None` while it runs.
    pub fn try_exited(&mut self) -> Result<Option<ExitStatus>> {
        let child = self.child.as_mut().with_context(|| format!("node {} is not running", self.id))?;
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Starts the node again on the same data dir and ports, killing it
    /// first (`SIGKILL`) if it is still running, and waits until ready.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.kill9().await?;
        }
        self.start().await
    }

    /// Starts killing the process, if running, without waiting for it (for
    /// `Drop`, which cannot wait).
    pub(crate) fn start_kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
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
        self.start_kill();
    }
}

pub(crate) fn read_from(path: &Path, offset: u64) -> String {
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

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
