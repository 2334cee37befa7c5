//! End-to-end tests of `keel` clusters: failover, crash recovery, catch-up
//! through a Raft snapshot, input validation and process behaviour.
//!
//! Build the binary first (`cargo build -p keel`); see the crate docs of
//! `keel_e2e` for the knobs. Every wait is a bounded poll; every test has an
//! overall deadline (120 s by default).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use keel_e2e::{
    Acked, Api, Cluster, EXIT_TIMEOUT, LEADER_TIMEOUT, Model, REQUEST_TIMEOUT, WRITE_TIMEOUT, bump, free_ports,
    make_state, poll_until, read_retrying, run_keel_to_exit, run_test, verify_everywhere, verify_model, write_acked,
};
use tokio::task::JoinSet;
use tokio::time::Instant;

fn key_name(i: usize) -> String {
    format!("key-{i:03}")
}

// ---------------------------------------------------------------------------
// three_node_failover_and_catch_up
// ---------------------------------------------------------------------------

const FAILOVER_SVC: &str = "failover";
const FAILOVER_ARGS: &[&str] =
    &["--partitions", "4", "--replication-factor", "3", "--snapshot-logs", "20", "--keep-logs", "5"];
/// Writes after the failover before giving up on seeing the new leader purge
/// its log past what the killed node had.
const MAX_FAILOVER_ROUNDS: u32 = 400;
/// Writes after the failover that are always made (> 2 × `--snapshot-logs`).
const MIN_FAILOVER_ROUNDS: u32 = 45;
/// How long the restarted node may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Three nodes, four partitions, replication factor 3, a snapshot every 20
/// applied entries keeping 5 log entries behind it.
///
/// 1. Waits until every partition has one leader that all nodes agree on,
///    checks the partition table and that `/metrics` has `keel_raft_*`.
/// 2. Writes 30 keys round robin through all nodes and reads every
///    acknowledged write back through every node (exact bytes and version).
/// 3. Optimistic concurrency: a conditional write with the current version
///    succeeds, one with a stale version gets 409 and changes nothing; six
///    concurrent conditional writes from the same version through different
///    nodes: exactly one wins, the rest get 409, and the winner is what reads
///    return.
/// 4. `SIGKILL`s the leader of `key-000`'s partition P, noting its committed
///    index I, and waits until the two survivors agree on new leaders.
/// 5. Keeps writing through the survivors (mostly `key-000`, so partition P,
///    at least 45 writes) until P's new leader reports `last_purged > I`: the
///    entries the killed node lacks are gone from the leader's log, so it can
///    only catch up by installing a snapshot. Every acknowledged write is then
///    read back exactly from both survivors.
/// 6. Restarts the killed node and waits until, for every partition, its
///    `applied` reaches the committed index the leader reported after the
///    last write, and its snapshot of P lies beyond I; then every acknowledged
///    write is read back exactly through all three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_node_failover_and_catch_up() {
    run_test("three_node_failover_and_catch_up", failover_scenario()).await;
}

async fn failover_scenario() -> Result<()> {
    let svc = FAILOVER_SVC;
    let mut c = Cluster::start(3, FAILOVER_ARGS).await?;
    let all = c.all();
    let apis = c.apis(&all);

    // 1. Leaders, topology, metrics.
    let leaders = c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    ensure!(leaders.len() == 4, "expected leaders for 4 partitions, got {leaders:?}");
    c.check_topology(&all, 4, 3).await?;
    for api in &apis {
        let metrics = api.metrics().await?;
        ensure!(
            metrics.lines().any(|l| l.starts_with("keel_raft_")),
            "node {}'s /metrics has no keel_raft_* sample:\n{metrics}",
            api.node_id
        );
    }

    // 2. Thirty keys, round robin over the nodes.
    let mut model = Model::new();
    for i in 0..30 {
        let key = key_name(i);
        let state = make_state(&key, 0);
        let version = write_acked(&apis, i % apis.len(), svc, &key, &state, None, WRITE_TIMEOUT).await?;
        model.insert(key, Acked { state, version });
    }
    let partition_of = verify_everywhere(&apis, svc, &model).await?;
    ensure!(partition_of.values().all(|&p| p < 4), "keys mapped to partitions outside 0..4: {partition_of:?}");

    // 3. Optimistic concurrency.
    stale_version_is_rejected(&apis, svc, &mut model, "key-001").await?;
    concurrent_conditional_writes(&apis, svc, &mut model, "key-002").await?;
    verify_everywhere(&apis, svc, &model).await?;

    // 4. Kill the leader of key-000's partition.
    let victim_key = key_name(0);
    let p = partition_of[&victim_key];
    let (vi, victim_view) = c.leader_view(&all, p).await?;
    let victim_id = c.nodes[vi].id;
    // Nothing is being written now, so the leader's committed index is the
    // end of its log for this partition.
    let before_kill = victim_view
        .committed
        .max(victim_view.applied)
        .with_context(|| format!("leader {victim_id} reports no committed index for partition {p}"))?;
    eprintln!("killing node {victim_id}, leader of partition {p} at index {before_kill}");
    c.nodes[vi].kill9().await?;

    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != vi).collect();
    let sapis = c.apis(&survivors);
    let new_leaders = c.wait_for_leaders(&survivors, LEADER_TIMEOUT).await?;
    ensure!(new_leaders.get(&p).is_some_and(|&l| l != victim_id), "partition {p} has no new leader: {new_leaders:?}");

    // 5. Write until P's new leader has purged its log beyond `before_kill`.
    let others: Vec<String> = model.keys().filter(|k| **k != victim_key).cloned().collect();
    let mut purged_view = None;
    for round in 1..=MAX_FAILOVER_ROUNDS {
        let start = round as usize % sapis.len();
        bump(&sapis, start, svc, &mut model, &victim_key).await?;
        if round % 3 == 0 {
            let other = &others[(round as usize / 3) % others.len()];
            bump(&sapis, start + 1, svc, &mut model, other).await?;
        }
        if round >= MIN_FAILOVER_ROUNDS && round % 5 == 0 {
            let (_, lp) = c.leader_view(&survivors, p).await?;
            if lp.last_purged.is_some_and(|purged| purged > before_kill) {
                eprintln!("after {round} rounds the leader of partition {p} reports {lp:?}");
                purged_view = Some(lp);
                break;
            }
        }
    }
    let purged_view = match purged_view {
        Some(v) => v,
        None => {
            let (_, lp) = c.leader_view(&survivors, p).await?;
            bail!(
                "after {MAX_FAILOVER_ROUNDS} rounds of writes the leader of partition {p} has not purged \
                 its log beyond index {before_kill} (the killed node's last entry): {lp:?}"
            );
        }
    };
    ensure!(
        purged_view.snapshot.is_some(),
        "the leader of partition {p} purged its log but reports no snapshot: {purged_view:?}"
    );
    verify_everywhere(&sapis, svc, &model).await?;

    // 6. Restart the killed node; it must catch up (through a snapshot for P).
    let mut targets = BTreeMap::new();
    for q in 0..4u32 {
        let (_, lp) = c.leader_view(&survivors, q).await?;
        let committed =
            lp.committed.with_context(|| format!("leader of partition {q} reports no committed index: {lp:?}"))?;
        targets.insert(q, committed);
    }
    c.nodes[vi].restart().await?;
    let restarted = c.nodes[vi].api.clone();
    let caught_up = poll_until(
        CATCH_UP_TIMEOUT,
        &format!(
            "node {victim_id} to catch up to {targets:?} and hold a snapshot of partition {p} beyond {before_kill}"
        ),
        async || {
            let view = restarted.cluster_view().await?;
            for (&q, &target) in &targets {
                let pv = view.partition(q)?;
                let applied = pv.applied.unwrap_or(0);
                ensure!(applied >= target, "partition {q}: applied {applied} < leader's committed {target}");
            }
            let pv = view.partition(p)?;
            ensure!(
                pv.snapshot.is_some_and(|s| s > before_kill),
                "partition {p}: snapshot {:?} is not beyond {before_kill}",
                pv.snapshot
            );
            Ok(Some(view))
        },
    )
    .await?;
    eprintln!("node {victim_id} caught up: {caught_up:?}");

    // Leadership settles with all three nodes, and the leader's log really
    // was purged past what the killed node had.
    c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    let (_, lp) = c.leader_view(&all, p).await?;
    ensure!(
        lp.last_purged.is_some_and(|purged| purged > before_kill),
        "partition {p}'s leader no longer reports a purge beyond {before_kill}: {lp:?}"
    );

    verify_model(&restarted, svc, &model).await?;
    verify_everywhere(&apis, svc, &model).await?;
    c.finish();
    Ok(())
}

/// A conditional write with the current version is accepted; one with the
/// version it replaced (now stale) or an unknown token gets 409 with a JSON
/// message and changes nothing.
async fn stale_version_is_rejected(apis: &[Api], svc: &str, model: &mut Model, key: &str) -> Result<()> {
    let old = model.get(key).with_context(|| format!("{key} not written"))?.clone();
    let new_state = make_state(key, 1);
    let new_version = apis[1]
        .set_state_ok(svc, key, &new_state, Some(&old.version))
        .await
        .context("conditional write with the current version")?;
    ensure!(new_version != old.version, "version unchanged by a write: {new_version:?}");
    model.insert(key.to_string(), Acked { state: new_state, version: new_version });

    for stale in [old.version.as_str(), "no-such-version"] {
        let reply = apis[2].set_state(svc, key, &make_state(key, 999), Some(stale)).await?;
        reply.expect_status(409)?;
        reply.error_message()?;
    }
    verify_model(&apis[0], svc, &Model::from([(key.to_string(), model[key].clone())])).await?;
    Ok(())
}

/// Six conditional writes from the same version, concurrently through all
/// nodes: exactly one is accepted (202), the others get 409, and reads return
/// the winner's state and version.
async fn concurrent_conditional_writes(apis: &[Api], svc: &str, model: &mut Model, key: &str) -> Result<()> {
    let base = model.get(key).with_context(|| format!("{key} not written"))?.clone();
    let mut tasks = JoinSet::new();
    for j in 0..6u32 {
        let api = apis[j as usize % apis.len()].clone();
        let (svc, key, version) = (svc.to_string(), key.to_string(), base.version.clone());
        let state = make_state(&key, 100 + j);
        tasks.spawn(async move {
            let reply = api.set_state(&svc, &key, &state, Some(&version)).await;
            (state, reply)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(joined) = tasks.join_next().await {
        let (state, reply) = joined?;
        let reply = reply?;
        match reply.status {
            202 => winners.push(Acked { state, version: keel_e2e::version_of(&reply)? }),
            409 => {
                reply.error_message()?;
                conflicts += 1;
            }
            _ => bail!("concurrent conditional write answered neither 202 nor 409: {reply:?}"),
        }
    }
    ensure!(
        winners.len() == 1 && conflicts == 5,
        "expected exactly 1 accepted and 5 conflicting writes, got {} accepted ({winners:?}) and {conflicts} conflicts",
        winners.len()
    );
    let winner = winners.remove(0);
    ensure!(winner.version != base.version, "winning write kept the old version");
    model.insert(key.to_string(), winner);
    for api in apis {
        verify_model(api, svc, &Model::from([(key.to_string(), model[key].clone())])).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// single_node_survives_kill9
// ---------------------------------------------------------------------------

/// One node with the default flags (8 partitions): 50 keys written, 20 of
/// them one after another (the first five twice) and 30 concurrently (each
/// twice in a row); every write is acknowledged. After `SIGKILL` and a
/// restart on the same data dir every acknowledged write reads back exactly
/// (bytes and version), and the node accepts further writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_survives_kill9() {
    run_test("single_node_survives_kill9", single_node_scenario()).await;
}

async fn single_node_scenario() -> Result<()> {
    let svc = "single";
    let mut c = Cluster::start(1, &[]).await?;
    let leaders = c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    ensure!(
        leaders.len() == 8 && leaders.values().all(|&l| l == 1),
        "expected node 1 to lead 8 partitions, got {leaders:?}"
    );
    c.check_topology(&[0], 8, 1).await?;
    let api = c.nodes[0].api.clone();
    let apis = vec![api.clone()];

    let mut model = Model::new();
    for i in 0..20 {
        let key = key_name(i);
        let state = make_state(&key, 0);
        let version = api.set_state_ok(svc, &key, &state, None).await?;
        model.insert(key, Acked { state, version });
    }
    for i in 0..5 {
        bump(&apis, 0, svc, &mut model, &key_name(i)).await?;
    }

    let mut tasks = JoinSet::new();
    for i in 20..50 {
        let api = api.clone();
        tasks.spawn(async move {
            let key = key_name(i);
            let first = make_state(&key, 0);
            let v0 = api.set_state_ok(svc, &key, &first, None).await?;
            let second = make_state(&key, 1);
            let v1 = api.set_state_ok(svc, &key, &second, Some(&v0)).await?;
            ensure!(v1 != v0, "{key}: version unchanged by a write");
            anyhow::Ok((key, Acked { state: second, version: v1 }))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (key, acked) = joined??;
        model.insert(key, acked);
    }
    ensure!(model.len() == 50, "expected 50 keys, have {}", model.len());
    verify_model(&api, svc, &model).await?;

    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;
    c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    verify_model(&api, svc, &model).await?;

    // Still writable after recovery, and versions keep moving.
    bump(&apis, 0, svc, &mut model, &key_name(7)).await?;
    bump(&apis, 0, svc, &mut model, &key_name(42)).await?;
    verify_model(&api, svc, &model).await?;
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// bad_input_and_failure_behaviour
// ---------------------------------------------------------------------------

/// Error paths, in three parts:
///
/// * A 3-node cluster (4 partitions): unknown key reads as `{}`; malformed
///   JSON and wrongly shaped bodies get 400 with a JSON `message` and change
///   nothing; a non-JSON content type gets 415; a stale version gets 409; a
///   second `keel` on a running node's data dir exits non-zero saying
///   "lock"; with two nodes killed, a write through the survivor answers 503
///   with a JSON message and `Retry-After` instead of hanging; the survivor
///   then exits 0 on `SIGTERM`.
/// * A single node (4 partitions): `SIGTERM` → exit 0; restarting it with
///   `--partitions 6` on the same data dir exits non-zero naming
///   "partitions"; restarting with the original flags serves the data.
/// * Bad flag values exit with code 2 and name the flag on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_and_failure_behaviour() {
    run_test("bad_input_and_failure_behaviour", bad_input_scenario()).await;
}

async fn bad_input_scenario() -> Result<()> {
    three_node_error_paths().await?;
    single_node_restart_paths().await?;
    bad_flags().await?;
    Ok(())
}

async fn three_node_error_paths() -> Result<()> {
    let svc = "errors";
    let mut c = Cluster::start(3, &["--partitions", "4"]).await?;
    let all = c.all();
    c.wait_for_leaders(&all, LEADER_TIMEOUT).await?;
    let api = c.nodes[1].api.clone();
    let path = format!("/services/{svc}/state");

    // Unknown key: empty state, echoed identity, a partition.
    let unknown = api.get_state(svc, "never-written").await?;
    ensure!(unknown.state.is_empty(), "unknown key has state {:?}", unknown.state);
    ensure!(unknown.partition < 4, "unknown key in partition {}", unknown.partition);

    // 400: malformed JSON and wrong shapes.
    let bad_bodies: [&[u8]; 6] = [
        br#"{"object_key": "victim", "new_state": "#,
        b"not json at all",
        br#"[1, 2, 3]"#,
        br#"{"new_state": {"a": [1]}}"#,
        br#"{"object_key": "victim", "new_state": "a string"}"#,
        br#"{"object_key": "victim", "new_state": {"a": [1, 2, 300]}}"#,
    ];
    for body in bad_bodies {
        let reply = api.post(&path, Some("application/json"), body.to_vec()).await?;
        reply.expect_status(400).with_context(|| format!("body {:?}", String::from_utf8_lossy(body)))?;
        reply.error_message()?;
    }

    // 415: a well-formed body with a non-JSON content type.
    let good_body = serde_json::to_vec(&serde_json::json!({
        "object_key": "victim",
        "new_state": make_state("victim", 0),
    }))?;
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = api.post(&path, Some(ct), good_body.clone()).await?;
        reply.expect_status(415).with_context(|| format!("content type {ct}"))?;
        reply.error_message()?;
    }
    let victim = api.get_state(svc, "victim").await?;
    ensure!(victim.state.is_empty(), "rejected requests changed the state of `victim`: {:?}", victim.state);

    // 409: stale version.
    let apis = c.apis(&all);
    let mut model = Model::new();
    let state = make_state("occ", 0);
    let version = api.set_state_ok(svc, "occ", &state, None).await?;
    model.insert("occ".to_string(), Acked { state, version });
    stale_version_is_rejected(&apis, svc, &mut model, "occ").await?;

    // A second keel on node 1's data dir (fresh ports) must refuse to run.
    let node = &c.nodes[0];
    let ports = free_ports(3);
    let mut args = vec![
        "--node-id".to_string(),
        node.id.to_string(),
        "--data-dir".to_string(),
        node.data_dir.display().to_string(),
        "--ingress-addr".to_string(),
        format!("127.0.0.1:{}", ports[0]),
        "--admin-addr".to_string(),
        format!("127.0.0.1:{}", ports[1]),
        "--node-addr".to_string(),
        format!("127.0.0.1:{}", ports[2]),
        "--peers".to_string(),
        node.peers.clone(),
    ];
    args.extend(node.extra_args.iter().cloned());
    let out = run_keel_to_exit(&args, EXIT_TIMEOUT).await?;
    ensure!(
        !out.status.success() && out.status.code().is_some(),
        "a second keel on a locked data dir exited with {}; stderr:\n{}",
        out.status,
        out.stderr
    );
    ensure!(
        out.stderr.to_lowercase().contains("lock"),
        "a second keel on a locked data dir exited with {} but its stderr does not mention the lock:\n{}\nstdout:\n{}",
        out.status,
        out.stderr,
        out.stdout
    );
    // The running node is unharmed.
    c.nodes[0].api.health().await?;
    verify_model(&c.nodes[0].api, svc, &model).await?;

    // Quorum loss: kill two of three nodes, then write through the survivor.
    let survivor = c.nodes[0].api.clone();
    let p = survivor.get_state(svc, "occ").await?.partition;
    c.nodes[1].kill9().await?;
    c.nodes[2].kill9().await?;
    let started = Instant::now();
    let reply = survivor.set_state(svc, "occ", &make_state("occ", 7), None).await.with_context(|| {
        format!("a write to partition {p} without quorum got no answer (client timeout {REQUEST_TIMEOUT:?})")
    })?;
    eprintln!("write without quorum answered {} after {:.1?}", reply.status, started.elapsed());
    reply.expect_status(503)?;
    reply.error_message()?;
    ensure!(
        reply.retry_after.as_deref().is_some_and(|v| !v.trim().is_empty()),
        "503 without a Retry-After header: {reply:?}"
    );

    // SIGTERM on the survivor (which has lost quorum everywhere) → exit 0.
    let status = c.nodes[0].terminate().await?;
    ensure!(status.code() == Some(0), "SIGTERM: node 1 exited with {status}");
    c.finish();
    Ok(())
}

async fn single_node_restart_paths() -> Result<()> {
    let svc = "restart";
    let mut c = Cluster::start(1, &["--partitions", "4"]).await?;
    c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    let api = c.nodes[0].api.clone();
    let mut model = Model::new();
    for key in ["a", "b", "c"] {
        let state = make_state(key, 1);
        let version = api.set_state_ok(svc, key, &state, None).await?;
        model.insert(key.to_string(), Acked { state, version });
    }

    let status = c.nodes[0].terminate().await?;
    ensure!(status.code() == Some(0), "SIGTERM: exited with {status}");

    // Same data dir, different partition count: must refuse.
    c.nodes[0].set_flag("--partitions", "6");
    c.nodes[0].spawn()?;
    let status = c.nodes[0].wait_exit(EXIT_TIMEOUT).await?;
    let stderr = c.nodes[0].stderr_since_start();
    ensure!(
        !status.success() && status.code().is_some(),
        "restart with --partitions 6 on a 4-partition data dir exited with {status}; stderr:\n{stderr}"
    );
    ensure!(
        stderr.to_lowercase().contains("partitions"),
        "restart with --partitions 6 exited with {status} but stderr does not mention partitions:\n{stderr}"
    );

    // Original flags: the data is all there.
    c.nodes[0].set_flag("--partitions", "4");
    c.nodes[0].start().await?;
    c.wait_for_leaders(&[0], LEADER_TIMEOUT).await?;
    verify_model(&api, svc, &model).await?;
    let view = read_retrying(&api, svc, "a", WRITE_TIMEOUT).await?;
    ensure!(view.partition < 4, "key in partition {}", view.partition);

    let status = c.nodes[0].terminate().await?;
    ensure!(status.code() == Some(0), "second SIGTERM: exited with {status}");
    c.finish();
    Ok(())
}

async fn bad_flags() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("keel-e2e-flags-").tempdir()?;
    let cases: [(&str, &str, &str); 3] = [
        ("--partitions", "abc", "partitions"),
        ("--ingress-addr", "not-an-address", "ingress"),
        ("--peers", "1=nowhere", "peers"),
    ];
    for (i, (flag, value, needle)) in cases.into_iter().enumerate() {
        let ports = free_ports(3);
        let data_dir = tmp.path().join(format!("data-{i}")).display().to_string();
        let valid = [
            ("--node-id", "1".to_string()),
            ("--data-dir", data_dir),
            ("--ingress-addr", format!("127.0.0.1:{}", ports[0])),
            ("--admin-addr", format!("127.0.0.1:{}", ports[1])),
            ("--node-addr", format!("127.0.0.1:{}", ports[2])),
        ];
        // Valid values for everything but the flag under test, so that only
        // its value can be what is wrong.
        let mut args: Vec<String> =
            valid.into_iter().filter(|(f, _)| f != &flag).flat_map(|(f, v)| [f.to_string(), v]).collect();
        args.push(flag.to_string());
        args.push(value.to_string());
        let out = run_keel_to_exit(&args, EXIT_TIMEOUT).await.with_context(|| format!("{flag} {value}"))?;
        ensure!(
            out.status.code() == Some(2),
            "{flag} {value}: expected exit code 2, got {}; stderr:\n{}",
            out.status,
            out.stderr
        );
        ensure!(
            out.stderr.to_lowercase().contains(needle),
            "{flag} {value}: stderr does not mention {needle:?}:\n{}",
            out.stderr
        );
    }
    Ok(())
}
