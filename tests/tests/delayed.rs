//! End-to-end tests of delayed sends through the ingress (`…/send?delay=`):
//! stored at once, started by a durable timer in the target's partition,
//! exactly once, across a `kill -9`.

mod invocation_support;

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use invocation_support::*;
use keel_e2e::{Api, Cluster, LEADER_TIMEOUT, Reply, Sdk, poll_until, run_test};
use serde_json::{Value, json};

/// A delayed send's answer: 202 with exactly `{"invocationId", "status":
/// "Accepted", "executionTime"}`, the execution time within a few seconds
/// of now + `delay`. Returns the id and the execution time.
fn expect_delayed(reply: &Reply, delay: Duration) -> Result<(String, SystemTime)> {
    reply.expect_status(202)?;
    let body = reply.json()?;
    let id = body.get("invocationId").and_then(Value::as_str).with_context(|| format!("{body}"))?.to_string();
    let at_text = body.get("executionTime").and_then(Value::as_str).with_context(|| format!("{body}"))?.to_string();
    let want = json!({ "invocationId": id, "status": "Accepted", "executionTime": at_text });
    ensure!(body == want, "delayed send answered {body}");
    ensure!(is_invocation_id(&id), "malformed invocation id in {body}");
    let at = humantime::parse_rfc3339(&at_text).with_context(|| format!("executionTime {at_text:?}"))?;
    let expected = SystemTime::now() + delay;
    let off = at.duration_since(expected).unwrap_or_else(|e| e.duration());
    ensure!(off < Duration::from_secs(5), "executionTime {at_text} is {off:?} away from now + {delay:?}");
    Ok((id, at))
}

async fn get(api: &Api, path: &str) -> Result<Reply> {
    api.ingress_request("GET", path, Vec::new(), &[]).await
}

// ---------------------------------------------------------------------------
// delayed_send_survives_kill9
// ---------------------------------------------------------------------------

/// One node, the TypeScript and Python services registered.
///
/// 1. `Counter/d/add/send?delay=8s` 1 and `PyCounter/d/add/send?delay=PT8S`
///    2: 202 `Accepted` with an `executionTime` 8 s ahead; their `output` is
///    470 and the counts stay 0 (not before their time).
///    `Counter/long/add/send?delay=1h%2030m` is 90 minutes ahead, and
///    `?delay=P1DT2H` 26 hours. An idempotent delayed send repeated answers
///    `PreviouslyAccepted` with the same id.
/// 2. keel is `SIGKILL`ed and restarted before they are due.
/// 3. Each runs once, not before its execution time: the counts become 1
///    and 2 and stay so (an exclusive `add 0` queued behind them answers
///    the same), attach answers the results; the long ones still wait (470).
/// 4. Bad delays (`soon`, `P1M`, empty, `-5s`) are 400 with a JSON message,
///    and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_send_survives_kill9() {
    run_test("delayed_send_survives_kill9", delayed_scenario()).await;
}

async fn delayed_scenario() -> Result<()> {
    let mut c = Cluster::start(1, &[]).await?;
    let (ts, py) = serve_both_sdks(&c).await?;
    let api = c.nodes[0].api.clone();

    // 1. Stored at once, due later.
    let delay = Duration::from_secs(8);
    let mut due = Vec::new();
    for (counter, query, n) in [("Counter", "delay=8s", 1u64), ("PyCounter", "delay=PT8S", 2)] {
        let sent = api.ingress_post(&format!("/{counter}/d/add/send?{query}"), &n.to_string()).await?;
        let (id, at) = expect_delayed(&sent, delay).with_context(|| format!("{counter} delayed send"))?;
        let output = get(&api, &format!("/restate/invocation/{id}/output")).await?;
        ensure!(expect_error(&output, 470, "ingress")? == "not ready", "{output:?}");
        call_expect(&api, &format!("/{counter}/d/get"), "", "0").await?;
        due.push((counter, id, at, n));
    }
    let mut long = Vec::new();
    for (query, hours) in [("delay=1h%2030m", 1.5), ("delay=P1DT2H", 26.0)] {
        let sent = api.ingress_post(&format!("/Counter/long/add/send?{query}"), "1").await?;
        let (id, _) = expect_delayed(&sent, Duration::from_secs_f64(hours * 3600.0)).context(query)?;
        long.push(id);
    }
    let headers = [("content-type", "application/json"), ("idempotency-key", "later")];
    let first = api.ingress_request("POST", "/Counter/long/add/send?delay=2h", "1", &headers).await?;
    let (idempotent, _) = expect_delayed(&first, Duration::from_secs(7200))?;
    let second = api.ingress_request("POST", "/Counter/long/add/send?delay=2h", "1", &headers).await?;
    second.expect_status(202)?;
    let want = json!({ "invocationId": idempotent, "status": "PreviouslyAccepted" });
    ensure!(second.json()? == want, "repeated idempotent delayed send: {}", second.body);
    long.push(idempotent);

    // 2. Crash before they are due.
    ensure!(SystemTime::now() < due[0].2, "the test was too slow to crash before the sends were due");
    c.nodes[0].kill9().await?;
    c.nodes[0].restart().await?;

    // 3. Each runs once, not before its time.
    for (counter, id, at, n) in &due {
        let path = format!("/{counter}/d/get");
        poll_until(LEADER_TIMEOUT, &format!("{counter}/d to count {n}"), async || {
            let r = api.ingress_post(&path, "").await;
            if is_unavailable(&r) {
                bail!("{}", describe(&r));
            }
            let reply = r?;
            reply.expect_status(200)?;
            if reply.body == "0" {
                return Ok(None);
            }
            ensure!(SystemTime::now() >= *at, "{counter}/d counts {} before its execution time", reply.body);
            expect_output(&reply, &n.to_string())?;
            Ok(Some(()))
        })
        .await?;
        call_expect(&api, &format!("/{counter}/d/add"), "0", &n.to_string()).await.context("ran more than once")?;
        expect_output(&get(&api, &format!("/restate/invocation/{id}/attach")).await?, &n.to_string())?;
    }
    for id in &long {
        let output = get(&api, &format!("/restate/invocation/{id}/output")).await?;
        expect_error(&output, 470, "ingress").with_context(|| format!("long delayed send {id}"))?;
    }

    // 4. Bad delays.
    for bad in ["soon", "P1M", "", "-5s", "10%20parsecs"] {
        let reply = api.ingress_post(&format!("/Counter/d/add/send?delay={bad}"), "1").await?;
        let message = expect_error(&reply, 400, "ingress").with_context(|| format!("delay={bad}"))?;
        ensure!(message.contains("bad delay"), "delay={bad}: {message:?}");
    }
    call_expect(&api, "/Counter/d/add", "0", "1").await.context("a bad delay changed the count")?;

    py.finish();
    ts.finish();
    c.finish();
    Ok(())
}

// ---------------------------------------------------------------------------
// delayed_send_fires_after_failover
// ---------------------------------------------------------------------------

/// Three nodes (8 partitions, replication factor 3), the TypeScript services.
///
/// 1. `Counter/fo/add/send?delay=8s` 1 with `idempotency-key: fo-1` through
///    node 1: 202 `Accepted`, with an `executionTime` 8 s ahead.
/// 2. Before it is due, the leader of `fo`'s partition is `SIGKILL`ed; the
///    survivors elect a new leader.
/// 3. The new leader fires the durable start timer: `get` through the
///    survivors reaches 1, not before the execution time; an exclusive
///    `add 0` answers 1 (it ran exactly once); the same idempotent send
///    through a survivor answers `PreviouslyAccepted` with the same id, and
///    attaching by the idempotency key answers 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_send_fires_after_failover() {
    run_test("delayed_send_fires_after_failover", failover_scenario()).await;
}

async fn failover_scenario() -> Result<()> {
    let (mut c, ts) = cluster_serving(3, &["--partitions", "8", "--replication-factor", "3"], Sdk::TypeScript).await?;
    let all = c.all();
    let apis = c.apis(&all);

    // 1. The idempotency key makes retrying an ambiguous answer safe.
    let headers = [("content-type", "application/json"), ("idempotency-key", "fo-1")];
    let sent = poll_until(LEADER_TIMEOUT, "the delayed send to be accepted", async || {
        let r = apis[0].ingress_request("POST", "/Counter/fo/add/send?delay=8s", "1", &headers).await;
        if is_unavailable(&r) {
            bail!("{}", describe(&r));
        }
        Ok(Some(r?))
    })
    .await?;
    let (id, at) = expect_delayed(&sent, Duration::from_secs(8))?;
    let p = apis[0].get_state("Counter", "fo").await?.partition;

    // 2. Kill the partition's leader before the send is due.
    let (vi, _) = c.leader_view(&all, p).await?;
    let victim = c.nodes[vi].id;
    ensure!(SystemTime::now() < at, "the test was too slow to fail over before the send was due");
    eprintln!("killing node {victim}, leader of partition {p} (holding Counter/fo)");
    c.nodes[vi].kill9().await?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != vi).collect();
    let sapis = c.apis(&survivors);
    let leaders = c.wait_for_leaders(&survivors, LEADER_TIMEOUT).await?;
    ensure!(leaders.get(&p).is_some_and(|&l| l != victim), "partition {p} has no new leader: {leaders:?}");

    // 3. The new leader fires it, once.
    poll_until(LEADER_TIMEOUT, "Counter/fo to count 1", async || {
        let r = sapis[0].ingress_post("/Counter/fo/get", "").await;
        if is_unavailable(&r) {
            bail!("{}", describe(&r));
        }
        let reply = r?;
        reply.expect_status(200)?;
        if reply.body == "0" {
            return Ok(None);
        }
        ensure!(SystemTime::now() >= at, "Counter/fo counts {} before its execution time", reply.body);
        expect_output(&reply, "1")?;
        Ok(Some(()))
    })
    .await?;
    let barrier = call_until_answered(&sapis, 0, "/Counter/fo/add", "0", LEADER_TIMEOUT).await?;
    expect_output(&barrier, "1").context("the delayed send ran more than once")?;
    let again = sapis[1].ingress_request("POST", "/Counter/fo/add/send?delay=8s", "1", &headers).await?;
    again.expect_status(202)?;
    let want = json!({ "invocationId": id, "status": "PreviouslyAccepted" });
    ensure!(again.json()? == want, "repeated send after the failover: {}", again.body);
    expect_output(&get(&sapis[1], "/restate/invocation/Counter/fo/add/fo-1/attach").await?, "1")?;

    ts.finish();
    c.finish();
    Ok(())
}
