//! End-to-end test that keyless invocations (plain services: no object
//! key, workflow id or idempotency key) spread over all partitions instead
//! of piling into one.
//!
//! Where an invocation lives is read two ways: from its id (Restate's
//! `inv_1…` format carries the 64-bit partition key, byte-swapped, in its
//! first 11 base62 digits, and partition `p` of `n` owns the keys
//! `[p·2⁶⁴/n, (p+1)·2⁶⁴/n)`), and from the node's per-partition proposal
//! counters (`keel_raft_proposals_total{partition="p"}` on `/metrics`),
//! which show where the commands were actually proposed.

mod invocation_support;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use keel_e2e::{Api, Sdk, run_test};
use serde_json::Value;
use tokio::task::JoinSet;

const PARTITIONS: u32 = 8;
const SENDS: usize = 800;
const WORKERS: usize = 16;
/// Each partition's count must be within half and twice its share.
const LOW: usize = SENDS / PARTITIONS as usize / 2;
const HIGH: usize = SENDS / PARTITIONS as usize * 2;

/// The partition (of `n`) of invocation id `id`, decoded from the id.
fn partition_of_id(id: &str, n: u32) -> Result<u32> {
    ensure!(is_invocation_id(id), "{id:?} is not an invocation id");
    let mut value: u128 = 0;
    for b in id[5..16].bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            b'A'..=b'Z' => b - b'A' + 36,
            _ => bail!("{id:?}: {:?} is not a base62 digit", b as char),
        };
        value = value * 62 + u128::from(digit);
    }
    let swapped = u64::try_from(value).with_context(|| format!("{id:?}: partition key out of range"))?;
    let partition_key = swapped.swap_bytes();
    Ok(((u128::from(partition_key) * u128::from(n)) >> 64) as u32)
}

/// `keel_raft_proposals_total` per partition, from a `/metrics` text.
fn proposals(metrics: &str) -> Result<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("keel_raft_proposals_total{") else { continue };
        let (labels, value) = rest.split_once('}').with_context(|| format!("bad metrics line {line:?}"))?;
        let partition = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("partition=\""))
            .and_then(|v| v.strip_suffix('"'))
            .with_context(|| format!("no partition label in {line:?}"))?;
        let partition: u32 = partition.parse().with_context(|| format!("partition in {line:?}"))?;
        let value = value.split_whitespace().next().unwrap_or_default();
        let value: f64 = value.parse().with_context(|| format!("value in {line:?}"))?;
        out.insert(partition, value as u64);
    }
    ensure!(!out.is_empty(), "no keel_raft_proposals_total sample in /metrics:\n{metrics}");
    Ok(out)
}

/// `count` one-way sends of `Greeter/greet` delayed by an hour (so each is
/// one stored command and nothing runs yet) through `api`, one at a time.
/// Returns their invocation ids.
async fn delayed_sends(api: Api, count: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let reply = api.ingress_post("/Greeter/greet/send?delay=1h", "\"spread\"").await?;
        reply.expect_status(202)?;
        let body = reply.json()?;
        let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("no id in {body}"))?;
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// Fails unless every partition `0..PARTITIONS` has a count in
/// `LOW..=HIGH`.
fn check_spread(what: &str, counts: &BTreeMap<u32, usize>) -> Result<()> {
    let all: Vec<(u32, usize)> = (0..PARTITIONS).map(|p| (p, counts.get(&p).copied().unwrap_or(0))).collect();
    let off: Vec<&(u32, usize)> = all.iter().filter(|(_, n)| !(LOW..=HIGH).contains(n)).collect();
    ensure!(
        off.is_empty(),
        "{what}: per partition (partition, count) {all:?}; {off:?} outside {LOW}..={HIGH} \
         (half to twice the share of {SENDS} over {PARTITIONS})"
    );
    Ok(())
}

/// One node with 8 partitions, the TypeScript services registered.
///
/// 1. 800 delayed one-way sends of `Greeter/greet` (16 clients at once):
///    each answers 202 with a distinct id, and the ids' partitions give
///    every partition between 50 and 200 of them.
/// 2. `/metrics` agrees: each partition's proposal counter grew by at least
///    as many commands as the ids put there, and the growth too is
///    between 50 and 200 in every partition.
/// 3. 16 keyless calls of `Greeter/greet` answer, from more than one
///    partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyless_calls_spread_over_partitions() {
    run_test("keyless_calls_spread_over_partitions", scenario()).await;
}

async fn scenario() -> Result<()> {
    let partitions = PARTITIONS.to_string();
    let (c, ts) = cluster_serving(1, &["--partitions", &partitions], Sdk::TypeScript).await?;
    let api = c.nodes[0].api.clone();
    let before = proposals(&api.metrics().await?)?;

    // 1. The sends, and where their ids say they are.
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        workers.spawn(delayed_sends(api.clone(), SENDS / WORKERS));
    }
    let mut ids = Vec::with_capacity(SENDS);
    while let Some(done) = workers.join_next().await {
        ids.extend(done.context("a sending task panicked")??);
    }
    ensure!(ids.len() == SENDS, "{} sends answered, expected {SENDS}", ids.len());
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    ensure!(distinct.len() == SENDS, "{SENDS} sends got only {} distinct ids", distinct.len());
    let mut by_id: BTreeMap<u32, usize> = BTreeMap::new();
    for id in &ids {
        *by_id.entry(partition_of_id(id, PARTITIONS)?).or_default() += 1;
    }
    check_spread("invocation ids", &by_id)?;

    // 2. Where the commands were proposed.
    let after = proposals(&api.metrics().await?)?;
    let mut grown: BTreeMap<u32, usize> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let delta = after.get(&p).copied().unwrap_or(0).saturating_sub(before.get(&p).copied().unwrap_or(0));
        let from_ids = by_id.get(&p).copied().unwrap_or(0);
        ensure!(
            delta as usize >= from_ids,
            "partition {p}: {from_ids} sends have ids there, but only {delta} commands were proposed there \
             (proposals before {before:?}, after {after:?})"
        );
        grown.insert(p, delta as usize);
    }
    check_spread("keel_raft_proposals_total growth", &grown)?;
    eprintln!("keyless sends per partition: by id {by_id:?}, proposals {grown:?}");

    // 3. Keyless calls run wherever they land.
    let mut called: BTreeMap<u32, usize> = BTreeMap::new();
    for i in 0..16 {
        let name = format!("n{i}");
        let id = call_expect(&api, "/Greeter/greet", &format!("\"{name}\""), &format!("\"Hello, {name}!\"")).await?;
        *called.entry(partition_of_id(&id, PARTITIONS)?).or_default() += 1;
    }
    ensure!(called.len() > 1, "16 keyless calls all landed in one partition: {called:?}");

    ts.finish();
    c.finish();
    Ok(())
}

/// The decoder against the id vectors of `protocol/src/ids/tests.rs`
/// (computed independently of keel).
#[test]
fn partition_of_id_decodes_known_ids() {
    let cases = [
        ("inv_1000000000000000000000000000000000", 0u64),
        ("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw", 1),
        ("inv_1kAt0t9pq7gB3DiQTUN2BrjCLWRdNa5AhX", 0x0123_4567_89ab_cdef),
        ("inv_1lYGhA16ahyf7N42dgm5tFLK9N8MT7fHC7", u64::MAX),
    ];
    for (id, partition_key) in cases {
        for n in [1u32, 8, 13, 64] {
            let want = ((u128::from(partition_key) * u128::from(n)) >> 64) as u32;
            assert_eq!(partition_of_id(id, n).unwrap(), want, "{id} of {n}");
        }
    }
    assert_eq!(partition_of_id("inv_1lYGhA16ahyf7N42dgm5tFLK9N8MT7fHC7", 8).unwrap(), 7);
    assert!(partition_of_id("inv_1ZZZZZZZZZZZ0000000000000000000000", 8).is_err());
}
