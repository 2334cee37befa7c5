//! `keel`: a durable-execution runtime speaking Restate's protocols.
//!
//! With no arguments it starts a single-node cluster with its data in
//! `./keel-data`; see `keel --help` and `config.rs` for joining a cluster.

mod cluster;
mod config;
mod lock;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("keel").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(config));
    if let Ok(server::Exit::Failed(reason)) = &result {
        crash(reason);
    }
    // Drop every remaining task (and with them the last handles to the
    // database), so RocksDB closes cleanly before the process exits: exiting
    // with the database open races its background threads against static
    // destructors. The graceful stop took its `--shutdown-timeout` already;
    // this waits only for blocking work under way, briefly.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status of a node stopped by a storage failure (`EX_IOERR`).
const EXIT_STORAGE_FAILED: i32 = 74;

/// Ends the process at once after its storage failed: crash-only, as
/// databases do. Nothing is flushed or closed (a failed `fsync` may have
/// dropped written pages, so no later write can be trusted), and no
/// destructor runs: C++ static destructors would race RocksDB's background
/// threads. The restart recovers from what is durable.
fn crash(reason: &str) -> ! {
    eprintln!("keel: stopping: {reason}");
    // SAFETY: `_exit` ends the process without touching Rust state; nothing
    // runs after it.
    unsafe { libc::_exit(EXIT_STORAGE_FAILED) }
}
