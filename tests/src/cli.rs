//! [`RestateCli`]: the real `restate` command-line tool (npm package
//! `@restatedev/restate`, installed into `tests/services/ts` by
//! `bash tests/services/setup.sh`), run against a keel node's admin API.
//!
//! Each run gets a clean environment for the CLI: its config home is a
//! directory of the test (never `~/.config/restate`), it runs there (so it
//! picks up no stray `.env` file), inherits no `RESTATE_*` variable, writes no
//! colours, and is killed if it runs longer than [`CLI_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

use crate::sdk::services_dir;

/// How long one CLI command may run (its own request timeout is 13 s).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the native `restate` binary: `KEEL_E2E_RESTATE_CLI` if set, else
/// the one the npm package `@restatedev/restate-linux-x64` put into
/// `<services>/ts/node_modules` (the package's `node_modules/.bin/restate`
/// is only a Node launcher of it).
pub fn restate_cli_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KEEL_E2E_RESTATE_CLI") {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "KEEL_E2E_RESTATE_CLI={} is not a file", p.display());
        return Ok(p);
    }
    let bin = services_dir().join("ts/node_modules/@restatedev/restate-linux-x64/bin/restate");
    ensure!(
        bin.is_file(),
        "the restate CLI is not installed: {} is missing; run `bash tests/services/setup.sh` \
         (it installs the npm package @restatedev/restate from tests/services/ts/package-lock.json)",
        bin.display()
    );
    Ok(bin)
}

/// What one CLI command did.
#[derive(Debug)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout and stderr together (the CLI prints tables to stdout and
    /// warnings and errors to stderr).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Describes the run, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// Fails unless the command exited with status 0.
    pub fn expect_success(&self) -> Result<&Self> {
        ensure!(self.status.success(), "expected success: {}", self.describe());
        Ok(self)
    }

    /// Fails unless the command exited with a non-zero status.
    pub fn expect_failure(&self) -> Result<&Self> {
        ensure!(!self.status.success() && self.status.code().is_some(), "expected a failure: {}", self.describe());
        Ok(self)
    }
}

/// The `restate` CLI pointed at one admin URL, with its own config home.
#[derive(Debug, Clone)]
pub struct RestateCli {
    pub bin: PathBuf,
    /// `RESTATE_CLI_CONFIG_HOME`, also the working directory of every run.
    pub config_home: PathBuf,
    /// `RESTATE_ADMIN_URL`, e.g. `http://127.0.0.1:9070`.
    pub admin_url: String,
}

impl RestateCli {
    /// A CLI for `admin_url` whose config home is a new directory
    /// `restate-cli` under `dir` (the test's temporary directory). Fails if
    /// the CLI is not installed.
    pub fn new(dir: &Path, admin_url: &str) -> Result<RestateCli> {
        let bin = restate_cli_bin()?;
        let config_home = dir.join("restate-cli");
        std::fs::create_dir_all(&config_home).with_context(|| format!("cannot create {}", config_home.display()))?;
        Ok(RestateCli { bin, config_home, admin_url: admin_url.to_string() })
    }

    /// Runs `restate --yes ARGS` with `RESTATE_AUTH_TOKEN` set to `token`
    /// (unset if `None`) and waits for it to exit (at most [`CLI_TIMEOUT`]).
    /// `Err` only if it cannot be run or does not exit in time.
    pub async fn run(&self, token: Option<&str>, args: &[&str]) -> Result<CliOutput> {
        let mut cmd = Command::new(&self.bin);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RESTATE_") {
                cmd.env_remove(&name);
            }
        }
        cmd.arg("--yes")
            .args(args)
            .current_dir(&self.config_home)
            .env("RESTATE_CLI_CONFIG_HOME", &self.config_home)
            .env("RESTATE_ADMIN_URL", &self.admin_url)
            .env("NO_COLOR", "1")
            .env("CLICOLOR", "0")
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env("RESTATE_AUTH_TOKEN", token);
        }
        let command = format!(
            "RESTATE_ADMIN_URL={} RESTATE_AUTH_TOKEN={} restate --yes {}",
            self.admin_url,
            token.map_or("<unset>", |_| "<set>"),
            args.join(" ")
        );
        let child = cmd.spawn().with_context(|| format!("cannot spawn {}", self.bin.display()))?;
        match tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output()).await {
            Ok(out) => {
                let out = out.with_context(|| format!("waiting for `{command}`"))?;
                Ok(CliOutput {
                    command,
                    status: out.status,
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
            // Dropping the future dropped the child, which kills it.
            Err(_) => bail!("`{command}` was still running after {CLI_TIMEOUT:?}"),
        }
    }
}
