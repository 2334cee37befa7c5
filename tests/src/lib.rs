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
//! or point `KEEL_BIN` at a binary. Tests that register real SDK services
//! (`tests/deployments.rs`) also need their runtimes, installed once with
//! `bash tests/services/setup.sh`.
//!
//! Other knobs (all optional):
//!
//! * `KEEL_E2E_DEADLINE_SECS` – overall deadline of one test (default 120).
//! * `KEEL_E2E_LOG` – passed to every node as `--log VALUE`.
//! * `KEEL_E2E_KEEP_TMP` – keep the temporary directories (data dirs and
//!   logs) instead of deleting them; their paths are printed.
//! * `KEEL_E2E_SERVICES_DIR` – where the SDK test services are installed
//!   (default: this crate's `services`, installed by
//!   `bash tests/services/setup.sh`).
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
//!
//! # Layout
//!
//! * `limits.rs` – [`STARTUP_TIMEOUT`] and the other timeouts and limits.
//! * `poll.rs` – [`run_test`], [`test_deadline`], [`poll_until`].
//! * `binary.rs` – [`keel_bin`], [`free_ports`], [`run_keel_to_exit`].
//! * `node.rs` – [`KeelNode`]: one process and its logs.
//! * `cluster.rs` – [`Cluster`]: leaders and the partition table.
//! * `api.rs`, `reply.rs`, `views.rs` – [`Api`], [`Reply`] and the typed
//!   answers [`ClusterView`], [`PartitionView`], [`StateView`].
//! * `sdk.rs` – [`SdkService`]: the real SDK test services of
//!   `tests/services` (TypeScript, Python) as child processes; install them
//!   with `bash tests/services/setup.sh`.
//! * `cli.rs` – [`RestateCli`]: the real `restate` CLI (installed with the
//!   TypeScript services) run against a node's admin API.
//! * `model.rs` – the acknowledged-write [`Model`]: [`write_acked`],
//!   [`bump`], [`verify_model`], [`verify_everywhere`].

mod api;
mod binary;
mod cli;
mod cluster;
mod limits;
mod model;
mod node;
mod poll;
mod reply;
mod sdk;
mod views;

pub use api::{Api, http_client};
pub use binary::{
    E2E_CLUSTER_SECRET, RunOutput, free_ports, keel_bin, peers_arg, run_keel_to_exit, run_keel_to_exit_with_env,
    send_signal,
};
pub use cli::{CLI_TIMEOUT, CliOutput, RestateCli, restate_cli_bin};
pub use cluster::Cluster;
pub use limits::{
    EXIT_TIMEOUT, LEADER_TIMEOUT, LOG_TAIL_LINES, POLL_INTERVAL, REQUEST_TIMEOUT, STARTUP_TIMEOUT, WRITE_TIMEOUT,
};
pub use model::{
    Acked, Model, State, bump, make_state, read_retrying, rev_of, state_diff, verify_everywhere, verify_model,
    write_acked,
};
pub use node::KeelNode;
pub use poll::{poll_until, run_test, test_deadline};
pub use reply::{Reply, version_of};
pub use sdk::{Program, Sdk, SdkService, services_dir};
pub use views::{ClusterView, PartitionView, StateView};
