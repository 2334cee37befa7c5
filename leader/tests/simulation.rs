//! The seeded simulation: random workloads under random faults on the
//! in-process cluster, then checks of what keel promises.
//!
//! Each seed starts three nodes with two partitions and, for 15 s of
//! virtual time, runs counter calls (each with its own idempotency key),
//! one-way sends that call a counter, durable sleeps and `ctx.run` steps,
//! while faults come and go: a node cut off from the others, a node
//! crashed and restarted, lost and delayed messages, a leader cut off until
//! replaced and then given the lead back, followers whose answers are lost
//! for longer than the commit timeout (their leader keeps its term, and
//! what timed out commits later). Throughout, a deposed leader's actor
//! lives on for [`LINGER`] before it stops (the failpoint
//! `deposed-actor-lingers`), proposing with its old term, and the fake
//! SDK's handlers take time, so attempts are under way when faults strike.
//! Then it heals everything and checks:
//!
//! - every call was answered, within ten virtual minutes (none stuck);
//! - every counter holds exactly the number of calls and sends made to it,
//!   and no two calls of one counter saw the same count (each applied once);
//! - every sleep woke once, and not early (the fake SDK watches);
//! - no step's `ctx.run` ran again once its result was stored;
//! - no term had two leaders (sampled every 20 ms on every node);
//! - every replica of every group applied the same state (nothing
//!   committed was lost or diverged).
//!
//! `KEEL_SIM_SEEDS` sets how many seeds run (default 200, spread over two
//! threads); `KEEL_SIM_SEED` runs one seed alone, to replay a failure:
//! `KEEL_SIM_SEED=17 cargo test -p keel-leader --test simulation`. A
//! failure prints its seed.

mod harness;

use harness::{Cluster, call_envelope, poll, run};
use openraft::ServerState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODES: u64 = 3;
const PARTITIONS: u32 = 2;
const KEYS: [&str; 3] = ["apple", "pear", "plum"];
/// How long faults are injected.
const CHAOS: Duration = Duration::from_secs(15);
/// How long a deposed leader's actor goes on: longer than an election, so
/// it is often still running when its node leads again.
const LINGER: Duration = Duration::from_secs(2);
/// How long a call may take, faults included, before it counts as stuck.
const CALL_BUDGET: Duration = Duration::from_secs(600);

/// What the workload observed.
#[derive(Default)]
struct Observed {
    /// Per counter key: the outputs of its calls.
    counts: BTreeMap<String, Vec<u64>>,
    /// Calls not answered within the budget.
    stuck: Vec<String>,
    /// (group, term) -> the leader seen.
    leaders: BTreeMap<(u32, u64), u64>,
    /// Two leaders in one term.
    split_brain: Vec<String>,
    /// Steps whose closure ran again after its result was stored.
    reran: Vec<String>,
}

fn simulate(seed: u64) -> Result<(), String> {
    // Process-wide, and the same for every seed.
    fail::cfg("deposed-actor-lingers", &format!("return({})", LINGER.as_millis())).expect("a valid failpoint action");
    let mut result = Err("the simulation did not finish".to_string());
    run(async {
        result = simulate_async(seed).await;
    });
    result
}

async fn simulate_async(seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = Arc::new(Cluster::start(NODES, PARTITIONS, seed).await);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let mut expected: BTreeMap<String, u64> = KEYS.iter().map(|k| (k.to_string(), 0)).collect();
    let mut calls = Vec::new();
    let start = |rng: &mut StdRng| Duration::from_millis(rng.gen_range(0..CHAOS.as_millis() as u64));
    for i in 0..rng.gen_range(10..30) {
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        *expected.entry(key.into()).or_default() += 1;
        let call =
            Call { service: "Counter", key: Some(key), handler: "add", input: Vec::new(), tag: format!("call-{i}") };
        calls.push((call.spawn(&cluster, start(&mut rng)), Answer::Count(key)));
    }
    for i in 0..rng.gen_range(1..5) {
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        *expected.entry(key.into()).or_default() += 1;
        let input = key.as_bytes().to_vec();
        let call = Call { service: "Sender", key: None, handler: "send", input, tag: format!("send-{i}") };
        calls.push((call.spawn(&cluster, start(&mut rng)), Answer::Is(b"sent")));
    }
    for i in 0..rng.gen_range(1..5) {
        let input = rng.gen_range(100..20_000u64).to_string().into_bytes();
        let call = Call { service: "Sleeper", key: None, handler: "nap", input, tag: format!("nap-{i}") };
        calls.push((call.spawn(&cluster, start(&mut rng)), Answer::Is(b"woke")));
    }
    for i in 0..rng.gen_range(2..6) {
        let call = Call { service: "Runner", key: None, handler: "step", input: Vec::new(), tag: format!("step-{i}") };
        calls.push((call.spawn(&cluster, start(&mut rng)), Answer::Step));
    }
    let sampler = tokio::spawn(sample_leaders(cluster.clone(), observed.clone()));

    inject_faults(&cluster, &mut rng).await;
    cluster.net.heal();
    for id in cluster.ids() {
        cluster.restart(id).await;
    }
    for (task, answer) in calls {
        let (label, id, out) = task.await.map_err(|e| format!("a workload task failed: {e}"))?;
        let mut o = observed.lock().unwrap_or_else(|e| e.into_inner());
        let count = out.as_deref().and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok());
        match (answer, count) {
            (Answer::Count(key), Some(count)) => o.counts.entry(key.into()).or_default().push(count),
            // Each run of the closure returns the next count, and the answer
            // is the stored result: a later run means one after the store.
            (Answer::Step, Some(answer)) => {
                let ran = cluster.sdk.executions(&id);
                if ran != answer {
                    o.reran.push(format!("{label}: answered run {answer}, the closure ran {ran} times"));
                }
            }
            (Answer::Is(want), _) if out.as_deref() == Some(want) => {}
            _ => o.stuck.push(label),
        }
    }

    let mut failures = Vec::new();
    for (key, want) in &expected {
        let got = counter(&cluster, key, *want).await;
        if got != Some(*want) {
            failures.push(format!("counter {key}: {got:?} after {want} calls and sends"));
        }
    }
    sampler.abort();
    if std::env::var("KEEL_SIM_TRACE").is_ok() {
        let o = observed.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("seed {seed}: expected {expected:?}, outputs {:?}, terms {:?}", o.counts, o.leaders);
    }
    {
        let o = observed.lock().unwrap_or_else(|e| e.into_inner());
        for (key, outputs) in &o.counts {
            let distinct: BTreeSet<_> = outputs.iter().collect();
            if distinct.len() != outputs.len() {
                failures.push(format!("counter {key}: calls saw the same count twice: {outputs:?}"));
            }
        }
        failures.extend(o.stuck.iter().map(|s| format!("stuck: {s}")));
        failures.extend(o.split_brain.iter().cloned());
        failures.extend(o.reran.iter().cloned());
    }
    failures.extend(cluster.sdk.violations());
    failures.extend(diverged(&cluster).await);
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}

/// One call of the workload: a target, and the idempotency key `tag`.
struct Call {
    service: &'static str,
    key: Option<&'static str>,
    handler: &'static str,
    input: Vec<u8>,
    tag: String,
}

/// What a call must answer.
enum Answer {
    /// A counter's new count (recorded per key).
    Count(&'static str),
    /// Exactly these bytes.
    Is(&'static [u8]),
    /// A step's stored result: how often its closure had run then.
    Step,
}

impl Call {
    /// Makes the call after `start`, retried until answered or [`CALL_BUDGET`]
    /// passes; yields its label, its invocation id and its answer (`None`:
    /// stuck).
    fn spawn(
        self,
        cluster: &Arc<Cluster>,
        start: Duration,
    ) -> tokio::task::JoinHandle<(String, String, Option<Vec<u8>>)> {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep(start).await;
            let (id, envelope) =
                call_envelope(self.service, self.key, self.handler, &self.input, &self.tag, cluster.clock_now());
            let label = format!("{}/{}/{} {}", self.service, self.key.unwrap_or("-"), self.handler, self.tag);
            (label, id.to_string(), cluster.call(&envelope, &id, CALL_BUDGET).await)
        })
    }
}

/// Random faults for [`CHAOS`], one every 0.5 to 3 s, at most one node
/// down or cut off at a time (a majority always exists for the checks).
async fn inject_faults(cluster: &Cluster, rng: &mut StdRng) {
    let ids = cluster.ids();
    let deadline = tokio::time::Instant::now() + CHAOS;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2_000))).await;
        let node = ids[rng.gen_range(0..ids.len())];
        match rng.gen_range(0..7) {
            0 => cluster.net.isolate(&[node], &ids),
            // A leader cut off long enough for the others to elect a new
            // one, then given back the lead while its old term's work may
            // still be queued: its late proposals must be fenced.
            5 => {
                cluster.net.heal();
                let group = rng.gen_range(0..PARTITIONS);
                let old = cluster.leader(group).await;
                cluster.net.isolate(&[old], &ids);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(400..1_500))).await;
                cluster.net.heal();
                let others: Vec<u64> = ids.iter().copied().filter(|id| *id != old).collect();
                cluster.net.isolate(&others[..1], &ids);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(50..800))).await;
            }
            1 => {
                for id in &ids {
                    cluster.restart(*id).await;
                }
                cluster.crash(node).await;
            }
            2 => cluster.net.degrade(rng.gen_range(0.0..0.2), Duration::from_millis(rng.gen_range(0..20))),
            // A leader whose followers' answers are lost for longer than the
            // commit timeout: what it proposed times out, then commits.
            6 => {
                cluster.net.heal();
                let leader = cluster.leader(rng.gen_range(0..PARTITIONS)).await;
                for follower in ids.iter().filter(|id| **id != leader) {
                    cluster.net.mute(*follower);
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5_500..8_000))).await;
                cluster.net.heal();
            }
            _ => {
                cluster.net.heal();
                for id in &ids {
                    cluster.restart(*id).await;
                }
            }
        }
    }
}

/// Records the leader of every (group, term) that any live node reports
/// leading, every 20 ms; two in one term is split brain.
async fn sample_leaders(cluster: Arc<Cluster>, observed: Arc<Mutex<Observed>>) {
    loop {
        for id in cluster.live() {
            let Some(registry) = cluster.registry(id) else { continue };
            for group in registry.groups() {
                let m = group.raft.metrics().borrow().clone();
                if m.state != ServerState::Leader {
                    continue;
                }
                let mut o = observed.lock().unwrap_or_else(|e| e.into_inner());
                let seen = *o.leaders.entry((group.id, m.current_term)).or_insert(id);
                if seen != id {
                    o.split_brain.push(format!("group {} term {}: leaders {seen} and {id}", group.id, m.current_term));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The count of counter `key` once it reaches `want` (sends ship through
/// the outbox after their call returned) and stays there for 5 s.
async fn counter(cluster: &Cluster, key: &str, want: u64) -> Option<u64> {
    let reached = poll(Duration::from_secs(120), || async { cluster.counter(key).await.filter(|c| *c >= want) }).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    match reached {
        Some(_) => cluster.counter(key).await,
        None => cluster.counter(key).await.or(Some(0)),
    }
}

/// One replica of a group: its node, applied index and state.
type Replica = (u64, Option<u64>, Vec<(Vec<u8>, Vec<u8>)>);

/// Groups whose replicas hold different state once they applied the same
/// log (waits up to a minute for them to catch up).
async fn diverged(cluster: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    let groups: Vec<u32> = (0..PARTITIONS).chain(std::iter::once(keel_partition::METADATA_GROUP)).collect();
    for group in groups {
        let agreed = poll(Duration::from_secs(60), || {
            let states: Vec<Replica> = cluster
                .live()
                .into_iter()
                .filter_map(|id| {
                    let g = cluster.registry(id)?.group(group)?.clone();
                    let applied = g.raft.metrics().borrow().last_applied.map(|l| l.index);
                    Some((id, applied, keel_partition::StateView::scan_prefix(&g.view(), &[])))
                })
                .collect();
            let same_index = states.windows(2).all(|w| w[0].1 == w[1].1);
            std::future::ready(same_index.then_some(states))
        })
        .await;
        match agreed {
            None => out.push(format!("group {group}: replicas never applied the same index")),
            Some(states) => {
                for pair in states.windows(2) {
                    if pair[0].2 != pair[1].2 {
                        out.push(format!(
                            "group {group}: nodes {} and {} applied index {:?} with different state",
                            pair[0].0, pair[1].0, pair[0].1
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn seeded_simulation_keeps_every_promise() {
    let seeds: Vec<u64> = match std::env::var("KEEL_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let n = std::env::var("KEEL_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200u64);
            (0..n).collect()
        }
    };
    let failures = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(seeds.clone()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, failures) = (queue.clone(), failures.clone());
            std::thread::spawn(move || {
                while let Some(seed) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                    if let Err(e) = simulate(seed) {
                        failures.lock().unwrap_or_else(|e| e.into_inner()).push(format!("seed {seed}:\n{e}"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a simulation thread panicked");
    }
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (replay one with KEEL_SIM_SEED=<seed>):\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
}
