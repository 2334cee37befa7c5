//! A node whose disk fills up stops, loudly, and loses nothing.
//!
//! Needs root (it mounts a tmpfs), as CI runs. Build the binary first
//! (`cargo build -p keel`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{
    Acked, Cluster, LEADER_TIMEOUT, Model, STARTUP_TIMEOUT, State, WRITE_TIMEOUT, run_test, verify_everywhere,
    write_acked,
};
use tokio::time::Instant;

/// A tmpfs mounted for the test, unmounted (and its mount point removed)
/// when dropped, after the processes using it are gone.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        run_mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir.display().to_string()])
            .context("this test mounts a tmpfs and must run as root (CI does)")?;
        Ok(Tmpfs { dir: dir.to_owned() })
    }

    fn grow(&self, size: &str) -> Result<()> {
        run_mount(&["-o", &format!("remount,size={size}"), &self.dir.display().to_string()])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn run_mount(args: &[&str]) -> Result<()> {
    let out = Command::new("mount").args(args).output().context("cannot run mount")?;
    ensure!(out.status.success(), "mount {args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// A state of about 256 KiB that does not compress, different per key.
fn big_state(key: &str) -> State {
    let seed = key.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3));
    let payload = keel_testkit::noise(seed, 256 * 1024);
    State::from([("key".to_string(), key.as_bytes().to_vec()), ("payload".to_string(), payload)])
}

/// Writes that take longer than this count as a hang.
const MAX_WRITE: Duration = Duration::from_secs(10);
/// Writes made before giving up on seeing the small disk fill.
const MAX_WRITES: usize = 600;
/// Writes made after node 1 stopped, all acknowledged by the other two.
const WRITES_AFTER: usize = 10;

/// Three nodes, replication factor 3; node 1's data directory is a 64 MiB
/// tmpfs, the others have room. Writes of 256 KiB states go through nodes 2
/// and 3 until node 1's disk is full:
///
/// - node 1 exits by itself with status 74, its stderr naming the error
///   ("No space left on device") and its data directory;
/// - no write takes longer than a few seconds, before or after, and the two
///   others keep acknowledging writes (the cluster fails over);
/// - after node 1's disk grows and it restarts, every acknowledged write
///   reads back exactly through all three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_and_loses_nothing() {
    run_test("a_full_disk_stops_the_node_and_loses_nothing", disk_full()).await;
}

async fn disk_full() -> Result<()> {
    let scratch = tempfile::Builder::new().prefix("keel-disk-full-").tempdir()?;
    let small = Tmpfs::mount(&scratch.path().join("node-1"), "64m")?;
    let mut c = Cluster::new(3, &["--partitions", "2", "--replication-factor", "3"])?;
    c.nodes[0].data_dir = small.dir.join("data");
    for node in &mut c.nodes {
        node.spawn()?;
    }
    for node in &mut c.nodes {
        node.wait_ready(STARTUP_TIMEOUT).await?;
    }
    c.wait_for_leaders(&c.all(), LEADER_TIMEOUT).await?;
    let others = c.apis(&[1, 2]);
    let service = "disk";

    let mut model = Model::new();
    let mut stopped = None;
    let mut after = 0;
    for i in 0..MAX_WRITES {
        let key = format!("key-{i:04}");
        let state = big_state(&key);
        let started = Instant::now();
        let version = write_acked(&others, i, service, &key, &state, None, WRITE_TIMEOUT).await?;
        let took = started.elapsed();
        ensure!(took < MAX_WRITE, "write {i} took {took:?} (node 1 stopped: {})", stopped.is_some());
        model.insert(key, Acked { state, version });
        if stopped.is_none() {
            stopped = c.nodes[0].try_exited()?;
        } else {
            after += 1;
            if after == WRITES_AFTER {
                break;
            }
        }
    }
    let Some(status) = stopped else {
        bail!("node 1 was still running after {MAX_WRITES} writes of 256 KiB to its 64 MiB disk");
    };
    ensure!(after == WRITES_AFTER, "only {after} writes after node 1 stopped");
    let stderr = c.nodes[0].stderr_since_start();
    ensure!(status.code() == Some(74), "node 1 exited with {status}, not 74; its stderr:\n{stderr}");
    ensure!(stderr.contains("No space left on device"), "node 1's stderr does not name the error:\n{stderr}");
    let dir = c.nodes[0].data_dir.display().to_string();
    ensure!(stderr.contains(&dir), "node 1's stderr does not name its data directory {dir}:\n{stderr}");

    small.grow("1g")?;
    c.nodes[0].start().await?;
    let apis = c.apis(&c.all());
    verify_everywhere(&apis, service, &model).await?;
    ensure!(c.nodes[0].try_exited()?.is_none(), "node 1 exited again after its restart");
    c.finish();
    Ok(())
}
