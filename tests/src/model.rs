//! The acknowledged-write model: what a test knows was written, how it
//! writes (retrying only where that is safe) and how it verifies that every
//! acknowledged write reads back exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio::time::Instant;

use crate::api::Api;
use crate::limits::{POLL_INTERVAL, WRITE_TIMEOUT};
use crate::poll::poll_until;
use crate::reply::{is_retryable, version_of};
use crate::views::StateView;

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
                _ if !is_retryable(&r) => {
                    bail!("write of ({service}, {key}) with version {prev:?} failed: {}", reply.describe())
                }
                _ => {}
            }
        }
        ambiguous = true;
        if Instant::now() + POLL_INTERVAL >= deadline {
            let last = match r {
                Ok(reply) => reply.describe(),
                Err(e) => format!("{e:#}"),
            };
            bail!("write of ({service}, {key}) not acknowledged within {timeout:?} ({attempt} attempts); last: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Reads a key through `api`, retrying only transport errors and
/// 502/503/504 (e.g. while a leader is being elected) until `timeout`.
pub async fn read_retrying(api: &Api, service: &str, key: &str, timeout: Duration) -> Result<StateView> {
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
pub async fn verify_model(api: &Api, service: &str, model: &Model) -> Result<BTreeMap<String, u32>> {
    let mut partitions = BTreeMap::new();
    let mut mismatches = Vec::new();
    for (key, acked) in model {
        let view = read_retrying(api, service, key, WRITE_TIMEOUT).await?;
        let mut problems = Vec::new();
        if view.version != acked.version {
            problems.push(format!("version {:?}, expected {:?}", view.version, acked.version));
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
                let at = want.iter().zip(have).position(|(a, b)| a != b).unwrap_or(want.len().min(have.len()));
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
    if parts.is_empty() { "states are equal".to_string() } else { parts.join("; ") }
}

/// [`verify_model`] through every node in `apis`; also checks that all nodes
/// agree on each key's partition. Returns key → partition.
pub async fn verify_everywhere(apis: &[Api], service: &str, model: &Model) -> Result<BTreeMap<String, u32>> {
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
    agreed.map(|(_, p)| p).context("verify_everywhere needs at least one node")
}

/// A deterministic state for `key` at revision `rev`, meant to catch
/// encoding and replace-all bugs: every byte value occurs, lengths vary with
/// key and revision, and some entries exist only at odd revisions (so a
/// write that merges instead of replacing leaves a stale entry behind).
pub fn make_state(key: &str, rev: u32) -> State {
    let seed = key.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
        ^ rev.wrapping_mul(0x9e37_79b9);
    let mut s = State::new();
    s.insert("rev".to_string(), rev.to_be_bytes().to_vec());
    s.insert("key".to_string(), key.as_bytes().to_vec());
    let len = 256 + (seed % 300) as usize;
    s.insert("payload".to_string(), (0..len).map(|i| (i as u32).wrapping_add(seed) as u8).collect());
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
    let arr: [u8; 4] = bytes.as_slice().try_into().context("`rev` is not 4 bytes")?;
    Ok(u32::from_be_bytes(arr))
}

/// Writes the next revision of `key` (precondition: its acknowledged
/// version) through `apis`, starting at `apis[start]`, and records it.
pub async fn bump(apis: &[Api], start: usize, service: &str, model: &mut Model, key: &str) -> Result<()> {
    let current = model.get(key).with_context(|| format!("{key} was never written"))?.clone();
    let state = make_state(key, rev_of(&current.state)? + 1);
    let version = write_acked(apis, start, service, key, &state, Some(&current.version), WRITE_TIMEOUT).await?;
    ensure!(version != current.version, "write of {key} acknowledged with the unchanged version {version:?}");
    model.insert(key.to_string(), Acked { state, version });
    Ok(())
}
